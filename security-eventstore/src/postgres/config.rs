//! How to reach PostgreSQL: the URL, the pool, the schema.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::error::Error;

/// The environment variable holding the database URL.
pub const DATABASE_URL: &str = "DATABASE_URL";
/// The environment variable holding the pool's steady size.
pub const DATABASE_POOL_SIZE: &str = "DATABASE_POOL_SIZE";
/// The environment variable holding the pool's overflow.
pub const DATABASE_MAX_OVERFLOW: &str = "DATABASE_MAX_OVERFLOW";
/// The environment variable holding the statement timeout (see
/// [`StoreOptions::statement_timeout`]).
pub const DATABASE_STATEMENT_TIMEOUT: &str = "DATABASE_STATEMENT_TIMEOUT";
/// The environment variable holding the lock timeout (see
/// [`StoreOptions::lock_timeout`]).
pub const DATABASE_LOCK_TIMEOUT: &str = "DATABASE_LOCK_TIMEOUT";
/// The environment variable holding the pool's acquire timeout (see
/// [`PoolConfig::acquire_timeout`]).
pub const DATABASE_ACQUIRE_TIMEOUT: &str = "DATABASE_ACQUIRE_TIMEOUT";

/// The default [`StoreOptions::statement_timeout`].
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(15);
/// The default [`StoreOptions::lock_timeout`].
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// The default [`PoolConfig::acquire_timeout`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection pool's size, in the terms of the source documents
/// (`DATABASE_POOL_SIZE=20`, `DATABASE_MAX_OVERFLOW=10`).
///
/// Those two settings come from SQLAlchemy, whose pool keeps `pool_size`
/// connections open and opens up to `max_overflow` more under load,
/// closing them when they are returned. sqlx's pool has one ceiling and an
/// idle timeout, so the mapping is:
///
/// | SQLAlchemy | sqlx |
/// | --- | --- |
/// | `pool_size + max_overflow` (30) | `max_connections` (30) |
/// | connections opened lazily | `min_connections` = [`min_connections`](Self::min_connections) (0: lazy) |
/// | overflow closed on return | every connection above `min_connections` closed after [`idle_timeout`](Self::idle_timeout) (10 min) |
///
/// So the pool never holds more than 30 connections, and under steady load
/// it holds what that load needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The steady number of connections (`DATABASE_POOL_SIZE`, default 20).
    pub size: u32,
    /// Extra connections allowed under load (`DATABASE_MAX_OVERFLOW`,
    /// default 10).
    pub max_overflow: u32,
    /// Connections kept open even when idle (default 0: opened on demand).
    pub min_connections: u32,
    /// How long an operation waits for a connection before it fails with
    /// a retryable [`StoreError::Unavailable`](security_core::StoreError::Unavailable)
    /// (`DATABASE_ACQUIRE_TIMEOUT`, default 10 s).
    pub acquire_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this long
    /// (default 10 minutes).
    pub idle_timeout: Option<Duration>,
    /// Connections are replaced after this long (default 30 minutes).
    pub max_lifetime: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            size: 20,
            max_overflow: 10,
            min_connections: 0,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
        }
    }
}

impl PoolConfig {
    /// The pool's ceiling: `size + max_overflow`.
    pub fn max_connections(&self) -> u32 {
        self.size.saturating_add(self.max_overflow).max(1)
    }

    /// The sqlx pool options this maps to.
    pub fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections())
            .min_connections(self.min_connections.min(self.max_connections()))
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(self.idle_timeout)
            .max_lifetime(self.max_lifetime)
    }
}

/// Where the event store lives: the database URL (it may hold a password,
/// so it is kept secret and never printed), the pool, and the schema.
#[derive(Clone)]
pub struct PostgresConfig {
    url: SecretString,
    /// The connection pool.
    pub pool: PoolConfig,
    schema: Option<String>,
    /// How the store behaves once connected.
    pub options: StoreOptions,
}

