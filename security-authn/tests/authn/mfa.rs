//! TOTP enrolment and MFA logins: replay, backup codes, throttling,
//! challenges, interop with oathtool.

use secrecy::{ExposeSecret, SecretString};
use security_authn::{AuthnError, LoginOutcome, MfaChallenge, TotpSecret};
use security_core::{MfaProof, UserEvent, UserId};

use crate::common::{Fixture, PASSWORD, client, secret};
use crate::totp_vectors::oathtool;

/// Enrols alice and returns her secret and backup codes.
async fn enrolled(f: &Fixture) -> (UserId, TotpSecret, Vec<SecretString>) {
    let alice = f.user("alice").await;
    let enrollment = f
        .authn
        .start_totp_enrollment(f.tenant(), alice)
        .await
        .unwrap();
    let totp = TotpSecret::from_base32(enrollment.secret_base32.expose_secret()).unwrap();
    let code = f.authn.config().totp.code_at(&totp, f.now()).unwrap();
    let codes = f
        .authn
        .confirm_totp_enrollment(f.tenant(), alice, &code)
        .await
        .unwrap();
    (alice, totp, codes.codes().to_vec())
}

async fn challenge(f: &Fixture) -> MfaChallenge {
    match f.login("alice", PASSWORD).await.unwrap() {
        LoginOutcome::MfaRequired(challenge) => challenge,
        other => panic!("expected an MFA challenge, got {other:?}"),
    }
}

fn now_code(f: &Fixture, totp: &TotpSecret) -> SecretString {
    f.authn.config().totp.code_at(totp, f.now()).unwrap()
}

#[tokio::test]
async fn enrolment_needs_a_first_valid_code() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let enrollment = f
        .authn
        .start_totp_enrollment(f.tenant(), alice)
        .await
        .unwrap();
    assert!(
        enrollment
            .otpauth_uri
            .expose_secret()
            .starts_with("otpauth://totp/UltraCore:alice?")
    );
    assert!(enrollment.qr_svg.expose_secret().contains("<svg"));
    // Not enabled yet: the password alone logs in.
    f.tokens("alice").await;
    assert!(matches!(
        f.authn
            .confirm_totp_enrollment(f.tenant(), alice, &secret("000000"))
            .await,
        Err(AuthnError::InvalidMfaCode)
    ));
    let totp = TotpSecret::from_base32(enrollment.secret_base32.expose_secret()).unwrap();
    let codes = f
        .authn
        .confirm_totp_enrollment(f.tenant(), alice, &now_code(&f, &totp))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        f.authn
            .backup_codes_remaining(f.tenant(), alice)
            .await
            .unwrap(),
        10
    );
    assert!(matches!(
        f.login("alice", PASSWORD).await.unwrap(),
        LoginOutcome::MfaRequired(_)
    ));
    // Enrolling twice needs a disable first; then it starts over.
    assert!(matches!(
        f.authn.start_totp_enrollment(f.tenant(), alice).await,
        Err(AuthnError::Rejected(_))
    ));
    f.authn.disable_mfa(f.tenant(), alice).await.unwrap();
    assert_eq!(
        f.authn
            .backup_codes_remaining(f.tenant(), alice)
            .await
            .unwrap(),
        0
    );
    f.advance(1);
    f.tokens("alice").await;
    let again = f
        .authn
        .start_totp_enrollment(f.tenant(), alice)
        .await
        .unwrap();
    assert_ne!(
        again.secret_base32.expose_secret(),
        enrollment.secret_base32.expose_secret()
    );
    let types = f.event_types("user", alice).await;
    for t in [
        "MfaEnrollmentStarted",
        "MfaEnrollmentConfirmed",
        "BackupCodesGenerated",
        "MfaDisabled",
    ] {
        assert!(types.contains(&t.to_owned()), "{t}: {types:?}");
    }
}

