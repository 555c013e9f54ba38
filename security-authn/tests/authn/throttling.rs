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

#[tokio::test]
async fn an_ipv6_host_is_throttled_by_its_prefix() {
    let f = Fixture::new().await;
    // One host holds a whole /64: every address in it counts as one.
    for i in 0..5 {
        let ip = client(&format!("2001:db8:1:2::{:x}", i + 1));
        let err = f
            .authn
            .authenticate(f.tenant(), &format!("name-{i}"), &secret("x"), &ip)
            .await
            .unwrap_err();
        assert!(matches!(err, AuthnError::InvalidCredentials), "{err:?}");
    }
    let err = f
        .authn
        .authenticate(
            f.tenant(),
            "name-9",
            &secret("x"),
            &client("2001:db8:1:2:ffff::9"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AuthnError::Throttled { .. }), "{err:?}");
    // Another /64 is another client; an IPv4-mapped address is its IPv4.
    let err = f
        .authn
        .authenticate(
            f.tenant(),
            "name-10",
            &secret("x"),
            &client("2001:db8:1:3::1"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AuthnError::InvalidCredentials), "{err:?}");
    for i in 0..5 {
        f.authn
            .authenticate(
                f.tenant(),
                &format!("v4-{i}"),
                &secret("x"),
                &client("192.0.2.200"),
            )
            .await
            .unwrap_err();
    }
    let err = f
        .authn
        .authenticate(
            f.tenant(),
            "v4-9",
            &secret("x"),
            &client("::ffff:192.0.2.200"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AuthnError::Throttled { .. }), "{err:?}");
}

#[tokio::test]
async fn a_flood_of_public_key_starts_stores_nothing_and_quotas_keep_tenants_apart() {
    let challenges = Arc::new(security_authn::MemoryChallengeStore::new());
    let config = security_authn::AuthnConfig {
        login_rate: RateLimit::per_minute(1_000_000),
        challenge_quota: security_core::ChallengeQuota {
            per_user: 3,
            per_tenant: 5,
        },
        ..security_authn::AuthnConfig::default()
    };
    let f = Fixture::with_challenges(config, challenges.clone()).await;
    f.user("alice").await;
    f.user("bob").await;
    // Ten thousand starts for made-up usernames from one network store
    // nothing.
    for i in 0..10_000 {
        f.authn
            .start_public_key_login(f.tenant(), &format!("ghost-{i}"), &client("2001:db8::1"))
            .await
            .unwrap();
    }
    assert_eq!(challenges.pending(), 0);
    // A real user's starts are bounded per user…
    for _ in 0..3 {
        f.authn
            .start_public_key_login(f.tenant(), "alice", &client("198.51.100.3"))
            .await
            .unwrap();
    }
    let err = f
        .authn
        .start_public_key_login(f.tenant(), "alice", &client("198.51.100.3"))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthnError::Throttled { .. }), "{err:?}");
    // …and per tenant, while other users still get theirs up to it.
    for _ in 0..2 {
        f.authn
            .start_public_key_login(f.tenant(), "bob", &client("198.51.100.4"))
            .await
            .unwrap();
    }
    assert!(
        f.authn
            .start_public_key_login(f.tenant(), "bob", &client("198.51.100.4"))
            .await
            .is_err()
    );
    assert_eq!(challenges.pending(), 5);
    // Expired challenges free the quota.
    f.advance(301);
    f.authn
        .start_public_key_login(f.tenant(), "bob", &client("198.51.100.4"))
        .await
        .unwrap();
}
