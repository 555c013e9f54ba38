//! What row-level security does, and does not do, against someone who holds
//! the application's database credential (a role that owns nothing, with
//! the table privileges the application needs). Row-level security keeps
//! honest code in its tenant; it is not an authentication boundary: the
//! tenant is a session variable that any holder of the credential may set.
//! See docs/DESIGN.md, "Threat model".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

mod common;

use security_core::{EventStore, ExpectedVersion};
use security_eventstore::testkit;
use uuid::Uuid;

use common::{TestDb, fresh_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_application_credential_reaches_any_tenant_but_cannot_rewrite_history() {
    let db = TestDb::new().await;
    let (a, b) = (testkit::tenant(), testkit::tenant());
    for tenant in [a, b] {
        db.store
            .append(testkit::append(
                &testkit::stream(tenant, "leak"),
                ExpectedVersion::NoStream,
                testkit::events(2),
            ))
            .await
            .unwrap();
    }
    // The application's credential: owns nothing, may do what the
    // application does on every table.
    let leaked = fresh_name("sec_leaked");
    let name = &db.name;
    sqlx::raw_sql(&format!(
        "CREATE ROLE \"{leaked}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
         GRANT USAGE ON SCHEMA \"{name}\" TO \"{leaked}\"; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"{name}\" TO \"{leaked}\";"
    ))
    .execute(&db.admin)
    .await
    .unwrap();
    let pool = {
        use std::str::FromStr as _;
        let options = sqlx::postgres::PgConnectOptions::from_str(&common::database_url())
            .unwrap()
            .username(&leaked)
            .options([("search_path", name.as_str())]);
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap()
    };
    let mut conn = pool.acquire().await.unwrap();
    let as_tenant = |tenant: security_core::TenantId| {
        sqlx::query("SELECT set_config('app.current_tenant', $1, false)").bind(tenant.to_string())
    };
    let events_seen = "SELECT DISTINCT tenant_id FROM security_events ORDER BY 1";

    // The boundary: whoever holds the credential names the tenant, and
    // reads, then appends to, any tenant it can name.
    for tenant in [a, b] {
        as_tenant(tenant).execute(&mut *conn).await.unwrap();
        let seen: Vec<Uuid> = sqlx::query_scalar(events_seen)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        assert_eq!(seen, vec![tenant.as_uuid()]);
    }
    let forged = sqlx::query(
        "INSERT INTO security_events (global_position, event_id, tenant_id, aggregate_type, \
         aggregate_id, version, event_type, schema_version, occurred_at, payload, metadata, prev_hash, hash) \
         VALUES (999999, $1, $2, 'leak', $3, 1, 'Forged', 1, now(), '{}', '{}', \
           decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))",
    )
    .bind(Uuid::now_v7())
    .bind(b.as_uuid())
    .bind(Uuid::now_v7())
    .execute(&mut *conn)
    .await
    .unwrap();
    assert_eq!(
        forged.rows_affected(),
        1,
        "row-level security lets the credential append to the tenant it names"
    );

    // What still holds: no read across tenants at once (that mode is for
    // the owner's role), and no change or removal of any event, in any
    // tenant it names.
    sqlx::query("SELECT set_config('app.all_tenants', 'on', false)")
        .execute(&mut *conn)
        .await
        .unwrap();
    let seen: Vec<Uuid> = sqlx::query_scalar(events_seen)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(seen, vec![b.as_uuid()], "still one tenant at a time");
    for tenant in [a, b] {
        as_tenant(tenant).execute(&mut *conn).await.unwrap();
        for statement in [
            "UPDATE security_events SET event_type = 'Tampered'",
            "DELETE FROM security_events",
        ] {
            let done = sqlx::query(statement).execute(&mut *conn).await.unwrap();
            assert_eq!(done.rows_affected(), 0, "{statement}");
        }
    }
    drop(conn);
    pool.close().await;
    // The application's own reads see the forged event too: nothing in
    // the database tells it apart (the hash chain does).
    let stored = db
        .store
        .read_global(
            security_core::Scope::Tenant(b),
            security_core::GlobalQuery {
                after: 0,
                until: security_core::Until::End,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert!(stored.iter().any(|e| &*e.event_type == "Forged"));
    // The chain tells it apart: the forged row is not linked to B's head.
    let report =
        security_core::chain::verify_chain(&db.store, b, security_core::chain::ChainRange::ALL)
            .await
            .unwrap();
    assert!(!report.is_intact(), "the forged row breaks B's chain");
    let report =
        security_core::chain::verify_chain(&db.store, a, security_core::chain::ChainRange::ALL)
            .await
            .unwrap();
    assert!(report.is_intact(), "A's chain is untouched");
    sqlx::raw_sql(&format!(
        "REVOKE ALL ON ALL TABLES IN SCHEMA \"{name}\" FROM \"{leaked}\"; \
         REVOKE USAGE ON SCHEMA \"{name}\" FROM \"{leaked}\"; DROP ROLE \"{leaked}\";"
    ))
    .execute(&db.admin)
    .await
    .unwrap();
    db.cleanup().await;
}
