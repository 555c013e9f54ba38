//! A [`RateLimiter`] in Redis: a sliding-window log per key in a sorted
//! set, checked and counted by one Lua script.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;
use security_core::{RateDecision, RateLimit, RateLimitError, RateLimiter};

use super::connection::RedisConnection;

/// For each key in turn: drop the instants that left the window, refuse if
/// `max` remain (returning the key's 1-based index and the milliseconds
/// until the one that frees a slot leaves), else count `now`. Returns
/// `{0, remaining}` when every key allowed it (`remaining` of the last).
const ACQUIRE: &str = r"
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local member = ARGV[4]
local remaining = max
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= max then
    local oldest = redis.call('ZRANGE', key, count - max, count - max, 'WITHSCORES')
    return {i, tonumber(oldest[2]) + window - now}
  end
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, window)
  remaining = max - count - 1
end
return {0, remaining}
";

/// A sliding-window log per key in Redis: exact, shared by every replica,
/// one round trip per check of any number of keys (a Lua script, atomic on
/// the server). Times come from the caller's clock, like every limiter.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    connection: RedisConnection,
    script: Script,
}

impl RedisRateLimiter {
    /// A limiter over a connection (keys `<prefix>rate:<key>`).
    pub fn new(connection: &RedisConnection) -> Self {
        Self {
            connection: connection.clone(),
            script: Script::new(ACQUIRE),
        }
    }

    async fn run(
        &self,
        keys: &[&str],
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<(i64, i64), RateLimitError> {
        let mut invocation = self.script.prepare_invoke();
        for key in keys {
            invocation.key(self.connection.key("rate", key));
        }
        let random = member();
        invocation
            .arg(limit.max.max(1))
            .arg(u64::try_from(limit.window.as_millis()).unwrap_or(u64::MAX))
            .arg(now.timestamp_millis())
            .arg(random);
        let mut connection = self.connection.manager.clone();
        let (index, value): (i64, i64) = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(RateLimitError::backend)?;
        Ok((index, value))
    }
}

/// A unique member for the sorted set (two events of one millisecond are
/// two members).
fn member() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(
        &self,
        key: &str,
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<RateDecision, RateLimitError> {
        let (index, value) = self.run(&[key], limit, now).await?;
        if index == 0 {
            return Ok(RateDecision::Allowed {
                remaining: u32::try_from(value).unwrap_or(0),
            });
        }
        Ok(RateDecision::Limited {
            retry_after: wait(value),
        })
    }

    async fn reset(&self, key: &str) -> Result<(), RateLimitError> {
        let mut connection = self.connection.manager.clone();
        redis::cmd("DEL")
            .arg(self.connection.key("rate", key))
            .query_async::<()>(&mut connection)
            .await
            .map_err(RateLimitError::backend)
    }

    async fn acquire_all(
        &self,
        keys: &[&str],
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<Option<(usize, Duration)>, RateLimitError> {
        if keys.is_empty() {
            return Ok(None);
        }
        let (index, value) = self.run(keys, limit, now).await?;
        if index == 0 {
            return Ok(None);
        }
        Ok(Some((usize::try_from(index - 1).unwrap_or(0), wait(value))))
    }
}

fn wait(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0)).max(Duration::from_secs(1))
}
