//! The [`RateLimiter`] port: counts events per key in a sliding window.
//!
//! Implementations: in memory (`security_authn::MemoryRateLimiter`, one
//! process), and shared across replicas in `security-eventstore`
//! (PostgreSQL, Redis).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A limit: at most `max` events in any window of `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Events allowed per window (at least 1).
    pub max: u32,
    /// The window's length (at least one second).
    pub window: Duration,
}

impl RateLimit {
    /// `max` events per minute.
    pub const fn per_minute(max: u32) -> Self {
        Self {
            max,
            window: Duration::from_secs(60),
        }
    }

    /// `max` events per hour.
    pub const fn per_hour(max: u32) -> Self {
        Self {
            max,
            window: Duration::from_secs(3600),
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.window.as_secs() {
            1 => write!(f, "{}/second", self.max),
            60 => write!(f, "{}/minute", self.max),
            3600 => write!(f, "{}/hour", self.max),
            86_400 => write!(f, "{}/day", self.max),
            secs => write!(f, "{}/{secs}s", self.max),
        }
    }
}

/// A rate limit could not be parsed: the text must look like `5/minute`
/// (a count of at least 1, then `second`, `minute`, `hour`, `day` or a
/// number of seconds such as `90s`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a rate such as 5/minute (count/second|minute|hour|day|<n>s)")]
pub struct InvalidRateLimit;

impl FromStr for RateLimit {
    type Err = InvalidRateLimit;

    /// Parses the tier syntax of the source documents: `5/minute`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (count, unit) = s.trim().split_once('/').ok_or(InvalidRateLimit)?;
        let max: u32 = count.trim().parse().map_err(|_| InvalidRateLimit)?;
        let secs = match unit.trim() {
            "second" | "sec" | "s" => 1,
            "minute" | "min" | "m" => 60,
            "hour" | "h" => 3600,
            "day" | "d" => 86_400,
            other => other
                .strip_suffix('s')
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or(InvalidRateLimit)?,
        };
        if max == 0 || secs == 0 || secs > 7 * 86_400 {
            return Err(InvalidRateLimit);
        }
        Ok(Self {
            max,
            window: Duration::from_secs(secs),
        })
    }
}

/// What a rate limiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// The event was allowed and counted.
    Allowed {
        /// How many more events the window allows now.
        remaining: u32,
    },
    /// The event was refused and not counted.
    Limited {
        /// How long until the oldest counted event leaves the window.
        retry_after: Duration,
    },
}

/// A rate limiter's backend failed (connection lost, script refused).
/// Authentication fails closed on it: log it, answer 503; retrying later
/// may succeed.
#[derive(Debug, thiserror::Error)]
#[error("rate limiter backend failed")]
pub struct RateLimitError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl RateLimitError {
    /// Wraps a backend error (kept as the source, never in the message).
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

/// Counts events per key in a sliding window.
///
/// Contract: [`acquire`](Self::acquire) counts an event only when it is
/// allowed (a refused attempt does not extend the wait); at any instant no
/// more than `limit.max` events counted for a key lie in the last
/// `limit.window`; a refusal says when the next event will be allowed.
/// Implementations must be safe to call concurrently; a shared backend
/// (Redis, a database) makes the limits hold across processes. Errors make
/// authentication fail closed.
#[async_trait]
pub trait RateLimiter: fmt::Debug + Send + Sync {
    /// Counts one event for `key` at `now` if `limit` allows it.
    async fn acquire(
        &self,
        key: &str,
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<RateDecision, RateLimitError>;

    /// Forgets every event counted for `key`.
    async fn reset(&self, key: &str) -> Result<(), RateLimitError>;

    /// Counts one event under `limit` for each key, in order, and stops at
    /// the first key whose limit refuses: its index and `retry_after`
    /// (`None`: every key allowed it). Keys before the refusing one were
    /// counted. A shared backend does it in one round trip.
    async fn acquire_all(
        &self,
        keys: &[&str],
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<Option<(usize, Duration)>, RateLimitError> {
        for (index, key) in keys.iter().enumerate() {
            if let RateDecision::Limited { retry_after } = self.acquire(key, limit, now).await? {
                return Ok(Some((index, retry_after)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tier_syntax() {
        assert_eq!("5/minute".parse(), Ok(RateLimit::per_minute(5)));
        assert_eq!("3/minute".parse(), Ok(RateLimit::per_minute(3)));
        assert_eq!("1000/hour".parse(), Ok(RateLimit::per_hour(1000)));
        assert_eq!(
            "10/90s".parse(),
            Ok(RateLimit {
                max: 10,
                window: Duration::from_secs(90)
            })
        );
        for bad in [
            "",
            "5",
            "0/minute",
            "x/minute",
            "5/fortnight",
            "5/0s",
            "-1/minute",
        ] {
            assert_eq!(bad.parse::<RateLimit>(), Err(InvalidRateLimit), "{bad}");
        }
        assert_eq!(RateLimit::per_minute(5).to_string(), "5/minute");
    }
}
