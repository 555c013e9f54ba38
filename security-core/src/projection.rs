//! Read models (CQRS): a [`Projection`] folds the global stream into a
//! query-friendly shape; a [`ProjectionRunner`] feeds it from a stored
//! checkpoint, first catching up, then following new events live.
//!
//! A projection must be deterministic: rebuilt from position 0 it reaches
//! the same state as one that followed the stream live.
//!
//! One bad event never stops a projection: an event it cannot decode or
//! apply is recorded as a [`DeadLetter`] (in the [`CheckpointStore`], with
//! the reason), reported (a `tracing` warning and the runner's
//! [`ProjectionHealth`]), and skipped. Store errors are different: they
//! say nothing about the event, so the runner stops at it, and
//! [`ProjectionRunner::run_supervised`] waits and tries again, for ever,
//! until it is shut down.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::{Either, select};

use crate::event::{EventDecodeError, StoredEvent};
use crate::ids::{EventId, TenantId};
use crate::retry::{Backoff, Timer};
use crate::store::{EventStore, GlobalQuery, Scope, StoreError};

/// A projection could not apply an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// An event could not be decoded. The runner records it as a dead
    /// letter and goes on.
    #[error(transparent)]
    Decode(#[from] EventDecodeError),
    /// The store or the checkpoint store failed. Retry later (the
    /// supervised runner does): nothing about the event is known.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The projection's own logic refused the event; the message says
    /// how. The runner records it as a dead letter and goes on.
    #[error("projection {projection} failed: {reason}")]
    Failed {
        /// The projection.
        projection: String,
        /// What went wrong.
        reason: String,
    },
}

impl ProjectionError {
    /// Whether the error is about the event (so it is recorded and
    /// skipped) rather than about the store (so it is retried).
    pub fn is_event_error(&self) -> bool {
        !matches!(self, Self::Store(_))
    }
}

/// A read model fed from the global stream.
pub trait Projection: Send {
    /// A stable name, the key of its checkpoint.
    fn name(&self) -> &str;

    /// Folds one event in. Events arrive in global order, each once per run.
    ///
    /// An error other than [`ProjectionError::Store`] makes the runner
    /// record the event as a dead letter and go on with the next one, so
    /// an event must either be applied whole or leave the state untouched.
    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError>;

    /// Forgets everything (before a rebuild from position 0).
    fn reset(&mut self);

    /// Called after each batch: the moment to publish a new immutable
    /// snapshot to readers.
    fn flush(&mut self) {}
}

/// An event a projection could not decode or apply, kept so that it can be
/// looked at (and the projection rebuilt once the cause is fixed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The projection.
    pub projection: String,
    /// The event's global position.
    pub global_position: u64,
    /// The event's id.
    pub event_id: EventId,
    /// The event's tenant.
    pub tenant_id: TenantId,
    /// The event's type.
    pub event_type: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The longest dead-letter reason kept, in bytes.
pub const MAX_DEAD_LETTER_REASON: usize = 2048;

impl DeadLetter {
    fn new(projection: &str, event: &StoredEvent, error: &dyn std::error::Error) -> Self {
        // The error and its sources: what went wrong and where.
        let mut reason = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        if reason.len() > MAX_DEAD_LETTER_REASON {
            let mut end = MAX_DEAD_LETTER_REASON;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        Self {
            projection: projection.to_owned(),
            global_position: event.global_position,
            event_id: event.event_id,
            tenant_id: event.tenant_id(),
            event_type: event.event_type.to_string(),
            reason,
        }
    }
}

/// Where projections keep their checkpoints and dead letters.
#[async_trait]
pub trait CheckpointStore: fmt::Debug + Send + Sync {
    /// The last position a projection applied (`None`: never ran).
    async fn load(&self, projection: &str) -> Result<Option<u64>, StoreError>;

    /// Records the last position a projection applied.
    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError>;

    /// Records an event a projection skipped. Recording the same
    /// projection and position again keeps the first record.
    async fn record_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError>;

