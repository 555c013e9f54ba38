//! Audit queries over a tenant of 1 000 000 indexed events: one user's
//! page, answered from the audit index (memory, and PostgreSQL with
//! feature `postgres-store`), never by scanning the store.
//!
//! The tenant has 1 000 users with 1 000 events each, interleaved (user
//! `i % 1000` at position `i`), a tenth of them authorization denials.
//! Queried: the first page of 100 of one user's events, oldest first; a
//! page of 100 from the middle of that user's history (after a cursor);
//! the newest 100 denials of the tenant (kind and outcome). The
//! PostgreSQL rows are bulk-loaded with one `INSERT … SELECT
//! generate_series` and analysed; the queries go through
//! `PostgresAuditIndex::query` (a tenant-scoped transaction, row-level
//! security on, plus the checkpoint read).
//!
//! `cargo bench -p security-benches --bench audit_query [--features postgres-store]`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    missing_docs,
    reason = "benchmark code"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use security::core::audit::{
    AuditCursor, AuditEntry, AuditIndex, AuditKind, AuditOutcome, AuditQuery, MemoryAuditIndex,
};
use security::core::{Actor, EventId, TenantId, UserId};
use uuid::Uuid;

const EVENTS: u64 = 1_000_000;
const USERS: u64 = 1_000;

fn tenant() -> TenantId {
    TenantId::from_uuid(Uuid::from_u128(0xA0D1_7000))
}

