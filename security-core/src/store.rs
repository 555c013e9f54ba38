//! The [`EventStore`] trait: the contract every backend meets.

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::chain::{ChainHead, ChainQuery, ChainRecord};
use crate::event::{IdempotencyKey, NewEvent, StoredEvent, StreamId};
use crate::ids::{EventId, TenantId};
use crate::limits::LimitExceeded;
use crate::snapshot::Snapshot;

/// What the writer expects the stream's current version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last version must be exactly this (`Exact(0)` is the
    /// same as `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `current` (0: no stream)
    /// satisfies the expectation.
    pub fn is_satisfied_by(self, current: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current == 0,
            Self::Exact(v) => current == v,
        }
    }
}

/// One atomic append to one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendRequest {
    /// The stream (it carries the tenant).
    pub stream_id: StreamId,
    /// The concurrency check.
    pub expected: ExpectedVersion,
    /// The events, all written or none.
    pub events: Vec<NewEvent>,
    /// Makes the append happen at most once in the tenant.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// What an append wrote (or, for a repeated idempotency key, what the
/// original append wrote).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    /// The stream.
    pub stream_id: StreamId,
    /// The version of the first event written.
    pub first_version: u64,
    /// The stream's version after the append.
    pub last_version: u64,
    /// The global position of the first event written.
    pub first_position: u64,
    /// The global position of the last event written.
    pub last_position: u64,
    /// The ids of the events written, in order.
    pub event_ids: Vec<EventId>,
    /// `true` when this result is the original one returned again for a
    /// repeated idempotency key (nothing was written this time).
    pub deduplicated: bool,
}

/// Where a read stops (inclusive): everything, or the state as of a
/// version, a global position or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Until {
    /// No bound.
    End,
    /// Up to and including this stream version (stream reads only).
    Version(u64),
    /// Up to and including this global position.
    Position(u64),
    /// Events that occurred at or before this time.
    Time(DateTime<Utc>),
}

impl Until {
    /// Whether an event is inside the bound.
    pub fn admits(&self, event: &StoredEvent) -> bool {
        match *self {
            Self::End => true,
            Self::Version(v) => event.version <= v,
            Self::Position(p) => event.global_position <= p,
            Self::Time(t) => event.occurred_at <= t,
        }
    }
}

/// A read of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamQuery {
    /// The first version to return (1: from the start).
    pub from_version: u64,
    /// Where to stop.
    pub until: Until,
    /// At most this many events.
    pub limit: usize,
}

impl Default for StreamQuery {
    fn default() -> Self {
        Self {
            from_version: 1,
            until: Until::End,
            limit: usize::MAX,
        }
    }
}

impl StreamQuery {
    /// The whole stream.
    pub fn all() -> Self {
        Self::default()
    }

    /// The stream up to a bound.
    pub fn until(until: Until) -> Self {
        Self {
            until,
            ..Self::default()
        }
    }
}

/// Which part of the global stream a read sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// One tenant's events only.
    Tenant(TenantId),
    /// Every tenant's events. For projections run by the application
    /// itself; never expose it to a tenant.
    All,
}

impl Scope {
    /// Whether the event is visible in this scope.
    pub fn admits(&self, event: &StoredEvent) -> bool {
        match self {
            Self::Tenant(t) => event.stream_id.tenant_id == *t,
            Self::All => true,
        }
    }
}

/// A read of the global stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalQuery {
    /// Return events after this position (0: from the start).
    pub after: u64,
    /// Where to stop (`Until::Version` is refused).
    pub until: Until,
    /// At most this many events.
    pub limit: usize,
}

impl GlobalQuery {
    /// Up to `limit` events after `after`.
    pub fn after(after: u64, limit: usize) -> Self {
        Self {
            after,
            until: Until::End,
            limit,
        }
    }
}

/// A live feed of events in global order.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StoredEvent, StoreError>> + Send>>;

/// An event-store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream's version was not the expected one; nothing was written.
    /// Reload the aggregate and retry the command.
    #[error("stream {stream_id} is at version {actual}, expected {expected:?}")]
    Conflict {
        /// The stream.
        stream_id: StreamId,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's version (0: no stream).
        actual: u64,
    },
    /// The idempotency key was already used in this tenant for a different
    /// stream; nothing was written.
    #[error("idempotency key was already used for another stream")]
    DuplicateIdempotencyKey {
        /// What the original append wrote.
        original: Box<AppendResult>,
    },
    /// The request named a tenant other than the one this handle is
    /// scoped to. A programming error: never retry.
    #[error("tenant mismatch: the handle is scoped to {expected}, the request names {actual}")]
    TenantMismatch {
        /// The handle's tenant.
        expected: TenantId,
        /// The request's tenant.
        actual: TenantId,
    },
    /// The request itself is malformed (an empty append, an event id used
    /// twice, a version bound on a global read); the message says which.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// An event (or snapshot) is larger or deeper than the store could
    /// read back (see [`limits`](crate::limits)); the message names the
    /// part and the limit. Nothing was written. The caller's fault: never
    /// retry unchanged.
    #[error("refused: {0}")]
    LimitExceeded(#[from] LimitExceeded),
    /// The backend is unavailable for now (connection lost, failover,
    /// broker down). Nothing was half-written; retrying later may succeed.
    #[error("event store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend failed. Log it; do not show it to end users.
    #[error("event store backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::Unavailable(_))
    }
}

