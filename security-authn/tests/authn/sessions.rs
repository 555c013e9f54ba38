//! Sessions end with the credential that opened them, never outlive their
//! absolute lifetime, and recognise every token they issued.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use security_authn::{AuthnConfig, AuthnError, SessionEvent};
use security_core::TokenError;

use crate::common::{Fixture, client};

#[tokio::test]
async fn revoking_or_replacing_an_api_key_ends_the_sessions_it_opened() {
    // Before, a session opened with an API key kept refreshing after the
    // key was revoked, and so forever. Now the key's sessions die with it;
    // a session opened with the password lives on.
    let f = Fixture::new().await;
    let user = f.user("svc").await;
    let c = client("198.51.100.1");
    for replace in [false, true] {
        let key = f.authn.issue_api_key(f.tenant(), user, None).await.unwrap();
        let by_key = f.authn.authenticate_api_key(&key, &c).await.unwrap();
        let by_password = f.tokens("svc").await;
        f.advance(5);
        let by_key = f.authn.refresh(&by_key.refresh_token, &c).await.unwrap();
        f.advance(5);
        if replace {
            f.authn.issue_api_key(f.tenant(), user, None).await.unwrap();
        } else {
            f.authn.revoke_api_key(f.tenant(), user).await.unwrap();
        }
        // The key's access token stops at once; its refresh token too.
        assert_eq!(f.validate(&by_key).await.unwrap_err(), TokenError::Revoked);
        f.advance(5);
        assert!(
            matches!(
                f.authn.refresh(&by_key.refresh_token, &c).await,
                Err(AuthnError::SessionRevoked)
            ),
            "replace: {replace}"
        );
        let events: Vec<SessionEvent> = f
            .stream("session", by_key.session_id)
            .await
            .iter()
            .map(|e| e.decode().unwrap())
            .collect();
        assert!(matches!(
            events.last(),
            Some(SessionEvent::SessionRevoked { .. })
        ));
        // The password session refreshes (its next access token is good).
        let renewed = f
            .authn
            .refresh(&by_password.refresh_token, &c)
            .await
            .unwrap();
        assert_eq!(f.validate(&renewed).await.unwrap().user_id, user);
        // Another instance of the application, reading the same store,
        // refuses the key's session too.
        let other = f.second_instance(AuthnConfig::default());
        assert!(matches!(
            other.refresh(&by_key.refresh_token, &c).await,
            Err(AuthnError::SessionRevoked)
        ));
        f.advance(60);
    }
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_expiry_however_often_it_refreshes() {
    let config = AuthnConfig {
        refresh_token_ttl: Duration::from_secs(2 * 86_400),
        session_max_lifetime: Duration::from_secs(3 * 86_400),
        ..AuthnConfig::default()
    };
    let f = Fixture::with_config(config).await;
    f.user("alice").await;
    let c = client("198.51.100.1");
    let first = f.tokens("alice").await;
    let end = f.now() + chrono::Duration::days(3);
    assert_eq!(
        first.refresh_expires_at,
        f.now() + chrono::Duration::days(2)
    );
    let mut tokens = first;
    for _ in 0..2 {
        f.advance(86_400);
        tokens = f.authn.refresh(&tokens.refresh_token, &c).await.unwrap();
        assert!(tokens.refresh_expires_at <= end);
    }
    assert_eq!(tokens.refresh_expires_at, end);
    f.advance(86_400);
    assert!(matches!(
        f.authn.refresh(&tokens.refresh_token, &c).await,
        Err(AuthnError::InvalidRefreshToken)
    ));
}

#[tokio::test]
async fn reuse_is_detected_for_any_old_generation_and_cannot_be_forged() {
    let f = Fixture::new().await;
    f.user("alice").await;
    let c = client("198.51.100.1");
    let mut tokens = vec![f.tokens("alice").await];
    for _ in 0..40 {
        f.advance(1);
        let next = f
            .authn
            .refresh(&tokens.last().unwrap().refresh_token, &c)
            .await
            .unwrap();
        tokens.push(next);
    }
    // A forged token of an old generation (someone who knows the session
    // id but not its seed) is just invalid: the session lives on.
    let genuine = tokens[3].refresh_token.expose_secret().to_owned();
    let mut raw = URL_SAFE_NO_PAD
        .decode(genuine.strip_prefix("sec_rt_").unwrap())
        .unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let forged = SecretString::from(format!("sec_rt_{}", URL_SAFE_NO_PAD.encode(&raw)));
    assert!(matches!(
        f.authn.refresh(&forged, &c).await,
        Err(AuthnError::InvalidRefreshToken)
    ));
    // A token of a generation not issued yet is invalid as well.
    let mut ahead = URL_SAFE_NO_PAD
        .decode(genuine.strip_prefix("sec_rt_").unwrap())
        .unwrap();
    ahead[32..36].copy_from_slice(&1000_u32.to_be_bytes());
    let ahead = SecretString::from(format!("sec_rt_{}", URL_SAFE_NO_PAD.encode(&ahead)));
    assert!(matches!(
        f.authn.refresh(&ahead, &c).await,
        Err(AuthnError::InvalidRefreshToken)
    ));
    // Another instance, which has never seen the session, loads it from its
    // snapshot (one is written every 32 events) and the events after it.
    let other = f.second_instance(AuthnConfig::default());
    let current = tokens.last().unwrap();
    let still = other.refresh(&current.refresh_token, &c).await.unwrap();

    // The genuine token of generation 3, presented again: the family dies.
    assert!(matches!(
        f.authn.refresh(&tokens[3].refresh_token, &c).await,
        Err(AuthnError::RefreshTokenReused)
    ));
    assert!(matches!(
        f.authn.refresh(&still.refresh_token, &c).await,
        Err(AuthnError::SessionRevoked)
    ));
    let events: Vec<SessionEvent> = f
        .stream("session", still.session_id)
        .await
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    assert!(events.iter().any(|e| matches!(
        e,
        SessionEvent::RefreshTokenReuseDetected {
            presented_generation: 3,
            current_generation: 41,
            ..
        }
    )));
    // No event holds a token or anything a token could be checked
    // against in clear: the seed is sealed.
    for stored in f.stream("session", still.session_id).await {
        let payload = stored.payload.to_string();
        assert!(!payload.contains(still.refresh_token.expose_secret()));
        if &*stored.event_type == "SessionStarted" {
            assert!(payload.contains("$sealed"), "{payload}");
        }
    }
}
