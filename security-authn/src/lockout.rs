//! Lockouts for usernames that match no user.
//!
//! A real user locks after `max_failures` consecutive failures (the User
//! aggregate does it). If unknown usernames never locked, an attacker could
//! tell real usernames apart by failing a few times and watching for the
//! lock. So an unknown username "locks" the same way, in memory, with the
//! same policy and the same growing lengths, and answers the same
//! `UserLocked` with the same `retry_after`.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use security_core::{LockoutPolicy, TenantId};

/// The most usernames tracked; past it, the idle ones are dropped.
const MAX_TRACKED: usize = 100_000;

#[derive(Default, Clone, Copy)]
struct Phantom {
    failures: u32,
    lockouts: u32,
    locked_until: Option<DateTime<Utc>>,
    last_seen: Option<DateTime<Utc>>,
}

pub(crate) struct PhantomLockouts {
    policy: LockoutPolicy,
    map: Mutex<HashMap<(TenantId, String), Phantom>>,
}

impl std::fmt::Debug for PhantomLockouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhantomLockouts").finish_non_exhaustive()
    }
}

impl PhantomLockouts {
    pub(crate) fn new(policy: LockoutPolicy) -> Self {
        Self {
            policy,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TenantId, String), Phantom>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When the username's lock lifts, if it is locked at `now`.
    pub(crate) fn locked_until(
        &self,
        tenant: TenantId,
        folded: &str,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.lock()
            .get(&(tenant, folded.to_owned()))
            .and_then(|p| p.locked_until)
            .filter(|until| now < *until)
    }

    /// Records a failure, as `RecordAuthenticationFailure` does for a real
    /// user: failures count during a lock too, and reaching the limit while
    /// not locked locks for the policy's growing length.
    pub(crate) fn record_failure(&self, tenant: TenantId, folded: &str, now: DateTime<Utc>) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            let horizon = now
                - chrono::Duration::seconds(
                    i64::try_from(self.policy.max_lock_secs)
                        .unwrap_or(i64::MAX)
                        .min(86_400 * 365),
                );
            map.retain(|_, p| {
                p.locked_until.is_some_and(|u| u > now) || p.last_seen.is_some_and(|s| s > horizon)
            });
        }
        let entry = map.entry((tenant, folded.to_owned())).or_default();
        entry.failures = entry.failures.saturating_add(1);
        entry.last_seen = Some(now);
        let locked = entry.locked_until.is_some_and(|u| now < u);
        if entry.failures >= self.policy.max_failures && !locked {
            entry.locked_until = Some(now + self.policy.lock_duration(entry.lockouts));
            entry.lockouts = entry.lockouts.saturating_add(1);
            entry.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn mirrors_the_user_lockout() {
        let policy = LockoutPolicy {
            max_failures: 3,
            base_lock_secs: 60,
            max_lock_secs: 600,
        };
        let p = PhantomLockouts::new(policy);
        let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(1));
        for _ in 0..2 {
            p.record_failure(tenant, "ghost", t);
        }
        assert_eq!(p.locked_until(tenant, "ghost", t), None);
        p.record_failure(tenant, "ghost", t);
        assert_eq!(
            p.locked_until(tenant, "ghost", t),
            Some(t + chrono::Duration::seconds(60))
        );
        let later = t + chrono::Duration::seconds(61);
        assert_eq!(p.locked_until(tenant, "ghost", later), None);
        for _ in 0..3 {
            p.record_failure(tenant, "ghost", later);
        }
        // The second lock is twice as long.
        assert_eq!(
            p.locked_until(tenant, "ghost", later),
            Some(later + chrono::Duration::seconds(120))
        );
        assert_eq!(p.locked_until(tenant, "other", later), None);
    }
}
