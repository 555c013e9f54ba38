//! PostgreSQL: the event store, the transactional outbox and its relay,
//! projection checkpoints.

mod chain;
mod checkpoints;
mod config;
mod errors;
mod keys;
mod outbox;
mod store;

pub use checkpoints::PostgresCheckpointStore;
pub use config::{
    DATABASE_MAX_OVERFLOW, DATABASE_POOL_SIZE, DATABASE_URL, DEFAULT_CHANNEL, PoolConfig,
    PostgresConfig, StoreOptions,
};
pub use keys::PostgresKeyRecordStore;
pub use outbox::{OutboxRelay, RelayConfig, RelayOutcome, RelayStats};
pub use store::PostgresEventStore;
