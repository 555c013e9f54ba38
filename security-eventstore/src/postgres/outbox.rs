//! The outbox relay: publishes what appends wrote to `security_outbox`.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use security_core::limits;
use security_core::{
    EventId, PublishError, PublishedEvent, Publisher, RawEvent, Scope, StoreError, StoredEvent,
    StreamId, TenantId,
};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use uuid::Uuid;

use super::errors::{Corrupt, db};
use super::store::{EVENT_COLUMNS, PostgresEventStore, decode_event, from_i64};
use crate::encoded::{Delivery, EncodedEvent, PipelinedPublisher, StoredRow};
use crate::error::Error;

/// One relay at a time per outbox: an advisory lock on the outbox table's
/// oid (in a namespace of our own, so stores in other schemas of the same
/// database do not contend). A single step takes it for its transaction; a
/// pipelined run holds it on its own connection (a session lock: the two
/// kinds exclude each other).
macro_rules! lead_key {
    () => {
        "((24256::bigint << 32) | 'security_outbox'::regclass::oid::bigint)"
    };
}

const TAKE_LEAD: &str = concat!("SELECT pg_try_advisory_xact_lock(", lead_key!(), ")");

/// Takes the lead for a pipelined run on a connection of the relay's own,
/// where every statement of the run reads across tenants (the policies
/// allow it only to members of the tables' owner role, checked next), and
/// says when the server started (see [`Resume`]).
const TAKE_SESSION_LEAD: &str = concat!(
    "SELECT pg_try_advisory_lock(",
    lead_key!(),
    "), pg_postmaster_start_time(), \
     set_config('app.current_tenant', '', false), set_config('app.all_tenants', 'on', false)"
);

/// Gives the connection back as the pool lent it.
const RELEASE_LEAD: &str = concat!(
    "SELECT pg_advisory_unlock(",
    lead_key!(),
    "), set_config('app.all_tenants', '', false)"
);

/// Gives the connection back after another relay had the lead.
const STAND_BY: &str = "SELECT set_config('app.all_tenants', '', false)";

const PENDING: &str = "SELECT count(*) FROM security_outbox";

/// The outbox's size, the `occurred_at` of its oldest event and the
/// database's clock.
const LAG: &str = "SELECT count(*), \
       (SELECT e.occurred_at FROM security_outbox o \
        JOIN security_events e ON e.global_position = o.global_position \
        ORDER BY o.global_position LIMIT 1), \
       now() \
     FROM security_outbox";

/// The oldest outbox positions after `$1`, at most `$2`, summed up: if
/// they are contiguous (the usual case), their events are one index range.
const NEXT_BOUNDS: &str = "SELECT min(global_position), max(global_position), count(*) FROM ( \
       SELECT global_position FROM security_outbox WHERE global_position > $1 \
       ORDER BY global_position LIMIT $2) b";

/// Marks published rows done: every outbox row in one of the ranges
/// (`$1[i]..=$2[i]`), which only ever cover published positions.
///
/// The transaction it commits in (its own, or a step's, which writes
/// nothing else) does not wait for its WAL to reach the disk
/// (`synchronous_commit` off, for that transaction only): if the server
/// crashes before the WAL is flushed, the rows come back and their events
/// are published again, which at-least-once delivery allows (consumers
/// dedupe on the event id). Saves a disk flush per batch.
const DONE: &str = "DELETE FROM security_outbox o \
     USING unnest($1::bigint[], $2::bigint[]) AS r(lo, hi), \
       (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit \
     WHERE o.global_position BETWEEN r.lo AND r.hi";

/// How a relay works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// Events read and handed to the publisher at a time (default 1 000).
    pub batch_size: usize,
    /// How often an idle relay looks at the outbox when no notification
    /// arrives (default 500 ms).
    pub poll_interval: Duration,
    /// The first wait after a failure (default 100 ms); doubled after each
    /// failure in a row, up to `max_backoff` (default 30 s).
    pub min_backoff: Duration,
    /// The longest wait after failures.
    pub max_backoff: Duration,
    /// With a [`PipelinedPublisher`], how many batches may be handed over
    /// and not yet acknowledged at once (default 4; 1 waits for each batch
    /// before handing over the next). Other publishers take one batch at a
    /// time whatever this says.
    pub max_in_flight: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            poll_interval: Duration::from_millis(500),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            max_in_flight: 4,
        }
    }
}

