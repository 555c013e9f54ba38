//! The setup's supervisor: every background task started together,
//! restarted after a failure with a growing pause, observed through one
//! [`TaskHealth`] each, stopped together.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use security_core::{Projection, ProjectionError, ProjectionRunner, StoredEvent};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::health::TaskHealth;

/// The first pause after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a running task shares with the supervisor.
#[derive(Debug, Default)]
pub(crate) struct TaskState {
    live: AtomicBool,
    /// The last applied position plus one (0: none yet).
    position: AtomicU64,
    restarts: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl TaskState {
    pub(crate) fn succeeded(&self) {
        self.live.store(true, Ordering::Release);
        *self.error_slot() = None;
    }

    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        self.live.store(false, Ordering::Release);
        self.restarts.fetch_add(1, Ordering::AcqRel);
        *self.error_slot() = Some(error.to_string());
    }

    fn at(&self, position: u64) {
        self.position
            .store(position.saturating_add(1), Ordering::Release);
    }

    fn error_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A projection whose applied position the supervisor sees.
pub(crate) struct Tracked<P> {
    inner: P,
    state: Arc<TaskState>,
}

impl<P> Tracked<P> {
    pub(crate) fn new(inner: P, state: Arc<TaskState>) -> Self {
        Self { inner, state }
    }
}

impl<P: Projection> Projection for Tracked<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        self.inner.apply(event)?;
        self.state.at(event.global_position);
        Ok(())
    }

    fn reset(&mut self) {
        self.inner.reset();
    }

    fn flush(&mut self) {
        self.inner.flush();
    }
}

/// One supervised task.
#[derive(Debug)]
struct Task {
    name: &'static str,
    state: Arc<TaskState>,
    tracks_position: bool,
    handle: JoinHandle<()>,
}

/// Running background tasks and the signal that stops them.
#[derive(Debug)]
pub(crate) struct Tasks {
    stop: watch::Sender<bool>,
    tasks: Vec<Task>,
}

impl Tasks {
    pub(crate) fn new() -> Self {
        Self {
            stop: watch::Sender::new(false),
            tasks: Vec::new(),
        }
    }

    /// A future that completes when the tasks are told to stop.
    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            // The sender lives as long as the tasks: an error means it is gone.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// The health of every task; `head` is the store's head position (for
    /// the read models' lag).
    pub(crate) fn health(&self, head: Option<u64>) -> Vec<TaskHealth> {
        self.tasks
            .iter()
            .map(|task| {
                let stopped = task.handle.is_finished();
                let position = task
                    .tracks_position
                    .then(|| task.state.position.load(Ordering::Acquire).checked_sub(1))
                    .flatten();
                TaskHealth {
                    name: task.name,
                    live: task.state.live.load(Ordering::Acquire) && !stopped,
                    stopped,
                    position,
                    lag: match (task.tracks_position, head) {
                        (true, Some(head)) => Some(head.saturating_sub(position.unwrap_or(0))),
                        _ => None,
                    },
                    restarts: task.state.restarts.load(Ordering::Acquire),
                    last_error: task.state.error_slot().clone(),
                }
            })
            .collect()
    }

    /// Runs `task`, which reports through `state`, until it ends by itself
    /// (it should only after the stop signal).
    pub(crate) fn spawn(
        &mut self,
        name: &'static str,
        state: Arc<TaskState>,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        self.push(name, state, false, tokio::spawn(task));
    }

    fn push(
        &mut self,
        name: &'static str,
        state: Arc<TaskState>,
        tracks_position: bool,
        handle: JoinHandle<()>,
    ) {
        self.tasks.push(Task {
            name,
            state,
            tracks_position,
            handle,
        });
    }

