//! The audit index and the personal-data export on the memory store.

use std::sync::Arc;

use security_core::audit::MemoryAuditIndex;
use security_core::{EventStore, InMemoryCheckpoints, ProjectionRunner, Scope};
use security_eventstore::MemoryEventStore;
use security_eventstore::testkit;

#[tokio::test]
async fn the_memory_index_meets_the_audit_index_contract() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let index = MemoryAuditIndex::new();
    let mut runner = ProjectionRunner::new(
        Arc::clone(&store),
        Arc::new(InMemoryCheckpoints::new()),
        index.clone(),
        Scope::All,
    )
    .await
    .expect("runner");
    testkit::audit_index(store, &index, &mut runner).await;
}

#[tokio::test]
async fn a_personal_data_export_on_memory_opens_or_marks_sealed_fields() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let index = MemoryAuditIndex::new();
    let mut runner = ProjectionRunner::new(
        Arc::clone(&store),
        Arc::new(InMemoryCheckpoints::new()),
        index.clone(),
        Scope::All,
    )
    .await
    .expect("runner");
    let keys = security_crypto::MemoryKeyStore::new();
    testkit::personal_data_export(store, &index, &mut runner, &keys).await;
}
