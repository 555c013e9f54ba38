//! The command bus: load an aggregate by replaying its stream (or catching
//! up a cached state), handle a command, append with the expected version,
//! publish what was stored.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::Instrument;
use uuid::Uuid;

use crate::aggregate::{Aggregate, CommandContext};
use crate::cache::StateCache;
use crate::event::{
    DomainEvent, EventDecodeError, EventEncodeError, NewEvent, StoredEvent, StreamId,
};
use crate::ids::{EventId, TenantId};
use crate::ports::{IdGenerator, Publisher};
use crate::retry::{RetryPolicy, Timer};
use crate::snapshot::{Snapshot, SnapshotCodec, SnapshotPolicy};
use crate::store::{
    AppendRequest, AppendResult, EventStore, ExpectedVersion, StoreError, StreamQuery, Until,
};

/// How many times a command is retried after a concurrency conflict before
/// [`CommandError::Conflict`] is returned, unless a [`RetryPolicy`] says
/// otherwise.
pub const DEFAULT_MAX_RETRIES: u32 = crate::retry::DEFAULT_ATTEMPTS - 1;

/// An aggregate rebuilt from its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The stream's version the state reflects (0: no events).
    pub version: u64,
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct CommandOutcome<A> {
    /// The aggregate after the command.
    pub state: A,
    /// The stream's version after the command.
    pub version: u64,
    /// The events the command stored (for a repeated idempotency key: the
    /// events the first run stored). Empty when the command changed nothing.
    pub events: Vec<StoredEvent>,
    /// Whether this is the first run's result returned again for a
    /// repeated idempotency key.
    pub deduplicated: bool,
    /// Whether the events were handed to the publisher (`false` when it
    /// failed or none is configured; the events are stored either way).
    pub published: bool,
}

