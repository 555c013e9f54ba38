//! The setup's background tasks: started together, restarted after a
//! failure with a growing pause, stopped together.

use std::future::Future;
use std::time::Duration;

use security_core::{Projection, ProjectionRunner};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The first pause after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Running background tasks and the signal that stops them.
#[derive(Debug)]
pub(crate) struct Tasks {
    stop: watch::Sender<bool>,
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

impl Tasks {
    pub(crate) fn new() -> Self {
        Self {
            stop: watch::Sender::new(false),
            handles: Vec::new(),
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

    /// Names of the tasks that ended although nobody stopped them.
    pub(crate) fn finished(&self) -> Vec<&'static str> {
        self.handles
            .iter()
            .filter(|(_, handle)| handle.is_finished())
            .map(|(name, _)| *name)
            .collect()
    }

    pub(crate) fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        self.handles.push((name, tokio::spawn(task)));
    }

    /// Follows the store with a projection until stopped; after an error
    /// (the store unreachable, say) it logs and starts again from where it
    /// stopped, after a pause that grows up to 30 s.
    pub(crate) fn spawn_projection<P: Projection + 'static>(
        &mut self,
        name: &'static str,
        mut runner: ProjectionRunner<P>,
    ) {
        let mut stop = self.stop.subscribe();
        let stopped = self.stopped();
        self.spawn(name, async move {
            let mut backoff = FIRST_BACKOFF;
            let mut stopped = std::pin::pin!(stopped);
            loop {
                let stop_now = {
                    let mut rx = stop.clone();
                    async move {
                        let _ = rx.wait_for(|s| *s).await;
                    }
                };
                match runner.run_until(stop_now).await {
                    Ok(()) if *stop.borrow_and_update() => return,
                    Ok(()) => {
                        tracing::warn!(
                            projection = name,
                            "event subscription ended: resubscribing"
                        );
                    }
                    Err(error) => {
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
    }

    /// Tells every task to stop and waits up to `grace` for them.
    pub(crate) async fn shutdown(self, grace: Duration) {
        self.stop.send_replace(true);
        for (name, handle) in self.handles {
            let abort = handle.abort_handle();
            match tokio::time::timeout(grace, handle).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(task = name, error = %error, "background task failed");
                }
                Err(_) => {
                    tracing::warn!(task = name, "background task did not stop in time: aborted");
                    abort.abort();
                }
            }
        }
    }
}
