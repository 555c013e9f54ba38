//! Passkeys against a software authenticator (the `passkey` crate's
//! authenticator and WebAuthn client): registration, passwordless login,
//! passkey as second factor, completion on another replica, and the
//! attacks: wrong origin, wrong RP id, replayed assertion, reused
//! challenge, another user's or tenant's challenge, sign-count
//! regression, removed credential.

use std::sync::Arc;

use secrecy::SecretString;
use security_authn::passkeys::{PasskeyCeremony, PasskeyId, RelyingParty};
use security_authn::{AuthenticationService, AuthnConfig, AuthnError, LoginOutcome, TokenPair};
use security_core::{AccountClaims, Request, UserId};

use crate::common::{Fixture, client, secret};
use crate::soft_passkey::SoftKey;

const RP_ID: &str = "example.com";
const ORIGIN: &str = "https://login.example.com";

fn config() -> AuthnConfig {
    let mut config = AuthnConfig::default();
    config.passkeys.relying_party = Some(RelyingParty::new(RP_ID, &[ORIGIN]).unwrap());
    config
}

fn with_rp_id(options: &serde_json::Value, rp_id: &str) -> serde_json::Value {
    let mut options = options.clone();
    if options["publicKey"].get("rp").is_some() {
        options["publicKey"]["rp"]["id"] = rp_id.into();
    } else {
        options["publicKey"]["rpId"] = rp_id.into();
    }
    options
}

async fn registered(f: &Fixture, authn: &AuthenticationService, name: &str) -> (UserId, SoftKey) {
    let user = f.user(name).await;
    let key = SoftKey::default();
    let ceremony = authn
        .start_passkey_registration(f.tenant(), user, true)
        .await
        .unwrap();
    let response = key.create(ORIGIN, &ceremony.options).await;
    let info = authn
        .finish_passkey_registration(f.tenant(), user, &ceremony.challenge, &response, "Laptop")
        .await
        .unwrap();
    assert_eq!(info.name, "Laptop");
    (user, key)
}

async fn passwordless(
    authn: &AuthenticationService,
    f: &Fixture,
    key: &SoftKey,
) -> Result<TokenPair, AuthnError> {
    let ceremony = authn
        .start_passkey_login(f.tenant(), &client("198.51.100.7"))
        .await
        .unwrap();
    let response = key.get(ORIGIN, &ceremony.options).await;
    authn
        .finish_passkey_login(&ceremony.challenge, &response, &client("198.51.100.7"))
        .await
}

fn is_invalid_credentials(result: &Result<TokenPair, AuthnError>) -> bool {
    matches!(result, Err(AuthnError::InvalidCredentials))
}

#[tokio::test]
async fn register_then_log_in_without_a_password() {
    let f = Fixture::with_config(config()).await;
    let (user, key) = registered(&f, &f.authn, "alice").await;
    let listed = f.authn.passkeys(f.tenant(), user).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].registered_at <= f.now());
    let tokens = passwordless(&f.authn, &f, &key).await.unwrap();
    assert_eq!(tokens.user_id, user);
    f.validate(&tokens).await.unwrap();
    let types = f.event_types("user", user).await;
    for expected in ["PasskeyRegistered", "PasskeyUsed", "UserAuthenticated"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }
    // Rename, then a second login still works and moves the counter on.
    let id = listed[0].id.clone();
    f.authn
        .rename_passkey(f.tenant(), user, &id, "Phone")
        .await
        .unwrap();
    passwordless(&f.authn, &f, &key).await.unwrap();
    let listed = f.authn.passkeys(f.tenant(), user).await.unwrap();
    assert_eq!(listed[0].name, "Phone");
    assert!(listed[0].last_used_at.is_some());
}

