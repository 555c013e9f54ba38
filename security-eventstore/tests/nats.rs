//! The NATS JetStream publisher against the real server (NATS_URL, or the
//! loopback one), fed by the PostgreSQL outbox relay.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

mod common;

use std::sync::Arc;

use common::TestDb;
use security_core::{
    EventStore, ExpectedVersion, GlobalQuery, KeyId, Publisher, Scope, SealedSecret, StoredEvent,
};
use security_eventstore::{NatsConfig, NatsPublisher, OutboxRelay, testkit};
use serde_json::json;
use uuid::Uuid;

fn config() -> NatsConfig {
    let suffix = &Uuid::now_v7().simple().to_string()[20..];
    NatsConfig {
        stream: format!("SECURITY_TEST_{suffix}"),
        subject_prefix: format!("sectest{suffix}"),
        ..NatsConfig::from_env()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_publishes_to_jetstream_with_subjects_headers_and_dedupe() {
    let db = TestDb::new().await;
    let tenant = testkit::tenant();
    let user = testkit::stream(tenant, "user");
    let role = testkit::stream(tenant, "role");
    let mut events = testkit::events(3);
    events[0].event_type = "UserCreated".into();
    events[0].payload = Arc::new(json!({
        "name": "alice",
        "password_hash": serde_json::to_value(SealedSecret::new(
            KeyId::from_uuid(Uuid::now_v7()),
            "gAAAAAB-never-on-the-wire".into(),
        )).unwrap(),
    }));
    events[1].event_type = "Odd.Type Name".into();
    db.store
        .append(testkit::append(&user, ExpectedVersion::NoStream, events))
        .await
        .unwrap();
    db.store
        .append(testkit::append(
            &role,
            ExpectedVersion::NoStream,
            testkit::events(2),
        ))
        .await
        .unwrap();

    let config = config();
    let publisher = Arc::new(
        NatsPublisher::connect(config.clone())
            .await
            .expect("NATS with JetStream must be running (scripts/services.sh starts it)"),
    );
    // Created if missing: connecting again finds it.
    NatsPublisher::connect(config.clone()).await.unwrap();
    let relay = OutboxRelay::new(&db.store, publisher.clone());
    assert_eq!(relay.drain().await.unwrap(), 5);

    let stored = db
        .store
        .read_global(Scope::All, GlobalQuery::after(0, 100))
        .await
        .unwrap();
    let js = publisher.jetstream();
    let mut stream = js.get_stream(&config.stream).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 5);
    for (seq, event) in (1..).zip(&stored) {
        let message = stream.get_raw_message(seq).await.unwrap();
        assert_eq!(message.subject.as_str(), publisher.subject(event));
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(header("Nats-Msg-Id"), Some(event.event_id.to_string()));
        assert_eq!(header("Security-Tenant-Id"), Some(tenant.to_string()));
        assert_eq!(
            header("Security-Event-Type"),
            Some(event.event_type.to_string())
        );
        assert_eq!(header("Security-Schema-Version"), Some("1".to_owned()));
        let body: StoredEvent = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(body, *event.to_published());
    }
    let first = stream.get_raw_message(1).await.unwrap();
    let text = String::from_utf8(first.payload.to_vec()).unwrap();
    assert!(text.contains("alice") && !text.contains("never-on-the-wire"));
    assert_eq!(
        publisher.subject(&stored[0]),
        format!("{}.{tenant}.user.UserCreated", config.subject_prefix)
    );
    assert_eq!(
        publisher.subject(&stored[1]),
        format!("{}.{tenant}.user.Odd%2EType%20Name", config.subject_prefix)
    );

    // Published again (a relay that died before marking): the server
    // drops every duplicate by its Nats-Msg-Id.
    let again: Vec<_> = stored.iter().map(StoredEvent::to_published).collect();
    publisher.publish(&again).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        5,
        "duplicates dropped"
    );

    js.delete_stream(&config.stream).await.unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_connect_error() {
    let port = common::free_port();
    let error = NatsPublisher::connect(NatsConfig {
        url: format!("nats://127.0.0.1:{port}"),
        ..config()
    })
    .await
    .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(error.to_string(), "could not connect to nats");
}
