//! Access and refresh tokens: rotation, reuse, logout, revocation, expiry,
//! keys, HS256, other instances.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;
use security_authn::{AuthnConfig, AuthnError, RevocationProjection, SessionEvent};
use security_core::{
    EventStore, GlobalQuery, KeyStore as _, Projection, Request, RoleName, TokenError,
    TokenValidator,
};

use crate::common::{Fixture, client, secret};

#[tokio::test]
async fn refresh_rotates_and_a_replayed_refresh_token_revokes_the_family() {
    let f = Fixture::new().await;
    f.user("alice").await;
    let c = client("198.51.100.1");
    let first = f.tokens("alice").await;
    f.advance(600);
    let second = f.authn.refresh(&first.refresh_token, &c).await.unwrap();
    assert_eq!(second.session_id, first.session_id);
    assert_ne!(
        second.refresh_token.expose_secret(),
        first.refresh_token.expose_secret()
    );
    assert_ne!(
        second.access_token.expose_secret(),
        first.access_token.expose_secret()
    );
    assert_eq!(
        second.refresh_expires_at,
        f.now() + chrono::Duration::days(7)
    );
    f.validate(&second).await.unwrap();
    f.advance(600);
    let third = f.authn.refresh(&second.refresh_token, &c).await.unwrap();
    // An attacker replays the first token: the whole family dies.
    let err = f
        .authn
        .refresh(&first.refresh_token, &client("203.0.113.66"))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthnError::RefreshTokenReused), "{err:?}");
    for tokens in [&first, &second, &third] {
        assert!(matches!(
            f.authn.refresh(&tokens.refresh_token, &c).await,
            Err(AuthnError::SessionRevoked)
        ));
        assert_eq!(f.validate(tokens).await.unwrap_err(), TokenError::Revoked);
    }
    let events: Vec<SessionEvent> = f
        .stream("session", first.session_id)
        .await
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    assert!(matches!(
        events[1],
        SessionEvent::SessionRotated { generation: 1, .. }
    ));
    assert!(matches!(
        events[2],
        SessionEvent::SessionRotated { generation: 2, .. }
    ));
    let SessionEvent::RefreshTokenReuseDetected {
        presented_generation,
        current_generation,
        client,
        ..
    } = &events[3]
    else {
        panic!("{events:?}")
    };
    assert_eq!((*presented_generation, *current_generation), (0, 2));
    assert_eq!(client.ip, Some("203.0.113.66".parse().unwrap()));
    assert!(
        matches!(&events[4], SessionEvent::SessionRevoked { reason, .. } if reason == "refresh token reuse")
    );
    // A forged token for the session is refused without effect.
    assert!(matches!(
        f.authn.refresh(&secret("sec_rt_garbage"), &c).await,
        Err(AuthnError::InvalidRefreshToken)
    ));
    // Another login works.
    f.tokens("alice").await;
}

#[tokio::test]
async fn a_refresh_token_expires_after_seven_days_and_refreshes_carry_new_roles() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let c = client("198.51.100.1");
    let tokens = f.tokens("alice").await;
    assert!(!f.validate(&tokens).await.unwrap().has_role("auditor"));
    f.advance(3600);
    f.authn
        .admin()
        .assign_role(
            &Request::default(),
            f.tenant(),
            alice,
            RoleName::new("auditor").unwrap(),
        )
        .await
        .unwrap();
    f.advance(1);
    // A role change revokes the user's sessions (SessionsRevoked): the old
    // refresh token is refused, a new login carries the role.
    assert!(matches!(
        f.authn.refresh(&tokens.refresh_token, &c).await,
        Err(AuthnError::SessionRevoked)
    ));
    let tokens = f.tokens("alice").await;
    assert!(f.validate(&tokens).await.unwrap().has_role("auditor"));
    f.advance(7 * 86_400 - 1);
    let tokens = f.authn.refresh(&tokens.refresh_token, &c).await.unwrap();
    f.advance(7 * 86_400);
    assert!(matches!(
        f.authn.refresh(&tokens.refresh_token, &c).await,
        Err(AuthnError::InvalidRefreshToken)
    ));
}

