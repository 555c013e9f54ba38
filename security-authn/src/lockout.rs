//! The in-memory [`AttemptLedger`]: verification budgets and the lockouts
//! of unknown usernames, exact inside one process. Several replicas share
//! one in Redis or PostgreSQL instead (`security-eventstore`).
//!
//! This is the reference implementation of the contract documented on
//! [`AttemptLedger`]; the shared ones do the same arithmetic in one atomic
//! step of their backend.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use security_core::{
    AttemptLedger, AttemptLedgerError, AttemptOutcome, AttemptPolicy, LeaseId, Reservation,
};
use uuid::Uuid;

/// Past this many keys, a reservation first drops the idle ones.
const SWEEP_ABOVE: usize = 100_000;

#[derive(Default, Clone)]
struct Entry {
    failures: u32,
    leases: Vec<(LeaseId, DateTime<Utc>)>,
    locked_until: Option<DateTime<Utc>>,
    level: u32,
    last_lock_until: Option<DateTime<Utc>>,
}

impl Entry {
    fn drop_expired(&mut self, now: DateTime<Utc>) {
        self.leases.retain(|(_, expires)| *expires > now);
    }

    fn idle(&self, now: DateTime<Utc>) -> bool {
        self.leases.iter().all(|(_, e)| *e <= now)
            && self.locked_until.is_none_or(|u| u <= now)
            && self.failures == 0
    }
}

/// Per-key budgets in a map.
#[derive(Default)]
pub struct MemoryAttemptLedger {
    map: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for MemoryAttemptLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryAttemptLedger")
            .field("keys", &self.lock().len())
            .finish()
    }
}

impl MemoryAttemptLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn ttl(policy: &AttemptPolicy) -> chrono::Duration {
    chrono::Duration::from_std(policy.lease_ttl).unwrap_or(chrono::Duration::seconds(30))
}