/// How a [`PostgresEventStore`](crate::PostgresEventStore) behaves, whatever
/// pool it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    channel: String,
    /// Whether appends also write outbox rows for an
    /// [`OutboxRelay`](crate::OutboxRelay) (default `true`). Turn it off
    /// only when nothing is published: outbox rows are removed only by a
    /// relay.
    pub outbox: bool,
    /// How often an idle subscription or relay looks for new events when
    /// no notification arrives (default 500 ms).
    pub poll_interval: Duration,
    /// The longest a statement of the store may run (PostgreSQL's
    /// `statement_timeout`, set in each of the store's transactions;
    /// `DATABASE_STATEMENT_TIMEOUT`, default 15 s; `None`: the server's
    /// setting). A statement cut by it fails with a retryable
    /// [`StoreError::Unavailable`](security_core::StoreError::Unavailable),
    /// and its transaction writes nothing.
    pub statement_timeout: Option<Duration>,
    /// The longest a statement waits for a lock (PostgreSQL's
    /// `lock_timeout`; `DATABASE_LOCK_TIMEOUT`, default 5 s; `None`: the
    /// server's setting). Also a retryable `Unavailable`.
    pub lock_timeout: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            channel: DEFAULT_CHANNEL.to_owned(),
            outbox: true,
            poll_interval: Duration::from_millis(500),
            statement_timeout: Some(DEFAULT_STATEMENT_TIMEOUT),
            lock_timeout: Some(DEFAULT_LOCK_TIMEOUT),
        }
    }
}

impl StoreOptions {
    /// Uses this LISTEN/NOTIFY channel (default `security_events`). Stores
    /// in different schemas of one database may share a channel: a wake-up
    /// that finds nothing new costs one read.
    pub fn with_channel(mut self, channel: impl Into<String>) -> Result<Self, Error> {
        let channel = channel.into();
        if !is_identifier(&channel) {
            return Err(Error::InvalidSetting {
                setting: "channel",
                reason: "must match [a-z_][a-z0-9_]* and be at most 63 bytes",
            });
        }
        self.channel = channel;
        Ok(self)
    }

    /// Sets how often idle subscriptions poll.
    pub fn with_poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    /// Sets the statement timeout (`None`: the server's setting).
    pub fn with_statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// Sets the lock timeout (`None`: the server's setting).
    pub fn with_lock_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Turns the outbox on or off.
    pub fn with_outbox(mut self, outbox: bool) -> Self {
        self.outbox = outbox;
        self
    }

    /// The LISTEN/NOTIFY channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"[redacted]")
            .field("pool", &self.pool)
            .field("schema", &self.schema)
            .field("options", &self.options)
            .finish()
    }
}

/// The default LISTEN/NOTIFY channel.
pub const DEFAULT_CHANNEL: &str = "security_events";

