//! Everything the one-call setup reads from the environment, validated.

use std::collections::HashMap;
use std::fmt;

use secrecy::SecretString;
use security_authn::{AuthnConfig, RateLimit};
use security_crypto::{FernetKey, MasterKey};

use super::error::SetupError;
use crate::rate_tiers::ApiRateLimits;

/// The variables [`Settings::from_env`] reads, besides those of
/// [`security_authn::ENV_VARS`] (`JWT_*`, `MFA_*`, `AUTH_RATE_LIMIT`,
/// `LOCKOUT_*`, `PASSWORD_*`).
pub const SETUP_ENV_VARS: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_POOL_SIZE",
    "DATABASE_MAX_OVERFLOW",
    "DATABASE_SCHEMA",
    "DATABASE_STATEMENT_TIMEOUT",
    "DATABASE_LOCK_TIMEOUT",
    "DATABASE_ACQUIRE_TIMEOUT",
    "REDIS_URL",
    "REDIS_PASSWORD",
    "REDIS_KEY_PREFIX",
    "OUTBOX_RELAY",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_TOPIC",
    "NATS_URL",
    "ENCRYPTION_KEY",
    "ENCRYPTION_KEY_PREVIOUS",
    "FIELD_ENCRYPTION_KEY",
    "API_RATE_LIMIT_PER_MINUTE",
    "API_RATE_LIMIT_PER_HOUR",
];

/// Where events are stored.
#[non_exhaustive]
pub enum StoreSettings {
    /// In this process's memory (no `DATABASE_URL`): for development and
    /// tests; everything is lost at exit.
    Memory,
    /// PostgreSQL (`DATABASE_URL`, feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres(security_eventstore::PostgresConfig),
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            #[cfg(feature = "postgres")]
            Self::Postgres(config) => f.debug_tuple("Postgres").field(config).finish(),
        }
    }
}

/// Where the transactional outbox publishes (`OUTBOX_RELAY`).
#[non_exhaustive]
pub enum RelaySettings {
    /// Nothing is published; the PostgreSQL store writes no outbox rows.
    Off,
    /// Kafka (`KAFKA_*`, feature `kafka`). The default when
    /// `KAFKA_BOOTSTRAP_SERVERS` is set.
    #[cfg(feature = "kafka")]
    Kafka(security_eventstore::KafkaConfig),
    /// NATS JetStream (`NATS_URL`, feature `nats`), with `OUTBOX_RELAY=nats`.
    #[cfg(feature = "nats")]
    Nats(security_eventstore::NatsConfig),
}

impl fmt::Debug for RelaySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("Off"),
            #[cfg(feature = "kafka")]
            Self::Kafka(config) => f.debug_tuple("Kafka").field(config).finish(),
            #[cfg(feature = "nats")]
            Self::Nats(config) => f.debug_tuple("Nats").field(config).finish(),
        }
    }
}

