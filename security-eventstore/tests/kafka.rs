//! The Kafka publisher against real brokers (tansu), fed by the PostgreSQL
//! outbox relay, read back by an independent consumer (Python's
//! confluent-kafka): headers and keys, a broker stopped and started during
//! a run of 10 000 events, and a relay killed between publish and mark.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestDb, fresh_name};
use security_core::{
    AppendRequest, EventStore, ExpectedVersion, GlobalQuery, IdempotencyKey, KeyId, PublishError,
    PublishedEvent, Publisher, Scope, SealedSecret, StoredEvent,
};
use security_eventstore::{
    KafkaConfig, KafkaPublisher, OutboxRelay, PostgresEventStore, RelayConfig, StoreOptions,
    kafka_headers, testkit,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;
use uuid::Uuid;

fn bootstrap() -> String {
    common::service_address("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
}

fn fresh_topic() -> String {
    fresh_name("security.test")
}

async fn publisher(bootstrap: &str, topic: &str, timeout: Duration) -> Arc<KafkaPublisher> {
    let mut config = KafkaConfig::new(bootstrap).with_topic(topic);
    config.message_timeout = timeout;
    let publisher = KafkaPublisher::new(config).unwrap();
    publisher
        .create_topic(3)
        .await
        .expect("the Kafka broker must be running (scripts/services.sh starts tansu)");
    Arc::new(publisher)
}

/// One message as the independent consumer read it.
#[derive(Debug, Deserialize)]
struct Record {
    partition: i32,
    offset: i64,
    key: Option<String>,
    headers: HashMap<String, Option<String>>,
    value: String,
}

/// Reads the topic with Python's confluent-kafka until `expected`
/// distinct event ids arrived.
async fn consume(bootstrap: &str, topic: &str, expected: usize) -> Vec<Record> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/kafka_consume.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args([bootstrap, topic, &expected.to_string(), "300"])
        .output()
        .await
        .expect("python3 (scripts/services.sh installs confluent-kafka)");
    assert!(
        out.status.success(),
        "the consumer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Checks what the consumer read against the store: every event arrived;
/// a stream's messages share one partition and, once repeats of an id
/// already seen are dropped, come in version order; every repeat carries
/// the same event id, key and body. Returns how many repeats there were.
fn check_delivery(records: &[Record], stored: &[StoredEvent]) -> usize {
    let by_id: HashMap<String, &StoredEvent> =
        stored.iter().map(|e| (e.event_id.to_string(), e)).collect();
    let mut first_copy: HashMap<String, &Record> = HashMap::new();
    let mut repeats = 0;
    let mut ordered: Vec<&Record> = records.iter().collect();
    ordered.sort_by_key(|r| (r.partition, r.offset));
    let mut per_stream: HashMap<String, (i32, Vec<u64>)> = HashMap::new();
    for record in ordered {
        let id = record.headers[kafka_headers::EVENT_ID].clone().unwrap();
        let event = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("an event the store does not hold: {id}"));
        if let Some(first) = first_copy.get(&id) {
            repeats += 1;
            assert_eq!(
                first.value, record.value,
                "a duplicate carries the same body"
            );
            assert_eq!(first.key, record.key, "a duplicate carries the same key");
            continue;
        }
        first_copy.insert(id, record);
        let key = record.key.clone().unwrap();
        assert_eq!(key, event.stream_id.to_string(), "the key is the stream id");
        let (partition, versions) = per_stream
            .entry(key)
            .or_insert_with(|| (record.partition, Vec::new()));
        assert_eq!(
            *partition, record.partition,
            "a stream stays in one partition"
        );
        versions.push(event.version);
    }
    assert_eq!(
        first_copy.len(),
        stored.len(),
        "every stored event arrived ({} messages read)",
        records.len()
    );
    for (stream, (_, versions)) in per_stream {
        let n = versions.len() as u64;
        assert_eq!(
            versions,
            (1..=n).collect::<Vec<_>>(),
            "{stream}: per-stream order"
        );
    }
    repeats
}

async fn everything(store: &PostgresEventStore) -> Vec<StoredEvent> {
    store
        .read_global(Scope::All, GlobalQuery::after(0, 1_000_000))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_carry_the_stream_key_the_headers_and_no_sealed_field() {
    relay_sealed_events(false).await;
}

/// The same through the pipelined relay, which encodes rows without
/// building `PublishedEvent`s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipelined_relay_strips_sealed_fields_too() {
    relay_sealed_events(true).await;
}

async fn relay_sealed_events(pipelined: bool) {
    let db = TestDb::new().await;
    let tenant = testkit::tenant();
    let s = testkit::stream(tenant, "user");
    let mut events = testkit::events(3);
    events[0].payload = Arc::new(json!({
        "name": "alice",
        "mfa_secret": serde_json::to_value(SealedSecret::new(
            KeyId::from_uuid(Uuid::now_v7()),
            "gAAAAAB-not-for-kafka".into(),
        )).unwrap(),
    }));
    events[1].schema_version = 4;
    let key = IdempotencyKey::new("create-alice").unwrap();
    for e in &mut events {
        let mut metadata = (*e.metadata).clone();
        metadata.idempotency_key = Some(key.clone());
        e.metadata = Arc::new(metadata);
    }
    db.store
        .append(AppendRequest {
            idempotency_key: Some(key.clone()),
            ..testkit::append(&s, ExpectedVersion::NoStream, events)
        })
        .await
        .unwrap();
    let topic = fresh_topic();
    let publisher = publisher(&bootstrap(), &topic, Duration::from_secs(30)).await;
    // Creating it again is fine.
    publisher.create_topic(3).await.unwrap();
    let relay = if pipelined {
        OutboxRelay::pipelined(&db.store, publisher.clone())
    } else {
        OutboxRelay::new(&db.store, publisher.clone())
    };
    assert_eq!(relay.drain().await.unwrap(), 3);

    let stored = everything(&db.store).await;
    let records = consume(&bootstrap(), &topic, stored.len()).await;
    assert_eq!(
        check_delivery(&records, &stored),
        0,
        "no duplicates without failures"
    );
    for record in &records {
        let id = record.headers[kafka_headers::EVENT_ID].clone().unwrap();
        let event = stored
            .iter()
            .find(|e| e.event_id.to_string() == id)
            .unwrap();
        let header = |name: &str| record.headers.get(name).cloned().flatten();
        assert_eq!(header(kafka_headers::TENANT_ID), Some(tenant.to_string()));
        assert_eq!(
            header(kafka_headers::EVENT_TYPE),
            Some("Numbered".to_owned())
        );
        assert_eq!(
            header(kafka_headers::SCHEMA_VERSION),
            Some(event.schema_version.to_string())
        );
        assert_eq!(
            header(kafka_headers::IDEMPOTENCY_KEY),
            Some("create-alice".to_owned())
        );
        let body: StoredEvent = serde_json::from_str(&record.value).unwrap();
        assert_eq!(
            body,
            *event.to_published(),
            "the body is the published event"
        );
        assert!(!record.value.contains("not-for-kafka") && !record.value.contains("$sealed"));
    }
    db.cleanup().await;
}

/// A tansu broker of our own, on a free port, with durable SQLite storage.
struct Tansu {
    dir: PathBuf,
    port: u16,
    child: Option<tokio::process::Child>,
}

fn tansu_binary() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    let installed = PathBuf::from(home).join(".cargo/bin/tansu");
    if installed.exists() {
        return installed;
    }
    PathBuf::from("tansu")
}

impl Tansu {
    async fn start_new() -> Self {
        let dir = std::env::temp_dir().join(fresh_name("sec_tansu"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut tansu = Self {
            dir,
            port: common::free_port(),
            child: None,
        };
        tansu.start().await;
        tansu
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn start(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .unwrap();
        let child = tokio::process::Command::new(tansu_binary())
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("tansu (scripts/services.sh installs it)");
        self.child = Some(child);
        common::wait_for_port(self.port, Duration::from_secs(30)).await;
    }

    /// Stops the broker the way an operator would: SIGTERM, then SIGKILL
    /// if it has not exited within 3 s (tansu 0.6 stops serving on SIGTERM
    /// but does not exit).
    async fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().expect("pid");
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            child.kill().await.unwrap();
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Appends `streams` × `appends` batches of `batch` events from 8 writers,
/// pausing between rounds.
async fn write_events(
    store: &PostgresEventStore,
    (streams, appends, batch): (usize, usize, usize),
    pause: Duration,
    written: Arc<AtomicUsize>,
) {
    let tenant = testkit::tenant();
    let per_writer = streams / 8;
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let written = Arc::clone(&written);
            tokio::spawn(async move {
                let mine: Vec<_> = (0..per_writer)
                    .map(|_| testkit::stream(tenant, "load"))
                    .collect();
                for _ in 0..appends {
                    for s in &mine {
                        store
                            .append(testkit::append(
                                s,
                                ExpectedVersion::Any,
                                testkit::events(batch),
                            ))
                            .await
                            .unwrap();
                        written.fetch_add(batch, Ordering::SeqCst);
                    }
                    tokio::time::sleep(pause).await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
}

async fn wait_until_drained(relay: &OutboxRelay, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while relay.pending().await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox did not drain in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_stopped_mid_run_loses_nothing_of_ten_thousand_events() {
    let db = TestDb::with_options(StoreOptions::default(), 16).await;
    let mut broker = Tansu::start_new().await;
    let topic = fresh_topic();
    // A short message timeout, so the outage reaches the relay (which
    // retries the batch) instead of only librdkafka's own retries.
    let publisher = publisher(&broker.bootstrap(), &topic, Duration::from_secs(3)).await;
    // The pipelined relay: up to 4 batches in flight when the broker goes.
    let relay = Arc::new(
        OutboxRelay::pipelined(&db.store, publisher.clone()).with_config(RelayConfig {
            batch_size: 1000,
            poll_interval: Duration::from_millis(100),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_in_flight: 4,
        }),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = {
        let relay = Arc::clone(&relay);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            relay
                .run_until(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        })
    };
    let written = Arc::new(AtomicUsize::new(0));
    // 40 streams × 25 appends × 10 events = 10 000 events.
    let writing = {
        let store = db.store.clone();
        let written = Arc::clone(&written);
        tokio::spawn(async move {
            write_events(&store, (40, 25, 10), Duration::from_millis(300), written).await;
        })
    };
    while written.load(Ordering::SeqCst) < 3_000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.stop().await;
    let during_outage = written.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    broker.start().await;
    writing.await.unwrap();
    assert!(
        written.load(Ordering::SeqCst) > during_outage,
        "appends went on while the broker was down"
    );
    wait_until_drained(&relay, Duration::from_secs(120)).await;
    stop.send_replace(true);
    let stats = running.await.unwrap();
    assert!(
        stats.failures > 0,
        "the outage reached the relay: {stats:?}"
    );

    let stored = everything(&db.store).await;
    assert_eq!(stored.len(), 10_000);
    let records = consume(&broker.bootstrap(), &topic, stored.len()).await;
    let repeats = check_delivery(&records, &stored);
    eprintln!(
        "broker outage: {} messages for {} events ({repeats} repeats), relay {stats:?}",
        records.len(),
        stored.len()
    );
    db.cleanup().await;
}

/// Passes batches to Kafka; on the `crash_on`-th call, once Kafka has
/// acknowledged the batch, it tells the test and never returns, so the
/// relay is killed between publish and mark.
#[derive(Debug)]
struct CrashAfterPublish {
    inner: Arc<KafkaPublisher>,
    /// The size of every batch handed over, in order.
    sizes: Mutex<Vec<usize>>,
    crash_on: usize,
    published: Arc<Notify>,
}

#[security_core::async_trait]
impl Publisher for CrashAfterPublish {
    async fn publish(&self, events: &[PublishedEvent]) -> Result<(), PublishError> {
        self.inner.publish(events).await?;
        let calls = {
            let mut sizes = self.sizes.lock().unwrap();
            sizes.push(events.len());
            sizes.len()
        };
        if calls == self.crash_on {
            self.published.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_killed_between_publish_and_mark_loses_nothing() {
    let db = TestDb::new().await;
    let written = Arc::new(AtomicUsize::new(0));
    // 16 streams × 25 appends × 5 events = 2 000 events, all stored first.
    write_events(&db.store, (16, 25, 5), Duration::ZERO, written).await;
    let topic = fresh_topic();
    let kafka = publisher(&bootstrap(), &topic, Duration::from_secs(30)).await;
    let config = RelayConfig {
        batch_size: 300,
        ..RelayConfig::default()
    };

    // The doomed relay runs in "another process": its own pool, killed
    // (task dropped, connections closed) once its third batch is in Kafka.
    let doomed_store = db.second_store(StoreOptions::default()).await;
    let published = Arc::new(Notify::new());
    let crashing = Arc::new(CrashAfterPublish {
        inner: Arc::clone(&kafka),
        sizes: Mutex::new(Vec::new()),
        crash_on: 3,
        published: Arc::clone(&published),
    });
    let doomed = OutboxRelay::new(&doomed_store, Arc::clone(&crashing) as Arc<dyn Publisher>)
        .with_config(config);
    let task = tokio::spawn(async move { doomed.drain().await });
    tokio::time::timeout(Duration::from_secs(60), published.notified())
        .await
        .expect("the third batch reached Kafka");
    task.abort();
    let _ = task.await;
    doomed_store.close().await;

    // Two batches were marked done; the third is in Kafka but not marked.
    // (A run's first reads are smaller than the batch size, so the sizes
    // come from what the publisher was handed.)
    let sizes = crashing.sizes.lock().unwrap().clone();
    assert_eq!(sizes.len(), 3, "the relay stopped at its third batch");
    assert!(sizes.iter().all(|&size| size > 0 && size <= 300));
    let marked = sizes[0] + sizes[1];
    let relay = OutboxRelay::new(&db.store, kafka).with_config(config);
    assert_eq!(
        relay.pending().await.unwrap(),
        (2_000 - marked) as u64,
        "the third batch is still pending"
    );
    assert_eq!(
        relay.drain().await.unwrap(),
        (2_000 - marked) as u64,
        "a new relay publishes the rest"
    );

    let stored = everything(&db.store).await;
    let records = consume(&bootstrap(), &topic, stored.len()).await;
    let repeats = check_delivery(&records, &stored);
    assert_eq!(
        repeats, sizes[2],
        "exactly the unmarked batch went out twice"
    );
    let ids: HashSet<String> = records
        .iter()
        .map(|r| r.headers[kafka_headers::EVENT_ID].clone().unwrap())
        .collect();
    assert_eq!(ids.len(), 2_000);
    db.cleanup().await;
}