impl PostgresConfig {
    /// A configuration for a database URL, with the default pool.
    ///
    /// Accepts `postgres://`, `postgresql://` and SQLAlchemy-style
    /// `postgresql+<driver>://` URLs (the `+<driver>` part is ignored),
    /// with libpq's query parameters (`sslmode=verify-full`, …).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            pool: PoolConfig::default(),
            schema: None,
            options: StoreOptions::default(),
        }
    }

    /// Reads the configuration from the environment:
    ///
    /// | variable | meaning | default |
    /// | --- | --- | --- |
    /// | `DATABASE_URL` | the database (required) | – |
    /// | `DATABASE_POOL_SIZE` | steady connections | 20 |
    /// | `DATABASE_MAX_OVERFLOW` | extra connections under load | 10 |
    /// | `DATABASE_STATEMENT_TIMEOUT` | longest statement | 15s |
    /// | `DATABASE_LOCK_TIMEOUT` | longest wait for a lock | 5s |
    /// | `DATABASE_ACQUIRE_TIMEOUT` | longest wait for a pooled connection | 10s |
    ///
    /// Durations are a whole number with a unit, `ms`, `s` or `m` (a bare
    /// number is milliseconds); `0` turns the statement or lock timeout
    /// off. A malformed value is an error naming its variable.
    pub fn from_env() -> Result<Self, Error> {
        let url = std::env::var(DATABASE_URL).map_err(|_| Error::MissingSetting(DATABASE_URL))?;
        let mut config = Self::new(url);
        if let Some(size) = env_u32(DATABASE_POOL_SIZE)? {
            config.pool.size = size;
        }
        if let Some(overflow) = env_u32(DATABASE_MAX_OVERFLOW)? {
            config.pool.max_overflow = overflow;
        }
        if let Some(timeout) = env_duration(DATABASE_STATEMENT_TIMEOUT)? {
            config.options.statement_timeout = (!timeout.is_zero()).then_some(timeout);
        }
        if let Some(timeout) = env_duration(DATABASE_LOCK_TIMEOUT)? {
            config.options.lock_timeout = (!timeout.is_zero()).then_some(timeout);
        }
        if let Some(timeout) = env_duration(DATABASE_ACQUIRE_TIMEOUT)? {
            if timeout.is_zero() {
                return Err(Error::InvalidSetting {
                    setting: DATABASE_ACQUIRE_TIMEOUT,
                    reason: "must be more than zero",
                });
            }
            config.pool.acquire_timeout = timeout;
        }
        Ok(config)
    }

    /// Puts the store's tables in this schema (default: the connection's
    /// `search_path`, usually `public`). `migrate()` creates it if needed.
    ///
    /// The name must be a plain lowercase identifier (`[a-z_][a-z0-9_]*`,
    /// at most 63 bytes).
    pub fn with_schema(mut self, schema: impl Into<String>) -> Result<Self, Error> {
        let schema = schema.into();
        if !is_identifier(&schema) {
            return Err(Error::InvalidSetting {
                setting: "schema",
                reason: "must match [a-z_][a-z0-9_]* and be at most 63 bytes",
            });
        }
        self.schema = Some(schema);
        Ok(self)
    }

    /// Sets the pool.
    pub fn with_pool(mut self, pool: PoolConfig) -> Self {
        self.pool = pool;
        self
    }

    /// The schema, if one was set.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The connection options: the URL, plus the schema as the
    /// connection's `search_path`.
    pub fn connect_options(&self) -> Result<PgConnectOptions, Error> {
        let invalid = || Error::InvalidSetting {
            setting: DATABASE_URL,
            reason: "not a valid postgres:// URL",
        };
        let url = normalize_scheme(self.url.expose_secret()).ok_or_else(invalid)?;
        // The parse error may quote the URL (and its password): drop it.
        let mut options = PgConnectOptions::from_str(&url).map_err(|_| invalid())?;
        options = options.application_name("security-eventstore");
        if let Some(schema) = &self.schema {
            options = options.options([("search_path", schema.as_str())]);
        }
        Ok(options)
    }
}

fn env_u32(name: &'static str) -> Result<Option<u32>, Error> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::InvalidSetting {
                setting: name,
                reason: "must be a whole number",
            }),
    }
}

fn env_duration(name: &'static str) -> Result<Option<Duration>, Error> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(text) => parse_duration(&text)
            .map(Some)
            .ok_or(Error::InvalidSetting {
                setting: name,
                reason: "must be a whole number of ms, s or m (e.g. 500ms, 5s)",
            }),
    }
}

/// `250ms`, `5s`, `2m`, or a bare number of milliseconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (digits, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000)
    } else {
        (text, 1)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(Duration::from_millis(n.checked_mul(scale)?))
}

/// A duration as PostgreSQL's `statement_timeout`/`lock_timeout` text
/// (milliseconds; `0` turns the timeout off).
pub(crate) fn timeout_setting(timeout: Option<Duration>) -> String {
    timeout
        .map_or(0, |t| t.as_millis().clamp(1, i32::MAX as u128))
        .to_string()
}

