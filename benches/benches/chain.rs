//! The hash chain's cost, side by side with the reference in one run.
//!
//! - Verifying: `ChainVerifier` over 100 000 records in memory (the offline
//!   verifier's and `verify_chain`'s inner loop), on one core, and
//!   `verify_chain` over a memory store of 100 000 events. Target: ≥ 500 000
//!   events per second per core.
//! - Appending, memory store: the append alone (the chain is computed when
//!   first read, so the append path does no chain work) and the append
//!   followed by a chain read (which hashes the new events): what the chain
//!   costs in all, and when it is paid.
//! - Appending, PostgreSQL (feature `postgres-store`): the store (which chains
//!   every append in its statement) against the same append without the
//!   chain, i.e. the statement and transaction the store ran before the
//!   chain existed, on a schema of the migrations before it, same server,
//!   same role setup. Target: ≤ 1.1× the cost without the chain.
//!
//! Besides criterion's figures, a *paired* ratio is printed for each
//! comparison: both sides run in alternating chunks (order swapped every
//! round) and the median of the per-round ratios is reported, so load from
//! other processes on the shared machine hits both sides alike.
//!
//! `cargo bench -p security-benches --bench chain [--features postgres-store]`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    missing_docs,
    reason = "benchmark code"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use security::core::chain::{ChainHash, ChainRange, ChainRecord, ChainVerifier, verify_chain};
use security::core::{
    AppendRequest, EventId, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId,
    TenantId,
};
use security::eventstore::MemoryEventStore;
use serde_json::json;
use uuid::Uuid;

const VERIFIED: usize = 100_000;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
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

fn request(stream: &StreamId, n: usize) -> AppendRequest {
    AppendRequest {
        stream_id: stream.clone(),
        expected: ExpectedVersion::Any,
        events: new_events(n),
        idempotency_key: None,
    }
}

/// Alternates `a` and `b` in chunks, `rounds` times, and prints the median
/// of the per-round ratios b/a.
fn paired(
    name: &str,
    rounds: usize,
    mut a: impl FnMut() -> Duration,
    mut b: impl FnMut() -> Duration,
) -> f64 {
    a();
    b();
    let mut ratios = Vec::with_capacity(rounds);
    let (mut a_ns, mut b_ns) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (x, y) = if round % 2 == 0 {
            let x = a();
            (x, b())
        } else {
            let y = b();
            (a(), y)
        };
        ratios.push(y.as_secs_f64() / x.as_secs_f64());
        a_ns.push(x.as_nanos() as f64);
        b_ns.push(y.as_nanos() as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = median(&mut ratios);
    println!(
        "paired {name}: {ratio:.3}x ({:+.1} %), chunk medians {:.0} µs vs {:.0} µs, {rounds} rounds",
        (ratio - 1.0) * 100.0,
        median(&mut a_ns) / 1_000.0,
        median(&mut b_ns) / 1_000.0,
    );
    ratio
}

/// A chain of `n` records of one tenant, as a store would return them.
fn records(n: usize) -> Vec<ChainRecord> {
    let tenant = TenantId::from_uuid(Uuid::now_v7());
    let stream = StreamId::new(tenant, "user", Uuid::now_v7());
    let mut prev = ChainHash::GENESIS;
    new_events(n)
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let stored = security::core::StoredEvent::from_new(
                event,
                stream.clone(),
                i as u64 + 1,
                2 * i as u64 + 1,
            );
            let record = ChainRecord::of_event(&stored, prev).unwrap();
            prev = record.hash;
            record
        })
        .collect()
}

fn verify_records(records: &[ChainRecord]) {
    let mut verifier = ChainVerifier::from_genesis();
    for record in records {
        verifier.push(record, record.global_position);
    }
    let report = verifier.finish();
    assert!(report.is_intact());
    black_box(report);
}

fn verification(c: &mut Criterion) {
    let records = records(VERIFIED);
    let rt = current_thread();
    let store = MemoryEventStore::new();
    let tenant = TenantId::from_uuid(Uuid::now_v7());
    let stream = StreamId::new(tenant, "user", Uuid::now_v7());
    rt.block_on(async {
        for _ in 0..VERIFIED / 1_000 {
            store.append(request(&stream, 1_000)).await.unwrap();
        }
        // Computes the chain once, as the first reader would.
        store.chain_head(tenant).await.unwrap();
    });
    let mut group = c.benchmark_group("chain_verify");
    group.throughput(Throughput::Elements(VERIFIED as u64));
    group.sample_size(20);
    group.bench_function("verifier_100k_records", |b| {
        b.iter(|| verify_records(&records));
    });
    group.bench_function("verify_chain_memory_store_100k", |b| {
        b.iter(|| {
            let report = rt
                .block_on(verify_chain(&store, tenant, ChainRange::ALL))
                .unwrap();
            assert!(report.is_intact());
            black_box(report);
        });
    });
    group.finish();
}

