//! The conformance test kit: proves that an [`EventStore`] meets the store
//! contract (feature `testkit`).
//!
//! One public async function per clause of the contract, and [`run_all`]
//! to run them all, each on a fresh store from your factory. They panic
//! with a message naming the clause and what broke, like any test. They
//! need a multi-threaded Tokio runtime (they spawn concurrent writers):
//!
//! ```no_run
//! use std::sync::Arc;
//! use security_eventstore::{MemoryEventStore, testkit};
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn my_store_meets_the_contract() {
//!     testkit::run_all(|| async { Arc::new(MemoryEventStore::new()) as Arc<dyn security_core::EventStore> }).await;
//! }
//! ```
//!
//! Timestamps used by the kit have whole microseconds, the precision of
//! PostgreSQL's `timestamptz`; a store must give back exactly what it got.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::many_single_char_names,
    clippy::items_after_statements,
    reason = "a test kit reports a broken contract by panicking, like any test"
)]

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use security_core::limits;
use security_core::{
    Actor, AppendRequest, AppendResult, CommandContext, EventId, EventMetadata, EventStore,
    ExpectedVersion, GlobalQuery, IdGenerator, IdempotencyKey, NewEvent, Permissions, Policy,
    PolicyCommand, PolicyId, Repository, ResourceLimits, Scope, Snapshot, StoreError, StoredEvent,
    StreamId, StreamQuery, TenantId, Until,
};
use serde_json::json;
use uuid::Uuid;

mod audit_index;
mod chain;
mod personal;

pub use audit_index::audit_index;
pub use chain::hash_chain;
pub use personal::personal_data_export;

/// How long the kit waits for a subscription to deliver before it fails.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// UUID v7 event ids, distinct across the kit's repositories.
#[derive(Debug)]
struct FreshIds;

impl IdGenerator for FreshIds {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// A fresh tenant id.
pub fn tenant() -> TenantId {
    TenantId::from_uuid(Uuid::now_v7())
}

/// A fresh stream of `aggregate_type` in `tenant`.
pub fn stream(tenant: TenantId, aggregate_type: &str) -> StreamId {
    StreamId::new(tenant, aggregate_type, Uuid::now_v7())
}

/// A fixed instant plus `seconds` (whole microseconds).
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 123_456_000)
        .single()
        .expect("valid instant")
}

/// A new event with a fresh id, occurring at `at(0)`.
pub fn event(event_type: &str, payload: serde_json::Value) -> NewEvent {
    event_at(event_type, payload, at(0))
}

/// A new event with a fresh id, occurring at `occurred_at`.
pub fn event_at(
    event_type: &str,
    payload: serde_json::Value,
    occurred_at: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        event_id: EventId::from_uuid(Uuid::now_v7()),
        event_type: Arc::from(event_type),
        schema_version: 1,
        occurred_at,
        payload: Arc::new(payload),
        metadata: Arc::new(EventMetadata::default()),
    }
}

/// `n` numbered events (`{"n": i}`).
pub fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| event("Numbered", json!({ "n": i })))
        .collect()
}

/// An append request without an idempotency key.
pub fn append(
    stream_id: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> AppendRequest {
    AppendRequest {
        stream_id: stream_id.clone(),
        expected,
        events,
        idempotency_key: None,
    }
}

async fn all(store: &dyn EventStore, stream_id: &StreamId) -> Vec<StoredEvent> {
    store
        .read_stream(stream_id, StreamQuery::all())
        .await
        .expect("read_stream")
}

async fn global(store: &dyn EventStore, scope: Scope) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .read_global(scope, GlobalQuery::after(after, 1000))
            .await
            .expect("read_global");
        let Some(last) = page.last() else { return out };
        after = last.global_position;
        out.extend(page);
    }
}

fn assert_conflict(
    result: Result<security_core::AppendResult, StoreError>,
    clause: &str,
    actual_version: u64,
) {
    match result {
        Err(StoreError::Conflict { actual, .. }) => {
            assert_eq!(
                actual, actual_version,
                "{clause}: conflict reports the stream's version"
            );
        }
        other => panic!("{clause}: expected a concurrency conflict, got {other:?}"),
    }
}

