//! Brute force: from one address, and across addresses for one user.

use std::sync::Arc;
use std::time::Duration;

use security_authn::{
    AuthAuditEvent, AuthnError, RateDecision, RateLimit, RateLimitError, RateLimiter, ThrottleScope,
};
use security_core::FailureReason;

use crate::common::{Fixture, PASSWORD, client, secret};

#[tokio::test]
async fn brute_force_from_one_address_is_throttled() {
    let f = Fixture::new().await;
    f.user("alice").await;
    let ip = client("192.0.2.66");
    for i in 0..5 {
        let err = f
            .authn
            .authenticate(
                f.tenant(),
                &format!("user{i}"),
                &secret("guess-Guess-1"),
                &ip,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, AuthnError::InvalidCredentials), "{err:?}");
        f.advance(2);
    }
    let work = f.hasher.work();
    // The sixth in the minute is refused before any hashing, even with
    // the right password, and says when to come back.
    let err = f
        .authn
        .authenticate(f.tenant(), "alice", &secret(PASSWORD), &ip)
        .await
        .unwrap_err();
    let AuthnError::Throttled { retry_after } = err else {
        panic!("{err:?}")
    };
    assert_eq!(retry_after, Duration::from_secs(50));
    assert_eq!(f.hasher.work(), work);
    // Other addresses are not affected.
    f.authn
        .authenticate(
            f.tenant(),
            "alice",
            &secret(PASSWORD),
            &client("192.0.2.67"),
        )
        .await
        .unwrap();
    let audit = f.audit().await;
    let throttled: Vec<_> = audit
        .iter()
        .filter_map(|e| match e {
            AuthAuditEvent::AuthenticationAttemptFailed {
                reason: FailureReason::Throttled,
                throttled,
                retry_after_secs,
                ..
            } => Some((*throttled, *retry_after_secs)),
            _ => None,
        })
        .collect();
    assert_eq!(throttled, vec![(Some(ThrottleScope::Ip), Some(50))]);
    // When the window has slid past, the address may try again.
    f.advance(50);
    f.authn
        .authenticate(f.tenant(), "alice", &secret(PASSWORD), &ip)
        .await
        .unwrap();
}

#[tokio::test]
async fn brute_force_across_addresses_for_one_user_is_throttled_and_locks() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    for i in 0..5 {
        let err = f
            .authn
            .authenticate(
                f.tenant(),
                "alice",
                &secret("guess-Guess-1"),
                &client(&format!("198.18.0.{i}")),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, AuthnError::InvalidCredentials), "{err:?}");
        f.advance(1);
    }
    // Five failures locked the user (an event), which revoked its sessions.
    let types = f.event_types("user", alice).await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "AuthenticationFailed")
            .count(),
        5
    );
    assert!(types.contains(&"UserLocked".to_owned()));
    // A sixth address within the minute is throttled per username…
    let err = f
        .authn
        .authenticate(
            f.tenant(),
            "alice",
            &secret(PASSWORD),
            &client("198.18.0.200"),
        )
        .await
        .unwrap_err();
    let AuthnError::Throttled { retry_after } = err else {
        panic!("{err:?}")
    };
    assert_eq!(retry_after, Duration::from_secs(55));
    // …and once the window has passed, the lock answers, right password or not.
    f.advance(55);
    let err = f
        .authn
        .authenticate(
            f.tenant(),
            "alice",
            &secret(PASSWORD),
            &client("198.18.0.201"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AuthnError::UserLocked { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(244)));
    let audit = f.audit().await;
    assert!(audit.iter().any(|e| matches!(
        e,
        AuthAuditEvent::AuthenticationAttemptFailed {
            throttled: Some(ThrottleScope::User),
            ..
        }
    )));
}

/// A limiter whose backend is down.
#[derive(Debug)]
struct Down;

#[async_trait::async_trait]
impl RateLimiter for Down {
    async fn acquire(
        &self,
        _key: &str,
        _limit: RateLimit,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<RateDecision, RateLimitError> {
        Err(RateLimitError(Box::new(std::io::Error::other(
            "redis down",
        ))))
    }

    async fn reset(&self, _key: &str) -> Result<(), RateLimitError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_rate_limiter_fails_closed() {
    let f = Fixture::new().await;
    f.user("alice").await;
    let authn = security_authn::AuthenticationService::builder(
        f.repo.clone(),
        f.keys.clone(),
        f.hasher.clone(),
        f.clock.clone(),
    )
    .rate_limiter(Arc::new(Down))
    .build()
    .unwrap();
    let err = authn
        .authenticate(f.tenant(), "alice", &secret(PASSWORD), &client("192.0.2.1"))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthnError::RateLimiter(_)), "{err:?}");
    assert!(err.is_infrastructure());
    assert_eq!(err.to_string(), "rate limiter failed");
}
