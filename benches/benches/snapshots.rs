//! Loading a user with a long history from a snapshot, beside loading a
//! user with a short one.
//!
//! Each user is loaded cold (a repository without a state cache, as on a
//! replica that never saw the user): the newest snapshot and the events
//! after it, or the whole stream. Target: a user with 10 000
//! events loads in at most 1.5× the time of a user with 10.
//!
//! The users are written as the service writes them (`UserCreated`, then
//! `UserAuthenticated` per login) with the default snapshot policy (every
//! 12 events), so the long user's snapshot lies somewhere in its last 12
//! events: the bench loads it with a typical tail (6 events after the
//! snapshot) and the worst one (11). The 10-event user has no snapshot
//! (below 12 events). The same 10 000-event user without any snapshot is
//! the reference for what snapshots save.
//!
//! Memory store always; PostgreSQL with `--features postgres-store` (the
//! loopback server, or `DATABASE_URL`):
//! `cargo bench -p security-benches --bench snapshots [--features postgres-store]`.

//!
//! Because the machine is shared and its load moves during a run, the
//! ratio itself is also measured (only under `cargo bench`) as a *paired*
//! ratio: the long and the short load run in alternating chunks, the order
//! swapped every round, and the median of the per-round ratios is printed.

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
use criterion::{Criterion, criterion_group, criterion_main};
use security::core::{
    AccountId, AppendRequest, AuthMethod, ClientInfo, CommandContext, Credential, EventStore,
    ExpectedVersion, IdGenerator, KeyId, Repository, SealedSecret, SnapshotPolicy, TenantId, User,
    UserEvent, UserId, new_events,
};
use security::crypto::UuidV7Ids;
use security::eventstore::MemoryEventStore;
use uuid::Uuid;

/// One user of the bench: its tenant and id.
#[derive(Clone, Copy)]
struct Subject {
    tenant: TenantId,
    user_id: UserId,
}

/// Writes a user with `events` events (creation, then logins) in batches,
/// and lets a repository with `policy` load it once, as the service
/// would, so that it snapshots it where the policy says. Then appends
/// `tail` more logins behind the snapshot.
async fn user(
    store: &Arc<dyn EventStore>,
    events: usize,
    tail: usize,
    policy: SnapshotPolicy,
) -> Subject {
    let ids = UuidV7Ids;
    let tenant = TenantId::from_uuid(Uuid::now_v7());
    let user_id = UserId::from_uuid(Uuid::now_v7());
    let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let ctx = CommandContext::new(tenant, now);
    let created = UserEvent::UserCreated {
        user_id,
        account_id: AccountId::from(tenant),
        username: "busy@example.com".into(),
        credential_type: security::core::CredentialType::Password,
        credential: Credential::Password {
            hash: SealedSecret::new(KeyId::from_uuid(Uuid::now_v7()), "c".repeat(120)),
        },
        metadata: std::collections::BTreeMap::new(),
        must_change_password: false,
        created_at: now,
    };
    let login = UserEvent::UserAuthenticated {
        user_id,
        method: AuthMethod::PasswordTotp,
        client: ClientInfo::new(
            Some("203.0.113.7".parse().unwrap()),
            Some("Mozilla/5.0 (X11; Linux x86_64)"),
        ),
        authenticated_at: now,
    };
    let stream = Repository::stream_id::<User>(tenant, user_id);
    let append = |events: Vec<UserEvent>| {
        let request = AppendRequest {
            stream_id: stream.clone(),
            expected: ExpectedVersion::Any,
            events: new_events(&events, &ctx, &ids).unwrap(),
            idempotency_key: None,
        };
        let store = Arc::clone(store);
        async move { store.append(request).await.unwrap() }
    };
    let mut history = vec![created];
    history.extend(std::iter::repeat_n(login.clone(), events - tail - 1));
    for chunk in history.chunks(500) {
        append(chunk.to_vec()).await;
    }
    Repository::new(Arc::clone(store), Arc::new(UuidV7Ids))
        .with_snapshots(policy)
        .load::<User>(tenant, user_id)
        .await
        .unwrap();
    if tail > 0 {
        append(vec![login; tail]).await;
    }
    Subject { tenant, user_id }
}

