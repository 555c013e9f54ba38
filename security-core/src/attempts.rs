//! The [`AttemptLedger`] port: a per-key budget of password verifications,
//! shared by every replica, that makes the lockout exact under
//! concurrency.
//!
//! A login takes a lease before it verifies a password and settles it
//! afterwards. Failures since the last success plus the leases in flight
//! never reach the lockout limit, so N simultaneous wrong guesses at one
//! user, on any replicas, cost at most `max_failures` verifications before
//! the lock. A request that finds the budget full waits for the leases in
//! flight to settle instead of failing. Leases expire, so a crashed
//! replica leaks nothing.
//!
//! The same ledger keeps the lockouts of usernames that match no user
//! ("phantom" lockouts), with the user's policy, so that a real user and an
//! unknown one answer alike over any number of replicas.
//!
//! Implementations: in memory (`security_authn::MemoryAttemptLedger`, one
//! process), PostgreSQL and Redis (`security-eventstore`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::user::LockoutPolicy;

/// A lease on one password verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub Uuid);

/// What a key's budget allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Verify, then [`settle`](AttemptLedger::settle) this lease.
    Granted(LeaseId),
    /// Failures plus leases in flight reach the limit: wait for the
    /// leases to settle and ask again. With no lease in flight, the
    /// failures alone reached the limit: the key's owner is locked (or the
    /// ledger is behind the user's stream: see
    /// [`resync`](AttemptLedger::resync)).
    Busy {
        /// Leases in flight.
        in_flight: u32,
    },
    /// The key is locked by the ledger (keys with a lockout policy only).
    Locked {
        /// When the lock lifts.
        until: DateTime<Utc>,
    },
}

/// How a verification ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// A wrong secret: counts towards the limit.
    Failure,
    /// The right secret: failures start again from zero, and the lock
    /// escalation too.
    Success,
    /// Neither (the attempt was refused for another reason): the lease
    /// is only released.
    Released,
}

/// The budget of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    /// Failures plus leases in flight stay below this.
    pub max_failures: u32,
    /// How long a lease lives if it is never settled.
    pub lease_ttl: Duration,
    /// With a policy, reaching `max_failures` locks the key in the ledger
    /// itself (usernames without a user); without, the ledger only counts
    /// (a user's lock is in its own stream).
    pub lockout: Option<LockoutPolicy>,
}

/// An attempt ledger's backend failed. Authentication fails closed on it:
/// log it, answer 503; retrying later may succeed.
#[derive(Debug, thiserror::Error)]
#[error("attempt ledger backend failed")]
pub struct AttemptLedgerError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl AttemptLedgerError {
    /// Wraps a backend error (kept as the source, never in the message).
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

/// Per-key verification budgets shared by every replica.
///
/// Contract (every implementation; the in-memory one is the reference),
/// each operation atomic per key:
/// - [`reserve`](Self::reserve) drops expired leases, then answers
///   `Locked` while a ledger lock lasts, `Busy` when failures plus live
///   leases reach `max_failures`, and otherwise grants a new lease (valid
///   `lease_ttl`);
/// - [`settle`](Self::settle) removes the lease (an unknown or expired one
///   is ignored) and applies the outcome: a failure counts, and with a
///   lockout policy reaching `max_failures` locks the key for
///   `lockout.lock_duration(level)` (the escalation level restarts at 0
///   once the previous lock ended `lockout.escalation_reset_secs` ago),
///   zeroes the failures and raises the level; a success zeroes the
///   failures and the level. It returns the lock's end when the key is
///   locked after it;
/// - [`resync`](Self::resync) sets the failures to a value read from the
///   user's stream, only when no lease is live (a ledger that fell behind,
///   e.g. after a lock expired or an admin unlocked);
/// - state that holds no live lease, no lock and no failure may be dropped.
#[async_trait]
pub trait AttemptLedger: fmt::Debug + Send + Sync {
    /// Asks for a lease on one verification.
    async fn reserve(
        &self,
        key: &str,
        policy: &AttemptPolicy,
        now: DateTime<Utc>,
    ) -> Result<Reservation, AttemptLedgerError>;

    /// Settles a lease with the verification's outcome.
    async fn settle(
        &self,
        key: &str,
        lease: LeaseId,
        outcome: AttemptOutcome,
        policy: &AttemptPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AttemptLedgerError>;

    /// Sets the failures to `failures` if no lease is live.
    async fn resync(
        &self,
        key: &str,
        failures: u32,
        now: DateTime<Utc>,
    ) -> Result<(), AttemptLedgerError>;
}
