//! The memory store against the conformance kit, and the memory publisher.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

use std::sync::Arc;

use security_core::{EventStore, ExpectedVersion, Publisher, Scope, StoredEvent};
use security_eventstore::{MemoryEventStore, MemoryPublisher, testkit};

fn fresh() -> Arc<dyn EventStore> {
    Arc::new(MemoryEventStore::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_meets_the_whole_contract() {
    testkit::run_all(|| async { fresh() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_clause_also_passes_on_a_shared_store() {
    // Clauses must not depend on an empty store: run them all on one.
    let store = fresh();
    testkit::run_all(|| {
        let store = Arc::clone(&store);
        async move { store }
    })
    .await;
}

#[tokio::test]
async fn publisher_keeps_order_passes_live_and_can_simulate_an_outage() {
    let store = MemoryEventStore::new();
    let s = testkit::stream(testkit::tenant(), "pub");
    store
        .append(testkit::append(
            &s,
            ExpectedVersion::NoStream,
            testkit::events(3),
        ))
        .await
        .unwrap();
    let stored = store
        .read_global(Scope::All, security_core::GlobalQuery::after(0, 10))
        .await
        .unwrap();
    let published: Vec<_> = stored.iter().map(StoredEvent::to_published).collect();

    let publisher = MemoryPublisher::new();
    let mut live = publisher.receiver();
    publisher.fail_next(1);
    assert!(
        publisher.publish(&published).await.is_err(),
        "the simulated outage fails the call"
    );
    assert!(
        publisher.published().is_empty(),
        "a failed publish keeps nothing"
    );
    publisher.publish(&published).await.unwrap();
    let ids: Vec<_> = publisher.published().iter().map(|e| e.event_id).collect();
    assert_eq!(ids, stored.iter().map(|e| e.event_id).collect::<Vec<_>>());
    assert_eq!(live.recv().await.unwrap().event_id, stored[0].event_id);
    publisher.clear();
    assert!(publisher.published().is_empty());
}

#[test]
fn len_counts_events() {
    let store = MemoryEventStore::default();
    assert!(store.is_empty());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let s = testkit::stream(testkit::tenant(), "len");
    rt.block_on(store.append(testkit::append(
        &s,
        ExpectedVersion::Any,
        testkit::events(4),
    )))
    .unwrap();
    assert_eq!(store.len(), 4);
}