#[tokio::test]
async fn a_passkey_is_the_second_factor_after_a_password() {
    let f = Fixture::with_config(config()).await;
    let (user, key) = registered(&f, &f.authn, "bob").await;
    let LoginOutcome::MfaRequired(challenge) =
        f.login("bob", crate::common::PASSWORD).await.unwrap()
    else {
        panic!("a user with a passkey needs a second factor");
    };
    let options = challenge.passkey_options.clone().unwrap();
    assert_eq!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A wrong TOTP code does not pass for a user without TOTP.
    assert!(matches!(
        f.authn
            .verify_mfa(
                &challenge.challenge,
                &secret("123456"),
                &client("198.51.100.1")
            )
            .await,
        Err(AuthnError::InvalidMfaCode)
    ));
    let response = key.get(ORIGIN, &options).await;
    let outcome = f
        .authn
        .verify_mfa_passkey(&challenge.challenge, &response, &client("198.51.100.1"))
        .await
        .unwrap();
    let tokens = outcome.into_tokens().unwrap();
    assert_eq!(tokens.user_id, user);
    // The same answer again: the challenge is used up.
    assert!(matches!(
        f.authn
            .verify_mfa_passkey(&challenge.challenge, &response, &client("198.51.100.1"))
            .await,
        Err(AuthnError::InvalidChallenge)
    ));
}

