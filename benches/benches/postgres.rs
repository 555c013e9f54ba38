//! PostgreSQL event store and outbox relay, side by side with
//! the references on the same server, in one run:
//!
//! - appending 100-event batches (`PostgresEventStore::append`: version
//!   check, numbering under the log head's lock, outbox rows, RLS) vs a bare
//!   multi-row `INSERT` of the same rows into a table of the same shape and
//!   indexes; one writer, and 8 concurrent writers on different streams.
//!   Target: ≥ 0.5× the bare insert's rows/s.
//! - the outbox relay publishing 5 000 events into Kafka vs a bare rdkafka
//!   producer (idempotent, acks=all) sending the same messages. Target:
//!   ≥ 0.5× the bare producer's messages/s.
//!
//! Needs PostgreSQL (`DATABASE_URL`, default the loopback server) and a
//! Kafka broker (`KAFKA_BOOTSTRAP_SERVERS`, default 127.0.0.1:9092):
//! `cargo bench -p security-benches --bench postgres --features postgres`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark code"
)]

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use security::core::{
    AppendRequest, EventId, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId,
    TenantId,
};
use security::core::{PublishError, PublishedEvent, Publisher, async_trait};
use security::eventstore::rdkafka::ClientConfig;
use security::eventstore::rdkafka::admin::{AdminClient, AdminOptions};
use security::eventstore::rdkafka::client::DefaultClientContext;
use security::eventstore::rdkafka::message::{Header, OwnedHeaders};
use security::eventstore::rdkafka::producer::{FutureProducer, FutureRecord};
use security::eventstore::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use security::eventstore::sqlx::{self, QueryBuilder};
use security::eventstore::{
    Delivery, EncodedEvent, KafkaConfig, KafkaPublisher, OutboxRelay, PipelinedPublisher,
    PostgresEventStore, RelayConfig,
};
use serde_json::json;
use uuid::Uuid;

const BATCH: usize = 100;
const WRITERS: usize = 8;
const RELAYED: usize = 5_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

fn new_events(n: usize) -> Vec<NewEvent> {
    let payload = Arc::new(json!({
        "user_id": "0190c7a4-6f7e-7d55-a000-000000000001",
        "policy_id": "0190c7a4-6f7e-7d55-a000-000000000002",
        "assigned_by": "user:0190c7a4-6f7e-7d55-a000-000000000003",
    }));
    let metadata = Arc::new(EventMetadata::default());
    (0..n)
        .map(|_| NewEvent {
            event_id: EventId::from_uuid(Uuid::now_v7()),
            event_type: Arc::from("PolicyAssigned"),
            schema_version: 1,
            occurred_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            payload: Arc::clone(&payload),
            metadata: Arc::clone(&metadata),
        })
        .collect()
}

/// A schema owned by a role of its own (not a superuser: row-level
/// security applies, as in production), the store on it, and a bare table
/// of the same shape for the reference.
struct Bench {
    admin: PgPool,
    name: String,
    store: PostgresEventStore,
    bare: PgPool,
    next_bare_position: AtomicI64,
}