#[tokio::test]
async fn logout_and_revoke_all_end_sessions_and_their_access_tokens() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let c = client("198.51.100.1");
    let phone = f.tokens("alice").await;
    let laptop = f.tokens("alice").await;
    f.authn.logout(&phone.refresh_token).await.unwrap();
    assert_eq!(f.validate(&phone).await.unwrap_err(), TokenError::Revoked);
    assert!(matches!(
        f.authn.refresh(&phone.refresh_token, &c).await,
        Err(AuthnError::SessionRevoked)
    ));
    f.validate(&laptop).await.unwrap();
    let events = f.event_types("session", phone.session_id).await;
    assert_eq!(events, ["SessionStarted", "SessionRevoked"]);
    // Revoke everything: in the same instant, a new login still works.
    let tablet = f.tokens("alice").await;
    f.authn
        .revoke_all_sessions(f.tenant(), alice, "lost device")
        .await
        .unwrap();
    for tokens in [&laptop, &tablet] {
        assert_eq!(f.validate(tokens).await.unwrap_err(), TokenError::Revoked);
        assert!(matches!(
            f.authn.refresh(&tokens.refresh_token, &c).await,
            Err(AuthnError::SessionRevoked)
        ));
    }
    let fresh = f.tokens("alice").await;
    f.validate(&fresh).await.unwrap();
    f.authn.refresh(&fresh.refresh_token, &c).await.unwrap();
    let types = f.event_types("user", alice).await;
    assert_eq!(types.last().unwrap(), "UserAuthenticated");
    assert!(types.contains(&"SessionsRevoked".to_owned()));
}

#[tokio::test]
async fn revoking_one_session_by_id_and_one_access_token_by_jti() {
    let f = Fixture::new().await;
    f.user("alice").await;
    let a = f.tokens("alice").await;
    let b = f.tokens("alice").await;
    let claims = f.validate(&a).await.unwrap();
    f.authn
        .revoke_session(f.tenant(), claims.session_id.unwrap(), "admin")
        .await
        .unwrap();
    assert_eq!(f.validate(&a).await.unwrap_err(), TokenError::Revoked);
    let claims = f.validate(&b).await.unwrap();
    f.authn.revoke_access_token(&claims).await.unwrap();
    assert_eq!(f.validate(&b).await.unwrap_err(), TokenError::Revoked);
    // The session itself lives on: a refresh gives a new access token.
    let b2 = f
        .authn
        .refresh(&b.refresh_token, &client("198.51.100.1"))
        .await
        .unwrap();
    f.validate(&b2).await.unwrap();
}

#[tokio::test]
async fn access_tokens_expire_and_keys_rotate_and_revoke() {
    let f = Fixture::new().await;
    f.user("alice").await;
    let old = f.tokens("alice").await;
    f.validate(&old).await.unwrap();
    let new_kid = f.authn.rotate_signing_key(f.tenant()).await.unwrap();
    let new = f.tokens("alice").await;
    let kid_of = |t: &security_authn::TokenPair| {
        let header = t
            .access_token
            .expose_secret()
            .split('.')
            .next()
            .unwrap()
            .to_owned();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        header["kid"].as_str().unwrap().to_owned()
    };
    assert_eq!(kid_of(&new), new_kid.to_string());
    assert_ne!(kid_of(&old), kid_of(&new));
    // Both verify until the old key is revoked.
    f.validate(&old).await.unwrap();
    f.validate(&new).await.unwrap();
    let old_key: security_core::KeyId = kid_of(&old).parse().unwrap();
    f.authn
        .revoke_signing_key(f.tenant(), old_key)
        .await
        .unwrap();
    assert_eq!(f.validate(&old).await.unwrap_err(), TokenError::RevokedKey);
    f.validate(&new).await.unwrap();
    // 30 minutes (plus the 60 s leeway) later the access token has expired.
    f.advance(30 * 60 + 59);
    f.validate(&new).await.unwrap();
    f.advance(1);
    assert_eq!(f.validate(&new).await.unwrap_err(), TokenError::Expired);
}