/// The validated configuration of [`SecurityServices`](super::SecurityServices).
///
/// `Debug` shows no secret (URLs with passwords, keys).
#[non_exhaustive]
pub struct Settings {
    /// The event store (`DATABASE_URL`, `DATABASE_POOL_SIZE`,
    /// `DATABASE_MAX_OVERFLOW`, `DATABASE_SCHEMA`).
    pub store: StoreSettings,
    /// The shared backend of rate limits, lockouts and challenges across
    /// replicas (`REDIS_URL`, `REDIS_PASSWORD`); kept secret (it may hold
    /// a password).
    pub redis_url: Option<SecretString>,
    /// The prefix of every Redis key (`REDIS_KEY_PREFIX`, default
    /// `security:`): replicas of one service share it; services sharing
    /// one Redis each have their own.
    pub redis_key_prefix: Option<String>,
    /// The outbox relay.
    pub relay: RelaySettings,
    /// The master key of the key store (`ENCRYPTION_KEY`); required with
    /// PostgreSQL. Without it (memory only) keys stay in memory.
    pub master_key: Option<MasterKey>,
    /// Master keys being rotated out (`ENCRYPTION_KEY_PREVIOUS`,
    /// comma-separated): what they protect stays readable until rewrapped.
    pub previous_master_keys: Vec<MasterKey>,
    /// The application's field-encryption key ring (`FIELD_ENCRYPTION_KEY`,
    /// comma-separated Fernet keys, newest first).
    pub field_keys: Vec<FernetKey>,
    /// Authentication (`JWT_*`, `MFA_*`, `AUTH_RATE_LIMIT`, …).
    pub authn: AuthnConfig,
    /// The API rate-limit tiers (`API_RATE_LIMIT_PER_MINUTE`,
    /// `API_RATE_LIMIT_PER_HOUR`).
    pub rate_limits: ApiRateLimits,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("store", &self.store)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[redacted]"))
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("relay", &self.relay)
            .field("master_key", &self.master_key.as_ref().map(MasterKey::id))
            .field("previous_master_keys", &self.previous_master_keys.len())
            .field("field_keys", &self.field_keys.len())
            .field("authn", &self.authn)
            .field("rate_limits", &self.rate_limits)
            .finish()
    }
}

impl Settings {
    /// The settings of the process environment, then of a `.env` file in
    /// the working directory (or a parent) for what the environment does
    /// not set. The file never overrides the environment and the process
    /// environment is not changed.
    pub fn from_env() -> Result<Self, SetupError> {
        let mut file = HashMap::new();
        match dotenvy::dotenv_iter() {
            Ok(entries) => {
                for entry in entries {
                    let (key, value) = entry.map_err(|e| SetupError::DotEnv(Box::new(e)))?;
                    file.insert(key, value);
                }
            }
            Err(e) if e.not_found() => {}
            Err(e) => return Err(SetupError::DotEnv(Box::new(e))),
        }
        Self::from_lookup(|name| std::env::var(name).ok().or_else(|| file.get(name).cloned()))
    }

    /// The settings read through `lookup` (tests, another configuration
    /// source). An unset or empty variable takes its default; an invalid
    /// one is an error naming it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SetupError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let authn = AuthnConfig::from_lookup(get)?;

        let mut rate_limits = ApiRateLimits {
            login: authn.login_rate,
            mfa: authn.mfa_rate,
            default: authn.api_rate,
            ..ApiRateLimits::default()
        };
        if let Some(v) = get("API_RATE_LIMIT_PER_HOUR") {
            rate_limits.per_hour = RateLimit::per_hour(count("API_RATE_LIMIT_PER_HOUR", &v)?);
        }

