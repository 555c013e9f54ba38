//! The PostgreSQL store against the real server: the conformance kit, the
//! ordered global stream, row-level security, the outbox and its relay,
//! checkpoints, and a server restart during appends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestDb, admin_pool, database_url, fresh_name};
use security_core::{
    AppendRequest, CheckpointStore, EventStore, ExpectedVersion, GlobalQuery, IdempotencyKey,
    KeyId, Projection, ProjectionError, ProjectionRunner, Publisher, Scope, SealedSecret,
    StoreError, StoredEvent, StreamQuery,
};
use security_eventstore::{
    MemoryPublisher, OutboxRelay, PoolConfig, PostgresCheckpointStore, PostgresConfig,
    PostgresEventStore, RelayConfig, RelayOutcome, StoreOptions, testkit,
};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_meets_the_whole_contract() {
    let dbs = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let made = Arc::clone(&dbs);
    testkit::run_all(move || {
        let made = Arc::clone(&made);
        async move {
            let db = TestDb::new().await;
            let store = db.store_arc();
            made.lock().await.push(db);
            store
        }
    })
    .await;
    for db in dbs.lock().await.drain(..) {
        db.cleanup().await;
    }
}

#[path = "support/races.rs"]
mod races;

#[path = "postgres/faults.rs"]
mod faults;

#[path = "support/evolution.rs"]
mod evolution;

#[path = "support/limits.rs"]
mod limits_at_the_edge;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worst_legal_input_is_stored_and_the_deep_attack_refused_on_postgres() {
    let db = TestDb::new().await;
    limits_at_the_edge::worst_legal_input_is_stored_and_the_attack_refused(db.store_arc()).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_are_upcast_on_every_read_on_postgres() {
    let db = TestDb::new().await;
    evolution::old_events_are_upcast_on_every_read(
        db.store_arc(),
        Arc::new(security_crypto::UuidV7Ids),
    )
    .await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotent_request_racing_on_replicas_answers_every_caller_on_postgres() {
    let db = TestDb::new().await;
    // Three replicas: three pools on one database.
    let mut replicas = vec![db.store_arc()];
    for _ in 0..2 {
        replicas
            .push(Arc::new(db.second_store(StoreOptions::default()).await) as Arc<dyn EventStore>);
    }
    let (created, locked) = races::create_and_lock_races(&replicas, 100).await;
    let every = races::Tally {
        answered: 300,
        rejected: 0,
        conflicts: 0,
    };
    assert_eq!(created, every, "create_user with one key on three replicas");
    assert_eq!(locked, every, "lock_user with one key on three replicas");
    db.cleanup().await;
}

/// A hundred concurrent logins of one user (a service account on many
/// pods) over three replicas: with the persistent retry policy every one
/// lands and no caller sees a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_logins_on_three_replicas_all_land_on_postgres() {
    let db = TestDb::with_options(StoreOptions::default(), 12).await;
    let mut replicas = vec![db.store_arc()];
    for _ in 0..2 {
        replicas
            .push(Arc::new(db.second_store(StoreOptions::default()).await) as Arc<dyn EventStore>);
    }
    let (landed, conflicts) =
        races::concurrent_logins(&replicas, 100, security_core::RetryPolicy::persistent()).await;
    assert_eq!((landed, conflicts), (100, 0));
    db.cleanup().await;
}

/// On PostgreSQL too, a user with a long history loads from its snapshot
/// plus the events after it, and gets exactly the state a full replay
/// gives (latest and as of versions inside and outside the snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_user_stream_loads_from_its_snapshot_on_postgres() {
    use chrono::Duration as Minutes;
    use security_core::{
        AccountId, AuthMethod, ClientInfo, CommandContext, Credential, FailureReason, IdGenerator,
        Repository, Until, User, UserCommand, UserId, replay,
    };
    let db = TestDb::new().await;
    let ids: Arc<dyn IdGenerator> = Arc::new(security_crypto::UuidV7Ids);
    let writer = Repository::new(db.store_arc(), Arc::clone(&ids));
    let tenant = testkit::tenant();
    let user_id = UserId::from_uuid(Uuid::now_v7());
    let create = UserCommand::CreateUser {
        user_id,
        account_id: AccountId::from(tenant),
        username: "long".into(),
        credentials: Credential::Password {
            hash: SealedSecret::new(KeyId::from_uuid(Uuid::now_v7()), "ct".into()),
        },
        metadata: std::collections::BTreeMap::from([("k".to_owned(), json!({"deep": [1, "two"]}))]),
        must_change_password: false,
    };
    let mut now = testkit::at(0);
    writer
        .execute::<User>(user_id, &create, &CommandContext::new(tenant, now))
        .await
        .unwrap();
    for i in 0..150_u32 {
        now += Minutes::seconds(7) + Minutes::nanoseconds(123_000);
        let client = ClientInfo::new(None, Some("agent/1.0"));
        let command = if i % 5 == 4 {
            UserCommand::RecordAuthenticationFailure {
                reason: FailureReason::BadPassword,
                client,
                lockout: None,
            }
        } else {
            UserCommand::RecordAuthentication {
                method: AuthMethod::Password,
                client,
            }
        };
        writer
            .execute::<User>(user_id, &command, &CommandContext::new(tenant, now))
            .await
            .unwrap();
    }
    let stream = Repository::stream_id::<User>(tenant, user_id);
    let events = db
        .store
        .read_stream(&stream, StreamQuery::all())
        .await
        .unwrap();
    assert_eq!(events.len(), 151);
    let kept = db
        .store
        .read_snapshot(&stream, user_snapshot_schema(), Until::End)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.version, 144);
    let cold = Repository::new(db.store_arc(), ids);
    assert_eq!(
        cold.load::<User>(tenant, user_id).await.unwrap(),
        replay::<User>(&stream, &events).unwrap()
    );
    for version in [1, 64, 127, 128, 129, 151] {
        assert_eq!(
            cold.load_until::<User>(tenant, user_id, Until::Version(version))
                .await
                .unwrap(),
            replay::<User>(&stream, &events[..usize::try_from(version).unwrap()]).unwrap(),
            "as of version {version}"
        );
    }
    db.cleanup().await;
}

