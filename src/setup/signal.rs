//! Waiting for the process to be told to stop.

/// Completes when the process receives Ctrl-C (`SIGINT`) or, on Unix,
/// `SIGTERM` (what an orchestrator sends before it kills a replica): pass
/// it to `axum::serve(…).with_graceful_shutdown`, then call
/// [`SecurityServices::shutdown`](super::SecurityServices::shutdown).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
