//! An [`AttemptLedger`] in PostgreSQL, for replicas that share a database
//! but no Redis.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use security_core::{
    AttemptLedger, AttemptLedgerError, AttemptOutcome, AttemptPolicy, LeaseId, Reservation,
};
use uuid::Uuid;

use super::errors::db;
use super::rate_limit::interval;
use super::store::PostgresEventStore;

const RESERVE: &str = "SELECT outcome, in_flight, locked_until \
     FROM security_attempt_reserve($1, $2, $3, $4, $5, $6)";
const SETTLE: &str = "SELECT security_attempt_settle($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const RESYNC: &str = "SELECT security_attempt_resync($1, $2, $3)";

/// Verification budgets and the lockouts of unknown usernames in the event
/// store's database (`security_login_attempts`, `security_login_leases`):
/// each operation one statement, atomic per key (the key's row lock).
///
/// Entries are kept a day past their last change (longer while a lock
/// lasts), so the escalation of locks can decay as the policy says; empty
/// ones are swept now and then.
#[derive(Debug, Clone)]
pub struct PostgresAttemptLedger {
    store: PostgresEventStore,
}

impl PostgresAttemptLedger {
    /// A ledger in the store's database (its migrations create the tables).
    pub fn new(store: &PostgresEventStore) -> Self {
        Self {
            store: store.clone(),
        }
    }
}

fn backend(error: sqlx::Error) -> AttemptLedgerError {
    AttemptLedgerError::backend(db(error))
}

fn max(policy: &AttemptPolicy) -> i32 {
    i32::try_from(policy.max_failures.max(1)).unwrap_or(i32::MAX)
}

/// How long an entry outlives its last change: long enough for the lock
/// escalation to decay as the policy says.
fn retention(policy: &AttemptPolicy) -> std::time::Duration {
    let reset = policy
        .lockout
        .map_or(security_core::DEFAULT_ESCALATION_RESET_SECS, |l| {
            l.escalation_reset_secs
        });
    std::time::Duration::from_secs(reset.clamp(3600, 30 * 86_400))
}

fn secs(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait]
impl AttemptLedger for PostgresAttemptLedger {
    async fn reserve(
        &self,
        key: &str,
        policy: &AttemptPolicy,
        now: DateTime<Utc>,
    ) -> Result<Reservation, AttemptLedgerError> {
        let lease = LeaseId(Uuid::now_v7());
        let (outcome, in_flight, locked_until): (String, i32, Option<DateTime<Utc>>) =
            sqlx::query_as(RESERVE)
                .bind(key)
                .bind(lease.0)
                .bind(max(policy))
                .bind(interval(policy.lease_ttl))
                .bind(interval(retention(policy)))
                .bind(now)
                .fetch_one(self.store.pool())
                .await
                .map_err(backend)?;
        Ok(match (outcome.as_str(), locked_until) {
            ("granted", _) => Reservation::Granted(lease),
            ("locked", Some(until)) => Reservation::Locked { until },
            _ => Reservation::Busy {
                in_flight: u32::try_from(in_flight).unwrap_or(0),
            },
        })
    }

    async fn settle(
        &self,
        key: &str,
        lease: LeaseId,
        outcome: AttemptOutcome,
        policy: &AttemptPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AttemptLedgerError> {
        let outcome = match outcome {
            AttemptOutcome::Failure => "failure",
            AttemptOutcome::Success => "success",
            AttemptOutcome::Released => "released",
        };
        let lockout = policy.lockout;
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>(SETTLE)
            .bind(key)
            .bind(lease.0)
            .bind(outcome)
            .bind(max(policy))
            .bind(lockout.map(|l| secs(l.base_lock_secs)))
            .bind(lockout.map(|l| secs(l.max_lock_secs)))
            .bind(lockout.map(|l| secs(l.escalation_reset_secs)))
            .bind(interval(retention(policy)))
            .bind(now)
            .fetch_one(self.store.pool())
            .await
            .map_err(backend)
    }

    async fn resync(
        &self,
        key: &str,
        failures: u32,
        now: DateTime<Utc>,
    ) -> Result<(), AttemptLedgerError> {
        sqlx::query(RESYNC)
            .bind(key)
            .bind(i32::try_from(failures).unwrap_or(i32::MAX))
            .bind(now)
            .execute(self.store.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}
