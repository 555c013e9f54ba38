//! The quickstart's admin flow on PostgreSQL, with every event flowing to
//! Kafka through the transactional outbox and its relay, and the keys in
//! PostgreSQL too (envelope-encrypted).
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//! KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \
//! cargo run --example postgres_kafka --features postgres,kafka
//! ```
//!
//! Configured from the environment: `DATABASE_URL`, `DATABASE_POOL_SIZE`,
//! `DATABASE_MAX_OVERFLOW`; `KAFKA_BOOTSTRAP_SERVERS`,
//! `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_MECHANISM`,
//! `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`, `KAFKA_TOPIC`;
//! `ENCRYPTION_KEY` (the master key of the key store). Where the database
//! or the broker is not named, the loopback ones are used. The tables go
//! to the schema `security_quickstart`.

#![allow(clippy::print_stdout, reason = "an example reports to its user")]

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use security::core::{
    AccountClaims, AdminService, Credential, EventStore, GlobalQuery, KeyOwner, KeyPurpose,
    KeySpec, KeyStore, NewPolicy, NewUser, Permissions, Repository, Request, Scope,
    SubjectPermissions,
};
use security::crypto::{EnvelopeKeyStore, MasterKey, SystemClock, UuidV7Ids};
use security::eventstore::{
    KafkaConfig, KafkaPublisher, OutboxRelay, PostgresConfig, PostgresEventStore,
    PostgresKeyRecordStore,
};
use uuid::Uuid;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    // The store: PostgreSQL, migrated, in its own schema.
    let database = match PostgresConfig::from_env() {
        Ok(config) => config,
        Err(_) => PostgresConfig::new("postgres://postgres@127.0.0.1:5432/postgres"),
    };
    let store = PostgresEventStore::connect(database.with_schema("security_quickstart")?).await?;
    store.migrate().await?;

    // The publisher: Kafka, through the outbox relay.
    let kafka_config = match KafkaConfig::from_env() {
        Ok(config) => config,
        Err(_) => KafkaConfig::new("127.0.0.1:9092"),
    };
    let kafka = Arc::new(KafkaPublisher::new(kafka_config)?);
    kafka.create_topic(3).await?;
    let relay = OutboxRelay::new(&store, kafka.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay_task = tokio::spawn(async move {
        relay
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });

    // The key store: private keys envelope-encrypted, in PostgreSQL.
    let master = if let Ok(master) = MasterKey::from_env() {
        master
    } else {
        println!("ENCRYPTION_KEY is not set: using a throwaway master key");
        MasterKey::generate()?
    };
    let keys = Arc::new(EnvelopeKeyStore::new(
        PostgresKeyRecordStore::new(&store),
        master,
        Arc::new(SystemClock::new()),
        Arc::new(UuidV7Ids::new()),
    )?);

    // The admin API over the store. No publisher on the repository: the
    // outbox publishes what the appends commit.
    let repo = Repository::new(Arc::new(store.clone()), Arc::new(UuidV7Ids::new()));
    let admin = AdminService::new(repo, Arc::new(SystemClock::new()), keys.clone());

    let request = Request::default();
    let operator = admin.create_operator(&request, "ops").await?;
    let account = admin
        .create_account(&request, operator, "acme", AccountClaims::default())
        .await?;
    let tenant = account.tenant();
    let permissions = Permissions {
        publish: SubjectPermissions::from_patterns(["orders.>"], ["orders.delete"])?,
        ..Permissions::default()
    };
    let policy = admin
        .create_policy(
            &request,
            tenant,
            NewPolicy::new("orders")
                .description("the order service")
                .permissions(permissions),
        )
        .await?;
    let identity = keys
        .create_key(KeySpec::new(
            KeyOwner::new(tenant, Uuid::now_v7()),
            KeyPurpose::UserIdentity,
        ))
        .await?;
    let user = admin
        .create_user(
            &request,
            account,
            NewUser {
                username: "alice".into(),
                credential: Credential::NatsIdentity {
                    key: identity
                        .public_key
                        .ok_or("an Ed25519 key has a public half")?,
                },
                metadata: BTreeMap::new(),
                must_change_password: false,
            },
        )
        .await?;
    admin.assign_policy(&request, tenant, user, policy).await?;
    admin
        .lock_user(&request, tenant, user, "suspicious activity")
        .await?;
    let alice = admin.unlock_user(&request, tenant, user).await?;
    println!(
        "user alice: {:?}, policies {:?}",
        alice.status, alice.policies
    );

    let events = store
        .read_global(Scope::Tenant(tenant), GlobalQuery::after(0, 1_000))
        .await?;
    println!("tenant {tenant}: {} events stored", events.len());
    for event in &events {
        println!(
            "  #{:<6} {:<24} {}",
            event.global_position, event.event_type, event.stream_id
        );
    }

    // Wait for the relay to empty the outbox, then stop it.
    let pending = OutboxRelay::new(&store, kafka.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while pending.pending().await? > 0 {
        if tokio::time::Instant::now() > deadline {
            return Err("the outbox relay did not drain the outbox in 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    let stats = relay_task.await?;
    println!(
        "relay: {} events published to Kafka topic {} in {} batches",
        stats.published,
        kafka.topic(),
        stats.batches
    );
    store.close().await;
    Ok(())
}
