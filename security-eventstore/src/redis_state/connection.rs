//! The connection the Redis backends share, and its configuration.

use std::fmt;

use redis::aio::ConnectionManager;

use crate::error::Error;

/// The environment variable naming the Redis server
/// (`redis://127.0.0.1:6379`, `rediss://…` is not built in).
pub const REDIS_URL: &str = "REDIS_URL";

/// The environment variable giving the prefix of every key (default
/// `security:`), so that several applications (or test runs) can share one
/// Redis.
pub const REDIS_KEY_PREFIX: &str = "REDIS_KEY_PREFIX";

/// Where Redis is and how keys are named.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key.
    pub key_prefix: String,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("RedisConfig")
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisConfig {
    /// A configuration for this URL with the default prefix.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "security:".to_owned(),
        }
    }

    /// Replaces the key prefix.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// From `REDIS_URL` (required) and `REDIS_KEY_PREFIX`.
    pub fn from_env() -> Result<Self, Error> {
        let url = std::env::var(REDIS_URL)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or(Error::MissingSetting(REDIS_URL))?;
        let mut config = Self::new(url.trim());
        if let Some(prefix) = std::env::var(REDIS_KEY_PREFIX)
            .ok()
            .filter(|v| !v.is_empty())
        {
            config.key_prefix = prefix;
        }
        Ok(config)
    }
}

/// One multiplexed connection to Redis that reconnects by itself, shared by
/// the Redis backends (cheap to clone).
#[derive(Clone)]
pub struct RedisConnection {
    pub(crate) manager: ConnectionManager,
    pub(crate) prefix: String,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// Connects (fails if the server cannot be reached now; once
    /// connected, a lost connection is re-established on the next use).
    pub async fn connect(config: &RedisConfig) -> Result<Self, Error> {
        let connect = |e: redis::RedisError| Error::Connect {
            service: "redis",
            source: Box::new(e),
        };
        let client =
            redis::Client::open(config.url.as_str()).map_err(|_| Error::InvalidSetting {
                setting: REDIS_URL,
                reason: "not a redis:// URL",
            })?;
        let manager = ConnectionManager::new(client).await.map_err(connect)?;
        Ok(Self {
            manager,
            prefix: config.key_prefix.clone(),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.prefix)
    }
}