/// A command could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The aggregate's rules refused the command. The caller's fault: do
    /// not retry unchanged.
    #[error(transparent)]
    Rejected(E),
    /// Other writers kept changing the stream; the command was retried and
    /// gave up. Retrying later may succeed.
    #[error("too much contention on stream {stream_id}: gave up after {attempts} attempts")]
    Conflict {
        /// The stream.
        stream_id: StreamId,
        /// How many times the command ran.
        attempts: u32,
    },
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be decoded: the stream holds an event this
    /// build does not understand.
    #[error(transparent)]
    Decode(#[from] EventDecodeError),
    /// An event could not be encoded.
    #[error(transparent)]
    Encode(#[from] EventEncodeError),
}

impl<E: std::error::Error + 'static> CommandError<E> {
    /// Whether retrying the same command later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Conflict { .. } => true,
            Self::Store(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// The rejection, if the aggregate refused the command.
    pub fn rejection(&self) -> Option<&E> {
        match self {
            Self::Rejected(e) => Some(e),
            _ => None,
        }
    }
}

/// Loads aggregates and runs commands against an [`EventStore`].
///
/// # Cost of a load
///
/// Without a cache, every load and command replays the aggregate's whole
/// stream. With a [`StateCache`] ([`with_state_cache`](Self::with_state_cache)),
/// a load starts from the state the cache holds and reads only the events
/// appended since, by any process: a command's cost stops growing with
/// the aggregate's history, and optimistic concurrency holds exactly as
/// without the cache (see [`StateCache`]).
///
/// An aggregate with a [`SnapshotCodec`] ([`Aggregate::SNAPSHOT`]) that
/// is not in the cache loads from its newest [`Snapshot`] plus the events
/// after it, and the repository writes a new snapshot whenever its
/// [`SnapshotPolicy`] says one is due (default: every 12 events). So its
/// cost stays flat in its history even on a cold start or on another
/// replica. A snapshot that cannot be used (another schema version, not
/// inside a temporal bound, not decodable) is ignored: the stream is
/// replayed instead.
#[derive(Debug, Clone)]
pub struct Repository {
    store: Arc<dyn EventStore>,
    publisher: Option<Arc<dyn Publisher>>,
    ids: Arc<dyn IdGenerator>,
    retry: RetryPolicy,
    timer: Option<Arc<dyn Timer>>,
    cache: Option<StateCache>,
    snapshots: SnapshotPolicy,
}

impl Repository {
    /// A repository over a store; new event ids come from `ids`.
    pub fn new(store: Arc<dyn EventStore>, ids: Arc<dyn IdGenerator>) -> Self {
        Self {
            store,
            publisher: None,
            ids,
            retry: RetryPolicy::DEFAULT,
            timer: None,
            cache: None,
            snapshots: SnapshotPolicy::DEFAULT,
        }
    }

    /// When to write snapshots (default [`SnapshotPolicy::DEFAULT`]).
    pub fn with_snapshots(mut self, policy: SnapshotPolicy) -> Self {
        self.snapshots = policy;
        self
    }

    /// When snapshots are written.
    pub fn snapshot_policy(&self) -> SnapshotPolicy {
        self.snapshots
    }

    /// The retry policy of [`execute`](Self::execute) (default:
    /// [`RetryPolicy::DEFAULT`]). [`execute_with`](Self::execute_with)
    /// chooses one per call.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Waits between retries with `timer` (without one, retries follow
    /// each other at once, whatever the policy's backoff).
    pub fn with_timer(mut self, timer: Arc<dyn Timer>) -> Self {
        self.timer = Some(timer);
        self
    }

    /// The retry policy of [`execute`](Self::execute).
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The timer that paces retries, if one is configured.
    pub fn timer(&self) -> Option<&Arc<dyn Timer>> {
        self.timer.as_ref()
    }

    /// Keeps the aggregates it rebuilds in `cache`, so that later loads
    /// read only the events appended since. Repositories may share a
    /// cache; one cache holds every aggregate type.
    pub fn with_state_cache(mut self, cache: StateCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The state cache, if one is configured.
    pub fn state_cache(&self) -> Option<&StateCache> {
        self.cache.as_ref()
    }

    /// Hands every stored event to `publisher` after the append. Leave it
    /// unset when a transactional outbox publishes instead.
    pub fn with_publisher(mut self, publisher: Arc<dyn Publisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// Sets how many times [`execute`](Self::execute) retries a command
    /// after a conflict (the policy's backoff stays).
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.retry.max_attempts = max_retries.saturating_add(1);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The id generator.
    pub fn ids(&self) -> &Arc<dyn IdGenerator> {
        &self.ids
    }

    /// The publisher, if one is configured (services that append through
    /// the store directly publish through it too).
    pub fn publisher(&self) -> Option<&Arc<dyn Publisher>> {
        self.publisher.as_ref()
    }

    /// How many times [`execute`](Self::execute) retries a command after
    /// a conflict.
    pub fn max_retries(&self) -> u32 {
        self.retry.attempts() - 1
    }

    /// The stream of aggregate `A` with this id in this tenant.
    pub fn stream_id<A: Aggregate>(tenant_id: TenantId, id: impl Into<Uuid>) -> StreamId {
        StreamId::new(tenant_id, A::TYPE, id.into())
    }

    /// The aggregate as of the newest event in the store.
    pub async fn load<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        id: impl Into<Uuid> + Send,
    ) -> Result<Loaded<A>, CommandError<A::Error>> {
        self.load_until(tenant_id, id, Until::End).await
    }

    /// The aggregate as it was at a version, position or time.
    pub async fn load_until<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        id: impl Into<Uuid> + Send,
        until: Until,
    ) -> Result<Loaded<A>, CommandError<A::Error>> {
        let stream_id = Self::stream_id::<A>(tenant_id, id);
        let folded = self.fold::<A>(&stream_id, until).await?;
        Ok(Loaded {
            state: folded.state,
            version: folded.version,
        })
    }

    /// The aggregate as of `until`: caught up from the cache when it holds
    /// a state inside the bound, else from the store (a snapshot and the
    /// events after it, or the whole stream). A latest state (`Until::End`)
    /// is snapshotted when due and goes back into the cache.
    async fn fold<A: Aggregate>(
        &self,
        stream_id: &StreamId,
        until: Until,
    ) -> Result<Folded<A>, CommandError<A::Error>> {
        if let Some(cache) = &self.cache
            && let Some(cached) = cache.get::<Folded<A>>(stream_id)
            && cached.inside(until)
        {
            let query = StreamQuery {
                from_version: cached.version + 1,
                until,
                limit: usize::MAX,
            };
            let tail = self.store.read_stream(stream_id, query).await?;
            // A store that does not continue the cached state (it was
            // emptied or replaced) gets a full replay instead.
            if tail
                .first()
                .is_none_or(|first| first.version == cached.version + 1)
            {
                let mut folded = (*cached).clone();
                folded.fold(stream_id, &tail)?;
                if until == Until::End && folded.version > cached.version {
                    self.snapshot_if_due(stream_id, &mut folded).await;
                    cache.put(stream_id, folded.version, Arc::new(folded.clone()));
                }
                return Ok(folded);
            }
            if until == Until::End {
                cache.forget(stream_id);
            }
        }
        let mut folded = self.fold_cold::<A>(stream_id, until).await?;
        if until == Until::End {
            self.snapshot_if_due(stream_id, &mut folded).await;
            if let Some(cache) = &self.cache {
                cache.put(stream_id, folded.version, Arc::new(folded.clone()));
            }
        }
        Ok(folded)
    }

    /// The aggregate as of `until` from the store alone: its newest usable
    /// snapshot and the events after it, or every event.
    async fn fold_cold<A: Aggregate>(
        &self,
        stream_id: &StreamId,
        until: Until,
    ) -> Result<Folded<A>, CommandError<A::Error>> {
        let query = StreamQuery::until(until);
        if let Some(codec) = A::SNAPSHOT {
            let (snapshot, tail) = self
                .store
                .read_stream_from_snapshot(stream_id, codec.schema_version, query)
                .await?;
            match snapshot {
                None => {
                    let mut folded = Folded::default();
                    folded.fold(stream_id, &tail)?;
                    return Ok(folded);
                }
                Some(snapshot) => {
                    if let Some(mut folded) = Folded::restore(&codec, stream_id, &snapshot, until)
                        && tail
                            .first()
                            .is_none_or(|first| first.version == snapshot.version + 1)
                    {
                        folded.fold(stream_id, &tail)?;
                        return Ok(folded);
                    }
                    tracing::warn!(
                        stream = %stream_id,
                        version = snapshot.version,
                        "unusable snapshot ignored: replaying the stream"
                    );
                }
            }
        }
        let events = self.store.read_stream(stream_id, query).await?;
        let mut folded = Folded::default();
        folded.fold(stream_id, &events)?;
        Ok(folded)
    }

    /// Writes a snapshot of a latest state if the policy says one is due.
    /// A failure costs nothing but speed: it is logged, and a snapshot the
    /// store refused is not tried again for this state.
    async fn snapshot_if_due<A: Aggregate>(&self, stream_id: &StreamId, folded: &mut Folded<A>) {
        let Some(codec) = A::SNAPSHOT else { return };
        let Some(occurred_until) = folded.latest else {
            return;
        };
        if !self
            .snapshots
            .is_due(folded.version, folded.snapshot_version)
        {
            return;
        }
        let state = match codec.encode(&folded.state) {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(stream = %stream_id, %error, "state could not be encoded for a snapshot");
                folded.snapshot_version = folded.version;
                return;
            }
        };
        let snapshot = Snapshot {
            stream_id: stream_id.clone(),
            version: folded.version,
            global_position: folded.position,
            occurred_until,
            schema_version: codec.schema_version,
            state: Arc::new(state),
        };
        match self.store.save_snapshot(&snapshot).await {
            Ok(()) => folded.snapshot_version = folded.version,
            Err(error) if error.is_retryable() => {
                tracing::debug!(stream = %stream_id, %error, "snapshot not written, tried again later");
            }
            Err(error) => {
                tracing::warn!(stream = %stream_id, %error, "snapshot refused by the store");
                folded.snapshot_version = folded.version;
            }
        }
    }

    /// Runs a command against the aggregate `id` in the context's tenant,
    /// retried after conflicts as the repository's [`RetryPolicy`] says.
    ///
    /// Loads the aggregate, handles the command, appends the events
    /// expecting the version it loaded, and retries from the load on a
    /// conflict.
    ///
    /// With an idempotency key in the context, a command already run with
    /// that key returns the first run's outcome (`deduplicated`) and
    /// appends nothing. The key is looked up again whenever something may
    /// mean that a concurrent run with the same key got there first: a
    /// version conflict, a rejection or a command that changes nothing
    /// (the first run's events may be why), and any append error (a
    /// store may report a key taken concurrently as an error of its own,
    /// or lose the answer of an append that committed). So of concurrent
    /// callers with one key, one runs the command and every other one gets
    /// its result.
    pub async fn execute<A: Aggregate>(
        &self,
        id: impl Into<Uuid> + Send,
        command: &A::Command,
        ctx: &CommandContext,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>> {
        self.execute_with(id, command, ctx, &self.retry).await
    }

    /// [`execute`](Self::execute) with this call's own retry policy: e.g.
    /// [`RetryPolicy::persistent`] for a fact that must be recorded
    /// however contended its stream is. [`CommandError::Conflict`] comes
    /// back only after `policy.max_attempts` attempts all conflicted.
    pub async fn execute_with<A: Aggregate>(
        &self,
        id: impl Into<Uuid> + Send,
        command: &A::Command,
        ctx: &CommandContext,
        policy: &RetryPolicy,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>> {
        let span = tracing::info_span!(
            "security.command",
            aggregate = A::TYPE,
            tenant = %ctx.tenant_id,
            outcome = tracing::field::Empty,
        );
        let result = self
            .run_command::<A>(id, command, ctx, policy)
            .instrument(span.clone())
            .await;
        let outcome = match &result {
            Ok(outcome) if outcome.deduplicated => "deduplicated",
            Ok(outcome) if outcome.events.is_empty() => "unchanged",
            Ok(_) => "ok",
            Err(CommandError::Rejected(_)) => "rejected",
            Err(CommandError::Conflict { .. }) => "conflict",
            Err(_) => "error",
        };
        span.record("outcome", outcome);
        metrics::counter!(crate::observe::COMMANDS, "aggregate" => A::TYPE, "outcome" => outcome)
            .increment(1);
        result
    }

    async fn run_command<A: Aggregate>(
        &self,
        id: impl Into<Uuid> + Send,
        command: &A::Command,
        ctx: &CommandContext,
        policy: &RetryPolicy,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>> {
        let stream_id = Self::stream_id::<A>(ctx.tenant_id, id);
        if let Some(original) = self.recorded(ctx).await? {
            return self.replayed(&stream_id, original).await;
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut folded = self.fold::<A>(&stream_id, Until::End).await?;
            let version = folded.version;
            let events = match folded.state.handle(command, ctx) {
                Ok(events) => events,
                Err(rejection) => {
                    if let Some(original) = self.recorded(ctx).await? {
                        return self.replayed(&stream_id, original).await;
                    }
                    return Err(CommandError::Rejected(rejection));
                }
            };
            if events.is_empty() {
                if let Some(original) = self.recorded(ctx).await? {
                    return self.replayed(&stream_id, original).await;
                }
                return Ok(CommandOutcome {
                    state: folded.state,
                    version,
                    events: Vec::new(),
                    deduplicated: false,
                    published: false,
                });
            }
            let new_events = self.encode(&events, ctx)?;
            let expected = if version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(version)
            };
            let request = AppendRequest {
                stream_id: stream_id.clone(),
                expected,
                events: new_events,
                idempotency_key: ctx.idempotency_key.clone(),
            };
            match self.store.append(request).await {
                Ok(result) if result.deduplicated => {
                    return self.replayed(&stream_id, result).await;
                }
                Ok(result) => {
                    for event in &events {
                        folded.state.apply(event);
                    }
                    folded.version = result.last_version;
                    folded.position = result.last_position;
                    folded.latest = Some(folded.latest.map_or(ctx.now, |t| t.max(ctx.now)));
                    self.snapshot_if_due(&stream_id, &mut folded).await;
                    if let Some(cache) = &self.cache {
                        cache.put(&stream_id, folded.version, Arc::new(folded.clone()));
                    }
                    let stored = self.read_range(&stream_id, &result).await?;
                    let published = self.publish(&stored).await;
                    return Ok(CommandOutcome {
                        state: folded.state,
                        version: result.last_version,
                        events: stored,
                        deduplicated: false,
                        published,
                    });
                }
                Err(StoreError::Conflict { actual, .. }) => {
                    if actual < version
                        && let Some(cache) = &self.cache
                    {
                        // The store is behind the cached state: it is not
                        // the store the state came from. Start over from it.
                        cache.forget(&stream_id);
                    }
                    if let Some(original) = self.recorded(ctx).await? {
                        return self.replayed(&stream_id, original).await;
                    }
                    if attempts >= policy.attempts() {
                        return Err(CommandError::Conflict {
                            stream_id,
                            attempts,
                        });
                    }
                    tracing::debug!(stream = %stream_id, attempts, "concurrency conflict, retrying");
                    let ceiling = policy.ceiling(attempts);
                    if let Some(timer) = &self.timer
                        && !ceiling.is_zero()
                    {
                        timer.sleep(timer.jitter(ceiling)).await;
                    }
                }
                Err(error @ StoreError::DuplicateIdempotencyKey { .. }) => {
                    return Err(error.into());
                }
                Err(error) => {
                    // Only a key found now changes the answer; a failed
                    // lookup leaves the append's own error to report.
                    if let Ok(Some(original)) = self.recorded(ctx).await {
                        return self.replayed(&stream_id, original).await;
                    }
                    return Err(error.into());
                }
            }
        }
    }

    /// The result of the append that used the context's idempotency key,
    /// if it has one and it was used.
    async fn recorded(&self, ctx: &CommandContext) -> Result<Option<AppendResult>, StoreError> {
        match &ctx.idempotency_key {
            Some(key) => self.store.idempotent_result(ctx.tenant_id, key).await,
            None => Ok(None),
        }
    }

    fn encode<E: DomainEvent, X: std::error::Error + 'static>(
        &self,
        events: &[E],
        ctx: &CommandContext,
    ) -> Result<Vec<NewEvent>, CommandError<X>> {
        Ok(new_events(events, ctx, &*self.ids)?)
    }

    async fn read_range<X: std::error::Error + 'static>(
        &self,
        stream_id: &StreamId,
        result: &AppendResult,
    ) -> Result<Vec<StoredEvent>, CommandError<X>> {
        let query = StreamQuery {
            from_version: result.first_version,
            until: Until::Version(result.last_version),
            limit: usize::MAX,
        };
        Ok(self.store.read_stream(stream_id, query).await?)
    }

    async fn replayed<A: Aggregate>(
        &self,
        stream_id: &StreamId,
        original: AppendResult,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>> {
        if original.stream_id != *stream_id {
            return Err(StoreError::DuplicateIdempotencyKey {
                original: Box::new(original),
            }
            .into());
        }
        let events = self.read_range(stream_id, &original).await?;
        let folded = self
            .fold::<A>(stream_id, Until::Version(original.last_version))
            .await?;
        Ok(CommandOutcome {
            state: folded.state,
            version: folded.version,
            events,
            deduplicated: true,
            published: false,
        })
    }

    async fn publish(&self, stored: &[StoredEvent]) -> bool {
        let Some(publisher) = &self.publisher else {
            return false;
        };
        let published: Vec<_> = stored.iter().map(StoredEvent::to_published).collect();
        match publisher.publish(&published).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, count = published.len(), "events stored but not published");
                false
            }
        }
    }
}