/// Three replicas, each with its own state cache, change one aggregate
/// at once: no update is lost, and every cache, caught up, gives the state
/// a full replay gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_with_their_own_state_caches_lose_no_update() {
    use security_core::{
        CommandContext, IdGenerator, Permissions, Policy, PolicyCommand, PolicyId, Repository,
        ResourceLimits, StateCache,
    };
    let db = TestDb::new().await;
    let ids: Arc<dyn IdGenerator> = Arc::new(security_crypto::UuidV7Ids);
    let mut replicas = vec![Repository::new(db.store_arc(), Arc::clone(&ids))];
    for _ in 0..2 {
        let store: Arc<dyn EventStore> = Arc::new(db.second_store(StoreOptions::default()).await);
        replicas.push(Repository::new(store, Arc::clone(&ids)));
    }
    let replicas: Vec<Repository> = replicas
        .into_iter()
        .map(|r| {
            r.with_state_cache(StateCache::new(16))
                .with_max_retries(500)
        })
        .collect();
    let tenant = testkit::tenant();
    let id = PolicyId::from_uuid(Uuid::now_v7());
    let ctx = CommandContext::new(tenant, testkit::at(0));
    let create = PolicyCommand::CreatePolicy {
        policy_id: id,
        name: "shared".into(),
        description: String::new(),
        permissions: Permissions::default(),
        limits: ResourceLimits::default(),
    };
    replicas[0]
        .execute::<Policy>(id, &create, &ctx)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for (r, repo) in replicas.iter().enumerate() {
        for task in 0..4_u32 {
            let (repo, ctx) = (repo.clone(), ctx.clone());
            tasks.push(tokio::spawn(async move {
                for step in 0..10_u32 {
                    let update = PolicyCommand::UpdateLimits {
                        new_limits: ResourceLimits {
                            max_subscriptions: Some(
                                u32::try_from(r).unwrap() * 1000 + task * 100 + step,
                            ),
                            ..ResourceLimits::default()
                        },
                    };
                    repo.execute::<Policy>(id, &update, &ctx).await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let cold = Repository::new(db.store_arc(), Arc::clone(&ids))
        .load::<Policy>(tenant, id)
        .await
        .unwrap();
    assert_eq!(cold.version, 121, "120 updates, none lost");
    assert_eq!(cold.state.version, 121);
    for repo in &replicas {
        assert_eq!(repo.load::<Policy>(tenant, id).await.unwrap(), cold);
    }
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_clause_also_passes_on_a_shared_schema() {
    let db = TestDb::new().await;
    let store = db.store_arc();
    testkit::run_all(|| {
        let store = Arc::clone(&store);
        async move { store }
    })
    .await;
    db.cleanup().await;
}

/// Holds every append of an event of type `Held` inside its transaction
/// (after it was numbered) until the test lets go: a trigger waits on an
/// advisory lock the test holds.
struct Hold {
    conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    key: i64,
}

impl Hold {
    async fn install(db: &TestDb) -> Self {
        let key = i64::from(rand_key());
        let name = &db.name;
        sqlx::raw_sql(&format!(
            "CREATE FUNCTION \"{name}\".hold_append() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF NEW.event_type = 'Held' THEN \
                 PERFORM pg_advisory_lock_shared({key}); \
                 PERFORM pg_advisory_unlock_shared({key}); \
               END IF; \
               RETURN NEW; \
             END $$; \
             CREATE TRIGGER hold_append BEFORE INSERT ON \"{name}\".security_events \
               FOR EACH ROW EXECUTE FUNCTION \"{name}\".hold_append();"
        ))
        .execute(&db.admin)
        .await
        .unwrap();
        let mut conn = db.admin.acquire().await.unwrap();
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await
            .unwrap();
        Self { conn, key }
    }

    async fn release(mut self) {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut *self.conn)
            .await
            .unwrap();
    }
}

fn rand_key() -> i32 {
    i32::from_le_bytes(Uuid::now_v7().as_bytes()[12..16].try_into().unwrap()) & 0x7fff_ffff
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_never_skips_an_event_whose_transaction_commits_later() {
    let db = TestDb::new().await;
    let store = db.store_arc();
    let tenant = testkit::tenant();
    let first = testkit::stream(tenant, "gap");
    let second = testkit::stream(tenant, "gap");
    store
        .append(testkit::append(
            &first,
            ExpectedVersion::Any,
            testkit::events(1),
        ))
        .await
        .unwrap();
    let checkpoint = store.head_position().await.unwrap();

    let hold = Hold::install(&db).await;
    // The first append is numbered, then held open inside its transaction.
    let held = {
        let store = Arc::clone(&store);
        let s = first.clone();
        tokio::spawn(async move {
            let event = testkit::event("Held", json!({"which": "held"}));
            store
                .append(testkit::append(&s, ExpectedVersion::Any, vec![event]))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "the held append is still open");
    // The second append starts later and would commit first with a plain
    // sequence.
    let later = {
        let store = Arc::clone(&store);
        let s = second.clone();
        tokio::spawn(async move {
            store
                .append(testkit::append(
                    &s,
                    ExpectedVersion::Any,
                    testkit::events(1),
                ))
                .await
        })
    };
    // A follower reads on while the first transaction is open.
    let mut seen: Vec<StoredEvent> = Vec::new();
    let mut position = checkpoint;
    for _ in 0..20 {
        let page = store
            .read_global(Scope::Tenant(tenant), GlobalQuery::after(position, 100))
            .await
            .unwrap();
        for event in page {
            position = event.global_position;
            seen.push(event);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        seen.is_empty(),
        "nothing may be readable past an open append: saw {:?}",
        seen.iter().map(|e| e.global_position).collect::<Vec<_>>()
    );
    assert_eq!(
        store.head_position().await.unwrap(),
        checkpoint,
        "the head does not move past an open append"
    );
    hold.release().await;
    let held = held.await.unwrap().unwrap();
    let later = later.await.unwrap().unwrap();
    assert!(
        held.last_position < later.first_position,
        "the open append was numbered first"
    );
    // The follower resumes from its checkpoint and misses nothing.
    let page = store
        .read_global(Scope::Tenant(tenant), GlobalQuery::after(position, 100))
        .await
        .unwrap();
    seen.extend(page);
    let positions: Vec<u64> = seen.iter().map(|e| e.global_position).collect();
    assert_eq!(
        positions,
        vec![held.last_position, later.last_position],
        "the follower saw the held event, then the later one"
    );
    assert_eq!(seen[0].event_type.as_ref(), "Held");
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plain_sequence_would_skip_the_held_event() {
    // The same scenario on a table numbered by a sequence: proves that the
    // test above can fail, i.e. that the log head's lock is what saves us.
    let admin = admin_pool().await;
    let name = fresh_name("sec_seq");
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA \"{name}\"; \
         CREATE TABLE \"{name}\".log (position bigserial PRIMARY KEY, what text NOT NULL);"
    ))
    .execute(&admin)
    .await
    .unwrap();
    let table = format!("\"{name}\".log");
    let mut held = admin.begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {table} (what) VALUES ('held')"))
        .execute(&mut *held)
        .await
        .unwrap();
    sqlx::query(&format!("INSERT INTO {table} (what) VALUES ('later')"))
        .execute(&admin)
        .await
        .unwrap();
    let read = |after: i64| {
        let admin = admin.clone();
        let table = table.clone();
        async move {
            sqlx::query_as::<_, (i64, String)>(&format!(
                "SELECT position, what FROM {table} WHERE position > $1 ORDER BY position"
            ))
            .bind(after)
            .fetch_all(&admin)
            .await
            .unwrap()
        }
    };
    let first_read = read(0).await;
    assert_eq!(first_read.len(), 1, "only the later row is visible");
    let checkpoint = first_read[0].0;
    held.commit().await.unwrap();
    let second_read = read(checkpoint).await;
    assert!(
        second_read.is_empty(),
        "the held row committed below the checkpoint: a follower skips it"
    );
    sqlx::raw_sql(&format!("DROP SCHEMA \"{name}\" CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_stops_a_role_that_owns_nothing() {
    let db = TestDb::new().await;
    let (a, b) = (testkit::tenant(), testkit::tenant());
    let sa = testkit::stream(a, "rls");
    let sb = testkit::stream(b, "rls");
    for s in [&sa, &sb] {
        db.store
            .append(AppendRequest {
                idempotency_key: Some(IdempotencyKey::new("k").unwrap()),
                ..testkit::append(s, ExpectedVersion::NoStream, testkit::events(2))
            })
            .await
            .unwrap();
    }
    let checkpoints = PostgresCheckpointStore::new(&db.store, Scope::Tenant(b));
    checkpoints.save("b-projection", 2).await.unwrap();

    // A role that owns nothing, with every table privilege.
    let probe = fresh_name("sec_probe");
    let name = &db.name;
    sqlx::raw_sql(&format!(
        "CREATE ROLE \"{probe}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
         GRANT USAGE ON SCHEMA \"{name}\" TO \"{probe}\"; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"{name}\" TO \"{probe}\";"
    ))
    .execute(&db.admin)
    .await
    .unwrap();
    let options = PgConnectOptions::from_str(&database_url())
        .unwrap()
        .username(&probe)
        .options([("search_path", name.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let count = |table: &'static str| format!("SELECT count(*) FROM {table}");
    let tables = [
        "security_events",
        "security_streams",
        "security_idempotency_keys",
        "security_outbox",
        "security_projection_checkpoints",
        "security_key_records",
    ];

    // Without a tenant: nothing at all, even when asking for every tenant.
    for all in ["off", "on"] {
        sqlx::query("SELECT set_config('app.all_tenants', $1, false)")
            .bind(all)
            .execute(&mut *conn)
            .await
            .unwrap();
        for table in tables {
            let n: i64 = sqlx::query_scalar(&count(table))
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(n, 0, "{table} with no tenant set (all_tenants={all})");
        }
    }
    // As tenant A: A's rows only, even with app.all_tenants on (that is
    // for the owner's role only).
    sqlx::query("SELECT set_config('app.current_tenant', $1, false)")
        .bind(a.to_string())
        .execute(&mut *conn)
        .await
        .unwrap();
    let tenants: Vec<Uuid> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM security_events")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(tenants, vec![a.as_uuid()], "only tenant A's events");
    for (table, expected) in [
        ("security_events", 2),
        ("security_streams", 1),
        ("security_idempotency_keys", 1),
        ("security_outbox", 2),
        ("security_projection_checkpoints", 0),
        ("security_key_records", 0),
    ] {
        let n: i64 = sqlx::query_scalar(&count(table))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(n, expected, "{table} as tenant A");
    }
    // Writing B's rows as A: refused or touching nothing.
    let insert = sqlx::query(
        "INSERT INTO security_events (global_position, event_id, tenant_id, aggregate_type, \
         aggregate_id, version, event_type, schema_version, occurred_at, payload, metadata) \
         VALUES (999999, $1, $2, 'rls', $3, 9, 'Forged', 1, now(), '{}', '{}')",
    )
    .bind(Uuid::now_v7())
    .bind(b.as_uuid())
    .bind(sb.aggregate_id)
    .execute(&mut *conn)
    .await;
    let error = insert.expect_err("inserting another tenant's event must fail");
    assert_eq!(
        error
            .as_database_error()
            .and_then(sqlx::error::DatabaseError::code)
            .as_deref(),
        Some("42501"),
        "an RLS violation"
    );
    for statement in [
        "UPDATE security_events SET event_type = 'Tampered'",
        "DELETE FROM security_events",
        "UPDATE security_streams SET version = 99 WHERE tenant_id <> current_setting('app.current_tenant')::uuid",
        "DELETE FROM security_outbox WHERE tenant_id <> current_setting('app.current_tenant')::uuid",
        "UPDATE security_projection_checkpoints SET position = 0",
        "DELETE FROM security_idempotency_keys",
        "UPDATE security_key_records SET revision = 0",
        "DELETE FROM security_key_records",
    ] {
        let done = sqlx::query(statement).execute(&mut *conn).await.unwrap();
        assert_eq!(done.rows_affected(), 0, "{statement}");
    }
    // Even the own tenant's events cannot be changed: no UPDATE policy.
    let done =
        sqlx::query("UPDATE security_events SET event_type = 'Tampered' WHERE tenant_id = $1")
            .bind(a.as_uuid())
            .execute(&mut *conn)
            .await
            .unwrap();
    assert_eq!(done.rows_affected(), 0, "events are append-only");
    drop(conn);
    pool.close().await;

    // Nothing of B's changed.
    let b_events = db.store.read_stream(&sb, StreamQuery::all()).await.unwrap();
    assert_eq!(b_events.len(), 2);
    assert!(b_events.iter().all(|e| e.event_type.as_ref() == "Numbered"));
    assert_eq!(checkpoints.load("b-projection").await.unwrap(), Some(2));
    assert_eq!(db.store.stream_version(&sb).await.unwrap(), 2);
    sqlx::raw_sql(&format!(
        "DROP OWNED BY \"{probe}\"; DROP ROLE \"{probe}\";"
    ))
    .execute(&db.admin)
    .await
    .unwrap();
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_tenant_reads_need_the_owner_role() {
    let db = TestDb::new().await;
    let s = testkit::stream(testkit::tenant(), "scope");
    db.store
        .append(testkit::append(
            &s,
            ExpectedVersion::NoStream,
            testkit::events(1),
        ))
        .await
        .unwrap();
    // A role that owns nothing, running the store: tenant reads work,
    // Scope::All is refused with a typed error rather than returning nothing.
    let other = fresh_name("sec_probe");
    let name = &db.name;
    sqlx::raw_sql(&format!(
        "CREATE ROLE \"{other}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
         GRANT USAGE ON SCHEMA \"{name}\" TO \"{other}\"; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"{name}\" TO \"{other}\";"
    ))
    .execute(&db.admin)
    .await
    .unwrap();
    let options = PgConnectOptions::from_str(&database_url())
        .unwrap()
        .username(&other)
        .options([("search_path", name.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let foreign = PostgresEventStore::from_pool(pool);
    assert_eq!(
        foreign
            .read_stream(&s, StreamQuery::all())
            .await
            .unwrap()
            .len(),
        1
    );
    let denied = foreign
        .read_global(Scope::All, GlobalQuery::after(0, 10))
        .await
        .expect_err("Scope::All needs the owner's role");
    assert!(matches!(denied, StoreError::Backend(_)), "{denied:?}");
    assert!(!denied.is_retryable());
    foreign.close().await;
    // The owner reads every tenant.
    let all = db
        .store
        .read_global(Scope::All, GlobalQuery::after(0, 10))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    sqlx::raw_sql(&format!(
        "DROP OWNED BY \"{other}\"; DROP ROLE \"{other}\";"
    ))
    .execute(&db.admin)
    .await
    .unwrap();
    db.cleanup().await;
}

fn sealed_payload() -> serde_json::Value {
    let sealed = SealedSecret::new(
        KeyId::from_uuid(Uuid::now_v7()),
        "gAAAAAB-this-ciphertext-must-not-leave".to_owned(),
    );
    json!({"name": "alice", "totp_secret": serde_json::to_value(sealed).unwrap()})
}

async fn outbox_rows(db: &TestDb) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{}\".security_outbox",
        db.name
    ))
    .fetch_one(&db.admin)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_outbox_commits_with_the_append_and_the_relay_publishes_in_order() {
    let db = TestDb::new().await;
    let store = &db.store;
    let tenant = testkit::tenant();
    let streams: Vec<_> = (0..4).map(|_| testkit::stream(tenant, "outbox")).collect();
    for round in 0..5 {
        for s in &streams {
            let mut events = testkit::events(3);
            events[0].payload = Arc::new(sealed_payload());
            events[1].payload = Arc::new(json!({"round": round}));
            store
                .append(testkit::append(s, ExpectedVersion::Any, events))
                .await
                .unwrap();
        }
    }
    // A refused append writes no outbox row.
    let refused = store
        .append(testkit::append(
            &streams[0],
            ExpectedVersion::NoStream,
            testkit::events(2),
        ))
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict { .. })));
    assert_eq!(
        outbox_rows(&db).await,
        60,
        "one outbox row per stored event"
    );

    let publisher = MemoryPublisher::new();
    let relay = OutboxRelay::new(store, Arc::new(publisher.clone())).with_config(RelayConfig {
        batch_size: 7,
        ..RelayConfig::default()
    });
    assert_eq!(relay.pending().await.unwrap(), 60);
    // The broker is down for two batches: nothing is marked done.
    publisher.fail_next(2);
    assert!(relay.relay_batch().await.is_err());
    assert!(relay.relay_batch().await.is_err());
    assert_eq!(
        relay.pending().await.unwrap(),
        60,
        "a failed publish marks nothing"
    );
    assert!(publisher.published().is_empty());
    assert_eq!(
        relay.relay_batch().await.unwrap(),
        RelayOutcome::Published(7)
    );
    assert_eq!(relay.drain().await.unwrap(), 53);
    assert_eq!(relay.relay_batch().await.unwrap(), RelayOutcome::Idle);
    assert_eq!(outbox_rows(&db).await, 0, "every row is done");

    let published = publisher.published();
    let stored = store
        .read_global(Scope::All, GlobalQuery::after(0, 1000))
        .await
        .unwrap();
    let ids = |events: &mut dyn Iterator<Item = &StoredEvent>| {
        events.map(|e| e.event_id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&mut published.iter().map(security_core::PublishedEvent::event)),
        ids(&mut stored.iter()),
        "every event once, in global order"
    );
    for (p, s) in published.iter().zip(&stored) {
        assert_eq!(p.payload, s.to_published().payload);
        let text = serde_json::to_string(p.event()).unwrap();
        assert!(
            !text.contains("this-ciphertext-must-not-leave"),
            "sealed fields never leave"
        );
    }
    assert!(
        stored[0]
            .payload
            .to_string()
            .contains("this-ciphertext-must-not-leave"),
        "the store itself keeps the sealed field"
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_take_turns_and_a_running_relay_follows_live_appends() {
    let db = TestDb::new().await;
    let tenant = testkit::tenant();
    let publisher = MemoryPublisher::new();
    let fast = RelayConfig {
        batch_size: 16,
        poll_interval: Duration::from_millis(200),
        ..RelayConfig::default()
    };
    // Two relays (as two processes would run them) on one outbox.
    let other_store = db.second_store(StoreOptions::default()).await;
    let relays = [
        OutboxRelay::new(&db.store, Arc::new(publisher.clone())).with_config(fast),
        OutboxRelay::new(&other_store, Arc::new(publisher.clone())).with_config(fast),
    ];
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running: Vec<_> = relays
        .into_iter()
        .map(|relay| {
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                relay
                    .run_until(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            })
        })
        .collect();
    let streams: Vec<_> = (0..6).map(|_| testkit::stream(tenant, "live")).collect();
    let writers: Vec<_> = streams
        .iter()
        .cloned()
        .map(|s| {
            let store = db.store.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    store
                        .append(testkit::append(
                            &s,
                            ExpectedVersion::Any,
                            testkit::events(2),
                        ))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while publisher.published().len() < 240 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relays did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send_replace(true);
    let mut total = 0;
    for r in running {
        total += r.await.unwrap().published;
    }
    let published = publisher.published();
    assert_eq!(published.len(), 240, "each event published once");
    assert_eq!(total, 240);
    let unique: HashSet<_> = published.iter().map(|e| e.event_id).collect();
    assert_eq!(unique.len(), 240);
    let positions: Vec<u64> = published.iter().map(|e| e.global_position).collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(positions, sorted, "batches never overtake each other");
    other_store.close().await;
    db.cleanup().await;
}

#[derive(Default)]
struct Counter {
    per_tenant: BTreeMap<String, u64>,
    applied: u64,
}

impl Projection for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }

    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        *self
            .per_tenant
            .entry(event.tenant_id().to_string())
            .or_default() += 1;
        self.applied += 1;
        Ok(())
    }

    fn reset(&mut self) {
        *self = Self::default();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_resume_from_postgres_checkpoints() {
    let db = TestDb::new().await;
    let store = db.store_arc();
    let (a, b) = (testkit::tenant(), testkit::tenant());
    for t in [a, b] {
        store
            .append(testkit::append(
                &testkit::stream(t, "p"),
                ExpectedVersion::Any,
                testkit::events(3),
            ))
            .await
            .unwrap();
    }
    let all: Arc<dyn CheckpointStore> =
        Arc::new(PostgresCheckpointStore::new(&db.store, Scope::All));
    let only_a: Arc<dyn CheckpointStore> =
        Arc::new(PostgresCheckpointStore::new(&db.store, Scope::Tenant(a)));
    assert_eq!(all.load("counter").await.unwrap(), None);
    let mut runner = ProjectionRunner::new(
        Arc::clone(&store),
        Arc::clone(&all),
        Counter::default(),
        Scope::All,
    )
    .await
    .unwrap();
    assert_eq!(runner.catch_up().await.unwrap(), 6);
    let head = store.head_position().await.unwrap();
    assert_eq!(all.load("counter").await.unwrap(), Some(head));
    // Same name, other scope: separate checkpoints.
    assert_eq!(only_a.load("counter").await.unwrap(), None);
    let mut tenant_runner = ProjectionRunner::new(
        Arc::clone(&store),
        Arc::clone(&only_a),
        Counter::default(),
        Scope::Tenant(a),
    )
    .await
    .unwrap();
    assert_eq!(tenant_runner.catch_up().await.unwrap(), 3);

    // "Restart": a new runner (and a new store handle) resumes where the
    // last one stopped.
    store
        .append(testkit::append(
            &testkit::stream(b, "p"),
            ExpectedVersion::Any,
            testkit::events(2),
        ))
        .await
        .unwrap();
    let restarted_store = db.second_store(StoreOptions::default()).await;
    let restarted: Arc<dyn CheckpointStore> =
        Arc::new(PostgresCheckpointStore::new(&restarted_store, Scope::All));
    let mut resumed = ProjectionRunner::new(
        Arc::new(restarted_store.clone()),
        restarted,
        Counter::default(),
        Scope::All,
    )
    .await
    .unwrap();
    assert_eq!(resumed.position(), head);
    assert_eq!(resumed.catch_up().await.unwrap(), 2, "only the new events");
    assert_eq!(
        resumed.rebuild().await.unwrap(),
        8,
        "a rebuild starts from 0"
    );
    restarted_store.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_wake_on_appends_from_another_process() {
    let db = TestDb::new().await;
    // A long poll interval: only the NOTIFY can deliver in time.
    let slow = StoreOptions::default().with_poll_interval(Duration::from_secs(60));
    let reader = db.second_store(slow).await;
    let tenant = testkit::tenant();
    let mut sub = reader.subscribe(Scope::Tenant(tenant), 0);
    let s = testkit::stream(tenant, "notify");
    let next = tokio::spawn(async move {
        use futures::StreamExt;
        sub.next().await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    db.store
        .append(testkit::append(
            &s,
            ExpectedVersion::NoStream,
            testkit::events(1),
        ))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("a NOTIFY wakes the subscription")
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.stream_id, s);
    reader.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_migrate_and_report_an_unreachable_server_as_retryable() {
    // The public constructor, from a URL, with a schema it creates.
    let admin = admin_pool().await;
    let schema = fresh_name("sec_cfg");
    let config = PostgresConfig::new(database_url())
        .with_schema(schema.clone())
        .unwrap()
        .with_pool(PoolConfig {
            size: 2,
            max_overflow: 1,
            ..PoolConfig::default()
        });
    let store = PostgresEventStore::connect(config).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.pool().options().get_max_connections(), 3);
    let s = testkit::stream(testkit::tenant(), "cfg");
    store
        .append(testkit::append(
            &s,
            ExpectedVersion::NoStream,
            testkit::events(1),
        ))
        .await
        .unwrap();
    store.close().await;
    sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&admin)
        .await
        .unwrap();

    // Nothing listens on this port.
    let port = common::free_port();
    let mut config = PostgresConfig::new(format!("postgres://postgres@127.0.0.1:{port}/postgres"));
    config.pool.acquire_timeout = Duration::from_secs(1);
    let error = PostgresEventStore::connect(config).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(error.to_string(), "could not connect to postgresql");
}

// ---------------------------------------------------------------------------
// Restarting PostgreSQL during appends, on a throwaway cluster.

/// A PostgreSQL cluster of our own on a free port, run as the `postgres`
/// OS user (the server refuses to run as root).
struct Cluster {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    port: u16,
}

impl Cluster {
    fn run_as_postgres(&self, program: &str, args: &[&str]) -> std::process::Output {
        let program = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        command
            .args(args)
            .output()
            .expect("run a PostgreSQL program")
    }

    fn start(&self) {
        let out = self.run_as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.dir.to_str().unwrap(),
                "-o",
                &format!("-p {} -k /tmp -c listen_addresses=127.0.0.1", self.port),
                "-l",
                self.dir.join("log").to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self, mode: &str) {
        let out = self.run_as_postgres(
            "pg_ctl",
            &["-D", self.dir.to_str().unwrap(), "-m", mode, "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn new() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries in /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("initdb");
        let dir = std::env::temp_dir().join(fresh_name("sec_pgdata"));
        std::fs::create_dir_all(&dir).unwrap();
        if running_as_root() {
            let out = std::process::Command::new("chown")
                .args(["postgres:postgres", dir.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(out.status.success());
        }
        let cluster = Self {
            dir,
            bin,
            port: common::free_port(),
        };
        let out = cluster.run_as_postgres(
            "initdb",
            &[
                "-D",
                cluster.dir.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.start();
        cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run_as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.dir.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_postgres_fails_appends_retryably_and_writes_no_half_batch() {
    const WRITERS: usize = 4;
    const BATCH: usize = 10;
    let cluster = Arc::new(Cluster::new());
    let mut config = PostgresConfig::new(format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        cluster.port
    ));
    config.pool = PoolConfig {
        size: 4,
        max_overflow: 0,
        acquire_timeout: Duration::from_secs(2),
        ..PoolConfig::default()
    };
    let store = PostgresEventStore::connect(config).await.unwrap();
    store.migrate().await.unwrap();
    let tenant = testkit::tenant();
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Each writer appends numbered batches with an idempotency key until
    // told to stop; a failed append is retried with the same key until it
    // succeeds.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            let errors = Arc::clone(&errors);
            let stopped = stopped.clone();
            tokio::spawn(async move {
                let s = testkit::stream(tenant, "restart");
                let mut appended = 0u64;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                while !*stopped.borrow() {
                    let key = IdempotencyKey::new(format!("w{w}-b{appended}")).unwrap();
                    let events = (0..BATCH)
                        .map(|i| testkit::event("Counted", json!({"batch": appended, "i": i})))
                        .collect();
                    let request = AppendRequest {
                        stream_id: s.clone(),
                        expected: ExpectedVersion::Any,
                        events,
                        idempotency_key: Some(key),
                    };
                    loop {
                        match store.append(request.clone()).await {
                            Ok(_) => break,
                            Err(e) => {
                                assert!(
                                    e.is_retryable(),
                                    "a restart must give a retryable error: {e:?}"
                                );
                                assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
                                errors.lock().unwrap().push(e.to_string());
                                assert!(tokio::time::Instant::now() < deadline, "no recovery");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                    appended += 1;
                }
                (s, appended)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // A fast shutdown aborts every transaction in flight.
    let restart = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || {
            cluster.stop("fast");
            std::thread::sleep(Duration::from_millis(700));
            cluster.start();
        })
    };
    restart.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send_replace(true);
    let mut streams = Vec::new();
    for w in writers {
        streams.push(w.await.unwrap());
    }
    let errors = errors.lock().unwrap().clone();
    assert!(
        !errors.is_empty(),
        "the restart happened during the appends"
    );
    assert!(
        errors.iter().all(|e| e == "event store unavailable"),
        "no driver text in messages: {errors:?}"
    );
    // Every batch is there exactly once, whole, in order.
    for (s, appended) in &streams {
        let events = store.read_stream(s, StreamQuery::all()).await.unwrap();
        assert!(*appended > 0);
        assert_eq!(
            events.len() as u64,
            appended * BATCH as u64,
            "{s}: every batch once"
        );
        let mut per_batch: HashMap<u64, Vec<u64>> = HashMap::new();
        for e in &events {
            per_batch
                .entry(e.payload["batch"].as_u64().unwrap())
                .or_default()
                .push(e.payload["i"].as_u64().unwrap());
        }
        for (batch, items) in per_batch {
            assert_eq!(
                items,
                (0..BATCH as u64).collect::<Vec<_>>(),
                "batch {batch} is whole"
            );
        }
        let batches: Vec<u64> = events
            .iter()
            .map(|e| e.payload["batch"].as_u64().unwrap())
            .collect();
        let mut sorted = batches.clone();
        sorted.sort_unstable();
        assert_eq!(batches, sorted, "batches in order");
    }
    let all = store
        .read_global(Scope::All, GlobalQuery::after(0, 100_000))
        .await
        .unwrap();
    let positions: Vec<u64> = all.iter().map(|e| e.global_position).collect();
    assert_eq!(
        positions,
        (1..=positions.len() as u64).collect::<Vec<_>>(),
        "positions stay dense across the restart"
    );
    store.close().await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_only_see_published_events() {
    // The relay converts with `to_published`; a publisher that records
    // what it got proves the sealed value is gone.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<String>>);
    #[security_core::async_trait]
    impl Publisher for Recorder {
        async fn publish(
            &self,
            events: &[security_core::PublishedEvent],
        ) -> Result<(), security_core::PublishError> {
            let mut seen = self.0.lock().unwrap();
            for e in events {
                seen.push(serde_json::to_string(e).unwrap());
            }
            Ok(())
        }
    }
    let db = TestDb::new().await;
    let s = testkit::stream(testkit::tenant(), "sealed");
    let mut events = testkit::events(1);
    events[0].payload = Arc::new(sealed_payload());
    db.store
        .append(testkit::append(&s, ExpectedVersion::NoStream, events))
        .await
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    OutboxRelay::new(&db.store, recorder.clone())
        .drain()
        .await
        .unwrap();
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].contains("alice"));
    assert!(!seen[0].contains("$sealed"));
    assert!(!seen[0].contains("must-not-leave"));
    db.cleanup().await;
}

// ---------------------------------------------------------------------------
// security-crypto's envelope-encrypted key store, persisted in PostgreSQL.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_records_meet_the_crypto_contract() {
    let db = TestDb::new().await;
    let records = security_eventstore::PostgresKeyRecordStore::new(&db.store);
    security_crypto::testkit::key_record_store_conformance(&records).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_envelope_key_store_on_postgres_meets_its_contract_and_stores_no_clear_key() {
    use secrecy::ExposeSecret;
    use security_core::{KeyOwner, KeyPurpose, KeySpec, KeyStore, ManualClock};
    use security_crypto::{EnvelopeKeyStore, MasterKey, UuidV7Ids};

    let db = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(testkit::at(0)));
    let keys = EnvelopeKeyStore::new(
        security_eventstore::PostgresKeyRecordStore::new(&db.store),
        MasterKey::generate().unwrap(),
        clock.clone(),
        Arc::new(UuidV7Ids::new()),
    )
    .unwrap();
    security_crypto::testkit::key_store_conformance(&keys, &clock).await;

    // An exportable user key: its seed is in the database only encrypted.
    let owner = KeyOwner::new(testkit::tenant(), Uuid::now_v7());
    let info = keys
        .create_key(KeySpec {
            exportable: true,
            ..KeySpec::new(owner, KeyPurpose::UserIdentity)
        })
        .await
        .unwrap();
    let seed = keys.export_private_key(info.key_id).await.unwrap();
    let sealed = keys.seal(owner, b"totp-secret-in-clear").await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT record::text FROM \"{}\".security_key_records",
        db.name
    ))
    .fetch_all(&db.admin)
    .await
    .unwrap();
    assert!(!rows.is_empty());
    let all = rows.concat();
    assert!(
        !all.contains(seed.expose_secret()),
        "the seed is never stored in clear"
    );
    assert!(!all.contains("totp-secret-in-clear"));
    assert_eq!(
        keys.unseal(&sealed).await.unwrap().expose_secret(),
        b"totp-secret-in-clear"
    );
    // Row-level security applies to key records too.
    let tenants: Vec<Uuid> = sqlx::query_scalar(&format!(
        "SELECT DISTINCT tenant_id FROM \"{}\".security_key_records",
        db.name
    ))
    .fetch_all(&db.admin)
    .await
    .unwrap();
    assert!(tenants.contains(&owner.tenant_id.as_uuid()));
    db.cleanup().await;
}

/// The schema version of the User aggregate's snapshots in this build.
fn user_snapshot_schema() -> u32 {
    <security_core::User as security_core::Aggregate>::SNAPSHOT
        .map(|codec| codec.schema_version)
        .unwrap_or_default()
}
