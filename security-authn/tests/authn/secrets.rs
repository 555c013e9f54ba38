//! Secrets: sealed in stored events, absent from published ones, never in
//! `Debug`, `Display` or error messages.

use secrecy::ExposeSecret;
use security_authn::{AuthnConfig, JwtSigning, LoginOutcome, TotpSecret};
use security_core::{EventStore, GlobalQuery, Request, SEALED_TAG, Scope, contains_sealed};

use crate::common::{Fixture, PASSWORD, client, secret};

#[tokio::test]
async fn secrets_are_sealed_when_stored_and_absent_when_published() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let enrollment = f
        .authn
        .start_totp_enrollment(f.tenant(), alice)
        .await
        .unwrap();
    let base32 = enrollment.secret_base32.expose_secret().to_owned();
    let totp = TotpSecret::from_base32(&base32).unwrap();
    let code = f.authn.config().totp.code_at(&totp, f.now()).unwrap();
    let codes = f
        .authn
        .confirm_totp_enrollment(f.tenant(), alice, &code)
        .await
        .unwrap();
    let typo = "Correct-Horse-Battery-9-typed-as-username";
    f.authn
        .authenticate(f.tenant(), typo, &secret("x"), &client("198.51.100.1"))
        .await
        .unwrap_err();
    f.advance(30);
    let LoginOutcome::MfaRequired(ch) = f.login("alice", PASSWORD).await.unwrap() else {
        panic!()
    };
    f.authn
        .verify_mfa(&ch.challenge, &codes.codes()[0], &client("198.51.100.1"))
        .await
        .unwrap();
    let api_key = f
        .authn
        .issue_api_key(f.tenant(), alice, None)
        .await
        .unwrap();
    let temporary = f
        .authn
        .reset_password(&Request::default(), f.tenant(), alice)
        .await
        .unwrap();

    let mut forbidden: Vec<String> = vec![
        PASSWORD.to_owned(),
        base32.clone(),
        temporary.expose_secret().to_owned(),
        api_key.expose_secret().to_owned(),
        typo.to_owned(),
        "$argon2id".to_owned(),
    ];
    forbidden.extend(codes.codes().iter().map(|c| c.expose_secret().to_owned()));
    forbidden.extend(
        codes
            .codes()
            .iter()
            .map(|c| c.expose_secret().replace('-', "")),
    );

    // Stored: the hash, the TOTP secret, the backup-code hashes and the
    // unknown username are sealed, and nothing appears in clear.
    let stored = f
        .store
        .read_global(Scope::All, GlobalQuery::after(0, 100_000))
        .await
        .unwrap();
    let sealed_types: Vec<&str> = stored
        .iter()
        .filter(|e| contains_sealed(&e.payload))
        .map(|e| &*e.event_type)
        .collect();
    for t in [
        "UserCreated",
        "MfaEnrollmentStarted",
        "BackupCodesGenerated",
        "CredentialsUpdated",
        "AuthenticationAttemptFailed",
    ] {
        assert!(
            sealed_types.contains(&t),
            "{t} should hold a sealed field: {sealed_types:?}"
        );
    }
    let all_stored =
        serde_json::to_string(&stored.iter().map(|e| &*e.payload).collect::<Vec<_>>()).unwrap();
    for secret in &forbidden {
        assert!(
            !all_stored.contains(secret.as_str()),
            "stored events leak {secret}"
        );
    }
    // Published: nothing sealed at all, and the same events otherwise.
    let published = f.publisher.published();
    assert_eq!(
        published.len(),
        stored.len(),
        "every stored event was published"
    );
    let all_published =
        serde_json::to_string(&published.iter().map(|e| &*e.payload).collect::<Vec<_>>()).unwrap();
    assert!(!all_published.contains(SEALED_TAG));
    for e in &published {
        assert!(!contains_sealed(&e.payload), "{}", e.event_type);
    }
    for secret in &forbidden {
        assert!(
            !all_published.contains(secret.as_str()),
            "published events leak {secret}"
        );
    }
    // What was stripped is only the sealed part: the rest is there.
    let created = published
        .iter()
        .find(|e| &*e.event_type == "UserCreated")
        .unwrap();
    assert_eq!(created.payload["username"], "alice");
    assert_eq!(created.payload["credential"]["type"], "password");
    assert!(created.payload["credential"].get("hash").is_none());
}

#[tokio::test]
async fn debug_display_and_errors_never_show_secrets() {
    let f = Fixture::with_config(
        AuthnConfig::from_lookup(|n| {
            (n == "JWT_SECRET_KEY").then(|| "a-very-secret-jwt-key-of-32-bytes-or-more".to_owned())
        })
        .unwrap(),
    )
    .await;
    let alice = f.user("alice").await;
    let tokens = f.tokens("alice").await;
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
    f.advance(30);
    let outcome = f.login("alice", PASSWORD).await.unwrap();
    let LoginOutcome::MfaRequired(challenge) = &outcome else {
        panic!()
    };
    let pk = f
        .authn
        .start_public_key_login(f.tenant(), "alice", &client("198.51.100.2"))
        .await
        .unwrap();
    let temporary = f
        .authn
        .reset_password(&Request::default(), f.tenant(), alice)
        .await
        .unwrap();
    let hs = JwtSigning::hs256(b"a-very-secret-jwt-key-of-32-bytes-or-more".to_vec()).unwrap();

    let rendered = [
        format!("{tokens:?}"),
        format!("{outcome:?}"),
        format!("{enrollment:?}"),
        format!("{codes:?}"),
        format!("{totp:?}"),
        format!("{pk:?}"),
        format!("{hs:?}"),
        format!("{:?}", f.authn.config()),
        format!("{:?}", f.authn),
        format!("{temporary:?}"),
    ]
    .join("\n");
    let mut secrets = vec![
        tokens.access_token.expose_secret().to_owned(),
        tokens.refresh_token.expose_secret().to_owned(),
        enrollment.secret_base32.expose_secret().to_owned(),
        enrollment.otpauth_uri.expose_secret().to_owned(),
        challenge.challenge.expose_secret().to_owned(),
        pk.challenge.expose_secret().to_owned(),
        temporary.expose_secret().to_owned(),
        "a-very-secret-jwt-key".to_owned(),
    ];
    secrets.extend(codes.codes().iter().map(|c| c.expose_secret().to_owned()));
    for s in &secrets {
        assert!(
            !rendered.contains(s.as_str()),
            "Debug leaks {s}:\n{rendered}"
        );
    }
    // Errors name no secret either.
    let err = f
        .authn
        .refresh(&secret("sec_rt_whatever-secret"), &client("198.51.100.1"))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("whatever-secret"));
    let err = f
        .authn
        .complete_password_change(
            &secret("sec_pwc_x"),
            &secret("weak"),
            &client("198.51.100.1"),
        )
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("weak"));
}
