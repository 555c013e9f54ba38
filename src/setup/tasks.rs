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
