//! Snapshots: an aggregate's state stored beside its stream, so that a
//! long stream loads from the snapshot plus the events after it.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::event::StreamId;
use crate::store::Until;

/// An aggregate's state as of one version of its stream.
///
/// A snapshot is only ever an optimisation: loading from it plus the
/// events after it gives exactly the state a full replay gives. It is
/// written by the [`Repository`](crate::Repository) from events it has
/// folded (so only ever from committed events), kept by the store beside
/// the stream, and never published. Sealed fields stay sealed in it: the
/// state holds them as ciphertext, as the events do.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The stream (it carries the tenant).
    pub stream_id: StreamId,
    /// The stream version the state reflects: events `1..=version` applied.
    pub version: u64,
    /// The global position of the event at `version`.
    pub global_position: u64,
    /// The latest `occurred_at` among events `1..=version`.
    pub occurred_until: DateTime<Utc>,
    /// The version of the state's encoding: the aggregate's
    /// [`SnapshotCodec::schema_version`]. A reader with another one
    /// ignores the snapshot.
    pub schema_version: u32,
    /// The state, encoded.
    pub state: Arc<Value>,
}

impl Snapshot {
    /// Whether every event the snapshot reflects is inside `until`, so that
    /// a read up to that bound may start from it.
    pub fn is_inside(&self, until: Until) -> bool {
        match until {
            Until::End => true,
            Until::Version(v) => self.version <= v,
            Until::Position(p) => self.global_position <= p,
            Until::Time(t) => self.occurred_until <= t,
        }
    }
}

/// How an aggregate's state is encoded in a [`Snapshot`]: see
/// [`Aggregate::SNAPSHOT`](crate::Aggregate::SNAPSHOT).
pub struct SnapshotCodec<A> {
    /// The encoding's version. Bump it whenever the state's shape *or the
    /// way events fold into it* changes: a snapshot caches the result of
    /// `apply`, so older snapshots must then be ignored (they are: the
    /// store only returns snapshots of the reader's version).
    pub schema_version: u32,
    encode: fn(&A) -> Result<Value, serde_json::Error>,
    decode: fn(&Value) -> Result<A, serde_json::Error>,
}

impl<A: Serialize + DeserializeOwned> SnapshotCodec<A> {
    /// The state's serde form, as JSON, at `schema_version`.
    pub const fn json(schema_version: u32) -> Self {
        Self {
            schema_version,
            encode: encode_json::<A>,
            decode: decode_json::<A>,
        }
    }
}

impl<A> SnapshotCodec<A> {
    /// Encodes a state.
    pub fn encode(&self, state: &A) -> Result<Value, serde_json::Error> {
        (self.encode)(state)
    }

    /// Decodes a state.
    pub fn decode(&self, state: &Value) -> Result<A, serde_json::Error> {
        (self.decode)(state)
    }
}

impl<A> Clone for SnapshotCodec<A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A> Copy for SnapshotCodec<A> {}

impl<A> fmt::Debug for SnapshotCodec<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotCodec")
            .field("schema_version", &self.schema_version)
            .finish_non_exhaustive()
    }
}

fn encode_json<A: Serialize>(state: &A) -> Result<Value, serde_json::Error> {
    serde_json::to_value(state)
}

fn decode_json<A: DeserializeOwned>(state: &Value) -> Result<A, serde_json::Error> {
    A::deserialize(state)
}

/// When the [`Repository`](crate::Repository) writes snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    every: u64,
}

impl SnapshotPolicy {
    /// A snapshot once at least 12 events were folded since the last one
    /// known: a load then reads at most 11 events after a snapshot (so a
    /// user with 10 000 events loads about as fast as one with 10), and a
    /// command writes a snapshot at most once every 12 events.
    pub const DEFAULT: Self = Self::every(12);

    /// Never write snapshots (those present are still read).
    pub const NEVER: Self = Self { every: 0 };

    /// A snapshot once at least `events` events were folded since the last
    /// one known (0: never).
    pub const fn every(events: u64) -> Self {
        Self { every: events }
    }

    /// Whether a state at `version`, whose newest known snapshot is at
    /// `snapshot_version`, is due for a snapshot.
    pub fn is_due(&self, version: u64, snapshot_version: u64) -> bool {
        self.every > 0 && version.saturating_sub(snapshot_version) >= self.every
    }
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    #[test]
    fn a_snapshot_is_inside_a_bound_only_with_all_its_events() {
        let t = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
        let snapshot = Snapshot {
            stream_id: StreamId::new(crate::TenantId::SYSTEM, "thing", Uuid::nil()),
            version: 10,
            global_position: 100,
            occurred_until: t(60),
            schema_version: 1,
            state: Arc::new(Value::Null),
        };
        assert!(snapshot.is_inside(Until::End));
        assert!(snapshot.is_inside(Until::Version(10)));
        assert!(!snapshot.is_inside(Until::Version(9)));
        assert!(snapshot.is_inside(Until::Position(100)));
        assert!(!snapshot.is_inside(Until::Position(99)));
        assert!(snapshot.is_inside(Until::Time(t(60))));
        assert!(!snapshot.is_inside(Until::Time(t(59))));
    }

    #[test]
    fn the_policy_is_due_every_n_events() {
        assert!(!SnapshotPolicy::every(32).is_due(31, 0));
        assert!(SnapshotPolicy::every(32).is_due(32, 0));
        assert!(!SnapshotPolicy::every(32).is_due(50, 32));
        assert!(!SnapshotPolicy::NEVER.is_due(1_000, 0));
    }
}
