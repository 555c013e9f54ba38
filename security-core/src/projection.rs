//! Read models (CQRS): a [`Projection`] folds the global stream into a
//! query-friendly shape; a [`ProjectionRunner`] feeds it from a stored
//! checkpoint, first catching up, then following new events live.
//!
//! A projection must be deterministic: rebuilt from position 0 it reaches
//! the same state as one that followed the stream live.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::{Either, select};

use crate::event::{EventDecodeError, StoredEvent};
use crate::store::{EventStore, GlobalQuery, Scope, StoreError};

/// A projection could not apply an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// An event could not be decoded.
    #[error(transparent)]
    Decode(#[from] EventDecodeError),
    /// The store or the checkpoint store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The projection's own logic failed; the message says how.
    #[error("projection {projection} failed: {reason}")]
    Failed {
        /// The projection.
        projection: String,
        /// What went wrong.
        reason: String,
    },
}

/// A read model fed from the global stream.
pub trait Projection: Send {
    /// A stable name, the key of its checkpoint.
    fn name(&self) -> &str;

    /// Folds one event in. Events arrive in global order, each once per run.
    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError>;

    /// Forgets everything (before a rebuild from position 0).
    fn reset(&mut self);

    /// Called after each batch: the moment to publish a new immutable
    /// snapshot to readers.
    fn flush(&mut self) {}
}

/// Where projections keep their checkpoints.
#[async_trait]
pub trait CheckpointStore: fmt::Debug + Send + Sync {
    /// The last position a projection applied (`None`: never ran).
    async fn load(&self, projection: &str) -> Result<Option<u64>, StoreError>;

    /// Records the last position a projection applied.
    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError>;
}

/// Checkpoints in memory (lost on restart; the projection rebuilds).
#[derive(Debug, Default, Clone)]
pub struct InMemoryCheckpoints {
    positions: Arc<Mutex<HashMap<String, u64>>>,
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
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(projection)
            .copied())
    }

    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        self.positions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(projection.to_owned(), position);
        Ok(())
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
    position: u64,
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
        let position = checkpoints.load(projection.name()).await?.unwrap_or(0);
        Ok(Self {
            store,
            checkpoints,
            projection,
            scope,
            batch_size: DEFAULT_BATCH_SIZE,
            position,
        })
    }

    /// Sets how many events are read per batch.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The last position applied.
    pub fn position(&self) -> u64 {
        self.position
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

    /// Applies every event committed so far; returns how many.
    pub async fn catch_up(&mut self) -> Result<u64, ProjectionError> {
        let mut applied = 0;
        loop {
            let batch = self
                .store
                .read_global(
                    self.scope,
                    GlobalQuery::after(self.position, self.batch_size),
                )
                .await?;
            if batch.is_empty() {
                return Ok(applied);
            }
            applied += self.apply_batch(&batch).await?;
        }
    }

    /// Forgets everything and applies the whole stream again from 0.
    pub async fn rebuild(&mut self) -> Result<u64, ProjectionError> {
        self.projection.reset();
        self.position = 0;
        self.checkpoints.save(self.projection.name(), 0).await?;
        self.catch_up().await
    }

    /// Catches up, then applies new events as they commit, until `shutdown`
    /// completes.
    pub async fn run_until<F>(&mut self, shutdown: F) -> Result<(), ProjectionError>
    where
        F: Future<Output = ()> + Send,
    {
        self.catch_up().await?;
        let mut live = self
            .store
            .subscribe(self.scope, self.position)
            .ready_chunks(self.batch_size);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            match select(shutdown.as_mut(), live.next()).await {
                Either::Left(((), _)) | Either::Right((None, _)) => return Ok(()),
                Either::Right((Some(items), _)) => {
                    let batch = items.into_iter().collect::<Result<Vec<_>, _>>()?;
                    self.apply_batch(&batch).await?;
                }
            }
        }
    }

    async fn apply_batch(&mut self, batch: &[StoredEvent]) -> Result<u64, ProjectionError> {
        let mut applied = 0;
        for event in batch {
            // A subscription may replay an event already applied after a
            // reconnect: positions only move forward.
            if event.global_position <= self.position {
                continue;
            }
            self.projection.apply(event)?;
            self.position = event.global_position;
            applied += 1;
        }
        self.projection.flush();
        self.checkpoints
            .save(self.projection.name(), self.position)
            .await?;
        Ok(applied)
    }
}