        let master_key = get("ENCRYPTION_KEY")
            .map(|v| master("ENCRYPTION_KEY", &v))
            .transpose()?;
        let previous_master_keys = match get("ENCRYPTION_KEY_PREVIOUS") {
            Some(v) => list(&v)
                .map(|k| master("ENCRYPTION_KEY_PREVIOUS", k))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        if master_key.is_none() && !previous_master_keys.is_empty() {
            return Err(SetupError::invalid(
                "ENCRYPTION_KEY",
                "must be set when ENCRYPTION_KEY_PREVIOUS is",
            ));
        }
        let field_keys = match get("FIELD_ENCRYPTION_KEY") {
            Some(v) => list(&v)
                .map(|k| {
                    FernetKey::from_base64(k).map_err(|_| {
                        SetupError::invalid(
                            "FIELD_ENCRYPTION_KEY",
                            "expected comma-separated Fernet keys (32 bytes in base64url each)",
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };

        let redis_url = get("REDIS_URL")
            .map(|v| redis_url(&v, get("REDIS_PASSWORD")))
            .transpose()?;
        let redis_key_prefix = get("REDIS_KEY_PREFIX")
            .map(|v| redis_key_prefix(&v))
            .transpose()?;

        let store = store_settings(&get)?;
        if !matches!(store, StoreSettings::Memory) && master_key.is_none() {
            return Err(SetupError::invalid(
                "ENCRYPTION_KEY",
                "must be set with DATABASE_URL: the key store keeps private keys in the database, encrypted under it (32 random bytes in base64)",
            ));
        }
        let relay = relay_settings(&get)?;

        Ok(Self {
            store,
            redis_url,
            redis_key_prefix,
            relay,
            master_key,
            previous_master_keys,
            field_keys,
            authn,
            rate_limits,
        })
    }
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|k| !k.is_empty())
}

fn count(variable: &'static str, value: &str) -> Result<u32, SetupError> {
    match value.trim().parse::<u32>() {
        Ok(n) if (1..=10_000_000).contains(&n) => Ok(n),
        _ => Err(SetupError::invalid(
            variable,
            "expected a whole number of requests from 1 to 10000000",
        )),
    }
}

fn master(variable: &'static str, value: &str) -> Result<MasterKey, SetupError> {
    MasterKey::from_base64(value.trim())
        .map_err(|_| SetupError::invalid(variable, "expected 32 random bytes in base64"))
}

fn redis_key_prefix(value: &str) -> Result<String, SetupError> {
    let value = value.trim();
    if value.len() > 128 || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(SetupError::invalid(
            "REDIS_KEY_PREFIX",
            "expected at most 128 characters, no spaces or control characters",
        ));
    }
    Ok(value.to_owned())
}

fn redis_url(value: &str, password: Option<String>) -> Result<SecretString, SetupError> {
    let value = value.trim();
    let scheme_ok = ["redis://", "rediss://", "unix://", "redis+unix://"]
        .iter()
        .any(|scheme| value.starts_with(scheme));
    if !scheme_ok || value.len() > 2048 || value.chars().any(char::is_control) {
        return Err(SetupError::invalid(
            "REDIS_URL",
            "expected a redis://, rediss:// or unix:// URL",
        ));
    }
    let Some(password) = password else {
        return Ok(SecretString::from(value.to_owned()));
    };
    // `REDIS_PASSWORD` goes into the URL's user-info when the URL has none.
    let (scheme, rest) = value.split_once("://").unwrap_or(("redis", value));
    if rest.contains('@') {
        return Err(SetupError::invalid(
            "REDIS_PASSWORD",
            "must not be set when REDIS_URL already holds credentials",
        ));
    }
    let encoded: String = password
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Ok(SecretString::from(format!("{scheme}://:{encoded}@{rest}")))
}

fn store_settings(get: &impl Fn(&str) -> Option<String>) -> Result<StoreSettings, SetupError> {
    let Some(url) = get("DATABASE_URL") else {
        for variable in [
            "DATABASE_POOL_SIZE",
            "DATABASE_MAX_OVERFLOW",
            "DATABASE_SCHEMA",
            "DATABASE_STATEMENT_TIMEOUT",
            "DATABASE_LOCK_TIMEOUT",
            "DATABASE_ACQUIRE_TIMEOUT",
        ] {
            if get(variable).is_some() {
                return Err(SetupError::invalid(
                    variable,
                    "is set but DATABASE_URL is not",
                ));
            }
        }
        return Ok(StoreSettings::Memory);
    };
    postgres_settings(get, url)
}

#[cfg(not(feature = "postgres"))]
fn postgres_settings(
    _get: &impl Fn(&str) -> Option<String>,
    _url: String,
) -> Result<StoreSettings, SetupError> {
    Err(SetupError::invalid(
        "DATABASE_URL",
        "is set but this build has no PostgreSQL store (enable the `postgres` feature)",
    ))
}

#[cfg(feature = "postgres")]
fn postgres_settings(
    get: &impl Fn(&str) -> Option<String>,
    url: String,
) -> Result<StoreSettings, SetupError> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
    if !(scheme == "postgres" || scheme == "postgresql" || scheme.starts_with("postgresql+")) {
        return Err(SetupError::invalid(
            "DATABASE_URL",
            "expected a postgres:// or postgresql:// URL",
        ));
    }
    let mut config = security_eventstore::PostgresConfig::new(url);
    let pool_number = |variable: &'static str, min: u32| -> Result<Option<u32>, SetupError> {
        get(variable)
            .map(|v| match v.trim().parse::<u32>() {
                Ok(n) if (min..=10_000).contains(&n) => Ok(n),
                _ => Err(SetupError::invalid(
                    variable,
                    format!("expected a whole number of connections from {min} to 10000"),
                )),
            })
            .transpose()
    };
    if let Some(size) = pool_number("DATABASE_POOL_SIZE", 1)? {
        config.pool.size = size;
    }
    if let Some(overflow) = pool_number("DATABASE_MAX_OVERFLOW", 0)? {
        config.pool.max_overflow = overflow;
    }
    if let Some(schema) = get("DATABASE_SCHEMA") {
        config = config.with_schema(schema.trim()).map_err(|_| {
            SetupError::invalid(
                "DATABASE_SCHEMA",
                "expected a lowercase identifier ([a-z_][a-z0-9_]*, at most 63 bytes)",
            )
        })?;
    }
    if let Some(timeout) = timeout(get, "DATABASE_STATEMENT_TIMEOUT")? {
        config.options.statement_timeout = (!timeout.is_zero()).then_some(timeout);
    }
    if let Some(timeout) = timeout(get, "DATABASE_LOCK_TIMEOUT")? {
        config.options.lock_timeout = (!timeout.is_zero()).then_some(timeout);
    }
    if let Some(timeout) = timeout(get, "DATABASE_ACQUIRE_TIMEOUT")? {
        if timeout.is_zero() {
            return Err(SetupError::invalid(
                "DATABASE_ACQUIRE_TIMEOUT",
                "must be more than zero",
            ));
        }
        config.pool.acquire_timeout = timeout;
    }
    // `connect_options` parses the URL: a malformed one fails here, named.
    config.connect_options().map_err(|_| {
        SetupError::invalid("DATABASE_URL", "expected a valid PostgreSQL connection URL")
    })?;
    Ok(StoreSettings::Postgres(config))
}

/// A timeout variable: a whole number with a unit, `ms`, `s` or `m` (a
/// bare number is milliseconds), as `PostgresConfig::from_env` reads it.
#[cfg(feature = "postgres")]
fn timeout(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Option<std::time::Duration>, SetupError> {
    let Some(text) = get(variable) else {
        return Ok(None);
    };
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
    let millis = digits
        .parse::<u64>()
        .ok()
        .filter(|_| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.checked_mul(scale));
    match millis {
        Some(ms) => Ok(Some(std::time::Duration::from_millis(ms))),
        None => Err(SetupError::invalid(
            variable,
            "expected a whole number of ms, s or m (e.g. 500ms, 5s)",
        )),
    }
}

fn relay_settings(get: &impl Fn(&str) -> Option<String>) -> Result<RelaySettings, SetupError> {
    let choice = get("OUTBOX_RELAY").map(|v| v.trim().to_ascii_lowercase());
    let kafka_set = get("KAFKA_BOOTSTRAP_SERVERS").is_some();
    match choice.as_deref() {
        Some("kafka") => kafka_settings(get),
        None if kafka_set => kafka_settings(get),
        Some("off" | "none") | None => Ok(RelaySettings::Off),
        Some("nats") => nats_settings(get),
        Some(_) => Err(SetupError::invalid(
            "OUTBOX_RELAY",
            "expected kafka, nats or off",
        )),
    }
}

#[cfg(not(feature = "kafka"))]
fn kafka_settings(_get: &impl Fn(&str) -> Option<String>) -> Result<RelaySettings, SetupError> {
    Err(SetupError::invalid(
        "KAFKA_BOOTSTRAP_SERVERS",
        "a Kafka relay is configured but this build has no Kafka publisher (enable the `kafka` feature)",
    ))
}

#[cfg(feature = "kafka")]
fn kafka_settings(get: &impl Fn(&str) -> Option<String>) -> Result<RelaySettings, SetupError> {
    const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
    const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
    let servers = get("KAFKA_BOOTSTRAP_SERVERS").ok_or_else(|| {
        SetupError::invalid("KAFKA_BOOTSTRAP_SERVERS", "must be set for a Kafka relay")
    })?;
    let mut config = security_eventstore::KafkaConfig::new(servers.trim());
    if let Some(protocol) = get("KAFKA_SECURITY_PROTOCOL") {
        let protocol = protocol.trim().to_ascii_uppercase();
        if !PROTOCOLS.contains(&protocol.as_str()) {
            return Err(SetupError::invalid(
                "KAFKA_SECURITY_PROTOCOL",
                "expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
            ));
        }
        config.security_protocol = Some(protocol);
    }
    match (
        get("KAFKA_SASL_MECHANISM"),
        get("KAFKA_SASL_USERNAME"),
        get("KAFKA_SASL_PASSWORD"),
    ) {
        (None, None, None) => {}
        (Some(mechanism), Some(username), Some(password)) => {
            let mechanism = mechanism.trim().to_ascii_uppercase();
            if !MECHANISMS.contains(&mechanism.as_str()) {
                return Err(SetupError::invalid(
                    "KAFKA_SASL_MECHANISM",
                    "expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                ));
            }
            config = config.with_sasl(mechanism, username.trim(), SecretString::from(password));
        }
        (None, _, _) => {
            return Err(SetupError::invalid(
                "KAFKA_SASL_MECHANISM",
                "must be set with KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
            ));
        }
        (_, None, _) => {
            return Err(SetupError::invalid(
                "KAFKA_SASL_USERNAME",
                "must be set with KAFKA_SASL_MECHANISM",
            ));
        }
        (_, _, None) => {
            return Err(SetupError::invalid(
                "KAFKA_SASL_PASSWORD",
                "must be set with KAFKA_SASL_MECHANISM",
            ));
        }
    }
    if let Some(topic) = get("KAFKA_TOPIC") {
        let topic = topic.trim();
        let valid = topic.len() <= 249
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(SetupError::invalid(
                "KAFKA_TOPIC",
                "expected at most 249 characters of [a-zA-Z0-9._-]",
            ));
        }
        config = config.with_topic(topic);
    }
    Ok(RelaySettings::Kafka(config))
}

#[cfg(not(feature = "nats"))]
fn nats_settings(_get: &impl Fn(&str) -> Option<String>) -> Result<RelaySettings, SetupError> {
    Err(SetupError::invalid(
        "OUTBOX_RELAY",
        "is nats but this build has no NATS publisher (enable the `nats` feature)",
    ))
}

#[cfg(feature = "nats")]
fn nats_settings(get: &impl Fn(&str) -> Option<String>) -> Result<RelaySettings, SetupError> {
    let mut config = security_eventstore::NatsConfig::default();
    if let Some(url) = get("NATS_URL") {
        let url = url.trim();
        if !(url.starts_with("nats://") || url.starts_with("tls://") || url.starts_with("ws"))
            || url.chars().any(char::is_control)
        {
            return Err(SetupError::invalid(
                "NATS_URL",
                "expected a nats://, tls:// or ws(s):// URL",
            ));
        }
        url.clone_into(&mut config.url);
    }
    Ok(RelaySettings::Nats(config))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY";

    fn from(vars: &[(&str, &str)]) -> Result<Settings, SetupError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn nothing_set_is_memory_with_the_source_documents_defaults() {
        let settings = from(&[]).unwrap();
        assert!(matches!(settings.store, StoreSettings::Memory));
        assert!(matches!(settings.relay, RelaySettings::Off));
        assert!(settings.master_key.is_none() && settings.redis_url.is_none());
        assert_eq!(settings.rate_limits, ApiRateLimits::default());
    }

    #[test]
    fn the_api_tiers_follow_the_environment() {
        let settings = from(&[
            ("API_RATE_LIMIT_PER_MINUTE", "90"),
            ("API_RATE_LIMIT_PER_HOUR", "5000"),
            ("AUTH_RATE_LIMIT", "10/minute"),
        ])
        .unwrap();
        assert_eq!(settings.rate_limits.default, RateLimit::per_minute(90));
        assert_eq!(settings.rate_limits.per_hour, RateLimit::per_hour(5000));
        assert_eq!(settings.rate_limits.login, RateLimit::per_minute(10));
        assert_eq!(settings.rate_limits.read, RateLimit::per_minute(100));
    }

    #[test]
    fn every_invalid_value_names_its_variable_and_hides_its_value() {
        let secretish = "s3cr3t-value-that-must-not-show";
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("API_RATE_LIMIT_PER_HOUR", secretish)],
                "API_RATE_LIMIT_PER_HOUR",
            ),
            (
                &[("API_RATE_LIMIT_PER_MINUTE", "0")],
                "API_RATE_LIMIT_PER_MINUTE",
            ),
            (&[("ENCRYPTION_KEY", secretish)], "ENCRYPTION_KEY"),
            (
                &[
                    ("ENCRYPTION_KEY", KEY),
                    ("ENCRYPTION_KEY_PREVIOUS", secretish),
                ],
                "ENCRYPTION_KEY_PREVIOUS",
            ),
            (&[("ENCRYPTION_KEY_PREVIOUS", KEY)], "ENCRYPTION_KEY"),
            (
                &[("FIELD_ENCRYPTION_KEY", secretish)],
                "FIELD_ENCRYPTION_KEY",
            ),
            (&[("REDIS_URL", secretish)], "REDIS_URL"),
            (
                &[
                    ("REDIS_URL", "redis://user:pw@cache:6379/0"),
                    ("REDIS_PASSWORD", secretish),
                ],
                "REDIS_PASSWORD",
            ),
            (&[("DATABASE_POOL_SIZE", "20")], "DATABASE_POOL_SIZE"),
            (&[("OUTBOX_RELAY", "carrier-pigeon")], "OUTBOX_RELAY"),
            (&[("JWT_ALGORITHM", "none")], "JWT_ALGORITHM"),
            (&[("MFA_TOTP_INTERVAL", "1")], "MFA_TOTP_INTERVAL"),
        ];
        for (vars, variable) in cases {
            let err = from(vars).unwrap_err();
            assert_eq!(err.variable(), Some(*variable), "{vars:?}: {err}");
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("invalid {variable}: ")),
                "{message}"
            );
            assert!(!message.contains(secretish), "{message}");
            assert!(!err.is_retryable());
        }
    }

    #[test]
    fn keys_and_redis_credentials_are_read_and_never_shown() {
        let settings = from(&[
            ("ENCRYPTION_KEY", KEY),
            ("FIELD_ENCRYPTION_KEY", &format!("{KEY}, {KEY}")),
            ("REDIS_URL", "redis://cache:6379/0"),
            ("REDIS_PASSWORD", "p@ss word"),
        ])
        .unwrap();
        assert!(settings.master_key.is_some());
        assert_eq!(settings.field_keys.len(), 2);
        let url = settings
            .redis_url
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned();
        assert_eq!(url, "redis://:p%40ss%20word@cache:6379/0");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("p%40ss") && !debug.contains(KEY), "{debug}");
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_needs_the_master_key_and_valid_pool_numbers() {
        let url = ("DATABASE_URL", "postgresql+asyncpg://app:pw@db:5432/bank");
        let err = from(&[url]).unwrap_err();
        assert_eq!(err.variable(), Some("ENCRYPTION_KEY"));
        let err =
            from(&[url, ("ENCRYPTION_KEY", KEY), ("DATABASE_POOL_SIZE", "lots")]).unwrap_err();
        assert_eq!(err.variable(), Some("DATABASE_POOL_SIZE"));
        let err = from(&[
            url,
            ("ENCRYPTION_KEY", KEY),
            ("DATABASE_SCHEMA", "Bad-Name"),
        ])
        .unwrap_err();
        assert_eq!(err.variable(), Some("DATABASE_SCHEMA"));
        let err =
            from(&[("DATABASE_URL", "mysql://db/bank"), ("ENCRYPTION_KEY", KEY)]).unwrap_err();
        assert_eq!(err.variable(), Some("DATABASE_URL"));
        let settings = from(&[
            url,
            ("ENCRYPTION_KEY", KEY),
            ("DATABASE_POOL_SIZE", "8"),
            ("DATABASE_MAX_OVERFLOW", "4"),
        ])
        .unwrap();
        let StoreSettings::Postgres(config) = &settings.store else {
            panic!("PostgreSQL expected");
        };
        assert_eq!(config.pool.max_connections(), 12);
        assert!(!format!("{settings:?}").contains("pw@db"));
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn database_timeouts_are_read_and_a_bad_one_is_named() {
        let url = ("DATABASE_URL", "postgres://app@db:5432/bank");
        let key = ("ENCRYPTION_KEY", KEY);
        let settings = from(&[
            url,
            key,
            ("DATABASE_STATEMENT_TIMEOUT", "2s"),
            ("DATABASE_LOCK_TIMEOUT", "0"),
            ("DATABASE_ACQUIRE_TIMEOUT", "750ms"),
        ])
        .unwrap();
        let StoreSettings::Postgres(config) = &settings.store else {
            panic!("PostgreSQL expected");
        };
        assert_eq!(
            config.options.statement_timeout,
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(config.options.lock_timeout, None);
        assert_eq!(
            config.pool.acquire_timeout,
            std::time::Duration::from_millis(750)
        );
        for (variable, value) in [
            ("DATABASE_STATEMENT_TIMEOUT", "soon"),
            ("DATABASE_LOCK_TIMEOUT", "5 s"),
            ("DATABASE_ACQUIRE_TIMEOUT", "0"),
            ("DATABASE_ACQUIRE_TIMEOUT", "-1s"),
        ] {
            let err = from(&[url, key, (variable, value)]).unwrap_err();
            assert_eq!(err.variable(), Some(variable), "{value}");
        }
        let err = from(&[("DATABASE_LOCK_TIMEOUT", "5s")]).unwrap_err();
        assert_eq!(err.variable(), Some("DATABASE_LOCK_TIMEOUT"));
    }

    #[test]
    fn the_redis_key_prefix_is_checked() {
        let url = ("REDIS_URL", "redis://cache:6379/0");
        let settings = from(&[url, ("REDIS_KEY_PREFIX", "bank:")]).unwrap();
        assert_eq!(settings.redis_key_prefix.as_deref(), Some("bank:"));
        let err = from(&[url, ("REDIS_KEY_PREFIX", "two words")]).unwrap_err();
        assert_eq!(err.variable(), Some("REDIS_KEY_PREFIX"));
    }

    #[cfg(not(feature = "kafka"))]
    #[test]
    fn a_relay_this_build_cannot_run_is_an_error() {
        let err = from(&[("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")]).unwrap_err();
        assert_eq!(err.variable(), Some("KAFKA_BOOTSTRAP_SERVERS"));
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn kafka_settings_are_checked() {
        let servers = ("KAFKA_BOOTSTRAP_SERVERS", "broker:9092");
        assert!(matches!(
            from(&[servers]).unwrap().relay,
            RelaySettings::Kafka(_)
        ));
        assert!(matches!(
            from(&[servers, ("OUTBOX_RELAY", "off")]).unwrap().relay,
            RelaySettings::Off
        ));
        let err = from(&[servers, ("KAFKA_SECURITY_PROTOCOL", "TLS9")]).unwrap_err();
        assert_eq!(err.variable(), Some("KAFKA_SECURITY_PROTOCOL"));
        let err = from(&[servers, ("KAFKA_SASL_USERNAME", "app")]).unwrap_err();
        assert_eq!(err.variable(), Some("KAFKA_SASL_MECHANISM"));
    }
}