/// An append-only, multi-tenant event store.
///
/// Contract (checked by `security_eventstore::testkit::run_all`):
/// 1. **Optimistic concurrency**: `append` checks `expected`; a mismatch
///    fails with [`StoreError::Conflict`] and writes nothing. Of N
///    concurrent appenders at the same version exactly one wins.
/// 2. **Atomic batches**: all events of one append are written or none.
/// 3. **Idempotency**: an append with an idempotency key already used in
///    the tenant writes nothing and returns the original result (with
///    `deduplicated: true`), or [`StoreError::DuplicateIdempotencyKey`] if
///    the key was used for another stream.
/// 4. **Ordered global stream**: positions are strictly increasing; a reader
///    following positions from a checkpoint never skips an event that
///    commits later with a lower position.
/// 5. **Tenant isolation**: a tenant-scoped read returns only that tenant's
///    events.
/// 6. **Temporal reads**: streams and the global stream can be read up to a
///    version, a position or a time.
/// 7. **Subscriptions**: `subscribe` yields every event after a position,
///    then new ones as they commit, in global order, without gaps.
/// 8. **Snapshots**: `save_snapshot` keeps, per stream and state schema
///    version, the newest snapshot saved (an older one never replaces a
///    newer one) and refuses one that does not name an event of its stream
///    (version and global position); `read_snapshot` returns the newest
///    kept snapshot of that schema version inside the bound, never one
///    outside it. A store may keep none (the defaults below): it stays
///    correct, loads just replay whole streams, and the kit's snapshot
///    clause fails it.
/// 9. **Hash chain**: every event is chained to its tenant's previous
///    event (see [`chain`](crate::chain)); the link is computed from the
///    tenant's last committed event, so concurrent appends of one tenant
///    (from any number of processes) never fork the chain, and the store
///    records each tenant's head in the same commit.
#[async_trait]
pub trait EventStore: fmt::Debug + Send + Sync {
    /// Appends events to one stream atomically.
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError>;

    /// Reads one stream in version order.
    async fn read_stream(
        &self,
        stream_id: &StreamId,
        query: StreamQuery,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Reads the global stream in position order.
    async fn read_global(
        &self,
        scope: Scope,
        query: GlobalQuery,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The stream's last version (0: the stream does not exist).
    async fn stream_version(&self, stream_id: &StreamId) -> Result<u64, StoreError>;

    /// The result of the append that used this idempotency key in the
    /// tenant, if any.
    async fn idempotent_result(
        &self,
        tenant_id: TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<AppendResult>, StoreError>;

    /// The highest global position a reader may safely read up to now.
    async fn head_position(&self) -> Result<u64, StoreError>;

    /// Every event after `after` in the scope, then new ones as they commit.
    fn subscribe(&self, scope: Scope, after: u64) -> EventStream;

    /// A tenant's chain in global-position order: each event's hashed
    /// fields exactly as stored, and its hashes. Nothing is decoded, so a
    /// damaged record is returned as it is, for
    /// [`verify_chain`](crate::chain::verify_chain) to name.
    async fn read_chain(
        &self,
        tenant_id: TenantId,
        query: ChainQuery,
    ) -> Result<Vec<ChainRecord>, StoreError>;

    /// The tenant's chain head as the store recorded it with its last
    /// append (`None`: the tenant has no event).
    async fn chain_head(&self, tenant_id: TenantId) -> Result<Option<ChainHead>, StoreError>;

    /// Every tenant's recorded chain head, by tenant id. For the
    /// application's own anchoring task; never expose it to a tenant.
    async fn chain_heads(&self) -> Result<Vec<(TenantId, ChainHead)>, StoreError>;

    /// Keeps a snapshot of a stream's aggregate, unless the store already
    /// keeps a newer one of the same stream and schema version. Refuses
    /// ([`StoreError::InvalidRequest`]) one that names no event of its
    /// stream. The default keeps nothing.
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let _ = snapshot;
        Ok(())
    }

    /// The newest snapshot kept of the stream at `schema_version` whose
    /// events are all inside `until`. The default keeps none.
    async fn read_snapshot(
        &self,
        stream_id: &StreamId,
        schema_version: u32,
        until: Until,
    ) -> Result<Option<Snapshot>, StoreError> {
        let _ = (stream_id, schema_version, until);
        Ok(None)
    }

    /// What a load needs in one call: the newest snapshot inside
    /// `query.until` (as [`read_snapshot`](Self::read_snapshot)) and the
    /// stream's events after it (from `max(query.from_version, snapshot
    /// version + 1)`, as [`read_stream`](Self::read_stream)). A store may
    /// answer both in one round trip; the default makes two calls.
    async fn read_stream_from_snapshot(
        &self,
        stream_id: &StreamId,
        schema_version: u32,
        query: StreamQuery,
    ) -> Result<(Option<Snapshot>, Vec<StoredEvent>), StoreError> {
        let snapshot = self
            .read_snapshot(stream_id, schema_version, query.until)
            .await?;
        let from_version = snapshot.as_ref().map_or(query.from_version, |s| {
            query.from_version.max(s.version + 1)
        });
        let events = self
            .read_stream(
                stream_id,
                StreamQuery {
                    from_version,
                    ..query
                },
            )
            .await?;
        Ok((snapshot, events))
    }
}