/// Clause 1, optimistic concurrency: `NoStream`, `Exact(n)` and `Any` are
/// checked; a mismatch is a typed conflict and writes nothing.
pub async fn optimistic_concurrency(store: Arc<dyn EventStore>) {
    let clause = "optimistic concurrency";
    let s = stream(tenant(), "conformance");
    assert_eq!(
        store.stream_version(&s).await.unwrap(),
        0,
        "{clause}: a new stream is at version 0"
    );
    assert_conflict(
        store
            .append(append(&s, ExpectedVersion::Exact(3), events(1)))
            .await,
        clause,
        0,
    );
    let r = store
        .append(append(&s, ExpectedVersion::NoStream, events(2)))
        .await
        .expect("first append");
    assert_eq!(
        (r.first_version, r.last_version),
        (1, 2),
        "{clause}: versions start at 1"
    );
    assert!(!r.deduplicated);
    assert_conflict(
        store
            .append(append(&s, ExpectedVersion::NoStream, events(1)))
            .await,
        clause,
        2,
    );
    assert_conflict(
        store
            .append(append(&s, ExpectedVersion::Exact(1), events(1)))
            .await,
        clause,
        2,
    );
    assert_conflict(
        store
            .append(append(&s, ExpectedVersion::Exact(0), events(1)))
            .await,
        clause,
        2,
    );
    assert_eq!(
        all(&*store, &s).await.len(),
        2,
        "{clause}: a conflicting append wrote nothing"
    );
    let r = store
        .append(append(&s, ExpectedVersion::Exact(2), events(1)))
        .await
        .expect("exact append");
    assert_eq!(r.last_version, 3);
    let r = store
        .append(append(&s, ExpectedVersion::Any, events(1)))
        .await
        .expect("any append");
    assert_eq!(r.last_version, 4);
    let other = stream(tenant(), "conformance");
    store
        .append(append(&other, ExpectedVersion::Exact(0), events(1)))
        .await
        .expect("Exact(0) on a new stream");
    assert_eq!(store.stream_version(&s).await.unwrap(), 4);
    let versions: Vec<u64> = all(&*store, &s).await.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![1, 2, 3, 4], "{clause}: versions are dense");
}

/// Clause 1 under load: 8 tasks append to one stream at the same version,
/// round after round; exactly one wins each round, nothing is lost or
/// duplicated.
pub async fn concurrent_appenders(store: Arc<dyn EventStore>) {
    let clause = "concurrent appenders";
    const TASKS: usize = 8;
    const ROUNDS: u64 = 25;
    let s = stream(tenant(), "conformance");
    for round in 0..ROUNDS {
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let store = Arc::clone(&store);
                let s = s.clone();
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    let expected = if round == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(round)
                    };
                    let batch = vec![event("Raced", json!({"round": round, "task": task}))];
                    barrier.wait().await;
                    store.append(append(&s, expected, batch)).await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(r) => {
                    winners += 1;
                    assert_eq!(
                        r.last_version,
                        round + 1,
                        "{clause}: the winner wrote the next version"
                    );
                }
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => panic!("{clause}: unexpected error {e:?}"),
            }
        }
        assert_eq!(
            winners, 1,
            "{clause}: exactly one appender wins round {round}"
        );
    }
    let stored = all(&*store, &s).await;
    assert_eq!(
        stored.len() as u64,
        ROUNDS,
        "{clause}: one event per round, none lost or duplicated"
    );
    let rounds: Vec<u64> = stored
        .iter()
        .map(|e| e.payload["round"].as_u64().unwrap())
        .collect();
    assert_eq!(
        rounds,
        (0..ROUNDS).collect::<Vec<_>>(),
        "{clause}: the events are the rounds' winners, in order"
    );
    let ids: HashSet<EventId> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len() as u64, ROUNDS, "{clause}: event ids are unique");
}