fn user(i: u64) -> UserId {
    UserId::from_uuid(Uuid::from_u128(0xB000_0000 + u128::from(i)))
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The entry at `position` (1-based), the same in memory and in SQL.
fn entry(position: u64) -> AuditEntry {
    let subject = user(position % USERS);
    let denied = position.is_multiple_of(10);
    AuditEntry {
        position,
        event_id: EventId::from_uuid(Uuid::from_u128(u128::from(position))),
        tenant_id: tenant(),
        occurred_at: Utc
            .timestamp_opt(1_700_000_000 + i64::try_from(position).unwrap(), 0)
            .unwrap(),
        kind: if denied {
            AuditKind::Authorization
        } else {
            AuditKind::Authentication
        },
        outcome: if denied {
            AuditOutcome::Denied
        } else {
            AuditOutcome::Success
        },
        event_type: Arc::from(if denied {
            "AccessDenied"
        } else {
            "UserAuthenticated"
        }),
        aggregate_type: Arc::from(if denied { "authz_audit" } else { "user" }),
        aggregate_id: subject.as_uuid(),
        subject: Some(subject),
        actor: Some(Actor::user(subject)),
        username: None,
    }
}

/// The three queries, each expected to return a full page of 100.
fn queries() -> Vec<(&'static str, AuditQuery)> {
    let one = user(421);
    vec![
        (
            "user_first_page",
            AuditQuery::tenant(tenant()).subject(one).limit(100),
        ),
        (
            "user_page_after_cursor",
            AuditQuery::tenant(tenant())
                .subject(one)
                .limit(100)
                .after(AuditCursor(EVENTS / 2)),
        ),
        (
            "tenant_newest_denials",
            AuditQuery::tenant(tenant())
                .kind(AuditKind::Authorization)
                .outcome(AuditOutcome::Denied)
                .newest_first()
                .limit(100),
        ),
    ]
}

fn run_queries(
    c: &mut Criterion,
    group: &str,
    rt: &tokio::runtime::Runtime,
    index: &dyn AuditIndex,
) {
    let mut group = c.benchmark_group(group);
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    for (name, query) in queries() {
        let page = rt.block_on(index.query(&query)).unwrap();
        assert_eq!(page.entries.len(), 100, "{name}: a full page");
        group.bench_function(name, |b| {
            b.iter(|| black_box(rt.block_on(index.query(black_box(&query))).unwrap()));
        });
    }
    group.finish();
}

fn memory(c: &mut Criterion) {
    let rt = current_thread();
    let index = MemoryAuditIndex::new();
    for position in 1..=EVENTS {
        index.insert(entry(position));
    }
    run_queries(c, "audit_query_memory_1m", &rt, &index);
}

#[cfg(feature = "postgres-store")]
mod postgres {
    use std::str::FromStr;

    use security::eventstore::PostgresEventStore;
    use security::eventstore::sqlx::{
        self,
        postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    };
    use uuid::Uuid;

    use super::{EVENTS, USERS, tenant};

    fn database_url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    }

    pub(super) struct Bench {
        admin: PgPool,
        name: String,
        pub(super) store: PostgresEventStore,
    }

    impl Bench {
        /// A role and schema of their own (not a superuser: row-level
        /// security applies to the queries), migrated, with 1 000 000
        /// index rows loaded in one statement.
        pub(super) async fn new() -> Self {
            let admin = PgPoolOptions::new()
                .max_connections(2)
                .connect(&database_url())
                .await
                .expect("PostgreSQL");
            let name = format!(
                "sec_audit_bench_{}",
                &Uuid::now_v7().simple().to_string()[20..]
            );
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
                .max_connections(4)
                .connect_with(options)
                .await
                .unwrap();
            let store = PostgresEventStore::from_pool(pool);
            store.migrate().await.unwrap();
            // The same rows as `super::entry`, generated in SQL.
            let load = format!(
                "INSERT INTO \"{name}\".security_audit_index \
                 (tenant_id, global_position, event_id, occurred_at, kind, outcome, event_type, \
                  aggregate_type, aggregate_id, subject_id, actor) \
                 SELECT $1, p, lpad(to_hex(p), 32, '0')::uuid, \
                   to_timestamp(1700000000 + p), \
                   CASE WHEN p % 10 = 0 THEN 'authorization' ELSE 'authentication' END, \
                   CASE WHEN p % 10 = 0 THEN 'denied' ELSE 'success' END, \
                   CASE WHEN p % 10 = 0 THEN 'AccessDenied' ELSE 'UserAuthenticated' END, \
                   CASE WHEN p % 10 = 0 THEN 'authz_audit' ELSE 'user' END, \
                   s.id, s.id, 'user:' || s.id::text \
                 FROM generate_series(1, $2::bigint) AS p \
                 CROSS JOIN LATERAL \
                   (SELECT lpad(to_hex(2952790016 + (p % $3::bigint)), 32, '0')::uuid AS id) s"
            );
            sqlx::query(&load)
                .bind(tenant().as_uuid())
                .bind(i64::try_from(EVENTS).unwrap())
                .bind(i64::try_from(USERS).unwrap())
                .execute(&admin)
                .await
                .unwrap();
            sqlx::raw_sql(&format!(
                "ANALYZE \"{name}\".security_audit_index; \
                 INSERT INTO \"{name}\".security_projection_checkpoints \
                 (scope, tenant_id, projection, position) \
                 VALUES ('all', '00000000-0000-0000-0000-000000000000', 'audit_index', {EVENTS});"
            ))
            .execute(&admin)
            .await
            .unwrap();
            Self { admin, name, store }
        }

        pub(super) async fn drop_schema(self) {
            self.store.close().await;
            sqlx::raw_sql(&format!(
                "DROP SCHEMA \"{0}\" CASCADE; DROP ROLE \"{0}\";",
                self.name
            ))
            .execute(&self.admin)
            .await
            .unwrap();
        }
    }
}

#[cfg(feature = "postgres-store")]
fn postgres_queries(c: &mut Criterion) {
    let rt = current_thread();
    let bench = rt.block_on(postgres::Bench::new());
    let index = security::eventstore::PostgresAuditIndex::new(&bench.store);
    run_queries(c, "audit_query_postgres_1m", &rt, &index);
    rt.block_on(bench.drop_schema());
}

#[cfg(feature = "postgres-store")]
criterion_group!(benches, memory, postgres_queries);
#[cfg(not(feature = "postgres-store"))]
criterion_group!(benches, memory);
criterion_main!(benches);
