//! Memory event store throughput: appends of single events and of
//! 100-event batches, and replay of a 10 000-event stream, on one core.
//! Targets: ≥ 1 000 000 events/s appended in batches, ≥ 2 000 000 events/s
//! replayed. Also the full command path (load, handle, append) for scale.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark code"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use security::core::{
    AppendRequest, CommandContext, EventId, EventMetadata, EventStore, ExpectedVersion, NewEvent,
    Permissions, Policy, PolicyCommand, PolicyId, Repository, ResourceLimits, SequentialIds,
    StreamId, StreamQuery, TenantId, User, replay,
};
use security::eventstore::MemoryEventStore;
use serde_json::json;
use uuid::Uuid;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn new_events(n: usize) -> Vec<NewEvent> {
    let payload = Arc::new(
        json!({"user_id": "0190c7a4-6f7e-7d55-a000-000000000001", "policy_id": "p", "assigned_at": "2026-01-01T00:00:00Z"}),
    );
    let metadata = Arc::new(EventMetadata::default());
    let event_type: Arc<str> = Arc::from("PolicyAssigned");
    (0..n)
        .map(|_| NewEvent {
            event_id: EventId::from_uuid(Uuid::now_v7()),
            event_type: Arc::clone(&event_type),
            schema_version: 1,
            occurred_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            payload: Arc::clone(&payload),
            metadata: Arc::clone(&metadata),
        })
        .collect()
}

/// Times `iters` appends of `batch` events each, on fresh stores of at
/// most 200 000 events (setup untimed).
fn append_timed(rt: &tokio::runtime::Runtime, iters: u64, batch: usize) -> Duration {
    let per_store = (200_000 / batch).max(1) as u64;
    let tenant = TenantId::from_uuid(Uuid::now_v7());
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(per_store);
        left -= n;
        let store = MemoryEventStore::new();
        let streams: Vec<StreamId> = (0..16)
            .map(|_| StreamId::new(tenant, "user", Uuid::now_v7()))
            .collect();
        let requests: Vec<AppendRequest> = (0..n)
            .map(|i| AppendRequest {
                stream_id: streams[usize::try_from(i).unwrap() % streams.len()].clone(),
                expected: ExpectedVersion::Any,
                events: new_events(batch),
                idempotency_key: None,
            })
            .collect();
        let start = Instant::now();
        rt.block_on(async {
            for request in requests {
                black_box(store.append(request).await.unwrap());
            }
        });
        total += start.elapsed();
    }
    total
}

fn appends(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("memory_append");
    group.throughput(Throughput::Elements(1));
    group.bench_function("single_event", |b| {
        b.iter_custom(|iters| append_timed(&rt, iters, 1));
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("batch_of_100", |b| {
        b.iter_custom(|iters| append_timed(&rt, iters, 100));
    });
    group.finish();
}

fn replays(c: &mut Criterion) {
    let rt = runtime();
    let store = MemoryEventStore::new();
    let tenant = TenantId::from_uuid(Uuid::now_v7());
    let stream = StreamId::new(tenant, "user", Uuid::now_v7());
    rt.block_on(async {
        for _ in 0..100 {
            let request = AppendRequest {
                stream_id: stream.clone(),
                expected: ExpectedVersion::Any,
                events: new_events(100),
                idempotency_key: None,
            };
            store.append(request).await.unwrap();
        }
    });
    let mut group = c.benchmark_group("memory_replay");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("read_stream_10k", |b| {
        b.iter(|| {
            rt.block_on(async {
                black_box(
                    store
                        .read_stream(&stream, StreamQuery::all())
                        .await
                        .unwrap(),
                )
            })
        });
    });
    // Decoding and folding a user's login history (10 000 `UserAuthenticated`
    // events) into the aggregate: what rebuilding a busy user costs.
    let events = rt
        .block_on(store.read_stream(&stream, StreamQuery::all()))
        .unwrap();
    let user_id = Uuid::from_u128(1);
    let logins: Vec<_> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.event_type = Arc::from("UserAuthenticated");
            e.payload = Arc::new(json!({
                "user_id": user_id,
                "method": "password_totp",
                "client": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
                "authenticated_at": "2026-01-01T00:00:00Z"
            }));
            e
        })
        .collect();
    group.bench_function("decode_and_fold_10k_into_user", |b| {
        b.iter(|| black_box(replay::<User>(&stream, &logins).unwrap()));
    });
    group.finish();
}

fn commands(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("command_path");
    group.throughput(Throughput::Elements(1));
    group.bench_function("create_policy", |b| {
        b.iter_batched(
            || {
                let store = Arc::new(MemoryEventStore::new());
                let repo = Repository::new(store, Arc::new(SequentialIds::new()));
                let id = PolicyId::from_uuid(Uuid::now_v7());
                (repo, id)
            },
            |(repo, id)| {
                let ctx = CommandContext::new(
                    TenantId::from_uuid(Uuid::from_u128(9)),
                    Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
                );
                let cmd = PolicyCommand::CreatePolicy {
                    policy_id: id,
                    name: "p".into(),
                    description: String::new(),
                    permissions: Permissions::default(),
                    limits: ResourceLimits::default(),
                };
                rt.block_on(async {
                    black_box(repo.execute::<Policy>(id, &cmd, &ctx).await.unwrap())
                })
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = appends, replays, commands
}
criterion_main!(benches);
