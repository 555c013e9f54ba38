//! The state several replicas must share (rate limits, verification
//! budgets and the lockouts of unknown usernames, login challenges),
//! chosen in one place.
//!
//! | deployment | rate limits | budgets and lockouts | challenges |
//! |---|---|---|---|
//! | memory (no `DATABASE_URL`) | memory | memory | memory |
//! | PostgreSQL | PostgreSQL | PostgreSQL | PostgreSQL |
//! | PostgreSQL and `REDIS_URL` | Redis | Redis | PostgreSQL |
//! | memory and `REDIS_URL` | Redis | Redis | memory |
//!
//! With a database, nothing a guarantee depends on stays in one process:
//! every replica over the same database (and Redis) sees the others'
//! counts and challenges. The HTTP rate-limit tiers count in the same
//! limiter as authentication.

use std::fmt;
use std::sync::Arc;

use security_authn::{MemoryAttemptLedger, MemoryChallengeStore, MemoryRateLimiter, RateLimiter};
use security_core::{AttemptLedger, ChallengeStore};

use super::error::SetupError;

/// Where a shared port keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// This process's memory: exact for one process only.
    Memory,
    /// The event store's PostgreSQL database.
    Postgres,
    /// Redis (`REDIS_URL`).
    Redis,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Memory => "memory",
            Self::Postgres => "postgresql",
            Self::Redis => "redis",
        })
    }
}

/// Which backend each shared port of a running setup uses (see
/// [`SecurityServices::backends`](super::SecurityServices::backends)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backends {
    /// Login, MFA and API-tier rate limits.
    pub rate_limits: Backend,
    /// Verification budgets and the lockouts of unknown usernames.
    pub attempts: Backend,
    /// MFA challenges, password-change tickets, public-key nonces.
    pub challenges: Backend,
}

/// The shared ports handed to the authentication service and the HTTP
/// rate-limit tiers.
#[derive(Clone)]
pub(crate) struct SharedBackends {
    /// Counts login, MFA and API-tier attempts.
    pub(crate) rate_limiter: Arc<dyn RateLimiter>,
    /// Verification budgets and unknown-username lockouts.
    pub(crate) attempts: Arc<dyn AttemptLedger>,
    /// Pending challenges.
    pub(crate) challenges: Arc<dyn ChallengeStore>,
    /// What each of them is.
    pub(crate) kinds: Backends,
}

impl fmt::Debug for SharedBackends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBackends")
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

/// The shared backends for these settings: Redis for rate limits and
/// budgets when `REDIS_URL` is set (connected now), otherwise the
/// event store's PostgreSQL `database`, otherwise memory; challenges in
/// the database, otherwise memory.
pub(crate) async fn shared_backends(
    redis_url: Option<&secrecy::SecretString>,
    redis_key_prefix: Option<&str>,
    #[cfg(feature = "postgres")] database: Option<&security_eventstore::PostgresEventStore>,
) -> Result<SharedBackends, SetupError> {
    let mut backends = SharedBackends {
        rate_limiter: Arc::new(MemoryRateLimiter::new()),
        attempts: Arc::new(MemoryAttemptLedger::new()),
        challenges: Arc::new(MemoryChallengeStore::new()),
        kinds: Backends {
            rate_limits: Backend::Memory,
            attempts: Backend::Memory,
            challenges: Backend::Memory,
        },
    };
    #[cfg(feature = "postgres")]
    if let Some(store) = database {
        use security_eventstore::{
            PostgresAttemptLedger, PostgresChallengeStore, PostgresRateLimiter,
        };
        backends.rate_limiter = Arc::new(PostgresRateLimiter::new(store));
        backends.attempts = Arc::new(PostgresAttemptLedger::new(store));
        backends.challenges = Arc::new(PostgresChallengeStore::new(store));
        backends.kinds = Backends {
            rate_limits: Backend::Postgres,
            attempts: Backend::Postgres,
            challenges: Backend::Postgres,
        };
    }
    if let Some(url) = redis_url {
        let (limiter, attempts) = redis(url, redis_key_prefix).await?;
        backends.rate_limiter = limiter;
        backends.attempts = attempts;
        backends.kinds.rate_limits = Backend::Redis;
        backends.kinds.attempts = Backend::Redis;
    }
    Ok(backends)
}

#[cfg(feature = "redis")]
async fn redis(
    url: &secrecy::SecretString,
    prefix: Option<&str>,
) -> Result<(Arc<dyn RateLimiter>, Arc<dyn AttemptLedger>), SetupError> {
    use secrecy::ExposeSecret as _;
    use security_eventstore::{RedisAttemptLedger, RedisConfig, RedisConnection, RedisRateLimiter};

    let mut config = RedisConfig::new(url.expose_secret());
    if let Some(prefix) = prefix {
        config = config.with_key_prefix(prefix);
    }
    let connection = RedisConnection::connect(&config)
        .await
        .map_err(|e| match e {
            security_eventstore::Error::InvalidSetting { .. } => SetupError::invalid(
                "REDIS_URL",
                "not a URL this build's Redis client accepts (redis:// or unix://)",
            ),
            other => SetupError::Redis {
                retryable: other.is_retryable(),
                source: Box::new(other),
            },
        })?;
    Ok((
        Arc::new(RedisRateLimiter::new(&connection)),
        Arc::new(RedisAttemptLedger::new(&connection)),
    ))
}

#[cfg(not(feature = "redis"))]
#[allow(clippy::unused_async, reason = "awaits only with the redis feature")]
async fn redis(
    _url: &secrecy::SecretString,
    _prefix: Option<&str>,
) -> Result<(Arc<dyn RateLimiter>, Arc<dyn AttemptLedger>), SetupError> {
    Err(SetupError::invalid(
        "REDIS_URL",
        "this build has no Redis backend: enable the `redis` feature of the `security` package, \
         or unset REDIS_URL",
    ))
}