    /// The events a projection skipped, in position order.
    async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetter>, StoreError>;
}

/// Checkpoints and dead letters in memory (lost on restart; the
/// projection rebuilds).
#[derive(Debug, Default, Clone)]
pub struct InMemoryCheckpoints {
    positions: Arc<Mutex<HashMap<String, u64>>>,
    dead: Arc<Mutex<HashMap<String, Vec<DeadLetter>>>>,
}

impl InMemoryCheckpoints {
    /// An empty checkpoint store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CheckpointStore for InMemoryCheckpoints {
    async fn load(&self, projection: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(projection)
            .copied())
    }

    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(projection.to_owned(), position);
        Ok(())
    }

    async fn record_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let mut dead = self.dead.lock().unwrap_or_else(PoisonError::into_inner);
        let letters = dead.entry(letter.projection.clone()).or_default();
        if let Err(at) =
            letters.binary_search_by_key(&letter.global_position, |l| l.global_position)
        {
            letters.insert(at, letter.clone());
        }
        Ok(())
    }

    async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .dead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(projection)
            .cloned()
            .unwrap_or_default())
    }
}

/// What a projection runner is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProjectionStatus {
    /// Not started yet.
    Idle,
    /// Reading what was committed before it started following.
    CatchingUp,
    /// Following new events as they commit.
    Live,
    /// Waiting after a store error before it tries again.
    Retrying,
    /// Shut down (or, unsupervised, returned an error).
    Stopped,
}

/// A runner's health, as [`HealthHandle::report`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionHealth {
    /// The projection.
    pub projection: String,
    /// What the runner is doing.
    pub status: ProjectionStatus,
    /// The last global position applied (or skipped as a dead letter).
    pub position: u64,
    /// The highest global position the runner knows committed in the
    /// store (any scope).
    pub head: u64,
    /// Store errors in a row (0 once a batch got through).
    pub consecutive_failures: u32,
    /// The last store error, if the last attempt failed.
    pub last_error: Option<String>,
    /// Events skipped as dead letters since the runner was made.
    pub dead_letters: u64,
    /// Times a supervised runner started over after a store error.
    pub restarts: u64,
}

impl ProjectionHealth {
    /// How many positions the projection is behind the store's head.
    pub fn lag(&self) -> u64 {
        self.head.saturating_sub(self.position)
    }

    /// Whether the projection is following the store without errors.
    pub fn is_healthy(&self) -> bool {
        self.status == ProjectionStatus::Live && self.consecutive_failures == 0
    }
}

/// A live view of a runner's [`ProjectionHealth`], for a health endpoint
/// or a metrics exporter; cloning gives another view of the same runner.
#[derive(Debug, Clone)]
pub struct HealthHandle {
    health: Arc<Mutex<ProjectionHealth>>,
    /// The projection's name, as the metrics' label.
    label: Arc<str>,
}

impl HealthHandle {
    fn new(projection: &str) -> Self {
        Self {
            health: Arc::new(Mutex::new(ProjectionHealth {
                projection: projection.to_owned(),
                status: ProjectionStatus::Idle,
                position: 0,
                head: 0,
                consecutive_failures: 0,
                last_error: None,
                dead_letters: 0,
                restarts: 0,
            })),
            label: Arc::from(projection),
        }
    }

    /// The health now.
    pub fn report(&self) -> ProjectionHealth {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes the health and sets the lag gauge
    /// ([`PROJECTION_LAG`](crate::observe::PROJECTION_LAG)) to match.
    fn update(&self, change: impl FnOnce(&mut ProjectionHealth)) {
        let lag = {
            let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
            change(&mut health);
            health.lag()
        };
        #[allow(
            clippy::cast_precision_loss,
            reason = "a gauge is an f64; lags beyond 2^53 events are not told apart"
        )]
        metrics::gauge!(crate::observe::PROJECTION_LAG, "projection" => Arc::clone(&self.label))
            .set(lag as f64);
    }
}

/// The default number of events read per batch.
pub const DEFAULT_BATCH_SIZE: usize = 512;

/// Feeds a projection from the global stream.
pub struct ProjectionRunner<P> {
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn CheckpointStore>,
    projection: P,
    scope: Scope,
    batch_size: usize,
    /// The last position applied; `None` until the checkpoint is loaded.
    position: Option<u64>,
    health: HealthHandle,
}