/// What one step of a relay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayOutcome {
    /// Published this many events and removed them from the outbox.
    Published(usize),
    /// The outbox is empty.
    Idle,
    /// Another relay is publishing from this outbox right now.
    Standby,
}

/// How far the outbox is behind, as [`OutboxRelay::lag`] measures it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLag {
    /// Events not yet published.
    pub pending: u64,
    /// How long the oldest of them has waited (the database's clock minus
    /// its `occurred_at`, never negative); `None` when none waits.
    pub oldest_age: Option<Duration>,
}

/// What [`OutboxRelay::run_until`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    /// Events published (a batch published again after a failure counts
    /// again).
    pub published: u64,
    /// Batches published.
    pub batches: u64,
    /// Steps that failed (and were retried).
    pub failures: u64,
}

/// The size of a pipelined run's first read (see [`OutboxRelay::pump`]).
const FIRST_READ: usize = 128;

/// Whom the relay hands events to.
#[derive(Clone)]
enum Sink {
    /// Any publisher: rows are decoded into [`PublishedEvent`]s, one
    /// `publish` call at a time.
    Events(Arc<dyn Publisher>),
    /// Rows are encoded without parsing their payloads, several batches
    /// in flight.
    Pipelined(Arc<dyn PipelinedPublisher>),
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Events(publisher) => publisher.fmt(f),
            Self::Pipelined(publisher) => publisher.fmt(f),
        }
    }
}

/// Publishes the events that appends put in the transactional outbox,
/// through any [`Publisher`].
///
/// Events go out in global order (so each stream's events go out in
/// version order), as [`PublishedEvent`]s (sealed fields stripped), and
/// an outbox row is deleted only after the publisher reported its event
/// delivered. A crash or a failure anywhere before that leaves the row in
/// place and its event is published again: delivery is at-least-once,
/// with the event id as the consumers' dedupe key. Restarting is safe: a
/// relay starts from whatever rows are left. One relay publishes from an
/// outbox at a time (an advisory lock), so batches never overtake each
/// other; the others stand by.
///
/// [`relay_batch`](Self::relay_batch) is one step, in one transaction:
/// take the lock, read up to `batch_size` events, publish them, delete
/// their rows, commit. [`drain`](Self::drain) and
/// [`run_until`](Self::run_until) run *pipelined*: the lock is held on a
/// connection of the relay's own while the outbox has rows, the next batch
/// is read while the current one is being delivered, and each batch's rows
/// are deleted (and committed) as soon as it and every batch before it was
/// acknowledged. After a failure nothing more is handed over; the relay
/// waits for what is still in flight, and the first unacknowledged batch
/// and everything after it are published again.
///
/// Built with [`pipelined`](Self::pipelined) (for `KafkaPublisher`), the
/// relay also skips the payload's parse and re-serialisation when it holds
/// no sealed value, and keeps up to [`RelayConfig::max_in_flight`] batches
/// in flight.
///
/// An idle relay wakes on the store's LISTEN/NOTIFY channel and, in case a
/// notification is lost, every `poll_interval`.
pub struct OutboxRelay {
    store: PostgresEventStore,
    sink: Sink,
    config: RelayConfig,
    resume: Mutex<Option<Resume>>,
}

/// Where the last pipelined run of this relay left the outbox: every row
/// at or below `after` was published and deleted. The next run reads from
/// there instead of from the start of the outbox's index, which a busy
/// outbox fills with deleted entries until vacuum removes them (walking
/// them cost a few milliseconds per run).
///
/// Positions only grow: rows appended later are above every position
/// committed before, so none can appear at or below `after`, except where
/// a deletion is lost: marks are committed without waiting for their WAL
/// flush (see [`DONE`]), and a server crash may undo them. So the hint
/// only holds while the server has not restarted since (its start time is
/// compared) and is dropped after any failure.
#[derive(Debug, Clone, Copy)]
struct Resume {
    after: i64,
    server_started: DateTime<Utc>,
}

impl fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("publisher", &self.sink)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Rows read from the outbox, ready to hand over.
struct Batch {
    /// The positions read, as inclusive ranges, in order.
    ranges: Vec<(i64, i64)>,
    content: Content,
}

enum Content {
    Events(Vec<PublishedEvent>),
    /// Rows for a pipelined publisher, encoded where they are handed over
    /// (see [`Courier`]).
    Rows(Vec<PgRow>),
}

