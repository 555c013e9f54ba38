//! The work an [`AuthenticationService`](crate::AuthenticationService)
//! runs by itself: its [`RevocationProjection`], fed from the store's
//! global stream, supervised.
//!
//! The projection starts at the first event of the last access-token
//! lifetime (found by a binary search on the global stream; older
//! revocations concern only expired tokens), follows new events as they
//! commit, and after any store error (an outage, a restart of the
//! database) logs it, waits with a growing backoff and resumes where it
//! stopped. It never stops by itself; [`ProjectionHealth`] says how it
//! fares.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use security_core::{
    CheckpointStore, Clock, EventStore, GlobalQuery, InMemoryCheckpoints, Projection,
    ProjectionError, ProjectionRunner, Scope, StoreError, StoredEvent,
};

use crate::projection::RevocationProjection;

/// How the service's background projection fares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionHealth {
    /// The projection's name.
    pub name: &'static str,
    /// Whether it is caught up and following the store (`false` while it
    /// starts, and while the store fails).
    pub live: bool,
    /// The last global position it applied.
    pub position: u64,
    /// How many events it is behind the store's head (when the head could
    /// be read).
    pub lag: Option<u64>,
    /// How many times it started again after a store error.
    pub restarts: u64,
    /// What the last error was (its message, no driver text), if it
    /// failed since it was last live.
    pub last_error: Option<String>,
}

/// What the supervisor shares with the service.
#[derive(Debug, Default)]
pub(crate) struct Health {
    live: AtomicBool,
    position: AtomicU64,
    restarts: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Health {
    pub(crate) fn snapshot(&self, head: Option<u64>) -> ProjectionHealth {
        let position = self.position.load(Ordering::Acquire);
        ProjectionHealth {
            name: "authn-revocations",
            live: self.live.load(Ordering::Acquire),
            position,
            lag: head.map(|h| h.saturating_sub(position)),
            restarts: self.restarts.load(Ordering::Acquire),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }

    fn failed(&self, error: &dyn std::error::Error) {
        self.live.store(false, Ordering::Release);
        self.restarts.fetch_add(1, Ordering::AcqRel);
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error.to_string());
    }
}

/// Wraps the projection to publish its position.
struct Tracked {
    inner: RevocationProjection,
    health: Arc<Health>,
}

impl Projection for Tracked {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        self.inner.apply(event)?;
        self.health
            .position
            .store(event.global_position, Ordering::Release);
        Ok(())
    }

    fn reset(&mut self) {
        self.inner.reset();
    }

    fn flush(&mut self) {
        // A batch applied: whatever failed before is behind us.
        self.health.live.store(true, Ordering::Release);
    }
}

/// The running supervisor; dropping it stops the task.
#[derive(Debug)]
pub(crate) struct Supervisor {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The first wait after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts the supervised projection on the current Tokio runtime (`None`
/// outside one: the application then runs a [`RevocationProjection`]
/// itself).
pub(crate) fn start(
    store: Arc<dyn EventStore>,
    projection: RevocationProjection,
    clock: Arc<dyn Clock>,
    window: Duration,
    health: Arc<Health>,
) -> Option<Supervisor> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let task = runtime.spawn(supervise(store, projection, clock, window, health));
    Some(Supervisor { task })
}

async fn supervise(
    store: Arc<dyn EventStore>,
    projection: RevocationProjection,
    clock: Arc<dyn Clock>,
    window: Duration,
    health: Arc<Health>,
) {
    let checkpoints = Arc::new(InMemoryCheckpoints::new());
    let mut backoff = FIRST_BACKOFF;
    let start = loop {
        match first_position_since(&*store, clock.now(), window).await {
            Ok(position) => break position,
            Err(error) => {
                tracing::warn!(%error, "revocation projection: cannot read the store; retrying");
                health.failed(&error);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    health.position.store(start, Ordering::Release);
    let name = projection.name();
    loop {
        let position = health.position.load(Ordering::Acquire);
        let run = async {
            checkpoints.save(name, position).await?;
            let tracked = Tracked {
                inner: projection.clone(),
                health: Arc::clone(&health),
            };
            let mut runner = ProjectionRunner::new(
                Arc::clone(&store),
                Arc::clone(&checkpoints) as Arc<dyn CheckpointStore>,
                tracked,
                Scope::All,
            )
            .await?;
            runner.catch_up().await?;
            health.live.store(true, Ordering::Release);
            backoff = FIRST_BACKOFF;
            runner.run_until(std::future::pending()).await
        }
        .await;
        match run {
            Ok(()) => {
                // The live feed ended (the store closed it): follow again.
                health.live.store(false, Ordering::Release);
            }
            Err(error) => {
                tracing::warn!(%error, "revocation projection failed; resuming after a pause");
                health.failed(&error);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The position just before the first event that occurred at most
/// `window` before `now` (plus a margin for clocks that disagree): a
/// binary search on the global stream, whose times grow with positions
/// give or take that margin.
pub(crate) async fn first_position_since(
    store: &dyn EventStore,
    now: DateTime<Utc>,
    window: Duration,
) -> Result<u64, StoreError> {
    let margin = chrono::Duration::minutes(5);
    let since =
        now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::hours(1)) - margin;
    let head = store.head_position().await?;
    // Invariant: every event at or before `low` occurred before `since`;
    // the answer is in `low..=high`.
    let (mut low, mut high) = (0_u64, head);
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        let event = store
            .read_global(Scope::All, GlobalQuery::after(mid - 1, 1))
            .await?;
        match event.first() {
            Some(e) if e.occurred_at < since => low = e.global_position.max(mid),
            _ => high = mid - 1,
        }
    }
    Ok(low)
}