/// Appends `iters` requests of `batch` events to a fresh memory store
/// (setup untimed); with `chain`, reads the chain head after each append,
/// which hashes the events just appended.
fn memory_appends(rt: &tokio::runtime::Runtime, iters: u64, batch: usize, chain: bool) -> Duration {
    let store = MemoryEventStore::new();
    let tenant = TenantId::from_uuid(Uuid::now_v7());
    let streams: Vec<StreamId> = (0..16)
        .map(|_| StreamId::new(tenant, "user", Uuid::now_v7()))
        .collect();
    let requests: Vec<AppendRequest> = (0..iters)
        .map(|i| request(&streams[usize::try_from(i).unwrap() % streams.len()], batch))
        .collect();
    let start = Instant::now();
    rt.block_on(async {
        for request in requests {
            black_box(store.append(request).await.unwrap());
            if chain {
                black_box(store.chain_head(tenant).await.unwrap());
            }
        }
    });
    start.elapsed()
}

fn memory(c: &mut Criterion) {
    let rt = current_thread();
    for (name, batch) in [("single_event", 1), ("batch_of_100", 100)] {
        let mut group = c.benchmark_group(format!("memory_append_chain/{name}"));
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function("append", |b| {
            b.iter_custom(|iters| memory_appends(&rt, iters, batch, false));
        });
        group.bench_function("append_then_read_chain", |b| {
            b.iter_custom(|iters| memory_appends(&rt, iters, batch, true));
        });
        group.finish();
        let chunk = if batch == 1 { 2_000 } else { 40 };
        paired(
            &format!("memory {name}: append then chain read / append alone"),
            31,
            || memory_appends(&rt, chunk, batch, false),
            || memory_appends(&rt, chunk, batch, true),
        );
    }
}

#[cfg(feature = "postgres-store")]
mod postgres {
    //! The PostgreSQL store against the append it made before the chain.

    use std::str::FromStr;

    use security::eventstore::PostgresEventStore;
    use security::eventstore::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
    use security::eventstore::sqlx::{self, Row};

    use super::{
        AppendRequest, Duration, EventStore, Instant, StreamId, TenantId, Uuid, black_box, request,
    };

    /// The append statement as the store ran it before the chain (the
    /// reference): numbering under the log head's lock, events, outbox
    /// rows, idempotency record and notification in one statement.
    const UNCHAINED_INSERT: &str = "WITH head AS ( \
           UPDATE security_log_head SET position = position + $4 WHERE id RETURNING position \
         ), inserted AS ( \
           INSERT INTO security_events (global_position, event_id, tenant_id, aggregate_type, \
             aggregate_id, version, event_type, schema_version, occurred_at, payload, metadata) \
           SELECT head.position - $4 + e.ord, e.event_id, $1, $2, $3, $5 - 1 + e.ord, \
             e.event_type, e.schema_version, e.occurred_at, e.payload::json, e.metadata::json \
           FROM head, unnest($6::uuid[], $7::text[], $8::bigint[], $9::timestamptz[], \
             $10::text[], $11::text[]) WITH ORDINALITY \
             AS e(event_id, event_type, schema_version, occurred_at, payload, metadata, ord) \
           RETURNING global_position \
         ), outboxed AS ( \
           INSERT INTO security_outbox (global_position, tenant_id) \
           SELECT global_position, $1 FROM inserted WHERE $12 \
         ), keyed AS ( \
           INSERT INTO security_idempotency_keys (tenant_id, idempotency_key, aggregate_type, \
             aggregate_id, first_version, last_version, first_position, last_position, event_ids) \
           SELECT $1, $13, $2, $3, $5, $5 - 1 + $4, head.position - $4 + 1, head.position, $6 \
           FROM head WHERE $13::text IS NOT NULL \
         ), notified AS ( \
           SELECT pg_notify($14, head.position::text) FROM head \
         ) \
         SELECT head.position FROM head, notified";

    const BUMP_ANY: &str = "INSERT INTO security_streams AS s \
         (tenant_id, aggregate_type, aggregate_id, version) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, aggregate_type, aggregate_id) \
         DO UPDATE SET version = s.version + EXCLUDED.version RETURNING version";

