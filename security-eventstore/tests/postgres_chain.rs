//! The hash chain on the real PostgreSQL: tampering through raw SQL (as a
//! superuser) is found with its position and kind; concurrent appends of
//! one tenant from several processes keep one chain; the SQL digest and the
//! migration's backfill agree with the documented encoding.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, fresh_name};
use security_core::chain::{
    BreakKind, ChainHash, ChainQuery, ChainRange, ChainRecord, verify_chain,
};
use security_core::{EventId, EventStore, ExpectedVersion, TenantId};
use security_eventstore::{PostgresEventStore, StoreOptions, testkit};
use serde_json::json;
use uuid::Uuid;

/// Appends 12 events to `tenant` in 6 appends over 3 streams, each append
/// followed by one event of `other`, so the tenant's positions are not
/// consecutive. Returns the tenant's chain.
async fn build(store: &dyn EventStore, tenant: TenantId, other: TenantId) -> Vec<ChainRecord> {
    let streams: Vec<_> = (0..3).map(|_| testkit::stream(tenant, "chain")).collect();
    let noise = testkit::stream(other, "noise");
    for i in 0..6 {
        store
            .append(testkit::append(
                &streams[i % 3],
                ExpectedVersion::Any,
                testkit::events(2),
            ))
            .await
            .unwrap();
        store
            .append(testkit::append(
                &noise,
                ExpectedVersion::Any,
                testkit::events(1),
            ))
            .await
            .unwrap();
    }
    let chain = store
        .read_chain(tenant, ChainQuery::after(0, usize::MAX))
        .await
        .unwrap();
    assert_eq!(chain.len(), 12);
    let report = verify_chain(store, tenant, ChainRange::ALL).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    chain
}

async fn first_break(store: &dyn EventStore, tenant: TenantId) -> (u64, BreakKind) {
    let report = verify_chain(store, tenant, ChainRange::ALL).await.unwrap();
    let b = report
        .first_break
        .unwrap_or_else(|| panic!("the tampering went unnoticed: {report:?}"));
    (b.position, b.kind)
}

/// Runs raw SQL as the superuser, in the test's schema.
async fn tamper(db: &TestDb, sql: &str) {
    let sql = sql.replace("EVENTS", &format!("\"{}\".security_events", db.name));
    sqlx::raw_sql(&sql).execute(&db.admin).await.unwrap();
}

/// Inserts `record` as a row, as the superuser.
async fn insert_row(db: &TestDb, record: &ChainRecord) {
    let sql = format!(
        "INSERT INTO \"{}\".security_events (global_position, event_id, tenant_id, \
         aggregate_type, aggregate_id, version, event_type, schema_version, occurred_at, \
         payload, metadata, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::json, $11::json, $12, $13)",
        db.name
    );
    sqlx::query(&sql)
        .bind(i64::try_from(record.global_position).unwrap())
        .bind(record.event_id.as_uuid())
        .bind(record.tenant_id.as_uuid())
        .bind(&*record.aggregate_type)
        .bind(record.aggregate_id)
        .bind(i64::try_from(record.version).unwrap())
        .bind(&*record.event_type)
        .bind(i64::from(record.schema_version))
        .bind(record.occurred_at)
        .bind(&*record.payload)
        .bind(&*record.metadata)
        .bind(record.prev_hash.as_bytes().to_vec())
        .bind(record.hash.as_bytes().to_vec())
        .execute(&db.admin)
        .await
        .unwrap();
}