/// Turns domain events into events to append: a new id each (from `ids`),
/// the context's time and metadata, the stable type name, schema version
/// and encoded payload.
pub fn new_events<E: DomainEvent>(
    events: &[E],
    ctx: &CommandContext,
    ids: &dyn IdGenerator,
) -> Result<Vec<NewEvent>, EventEncodeError> {
    let metadata = Arc::new(ctx.metadata());
    events
        .iter()
        .map(|event| {
            Ok(NewEvent {
                event_id: EventId::from_uuid(ids.new_id()),
                event_type: Arc::from(event.event_type()),
                schema_version: event.schema_version(),
                occurred_at: ctx.now,
                payload: Arc::new(event.encode()?),
                metadata: Arc::clone(&metadata),
            })
        })
        .collect()
}

/// Folds stored events into a fresh aggregate, checking that they belong
/// to the stream and come in version order.
pub fn replay<A: Aggregate>(
    stream_id: &StreamId,
    events: &[StoredEvent],
) -> Result<Loaded<A>, EventDecodeError> {
    let mut state = A::default();
    let mut version = 0;
    for stored in events {
        debug_assert_eq!(
            &stored.stream_id, stream_id,
            "store returned an event of another stream"
        );
        debug_assert_eq!(
            stored.version,
            version + 1,
            "store returned events out of order"
        );
        let event: A::Event = stored.decode()?;
        state.apply(&event);
        version = stored.version;
    }
    Ok(Loaded { state, version })
}