    fn database_url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    }

    /// A role and schema of their own (not a superuser: row-level security
    /// applies), and a pool on them.
    async fn schema(admin: &PgPool, prefix: &str) -> (String, PgPool) {
        let name = format!("{prefix}_{}", &Uuid::now_v7().simple().to_string()[20..]);
        sqlx::raw_sql(&format!(
            "CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
             CREATE SCHEMA \"{name}\" AUTHORIZATION \"{name}\";"
        ))
        .execute(admin)
        .await
        .unwrap();
        let options = PgConnectOptions::from_str(&database_url())
            .unwrap()
            .username(&name)
            .options([("search_path", name.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        (name, pool)
    }

    pub(super) struct Bench {
        admin: PgPool,
        names: Vec<String>,
        pub(super) store: PostgresEventStore,
        reference: PgPool,
    }

    impl Bench {
        pub(super) async fn new() -> Self {
            let admin = PgPoolOptions::new()
                .max_connections(2)
                .connect(&database_url())
                .await
                .expect("PostgreSQL");
            let (chained, pool) = schema(&admin, "sec_chain_bench").await;
            let store = PostgresEventStore::from_pool(pool);
            store.migrate().await.unwrap();
            // The reference schema: the store's migrations before the chain.
            let (unchained, reference) = schema(&admin, "sec_unchained_bench").await;
            for sql in [
                include_str!(
                    "../../security-eventstore/src/postgres/migrations/0001_event_store.sql"
                ),
                include_str!(
                    "../../security-eventstore/src/postgres/migrations/0002_key_records.sql"
                ),
            ] {
                sqlx::raw_sql(sql).execute(&reference).await.unwrap();
            }
            Self {
                admin,
                names: vec![chained, unchained],
                store,
                reference,
            }
        }

        /// One append the way the store made it before the chain.
        pub(super) async fn unchained_append(&self, request: &AppendRequest) {
            let stream = &request.stream_id;
            let n = i64::try_from(request.events.len()).unwrap();
            let mut tx = self.reference.begin().await.unwrap();
            sqlx::query(
                "SELECT set_config('app.current_tenant', $1, true), \
                 set_config('app.all_tenants', $2, true)",
            )
            .bind(stream.tenant_id.to_string())
            .bind("off")
            .execute(&mut *tx)
            .await
            .unwrap();
            let last_version: i64 = sqlx::query(BUMP_ANY)
                .bind(stream.tenant_id.as_uuid())
                .bind(&*stream.aggregate_type)
                .bind(stream.aggregate_id)
                .bind(n)
                .fetch_one(&mut *tx)
                .await
                .unwrap()
                .get(0);
            let events = &request.events;
            let ids: Vec<Uuid> = events.iter().map(|e| e.event_id.as_uuid()).collect();
            let types: Vec<&str> = events.iter().map(|e| &*e.event_type).collect();
            let versions: Vec<i64> = events.iter().map(|e| i64::from(e.schema_version)).collect();
            let times: Vec<_> = events.iter().map(|e| e.occurred_at).collect();
            let payloads: Vec<String> = events
                .iter()
                .map(|e| serde_json::to_string(&*e.payload).unwrap())
                .collect();
            let metadata: Vec<String> = events
                .iter()
                .map(|e| serde_json::to_string(&*e.metadata).unwrap())
                .collect();
            sqlx::query(UNCHAINED_INSERT)
                .bind(stream.tenant_id.as_uuid())
                .bind(&*stream.aggregate_type)
                .bind(stream.aggregate_id)
                .bind(n)
                .bind(last_version - n + 1)
                .bind(&ids)
                .bind(&types)
                .bind(&versions)
                .bind(&times)
                .bind(&payloads)
                .bind(&metadata)
                .bind(true)
                .bind(None::<&str>)
                .bind("security_events")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }

        pub(super) async fn cleanup(self) {
            self.store.close().await;
            self.reference.close().await;
            for name in &self.names {
                sqlx::raw_sql(&format!(
                    "DROP SCHEMA \"{name}\" CASCADE; DROP ROLE \"{name}\";"
                ))
                .execute(&self.admin)
                .await
                .unwrap();
            }
        }
    }

    /// `iters` appends of `batch` events by one writer: through the store,
    /// or the way it appended before the chain.
    pub(super) async fn appends(
        bench: &Bench,
        iters: u64,
        batch: usize,
        chained: bool,
    ) -> Duration {
        let tenant = TenantId::from_uuid(Uuid::now_v7());
        let streams: Vec<StreamId> = (0..4)
            .map(|_| StreamId::new(tenant, "bench", Uuid::now_v7()))
            .collect();
        let requests: Vec<AppendRequest> = (0..iters)
            .map(|i| request(&streams[usize::try_from(i).unwrap() % streams.len()], batch))
            .collect();
        let start = Instant::now();
        for request in requests {
            if chained {
                black_box(bench.store.append(request).await.unwrap());
            } else {
                bench.unchained_append(&request).await;
            }
        }
        start.elapsed()
    }
}

#[cfg(feature = "postgres-store")]
fn postgres_appends(c: &mut Criterion) {
    let rt = current_thread();
    let bench = rt.block_on(postgres::Bench::new());
    for (name, batch, chunk) in [("single_event", 1, 60), ("batch_of_100", 100, 12)] {
        let mut group = c.benchmark_group(format!("postgres_append_chain/{name}"));
        group.throughput(Throughput::Elements(batch as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(6));
        group.bench_function("chained_store", |b| {
            b.iter_custom(|iters| rt.block_on(postgres::appends(&bench, iters, batch, true)));
        });
        group.bench_function("unchained_reference", |b| {
            b.iter_custom(|iters| rt.block_on(postgres::appends(&bench, iters, batch, false)));
        });
        group.finish();
        paired(
            &format!("postgres {name}: chained store / append without the chain"),
            31,
            || rt.block_on(postgres::appends(&bench, chunk, batch, false)),
            || rt.block_on(postgres::appends(&bench, chunk, batch, true)),
        );
    }
    rt.block_on(bench.cleanup());
}

#[cfg(feature = "postgres-store")]
criterion_group!(benches, verification, memory, postgres_appends);
#[cfg(not(feature = "postgres-store"))]
criterion_group!(benches, verification, memory);
criterion_main!(benches);
