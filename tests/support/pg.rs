//! A fresh schema and owner role per test on the real PostgreSQL server
//! (the loopback one unless `DATABASE_URL` names another), dropped after.
//! Tests fail, never skip, when the server is missing.

use std::str::FromStr;
use std::time::Duration;

use security::eventstore::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use security::eventstore::sqlx::{self};
use uuid::Uuid;

/// The admin URL.
pub(crate) fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// One test's schema and role (not a superuser: row-level security applies).
pub(crate) struct Schema {
    pub(crate) admin: PgPool,
    pub(crate) name: String,
}

impl Schema {
    pub(crate) async fn new() -> Self {
        let admin = PgPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(PgConnectOptions::from_str(&database_url()).unwrap())
            .await
            .expect("PostgreSQL must be running (scripts/services.sh starts it)");
        let name = format!("sec_root_{}", &Uuid::now_v7().simple().to_string()[20..]);
        sqlx::raw_sql(&format!(
            "CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
             CREATE SCHEMA \"{name}\" AUTHORIZATION \"{name}\";"
        ))
        .execute(&admin)
        .await
        .unwrap();
        Self { admin, name }
    }

    /// Connection options for the test's role and schema, on `port`.
    pub(crate) fn options(&self, port: u16) -> PgConnectOptions {
        PgConnectOptions::from_str(&database_url())
            .unwrap()
            .port(port)
            .username(&self.name)
            .options([("search_path", self.name.as_str())])
    }

    /// A pool of the test's role on `port` (5432, or a proxy's).
    pub(crate) async fn pool(&self, port: u16, acquire_timeout: Duration) -> PgPool {
        PgPoolOptions::new()
            .max_connections(6)
            .acquire_timeout(acquire_timeout)
            .connect_with(self.options(port))
            .await
            .unwrap()
    }

    pub(crate) fn port() -> u16 {
        PgConnectOptions::from_str(&database_url())
            .unwrap()
            .get_port()
    }

    pub(crate) async fn drop(self) {
        let _ = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
        )
        .bind(&self.name)
        .execute(&self.admin)
        .await;
        sqlx::raw_sql(&format!(
            "DROP SCHEMA IF EXISTS \"{0}\" CASCADE; DROP ROLE IF EXISTS \"{0}\";",
            self.name
        ))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}