/// An aggregate folded from its stream, with what it takes to tell
/// whether it lies inside a temporal bound.
#[derive(Debug, Clone, Default)]
struct Folded<A> {
    state: A,
    /// The version of the last event folded (0: none).
    version: u64,
    /// The global position of the last event folded (0: none).
    position: u64,
    /// The latest `occurred_at` among the events folded.
    latest: Option<DateTime<Utc>>,
    /// The version of the newest snapshot known for the stream (0: none).
    snapshot_version: u64,
}

impl<A: Aggregate> Folded<A> {
    /// The state a snapshot holds, if it is of this stream and codec,
    /// inside the bound, and decodes.
    fn restore(
        codec: &SnapshotCodec<A>,
        stream_id: &StreamId,
        snapshot: &Snapshot,
        until: Until,
    ) -> Option<Self> {
        if snapshot.stream_id != *stream_id
            || snapshot.schema_version != codec.schema_version
            || snapshot.version == 0
            || !snapshot.is_inside(until)
        {
            return None;
        }
        let state = codec.decode(&snapshot.state).ok()?;
        Some(Self {
            state,
            version: snapshot.version,
            position: snapshot.global_position,
            latest: Some(snapshot.occurred_until),
            snapshot_version: snapshot.version,
        })
    }

    /// Folds events in, in the order the store returned them.
    fn fold(
        &mut self,
        stream_id: &StreamId,
        events: &[StoredEvent],
    ) -> Result<(), EventDecodeError> {
        for stored in events {
            debug_assert_eq!(
                &stored.stream_id, stream_id,
                "store returned an event of another stream"
            );
            let event: A::Event = stored.decode()?;
            self.state.apply(&event);
            self.version = stored.version;
            self.position = stored.global_position;
            self.latest = Some(
                self.latest
                    .map_or(stored.occurred_at, |t| t.max(stored.occurred_at)),
            );
        }
        Ok(())
    }

    /// Whether every event folded so far is inside `until`, so that the
    /// state can be caught up to that bound.
    fn inside(&self, until: Until) -> bool {
        match until {
            Until::End => true,
            Until::Version(v) => self.version <= v,
            Until::Position(p) => self.position <= p,
            Until::Time(t) => self.latest.is_none_or(|latest| latest <= t),
        }
    }
}
