//! Key records cannot be rolled back: an older genuine record written back
//! (by anyone who can write to the record table) no longer undoes a
//! revocation or a crypto-shredding once the key store records every
//! revision in a key ledger in the event store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

mod common;

use std::sync::Arc;

use secrecy::ExposeSecret as _;
use security_core::{
    EventStore, KeyOwner, KeyPurpose, KeySpec, KeyStore, KeyStoreError, ManualClock, Repository,
    StateCache, StreamId, StreamQuery, TenantId,
};
use security_crypto::{
    CryptoError, EnvelopeKeyStore, KeyLedger, KeyRecordStore, MasterKey, MemoryKeyRecordStore,
    UuidV7Ids,
};
use security_eventstore::{MemoryEventStore, PostgresKeyRecordStore};
use uuid::Uuid;

use common::TestDb;

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn ledger_over(store: Arc<dyn EventStore>) -> Repository {
    Repository::new(store, Arc::new(UuidV7Ids::new())).with_state_cache(StateCache::new(1000))
}

/// Whether the error is the refusal of a rolled-back record.
fn rolled_back(error: &KeyStoreError) -> bool {
    match error {
        KeyStoreError::Backend(inner) => matches!(
            inner.downcast_ref::<CryptoError>(),
            Some(CryptoError::RecordRolledBack(_))
        ),
        _ => false,
    }
}

async fn ledger_types(store: &dyn EventStore, tenant: TenantId, key: Uuid) -> Vec<String> {
    store
        .read_stream(
            &StreamId::new(tenant, <KeyLedger as security_core::Aggregate>::TYPE, key),
            StreamQuery::all(),
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_type.to_string())
        .collect()
}

#[tokio::test]
async fn a_rolled_back_record_neither_signs_again_nor_unseals_a_shredded_secret() {
    let records = Arc::new(MemoryKeyRecordStore::new());
    let events = Arc::new(MemoryEventStore::new());
    let clock = Arc::new(ManualClock::new(now()));
    let keys = EnvelopeKeyStore::new(
        Arc::clone(&records),
        MasterKey::generate().unwrap(),
        clock.clone(),
        Arc::new(UuidV7Ids::new()),
    )
    .unwrap()
    .with_ledger(ledger_over(events.clone()));
    let owner = KeyOwner::new(TenantId::from_uuid(Uuid::now_v7()), Uuid::now_v7());

    // A token-signing key, revoked; its active record written back.
    let signing = keys
        .create_key(KeySpec::new(owner, KeyPurpose::TokenSigning))
        .await
        .unwrap();
    keys.sign(signing.key_id, b"before").await.unwrap();
    let active = records.get(signing.key_id).await.unwrap().unwrap();
    keys.revoke_key(signing.key_id).await.unwrap();
    records.overwrite_unchecked(active);
    let refused = keys
        .sign(signing.key_id, b"forged token")
        .await
        .unwrap_err();
    assert!(rolled_back(&refused), "{refused:?}");
    assert!(rolled_back(&keys.key(signing.key_id).await.unwrap_err()));

    // A TOTP secret sealed under a user's data key, shredded; the record
    // with the material written back. (Every key of an owner is checked
    // when its keys are listed, so the other owner's rolled-back key
    // stops this one's sealing too: another owner here.)
    let user = KeyOwner::new(owner.tenant_id, Uuid::now_v7());
    let sealed = keys.seal(user, b"JBSWY3DPEHPK3PXP").await.unwrap();
    let with_material = records.get(sealed.key_id()).await.unwrap().unwrap();
    keys.shred(user).await.unwrap();
    records.overwrite_unchecked(with_material);
    let refused = keys.unseal(&sealed).await.unwrap_err();
    assert!(rolled_back(&refused), "{refused:?}");

    // The ledger is the key's life in the event log.
    assert_eq!(
        ledger_types(&*events, owner.tenant_id, signing.key_id.as_uuid()).await,
        ["KeyCreated", "KeyRevoked"]
    );
    assert_eq!(
        ledger_types(&*events, user.tenant_id, sealed.key_id().as_uuid()).await,
        ["KeyCreated", "KeyDestroyed"]
    );
    assert!(rolled_back(&keys.list_keys(owner).await.unwrap_err()));
}

