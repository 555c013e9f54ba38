//! Shared test support: a fresh schema and owner role per test on the real
//! PostgreSQL server, dropped afterwards.
//!
//! Tests FAIL (never skip) when a service is missing: the addresses default
//! to the loopback ones when the environment does not name them.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::missing_panics_doc,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support, shared by test binaries that each use part of it"
)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use security_eventstore::{PostgresEventStore, StoreOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

/// Where a service is: the environment variable `var`, or the loopback
/// default `scripts/services.sh` starts it on. Never a reason to skip: a
/// test whose service is missing fails when it connects.
pub fn service_address(var: &str, loopback: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| loopback.to_owned())
}

/// The admin URL: `DATABASE_URL`, or the loopback server.
pub fn database_url() -> String {
    service_address(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// A superuser pool on the test database.
pub async fn admin_pool() -> PgPool {
    let options = PgConnectOptions::from_str(&database_url()).expect("DATABASE_URL");
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .expect("PostgreSQL must be running (scripts/services.sh starts it)")
}

/// A fresh name for a schema or role.
pub fn fresh_name(prefix: &str) -> String {
    format!("{prefix}_{}", &Uuid::now_v7().simple().to_string()[20..])
}

/// One test's schema, owned by one test's role (not a superuser, so
/// row-level security applies to it), and a migrated store on it.
pub struct TestDb {
    pub admin: PgPool,
    pub name: String,
    pub store: PostgresEventStore,
    cleaned: bool,
}

impl TestDb {
    /// A new schema and role, and a migrated store connected as that role.
    pub async fn new() -> Self {
        Self::with_options(StoreOptions::default(), 10).await
    }

    /// The same with store options and a pool ceiling.
    pub async fn with_options(options: StoreOptions, max_connections: u32) -> Self {
        let admin = admin_pool().await;
        let name = fresh_name("sec_test");
        sqlx::raw_sql(&format!(
            "CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
             CREATE SCHEMA \"{name}\" AUTHORIZATION \"{name}\";"
        ))
        .execute(&admin)
        .await
        .expect("create the test role and schema");
        let pool = Self::role_pool(&name, max_connections).await;
        let store = PostgresEventStore::from_pool_with(pool, options);
        store.migrate().await.expect("migrate");
        Self {
            admin,
            name,
            store,
            cleaned: false,
        }
    }

    /// A pool connected as the test's role, with the test's schema.
    pub async fn role_pool(name: &str, max_connections: u32) -> PgPool {
        let options = PgConnectOptions::from_str(&database_url())
            .expect("DATABASE_URL")
            .username(name)
            .options([("search_path", name)]);
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(20))
            .connect_with(options)
            .await
            .expect("connect as the test role")
    }

    /// Another store on the same schema, with its own pool (as another
    /// process would have).
    pub async fn second_store(&self, options: StoreOptions) -> PostgresEventStore {
        PostgresEventStore::from_pool_with(Self::role_pool(&self.name, 6).await, options)
    }

    pub fn store_arc(&self) -> Arc<dyn security_core::EventStore> {
        Arc::new(self.store.clone())
    }

    /// Drops the schema and the role.
    pub async fn cleanup(mut self) {
        self.store.close().await;
        drop_schema_and_role(&self.admin, &self.name).await;
        self.cleaned = true;
    }
}

async fn drop_schema_and_role(admin: &PgPool, name: &str) {
    // Sessions of the role (a second store, a killed relay) must go first.
    let _ =
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
            .bind(name)
            .execute(admin)
            .await;
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE; DROP ROLE IF EXISTS \"{name}\";"
    ))
    .execute(admin)
    .await
    .expect("drop the test schema and role");
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // A failed test: clean up on a thread of our own (this one may be
        // inside a runtime).
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let admin = admin_pool().await;
                drop_schema_and_role(&admin, &name).await;
            });
        })
        .join();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits until something listens on `port`.
pub async fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing listens on port {port} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
