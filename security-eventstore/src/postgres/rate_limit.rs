//! A [`RateLimiter`] in PostgreSQL, for replicas that share a database
//! but no Redis.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use security_core::{RateDecision, RateLimit, RateLimitError, RateLimiter};
use sqlx::postgres::types::PgInterval;

use super::errors::db;
use super::store::PostgresEventStore;

const ACQUIRE: &str = "SELECT refused, retry_after_ms FROM security_rate_acquire($1, $2, $3, $4)";
const RESET: &str = "DELETE FROM security_rate_limits WHERE key = $1";
const REMAINING: &str = "SELECT cardinality(hits) FROM security_rate_limits WHERE key = $1";

/// A sliding-window log per key in the event store's database
/// (`security_rate_limits`): exact, shared by every replica, one statement
/// (one round trip) per check of any number of keys, atomic per key (the
/// key's row lock).
///
/// Prefer `RedisRateLimiter` (feature `redis`) where there is a
/// Redis: a check costs a database write here.
#[derive(Debug, Clone)]
pub struct PostgresRateLimiter {
    store: PostgresEventStore,
}

impl PostgresRateLimiter {
    /// A limiter in the store's database (its migrations create the table).
    pub fn new(store: &PostgresEventStore) -> Self {
        Self {
            store: store.clone(),
        }
    }
}

pub(crate) fn interval(duration: Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(duration.as_micros()).unwrap_or(i64::MAX),
    }
}

fn backend(error: sqlx::Error) -> RateLimitError {
    RateLimitError::backend(db(error))
}

#[async_trait]
impl RateLimiter for PostgresRateLimiter {
    async fn acquire(
        &self,
        key: &str,
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<RateDecision, RateLimitError> {
        if let Some((_, retry_after)) = self.acquire_all(&[key], limit, now).await? {
            return Ok(RateDecision::Limited { retry_after });
        }
        let used: Option<i32> = sqlx::query_scalar(REMAINING)
            .bind(key)
            .fetch_optional(self.store.pool())
            .await
            .map_err(backend)?
            .flatten();
        let used = u32::try_from(used.unwrap_or(0)).unwrap_or(0);
        Ok(RateDecision::Allowed {
            remaining: limit.max.saturating_sub(used),
        })
    }

    async fn reset(&self, key: &str) -> Result<(), RateLimitError> {
        sqlx::query(RESET)
            .bind(key)
            .execute(self.store.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn acquire_all(
        &self,
        keys: &[&str],
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<Option<(usize, Duration)>, RateLimitError> {
        if keys.iter().any(|k| k.contains('\0')) {
            return Err(RateLimitError::backend(
                security_core::StoreError::InvalidRequest("a rate-limit key holds a NUL character"),
            ));
        }
        let (refused, retry_after_ms): (i32, i64) = sqlx::query_as(ACQUIRE)
            .bind(keys)
            .bind(i32::try_from(limit.max.max(1)).unwrap_or(i32::MAX))
            .bind(interval(limit.window))
            .bind(now)
            .fetch_one(self.store.pool())
            .await
            .map_err(backend)?;
        if refused <= 0 {
            return Ok(None);
        }
        let index = usize::try_from(refused - 1).unwrap_or(0);
        let wait = Duration::from_millis(u64::try_from(retry_after_ms).unwrap_or(0));
        Ok(Some((index, wait.max(Duration::from_secs(1)))))
    }
}