impl Batch {
    fn len(&self) -> usize {
        match &self.content {
            Content::Events(events) => events.len(),
            Content::Rows(rows) => rows.len(),
        }
    }

    fn last_position(&self) -> Option<i64> {
        self.ranges.last().map(|&(_, hi)| hi)
    }
}

/// Appends the range `lo..=hi`, above every range already there, to
/// inclusive ranges, merging it with the last one when they touch.
fn push_range(ranges: &mut Vec<(i64, i64)>, (lo, hi): (i64, i64)) {
    match ranges.last_mut() {
        Some((_, last)) if lo == *last + 1 => *last = hi,
        _ => ranges.push((lo, hi)),
    }
}

/// The events of a batch whose outbox positions are contiguous: one index
/// range.
static RANGE_READ: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {EVENT_COLUMNS} FROM security_events e \
         WHERE e.global_position BETWEEN $1 AND $2 ORDER BY e.global_position"
    )
});

/// The events of the oldest outbox rows after `$1` (at most `$2`), by
/// primary key: a plan that stays an index lookup per row however large
/// the event table grows (a join lets the planner pick a hash join over
/// every event).
static KEYED_READ: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {EVENT_COLUMNS} FROM security_events e \
         WHERE e.global_position = ANY(ARRAY( \
           SELECT o.global_position FROM security_outbox o \
           WHERE o.global_position > $1 ORDER BY o.global_position LIMIT $2)) \
         ORDER BY e.global_position"
    )
});

/// Reads the next batch after position `after`: the oldest outbox rows'
/// positions, then their events, by index range when the positions are
/// contiguous (the usual case) and by key otherwise. Rows are decoded (or
/// encoded) as they arrive, while the server is still sending the rest.
async fn read_batch(
    conn: &mut PgConnection,
    after: i64,
    limit: usize,
    encoded: bool,
) -> Result<Batch, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (lo, hi, count): (Option<i64>, Option<i64>, i64) = sqlx::query_as(NEXT_BOUNDS)
        .bind(after)
        .bind(limit)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    let query = match (lo, hi) {
        (Some(lo), Some(hi)) if hi - lo + 1 == count => sqlx::query(&RANGE_READ).bind(lo).bind(hi),
        (Some(_), Some(_)) => sqlx::query(&KEYED_READ).bind(after).bind(limit),
        _ => {
            return Ok(Batch {
                ranges: Vec::new(),
                content: Content::Events(Vec::new()),
            });
        }
    };
    let capacity = usize::try_from(count).unwrap_or(0);
    let mut ranges = Vec::new();
    let mut content = if encoded {
        Content::Rows(Vec::with_capacity(capacity))
    } else {
        Content::Events(Vec::with_capacity(capacity))
    };
    let mut rows = query.fetch(&mut *conn);
    while let Some(row) = rows.try_next().await.map_err(db)? {
        let position = row.try_get::<i64, _>(0).map_err(db)?;
        push_range(&mut ranges, (position, position));
        match &mut content {
            Content::Rows(rows) => rows.push(row),
            Content::Events(events) => events.push(decode_event(&row, None)?.to_published()),
        }
    }
    Ok(Batch { ranges, content })
}

/// Encodes rows selected with [`EVENT_COLUMNS`] and hands them to a
/// pipelined publisher. A row that does not encode fails the hand-over:
/// nothing of the batch is marked done, and the relay stops with the error.
async fn encode_and_send(
    publisher: &dyn PipelinedPublisher,
    rows: &[PgRow],
) -> Result<Delivery, PublishError> {
    let events = rows
        .iter()
        .map(encode_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| PublishError::Backend(Box::new(error)))?;
    publisher.send(&events).await
}