#[async_trait]
impl AttemptLedger for MemoryAttemptLedger {
    async fn reserve(
        &self,
        key: &str,
        policy: &AttemptPolicy,
        now: DateTime<Utc>,
    ) -> Result<Reservation, AttemptLedgerError> {
        let mut map = self.lock();
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, e| !e.idle(now));
        }
        let entry = map.entry(key.to_owned()).or_default();
        entry.drop_expired(now);
        if let Some(until) = entry.locked_until.filter(|u| *u > now) {
            return Ok(Reservation::Locked { until });
        }
        let in_flight = u32::try_from(entry.leases.len()).unwrap_or(u32::MAX);
        if entry.failures.saturating_add(in_flight) >= policy.max_failures {
            return Ok(Reservation::Busy { in_flight });
        }
        let lease = LeaseId(Uuid::now_v7());
        entry.leases.push((lease, now + ttl(policy)));
        Ok(Reservation::Granted(lease))
    }

    async fn settle(
        &self,
        key: &str,
        lease: LeaseId,
        outcome: AttemptOutcome,
        policy: &AttemptPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AttemptLedgerError> {
        let mut map = self.lock();
        let entry = map.entry(key.to_owned()).or_default();
        entry.drop_expired(now);
        let held = entry.leases.iter().any(|(id, _)| *id == lease);
        entry.leases.retain(|(id, _)| *id != lease);
        let locked = entry.locked_until.filter(|u| *u > now);
        if held {
            match outcome {
                AttemptOutcome::Failure => {
                    entry.failures = entry.failures.saturating_add(1);
                    if let Some(lockout) = &policy.lockout
                        && locked.is_none()
                        && entry.failures >= policy.max_failures
                    {
                        let level = lockout.level_at(entry.level, entry.last_lock_until, now);
                        let until = now + lockout.lock_duration(level);
                        entry.locked_until = Some(until);
                        entry.last_lock_until = Some(until);
                        entry.level = level.saturating_add(1);
                        entry.failures = 0;
                    }
                }
                AttemptOutcome::Success => {
                    entry.failures = 0;
                    entry.level = 0;
                }
                AttemptOutcome::Released => {}
            }
        }
        let result = entry.locked_until.filter(|u| *u > now);
        if entry.idle(now) && entry.level == 0 {
            map.remove(key);
        }
        Ok(result)
    }

    async fn resync(
        &self,
        key: &str,
        failures: u32,
        now: DateTime<Utc>,
    ) -> Result<(), AttemptLedgerError> {
        let mut map = self.lock();
        if let Some(entry) = map.get_mut(key) {
            entry.drop_expired(now);
            if entry.leases.is_empty() {
                entry.failures = failures;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;
    use security_core::LockoutPolicy;

    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn policy(lockout: bool) -> AttemptPolicy {
        AttemptPolicy {
            max_failures: 3,
            lease_ttl: Duration::from_secs(10),
            lockout: lockout.then_some(LockoutPolicy {
                max_failures: 3,
                base_lock_secs: 60,
                max_lock_secs: 600,
                escalation_reset_secs: 3600,
            }),
        }
    }

    fn granted(r: Reservation) -> LeaseId {
        match r {
            Reservation::Granted(lease) => lease,
            other => panic!("expected a lease, got {other:?}"),
        }
    }

    #[test]
    fn leases_and_failures_share_the_budget() {
        block_on(async {
            let ledger = MemoryAttemptLedger::new();
            let p = policy(false);
            let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
            let first = granted(ledger.reserve("k", &p, t).await.unwrap());
            let second = granted(ledger.reserve("k", &p, t).await.unwrap());
            ledger
                .settle("k", first, AttemptOutcome::Failure, &p, t)
                .await
                .unwrap();
            let third = granted(ledger.reserve("k", &p, t).await.unwrap());
            // 1 failure + 2 leases: full.
            assert_eq!(
                ledger.reserve("k", &p, t).await.unwrap(),
                Reservation::Busy { in_flight: 2 }
            );
            ledger
                .settle("k", second, AttemptOutcome::Success, &p, t)
                .await
                .unwrap();
            // A success zeroes the failures.
            granted(ledger.reserve("k", &p, t).await.unwrap());
            // An expired lease frees its place.
            let later = t + chrono::Duration::seconds(11);
            granted(ledger.reserve("k", &p, later).await.unwrap());
            // Settling an expired lease counts nothing.
            ledger
                .settle("k", third, AttemptOutcome::Failure, &p, later)
                .await
                .unwrap();
            ledger.resync("k", 0, later).await.unwrap();
        });
    }

    #[test]
    fn a_policy_locks_the_key_and_escalates() {
        block_on(async {
            let ledger = MemoryAttemptLedger::new();
            let p = policy(true);
            let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
            for i in 0..3 {
                let lease = granted(ledger.reserve("ghost", &p, t).await.unwrap());
                let locked = ledger
                    .settle("ghost", lease, AttemptOutcome::Failure, &p, t)
                    .await
                    .unwrap();
                assert_eq!(locked.is_some(), i == 2);
            }
            let until = t + chrono::Duration::seconds(60);
            assert_eq!(
                ledger.reserve("ghost", &p, t).await.unwrap(),
                Reservation::Locked { until }
            );
            let later = until + chrono::Duration::seconds(1);
            for _ in 0..3 {
                let lease = granted(ledger.reserve("ghost", &p, later).await.unwrap());
                ledger
                    .settle("ghost", lease, AttemptOutcome::Failure, &p, later)
                    .await
                    .unwrap();
            }
            // The second lock is twice as long.
            assert_eq!(
                ledger.reserve("ghost", &p, later).await.unwrap(),
                Reservation::Locked {
                    until: later + chrono::Duration::seconds(120)
                }
            );
            // An hour after the last lock ended, the escalation restarts.
            let quiet = later + chrono::Duration::seconds(120 + 3600);
            for _ in 0..3 {
                let lease = granted(ledger.reserve("ghost", &p, quiet).await.unwrap());
                ledger
                    .settle("ghost", lease, AttemptOutcome::Failure, &p, quiet)
                    .await
                    .unwrap();
            }
            assert_eq!(
                ledger.reserve("ghost", &p, quiet).await.unwrap(),
                Reservation::Locked {
                    until: quiet + chrono::Duration::seconds(60)
                }
            );
        });
    }
}
