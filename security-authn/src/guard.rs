//! The verification budget in front of every password check that counts
//! towards a lockout (see [`AttemptLedger`](security_core::AttemptLedger)).
//!
//! Before a password is verified, a lease is taken in the shared ledger;
//! failures since the last success plus leases in flight stay below the
//! lockout limit, so simultaneous guesses on any replicas cost at most
//! `max_failures` verifications before the lock. A request that finds the
//! budget full waits for the verifications in flight (a right password
//! still gets in under heavy concurrency); when none is in flight, the
//! failures alone filled it, and the user's stream says whether it is
//! locked (or the ledger fell behind and is set from the stream).

use std::time::Duration;

use chrono::{DateTime, Utc};
use security_core::{
    AttemptOutcome, AttemptPolicy, LeaseId, Reservation, TenantId, User, UserId, UserStatus,
};

use crate::error::AuthnError;
use crate::service::AuthenticationService;

/// What the budget allows.
pub(crate) enum Gate {
    /// Verify, then settle this lease. `waited`: other verifications were
    /// in flight first (what they recorded may change the user).
    Lease(LeaseId, bool),
    /// Locked (until then, if the lock lifts by itself): answer as locked.
    Locked(Option<DateTime<Utc>>),
}

/// The first wait when the budget is full; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_millis(100);

/// The ledger key of a user's budget.
pub(crate) fn user_key(tenant: TenantId, user_id: UserId) -> String {
    format!("authn:user:{tenant}:{user_id}")
}

/// The ledger key of a username that matches no user. It holds a hash of
/// the name, not the name (a "username" may be a password typed in the
/// wrong field).
pub(crate) fn name_key(tenant: TenantId, folded: &str) -> String {
    let digest = security_crypto::sha256(folded.as_bytes());
    let mut key = format!("authn:name:{tenant}:");
    for b in &digest[..16] {
        use std::fmt::Write as _;
        let _ = write!(key, "{b:02x}");
    }
    key
}

impl AuthenticationService {
    /// The budget of a real user (its lock lives in its stream) or of an
    /// unknown username (locked in the ledger, with the same policy).
    pub(crate) fn attempt_policy(&self, unknown_name: bool) -> AttemptPolicy {
        let config = &self.inner.config;
        AttemptPolicy {
            max_failures: config.lockout.max_failures.max(1),
            lease_ttl: config.attempt_lease_ttl,
            lockout: unknown_name.then_some(config.lockout),
        }
    }

    /// Waits for a lease on one verification under `key`. `user` names the
    /// real user behind the key, whose stream decides whether a full
    /// budget with nothing in flight means a lock.
    pub(crate) async fn gate(
        &self,
        key: &str,
        policy: &AttemptPolicy,
        user: Option<(TenantId, UserId)>,
    ) -> Result<Gate, AuthnError> {
        let deadline = tokio::time::Instant::now() + self.inner.config.attempt_wait;
        let mut poll = FIRST_POLL;
        let mut waited = false;
        loop {
            let now = self.now();
            match self
                .inner
                .attempts
                .reserve(key, policy, now)
                .await
                .map_err(AuthnError::Attempts)?
            {
                Reservation::Granted(lease) => return Ok(Gate::Lease(lease, waited)),
                Reservation::Locked { until } => return Ok(Gate::Locked(Some(until))),
                Reservation::Busy { in_flight: 0 } => {
                    let failures = match user {
                        Some((tenant, user_id)) => match self.user(tenant, user_id).await? {
                            Some(user) if user.is_locked_at(now) => {
                                return Ok(Gate::Locked(lock_end(&user)));
                            }
                            Some(user) => user.consecutive_failures,
                            None => 0,
                        },
                        None => 0,
                    };
                    // The ledger is ahead of the stream (a lock expired, an
                    // admin unlocked): take the stream's count, leaving
                    // room for one verification.
                    let failures = failures.min(policy.max_failures.saturating_sub(1));
                    self.inner
                        .attempts
                        .resync(key, failures, now)
                        .await
                        .map_err(AuthnError::Attempts)?;
                }
                Reservation::Busy { .. } => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(AuthnError::Throttled {
                            retry_after: Duration::from_secs(1),
                        });
                    }
                    tokio::time::sleep(jitter(poll)).await;
                    poll = (poll * 2).min(MAX_POLL);
                    waited = true;
                }
            }
        }
    }

    /// Settles a lease; returns when the key's ledger lock ends, if it is
    /// locked now.
    pub(crate) async fn settle(
        &self,
        key: &str,
        lease: LeaseId,
        outcome: AttemptOutcome,
        policy: &AttemptPolicy,
    ) -> Result<Option<DateTime<Utc>>, AuthnError> {
        self.inner
            .attempts
            .settle(key, lease, outcome, policy, self.now())
            .await
            .map_err(AuthnError::Attempts)
    }
}

/// When a user's lock ends (`None`: only an unlock ends it).
pub(crate) fn lock_end(user: &User) -> Option<DateTime<Utc>> {
    match &user.status {
        UserStatus::Locked { until, .. } => *until,
        _ => None,
    }
}

/// `base` plus up to half of it again, so waiters on many replicas do not
/// poll in step.
fn jitter(base: Duration) -> Duration {
    let byte = security_crypto::random_bytes::<1>().map_or(0, |b| b[0]);
    base + base.mul_f64(f64::from(byte) / 512.0)
}