/// Encodes a row selected with [`EVENT_COLUMNS`] without parsing its
/// payload (see [`EncodedEvent`]).
///
/// The columns are read unchecked: their types are the ones `EVENT_COLUMNS`
/// selects from the table the migrations create, and checking them again
/// for every row of every batch was a measurable part of the relay's
/// cost. A mismatch would still fail to decode (a wrong length or invalid
/// UTF-8), never read memory it should not.
fn encode_row(row: &PgRow) -> Result<EncodedEvent, StoreError> {
    let schema_version = u32::try_from(row.try_get_unchecked::<i64, _>(7).map_err(db)?)
        .map_err(|_| StoreError::Backend(Box::new(Corrupt("a schema version out of range"))))?;
    let stream_id = StreamId::new(
        TenantId::from_uuid(row.try_get_unchecked(2).map_err(db)?),
        row.try_get_unchecked::<&str, _>(3).map_err(db)?,
        row.try_get_unchecked::<Uuid, _>(4).map_err(db)?,
    );
    let stored = StoredRow {
        event_id: EventId::from_uuid(row.try_get_unchecked(1).map_err(db)?),
        stream_id,
        version: from_i64(row.try_get_unchecked(5).map_err(db)?)?,
        global_position: from_i64(row.try_get_unchecked(0).map_err(db)?)?,
        event_type: row.try_get_unchecked(6).map_err(db)?,
        schema_version,
        occurred_at: row.try_get_unchecked(8).map_err(db)?,
        payload: row.try_get_unchecked(9).map_err(db)?,
        metadata: row.try_get_unchecked(10).map_err(db)?,
    };
    // A row no append of this library writes (larger or deeper than the
    // limits, or with metadata of the wrong shape) is published as the
    // read path reads it, marked unreadable, rather than jamming the relay.
    let within_limits = stored.payload.len() <= limits::MAX_PAYLOAD_BYTES
        && limits::json_text_depth(stored.payload, limits::MAX_JSON_DEPTH)
            <= limits::MAX_JSON_DEPTH;
    if within_limits && let Ok(encoded) = EncodedEvent::from_stored(&stored) {
        return Ok(encoded);
    }
    let raw = RawEvent {
        event_id: stored.event_id,
        version: stored.version,
        global_position: stored.global_position,
        event_type: stored.event_type,
        schema_version,
        occurred_at: stored.occurred_at,
        payload: stored.payload,
        metadata: stored.metadata,
    };
    let event = StoredEvent::from_raw(raw, stored.stream_id);
    EncodedEvent::from_published(&event.to_published())
        .map_err(|e| StoreError::Backend(Box::new(e)))
}

/// Deletes the outbox rows of published ranges.
async fn mark_done(conn: &mut PgConnection, ranges: &[(i64, i64)]) -> Result<(), StoreError> {
    let (lo, hi): (Vec<i64>, Vec<i64>) = ranges.iter().copied().unzip();
    sqlx::query(DONE)
        .bind(&lo)
        .bind(&hi)
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// The relay's hold on the outbox for a pipelined run: a pooled connection
/// holding the session advisory lock, with the all-tenants setting on.
///
/// [`release`](Self::release) unlocks it and gives it back to the pool;
/// dropped without that (a failure, or the run's future dropped), the
/// connection is closed instead, which ends the lock and the setting with
/// it: they never reach another user of the pool.
struct Lead {
    conn: Option<PoolConnection<Postgres>>,
}

impl Drop for Lead {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.conn {
            conn.close_on_drop();
        }
    }
}

impl Lead {
    /// Takes the lead, or `None` when another relay holds it. Also says
    /// when the server started.
    async fn take(store: &PostgresEventStore) -> Result<Option<(Self, DateTime<Utc>)>, StoreError> {
        // Closed if dropped from here on: a lock taken by a query whose
        // answer never arrived must not go back to the pool.
        let mut lead = Self {
            conn: Some(store.pool().acquire().await.map_err(db)?),
        };
        let (leader, started): (bool, DateTime<Utc>) = sqlx::query_as(TAKE_SESSION_LEAD)
            .fetch_one(lead.conn()?)
            .await
            .map_err(db)?;
        if !leader {
            sqlx::query(STAND_BY)
                .execute(lead.conn()?)
                .await
                .map_err(db)?;
            // Reset: back to the pool.
            let conn = lead.conn.take();
            drop(conn);
            return Ok(None);
        }
        store.check_all_tenants(lead.conn()?).await?;
        Ok(Some((lead, started)))
    }

    fn conn(&mut self) -> Result<&mut PgConnection, StoreError> {
        match &mut self.conn {
            Some(conn) => Ok(&mut **conn),
            None => Err(StoreError::Backend(Box::new(Corrupt(
                "a relay connection already released",
            )))),
        }
    }

    async fn release(mut self) -> Result<(), StoreError> {
        sqlx::query(RELEASE_LEAD)
            .execute(self.conn()?)
            .await
            .map_err(db)?;
        // Unlocked and reset: the pool may lend it again.
        let conn = self.conn.take();
        drop(conn);
        Ok(())
    }
}