fn loads(c: &mut Criterion, name: &str, rt: &tokio::runtime::Runtime, store: &Arc<dyn EventStore>) {
    let policy = SnapshotPolicy::DEFAULT;
    let (short, typical, worst, unsnapshotted) = rt.block_on(async {
        (
            user(store, 10, 0, policy).await,
            user(store, 10_000, 6, policy).await,
            user(store, 10_000, 11, policy).await,
            user(store, 10_000, 0, SnapshotPolicy::NEVER).await,
        )
    });
    let ids: Arc<dyn IdGenerator> = Arc::new(UuidV7Ids);
    // Cold loads; a policy that never writes, so that a load measures reads.
    let cold = Repository::new(Arc::clone(store), ids).with_snapshots(SnapshotPolicy::NEVER);
    let load = |subject: Subject, events: u64| {
        let cold = cold.clone();
        move || {
            rt.block_on(async {
                let loaded = cold
                    .load::<User>(subject.tenant, subject.user_id)
                    .await
                    .unwrap();
                assert_eq!(loaded.version, events);
                black_box(loaded)
            })
        }
    };
    let mut group = c.benchmark_group(name);
    group.bench_function("user_10_events", |b| b.iter(load(short, 10)));
    group.bench_function("user_10000_events_snapshot_plus_6", |b| {
        b.iter(load(typical, 10_000));
    });
    group.bench_function("user_10000_events_snapshot_plus_11", |b| {
        b.iter(load(worst, 10_000));
    });
    group.sample_size(20);
    group.bench_function("user_10000_events_no_snapshot", |b| {
        b.iter(load(unsnapshotted, 10_000));
    });
    group.finish();
    if std::env::args().any(|arg| arg == "--bench") {
        for (long, tail) in [(typical, 6), (worst, 11)] {
            paired_ratio(
                &format!("{name}: 10 000 events (snapshot + {tail}) / 10 events"),
                load(long, 10_000),
                load(short, 10),
            );
        }
    }
}

/// The median over 41 rounds of (time of 100 `long` loads) / (time of 100
/// `short` loads), the two run back to back in alternating order.
fn paired_ratio<T>(name: &str, mut long: impl FnMut() -> T, mut short: impl FnMut() -> T) {
    const ROUNDS: usize = 41;
    const CHUNK: u32 = 100;
    let time = |f: &mut dyn FnMut() -> T| {
        let start = Instant::now();
        for _ in 0..CHUNK {
            black_box(f());
        }
        start.elapsed().as_nanos() as f64 / f64::from(CHUNK)
    };
    time(&mut long);
    time(&mut short);
    let (mut ratios, mut longs, mut shorts) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (l, s) = if round % 2 == 0 {
            let l = time(&mut long);
            (l, time(&mut short))
        } else {
            let s = time(&mut short);
            (time(&mut long), s)
        };
        ratios.push(l / s);
        longs.push(l);
        shorts.push(s);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "paired ratio {name} = {:.3} (long {:.1} µs, short {:.1} µs; medians of {ROUNDS} rounds of {CHUNK})",
        median(&mut ratios),
        median(&mut longs) / 1_000.0,
        median(&mut shorts) / 1_000.0,
    );
}

fn memory(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    loads(c, "load_user_memory", &rt, &store);
}

#[cfg(feature = "postgres-store")]
fn postgres(c: &mut Criterion) {
    use std::str::FromStr;

    use security::eventstore::PostgresEventStore;
    use security::eventstore::sqlx::{self, postgres::PgConnectOptions, postgres::PgPoolOptions};

    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let name = format!("sec_bench_{}", &Uuid::now_v7().simple().to_string()[20..]);
    let (admin, store) = rt.block_on(async {
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .expect("PostgreSQL");
        sqlx::raw_sql(&format!(
            "CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
             CREATE SCHEMA \"{name}\" AUTHORIZATION \"{name}\";"
        ))
        .execute(&admin)
        .await
        .unwrap();
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .username(&name)
            .options([("search_path", name.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        let store = PostgresEventStore::from_pool(pool);
        store.migrate().await.unwrap();
        (admin, store)
    });
    let shared: Arc<dyn EventStore> = Arc::new(store.clone());
    loads(c, "load_user_postgres", &rt, &shared);
    rt.block_on(async {
        store.close().await;
        sqlx::raw_sql(&format!(
            "DROP SCHEMA \"{name}\" CASCADE; DROP ROLE \"{name}\";"
        ))
        .execute(&admin)
        .await
        .unwrap();
    });
}

#[cfg(feature = "postgres-store")]
criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = memory, postgres
}
#[cfg(not(feature = "postgres-store"))]
criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = memory
}
criterion_main!(benches);
