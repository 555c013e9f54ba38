//! Event-store backends for the security crate family, and the conformance
//! kit that proves a backend meets the store contract.
//!
//! - [`MemoryEventStore`] and [`MemoryPublisher`] (always built): the whole
//!   contract in memory, for tests, examples and single-process apps.
//! - PostgreSQL (feature `postgres`): `PostgresEventStore` (the whole
//!   contract, a gap-free global order, row-level security per tenant),
//!   the transactional outbox and its `OutboxRelay`, `PostgresCheckpointStore`
//!   and dead letters for projections, and `PostgresKeyRecordStore` for
//!   security-crypto's envelope-encrypted key store. Configured from
//!   `DATABASE_URL`, `DATABASE_POOL_SIZE`, `DATABASE_MAX_OVERFLOW`,
//!   `DATABASE_STATEMENT_TIMEOUT`, `DATABASE_LOCK_TIMEOUT` and
//!   `DATABASE_ACQUIRE_TIMEOUT` (`PostgresConfig::from_env`).
//! - Kafka (feature `kafka`): `KafkaPublisher`, an idempotent producer keyed
//!   by stream, configured from the `KAFKA_*` variables (`KafkaConfig`).
//!   It builds librdkafka from source (needs `make`, `gcc`, `libssl-dev`).
//! - NATS JetStream (feature `nats`): `NatsPublisher`, deduplicated by
//!   `Nats-Msg-Id`.
//! - What the replicas of an authentication service share (see
//!   `security_authn`): with `postgres`, `PostgresRateLimiter`,
//!   `PostgresAttemptLedger` and `PostgresChallengeStore` in the event
//!   store's database; with `redis` (`REDIS_URL`), `RedisRateLimiter` and
//!   `RedisAttemptLedger`, one round trip per check.
//! - The conformance kit, module `testkit` (feature `testkit`): one async
//!   function per clause of the contract and `testkit::run_all`, so an
//!   integrator's adapter proves itself with one call.
//!
//! The features are additive and off by default. Publishers only ever
//! receive `PublishedEvent`s, with every sealed field removed.
//!
//! The contract itself is documented on [`security_core::EventStore`].
//!
//! ```
//! use std::sync::Arc;
//! use security_core::{EventStore, ExpectedVersion, AppendRequest, StreamId, StreamQuery, TenantId};
//! use security_eventstore::MemoryEventStore;
//! # use security_core::{NewEvent, EventId, EventMetadata};
//! # fn event() -> NewEvent { NewEvent { event_id: EventId::from_uuid(uuid::Uuid::now_v7()),
//! #   event_type: "Hello".into(), schema_version: 1, occurred_at: chrono::Utc::now(),
//! #   payload: Arc::new(serde_json::json!({})), metadata: Arc::new(EventMetadata::default()) } }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryEventStore::new();
//! let stream = StreamId::new(TenantId::from_uuid(uuid::Uuid::now_v7()), "greeting", uuid::Uuid::now_v7());
//! let request = AppendRequest {
//!     stream_id: stream.clone(),
//!     expected: ExpectedVersion::NoStream,
//!     events: vec![event()],
//!     idempotency_key: None,
//! };
//! store.append(request).await?;
//! assert_eq!(store.read_stream(&stream, StreamQuery::all()).await?.len(), 1);
//! # Ok::<(), security_core::StoreError>(())
//! # }).unwrap();
//! ```

pub mod audit;
mod encoded;
mod error;
#[cfg(feature = "kafka")]
mod kafka;
mod memory;
mod memory_chain;
#[cfg(feature = "nats")]
mod nats;
pub mod observe;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis_state;
#[cfg(feature = "testkit")]
pub mod testkit;

/// The NATS client, re-exported so that applications use the version the
/// publisher was built with.
#[cfg(feature = "nats")]
pub use async_nats;
pub use encoded::{Delivery, EncodedEvent, PipelinedPublisher};
pub use error::Error;
#[cfg(feature = "kafka")]
pub use kafka::{DEFAULT_KAFKA_TOPIC, KafkaConfig, KafkaPublisher, headers as kafka_headers};
pub use memory::{MemoryEventStore, MemoryPublisher};
#[cfg(feature = "nats")]
pub use nats::{NatsConfig, NatsPublisher};
#[cfg(feature = "postgres")]
pub use postgres::{
    DATABASE_ACQUIRE_TIMEOUT, DATABASE_LOCK_TIMEOUT, DATABASE_MAX_OVERFLOW, DATABASE_POOL_SIZE,
    DATABASE_STATEMENT_TIMEOUT, DATABASE_URL, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_CHANNEL,
    DEFAULT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT, OutboxLag, OutboxRelay, PoolConfig,
    PostgresAttemptLedger, PostgresAuditIndex, PostgresChallengeStore, PostgresCheckpointStore,
    PostgresConfig, PostgresEventStore, PostgresKeyRecordStore, PostgresRateLimiter, RelayConfig,
    RelayOutcome, RelayStats, StoreOptions,
};
/// The Kafka client, re-exported so that applications (and the benchmark's
/// bare producer) use the version the publisher was built with.
#[cfg(feature = "kafka")]
pub use rdkafka;
#[cfg(feature = "redis")]
pub use redis_state::{
    REDIS_KEY_PREFIX, REDIS_URL, RedisAttemptLedger, RedisConfig, RedisConnection, RedisRateLimiter,
};
/// The PostgreSQL driver, re-exported so that a pool built by the
/// application (for [`PostgresEventStore::from_pool`]) is of the same
/// version.
#[cfg(feature = "postgres")]
pub use sqlx;