#[tokio::test]
async fn another_instance_validates_after_looking_the_key_up() {
    let f = Fixture::new().await;
    f.user("alice").await;
    let tokens = f.tokens("alice").await;
    let other = f.second_instance(AuthnConfig::default());
    // Its synchronous validator has never seen the key…
    assert_eq!(
        other
            .validator()
            .validate(tokens.access_token.expose_secret())
            .unwrap_err(),
        TokenError::UnknownKey
    );
    // …the service looks it up in the key store, then both know it.
    other
        .validate_access_token(tokens.access_token.expose_secret())
        .await
        .unwrap();
    other
        .validator()
        .validate(tokens.access_token.expose_secret())
        .unwrap();
    // A kid that is no key, or a key of another purpose, stays unknown.
    let forged = forge_header(
        tokens.access_token.expose_secret(),
        &serde_json::json!({
            "alg": "EdDSA", "typ": "at+jwt", "kid": uuid::Uuid::from_u128(5).to_string()
        }),
    );
    assert_eq!(
        other.validate_access_token(&forged).await.unwrap_err(),
        TokenError::UnknownKey
    );
    // A revocation made by the first instance reaches the second through
    // the event stream: its own supervised projection applies it.
    f.authn.logout(&tokens.refresh_token).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match other
            .validator()
            .validate(tokens.access_token.expose_secret())
        {
            Err(TokenError::Revoked) => break,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            other => panic!("the logout never reached the other instance: {other:?}"),
        }
    }
    let health = other.revocation_health().await;
    assert!(health.live, "{health:?}");
    assert_eq!(health.lag, Some(0), "{health:?}");
    // A projection of one's own does the same for any validator.
    let mine = security_authn::JwtValidator::builder(f.clock.clone()).build();
    let mut projection = RevocationProjection::new(Arc::clone(mine.revocations()));
    for event in f
        .store
        .read_global(security_core::Scope::All, GlobalQuery::after(0, 10_000))
        .await
        .unwrap()
    {
        projection.apply(&event).unwrap();
    }
    let claims = other
        .validator()
        .validate_as::<security_core::AccessClaims>(tokens.access_token.expose_secret())
        .unwrap_err();
    assert_eq!(claims, TokenError::Revoked);
    assert!(
        mine.revocations()
            .user_cutoff(
                f.tenant(),
                security_core::UserId::from_uuid(uuid::Uuid::nil())
            )
            .is_none()
    );
}

fn forge_header(token: &str, header: &serde_json::Value) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!(
        "{}.{rest}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap())
    )
}

#[tokio::test]
async fn issued_tokens_resist_algorithm_confusion_and_tampering() {
    let f = Fixture::new().await;
    f.user("alice").await;
    let tokens = f.tokens("alice").await;
    let token = tokens.access_token.expose_secret();
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap();
    let key_id: security_core::KeyId = kid.parse().unwrap();
    let public = f.keys.key(key_id).await.unwrap().public_key.unwrap();
    let public = security_crypto::Ed25519PublicKey::from_public_key(&public).unwrap();
    // HS256 keyed with the public key (raw and as text), alg none: refused.
    let payload = token.split('.').nth(1).unwrap();
    for secret in [
        public.to_bytes().to_vec(),
        public.to_base64url().into_bytes(),
    ] {
        let head = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}))
                .unwrap(),
        );
        let input = format!("{head}.{payload}");
        let tag = security_crypto::hmac_sha256(&secret, input.as_bytes());
        let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag));
        assert_eq!(
            f.authn.validate_access_token(&forged).await.unwrap_err(),
            TokenError::Algorithm
        );
    }
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#)
    );
    assert_eq!(
        f.authn.validate_access_token(&none).await.unwrap_err(),
        TokenError::Algorithm
    );
    // Changing a claim breaks the signature; a JWT of another type is refused.
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["roles"] = serde_json::json!(["super_admin"]);
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    assert_eq!(
        f.authn.validate_access_token(&tampered).await.unwrap_err(),
        TokenError::Signature
    );
    let as_jwt = forge_header(
        token,
        &serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}),
    );
    assert_eq!(
        f.authn.validate_access_token(&as_jwt).await.unwrap_err(),
        TokenError::Header
    );
    // A refresh token is not an access token.
    assert_eq!(
        f.authn
            .validate_access_token(tokens.refresh_token.expose_secret())
            .await
            .unwrap_err(),
        TokenError::Malformed
    );
}

#[tokio::test]
async fn hs256_with_a_configured_secret() {
    let secret_key = "an-hs256-secret-of-at-least-32-bytes!";
    let config =
        AuthnConfig::from_lookup(|name| (name == "JWT_SECRET_KEY").then(|| secret_key.to_owned()))
            .unwrap();
    let f = Fixture::with_config(config.clone()).await;
    f.user("alice").await;
    let tokens = f.tokens("alice").await;
    let token = tokens.access_token.expose_secret();
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "HS256");
    assert!(header["kid"].as_str().unwrap().starts_with("hs256-"));
    f.validate(&tokens).await.unwrap();
    // A bare jsonwebtoken decode with the secret agrees on the signature.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["security"]);
    validation.set_issuer(&["security"]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret_key.as_bytes()),
        &validation,
    )
    .unwrap();
    // Another instance with the same secret validates; one with another does not.
    let same = f.second_instance(config);
    same.validator().validate(token).unwrap();
    let other = f.second_instance(
        AuthnConfig::from_lookup(|name| {
            (name == "JWT_SECRET_KEY").then(|| "another-secret-of-at-least-32-bytes".to_owned())
        })
        .unwrap(),
    );
    assert_eq!(
        other.validator().validate(token).unwrap_err(),
        TokenError::UnknownKey
    );
    // An EdDSA service does not take HS256 tokens.
    let eddsa = f.second_instance(AuthnConfig::default());
    assert_eq!(
        eddsa.validate_access_token(token).await.unwrap_err(),
        TokenError::Algorithm
    );
}

