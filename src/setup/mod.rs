//! The one-call production setup (feature `setup`): [`SecurityServices`]
//! from the environment, connected, migrated, wired and running.
//!
//! | variable | default | |
//! |---|---|---|
//! | `DATABASE_URL` | memory | PostgreSQL (feature `postgres`); `postgresql+asyncpg://` URLs work |
//! | `DATABASE_POOL_SIZE`, `DATABASE_MAX_OVERFLOW` | 20, 10 | the pool's ceiling is their sum |
//! | `DATABASE_SCHEMA` | the `search_path` | the schema of the store's tables |
//! | `DATABASE_STATEMENT_TIMEOUT`, `DATABASE_LOCK_TIMEOUT`, `DATABASE_ACQUIRE_TIMEOUT` | 15s, 5s, 10s | `500ms`, `5s`, `2m` or bare milliseconds; `0` turns the first two off |
//! | `ENCRYPTION_KEY` | required with PostgreSQL | the key store's master key: 32 bytes in base64 |
//! | `ENCRYPTION_KEY_PREVIOUS` | none | master keys being rotated out, comma-separated |
//! | `FIELD_ENCRYPTION_KEY` | none | Fernet keys for field encryption, comma-separated, newest first |
//! | `OUTBOX_RELAY` | `kafka` when `KAFKA_BOOTSTRAP_SERVERS` is set, else `off` | `kafka`, `nats` or `off` |
//! | `KAFKA_*`, `NATS_URL` | | the relay's broker |
//! | `REDIS_URL`, `REDIS_PASSWORD` | none | Redis: rate limits and verification budgets shared by the replicas (feature `redis`) |
//! | `REDIS_KEY_PREFIX` | `security:` | the prefix of every Redis key |
//! | `JWT_*`, `MFA_*`, `AUTH_RATE_LIMIT`, `MFA_RATE_LIMIT`, `LOCKOUT_*`, `PASSWORD_*` | see [`AuthnConfig`](security_authn::AuthnConfig) | |
//! | `API_RATE_LIMIT_PER_MINUTE`, `API_RATE_LIMIT_PER_HOUR` | 60, 1000 | the `api_default` tier and the hourly cap |
//!
//! Every invalid value is an error naming its variable, and never showing
//! the value.

mod backends;
mod error;
mod health;
mod services;
mod settings;
mod signal;
mod tasks;

pub use backends::{Backend, Backends};
pub use error::SetupError;
pub use health::{Health, TaskHealth};
pub use services::SecurityServices;
pub use settings::{RelaySettings, SETUP_ENV_VARS, Settings, StoreSettings};
pub use signal::shutdown_signal;