/// `postgresql+asyncpg://…` → `postgresql://…`; `None` for a URL that is
/// not PostgreSQL's.
fn normalize_scheme(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let base = scheme
        .split_once('+')
        .map_or(scheme, |(base, _driver)| base);
    matches!(base, "postgres" | "postgresql").then(|| format!("postgresql://{rest}"))
}

/// A plain lowercase SQL identifier, safe to quote into DDL and LISTEN
/// (which take no parameters).
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_urls_are_accepted_and_the_password_never_printed() {
        let config = PostgresConfig::new("postgresql+asyncpg://app:hunter2-secret@db:5433/core");
        assert!(!format!("{config:?}").contains("hunter2"));
        let options = config.connect_options().unwrap();
        assert_eq!(options.get_host(), "db");
        assert_eq!(options.get_port(), 5433);
        assert_eq!(options.get_database(), Some("core"));
        let bad = PostgresConfig::new("mysql://app:hunter2-secret@db/core").connect_options();
        let message = bad.unwrap_err().to_string();
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn pool_defaults_are_twenty_plus_ten() {
        let pool = PoolConfig::default();
        assert_eq!(
            (pool.size, pool.max_overflow, pool.max_connections()),
            (20, 10, 30)
        );
        assert_eq!(pool.pool_options().get_max_connections(), 30);
    }

    #[test]
    fn durations_parse_with_their_unit_and_nothing_else() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 5s "), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1500"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in [
            "",
            "s",
            "-5s",
            "5 h",
            "5 s",
            "1.5s",
            "five",
            "99999999999999999999m",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(timeout_setting(None), "0");
        assert_eq!(timeout_setting(Some(Duration::from_micros(10))), "1");
        assert_eq!(timeout_setting(Some(Duration::from_secs(15))), "15000");
    }

    #[test]
    fn timeouts_come_from_the_environment_and_a_bad_one_is_named() {
        // Setting variables in this process is unsafe (other tests read
        // the environment at the same time): each case runs in a child
        // process of this test binary, with its own environment.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "postgres::config::tests::env_child",
                "--nocapture",
            ])
            .env(DATABASE_URL, "postgres://u@h/db")
            .env(DATABASE_STATEMENT_TIMEOUT, "2s")
            .env(DATABASE_LOCK_TIMEOUT, "0")
            .env(DATABASE_ACQUIRE_TIMEOUT, "750ms")
            .env("SECURITY_ENV_CHILD", "good")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        for (name, value) in [
            (DATABASE_STATEMENT_TIMEOUT, "soon"),
            (DATABASE_LOCK_TIMEOUT, "5 s"),
            (DATABASE_ACQUIRE_TIMEOUT, "0"),
        ] {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "postgres::config::tests::env_child",
                    "--nocapture",
                ])
                .env(DATABASE_URL, "postgres://u@h/db")
                .env(name, value)
                .env("SECURITY_ENV_CHILD", name)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    /// Run in a child process by the test above, with its environment.
    #[test]
    fn env_child() {
        let Ok(case) = std::env::var("SECURITY_ENV_CHILD") else {
            return;
        };
        let result = PostgresConfig::from_env();
        if case == "good" {
            let config = result.unwrap();
            assert_eq!(
                config.options.statement_timeout,
                Some(Duration::from_secs(2))
            );
            assert_eq!(config.options.lock_timeout, None);
            assert_eq!(config.pool.acquire_timeout, Duration::from_millis(750));
        } else {
            let message = result.unwrap_err().to_string();
            assert!(message.contains(&case), "{message}");
        }
    }

    #[test]
    fn identifiers_are_checked() {
        assert!(is_identifier("security_events"));
        assert!(is_identifier("_t1"));
        assert!(!is_identifier("Public"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier("a\"; drop table x; --"));
        assert!(!is_identifier(""));
        assert!(!is_identifier(&"a".repeat(64)));
        assert!(
            PostgresConfig::new("postgres://x")
                .with_schema("x y")
                .is_err()
        );
    }
}
