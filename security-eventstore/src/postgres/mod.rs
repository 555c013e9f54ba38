//! PostgreSQL: the event store, the transactional outbox and its relay,
//! projection checkpoints.

mod attempts;
mod audit_index;
mod chain;
mod challenges;
mod checkpoints;
mod config;
mod errors;
mod keys;
mod outbox;
mod rate_limit;
mod store;

pub use attempts::PostgresAttemptLedger;
pub use audit_index::PostgresAuditIndex;
pub use challenges::PostgresChallengeStore;
pub use checkpoints::PostgresCheckpointStore;
pub use config::{
    DATABASE_ACQUIRE_TIMEOUT, DATABASE_LOCK_TIMEOUT, DATABASE_MAX_OVERFLOW, DATABASE_POOL_SIZE,
    DATABASE_STATEMENT_TIMEOUT, DATABASE_URL, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_CHANNEL,
    DEFAULT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT, PoolConfig, PostgresConfig, StoreOptions,
};
pub use keys::PostgresKeyRecordStore;
pub use outbox::{OutboxLag, OutboxRelay, RelayConfig, RelayOutcome, RelayStats};
pub use rate_limit::PostgresRateLimiter;
pub use store::PostgresEventStore;