impl<P: Projection> fmt::Debug for ProjectionRunner<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("projection", &self.projection.name())
            .field("scope", &self.scope)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<P: Projection> ProjectionRunner<P> {
    /// A runner that resumes from the projection's stored checkpoint.
    pub async fn new(
        store: Arc<dyn EventStore>,
        checkpoints: Arc<dyn CheckpointStore>,
        projection: P,
        scope: Scope,
    ) -> Result<Self, ProjectionError> {
        let mut runner = Self::deferred(store, checkpoints, projection, scope);
        runner.load_checkpoint().await?;
        Ok(runner)
    }

    /// A runner that loads its checkpoint when it first runs (so it can be
    /// made, and its [`health`](Self::health) handed out, while the store
    /// is unreachable): for [`run_supervised`](Self::run_supervised).
    pub fn deferred(
        store: Arc<dyn EventStore>,
        checkpoints: Arc<dyn CheckpointStore>,
        projection: P,
        scope: Scope,
    ) -> Self {
        let health = HealthHandle::new(projection.name());
        Self {
            store,
            checkpoints,
            projection,
            scope,
            batch_size: DEFAULT_BATCH_SIZE,
            position: None,
            health,
        }
    }

    /// Sets how many events are read per batch.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The last position applied (0 before the checkpoint is loaded).
    pub fn position(&self) -> u64 {
        self.position.unwrap_or(0)
    }

    /// A live view of the runner's health.
    pub fn health(&self) -> HealthHandle {
        self.health.clone()
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The projection, for changes outside the runner.
    pub fn projection_mut(&mut self) -> &mut P {
        &mut self.projection
    }

    /// Gives the projection back.
    pub fn into_inner(self) -> P {
        self.projection
    }

    /// The events this projection skipped, in position order.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, ProjectionError> {
        Ok(self
            .checkpoints
            .dead_letters(self.projection.name())
            .await?)
    }

    async fn load_checkpoint(&mut self) -> Result<u64, ProjectionError> {
        if let Some(position) = self.position {
            return Ok(position);
        }
        let position = self
            .checkpoints
            .load(self.projection.name())
            .await?
            .unwrap_or(0);
        self.position = Some(position);
        self.health.update(|h| h.position = position);
        Ok(position)
    }

    /// Applies every event committed so far; returns how many (dead
    /// letters included).
    pub async fn catch_up(&mut self) -> Result<u64, ProjectionError> {
        let mut position = self.load_checkpoint().await?;
        self.health
            .update(|h| h.status = ProjectionStatus::CatchingUp);
        if let Ok(head) = self.store.head_position().await {
            self.health.update(|h| h.head = h.head.max(head));
        }
        let mut applied = 0;
        loop {
            let batch = self
                .store
                .read_global(self.scope, GlobalQuery::after(position, self.batch_size))
                .await?;
            if batch.is_empty() {
                return Ok(applied);
            }
            applied += self.apply_batch(&batch).await?;
            position = self.position();
        }
    }

    /// Forgets everything and applies the whole stream again from 0.
    pub async fn rebuild(&mut self) -> Result<u64, ProjectionError> {
        self.projection.reset();
        self.checkpoints.save(self.projection.name(), 0).await?;
        self.position = Some(0);
        self.health.update(|h| h.position = 0);
        self.catch_up().await
    }

    /// Catches up, then applies new events as they commit, until `shutdown`
    /// completes. Returns at the first store error (see
    /// [`run_supervised`](Self::run_supervised) for a runner that does
    /// not).
    pub async fn run_until<F>(&mut self, shutdown: F) -> Result<(), ProjectionError>
    where
        F: Future<Output = ()> + Send,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        let result = self.follow(shutdown.as_mut()).await;
        self.health.update(|h| h.status = ProjectionStatus::Stopped);
        result.map(|_| ())
    }

    /// Runs until `shutdown` completes, whatever the store does: catches
    /// up, follows live, and after a store error (a PostgreSQL outage, a
    /// timeout) waits a jittered, doubling backoff (from `backoff`'s base
    /// to its ceiling) and resumes from the last position applied. It
    /// never returns before `shutdown`; every failure is logged and shown
    /// in [`health`](Self::health).
    pub async fn run_supervised<F>(&mut self, timer: &dyn Timer, backoff: Backoff, shutdown: F)
    where
        F: Future<Output = ()> + Send,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut failures = 0_u32;
        let mut last_failed_at = None;
        loop {
            match self.follow(shutdown.as_mut()).await {
                Ok(Followed::ShutDown) => break,
                Ok(Followed::StreamEnded) => {
                    // A live feed must not end before shutdown: start over.
                    tracing::warn!(
                        projection = self.projection.name(),
                        "subscription ended; resubscribing"
                    );
                }
                Err(error) => {
                    // Progress since the last failure starts the backoff over.
                    if last_failed_at != Some(self.position()) {
                        failures = 0;
                    }
                    last_failed_at = Some(self.position());
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        projection = self.projection.name(),
                        %error,
                        failures,
                        "projection stopped by a store error; retrying"
                    );
                    let text = error.to_string();
                    self.health.update(|h| {
                        h.status = ProjectionStatus::Retrying;
                        h.consecutive_failures = failures;
                        h.last_error = Some(text);
                    });
                    let wait = timer.jitter(backoff.ceiling(failures));
                    match select(shutdown.as_mut(), timer.sleep(wait)).await {
                        Either::Left(_) => break,
                        Either::Right(_) => {}
                    }
                }
            }
            self.health.update(|h| h.restarts += 1);
        }
        self.health.update(|h| h.status = ProjectionStatus::Stopped);
    }

    /// Catches up and follows live until `shutdown` completes, the feed
    /// ends, or the store fails.
    async fn follow<F>(&mut self, mut shutdown: Pin<&mut F>) -> Result<Followed, ProjectionError>
    where
        F: Future<Output = ()> + Send,
    {
        self.catch_up().await?;
        self.health.update(|h| {
            h.status = ProjectionStatus::Live;
            h.consecutive_failures = 0;
            h.last_error = None;
        });
        let mut live = self
            .store
            .subscribe(self.scope, self.position())
            .ready_chunks(self.batch_size);
        loop {
            match select(shutdown.as_mut(), live.next()).await {
                Either::Left(((), _)) => return Ok(Followed::ShutDown),
                Either::Right((None, _)) => return Ok(Followed::StreamEnded),
                Either::Right((Some(items), _)) => {
                    let batch = items.into_iter().collect::<Result<Vec<_>, _>>()?;
                    self.apply_batch(&batch).await?;
                }
            }
        }
    }

    async fn apply_batch(&mut self, batch: &[StoredEvent]) -> Result<u64, ProjectionError> {
        let mut position = self.position();
        let mut applied = 0;
        for event in batch {
            // A subscription may replay an event already applied after a
            // reconnect: positions only move forward.
            if event.global_position <= position {
                continue;
            }
            let projection = &mut self.projection;
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| projection.apply(event)));
            let letter = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(ProjectionError::Store(error))) => return Err(error.into()),
                Ok(Err(error)) => Some(DeadLetter::new(self.projection.name(), event, &error)),
                Err(_) => Some(DeadLetter::new(self.projection.name(), event, &Panicked)),
            };
            if let Some(letter) = letter {
                tracing::warn!(
                    projection = %letter.projection,
                    position = letter.global_position,
                    event_id = %letter.event_id,
                    event_type = %letter.event_type,
                    reason = %letter.reason,
                    "event skipped by a projection (dead letter)"
                );
                self.checkpoints.record_dead_letter(&letter).await?;
                self.health.update(|h| h.dead_letters += 1);
                metrics::counter!(
                    crate::observe::PROJECTION_DEAD_LETTERS,
                    "projection" => Arc::clone(&self.health.label)
                )
                .increment(1);
            }
            position = event.global_position;
            self.position = Some(position);
            applied += 1;
        }
        self.projection.flush();
        self.checkpoints
            .save(self.projection.name(), position)
            .await?;
        self.health.update(|h| {
            h.position = position;
            h.head = h.head.max(position);
            h.consecutive_failures = 0;
            h.last_error = None;
        });
        Ok(applied)
    }
}

/// Why following stopped without an error.
enum Followed {
    ShutDown,
    StreamEnded,
}

/// A projection panicked on an event.
#[derive(Debug, thiserror::Error)]
#[error("the projection panicked on this event")]
struct Panicked;