/// A batch handed to the publisher.
struct InFlight {
    ranges: Vec<(i64, i64)>,
    len: usize,
    ack: Ack,
}

/// A batch's delivery, then its outcome.
enum Ack {
    Pending(BoxFuture<'static, Result<(), PublishError>>),
    Done(Result<(), PublishError>),
}

impl Ack {
    /// Polls a pending delivery once; whether it is done.
    fn poll_done(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        if let Self::Pending(delivery) = self
            && let Poll::Ready(outcome) = delivery.as_mut().poll(cx)
        {
            *self = Self::Done(outcome);
        }
        matches!(self, Self::Done(_))
    }

    async fn wait(&mut self) {
        poll_fn(|cx| {
            if self.poll_done(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// Runs `work` while driving the deliveries in flight (a plain
/// `Publisher`'s `publish` only makes progress while it is polled).
async fn driving<T>(in_flight: &mut VecDeque<InFlight>, work: impl Future<Output = T>) -> T {
    let mut work = pin!(work);
    poll_fn(|cx| {
        for batch in in_flight.iter_mut() {
            batch.ack.poll_done(cx);
        }
        work.as_mut().poll(cx)
    })
    .await
}

/// Encodes batches and hands them to a pipelined publisher from a task of
/// its own, in order, so that the relay's task reads the next batch while
/// this one is encoded and taken by the publisher (reading, encoding and
/// handing over cost about the same per event, and a task does one thing
/// at a time). Stopped when dropped.
struct Courier {
    queue: mpsc::UnboundedSender<Parcel>,
    task: AbortHandle,
}

/// A batch for the courier, and where to say how its hand-over went.
type Parcel = (Vec<PgRow>, oneshot::Sender<Result<Delivery, PublishError>>);

/// The courier stopped before handing a batch over.
#[derive(Debug, thiserror::Error)]
#[error("the relay's publishing task stopped")]
struct CourierStopped;

impl Courier {
    /// Starts the task (`None` outside a Tokio runtime: the relay then
    /// hands batches over itself).
    fn start(publisher: &Arc<dyn PipelinedPublisher>) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (queue, mut parcels) = mpsc::unbounded_channel::<Parcel>();
        let publisher = Arc::clone(publisher);
        let task = runtime.spawn(async move {
            while let Some((rows, reply)) = parcels.recv().await {
                let handed = encode_and_send(publisher.as_ref(), &rows).await;
                // Nobody waiting any more is fine: the run was dropped.
                let _ = reply.send(handed);
            }
        });
        Some(Self {
            queue,
            task: task.abort_handle(),
        })
    }

    /// Queues a batch; its delivery.
    fn hand(&self, rows: Vec<PgRow>) -> BoxFuture<'static, Result<(), PublishError>> {
        let (reply, handed) = oneshot::channel();
        let queued = self.queue.send((rows, reply)).is_ok();
        Box::pin(async move {
            if !queued {
                return Err(PublishError::Unavailable(Box::new(CourierStopped)));
            }
            match handed.await {
                Ok(Ok(delivery)) => delivery.await,
                Ok(Err(error)) => Err(error),
                Err(_) => Err(PublishError::Unavailable(Box::new(CourierStopped))),
            }
        })
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether the run should stop reading (shutdown was asked for).
trait StopSignal: Send {
    fn stop(&mut self) -> bool;
}

/// Never stops ([`OutboxRelay::drain`]).
struct Never;

impl StopSignal for Never {
    fn stop(&mut self) -> bool {
        false
    }
}

/// The shutdown future of [`OutboxRelay::run_until`], polled at most until
/// it completes.
struct Shutdown<F> {
    future: std::pin::Pin<Box<F>>,
    done: bool,
}

impl<F: Future<Output = ()> + Send> Shutdown<F> {
    fn new(future: F) -> Self {
        Self {
            future: Box::pin(future),
            done: false,
        }
    }

    async fn wait(&mut self) {
        if !self.done {
            self.future.as_mut().await;
            self.done = true;
        }
    }
}

impl<F: Future<Output = ()> + Send> StopSignal for Shutdown<F> {
    fn stop(&mut self) -> bool {
        if !self.done && self.future.as_mut().now_or_never().is_some() {
            self.done = true;
        }
        self.done
    }
}

impl OutboxRelay {
    /// A relay from the store's outbox to any `publisher`, one batch at a
    /// time.
    pub fn new(store: &PostgresEventStore, publisher: Arc<dyn Publisher>) -> Self {
        Self {
            store: store.clone(),
            sink: Sink::Events(publisher),
            config: RelayConfig::default(),
            resume: Mutex::new(None),
        }
    }

    /// A relay from the store's outbox to a [`PipelinedPublisher`] (such
    /// as `KafkaPublisher`): rows are encoded without parsing payloads
    /// that hold no sealed value, and up to
    /// [`RelayConfig::max_in_flight`] batches are in flight at once.
    pub fn pipelined(store: &PostgresEventStore, publisher: Arc<dyn PipelinedPublisher>) -> Self {
        Self {
            store: store.clone(),
            sink: Sink::Pipelined(publisher),
            config: RelayConfig::default(),
            resume: Mutex::new(None),
        }
    }

    /// Sets how the relay works.
    pub fn with_config(mut self, config: RelayConfig) -> Self {
        self.config = RelayConfig {
            batch_size: config.batch_size.max(1),
            max_in_flight: config.max_in_flight.max(1),
            ..config
        };
        self
    }

    /// How many events wait in the outbox.
    pub async fn pending(&self) -> Result<u64, Error> {
        let mut tx = self.store.begin(Scope::All).await?;
        let count = sqlx::query_scalar::<_, i64>(PENDING)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(from_i64(count)?)
    }

    /// How far the outbox is behind: its size and the age of its oldest
    /// event. [`run_until`](Self::run_until) measures it before each run
    /// and sets the gauges [`OUTBOX_PENDING`](crate::observe::OUTBOX_PENDING)
    /// and [`OUTBOX_LAG`](crate::observe::OUTBOX_LAG).
    pub async fn lag(&self) -> Result<OutboxLag, Error> {
        let mut tx = self.store.begin(Scope::All).await?;
        let (count, oldest, now) =
            sqlx::query_as::<_, (i64, Option<DateTime<Utc>>, DateTime<Utc>)>(LAG)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(OutboxLag {
            pending: from_i64(count)?,
            oldest_age: oldest.map(|at| (now - at).to_std().unwrap_or(Duration::ZERO)),
        })
    }

    /// Measures the lag and sets its gauges (a failure to measure is
    /// logged and leaves them as they were).
    async fn observe_lag(&self) {
        match self.lag().await {
            Ok(lag) => {
                #[allow(
                    clippy::cast_precision_loss,
                    reason = "a gauge is an f64; counts beyond 2^53 are not told apart"
                )]
                metrics::gauge!(crate::observe::OUTBOX_PENDING).set(lag.pending as f64);
                metrics::gauge!(crate::observe::OUTBOX_LAG)
                    .set(lag.oldest_age.unwrap_or(Duration::ZERO).as_secs_f64());
            }
            Err(error) => tracing::debug!(%error, "outbox lag could not be measured"),
        }
    }

    fn encodes(&self) -> bool {
        matches!(self.sink, Sink::Pipelined(_))
    }

    /// Starts delivering a batch (through the courier, if there is one).
    async fn hand_over(&self, batch: Batch, courier: Option<&Courier>) -> InFlight {
        let len = batch.len();
        let ack = match (&self.sink, batch.content) {
            (Sink::Pipelined(_), Content::Rows(rows)) if courier.is_some() => {
                match courier.map(|courier| courier.hand(rows)) {
                    Some(delivery) => Ack::Pending(delivery),
                    None => Ack::Done(Err(PublishError::Unavailable(Box::new(CourierStopped)))),
                }
            }
            (Sink::Pipelined(publisher), Content::Rows(rows)) => {
                match encode_and_send(publisher.as_ref(), &rows).await {
                    Ok(delivery) => Ack::Pending(Box::pin(delivery)),
                    Err(error) => Ack::Done(Err(error)),
                }
            }
            (Sink::Events(publisher), Content::Events(events)) => {
                let publisher = Arc::clone(publisher);
                Ack::Pending(Box::pin(async move { publisher.publish(&events).await }))
            }
            // `read_batch` reads what `encodes()` says the sink takes.
            _ => Ack::Done(Err(PublishError::Backend(Box::new(Corrupt(
                "a batch read for another kind of publisher",
            ))))),
        };
        InFlight {
            ranges: batch.ranges,
            len,
            ack,
        }
    }

    /// Publishes one batch, in one transaction.
    ///
    /// On a publisher failure nothing is removed from the outbox and the
    /// error is returned ([`Error::Publish`]); the next step publishes the
    /// batch again.
    pub async fn relay_batch(&self) -> Result<RelayOutcome, Error> {
        let mut tx = self.store.begin(Scope::All).await?;
        let leader = sqlx::query_scalar::<_, bool>(TAKE_LEAD)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if !leader {
            tx.rollback().await.map_err(db)?;
            return Ok(RelayOutcome::Standby);
        }
        let batch = read_batch(&mut tx, 0, self.config.batch_size, self.encodes()).await?;
        if batch.len() == 0 {
            tx.commit().await.map_err(db)?;
            return Ok(RelayOutcome::Idle);
        }
        let mut sent = self.hand_over(batch, None).await;
        sent.ack.wait().await;
        if let Ack::Done(Err(error)) = sent.ack {
            // Nothing is marked: the whole batch goes out again.
            tx.rollback().await.map_err(db)?;
            return Err(error.into());
        }
        mark_done(&mut tx, &sent.ranges).await?;
        tx.commit().await.map_err(db)?;
        Ok(RelayOutcome::Published(sent.len))
    }

    /// One pipelined run: takes the lead (or returns `None`: another relay
    /// has it) and publishes until a read comes back short (the outbox is
    /// empty) or `stop` says so.
    async fn run(
        &self,
        stats: &mut RelayStats,
        stop: &mut dyn StopSignal,
    ) -> Result<Option<u64>, Error> {
        // Taken out: a failure anywhere in the run leaves no hint.
        let resume = self
            .resume
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some((mut lead, server_started)) = Lead::take(&self.store).await? else {
            // Another relay publishes meanwhile: the hint still holds.
            *self.resume.lock().unwrap_or_else(PoisonError::into_inner) = resume;
            return Ok(None);
        };
        let after = resume
            .filter(|resume| resume.server_started == server_started)
            .map_or(0, |resume| resume.after);
        let (published, after) = self.pump(lead.conn()?, after, stats, stop).await?;
        lead.release().await?;
        *self.resume.lock().unwrap_or_else(PoisonError::into_inner) = Some(Resume {
            after,
            server_started,
        });
        Ok(Some(published))
    }

    /// The pipeline. Each turn does, at the same time, the database's part
    /// (mark the acknowledged batches done, then read the next batch) and
    /// the publisher's (hand over the batch read last turn, if fewer than
    /// the window are unacknowledged), while the deliveries in flight go
    /// on; a turn with nothing to do waits for the oldest delivery. After
    /// a failure nothing more is handed over, nothing from the failed
    /// batch on is marked, and it returns once nothing is in flight.
    ///
    /// Reads start after position `after`; returns how many events were
    /// published and the last position read (all of them marked done).
    /// The first reads are smaller than the batch size (doubling up to it),
    /// so that the publisher starts sooner.
    async fn pump(
        &self,
        conn: &mut PgConnection,
        mut after: i64,
        stats: &mut RelayStats,
        stop: &mut dyn StopSignal,
    ) -> Result<(u64, i64), Error> {
        let (window, courier) = match &self.sink {
            Sink::Pipelined(publisher) => (self.config.max_in_flight, Courier::start(publisher)),
            Sink::Events(_) => (1, None),
        };
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut ahead: Option<Batch> = None;
        let mut limit = self.config.batch_size.min(FIRST_READ);
        let mut exhausted = false;
        let mut published = 0;
        let failure: Error = loop {
            // The oldest batches, acknowledged in order: to mark done.
            let acked = in_flight
                .iter()
                .take_while(|batch| matches!(batch.ack, Ack::Done(Ok(()))))
                .count();
            if acked == 0
                && let Some(InFlight {
                    ack: Ack::Done(Err(_)),
                    ..
                }) = in_flight.front()
                && let Some(InFlight {
                    ack: Ack::Done(Err(error)),
                    ..
                }) = in_flight.pop_front()
            {
                break error.into();
            }
            let failed = in_flight
                .iter()
                .any(|batch| matches!(batch.ack, Ack::Done(Err(_))));
            let send = if !failed && in_flight.len() - acked < window {
                ahead.take()
            } else {
                None
            };
            let read = !failed && ahead.is_none() && !exhausted && !stop.stop();
            exhausted |= ahead.is_none() && !read;
            // Reading is what keeps the publisher busy: marks wait for a
            // turn without a read, or until a window's worth is acked.
            let acked = if read && acked < window { 0 } else { acked };
            let mut done = Vec::new();
            for batch in in_flight.iter().take(acked) {
                for &range in &batch.ranges {
                    push_range(&mut done, range);
                }
            }
            if done.is_empty() && send.is_none() && !read {
                match in_flight.front_mut() {
                    Some(oldest) => oldest.ack.wait().await,
                    None => return Ok((published, after)),
                }
                continue;
            }
            let database = async {
                if !done.is_empty() {
                    mark_done(&mut *conn, &done).await?;
                }
                if read {
                    let batch = read_batch(&mut *conn, after, limit, self.encodes()).await?;
                    return Ok::<_, StoreError>(Some(batch));
                }
                Ok(None)
            };
            let hand_over = async {
                match send {
                    Some(batch) => Some(self.hand_over(batch, courier.as_ref()).await),
                    None => None,
                }
            };
            let (database, sent) =
                driving(&mut in_flight, futures::future::join(database, hand_over)).await;
            if let Some(sent) = sent {
                in_flight.push_back(sent);
            }
            match database {
                Ok(batch) => {
                    for batch in in_flight.drain(..acked) {
                        published += batch.len as u64;
                        stats.published += batch.len as u64;
                        stats.batches += 1;
                    }
                    if let Some(batch) = batch {
                        exhausted = batch.len() < limit;
                        limit = (limit * 2).min(self.config.batch_size);
                        after = batch.last_position().unwrap_or(after);
                        if batch.len() > 0 {
                            ahead = Some(batch);
                        }
                    }
                }
                Err(error) => break error.into(),
            }
        };
        // Wait until nothing is in flight.
        for batch in &mut in_flight {
            batch.ack.wait().await;
        }
        Err(failure)
    }

    /// Publishes until the outbox is empty (waiting while another relay is
    /// active); returns how many events this relay published. Stops at the
    /// first failure.
    pub async fn drain(&self) -> Result<u64, Error> {
        let mut stats = RelayStats::default();
        loop {
            match self.run(&mut stats, &mut Never).await? {
                Some(published) => return Ok(published),
                None => tokio::time::sleep(self.config.poll_interval).await,
            }
        }
    }

    /// Publishes for as long as `shutdown` has not completed: batch after
    /// batch while the outbox has rows, then waits for a notification (or
    /// the poll interval). Failures (database or broker down) are logged
    /// and retried with exponential backoff; nothing is lost meanwhile.
    /// Batches under way when `shutdown` completes are finished first.
    pub async fn run_until<F>(&self, shutdown: F) -> RelayStats
    where
        F: Future<Output = ()> + Send,
    {
        let mut stats = RelayStats::default();
        let mut head = self.store.watch_head();
        let mut shutdown = Shutdown::new(shutdown);
        let mut backoff = self.config.min_backoff;
        loop {
            if shutdown.stop() {
                return stats;
            }
            head.borrow_and_update();
            self.observe_lag().await;
            let before = stats.published;
            let run = self.run(&mut stats, &mut shutdown).await;
            // Failed runs count what they published before the failure.
            metrics::counter!(crate::observe::OUTBOX_PUBLISHED).increment(stats.published - before);
            // How long to wait, and whether a new append may cut it short.
            let (wait, on_append) = match run {
                Ok(Some(_)) => {
                    backoff = self.config.min_backoff;
                    (self.config.poll_interval, true)
                }
                Ok(None) => (self.config.poll_interval, false),
                Err(error) => {
                    stats.failures += 1;
                    metrics::counter!(crate::observe::OUTBOX_FAILURES).increment(1);
                    tracing::warn!(%error, retry_in = ?backoff, "outbox relay step failed");
                    let wait = backoff;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    (wait, false)
                }
            };
            if shutdown.stop() {
                return stats;
            }
            let woken = async {
                if on_append {
                    let _ = tokio::time::timeout(wait, head.changed()).await;
                } else {
                    tokio::time::sleep(wait).await;
                }
            };
            tokio::select! {
                () = shutdown.wait() => return stats,
                () = woken => {}
            }
        }
    }
}
