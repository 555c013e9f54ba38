//! How the command bus retries a command after concurrency conflicts, and
//! the [`Timer`] port that lets it wait between attempts.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

/// Waits between retries (of a command after a conflict, of a projection
/// after a store error).
///
/// The core reads no clock and draws no randomness, so the wait, and the
/// random part of a backoff (the jitter that keeps contenders who collided
/// once from colliding again in step), come from outside: `TokioTimer`
/// (feature `tokio`) in production, a fake in tests.
#[async_trait]
pub trait Timer: fmt::Debug + Send + Sync {
    /// Completes after `duration`.
    async fn sleep(&self, duration: Duration);

    /// A duration drawn uniformly from `0..=max`.
    fn jitter(&self, max: Duration) -> Duration;
}

/// A doubling backoff: the ceiling of the wait after the `n`th failure in a
/// row is `base · 2^(n-1)`, at most `max`; the wait itself is drawn below
/// the ceiling by a [`Timer`] ("full jitter").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling after the first failure.
    pub base: Duration,
    /// The largest ceiling.
    pub max: Duration,
}

impl Backoff {
    /// From 100 ms up to 30 s: for background work after a store error
    /// (a supervised projection rides out an outage without hammering the
    /// server, and is back within 30 s of its end).
    pub const DEFAULT: Self = Self {
        base: Duration::from_millis(100),
        max: Duration::from_secs(30),
    };

    /// The ceiling after `failures` failures in a row (1: after the first).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base
            .saturating_mul(1_u32 << doublings)
            .min(self.max.max(self.base))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How many attempts [`RetryPolicy::DEFAULT`] makes.
pub const DEFAULT_ATTEMPTS: u32 = 6;

/// How a command is retried when another writer changed its stream
/// between the load and the append (a version conflict).
///
/// Each retry reloads the aggregate (cheaply, with a state cache) and
/// handles the command again against the new state, so a retried command
/// still obeys every rule. Between attempts the command bus waits for a
/// random time between zero and a ceiling that starts at `base_delay` and
/// doubles after each conflict up to `max_delay` ("full jitter"), when it
/// has a [`Timer`]; without one it retries at once.
///
/// Choose per call ([`Repository::execute_with`](crate::Repository::execute_with)):
/// [`DEFAULT`](Self::DEFAULT) for commands whose caller can retry or give
/// up, [`persistent`](Self::persistent) for facts that must be recorded
/// whatever else changes the stream at the same time (a login's
/// `UserAuthenticated` on a user hammered by concurrent logins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times the command runs at most (0 counts as 1).
    pub max_attempts: u32,
    /// The backoff ceiling after the first conflict.
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Six attempts, no wait between them: what a command gets unless the
    /// repository or the call says otherwise.
    pub const DEFAULT: Self = Self::immediate(DEFAULT_ATTEMPTS);

    /// At most `max_attempts` attempts, no wait between them.
    pub const fn immediate(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    /// For facts that must land: up to 1 000 attempts, waiting up to 1 ms
    /// after the first conflict, doubling to at most 100 ms. A hundred
    /// concurrent writers of one stream on three replicas over one
    /// PostgreSQL all land without one conflict reaching a caller (see the
    /// store's tests); a caller sees `Conflict` only if a stream stays that
    /// contended for over a minute and a half.
    pub const fn persistent() -> Self {
        Self {
            max_attempts: 1_000,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(100),
        }
    }

    /// The same number of attempts, with this backoff.
    pub const fn with_backoff(mut self, base_delay: Duration, max_delay: Duration) -> Self {
        self.base_delay = base_delay;
        self.max_delay = max_delay;
        self
    }

    /// How many attempts the policy allows (at least 1).
    pub fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The backoff ceiling after `conflicts` conflicts (1: after the
    /// first): `base_delay · 2^(conflicts-1)`, at most `max_delay`.
    pub fn ceiling(&self, conflicts: u32) -> Duration {
        Backoff {
            base: self.base_delay,
            max: self.max_delay,
        }
        .ceiling(conflicts)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_maximum() {
        let policy = RetryPolicy::immediate(10)
            .with_backoff(Duration::from_millis(10), Duration::from_millis(50));
        let ceilings: Vec<u128> = (1..=5).map(|n| policy.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [10, 20, 40, 50, 50]);
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_millis(50));
        assert_eq!(RetryPolicy::DEFAULT.ceiling(3), Duration::ZERO);
        assert_eq!(RetryPolicy::immediate(0).attempts(), 1);
        let persistent = RetryPolicy::persistent();
        assert_eq!(persistent.ceiling(1), Duration::from_millis(1));
        assert_eq!(persistent.ceiling(20), Duration::from_millis(100));
    }
}