#[tokio::test]
async fn a_totp_code_is_accepted_once() {
    // More MFA attempts per minute than the default 3, to try them all.
    let f = Fixture::with_config(security_authn::AuthnConfig {
        mfa_rate: security_authn::RateLimit::per_minute(10),
        ..Default::default()
    })
    .await;
    let (alice, totp, _) = enrolled(&f).await;
    let c = client("198.51.100.1");
    // The code that confirmed the enrolment is used up already.
    let ch = challenge(&f).await;
    assert!(matches!(
        f.authn
            .verify_mfa(&ch.challenge, &now_code(&f, &totp), &c)
            .await,
        Err(AuthnError::InvalidMfaCode)
    ));
    f.advance(30);
    let code = now_code(&f, &totp);
    let LoginOutcome::Authenticated(tokens) =
        f.authn.verify_mfa(&ch.challenge, &code, &c).await.unwrap()
    else {
        panic!("expected tokens")
    };
    f.validate(&tokens).await.unwrap();
    // Replaying the same code in a new login is refused, within its window.
    let ch = challenge(&f).await;
    assert!(matches!(
        f.authn.verify_mfa(&ch.challenge, &code, &c).await,
        Err(AuthnError::InvalidMfaCode)
    ));
    // A code of the previous step (inside the skew) is older: refused too.
    let older = f
        .authn
        .config()
        .totp
        .code_at(&totp, f.now() - chrono::Duration::seconds(30))
        .unwrap();
    assert!(matches!(
        f.authn.verify_mfa(&ch.challenge, &older, &c).await,
        Err(AuthnError::InvalidMfaCode)
    ));
    f.advance(30);
    f.authn
        .verify_mfa(&ch.challenge, &now_code(&f, &totp), &c)
        .await
        .unwrap();
    let events: Vec<UserEvent> = f
        .stream("user", alice)
        .await
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    let verified = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                UserEvent::MfaVerified {
                    proof: MfaProof::Totp { .. },
                    ..
                }
            )
        })
        .count();
    let failed = events
        .iter()
        .filter(|e| matches!(e, UserEvent::MfaFailed { .. }))
        .count();
    assert_eq!((verified, failed), (2, 3));
    let audit = f.audit().await;
    assert_eq!(
        audit
            .iter()
            .filter(|e| matches!(e, security_authn::AuthAuditEvent::MfaChallenged { .. }))
            .count(),
        2
    );
}

#[tokio::test]
async fn backup_codes_work_once_and_can_be_regenerated() {
    let f = Fixture::new().await;
    let (alice, _, codes) = enrolled(&f).await;
    let c = client("198.51.100.1");
    let ch = challenge(&f).await;
    // Typed in lower case with spaces: still the code.
    let typed = secret(&codes[3].expose_secret().to_lowercase().replace('-', " "));
    let outcome = f.authn.verify_mfa(&ch.challenge, &typed, &c).await.unwrap();
    assert!(matches!(outcome, LoginOutcome::Authenticated(_)));
    assert_eq!(
        f.authn
            .backup_codes_remaining(f.tenant(), alice)
            .await
            .unwrap(),
        9
    );
    let events: Vec<UserEvent> = f
        .stream("user", alice)
        .await
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    assert!(events.iter().any(|e| matches!(
        e,
        UserEvent::BackupCodeUsed {
            index: 3,
            remaining: 9,
            ..
        }
    )));
    let ch = challenge(&f).await;
    assert!(matches!(
        f.authn.verify_mfa(&ch.challenge, &codes[3], &c).await,
        Err(AuthnError::InvalidMfaCode)
    ));
    f.authn
        .verify_mfa(&ch.challenge, &codes[4], &c)
        .await
        .unwrap();
    let fresh = f
        .authn
        .regenerate_backup_codes(f.tenant(), alice)
        .await
        .unwrap();
    assert_eq!(fresh.len(), 10);
    assert_eq!(
        f.authn
            .backup_codes_remaining(f.tenant(), alice)
            .await
            .unwrap(),
        10
    );
    f.advance(60);
    let ch = challenge(&f).await;
    assert!(matches!(
        f.authn.verify_mfa(&ch.challenge, &codes[5], &c).await,
        Err(AuthnError::InvalidMfaCode)
    ));
    f.authn
        .verify_mfa(&ch.challenge, &fresh.codes()[0], &c)
        .await
        .unwrap();
}

