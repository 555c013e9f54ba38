//! The in-memory [`RateLimiter`]: a sliding-window log per key, exact
//! inside one process. Several replicas share a limiter in
//! `security-eventstore` (Redis or PostgreSQL) instead.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use security_core::{RateDecision, RateLimit, RateLimitError, RateLimiter};

/// A sliding-window log in memory: exact, per process.
///
/// Each key keeps the instants of its counted events (at most `limit.max`
/// of them), so memory is bounded by the number of active keys times the
/// limit. Keys whose events all left their window are swept every few
/// thousand calls.
#[derive(Default)]
pub struct MemoryRateLimiter {
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    keys: HashMap<String, Window>,
    calls: u64,
}

struct Window {
    hits: VecDeque<DateTime<Utc>>,
    window: Duration,
}

/// Every this many calls, keys with no event left in their window are dropped.
const SWEEP_EVERY: u64 = 4096;

impl MemoryRateLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys are tracked (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.lock().keys.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("tracked_keys", &self.tracked_keys())
            .finish()
    }
}

fn window_of(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

fn until(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (then - now).to_std().unwrap_or(Duration::ZERO)
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn acquire(
        &self,
        key: &str,
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<RateDecision, RateLimitError> {
        let span = window_of(limit.window);
        let mut state = self.lock();
        state.calls = state.calls.wrapping_add(1);
        if state.calls.is_multiple_of(SWEEP_EVERY) {
            state.keys.retain(|_, w| {
                w.hits
                    .back()
                    .is_some_and(|last| now - *last < window_of(w.window))
            });
        }
        let entry = state.keys.entry(key.to_owned()).or_insert_with(|| Window {
            hits: VecDeque::new(),
            window: limit.window,
        });
        entry.window = entry.window.max(limit.window);
        while entry.hits.front().is_some_and(|t| now - *t >= span) {
            entry.hits.pop_front();
        }
        let max = usize::try_from(limit.max).unwrap_or(usize::MAX).max(1);
        if entry.hits.len() >= max {
            // The event that frees a slot is the oldest one that must go for
            // the count to drop below `max`.
            let index = entry.hits.len() - max;
            let frees_at = entry.hits.get(index).map_or(now, |t| *t + span);
            return Ok(RateDecision::Limited {
                retry_after: until(now, frees_at).max(Duration::from_secs(1)),
            });
        }
        entry.hits.push_back(now);
        let remaining = u32::try_from(max - entry.hits.len()).unwrap_or(u32::MAX);
        Ok(RateDecision::Allowed { remaining })
    }

    async fn reset(&self, key: &str) -> Result<(), RateLimitError> {
        self.lock().keys.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn the_window_slides() {
        block_on(async {
            let limiter = MemoryRateLimiter::new();
            let limit = RateLimit::per_minute(3);
            for (i, t) in [0, 10, 20].into_iter().enumerate() {
                let remaining = u32::try_from(2 - i).unwrap();
                assert_eq!(
                    limiter.acquire("k", limit, at(t)).await.unwrap(),
                    RateDecision::Allowed { remaining }
                );
            }
            // The fourth within the minute is refused until the first leaves.
            assert_eq!(
                limiter.acquire("k", limit, at(30)).await.unwrap(),
                RateDecision::Limited {
                    retry_after: Duration::from_secs(30)
                }
            );
            // A refusal is not counted: at 60 the first event has left.
            assert!(matches!(
                limiter.acquire("k", limit, at(60)).await.unwrap(),
                RateDecision::Allowed { remaining: 0 }
            ));
            assert_eq!(
                limiter.acquire("k", limit, at(65)).await.unwrap(),
                RateDecision::Limited {
                    retry_after: Duration::from_secs(5)
                }
            );
            // Other keys are independent; reset forgets.
            assert!(matches!(
                limiter.acquire("other", limit, at(65)).await.unwrap(),
                RateDecision::Allowed { .. }
            ));
            limiter.reset("k").await.unwrap();
            assert!(matches!(
                limiter.acquire("k", limit, at(66)).await.unwrap(),
                RateDecision::Allowed { remaining: 2 }
            ));
        });
    }

    #[test]
    fn idle_keys_are_swept() {
        block_on(async {
            let limiter = MemoryRateLimiter::new();
            let limit = RateLimit::per_minute(1);
            for i in 0..SWEEP_EVERY - 1 {
                limiter
                    .acquire(&format!("k{i}"), limit, at(0))
                    .await
                    .unwrap();
            }
            assert_eq!(
                limiter.tracked_keys(),
                usize::try_from(SWEEP_EVERY - 1).unwrap()
            );
            limiter.acquire("late", limit, at(120)).await.unwrap();
            assert_eq!(limiter.tracked_keys(), 1);
        });
    }
}