#[tokio::test]
async fn a_ceremony_completes_on_another_replica_exactly_once() {
    let challenges = Arc::new(security_authn::MemoryChallengeStore::new());
    let f = Fixture::with_challenges(config(), challenges.clone()).await;
    let other = AuthenticationService::builder(
        f.repo.clone(),
        f.keys.clone(),
        f.hasher.clone(),
        f.clock.clone(),
    )
    .config(config())
    .challenge_store(challenges)
    .build()
    .unwrap();
    // Registration started here, finished there.
    let user = f.user("carol").await;
    let key = SoftKey::default();
    let ceremony = f
        .authn
        .start_passkey_registration(f.tenant(), user, true)
        .await
        .unwrap();
    let response = key.create(ORIGIN, &ceremony.options).await;
    other
        .finish_passkey_registration(f.tenant(), user, &ceremony.challenge, &response, "Key")
        .await
        .unwrap();
    // Login started there, finished here; the same answer on the first
    // replica again is refused.
    let ceremony = other
        .start_passkey_login(f.tenant(), &client("198.51.100.7"))
        .await
        .unwrap();
    let response = key.get(ORIGIN, &ceremony.options).await;
    let tokens = f
        .authn
        .finish_passkey_login(&ceremony.challenge, &response, &client("198.51.100.7"))
        .await
        .unwrap();
    assert_eq!(tokens.user_id, user);
    assert!(
        other
            .finish_passkey_login(&ceremony.challenge, &response, &client("198.51.100.7"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn another_origin_is_refused() {
    let f = Fixture::with_config(config()).await;
    let user = f.user("dave").await;
    let key = SoftKey::default();
    let ceremony = f
        .authn
        .start_passkey_registration(f.tenant(), user, true)
        .await
        .unwrap();
    // A page on a sibling origin of the same RP id, not allowed.
    let response = key
        .create("https://evil.example.com", &ceremony.options)
        .await;
    assert!(matches!(
        f.authn
            .finish_passkey_registration(f.tenant(), user, &ceremony.challenge, &response, "K")
            .await,
        Err(AuthnError::InvalidPasskey)
    ));
    assert!(f.authn.passkeys(f.tenant(), user).await.unwrap().is_empty());
    let (_, key) = registered(&f, &f.authn, "dave2").await;
    let ceremony = f
        .authn
        .start_passkey_login(f.tenant(), &client("198.51.100.7"))
        .await
        .unwrap();
    let response = key.get("https://evil.example.com", &ceremony.options).await;
    assert!(is_invalid_credentials(
        &f.authn
            .finish_passkey_login(&ceremony.challenge, &response, &client("198.51.100.7"))
            .await
    ));
}

#[tokio::test]
async fn another_rp_id_is_refused() {
    let f = Fixture::with_config(config()).await;
    let user = f.user("erin").await;
    let key = SoftKey::default();
    let ceremony = f
        .authn
        .start_passkey_registration(f.tenant(), user, true)
        .await
        .unwrap();
    // The allowed origin, but the credential scoped to another RP id (a
    // narrower one the browser would accept for that page): the
    // authenticator data names the other RP id's hash.
    let scoped = with_rp_id(&ceremony.options, "login.example.com");
    let response = key.create(ORIGIN, &scoped).await;
    assert!(matches!(
        f.authn
            .finish_passkey_registration(f.tenant(), user, &ceremony.challenge, &response, "K")
            .await,
        Err(AuthnError::InvalidPasskey)
    ));
    let (_, key) = registered(&f, &f.authn, "erin2").await;
    let ceremony = f
        .authn
        .start_passkey_login(f.tenant(), &client("198.51.100.7"))
        .await
        .unwrap();
    let scoped = with_rp_id(&ceremony.options, "login.example.com");
    let response = key.get(ORIGIN, &scoped).await;
    assert!(is_invalid_credentials(
        &f.authn
            .finish_passkey_login(&ceremony.challenge, &response, &client("198.51.100.7"))
            .await
    ));
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let f = Fixture::with_config(config()).await;
    let (_, key) = registered(&f, &f.authn, "frank").await;
    let ceremony = f
        .authn
        .start_passkey_login(f.tenant(), &client("198.51.100.7"))
        .await
        .unwrap();
    let response = key.get(ORIGIN, &ceremony.options).await;
    f.authn
        .finish_passkey_login(&ceremony.challenge, &response, &client("198.51.100.7"))
        .await
        .unwrap();
    // Against its own (used) challenge.
    assert!(matches!(
        f.authn
            .finish_passkey_login(&ceremony.challenge, &response, &client("198.51.100.7"))
            .await,
        Err(AuthnError::InvalidCredentials)
    ));
    // Against a fresh challenge: it signed another one.
    let fresh = f
        .authn
        .start_passkey_login(f.tenant(), &client("198.51.100.7"))
        .await
        .unwrap();
    assert!(is_invalid_credentials(
        &f.authn
            .finish_passkey_login(&fresh.challenge, &response, &client("198.51.100.7"))
            .await
    ));
}

#[tokio::test]
async fn a_registration_challenge_is_used_once() {
    let f = Fixture::with_config(config()).await;
    let user = f.user("gina").await;
    let key = SoftKey::default();
    let ceremony = f
        .authn
        .start_passkey_registration(f.tenant(), user, false)
        .await
        .unwrap();
    let response = key.create(ORIGIN, &ceremony.options).await;
    f.authn
        .finish_passkey_registration(f.tenant(), user, &ceremony.challenge, &response, "A")
        .await
        .unwrap();
    let second = key.create(ORIGIN, &ceremony.options).await;
    assert!(matches!(
        f.authn
            .finish_passkey_registration(f.tenant(), user, &ceremony.challenge, &second, "B")
            .await,
        Err(AuthnError::InvalidChallenge)
    ));
    assert_eq!(f.authn.passkeys(f.tenant(), user).await.unwrap().len(), 1);
}

#[tokio::test]
async fn another_users_or_tenants_challenge_is_refused() {
    let f = Fixture::with_config(config()).await;
    let victim = f.user("hank").await;
    let attacker = f.user("ivan").await;
    let key = SoftKey::default();
    // The attacker's authenticator answers the victim's ceremony and tries
    // to finish it as himself, and the victim's as the victim in another
    // tenant.
    let ceremony: PasskeyCeremony = f
        .authn
        .start_passkey_registration(f.tenant(), victim, true)
        .await
        .unwrap();
    let response = key.create(ORIGIN, &ceremony.options).await;
    assert!(matches!(
        f.authn
            .finish_passkey_registration(f.tenant(), attacker, &ceremony.challenge, &response, "x")
            .await,
        Err(AuthnError::InvalidChallenge)
    ));
    let other_account = f
        .authn
        .admin()
        .create_account(
            &Request::default(),
            f.operator,
            "globex",
            AccountClaims::default(),
        )
        .await
        .unwrap();
    let ceremony = f
        .authn
        .start_passkey_registration(f.tenant(), victim, true)
        .await
        .unwrap();
    let response = key.create(ORIGIN, &ceremony.options).await;
    assert!(matches!(
        f.authn
            .finish_passkey_registration(
                other_account.tenant(),
                victim,
                &ceremony.challenge,
                &response,
                "x"
            )
            .await,
        Err(AuthnError::InvalidChallenge)
    ));
    assert!(
        f.authn
            .passkeys(f.tenant(), victim)
            .await
            .unwrap()
            .is_empty()
    );
    // A passwordless ceremony of another tenant finds no user there.
    let (_, key) = registered(&f, &f.authn, "judy").await;
    let ceremony = f
        .authn
        .start_passkey_login(other_account.tenant(), &client("198.51.100.7"))
        .await
        .unwrap();
    let response = key.get(ORIGIN, &ceremony.options).await;
    assert!(is_invalid_credentials(
        &f.authn
            .finish_passkey_login(&ceremony.challenge, &response, &client("198.51.100.7"))
            .await
    ));
}

#[tokio::test]
async fn another_users_passkey_does_not_answer_a_second_factor() {
    let f = Fixture::with_config(config()).await;
    let (_, victim_key) = registered(&f, &f.authn, "rita").await;
    let (_, attacker_key) = registered(&f, &f.authn, "sam").await;
    // The attacker knows rita's password and answers her second factor
    // with his own passkey, through her options and then through a
    // ceremony of his own.
    let LoginOutcome::MfaRequired(challenge) =
        f.login("rita", crate::common::PASSWORD).await.unwrap()
    else {
        panic!("second factor expected");
    };
    let options = challenge.passkey_options.clone().unwrap();
    let mut open = options.clone();
    open["publicKey"]
        .as_object_mut()
        .unwrap()
        .remove("allowCredentials");
    let forged = attacker_key.get(ORIGIN, &open).await;
    assert!(matches!(
        f.authn
            .verify_mfa_passkey(&challenge.challenge, &forged, &client("198.51.100.1"))
            .await,
        Err(AuthnError::InvalidMfaCode)
    ));
    // Her own passkey still completes the same challenge (a few tries).
    let answer = victim_key.get(ORIGIN, &options).await;
    assert!(
        f.authn
            .verify_mfa_passkey(&challenge.challenge, &answer, &client("198.51.100.1"))
            .await
            .unwrap()
            .into_tokens()
            .is_some()
    );
}

#[tokio::test]
async fn a_signature_counter_that_goes_back_is_refused_and_recorded() {
    let f = Fixture::with_config(config()).await;
    let (user, key) = registered(&f, &f.authn, "kim").await;
    let clone = key.copy();
    passwordless(&f.authn, &f, &key).await.unwrap();
    passwordless(&f.authn, &f, &key).await.unwrap();
    // A copy of the authenticator made before those logins signs next.
    key.restore(clone);
    assert!(is_invalid_credentials(
        &passwordless(&f.authn, &f, &key).await
    ));
    let types = f.event_types("user", user).await;
    assert!(types.iter().any(|t| t == "PasskeyRefused"), "{types:?}");
    assert_eq!(
        types.last().map(String::as_str),
        Some("AuthenticationFailed")
    );
}

#[tokio::test]
async fn a_removed_passkey_ends_its_sessions_and_logs_in_no_more() {
    let f = Fixture::with_config(config()).await;
    let (user, key) = registered(&f, &f.authn, "lena").await;
    let tokens = passwordless(&f.authn, &f, &key).await.unwrap();
    let password_tokens = {
        // A second passkey-free session: the password alone is not
        // enough any more, so it goes through the same passkey.
        let LoginOutcome::MfaRequired(challenge) =
            f.login("lena", crate::common::PASSWORD).await.unwrap()
        else {
            panic!("second factor expected");
        };
        let response = key
            .get(ORIGIN, challenge.passkey_options.as_ref().unwrap())
            .await;
        f.authn
            .verify_mfa_passkey(&challenge.challenge, &response, &client("198.51.100.1"))
            .await
            .unwrap()
            .into_tokens()
            .unwrap()
    };
    let id: PasskeyId = f.authn.passkeys(f.tenant(), user).await.unwrap()[0]
        .id
        .clone();
    f.advance(1);
    f.authn.remove_passkey(f.tenant(), user, &id).await.unwrap();
    for session in [&tokens, &password_tokens] {
        assert!(matches!(
            f.authn
                .refresh(&session.refresh_token, &client("198.51.100.7"))
                .await,
            Err(AuthnError::SessionRevoked)
        ));
        assert!(f.validate(session).await.is_err());
    }
    assert!(is_invalid_credentials(
        &passwordless(&f.authn, &f, &key).await
    ));
    // Without passkeys, the password alone logs in again.
    assert!(matches!(
        f.login("lena", crate::common::PASSWORD).await.unwrap(),
        LoginOutcome::Authenticated(_)
    ));
}

#[tokio::test]
async fn removing_one_passkey_keeps_the_sessions_of_another() {
    let f = Fixture::with_config(config()).await;
    let (user, first) = registered(&f, &f.authn, "omar").await;
    let second = SoftKey::default();
    let ceremony = f
        .authn
        .start_passkey_registration(f.tenant(), user, true)
        .await
        .unwrap();
    let response = second.create(ORIGIN, &ceremony.options).await;
    f.authn
        .finish_passkey_registration(f.tenant(), user, &ceremony.challenge, &response, "Phone")
        .await
        .unwrap();
    let by_first = passwordless(&f.authn, &f, &first).await.unwrap();
    let by_second = passwordless(&f.authn, &f, &second).await.unwrap();
    let listed = f.authn.passkeys(f.tenant(), user).await.unwrap();
    assert_eq!(listed.len(), 2);
    f.advance(1);
    f.authn
        .remove_passkey(f.tenant(), user, &listed[0].id)
        .await
        .unwrap();
    assert!(matches!(
        f.authn
            .refresh(&by_first.refresh_token, &client("198.51.100.7"))
            .await,
        Err(AuthnError::SessionRevoked)
    ));
    f.authn
        .refresh(&by_second.refresh_token, &client("198.51.100.7"))
        .await
        .unwrap();
    passwordless(&f.authn, &f, &second).await.unwrap();
    // The sessions view ("your devices") drops only the removed
    // passkey's session.
    let view = security_authn::SessionsView::new();
    let store: Arc<dyn security_core::EventStore> = f.store.clone();
    let mut runner = security_core::ProjectionRunner::new(
        store,
        Arc::new(security_core::InMemoryCheckpoints::new()),
        view.projection(),
        security_core::Scope::All,
    )
    .await
    .unwrap();
    runner.catch_up().await.unwrap();
    let live: Vec<_> = view
        .sessions(f.tenant(), user, f.now())
        .iter()
        .map(|s| s.session_id)
        .collect();
    assert!(!live.contains(&by_first.session_id), "{live:?}");
    assert!(live.contains(&by_second.session_id), "{live:?}");
}

/// A Yubico attestation certificate (base64url DER, from webauthn-rs's
/// own tests): a CA list that a software authenticator cannot chain to.
const YUBICO_ATTESTATION_CERT: &str = concat!(
    "MIICvTCCAaWgAwIBAgIEK_F8eDANBgkqhkiG9w0BAQsFADAuMSwwKgYDVQQDEyNZdWJpY28gVTJGIFJv",
    "b3QgQ0EgU2VyaWFsIDQ1NzIwMDYzMTAgFw0xNDA4MDEwMDAwMDBaGA8yMDUwMDkwNDAwMDAwMFowbjEL",
    "MAkGA1UEBhMCU0UxEjAQBgNVBAoMCVl1YmljbyBBQjEiMCAGA1UECwwZQXV0aGVudGljYXRvciBBdHRl",
    "c3RhdGlvbjEnMCUGA1UEAwweWXViaWNvIFUyRiBFRSBTZXJpYWwgNzM3MjQ2MzI4MFkwEwYHKoZIzj0C",
    "AQYIKoZIzj0DAQcDQgAEdMLHhCPIcS6bSPJZWGb8cECuTN8H13fVha8Ek5nt-pI8vrSflxb59Vp4bDQl",
    "H8jzXj3oW1ZwUDjHC6EnGWB5i6NsMGowIgYJKwYBBAGCxAoCBBUxLjMuNi4xLjQuMS40MTQ4Mi4xLjcw",
    "EwYLKwYBBAGC5RwCAQEEBAMCAiQwIQYLKwYBBAGC5RwBAQQEEgQQxe9V_62aS5-1gK3rr-Am0DAMBgNV",
    "HRMBAf8EAjAAMA0GCSqGSIb3DQEBCwUAA4IBAQCLbpN2nXhNbunZANJxAn_Cd-S4JuZsObnUiLnLLS0F",
    "PWa01TY8F7oJ8bE-aFa4kTe6NQQfi8-yiZrQ8N-JL4f7gNdQPSrH-r3iFd4SvroDe1jaJO4J9LeiFjmR",
    "dcVa-5cqNF4G1fPCofvw9W4lKnObuPakr0x_icdVq1MXhYdUtQk6Zr5mBnc4FhN9qi7DXqLHD5G7ZFUm",
    "GwfIcD2-0m1f1mwQS8yRD5-_aDCf3vutwddoi3crtivzyromwbKklR4qHunJ75LGZLZA8pJ_mXnUQ6TT",
    "sgRqPvPXgQPbSyGMf2z_DIPbQqCD_Bmc4dj9o6LozheBdDtcZCAjSPTAd_ui",
);

#[tokio::test]
async fn required_attestation_refuses_an_authenticator_without_one() {
    let der = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        YUBICO_ATTESTATION_CERT,
    )
    .unwrap();
    let mut cas = webauthn_rs::prelude::AttestationCaListBuilder::new();
    cas.insert_device_der(
        &der,
        uuid::Uuid::nil(),
        "Yubico".into(),
        std::collections::BTreeMap::new(),
    )
    .unwrap();
    let mut config = config();
    config.passkeys.attestation =
        security_authn::passkeys::Attestation::Required(Arc::new(cas.build()));
    let f = Fixture::with_config(config).await;
    let user = f.user("pia").await;
    let ceremony = f
        .authn
        .start_passkey_registration(f.tenant(), user, true)
        .await
        .unwrap();
    assert_eq!(ceremony.options["publicKey"]["attestation"], "direct");
    let key = SoftKey::default();
    let response = key.create(ORIGIN, &ceremony.options).await;
    assert!(matches!(
        f.authn
            .finish_passkey_registration(f.tenant(), user, &ceremony.challenge, &response, "K")
            .await,
        Err(AuthnError::InvalidPasskey)
    ));
    assert!(f.authn.passkeys(f.tenant(), user).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_replica_without_a_relying_party_does_not_drop_the_second_factor() {
    let f = Fixture::with_config(config()).await;
    registered(&f, &f.authn, "quinn").await;
    // A replica without a relying party for the tenant cannot offer the
    // passkey, yet the password alone does not log in there: it fails
    // closed (a TOTP code, if enrolled, still completes the login).
    let without = f.second_instance(AuthnConfig::default());
    let outcome = without
        .authenticate(
            f.tenant(),
            "quinn",
            &secret(crate::common::PASSWORD),
            &client("198.51.100.3"),
        )
        .await
        .unwrap();
    let LoginOutcome::MfaRequired(challenge) = outcome else {
        panic!("the second factor must not be dropped: {outcome:?}");
    };
    assert!(challenge.passkey_options.is_none());
}

#[tokio::test]
async fn without_a_relying_party_passkeys_are_off() {
    let f = Fixture::new().await;
    let user = f.user("mia").await;
    assert!(matches!(
        f.authn
            .start_passkey_registration(f.tenant(), user, true)
            .await,
        Err(AuthnError::PasskeysNotConfigured)
    ));
    assert!(matches!(
        f.authn
            .start_passkey_login(f.tenant(), &client("198.51.100.7"))
            .await,
        Err(AuthnError::PasskeysNotConfigured)
    ));
}

#[tokio::test]
async fn oversized_answers_are_refused_before_parsing() {
    let f = Fixture::with_config(config()).await;
    let user = f.user("ned").await;
    let ceremony = f
        .authn
        .start_passkey_registration(f.tenant(), user, true)
        .await
        .unwrap();
    let huge = "x".repeat(10 * 1024 * 1024);
    assert!(matches!(
        f.authn
            .finish_passkey_registration(f.tenant(), user, &ceremony.challenge, &huge, "K")
            .await,
        Err(AuthnError::InvalidPasskey)
    ));
    assert!(matches!(
        f.authn
            .finish_passkey_registration(
                f.tenant(),
                user,
                &SecretString::from("x"),
                "{}",
                &"n".repeat(65)
            )
            .await,
        Err(AuthnError::Rejected(_))
    ));
}
