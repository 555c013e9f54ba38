//! The production [`Timer`]: Tokio's clock and a fast non-cryptographic
//! random source for the jitter (feature `tokio`).

use std::time::Duration;

use async_trait::async_trait;

use crate::retry::Timer;

/// Waits with `tokio::time::sleep` and draws jitter from `fastrand`.
///
/// Jitter only spreads retries out: it needs no cryptographic randomness.
/// Needs a Tokio runtime with its time driver enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

#[async_trait]
impl Timer for TokioTimer {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn jitter(&self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jitter_stays_inside_its_window_and_sleep_waits() {
        let timer = TokioTimer;
        let max = Duration::from_millis(5);
        let draws: Vec<Duration> = (0..200).map(|_| timer.jitter(max)).collect();
        assert!(draws.iter().all(|d| *d <= max));
        assert!(draws.iter().any(|d| *d != draws[0]), "the draws vary");
        assert_eq!(timer.jitter(Duration::ZERO), Duration::ZERO);
        let start = tokio::time::Instant::now();
        timer.sleep(Duration::from_millis(20)).await;
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
}
