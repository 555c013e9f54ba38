//! The audit index and the personal-data export on PostgreSQL (a fresh
//! schema per test).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;

use common::TestDb;
use security_core::EventStore;
use security_eventstore::{PostgresAuditIndex, testkit};

#[tokio::test]
async fn the_postgres_index_meets_the_audit_index_contract() {
    let db = TestDb::new().await;
    let store: Arc<dyn EventStore> = db.store_arc();
    let index = PostgresAuditIndex::new(&db.store);
    let mut runner = index.runner();
    testkit::audit_index(store, &index, &mut runner).await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_personal_data_export_on_postgres_opens_or_marks_sealed_fields() {
    let db = TestDb::new().await;
    let store: Arc<dyn EventStore> = db.store_arc();
    let index = PostgresAuditIndex::new(&db.store);
    let mut runner = index.runner();
    let keys = security_crypto::MemoryKeyStore::new();
    testkit::personal_data_export(store, &index, &mut runner, &keys).await;
    db.cleanup().await;
}