    /// Follows the store with a caught-up projection until stopped; after
    /// an error (the store unreachable, say) it records it and starts
    /// again from where it stopped, after a pause that grows up to 30 s.
    pub(crate) fn spawn_projection<P: Projection + 'static>(
        &mut self,
        name: &'static str,
        state: Arc<TaskState>,
        mut runner: ProjectionRunner<Tracked<P>>,
    ) {
        let stop = self.stop.subscribe();
        let stopped = self.stopped();
        let task_state = Arc::clone(&state);
        state.at(runner.position());
        state.succeeded();
        let handle = tokio::spawn(async move {
            let state = task_state;
            let mut backoff = FIRST_BACKOFF;
            let mut stopped = std::pin::pin!(stopped);
            loop {
                let stop_now = {
                    let mut rx = stop.clone();
                    async move {
                        let _ = rx.wait_for(|s| *s).await;
                    }
                };
                let run = async {
                    runner.catch_up().await?;
                    state.succeeded();
                    backoff = FIRST_BACKOFF;
                    runner.run_until(stop_now).await
                };
                match run.await {
                    Ok(()) if *stop.borrow() => return,
                    Ok(()) => {
                        state.failed(&"the event subscription ended");
                        tracing::warn!(
                            projection = name,
                            "event subscription ended: resubscribing"
                        );
                    }
                    Err(error) => {
                        state.failed(&error);
                        tracing::error!(
                            projection = name,
                            position = runner.position(),
                            error = %error,
                            "read model failed: retrying"
                        );
                    }
                }
                tokio::select! {
                    () = &mut stopped => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        self.push(name, state, true, handle);
    }

    /// Tells every task to stop and waits up to `grace` for them.
    pub(crate) async fn shutdown(self, grace: Duration) {
        self.stop.send_replace(true);
        for task in self.tasks {
            let abort = task.handle.abort_handle();
            match tokio::time::timeout(grace, task.handle).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(task = task.name, error = %error, "background task failed");
                }
                Err(_) => {
                    tracing::warn!(
                        task = task.name,
                        "background task did not stop in time: aborted"
                    );
                    abort.abort();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::panic,
        reason = "a test fails by panicking"
    )]

    use std::sync::atomic::AtomicUsize;

    use security_core::{InMemoryCheckpoints, Request, Scope, StoreError};

    use super::*;

    /// Fails as a store outage would, `failures` times, then applies.
    struct Outage {
        failures: Arc<AtomicUsize>,
        applied: Arc<AtomicU64>,
    }

    impl Projection for Outage {
        fn name(&self) -> &'static str {
            "outage"
        }

        fn apply(&mut self, _event: &StoredEvent) -> Result<(), ProjectionError> {
            if self
                .failures
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(ProjectionError::Store(StoreError::Unavailable(
                    "the database is down".into(),
                )));
            }
            self.applied.fetch_add(1, Ordering::AcqRel);
            Ok(())
        }

        fn reset(&mut self) {}
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_read_model_is_restarted_and_reports_it() {
        let security = crate::Security::builder().build().unwrap();
        let store = Arc::clone(security.store());
        let failures = Arc::new(AtomicUsize::new(0));
        let applied = Arc::new(AtomicU64::new(0));
        let state = Arc::new(TaskState::default());
        let projection = Tracked::new(
            Outage {
                failures: Arc::clone(&failures),
                applied: Arc::clone(&applied),
            },
            Arc::clone(&state),
        );
        let mut runner = ProjectionRunner::new(
            Arc::clone(&store),
            Arc::new(InMemoryCheckpoints::new()),
            projection,
            Scope::All,
        )
        .await
        .unwrap();
        runner.catch_up().await.unwrap();
        let mut tasks = Tasks::new();
        tasks.spawn_projection("outage", state, runner);
        assert!(tasks.health(Some(0))[0].is_healthy());

        // The store fails the next three events' application.
        failures.store(3, Ordering::Release);
        security
            .admin()
            .create_operator(&Request::default(), "ops")
            .await
            .unwrap();
        let head = store.head_position().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut saw_failure = false;
        loop {
            let health = tasks.health(Some(head)).remove(0);
            assert!(!health.stopped, "the task never stops by itself");
            if !health.live {
                saw_failure = true;
                assert!(health.last_error.is_some(), "{health:?}");
            }
            if health.live && health.lag == Some(0) && health.restarts == 3 {
                assert_eq!(health.position, Some(head));
                assert_eq!(health.last_error, None);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not recovered: {health:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(saw_failure, "the failures were reported while they lasted");
        assert!(applied.load(Ordering::Acquire) >= 1);
        tasks.shutdown(Duration::from_secs(5)).await;
    }
}
