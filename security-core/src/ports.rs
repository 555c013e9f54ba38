//! The other ports the core needs from the outside world: publishing,
//! time, ids and password hashing.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use uuid::Uuid;

use crate::event::PublishedEvent;

/// Publishing failed. The events are stored; publishing them again is safe
/// (consumers dedupe on the event id).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The broker is unavailable for now; retry later.
    #[error("publisher unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The broker refused the events. Log it.
    #[error("publisher failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Hands stored events to the outside world (a broker, a bus, a test).
///
/// Contract: at-least-once; events of one stream are published in version
/// order; the event id is the dedupe key. Publishers only ever receive
/// [`PublishedEvent`]s, which hold no sealed field.
#[async_trait]
pub trait Publisher: fmt::Debug + Send + Sync {
    /// Publishes events, in order.
    async fn publish(&self, events: &[PublishedEvent]) -> Result<(), PublishError>;
}

/// The time, injected so that tests can move it and the core never reads a
/// clock itself.
pub trait Clock: fmt::Debug + Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// A clock that only moves when told to (for tests and replays).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(now),
        }
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: DateTime<Utc>) {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Makes new ids (UUID v7 in production, so ids sort by creation time).
pub trait IdGenerator: fmt::Debug + Send + Sync {
    /// A new, unique id.
    fn new_id(&self) -> Uuid;
}

/// Ids `1, 2, 3, …` (as UUIDs) with a fixed prefix: deterministic, for tests.
#[derive(Debug, Default)]
pub struct SequentialIds {
    next: AtomicU64,
}

impl SequentialIds {
    /// A generator starting at 1.
    pub fn new() -> Self {
        Self::default()
    }
}

impl IdGenerator for SequentialIds {
    fn new_id(&self) -> Uuid {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        // Version 8 (custom) UUID, so test ids are never mistaken for real ones.
        uuid::Builder::from_custom_bytes((u128::from(n) | (0x5e5e_u128 << 112)).to_be_bytes())
            .into_uuid()
    }
}

/// A password hash could not be made or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordHashError {
    /// The stored hash is not a valid PHC string of a supported algorithm.
    #[error("stored password hash is malformed or of an unsupported algorithm")]
    MalformedHash,
    /// Hashing failed (e.g. out of memory for the configured cost).
    #[error("password hashing failed")]
    Hashing,
}

/// Hashes and verifies passwords (argon2id in `security-crypto`).
pub trait PasswordHasher: fmt::Debug + Send + Sync {
    /// Hashes a password into a PHC string.
    fn hash(&self, password: &SecretString) -> Result<SecretString, PasswordHashError>;

    /// Whether the password matches the PHC string (constant time).
    fn verify(
        &self,
        password: &SecretString,
        hash: &SecretString,
    ) -> Result<bool, PasswordHashError>;

    /// Whether the hash was made with weaker parameters than the current
    /// ones and should be replaced at the next successful login.
    fn needs_rehash(&self, hash: &SecretString) -> bool;

    /// Does the work of one verification against a fixed dummy hash, so
    /// that an unknown user costs what a known one does.
    fn dummy_verify(&self, password: &SecretString);
}
