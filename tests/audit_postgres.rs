//! End to end on the real PostgreSQL: a tenant's trail is anchored,
//! exported, and verified offline by the `audit` example program with the
//! operator's public key (nkey and PEM); a damaged file fails naming its
//! line; a chain rewritten in the database, hashes and head included, fails
//! on its anchors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use security::Security;
use security::core::chain::{ChainHash, ChainQuery};
use security::core::{AccountClaims, Actor, EventStore, NewPolicy, Request};
use security::crypto::Ed25519PublicKey;
use security::eventstore::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use security::eventstore::{PostgresEventStore, audit};
use uuid::Uuid;

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The `audit` example, built if `cargo test` did not build it.
fn audit_program() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let program = profile_dir.join("examples").join("audit");
    if !program.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "audit"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the audit example failed");
    }
    program
}

fn run_verify(file: &std::path::Path, key: &str) -> (i32, String) {
    let output = Command::new(audit_program())
        .arg("verify")
        .arg(file)
        .args(["--operator-key", key])
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_from_postgres_verifies_offline_and_tampering_fails_it() {
    // A schema and a non-superuser role of our own.
    let admin_pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(PgConnectOptions::from_str(&database_url()).unwrap())
        .await
        .expect("PostgreSQL must be running (scripts/services.sh starts it)");
    let name = format!("sec_audit_{}", &Uuid::now_v7().simple().to_string()[20..]);
    security::eventstore::sqlx::raw_sql(&format!(
        "CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
         CREATE SCHEMA \"{name}\" AUTHORIZATION \"{name}\";"
    ))
    .execute(&admin_pool)
    .await
    .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(
            PgConnectOptions::from_str(&database_url())
                .unwrap()
                .username(&name)
                .options([("search_path", name.as_str())]),
        )
        .await
        .unwrap();
    let store = PostgresEventStore::from_pool(pool);
    store.migrate().await.unwrap();

    let security = Security::builder()
        .event_store(Arc::new(store.clone()))
        .build()
        .unwrap();
    let admin = security.admin();
    let request = Request::by(Actor::service("audit-test"));
    let operator = admin.create_operator(&request, "Operator").await.unwrap();
    let account = admin
        .create_account(&request, operator, "Bank", AccountClaims::default())
        .await
        .unwrap();
    let tenant = account.tenant();
    let policy = |name: &'static str| {
        let admin = admin.clone();
        let request = request.clone();
        async move {
            admin
                .create_policy(
                    &request,
                    tenant,
                    NewPolicy::new(name).description("audit test"),
                )
                .await
                .unwrap();
        }
    };
    policy("payments").await;
    policy("ledger").await;
    let anchoring = security.spawn_chain_anchoring(operator, Duration::from_millis(50));
    policy("reports").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    policy("archive").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    anchoring.stop().await;

    // The anchors are events of the system tenant, in the outbox like any.
    let outboxed: i64 = security::eventstore::sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{name}\".security_outbox o \
         JOIN \"{name}\".security_events e USING (global_position) \
         WHERE e.event_type = 'ChainAnchored' AND e.tenant_id = $1"
    ))
    .bind(uuid::Uuid::nil())
    .fetch_one(&admin_pool)
    .await
    .unwrap();
    assert!(
        outboxed >= 2,
        "anchors of the account and of the system tenant: {outboxed}"
    );

    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.jsonl");
    let export = |path: PathBuf| {
        let store = store.clone();
        async move {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
            audit::export_tenant(&store, tenant, operator, chrono::Utc::now(), &mut out)
                .await
                .unwrap()
        }
    };
    let summary = export(file.clone()).await;
    assert_eq!(summary.events, 5, "the account and its four policies");
    assert!(summary.anchors >= 1);

    let key = admin
        .operator(operator)
        .await
        .unwrap()
        .active_key()
        .unwrap()
        .public_key
        .encoded
        .clone();
    let (code, out) = run_verify(&file, &key);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("chain: intact") && out.ends_with("VALID\n"),
        "{out}"
    );
    // The same key as PEM, from a file.
    let pem = Ed25519PublicKey::from_nkey(&key).unwrap().to_pem().unwrap();
    let pem_file = dir.join("operator.pem");
    std::fs::write(&pem_file, pem).unwrap();
    let (code, out) = run_verify(&file, pem_file.to_str().unwrap());
    assert_eq!(code, 0, "{out}");

    // One payload changed in the file: the verifier names its line.
    let text = std::fs::read_to_string(&file).unwrap();
    let (index, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("\"type\":\"event\"") && l.contains("ledger"))
        .unwrap();
    let damaged: String = text
        .lines()
        .map(|l| {
            if l == line {
                l.replace("ledger", "1edger")
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    let damaged_file = dir.join("damaged.jsonl");
    std::fs::write(&damaged_file, damaged).unwrap();
    let (code, out) = run_verify(&damaged_file, &key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("chain: BROKEN at line {}", index + 1)) && out.contains("Altered"),
        "{out}"
    );

    // The whole chain rewritten in the database by a superuser, hashes and
    // recorded head recomputed: the chain verifies, the anchors do not.
    let chain = store
        .read_chain(tenant, ChainQuery::after(0, usize::MAX))
        .await
        .unwrap();
    let mut prev = ChainHash::GENESIS;
    for record in &chain {
        let mut rewritten = record.clone();
        rewritten.payload = Arc::from(record.payload.replace("audit test", "rewritten"));
        rewritten.prev_hash = prev;
        rewritten.hash = rewritten.computed_hash();
        prev = rewritten.hash;
        security::eventstore::sqlx::query(&format!(
            "UPDATE \"{name}\".security_events SET payload = $1::json, prev_hash = $2, hash = $3 \
             WHERE global_position = $4"
        ))
        .bind(&*rewritten.payload)
        .bind(rewritten.prev_hash.as_bytes().to_vec())
        .bind(rewritten.hash.as_bytes().to_vec())
        .bind(i64::try_from(record.global_position).unwrap())
        .execute(&admin_pool)
        .await
        .unwrap();
    }
    security::eventstore::sqlx::query(&format!(
        "UPDATE \"{name}\".security_chain_heads SET hash = $1 WHERE tenant_id = $2"
    ))
    .bind(prev.as_bytes().to_vec())
    .bind(tenant.as_uuid())
    .execute(&admin_pool)
    .await
    .unwrap();
    let rewritten_file = dir.join("rewritten.jsonl");
    export(rewritten_file.clone()).await;
    let (code, out) = run_verify(&rewritten_file, &key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("chain: intact") && out.contains("INVALID (NotOnChain)"),
        "{out}"
    );

    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = security::eventstore::sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
    )
    .bind(&name)
    .execute(&admin_pool)
    .await;
    security::eventstore::sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE; DROP ROLE IF EXISTS \"{name}\";"
    ))
    .execute(&admin_pool)
    .await
    .unwrap();
}