/// Clause 2, atomic batches: a batch is written whole or not at all, and a
/// reader never sees part of one.
pub async fn atomic_batches(store: Arc<dyn EventStore>) {
    let clause = "atomic batches";
    let s = stream(tenant(), "conformance");
    let r = store
        .append(append(&s, ExpectedVersion::NoStream, events(100)))
        .await
        .expect("batch");
    assert_eq!(
        (r.first_version, r.last_version, r.event_ids.len()),
        (1, 100, 100)
    );
    assert!(
        r.last_position - r.first_position + 1 >= 100,
        "{clause}: a position per event"
    );
    // A batch that fails its check writes none of its events.
    assert_conflict(
        store
            .append(append(&s, ExpectedVersion::Exact(7), events(10)))
            .await,
        clause,
        100,
    );
    // A batch with an invalid event (an id used twice) writes none either.
    let mut bad = events(5);
    bad[4].event_id = bad[0].event_id;
    assert!(
        matches!(
            store
                .append(append(&s, ExpectedVersion::Exact(100), bad))
                .await,
            Err(StoreError::InvalidRequest(_))
        ),
        "{clause}: a batch reusing an event id is refused"
    );
    let reused = vec![event("Numbered", json!({})), {
        let mut e = event("Numbered", json!({}));
        e.event_id = r.event_ids[0];
        e
    }];
    assert!(
        store
            .append(append(&s, ExpectedVersion::Exact(100), reused))
            .await
            .is_err(),
        "{clause}: a stored event id cannot be reused"
    );
    assert!(
        matches!(
            store
                .append(append(&s, ExpectedVersion::Any, Vec::new()))
                .await,
            Err(StoreError::InvalidRequest(_))
        ),
        "{clause}: an empty append is refused"
    );
    assert_eq!(
        all(&*store, &s).await.len(),
        100,
        "{clause}: refused batches wrote nothing"
    );

    // A reader racing a writer of 50-event batches only ever sees whole batches.
    let s2 = stream(tenant(), "conformance");
    let writer = {
        let store = Arc::clone(&store);
        let s2 = s2.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                store
                    .append(append(&s2, ExpectedVersion::Any, events(50)))
                    .await
                    .expect("batch");
            }
        })
    };
    let reader = {
        let store = Arc::clone(&store);
        let s2 = s2.clone();
        tokio::spawn(async move {
            loop {
                let n = store
                    .read_stream(&s2, StreamQuery::all())
                    .await
                    .expect("read")
                    .len();
                assert_eq!(
                    n % 50,
                    0,
                    "atomic batches: a reader saw {n} events, part of a batch"
                );
                let scope = Scope::Tenant(s2.tenant_id);
                let g = store
                    .read_global(scope, GlobalQuery::after(0, usize::MAX))
                    .await
                    .expect("read")
                    .len();
                assert_eq!(
                    g % 50,
                    0,
                    "atomic batches: a global reader saw {g} events, part of a batch"
                );
                if n == 1000 {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    writer.await.expect("writer");
    tokio::time::timeout(DELIVERY_TIMEOUT, reader)
        .await
        .expect("reader finished")
        .expect("reader");
}

/// Clause 3, idempotency: a key used again in the tenant writes nothing
/// and returns the original result; keys are per tenant.
pub async fn idempotency(store: Arc<dyn EventStore>) {
    let clause = "idempotency";
    let t = tenant();
    let s = stream(t, "conformance");
    let key = IdempotencyKey::new(format!("key-{}", Uuid::now_v7())).unwrap();
    let with_key = |stream_id: &StreamId, expected, events| AppendRequest {
        stream_id: stream_id.clone(),
        expected,
        events,
        idempotency_key: Some(key.clone()),
    };
    assert!(store.idempotent_result(t, &key).await.unwrap().is_none());
    let first = store
        .append(with_key(&s, ExpectedVersion::NoStream, events(3)))
        .await
        .expect("first");
    assert!(!first.deduplicated);
    // Same key, same stream, stale expectation: the original result, nothing written.
    let again = store
        .append(with_key(&s, ExpectedVersion::NoStream, events(3)))
        .await
        .expect("repeat");
    assert!(
        again.deduplicated,
        "{clause}: a repeat is flagged deduplicated"
    );
    assert_eq!(
        AppendResult {
            deduplicated: false,
            ..again
        },
        first,
        "{clause}: a repeat returns the original result"
    );
    assert_eq!(
        all(&*store, &s).await.len(),
        3,
        "{clause}: a repeat writes nothing"
    );
    assert_eq!(
        store.idempotent_result(t, &key).await.unwrap(),
        Some(first.clone())
    );
    // Same key, another stream of the tenant: refused, nothing written.
    let other = stream(t, "conformance");
    match store
        .append(with_key(&other, ExpectedVersion::Any, events(1)))
        .await
    {
        Err(StoreError::DuplicateIdempotencyKey { original }) => assert_eq!(*original, first),
        r => panic!("{clause}: a key reused on another stream must be refused, got {r:?}"),
    }
    assert_eq!(
        all(&*store, &other).await.len(),
        0,
        "{clause}: the refused append wrote nothing"
    );
    // Same key in another tenant: independent.
    let elsewhere = stream(tenant(), "conformance");
    let r = store
        .append(with_key(&elsewhere, ExpectedVersion::NoStream, events(1)))
        .await
        .expect("other tenant");
    assert!(!r.deduplicated, "{clause}: keys are scoped to a tenant");
    // Stored events carry the key in their metadata only if the writer put it there:
    // the store keeps metadata as given.
    assert_eq!(all(&*store, &elsewhere).await.len(), 1);
}

/// Clause 3 under load: appenders racing with one idempotency key. Each
/// round, 8 tasks append to one stream with the same key and the same
/// expectation; exactly one writes. Every other one gets the winner's
/// result flagged `deduplicated`, or a version conflict after which the
/// key is already visible: the key is recorded atomically with the events
/// it names, so whoever sees the write also sees the key. The command bus
/// relies on this to answer the second caller with the first result.
pub async fn idempotency_under_concurrency(store: Arc<dyn EventStore>) {
    let clause = "idempotency under concurrency";
    const TASKS: usize = 8;
    const ROUNDS: usize = 25;
    let t = tenant();
    for round in 0..ROUNDS {
        let s = stream(t, "conformance");
        // Odd rounds race on a stream that already exists.
        let expected = if round % 2 == 0 {
            ExpectedVersion::NoStream
        } else {
            store
                .append(append(&s, ExpectedVersion::NoStream, events(1)))
                .await
                .expect("first event");
            ExpectedVersion::Exact(1)
        };
        let key = IdempotencyKey::new(format!("race-{round}-{}", Uuid::now_v7())).unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let store = Arc::clone(&store);
                let request = AppendRequest {
                    stream_id: s.clone(),
                    expected,
                    events: vec![event("Raced", json!({"task": task}))],
                    idempotency_key: Some(key.clone()),
                };
                let barrier = Arc::clone(&barrier);
                let key = key.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let outcome = store.append(request).await;
                    // Looked up at once: a conflict must not hide the key.
                    let seen = match &outcome {
                        Err(StoreError::Conflict { .. }) => {
                            Some(store.idempotent_result(t, &key).await.expect("lookup"))
                        }
                        _ => None,
                    };
                    (outcome, seen)
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        let winners: Vec<AppendResult> = results
            .iter()
            .filter_map(|(r, _)| r.as_ref().ok().filter(|r| !r.deduplicated).cloned())
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "{clause}: exactly one appender with the key writes (round {round})"
        );
        let winner = &winners[0];
        for (outcome, seen) in results {
            match outcome {
                Ok(r) if r.deduplicated => assert_eq!(
                    AppendResult {
                        deduplicated: false,
                        ..r
                    },
                    *winner,
                    "{clause}: a deduplicated append returns the winner's result"
                ),
                Ok(_) => {}
                Err(StoreError::Conflict { .. }) => assert_eq!(
                    seen.expect("looked up"),
                    Some(winner.clone()),
                    "{clause}: after a conflict the key must already name the winner's append"
                ),
                Err(e) => panic!("{clause}: unexpected error {e:?}"),
            }
        }
        let stored = all(&*store, &s).await;
        let raced = stored.iter().filter(|e| &*e.event_type == "Raced").count();
        assert_eq!(raced, 1, "{clause}: one write per key (round {round})");
    }
}

/// Clause 3 as the command bus sees it: [`Repository::execute`] with one
/// idempotency key from several repositories at once (replicas) creates a
/// policy, then changes it. Every caller gets the first run's result;
/// none sees a rejection caused by the first run ("already exists") or a
/// conflict, and each command is stored once.
pub async fn idempotent_commands(store: Arc<dyn EventStore>) {
    let clause = "idempotent commands";
    const CALLERS: usize = 4;
    const ROUNDS: usize = 10;
    let t = tenant();
    let replicas: Vec<Repository> = (0..CALLERS)
        .map(|_| Repository::new(Arc::clone(&store), Arc::new(FreshIds)))
        .collect();
    for round in 0..ROUNDS {
        let id = PolicyId::from_uuid(Uuid::now_v7());
        let create = PolicyCommand::CreatePolicy {
            policy_id: id,
            name: format!("race {round}"),
            description: String::new(),
            permissions: Permissions::default(),
            limits: ResourceLimits::default(),
        };
        let update = PolicyCommand::UpdateLimits {
            new_limits: ResourceLimits {
                max_subscriptions: Some(7),
                ..ResourceLimits::default()
            },
        };
        for (step, command) in [("create", create), ("update", update)] {
            let key = IdempotencyKey::new(format!("{step}-{round}-{}", Uuid::now_v7())).unwrap();
            let ctx = CommandContext::new(t, at(0)).with_idempotency_key(key);
            let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
            let tasks: Vec<_> = replicas
                .iter()
                .map(|repo| {
                    let repo = repo.clone();
                    let (ctx, command, barrier) =
                        (ctx.clone(), command.clone(), Arc::clone(&barrier));
                    tokio::spawn(async move {
                        barrier.wait().await;
                        repo.execute::<Policy>(id, &command, &ctx).await
                    })
                })
                .collect();
            let mut firsts = 0;
            let mut versions = BTreeSet::new();
            for task in tasks {
                match task.await.expect("task") {
                    Ok(outcome) => {
                        firsts += usize::from(!outcome.deduplicated);
                        versions.insert(outcome.version);
                        assert_eq!(
                            outcome.events.len(),
                            1,
                            "{clause}: every caller gets the first run's events ({step})"
                        );
                    }
                    Err(e) => panic!(
                        "{clause}: a caller repeating a {step} with its key must get the first result, got {e:?}"
                    ),
                }
            }
            assert_eq!(firsts, 1, "{clause}: exactly one caller runs the {step}");
            assert_eq!(
                versions.len(),
                1,
                "{clause}: every caller sees the same version after the {step}"
            );
        }
        let s = Repository::stream_id::<Policy>(t, id);
        assert_eq!(
            all(&*store, &s).await.len(),
            2,
            "{clause}: each command stored once (round {round})"
        );
    }
}

/// Clause 4, ordered global stream: positions strictly increase, and a
/// reader following positions from a checkpoint while writers commit never
/// skips an event.
pub async fn ordered_global_stream(store: Arc<dyn EventStore>) {
    let clause = "ordered global stream";
    const WRITERS: usize = 8;
    const APPENDS: usize = 40;
    let t = tenant();
    let start = store.head_position().await.unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let s = stream(t, "conformance");
                for i in 0..APPENDS {
                    let batch = vec![
                        event("Ordered", json!({"w": w, "i": i})),
                        event("Ordered", json!({"w": w, "i": i})),
                    ];
                    store
                        .append(append(&s, ExpectedVersion::Any, batch))
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    let expected_total = WRITERS * APPENDS * 2;
    let writers_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = {
        let store = Arc::clone(&store);
        let writers_done = Arc::clone(&writers_done);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut checkpoint = start;
            loop {
                // Read the flag before the page: an empty page after the
                // writers finished means the follower has seen everything.
                let done = writers_done.load(std::sync::atomic::Ordering::SeqCst);
                let page = store
                    .read_global(Scope::Tenant(t), GlobalQuery::after(checkpoint, 64))
                    .await
                    .expect("read");
                if page.is_empty() && done {
                    return seen;
                }
                for e in &page {
                    assert!(
                        e.global_position > checkpoint,
                        "{clause}: positions strictly increase"
                    );
                    checkpoint = e.global_position;
                }
                seen.extend(page);
                tokio::task::yield_now().await;
            }
        })
    };
    for w in writers {
        w.await.expect("writer");
    }
    writers_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = tokio::time::timeout(DELIVERY_TIMEOUT * 3, follower)
        .await
        .expect("follower finished")
        .expect("follower");
    let final_read = global(&*store, Scope::Tenant(t)).await;
    assert_eq!(final_read.len(), expected_total);
    let seen_ids: Vec<EventId> = seen.iter().map(|e| e.event_id).collect();
    let final_ids: Vec<EventId> = final_read.iter().map(|e| e.event_id).collect();
    assert_eq!(
        seen_ids, final_ids,
        "{clause}: the follower saw every event, in the final order, none skipped"
    );
    assert!(store.head_position().await.unwrap() >= final_read.last().unwrap().global_position);
    // Within each stream, global order agrees with version order.
    let mut last: std::collections::HashMap<StreamId, u64> = std::collections::HashMap::new();
    for e in &final_read {
        let prev = last.insert(e.stream_id.clone(), e.version).unwrap_or(0);
        assert_eq!(
            e.version,
            prev + 1,
            "{clause}: a stream's events appear in version order"
        );
    }
}

/// Clause 5, tenant isolation: tenant-scoped reads see only their tenant,
/// even for streams with the same aggregate type and id.
pub async fn tenant_isolation(store: Arc<dyn EventStore>) {
    let clause = "tenant isolation";
    let (a, b) = (tenant(), tenant());
    let id = Uuid::now_v7();
    let sa = StreamId::new(a, "conformance", id);
    let sb = StreamId::new(b, "conformance", id);
    store
        .append(append(
            &sa,
            ExpectedVersion::NoStream,
            vec![event("Secret", json!({"tenant": "a"}))],
        ))
        .await
        .unwrap();
    store
        .append(append(
            &sb,
            ExpectedVersion::NoStream,
            vec![event("Secret", json!({"tenant": "b"})); 1],
        ))
        .await
        .unwrap();
    store
        .append(append(&sb, ExpectedVersion::Exact(1), events(2)))
        .await
        .unwrap();
    let read_a = all(&*store, &sa).await;
    assert_eq!(
        read_a.len(),
        1,
        "{clause}: a stream id with the same aggregate id in another tenant is another stream"
    );
    assert!(read_a.iter().all(|e| e.tenant_id() == a));
    let ga = global(&*store, Scope::Tenant(a)).await;
    let gb = global(&*store, Scope::Tenant(b)).await;
    assert!(
        ga.iter().all(|e| e.tenant_id() == a),
        "{clause}: a tenant read returned another tenant's event"
    );
    assert!(
        gb.iter().all(|e| e.tenant_id() == b),
        "{clause}: a tenant read returned another tenant's event"
    );
    assert_eq!((ga.len(), gb.len()), (1, 3));
    let everything = global(&*store, Scope::All).await;
    let tenants: BTreeSet<TenantId> = everything.iter().map(StoredEvent::tenant_id).collect();
    assert!(
        tenants.contains(&a) && tenants.contains(&b),
        "{clause}: Scope::All sees every tenant"
    );
    let mut sub = store.subscribe(Scope::Tenant(a), 0);
    let first = tokio::time::timeout(DELIVERY_TIMEOUT, sub.next())
        .await
        .expect("delivery")
        .unwrap()
        .unwrap();
    assert_eq!(first.tenant_id(), a);
    store
        .append(append(&sb, ExpectedVersion::Any, events(1)))
        .await
        .unwrap();
    store
        .append(append(&sa, ExpectedVersion::Any, events(1)))
        .await
        .unwrap();
    let next = tokio::time::timeout(DELIVERY_TIMEOUT, sub.next())
        .await
        .expect("delivery")
        .unwrap()
        .unwrap();
    assert_eq!(
        next.tenant_id(),
        a,
        "{clause}: a tenant subscription delivered another tenant's event"
    );
}

/// Clause 6, temporal reads: a stream and a tenant can be read up to a
/// version, a position or a time.
pub async fn temporal_reads(store: Arc<dyn EventStore>) {
    let clause = "temporal reads";
    let t = tenant();
    let s = stream(t, "conformance");
    for i in 0..5 {
        let e = event_at("Timed", json!({"i": i}), at(i * 60));
        store
            .append(append(&s, ExpectedVersion::Any, vec![e]))
            .await
            .unwrap();
    }
    let stored = all(&*store, &s).await;
    let is = |events: &[StoredEvent]| {
        events
            .iter()
            .map(|e| e.payload["i"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let q = |until| StreamQuery::until(until);
    assert_eq!(
        is(&store.read_stream(&s, q(Until::Version(3))).await.unwrap()),
        vec![0, 1, 2],
        "{clause}: until a version"
    );
    let p = stored[1].global_position;
    assert_eq!(
        is(&store.read_stream(&s, q(Until::Position(p))).await.unwrap()),
        vec![0, 1],
        "{clause}: until a position"
    );
    assert_eq!(
        is(&store
            .read_stream(&s, q(Until::Time(at(150))))
            .await
            .unwrap()),
        vec![0, 1, 2],
        "{clause}: until a time"
    );
    assert_eq!(
        is(&store
            .read_stream(&s, q(Until::Time(at(120))))
            .await
            .unwrap()),
        vec![0, 1, 2],
        "{clause}: a time bound is inclusive"
    );
    assert!(
        store
            .read_stream(&s, q(Until::Time(at(-1))))
            .await
            .unwrap()
            .is_empty()
    );
    let from3 = StreamQuery {
        from_version: 3,
        until: Until::End,
        limit: 2,
    };
    assert_eq!(
        is(&store.read_stream(&s, from3).await.unwrap()),
        vec![2, 3],
        "{clause}: from a version, with a limit"
    );
    let g = |until| GlobalQuery {
        after: 0,
        until,
        limit: usize::MAX,
    };
    assert_eq!(
        is(&store
            .read_global(Scope::Tenant(t), g(Until::Time(at(60))))
            .await
            .unwrap()),
        vec![0, 1]
    );
    assert_eq!(
        is(&store
            .read_global(
                Scope::Tenant(t),
                g(Until::Position(stored[2].global_position))
            )
            .await
            .unwrap()),
        vec![0, 1, 2]
    );
    assert!(
        matches!(
            store
                .read_global(Scope::Tenant(t), g(Until::Version(1)))
                .await,
            Err(StoreError::InvalidRequest(_))
        ),
        "{clause}: a version bound on a global read is refused"
    );
}

/// Clause 7, subscriptions: everything after a checkpoint, then new events
/// as they commit, in order, without gaps.
pub async fn subscriptions(store: Arc<dyn EventStore>) {
    let clause = "subscriptions";
    let t = tenant();
    let s = stream(t, "conformance");
    store
        .append(append(&s, ExpectedVersion::NoStream, events(3)))
        .await
        .unwrap();
    let existing = all(&*store, &s).await;
    let mut from_start = store.subscribe(Scope::Tenant(t), 0);
    let mut from_checkpoint = store.subscribe(Scope::Tenant(t), existing[1].global_position);
    let writer = {
        let store = Arc::clone(&store);
        let s = s.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                store
                    .append(append(&s, ExpectedVersion::Any, events(5)))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < 53 {
        let e = tokio::time::timeout(DELIVERY_TIMEOUT, from_start.next())
            .await
            .unwrap_or_else(|_| panic!("{clause}: no delivery after {} events", got.len()))
            .expect("subscription ended")
            .expect("subscription error");
        got.push(e);
    }
    writer.await.unwrap();
    let versions: Vec<u64> = got.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (1..=53).collect::<Vec<_>>(),
        "{clause}: every event once, in order"
    );
    let first = tokio::time::timeout(DELIVERY_TIMEOUT, from_checkpoint.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        first.version, 3,
        "{clause}: a subscription starts after its checkpoint"
    );
}

/// Clause 8, snapshots: per stream and state schema version the store
/// keeps the newest snapshot saved, never lets an older one replace it,
/// refuses one that names no event of its stream, returns one only inside
/// a read's bound, and answers a load (snapshot and the events after it)
/// consistently.
pub async fn snapshots(store: Arc<dyn EventStore>) {
    let clause = "snapshots";
    let t = tenant();
    let s = stream(t, "conformance");
    for i in 0..5 {
        let e = event_at("Timed", json!({"i": i}), at(i * 60));
        store
            .append(append(&s, ExpectedVersion::Any, vec![e]))
            .await
            .unwrap();
    }
    let stored = all(&*store, &s).await;
    let snapshot = |version: u64, schema_version: u32| Snapshot {
        stream_id: s.clone(),
        version,
        global_position: stored[usize::try_from(version).unwrap() - 1].global_position,
        occurred_until: at(i64::try_from(version).unwrap() * 60 - 60),
        schema_version,
        state: Arc::new(json!({"upto": version, "text": "𝄞 \u{0} \" \\", "n": [1.5, null]})),
    };
    let read = |schema_version: u32, until: Until| {
        let (store, s) = (Arc::clone(&store), s.clone());
        async move {
            store
                .read_snapshot(&s, schema_version, until)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        read(1, Until::End).await,
        None,
        "{clause}: none before one is saved"
    );
    store.save_snapshot(&snapshot(3, 1)).await.expect("save");
    assert_eq!(
        read(1, Until::End).await,
        Some(snapshot(3, 1)),
        "{clause}: a saved snapshot comes back unchanged"
    );
    store
        .save_snapshot(&snapshot(2, 1))
        .await
        .expect("save an older one");
    assert_eq!(
        read(1, Until::End).await.map(|s| s.version),
        Some(3),
        "{clause}: an older snapshot never replaces a newer one"
    );
    store
        .save_snapshot(&snapshot(5, 1))
        .await
        .expect("save a newer one");
    assert_eq!(read(1, Until::End).await, Some(snapshot(5, 1)));
    assert_eq!(
        read(2, Until::End).await,
        None,
        "{clause}: snapshots are kept per schema version"
    );
    store
        .save_snapshot(&snapshot(4, 2))
        .await
        .expect("save at another schema version");
    assert_eq!(read(2, Until::End).await, Some(snapshot(4, 2)));
    assert_eq!(read(1, Until::End).await.map(|s| s.version), Some(5));

    // Bounds: the newest kept one when inside, never one outside.
    for until in [
        Until::Version(5),
        Until::Position(stored[4].global_position),
        Until::Time(at(240)),
    ] {
        assert_eq!(
            read(1, until).await.map(|s| s.version),
            Some(5),
            "{clause}: a snapshot inside {until:?} is returned"
        );
    }
    for until in [
        Until::Version(4),
        Until::Position(stored[3].global_position),
        Until::Time(at(239)),
    ] {
        if let Some(older) = read(1, until).await {
            assert!(
                older.is_inside(until) && older.version < 5,
                "{clause}: a snapshot outside {until:?} was returned"
            );
        }
    }

    // A snapshot must name an event of its stream.
    let mut beyond = snapshot(5, 1);
    beyond.version = 9;
    let mut wrong_position = snapshot(5, 1);
    wrong_position.version = 4;
    let mut other_stream = snapshot(5, 1);
    other_stream.stream_id = stream(t, "conformance");
    for bad in [beyond, wrong_position, other_stream] {
        assert!(
            matches!(
                store.save_snapshot(&bad).await,
                Err(StoreError::InvalidRequest(_))
            ),
            "{clause}: a snapshot naming no event of its stream is refused"
        );
    }
    assert_eq!(
        read(1, Until::End).await,
        Some(snapshot(5, 1)),
        "{clause}: refusals change nothing"
    );

    // Tenant isolation: the same aggregate id in another tenant is another stream.
    let elsewhere = StreamId::new(tenant(), s.aggregate_type.clone(), s.aggregate_id);
    assert_eq!(
        store
            .read_snapshot(&elsewhere, 1, Until::End)
            .await
            .unwrap(),
        None,
        "{clause}: another tenant's snapshot is not visible"
    );

    // A load: the snapshot and the events after it.
    store
        .append(append(&s, ExpectedVersion::Exact(5), events(2)))
        .await
        .unwrap();
    for (until, tail) in [(Until::End, vec![6, 7]), (Until::Version(6), vec![6])] {
        let (found, after) = store
            .read_stream_from_snapshot(&s, 1, StreamQuery::until(until))
            .await
            .unwrap();
        assert_eq!(
            found.map(|s| s.version),
            Some(5),
            "{clause}: the load's snapshot"
        );
        let versions: Vec<u64> = after.iter().map(|e| e.version).collect();
        assert_eq!(
            versions, tail,
            "{clause}: the load's events follow the snapshot"
        );
    }
    let (found, after) = store
        .read_stream_from_snapshot(&s, 1, StreamQuery::until(Until::Version(4)))
        .await
        .unwrap();
    let start = found.as_ref().map_or(0, |s| s.version);
    assert!(
        start <= 4,
        "{clause}: a load's snapshot is inside its bound"
    );
    let versions: Vec<u64> = after.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (start + 1..=4).collect::<Vec<_>>(),
        "{clause}: a bounded load's events follow its snapshot up to the bound"
    );
}

/// A payload at every limit at once: nested exactly [`MAX_JSON_DEPTH`]
/// levels deep and exactly [`MAX_PAYLOAD_BYTES`] long as JSON text (with
/// multi-byte characters, escapes and a NUL in it). Every store must take
/// it and give it back unchanged.
///
/// [`MAX_JSON_DEPTH`]: security_core::limits::MAX_JSON_DEPTH
/// [`MAX_PAYLOAD_BYTES`]: security_core::limits::MAX_PAYLOAD_BYTES
pub fn worst_legal_payload() -> serde_json::Value {
    let mut deep = json!(["bottom"]);
    for _ in 0..limits::MAX_JSON_DEPTH - 2 {
        deep = json!([deep]);
    }
    let with_pad = |pad: String| json!({"deep": deep, "pad": pad});
    let prefix = "𝄞é\"\u{0}\\";
    let base = serde_json::to_string(&with_pad(prefix.to_owned()))
        .unwrap()
        .len();
    let payload = with_pad(format!(
        "{prefix}{}",
        "x".repeat(limits::MAX_PAYLOAD_BYTES - base)
    ));
    debug_assert_eq!(
        serde_json::to_string(&payload).unwrap().len(),
        limits::MAX_PAYLOAD_BYTES
    );
    payload
}

/// JSON nested `levels` deep.
pub fn nested(levels: usize) -> serde_json::Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = json!({ "k": value });
    }
    value
}

/// The input limits: the worst legal event (payload, metadata, type name
/// at their limits) is taken and read back unchanged, by stream and by
/// position; anything over a limit is refused with
/// [`StoreError::LimitExceeded`] before anything is written (a batch with
/// one such event writes none of its events).
pub async fn input_limits(store: Arc<dyn EventStore>) {
    let clause = "input limits";
    let t = tenant();
    let s = stream(t, "conformance");
    let mut worst = event(
        &"T".repeat(limits::MAX_TYPE_NAME_BYTES),
        worst_legal_payload(),
    );
    worst.metadata = Arc::new(EventMetadata {
        actor: Some(Actor::new("a".repeat(limits::MAX_ENVELOPE_TEXT_BYTES))),
        trace_id: Some(Arc::from("t".repeat(limits::MAX_ENVELOPE_TEXT_BYTES))),
        idempotency_key: Some(IdempotencyKey::new("k".repeat(200)).unwrap()),
        ..EventMetadata::default()
    });
    let written = worst.clone();
    let r = store
        .append(append(&s, ExpectedVersion::NoStream, vec![worst]))
        .await
        .unwrap_or_else(|e| panic!("{clause}: the worst legal event was refused: {e:?}"));
    let expected = StoredEvent::from_new(written, s.clone(), 1, r.first_position);
    assert_eq!(
        all(&*store, &s).await,
        vec![expected.clone()],
        "{clause}: the worst legal event comes back unchanged"
    );
    assert_eq!(
        global(&*store, Scope::Tenant(t)).await,
        vec![expected],
        "{clause}: and from the global stream"
    );

    let over = |mutate: &dyn Fn(&mut NewEvent)| {
        let mut e = event("Over", json!({}));
        mutate(&mut e);
        e
    };
    let too_deep = over(&|e| e.payload = Arc::new(nested(limits::MAX_JSON_DEPTH + 1)));
    let attack = over(&|e| e.payload = Arc::new(json!({"metadata": nested(200)})));
    let too_long = over(&|e| {
        e.payload = Arc::new(json!({"pad": "x".repeat(limits::MAX_PAYLOAD_BYTES)}));
    });
    let long_type =
        over(&|e| e.event_type = Arc::from("T".repeat(limits::MAX_TYPE_NAME_BYTES + 1)));
    let long_actor = over(&|e| {
        e.metadata = Arc::new(EventMetadata {
            actor: Some(Actor::new("a".repeat(limits::MAX_ENVELOPE_TEXT_BYTES + 1))),
            ..EventMetadata::default()
        });
    });
    let long_trace = over(&|e| {
        e.metadata = Arc::new(EventMetadata {
            trace_id: Some(Arc::from("t".repeat(limits::MAX_ENVELOPE_TEXT_BYTES + 1))),
            ..EventMetadata::default()
        });
    });
    for (what, bad) in [
        ("a payload one level too deep", too_deep),
        ("a payload nested 200 levels", attack),
        ("a payload over the byte limit", too_long),
        ("an event type too long", long_type),
        ("an actor too long", long_actor),
        ("a trace id too long", long_trace),
    ] {
        // Alone, and hidden in a batch of good events.
        for batch in [vec![bad.clone()], {
            let mut batch = events(3);
            batch.insert(1, bad.clone());
            batch
        }] {
            match store
                .append(append(&s, ExpectedVersion::Exact(1), batch))
                .await
            {
                Err(StoreError::LimitExceeded(_)) => {}
                other => panic!("{clause}: {what} must be refused, got {other:?}"),
            }
        }
    }
    let long_stream = StreamId::new(
        t,
        "s".repeat(limits::MAX_TYPE_NAME_BYTES + 1),
        Uuid::now_v7(),
    );
    assert!(
        matches!(
            store
                .append(append(&long_stream, ExpectedVersion::Any, events(1)))
                .await,
            Err(StoreError::LimitExceeded(_))
        ),
        "{clause}: an aggregate type too long must be refused"
    );
    assert_eq!(
        store.stream_version(&s).await.unwrap(),
        1,
        "{clause}: nothing written"
    );
    assert_eq!(
        global(&*store, Scope::Tenant(t)).await.len(),
        1,
        "{clause}: refused appends wrote nothing"
    );
}

/// Every field written comes back unchanged: ids, types, versions, times,
/// payloads (Unicode included) and metadata.
pub async fn round_trip(store: Arc<dyn EventStore>) {
    let clause = "round trip";
    let s = stream(tenant(), "conformance");
    let mut e = event_at(
        "Üñíçødé",
        json!({"text": "𝄞 \u{0} quotes \" and \\ ", "n": 1.5, "list": [1, null, true]}),
        at(42),
    );
    e.schema_version = 3;
    e.metadata = Arc::new(EventMetadata {
        actor: Some(Actor::service("conformance")),
        correlation_id: Some(Uuid::now_v7()),
        causation_id: Some(Uuid::now_v7()),
        idempotency_key: Some(IdempotencyKey::new("round-trip").unwrap()),
        trace_id: Some(Arc::from("4bf92f3577b34da6a3ce929d0e0e4736")),
    });
    let written = e.clone();
    let r = store
        .append(append(&s, ExpectedVersion::NoStream, vec![e]))
        .await
        .unwrap();
    let back = all(&*store, &s).await;
    let expected = StoredEvent::from_new(written, s.clone(), 1, r.first_position);
    assert_eq!(
        back,
        vec![expected],
        "{clause}: the stored event differs from the one written"
    );
}

/// Runs every clause, each on a fresh store from `factory`.
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn EventStore>>,
{
    optimistic_concurrency(factory().await).await;
    concurrent_appenders(factory().await).await;
    atomic_batches(factory().await).await;
    idempotency(factory().await).await;
    idempotency_under_concurrency(factory().await).await;
    idempotent_commands(factory().await).await;
    ordered_global_stream(factory().await).await;
    tenant_isolation(factory().await).await;
    temporal_reads(factory().await).await;
    subscriptions(factory().await).await;
    snapshots(factory().await).await;
    input_limits(factory().await).await;
    round_trip(factory().await).await;
    hash_chain(factory().await).await;
}