#[tokio::test]
async fn an_admin_lock_or_role_change_revokes_access_tokens_in_this_process_at_once() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    let a = f.tokens("alice").await;
    let b = f.tokens("bob").await;
    f.validate(&a).await.unwrap();
    f.validate(&b).await.unwrap();
    // The admin API of the service: no projection wired by hand, no wait.
    f.authn
        .admin()
        .lock_user(
            &security_core::Request::default(),
            f.tenant(),
            alice,
            "fraud review",
        )
        .await
        .unwrap();
    assert_eq!(
        f.authn
            .validator()
            .validate(a.access_token.expose_secret())
            .unwrap_err(),
        TokenError::Revoked
    );
    f.authn
        .admin()
        .assign_role(
            &security_core::Request::default(),
            f.tenant(),
            bob,
            security_core::RoleName::new("auditor").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        f.authn
            .validator()
            .validate(b.access_token.expose_secret())
            .unwrap_err(),
        TokenError::Revoked
    );
}

#[tokio::test]
async fn a_revocation_in_one_tenant_never_touches_a_user_of_another() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let tokens = f.tokens("alice").await;
    let list = f.authn.validator().revocations().clone();
    // Another tenant revokes "its" user with Alice's id (ids are not
    // secret: it is the `sub` of her tokens).
    let other_tenant = security_core::TenantId::from_uuid(uuid::Uuid::from_u128(77));
    list.revoke_user(other_tenant, alice, f.now(), f.now());
    f.validate(&tokens).await.unwrap();
    list.revoke_user(f.tenant(), alice, f.now(), f.now());
    assert_eq!(f.validate(&tokens).await.unwrap_err(), TokenError::Revoked);
}

#[tokio::test]
async fn another_tenant_cannot_take_a_users_id_and_its_tokens_stay_valid() {
    // A's admin reads the `sub` of B's token and asks the admin API for a
    // user with that id in its own tenant: refused, nothing is written in
    // A, and B's access and refresh tokens keep working.
    let f = Fixture::new().await;
    let victim = f.user("victim").await;
    let tokens = f.tokens("victim").await;
    let claims = f.validate(&tokens).await.unwrap();
    assert_eq!(claims.user_id, victim);
    let tenant_a = f
        .authn
        .admin()
        .create_account(
            &Request::default(),
            f.operator,
            "tenant a",
            security_core::AccountClaims::default(),
        )
        .await
        .unwrap();
    let stolen_id: security_core::UserId = claims.sub.parse().unwrap();
    let impostor = security_core::NewUser {
        username: "impostor".into(),
        credential: security_core::Credential::Token {
            token_hash: "x".into(),
            expires_at: None,
        },
        metadata: std::collections::BTreeMap::new(),
        must_change_password: false,
    };
    let refused = f
        .authn
        .admin()
        .create_user_with_id(&Request::default(), tenant_a, stolen_id, impostor)
        .await
        .unwrap_err();
    assert_eq!(
        refused.rejection(),
        Some(&security_core::DomainError::AlreadyExists { kind: "user" })
    );
    assert!(f.event_types("user", victim).await.len() > 1);
    assert!(
        f.store
            .read_stream(
                &security_core::StreamId::new(tenant_a.tenant(), "user", stolen_id.as_uuid()),
                security_core::StreamQuery::all(),
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        f.authn
            .admin()
            .account(tenant_a)
            .await
            .unwrap()
            .user_count(),
        0
    );
    assert_eq!(f.validate(&tokens).await.unwrap().user_id, victim);
    let refreshed = f
        .authn
        .refresh(&tokens.refresh_token, &client("198.51.100.1"))
        .await
        .unwrap();
    assert_eq!(f.validate(&refreshed).await.unwrap().user_id, victim);
}
