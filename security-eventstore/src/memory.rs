//! The in-memory event store and publisher.
//!
//! Meets the whole store contract, exactly as strictly as the PostgreSQL
//! store: one lock serialises appends, so versions, positions, idempotency
//! and atomic batches hold by construction. Positions are dense (1, 2, 3…).
//! Each tenant's hash chain is computed in commit order when it is first
//! read (see `memory_chain`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use futures::stream;
use security_core::chain::{ChainHead, ChainQuery, ChainRecord};
use security_core::limits;
use security_core::{
    AppendRequest, AppendResult, EventId, EventStore, EventStream, GlobalQuery, IdempotencyKey,
    PublishError, PublishedEvent, Publisher, Scope, Snapshot, StoreError, StoredEvent, StreamId,
    StreamQuery, TenantId, Until,
};
use tokio::sync::{broadcast, watch};

use crate::memory_chain::Ledger;

/// Events read per step when a subscription catches up.
const SUBSCRIPTION_PAGE: usize = 256;

#[derive(Debug, Default)]
struct Log {
    /// Every event; the event at index `i` has global position `i + 1`.
    events: Vec<StoredEvent>,
    /// Per stream: indexes into `events`, in version order.
    streams: HashMap<StreamId, Vec<usize>>,
    /// Per tenant: indexes into `events`, in position order.
    tenants: HashMap<TenantId, Vec<usize>>,
    /// Per tenant: the result of each idempotent append.
    idempotency: HashMap<TenantId, HashMap<IdempotencyKey, AppendResult>>,
    /// Every event id stored.
    event_ids: HashSet<EventId>,
    /// Per stream and state schema version: the newest snapshot saved.
    snapshots: HashMap<(StreamId, u32), Snapshot>,
}

#[derive(Debug)]
struct Shared {
    log: RwLock<Log>,
    /// The hash chain, taken after `log` when both are held.
    chain: Mutex<Ledger>,
    head: watch::Sender<u64>,
}

/// An event store in memory: for tests, examples and single-process apps
/// that rebuild their state at start-up.
///
/// Cloning gives another handle to the same store.
#[derive(Debug, Clone)]
pub struct MemoryEventStore {
    shared: Arc<Shared>,
}