impl Bench {
    async fn new() -> Self {
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(&database_url())
            .await
            .expect("PostgreSQL");
        let name = format!("sec_bench_{}", &Uuid::now_v7().simple().to_string()[20..]);
        sqlx::raw_sql(&format!(
            "CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
             CREATE SCHEMA \"{name}\" AUTHORIZATION \"{name}\";"
        ))
        .execute(&admin)
        .await
        .unwrap();
        let options = PgConnectOptions::from_str(&database_url())
            .unwrap()
            .username(&name)
            .options([("search_path", name.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(12)
            .connect_with(options)
            .await
            .unwrap();
        let store = PostgresEventStore::from_pool(pool.clone());
        store.migrate().await.unwrap();
        // The reference: same columns, same constraints and indexes; no
        // version check, no numbering lock, no outbox, no row-level security.
        sqlx::raw_sql(
            "CREATE TABLE bare_events (LIKE security_events INCLUDING DEFAULTS \
             INCLUDING CONSTRAINTS INCLUDING INDEXES)",
        )
        .execute(&pool)
        .await
        .unwrap();
        Self {
            admin,
            name,
            store,
            bare: pool,
            next_bare_position: AtomicI64::new(0),
        }
    }

    /// One multi-row `INSERT … VALUES (…), (…), …` of the batch's rows.
    async fn bare_insert(&self, stream: &StreamId, first_version: i64, events: &[NewEvent]) {
        let n = i64::try_from(events.len()).unwrap();
        let first_position = self.next_bare_position.fetch_add(n, Ordering::SeqCst) + 1;
        let mut query = QueryBuilder::new(
            "INSERT INTO bare_events (global_position, event_id, tenant_id, aggregate_type, \
             aggregate_id, version, event_type, schema_version, occurred_at, payload, metadata, \
             prev_hash, hash) ",
        );
        query.push_values(events.iter().zip(0i64..), |mut row, (event, i)| {
            row.push_bind(first_position + i)
                .push_bind(event.event_id.as_uuid())
                .push_bind(stream.tenant_id.as_uuid())
                .push_bind(stream.aggregate_type.to_string())
                .push_bind(stream.aggregate_id)
                .push_bind(first_version + i)
                .push_bind(event.event_type.to_string())
                .push_bind(i64::from(event.schema_version))
                .push_bind(event.occurred_at)
                .push_bind(serde_json::to_string(&*event.payload).unwrap())
                .push_unseparated("::json")
                .push_bind(serde_json::to_string(&*event.metadata).unwrap())
                .push_unseparated("::json")
                .push_bind(vec![0_u8; 32])
                .push_bind(vec![0_u8; 32]);
        });
        query.build().execute(&self.bare).await.unwrap();
    }

    async fn cleanup(self) {
        self.store.close().await;
        self.bare.close().await;
        sqlx::raw_sql(&format!(
            "DROP SCHEMA \"{0}\" CASCADE; DROP ROLE \"{0}\";",
            self.name
        ))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}

fn stream(tenant: TenantId) -> StreamId {
    StreamId::new(tenant, "bench", Uuid::now_v7())
}

/// `iters` rounds of `writers` concurrent 100-event appends through the
/// store, each writer on its own stream.
async fn store_rounds(bench: &Arc<Bench>, iters: u64, writers: usize) -> Duration {
    let tenant = TenantId::from_uuid(Uuid::now_v7());
    let streams: Vec<StreamId> = (0..writers).map(|_| stream(tenant)).collect();
    let batches: Vec<Vec<Vec<NewEvent>>> = (0..iters)
        .map(|_| (0..writers).map(|_| new_events(BATCH)).collect())
        .collect();
    let start = Instant::now();
    for round in batches {
        let tasks: Vec<_> = round
            .into_iter()
            .zip(&streams)
            .map(|(events, s)| {
                let store = bench.store.clone();
                let request = AppendRequest {
                    stream_id: s.clone(),
                    expected: ExpectedVersion::Any,
                    events,
                    idempotency_key: None,
                };
                tokio::spawn(async move { store.append(request).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
    start.elapsed()
}

/// The same rounds as bare multi-row inserts.
async fn bare_rounds(bench: &Arc<Bench>, iters: u64, writers: usize) -> Duration {
    let tenant = TenantId::from_uuid(Uuid::now_v7());
    let streams: Vec<StreamId> = (0..writers).map(|_| stream(tenant)).collect();
    let batches: Vec<Vec<Vec<NewEvent>>> = (0..iters)
        .map(|_| (0..writers).map(|_| new_events(BATCH)).collect())
        .collect();
    let start = Instant::now();
    for (round, batch) in batches.into_iter().enumerate() {
        let first_version = i64::try_from(round * BATCH).unwrap() + 1;
        let tasks: Vec<_> = batch
            .into_iter()
            .zip(&streams)
            .map(|(events, s)| {
                let bench = Arc::clone(bench);
                let s = s.clone();
                tokio::spawn(async move { bench.bare_insert(&s, first_version, &events).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
    start.elapsed()
}

fn appends(c: &mut Criterion) {
    let rt = runtime();
    let bench = Arc::new(rt.block_on(Bench::new()));
    for writers in [1, WRITERS] {
        let mut group = c.benchmark_group(format!("postgres_append_100/{writers}_writers"));
        group.throughput(Throughput::Elements((BATCH * writers) as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(8));
        group.bench_function("store_append", |b| {
            b.to_async(&rt)
                .iter_custom(|iters| store_rounds(&bench, iters, writers));
        });
        group.bench_function("bare_multi_row_insert", |b| {
            b.to_async(&rt)
                .iter_custom(|iters| bare_rounds(&bench, iters, writers));
        });
        group.finish();
    }
    let bench = Arc::into_inner(bench).unwrap();
    rt.block_on(bench.cleanup());
}

/// A publisher whose broker acknowledges everything at once: relaying into
/// it measures the database's side of the relay alone (read, encode, mark).
#[derive(Debug)]
struct NullSink;

#[async_trait]
impl Publisher for NullSink {
    async fn publish(&self, _events: &[PublishedEvent]) -> Result<(), PublishError> {
        Ok(())
    }
}

#[async_trait]
impl PipelinedPublisher for NullSink {
    async fn send(&self, events: &[EncodedEvent]) -> Result<Delivery, PublishError> {
        std::hint::black_box(events);
        Ok(Delivery::new(async { Ok(()) }))
    }
}

fn relay(c: &mut Criterion) {
    let rt = runtime();
    let bench = rt.block_on(Bench::new());
    let topic = format!("security.bench.{}", Uuid::now_v7().simple());
    let mut config = KafkaConfig::new(bootstrap()).with_topic(&topic);
    if let Ok(linger) = std::env::var("BENCH_LINGER") {
        config.properties.push(("linger.ms".into(), linger));
    }
    let publisher = Arc::new(KafkaPublisher::new(config.clone()).unwrap());
    rt.block_on(publisher.create_topic(3))
        .expect("a Kafka broker");
    let relays: Vec<(usize, Arc<OutboxRelay>)> = [500, 1_000, RELAYED]
        .into_iter()
        .map(|batch_size| {
            let relay =
                OutboxRelay::pipelined(&bench.store, publisher.clone()).with_config(RelayConfig {
                    batch_size,
                    ..RelayConfig::default()
                });
            (batch_size, Arc::new(relay))
        })
        .chain(std::iter::once((
            0,
            Arc::new(OutboxRelay::pipelined(&bench.store, Arc::new(NullSink))),
        )))
        .collect();
    // The bare producer runs with the publisher's librdkafka settings.
    let mut producer_config = ClientConfig::new();
    producer_config
        .set("bootstrap.servers", bootstrap())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set(
            "message.timeout.ms",
            config.message_timeout.as_millis().to_string(),
        );
    for (key, value) in &config.properties {
        producer_config.set(key, value);
    }
    let producer: Arc<FutureProducer> = Arc::new(producer_config.create().unwrap());
    let tenant = TenantId::from_uuid(Uuid::now_v7());

    let mut group = c.benchmark_group("relay_to_kafka_5000");
    group.throughput(Throughput::Elements(RELAYED as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    for (batch_size, relay) in &relays {
        let name = if *batch_size == 0 {
            "outbox_relay_into_null_sink_for_information".to_owned()
        } else {
            format!("outbox_relay_batch_{batch_size}")
        };
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let store = bench.store.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        // Fill the outbox (untimed): 50 streams × 100 events.
                        for _ in 0..RELAYED / BATCH {
                            store
                                .append(AppendRequest {
                                    stream_id: stream(tenant),
                                    expected: ExpectedVersion::NoStream,
                                    events: new_events(BATCH),
                                    idempotency_key: None,
                                })
                                .await
                                .unwrap();
                        }
                        let start = Instant::now();
                        // On a worker of the runtime, where a service runs
                        // its relay (not on the bench's blocking thread).
                        let relay = Arc::clone(relay);
                        let published = tokio::spawn(async move { relay.drain().await })
                            .await
                            .unwrap()
                            .unwrap();
                        total += start.elapsed();
                        assert_eq!(published, RELAYED as u64);
                    }
                    total
                }
            });
        });
    }
    group.bench_function("bare_rdkafka_producer", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let producer = &producer;
            let topic = &topic;
            let store = bench.store.clone();
            async move {
                // The same messages the relay sends: key, JSON body, headers.
                let events = store
                    .read_global(
                        security::core::Scope::All,
                        security::core::GlobalQuery::after(0, RELAYED),
                    )
                    .await
                    .unwrap();
                let messages: Vec<(String, Vec<u8>, [String; 4])> = events
                    .iter()
                    .map(|e| {
                        let p = e.to_published();
                        (
                            p.stream_id.to_string(),
                            serde_json::to_vec(&p).unwrap(),
                            [
                                p.tenant_id().to_string(),
                                p.event_type.to_string(),
                                p.schema_version.to_string(),
                                p.event_id.to_string(),
                            ],
                        )
                    })
                    .collect();
                let messages = Arc::new(messages);
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // On a worker of the runtime, as the relay runs.
                    let producer = Arc::clone(producer);
                    let messages = Arc::clone(&messages);
                    let topic = topic.clone();
                    total += tokio::spawn(async move {
                        let start = Instant::now();
                        send_all(&producer, &topic, &messages).await;
                        start.elapsed()
                    })
                    .await
                    .unwrap();
                }
                total
            }
        });
    });
    group.finish();
    // The broker keeps what it was sent: drop the topic.
    let admin: AdminClient<DefaultClientContext> = producer_config.create().unwrap();
    rt.block_on(admin.delete_topics(&[&topic], &AdminOptions::new()))
        .unwrap();
    rt.block_on(bench.cleanup());
}

/// Sends every message as the relay would, then awaits every delivery.
async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    messages: &[(String, Vec<u8>, [String; 4])],
) {
    let mut deliveries = Vec::with_capacity(messages.len());
    for (key, payload, [tenant, event_type, version, id]) in messages {
        let headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header {
                key: "tenant_id",
                value: Some(tenant.as_bytes()),
            })
            .insert(Header {
                key: "event_type",
                value: Some(event_type.as_bytes()),
            })
            .insert(Header {
                key: "schema_version",
                value: Some(version.as_bytes()),
            })
            .insert(Header {
                key: "event_id",
                value: Some(id.as_bytes()),
            });
        let mut record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((_, back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    for d in deliveries {
        d.await.unwrap().unwrap();
    }
}

criterion_group!(benches, appends, relay);
criterion_main!(benches);