#[tokio::test]
async fn a_ledgered_store_still_meets_the_key_store_contract_and_anchors_older_keys() {
    let clock = Arc::new(ManualClock::new(security_eventstore::testkit::at(0)));
    let events: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let keys = EnvelopeKeyStore::new(
        MemoryKeyRecordStore::new(),
        MasterKey::generate().unwrap(),
        clock.clone(),
        Arc::new(UuidV7Ids::new()),
    )
    .unwrap()
    .with_ledger(ledger_over(events.clone()));
    security_crypto::testkit::key_store_conformance(&keys, &clock).await;

    // A key written before the ledger was configured: anchored at the
    // revision first seen, then protected like the others.
    let records = Arc::new(MemoryKeyRecordStore::new());
    let master = MasterKey::generate().unwrap().to_base64();
    let before = EnvelopeKeyStore::new(
        Arc::clone(&records),
        MasterKey::from_base64(master.expose_secret()).unwrap(),
        clock.clone(),
        Arc::new(UuidV7Ids::new()),
    )
    .unwrap();
    let owner = KeyOwner::new(TenantId::from_uuid(Uuid::now_v7()), Uuid::now_v7());
    let old = before
        .create_key(KeySpec::new(owner, KeyPurpose::ApplicationSigning))
        .await
        .unwrap();
    let after = EnvelopeKeyStore::new(
        Arc::clone(&records),
        MasterKey::from_base64(master.expose_secret()).unwrap(),
        clock.clone(),
        Arc::new(UuidV7Ids::new()),
    )
    .unwrap()
    .with_ledger(ledger_over(events.clone()));
    after.sign(old.key_id, b"m").await.unwrap();
    let active = records.get(old.key_id).await.unwrap().unwrap();
    after.revoke_key(old.key_id).await.unwrap();
    records.overwrite_unchecked(active);
    assert!(rolled_back(
        &after.sign(old.key_id, b"m").await.unwrap_err()
    ));
    assert_eq!(
        ledger_types(&*events, owner.tenant_id, old.key_id.as_uuid()).await,
        ["KeyAnchored", "KeyRevoked"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_leaked_application_credential_cannot_undo_a_revocation() {
    // Key records and the ledger in one PostgreSQL schema, two replicas of
    // the application. Someone holding the application's own database
    // credential (a role subject to row-level security) writes the
    // revoked key's older record back: both replicas refuse it, and the
    // same credential can neither change nor delete the ledger's events.
    let db = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(now()));
    let master = MasterKey::generate().unwrap().to_base64();
    let replica = |store: security_eventstore::PostgresEventStore| {
        EnvelopeKeyStore::new(
            PostgresKeyRecordStore::new(&store),
            MasterKey::from_base64(master.expose_secret()).unwrap(),
            clock.clone(),
            Arc::new(UuidV7Ids::new()),
        )
        .unwrap()
        .with_ledger(ledger_over(Arc::new(store)))
    };
    let first = replica(db.store.clone());
    let second = replica(
        db.second_store(security_eventstore::StoreOptions::default())
            .await,
    );
    let owner = KeyOwner::new(TenantId::from_uuid(Uuid::now_v7()), Uuid::now_v7());
    let key = first
        .create_key(KeySpec::new(owner, KeyPurpose::TokenSigning))
        .await
        .unwrap();
    second.sign(key.key_id, b"m").await.unwrap();
    let table = format!("\"{}\".security_key_records", db.name);
    let (old_revision, old_record): (i64, String) = sqlx::query_as(&format!(
        "SELECT revision, record::text FROM {table} WHERE key_id = $1"
    ))
    .bind(key.key_id.as_uuid())
    .fetch_one(&db.admin)
    .await
    .unwrap();
    second.revoke_key(key.key_id).await.unwrap();

    // The rollback, as the application's role.
    let attacker = TestDb::role_pool(&db.name, 1).await;
    let mut tx = attacker.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.current_tenant', $1, true)")
        .bind(owner.tenant_id.as_uuid().to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let updated = sqlx::query(
        "UPDATE security_key_records SET revision = $2, record = $3::json WHERE key_id = $1",
    )
    .bind(key.key_id.as_uuid())
    .bind(old_revision)
    .bind(&old_record)
    .execute(&mut *tx)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(
        updated, 1,
        "the record table is writable with this credential"
    );
    // The ledger's events are not.
    for statement in [
        "UPDATE security_events SET payload = '{}'::json WHERE aggregate_type = 'key'",
        "DELETE FROM security_events WHERE aggregate_type = 'key'",
    ] {
        let touched = sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_or(0, |r| r.rows_affected());
        assert_eq!(touched, 0, "{statement}");
    }
    tx.commit().await.unwrap();

    for keys in [&first, &second] {
        let refused = keys.sign(key.key_id, b"forged").await.unwrap_err();
        assert!(rolled_back(&refused), "{refused:?}");
    }
    attacker.close().await;
    db.cleanup().await;
}