#[tokio::test]
async fn mfa_is_throttled_and_a_challenge_allows_few_tries() {
    let f = Fixture::new().await;
    let (_, totp, _) = enrolled(&f).await;
    let c = client("198.51.100.1");
    let ch = challenge(&f).await;
    for _ in 0..3 {
        assert!(matches!(
            f.authn
                .verify_mfa(&ch.challenge, &secret("123456"), &c)
                .await,
            Err(AuthnError::InvalidMfaCode)
        ));
    }
    // Three wrong codes used the challenge up.
    assert!(matches!(
        f.authn
            .verify_mfa(&ch.challenge, &now_code(&f, &totp), &c)
            .await,
        Err(AuthnError::InvalidChallenge)
    ));
    // And MFA allows 3 attempts a minute: a new challenge waits.
    let ch = challenge(&f).await;
    let err = f
        .authn
        .verify_mfa(&ch.challenge, &now_code(&f, &totp), &c)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthnError::Throttled { .. }), "{err:?}");
    assert!(err.retry_after().is_some());
    f.advance(61);
    f.authn
        .verify_mfa(&ch.challenge, &now_code(&f, &totp), &c)
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_codes_lock_the_user() {
    let f = Fixture::new().await;
    let (alice, totp, _) = enrolled(&f).await;
    let c = client("198.51.100.1");
    for _ in 0..5 {
        f.advance(21);
        let ch = challenge(&f).await;
        assert!(matches!(
            f.authn
                .verify_mfa(&ch.challenge, &secret("000000"), &c)
                .await,
            Err(AuthnError::InvalidMfaCode)
        ));
    }
    let types = f.event_types("user", alice).await;
    assert!(types.contains(&"UserLocked".to_owned()), "{types:?}");
    f.advance(61);
    assert!(matches!(
        f.login("alice", PASSWORD).await,
        Err(AuthnError::UserLocked { .. })
    ));
    // Even the right code does not get through a locked user's challenge.
    f.advance(239);
    let ch = challenge(&f).await;
    f.authn
        .admin()
        .lock_user(
            &security_core::Request::default(),
            f.tenant(),
            alice,
            "fraud",
        )
        .await
        .unwrap();
    assert!(matches!(
        f.authn
            .verify_mfa(&ch.challenge, &now_code(&f, &totp), &c)
            .await,
        Err(AuthnError::UserLocked { retry_after: None })
    ));
}

#[tokio::test]
async fn a_challenge_expires_and_is_single_use() {
    let f = Fixture::new().await;
    let (_, totp, _) = enrolled(&f).await;
    let c = client("198.51.100.1");
    let ch = challenge(&f).await;
    assert_eq!(ch.expires_at, f.now() + chrono::Duration::minutes(5));
    f.advance(301);
    assert!(matches!(
        f.authn
            .verify_mfa(&ch.challenge, &now_code(&f, &totp), &c)
            .await,
        Err(AuthnError::InvalidChallenge)
    ));
    let ch = challenge(&f).await;
    f.authn
        .verify_mfa(&ch.challenge, &now_code(&f, &totp), &c)
        .await
        .unwrap();
    f.advance(30);
    assert!(matches!(
        f.authn
            .verify_mfa(&ch.challenge, &now_code(&f, &totp), &c)
            .await,
        Err(AuthnError::InvalidChallenge)
    ));
    assert!(matches!(
        f.authn
            .verify_mfa(&secret("sec_mfa_forged"), &now_code(&f, &totp), &c)
            .await,
        Err(AuthnError::InvalidChallenge)
    ));
}

#[tokio::test]
async fn codes_from_oathtool_enrol_and_log_in() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let enrollment = f
        .authn
        .start_totp_enrollment(f.tenant(), alice)
        .await
        .unwrap();
    let base32 = enrollment.secret_base32.expose_secret();
    let code = oathtool(base32, f.now().timestamp());
    f.authn
        .confirm_totp_enrollment(f.tenant(), alice, &secret(&code))
        .await
        .unwrap();
    f.advance(45);
    let ch = challenge(&f).await;
    let code = oathtool(base32, f.now().timestamp());
    let outcome = f
        .authn
        .verify_mfa(&ch.challenge, &secret(&code), &client("198.51.100.1"))
        .await
        .unwrap();
    assert!(matches!(outcome, LoginOutcome::Authenticated(_)));
}

#[tokio::test]
async fn mfa_comes_before_a_forced_password_change() {
    let f = Fixture::new().await;
    let (alice, totp, _) = enrolled(&f).await;
    let temporary = f
        .authn
        .reset_password(&security_core::Request::default(), f.tenant(), alice)
        .await
        .unwrap();
    f.advance(30);
    let LoginOutcome::MfaRequired(ch) = f.login("alice", temporary.expose_secret()).await.unwrap()
    else {
        panic!("MFA first")
    };
    let c = client("198.51.100.1");
    let LoginOutcome::PasswordChangeRequired(ticket) = f
        .authn
        .verify_mfa(&ch.challenge, &now_code(&f, &totp), &c)
        .await
        .unwrap()
    else {
        panic!("then the password change")
    };
    let tokens = f
        .authn
        .complete_password_change(&ticket.ticket, &secret("Totally-New-Secret-7"), &c)
        .await
        .unwrap();
    f.validate(&tokens).await.unwrap();
    let events: Vec<UserEvent> = f
        .stream("user", alice)
        .await
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    assert!(matches!(
        events.last().unwrap(),
        UserEvent::UserAuthenticated {
            method: security_core::AuthMethod::PasswordTotp,
            ..
        }
    ));
}