impl Default for MemoryEventStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        let (head, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                log: RwLock::new(Log::default()),
                chain: Mutex::new(Ledger::default()),
                head,
            }),
        }
    }

    /// How many events the store holds.
    pub fn len(&self) -> usize {
        self.read().events.len()
    }

    /// Whether the store holds no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> RwLockReadGuard<'_, Log> {
        self.shared
            .log
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn chain(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.shared
            .chain
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Log> {
        self.shared
            .log
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn validate(request: &AppendRequest, log: &Log) -> Result<(), StoreError> {
    if request.events.is_empty() {
        return Err(StoreError::InvalidRequest(
            "an append needs at least one event",
        ));
    }
    if request.stream_id.aggregate_type.is_empty() {
        return Err(StoreError::InvalidRequest("the aggregate type is empty"));
    }
    let mut seen = HashSet::with_capacity(request.events.len());
    for event in &request.events {
        if event.event_type.is_empty() {
            return Err(StoreError::InvalidRequest("an event type is empty"));
        }
        if !seen.insert(event.event_id) || log.event_ids.contains(&event.event_id) {
            return Err(StoreError::InvalidRequest("an event id is used twice"));
        }
    }
    Ok(())
}

fn duplicate_or_replay(
    original: &AppendResult,
    request: &AppendRequest,
) -> Result<AppendResult, StoreError> {
    if original.stream_id == request.stream_id {
        Ok(AppendResult {
            deduplicated: true,
            ..original.clone()
        })
    } else {
        Err(StoreError::DuplicateIdempotencyKey {
            original: Box::new(original.clone()),
        })
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        // What a store in PostgreSQL could not read back is refused here
        // too: the memory store is exactly as strict.
        limits::check_append(&request)?;
        let tenant = request.stream_id.tenant_id;
        let result = {
            let mut log = self.write();
            if let Some(key) = &request.idempotency_key
                && let Some(original) = log.idempotency.get(&tenant).and_then(|keys| keys.get(key))
            {
                return duplicate_or_replay(original, &request);
            }
            let current = log
                .streams
                .get(&request.stream_id)
                .map_or(0, |s| s.len() as u64);
            if !request.expected.is_satisfied_by(current) {
                return Err(StoreError::Conflict {
                    stream_id: request.stream_id,
                    expected: request.expected,
                    actual: current,
                });
            }
            validate(&request, &log)?;
            let first_index = log.events.len();
            let count = request.events.len();
            let mut event_ids = Vec::with_capacity(count);
            let Log {
                events,
                streams,
                tenants,
                event_ids: all_ids,
                ..
            } = &mut *log;
            let stream_index = streams.entry(request.stream_id.clone()).or_default();
            let tenant_index = tenants.entry(tenant).or_default();
            events.reserve(count);
            for (offset, event) in request.events.into_iter().enumerate() {
                let index = first_index + offset;
                event_ids.push(event.event_id);
                all_ids.insert(event.event_id);
                stream_index.push(index);
                tenant_index.push(index);
                events.push(StoredEvent::from_new(
                    event,
                    request.stream_id.clone(),
                    current + offset as u64 + 1,
                    index as u64 + 1,
                ));
            }
            let result = AppendResult {
                stream_id: request.stream_id,
                first_version: current + 1,
                last_version: current + count as u64,
                first_position: first_index as u64 + 1,
                last_position: (first_index + count) as u64,
                event_ids,
                deduplicated: false,
            };
            if let Some(key) = request.idempotency_key {
                log.idempotency
                    .entry(tenant)
                    .or_default()
                    .insert(key, result.clone());
            }
            result
        };
        self.shared.head.send_replace(result.last_position);
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        query: StreamQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let log = self.read();
        let Some(indexes) = log.streams.get(stream_id) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(query.from_version.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(indexes.len());
        let end = match query.until {
            Until::Version(v) => usize::try_from(v)
                .unwrap_or(usize::MAX)
                .clamp(start, indexes.len()),
            _ => indexes.len(),
        };
        Ok(indexes[start..end]
            .iter()
            .map(|&i| &log.events[i])
            .filter(|e| query.until.admits(e))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn read_global(
        &self,
        scope: Scope,
        query: GlobalQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if matches!(query.until, Until::Version(_)) {
            return Err(StoreError::InvalidRequest(
                "a version bound only applies to a stream read",
            ));
        }
        let log = self.read();
        let after = usize::try_from(query.after).unwrap_or(usize::MAX);
        let admit = |e: &&StoredEvent| query.until.admits(e);
        Ok(match scope {
            Scope::All => log
                .events
                .iter()
                .skip(after)
                .filter(admit)
                .take(query.limit)
                .cloned()
                .collect(),
            Scope::Tenant(tenant) => {
                let Some(indexes) = log.tenants.get(&tenant) else {
                    return Ok(Vec::new());
                };
                // Indexes are positions - 1, sorted: skip everything at or before `after`.
                let start = indexes.partition_point(|&i| i < after);
                indexes[start..]
                    .iter()
                    .map(|&i| &log.events[i])
                    .filter(admit)
                    .take(query.limit)
                    .cloned()
                    .collect()
            }
        })
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<u64, StoreError> {
        Ok(self
            .read()
            .streams
            .get(stream_id)
            .map_or(0, |s| s.len() as u64))
    }

    async fn idempotent_result(
        &self,
        tenant_id: TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<AppendResult>, StoreError> {
        Ok(self
            .read()
            .idempotency
            .get(&tenant_id)
            .and_then(|keys| keys.get(key))
            .cloned())
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(self.read().events.len() as u64)
    }

    async fn read_chain(
        &self,
        tenant_id: TenantId,
        query: ChainQuery,
    ) -> Result<Vec<ChainRecord>, StoreError> {
        let log = self.read();
        let indexes = log.tenants.get(&tenant_id).map_or(&[][..], Vec::as_slice);
        self.chain().read(tenant_id, indexes, &log.events, query)
    }

    async fn chain_head(&self, tenant_id: TenantId) -> Result<Option<ChainHead>, StoreError> {
        let log = self.read();
        let indexes = log.tenants.get(&tenant_id).map_or(&[][..], Vec::as_slice);
        self.chain().head(tenant_id, indexes, &log.events)
    }

    async fn chain_heads(&self) -> Result<Vec<(TenantId, ChainHead)>, StoreError> {
        let log = self.read();
        let mut ledger = self.chain();
        let mut heads = Vec::with_capacity(log.tenants.len());
        for (&tenant, indexes) in &log.tenants {
            if let Some(head) = ledger.head(tenant, indexes, &log.events)? {
                heads.push((tenant, head));
            }
        }
        heads.sort_by_key(|(tenant, _)| *tenant);
        Ok(heads)
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        limits::check_snapshot(snapshot)?;
        let mut log = self.write();
        let names_an_event = usize::try_from(snapshot.version)
            .ok()
            .and_then(|v| v.checked_sub(1))
            .and_then(|index| log.streams.get(&snapshot.stream_id)?.get(index).copied())
            .is_some_and(|i| {
                let event = &log.events[i];
                event.global_position == snapshot.global_position
                    && event.occurred_at <= snapshot.occurred_until
            });
        if !names_an_event {
            return Err(StoreError::InvalidRequest(
                "a snapshot must name an event of its stream by version and position",
            ));
        }
        let key = (snapshot.stream_id.clone(), snapshot.schema_version);
        match log.snapshots.get(&key) {
            Some(kept) if kept.version >= snapshot.version => {}
            _ => {
                log.snapshots.insert(key, snapshot.clone());
            }
        }
        Ok(())
    }

    async fn read_snapshot(
        &self,
        stream_id: &StreamId,
        schema_version: u32,
        until: Until,
    ) -> Result<Option<Snapshot>, StoreError> {
        Ok(self
            .read()
            .snapshots
            .get(&(stream_id.clone(), schema_version))
            .filter(|s| s.is_inside(until))
            .cloned())
    }

    fn subscribe(&self, scope: Scope, after: u64) -> EventStream {
        let state = Subscription {
            store: self.clone(),
            head: self.shared.head.subscribe(),
            scope,
            position: after,
            buffer: VecDeque::new(),
        };
        Box::pin(stream::unfold(state, |mut sub| async move {
            loop {
                if let Some(event) = sub.buffer.pop_front() {
                    sub.position = event.global_position;
                    return Some((Ok(event), sub));
                }
                // Mark the head seen before reading, so an append that lands
                // after the read wakes us up.
                sub.head.borrow_and_update();
                let page = sub
                    .store
                    .read_global(
                        sub.scope,
                        GlobalQuery::after(sub.position, SUBSCRIPTION_PAGE),
                    )
                    .await;
                match page {
                    Ok(events) if events.is_empty() => {
                        if sub.head.changed().await.is_err() {
                            return None;
                        }
                    }
                    Ok(events) => sub.buffer.extend(events),
                    Err(error) => return Some((Err(error), sub)),
                }
            }
        }))
    }
}

struct Subscription {
    store: MemoryEventStore,
    head: watch::Receiver<u64>,
    scope: Scope,
    position: u64,
    buffer: VecDeque<StoredEvent>,
}

/// A publisher that keeps what it was given, and passes it on to live
/// receivers: for tests and in-process consumers.
///
/// It dedupes nothing (at-least-once): a test can check that a consumer
/// handles a repeated event id.
#[derive(Debug, Clone)]
pub struct MemoryPublisher {
    inner: Arc<PublisherInner>,
}

#[derive(Debug)]
struct PublisherInner {
    published: RwLock<Vec<PublishedEvent>>,
    live: broadcast::Sender<PublishedEvent>,
    failures_left: RwLock<u32>,
}

impl Default for MemoryPublisher {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryPublisher {
    /// A publisher with room for 4 096 undelivered events per live receiver.
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(PublisherInner {
                published: RwLock::new(Vec::new()),
                live,
                failures_left: RwLock::new(0),
            }),
        }
    }

    /// Everything published so far, in order.
    pub fn published(&self) -> Vec<PublishedEvent> {
        self.inner
            .published
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets what was published.
    pub fn clear(&self) {
        self.inner
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// A receiver of every event published from now on.
    pub fn receiver(&self) -> broadcast::Receiver<PublishedEvent> {
        self.inner.live.subscribe()
    }

    /// Makes the next `n` publish calls fail as if the broker were down
    /// (to test what callers do then).
    pub fn fail_next(&self, n: u32) {
        *self
            .inner
            .failures_left
            .write()
            .unwrap_or_else(PoisonError::into_inner) = n;
    }
}

/// The broker is down (simulated by [`MemoryPublisher::fail_next`]).
#[derive(Debug, thiserror::Error)]
#[error("simulated publisher outage")]
struct SimulatedOutage;

#[async_trait]
impl Publisher for MemoryPublisher {
    async fn publish(&self, events: &[PublishedEvent]) -> Result<(), PublishError> {
        {
            let mut failures = self
                .inner
                .failures_left
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if *failures > 0 {
                *failures -= 1;
                return Err(PublishError::Unavailable(Box::new(SimulatedOutage)));
            }
        }
        self.inner
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(events);
        for event in events {
            // No live receiver is fine: the event is kept in `published`.
            let _ = self.inner.live.send(event.clone());
        }
        Ok(())
    }
}