/// A forged event after `predecessor`, at `position`, with a hash the
/// forger computed correctly.
fn forge(predecessor: &ChainRecord, position: u64) -> ChainRecord {
    let mut forged = predecessor.clone();
    forged.global_position = position;
    forged.event_id = EventId::from_uuid(Uuid::now_v7());
    forged.version += 100;
    forged.payload = Arc::from(r#"{"granted":"admin"}"#);
    forged.prev_hash = predecessor.hash;
    forged.hash = forged.computed_hash();
    forged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_tampering_is_found_with_its_position_and_kind() {
    let db = TestDb::new().await;
    let store = db.store_arc();
    let other = testkit::tenant();

    // A changed payload.
    let t = testkit::tenant();
    let chain = build(&*store, t, other).await;
    let p = chain[4].global_position;
    tamper(
        &db,
        &format!("UPDATE EVENTS SET payload = '{{\"n\":99}}' WHERE global_position = {p}"),
    )
    .await;
    assert_eq!(
        first_break(&*store, t).await,
        (p, BreakKind::Altered),
        "changed payload"
    );

    // A changed timestamp.
    let t = testkit::tenant();
    let chain = build(&*store, t, other).await;
    let p = chain[7].global_position;
    tamper(
        &db,
        &format!(
            "UPDATE EVENTS SET occurred_at = occurred_at - interval '1 microsecond' \
             WHERE global_position = {p}"
        ),
    )
    .await;
    assert_eq!(
        first_break(&*store, t).await,
        (p, BreakKind::Altered),
        "changed time"
    );

    // A deleted row: the event after it is where the chain breaks.
    let t = testkit::tenant();
    let chain = build(&*store, t, other).await;
    let p = chain[5].global_position;
    tamper(
        &db,
        &format!("DELETE FROM EVENTS WHERE global_position = {p}"),
    )
    .await;
    assert_eq!(
        first_break(&*store, t).await,
        (chain[6].global_position, BreakKind::Missing),
        "deleted row"
    );

    // Two rows swapped (each takes the other's position).
    let t = testkit::tenant();
    let chain = build(&*store, t, other).await;
    let (a, b) = (chain[2].global_position, chain[3].global_position);
    tamper(
        &db,
        &format!(
            "UPDATE EVENTS SET global_position = 999999999 WHERE global_position = {a}; \
             UPDATE EVENTS SET global_position = {a} WHERE global_position = {b}; \
             UPDATE EVENTS SET global_position = {b} WHERE global_position = 999999999;"
        ),
    )
    .await;
    assert_eq!(
        first_break(&*store, t).await,
        (a, BreakKind::Reordered),
        "swapped rows"
    );

    // A forged row with a correct hash, in the place of another tenant's
    // event between two of this tenant's events.
    let t = testkit::tenant();
    let victim = testkit::tenant();
    let chain = build(&*store, t, victim).await;
    // chain[9] and chain[10] are one append apart, with `other`'s event
    // between them.
    let place = chain[9].global_position + 1;
    assert!(place < chain[10].global_position);
    tamper(
        &db,
        &format!("DELETE FROM EVENTS WHERE global_position = {place}"),
    )
    .await;
    insert_row(&db, &forge(&chain[9], place)).await;
    assert_eq!(
        first_break(&*store, t).await,
        (place, BreakKind::Inserted),
        "forged row"
    );

    // A forged row after the tenant's last event, correctly chained to it.
    let t = testkit::tenant();
    let chain = build(&*store, t, other).await;
    let place = store.head_position().await.unwrap() + 1_000;
    insert_row(&db, &forge(&chain[11], place)).await;
    assert_eq!(
        first_break(&*store, t).await,
        (place, BreakKind::Inserted),
        "forged row at the end"
    );

    // The tail truncated: the recorded head is missing.
    let t = testkit::tenant();
    let chain = build(&*store, t, other).await;
    let from = chain[9].global_position;
    tamper(
        &db,
        &format!(
            "DELETE FROM EVENTS WHERE tenant_id = '{}' AND global_position >= {from}",
            t.as_uuid()
        ),
    )
    .await;
    assert_eq!(
        first_break(&*store, t).await,
        (chain[11].global_position, BreakKind::Truncated),
        "truncated tail"
    );

    // The whole chain rewritten with correct hashes, but not the recorded
    // head: the head no longer matches.
    let t = testkit::tenant();
    let chain = build(&*store, t, other).await;
    let mut prev = ChainHash::GENESIS;
    for record in &chain {
        let mut rewritten = record.clone();
        if record.global_position == chain[3].global_position {
            rewritten.payload = Arc::from(r#"{"n":"rewritten"}"#);
        }
        rewritten.prev_hash = prev;
        rewritten.hash = rewritten.computed_hash();
        prev = rewritten.hash;
        tamper(
            &db,
            &format!(
                "DELETE FROM EVENTS WHERE global_position = {}",
                record.global_position
            ),
        )
        .await;
        insert_row(&db, &rewritten).await;
    }
    assert_eq!(
        first_break(&*store, t).await,
        (chain[11].global_position, BreakKind::HeadMismatch),
        "rewritten chain"
    );

    // The untouched tenant still verifies.
    let report = verify_chain(&*store, other, ChainRange::ALL).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_appending_to_one_tenant_keep_one_chain() {
    let db = TestDb::new().await;
    let replicas: Vec<Arc<dyn EventStore>> = vec![
        db.store_arc(),
        Arc::new(db.second_store(StoreOptions::default()).await),
        Arc::new(db.second_store(StoreOptions::default()).await),
    ];
    let tenant = testkit::tenant();
    let other = testkit::tenant();
    let mut tasks = Vec::new();
    for (r, store) in replicas.iter().enumerate() {
        for w in 0..3 {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                let own = testkit::stream(tenant, "replica");
                let shared = testkit::stream(tenant, "shared");
                let noise = testkit::stream(other, "noise");
                let mut written = 0;
                for i in 0..15 {
                    let s = if (i + r + w) % 4 == 0 { &shared } else { &own };
                    let n = 1 + (i + w) % 3;
                    let target = if i % 5 == 4 { &noise } else { s };
                    if let Ok(result) = store
                        .append(testkit::append(
                            target,
                            ExpectedVersion::Any,
                            testkit::events(n),
                        ))
                        .await
                        && target.tenant_id == tenant
                    {
                        written += result.event_ids.len();
                    }
                }
                written
            }));
        }
    }
    let mut written = 0;
    for task in tasks {
        written += task.await.unwrap();
    }
    for store in &replicas {
        let report = verify_chain(&**store, tenant, ChainRange::ALL)
            .await
            .unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(
            report.checked, written as u64,
            "every event is on the chain"
        );
    }
    let report = verify_chain(&*replicas[0], other, ChainRange::ALL)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    db.cleanup().await;
}

/// An append of the tenant is held open after it was chained; another
/// process appends to the same tenant meanwhile. The second must chain to
/// the first, not to the head that was committed when its statement began.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_waiting_for_another_chains_to_it_not_to_a_stale_head() {
    let db = TestDb::new().await;
    let first: Arc<dyn EventStore> = db.store_arc();
    let second: Arc<dyn EventStore> = Arc::new(db.second_store(StoreOptions::default()).await);
    let tenant = testkit::tenant();
    let s = testkit::stream(tenant, "held");
    first
        .append(testkit::append(
            &s,
            ExpectedVersion::Any,
            testkit::events(2),
        ))
        .await
        .unwrap();
    let key = i64::from(u16::from_le_bytes(
        Uuid::now_v7().as_bytes()[14..16].try_into().unwrap(),
    ));
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
    let mut lock = db.admin.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut *lock)
        .await
        .unwrap();
    let held = {
        let store = Arc::clone(&first);
        let s = testkit::stream(tenant, "held");
        tokio::spawn(async move {
            let event = testkit::event("Held", json!({"held": true}));
            store
                .append(testkit::append(&s, ExpectedVersion::Any, vec![event]))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "the first append is held open");
    let later = {
        let store = Arc::clone(&second);
        let s = testkit::stream(tenant, "later");
        tokio::spawn(async move {
            store
                .append(testkit::append(
                    &s,
                    ExpectedVersion::Any,
                    testkit::events(3),
                ))
                .await
        })
    };
    // Let the second statement start (and take its snapshot) while the
    // first is still open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut *lock)
        .await
        .unwrap();
    let held = held.await.unwrap().unwrap();
    let later = later.await.unwrap().unwrap();
    assert!(held.last_position < later.first_position);
    let chain = second
        .read_chain(tenant, ChainQuery::after(0, usize::MAX))
        .await
        .unwrap();
    assert_eq!(chain.len(), 6);
    assert_eq!(
        chain[3].prev_hash, chain[2].hash,
        "the later append chained to the held one"
    );
    let report = verify_chain(&*second, tenant, ChainRange::ALL)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    drop(lock);
    db.cleanup().await;
}

/// The digest PostgreSQL computes (`security_chain_content`) is the
/// documented one: the known-answer vector of `security-core`.
#[tokio::test]
async fn the_sql_content_digest_is_the_documented_encoding() {
    let db = TestDb::new().await;
    let sql = format!(
        "SELECT encode(\"{}\".security_chain_content($1, $2, 'user', $3, 3, 'UserLocked', 1, \
         to_timestamp(1767225600.123456), $4, $5), 'hex')",
        db.name
    );
    let digest: String = sqlx::query_scalar(&sql)
        .bind(Uuid::from_u128(0x0190_c7a4_6f7e_7d55_a000_0000_0000_0001))
        .bind(Uuid::from_u128(0x0190_c7a4_6f7e_7d55_a000_0000_0000_00aa))
        .bind(Uuid::from_u128(0x0190_c7a4_6f7e_7d55_a000_0000_0000_0002))
        .bind(r#"{"reason":"too many failures","secret":{"$sealed":{"ct":"gAAAA","kid":"k1"}}}"#)
        .bind(r#"{"actor":"system"}"#)
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(
        digest,
        "3dc342160a956dd0b8e88cd031654d27ecc609183aa33a430877a5e42d71e156"
    );
    db.cleanup().await;
}

/// Events written before the chain existed are chained by the migration,
/// and the chain it makes verifies in Rust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_chains_events_written_before_it() {
    let admin = common::admin_pool().await;
    let name = fresh_name("sec_chain_mig");
    sqlx::raw_sql(&format!(
        "CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
         CREATE SCHEMA \"{name}\" AUTHORIZATION \"{name}\";"
    ))
    .execute(&admin)
    .await
    .unwrap();
    let pool = TestDb::role_pool(&name, 4).await;
    // The schema as the first two migrations left it, recorded as applied.
    let old = [
        (
            1_i64,
            "event store",
            include_str!("../src/postgres/migrations/0001_event_store.sql"),
        ),
        (
            2,
            "key records",
            include_str!("../src/postgres/migrations/0002_key_records.sql"),
        ),
    ];
    sqlx::raw_sql(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
         checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (version, description, sql) in old {
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES ($1, $2, true, sha384(convert_to($3, 'UTF8')), 0)",
        )
        .bind(version)
        .bind(description)
        .bind(sql)
        .execute(&pool)
        .await
        .unwrap();
    }
    // Events of two tenants, interleaved, written as the old store did.
    let tenants = [testkit::tenant(), testkit::tenant()];
    for position in 1..=20_i64 {
        let tenant = tenants[usize::try_from(position % 2).unwrap()];
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.current_tenant', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO security_events (global_position, event_id, tenant_id, aggregate_type, \
             aggregate_id, version, event_type, schema_version, occurred_at, payload, metadata) \
             VALUES ($1, $2, $3, 'old', $4, $5, 'Numbered', 1, \
             '2026-01-02 03:04:05.678901+00'::timestamptz + $1 * interval '1 second', \
             $6::json, '{}'::json)",
        )
        .bind(position)
        .bind(Uuid::now_v7())
        .bind(tenant.as_uuid())
        .bind(Uuid::from_u128(u128::from(position.unsigned_abs() % 2)))
        .bind((position + 1) / 2)
        .bind(format!(r#"{{"n": {position}, "text": "é\u0000"}}"#))
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    sqlx::query("UPDATE security_log_head SET position = 20")
        .execute(&pool)
        .await
        .unwrap();
    let store = PostgresEventStore::from_pool(pool);
    store.migrate().await.unwrap();
    for tenant in tenants {
        let report = verify_chain(&store, tenant, ChainRange::ALL).await.unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.checked, 10);
    }
    // New appends continue each tenant's chain.
    store
        .append(testkit::append(
            &testkit::stream(tenants[0], "new"),
            ExpectedVersion::Any,
            testkit::events(2),
        ))
        .await
        .unwrap();
    let report = verify_chain(&store, tenants[0], ChainRange::ALL)
        .await
        .unwrap();
    assert!(report.is_intact() && report.checked == 12, "{report:?}");
    store.close().await;
    let _ =
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
            .bind(&name)
            .execute(&admin)
            .await;
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE; DROP ROLE IF EXISTS \"{name}\";"
    ))
    .execute(&admin)
    .await
    .unwrap();
}
