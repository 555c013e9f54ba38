//! The one-call setup on PostgreSQL: the outbox is written only when a
//! relay is configured, and then the relay empties it into Kafka.
//!
//! Needs PostgreSQL (`DATABASE_URL`) and, with the `kafka` feature, the
//! Kafka-protocol broker (`KAFKA_BOOTSTRAP_SERVERS`); fails, never skips,
//! without them.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, in its helpers too"
)]

use std::collections::HashMap;
use std::time::Duration;

use secrecy::ExposeSecret;

use security::SecurityServices;
use security::core::{AccountClaims, Request};
use security::eventstore::sqlx;
use security::setup::Settings;

fn base_vars(schema: &str) -> HashMap<&'static str, String> {
    let url = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL names the PostgreSQL server of the tests");
    let master = security::crypto::MasterKey::generate().expect("a master key");
    let mut vars = HashMap::new();
    vars.insert("DATABASE_URL", url);
    vars.insert("DATABASE_SCHEMA", schema.to_owned());
    vars.insert("DATABASE_POOL_SIZE", "2".to_owned());
    vars.insert("DATABASE_MAX_OVERFLOW", "2".to_owned());
    vars.insert(
        "ENCRYPTION_KEY",
        master.to_base64().expose_secret().to_owned(),
    );
    vars
}

/// Rows left in the schema's outbox, and events stored.
async fn counts(schema: &str) -> (i64, i64) {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let pool = sqlx::PgPool::connect(&url).await.expect("a connection");
    let outbox: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".security_outbox"
    ))
    .fetch_one(&pool)
    .await
    .expect("the outbox");
    let events: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".security_events"
    ))
    .fetch_one(&pool)
    .await
    .expect("the events");
    pool.close().await;
    (outbox, events)
}

async fn write_some_events(services: &SecurityServices) {
    let admin = services.security().admin();
    let operator = admin
        .create_operator(&Request::default(), "ops")
        .await
        .expect("an operator");
    admin
        .create_account(
            &Request::default(),
            operator,
            "acme",
            AccountClaims::default(),
        )
        .await
        .expect("an account");
}

fn schema(name: &str) -> String {
    format!("e2e_{name}_{}", uuid::Uuid::now_v7().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_relay_no_outbox_row_is_written() {
    let schema = schema("no_relay");
    let vars = base_vars(&schema);
    let settings = Settings::from_lookup(|n| vars.get(n).cloned()).expect("valid settings");
    let services = SecurityServices::start(settings).await.expect("the setup");
    write_some_events(&services).await;
    let (outbox, events) = counts(&schema).await;
    assert!(events > 0);
    assert_eq!(outbox, 0, "nothing would ever remove these rows");
    assert!(services.stopped_tasks().is_empty());
    services.shutdown().await;
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kafka_configured_the_relay_empties_the_outbox() {
    let schema = schema("kafka_relay");
    let mut vars = base_vars(&schema);
    vars.insert(
        "KAFKA_BOOTSTRAP_SERVERS",
        std::env::var("KAFKA_BOOTSTRAP_SERVERS")
            .expect("KAFKA_BOOTSTRAP_SERVERS names the broker of the tests"),
    );
    vars.insert("KAFKA_TOPIC", format!("e2e.{schema}"));
    let settings = Settings::from_lookup(|n| vars.get(n).cloned()).expect("valid settings");
    assert!(matches!(
        settings.relay,
        security::setup::RelaySettings::Kafka(_)
    ));
    let services = SecurityServices::start(settings).await.expect("the setup");
    write_some_events(&services).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (outbox, events) = counts(&schema).await;
        assert!(events > 0);
        if outbox == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay left {outbox} rows in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(services.stopped_tasks().is_empty());
    services.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_over_the_memory_store_is_refused() {
    let vars: HashMap<&str, &str> = HashMap::from([("OUTBOX_RELAY", "kafka")]);
    match Settings::from_lookup(|n| vars.get(n).map(|v| (*v).to_owned())) {
        // Without the kafka feature the setting itself is refused.
        Err(e) => assert!(e.variable().is_some(), "{e}"),
        Ok(settings) => {
            let err = SecurityServices::start(settings)
                .await
                .expect_err("a relay needs the PostgreSQL outbox");
            assert!(err.variable().is_some(), "{err}");
        }
    }
}
