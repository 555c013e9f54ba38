//! Both key stores against the conformance suite, and what is particular
//! to the envelope-encrypted one.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::ExposeSecret;
use security_core::{KeyOwner, KeyPurpose, KeySpec, KeyStatus, KeyStore, KeyStoreError, TenantId};
use security_crypto::testkit::{key_record_store_conformance, key_store_conformance};
use security_crypto::{
    CryptoError, EnvelopeKeyStore, KeyRecordStore, MasterKey, MemoryKeyRecordStore, MemoryKeyStore,
    SymmetricKey,
};
use uuid::Uuid;

use crate::{clock, ids};

fn owner(n: u128) -> KeyOwner {
    KeyOwner::new(
        TenantId::from_uuid(Uuid::from_u128(0x7e)),
        Uuid::from_u128(n),
    )
}

fn envelope(
    records: Arc<MemoryKeyRecordStore>,
    master: MasterKey,
) -> EnvelopeKeyStore<Arc<MemoryKeyRecordStore>> {
    EnvelopeKeyStore::new(
        records,
        master,
        clock(),
        Arc::new(security_crypto::UuidV7Ids),
    )
    .unwrap()
}

fn same_master(master: &MasterKey) -> MasterKey {
    MasterKey::from_base64(master.to_base64().expose_secret()).unwrap()
}

fn integrity_failure(error: &KeyStoreError) -> bool {
    let KeyStoreError::Backend(source) = error else {
        return false;
    };
    matches!(
        source.downcast_ref::<CryptoError>(),
        Some(CryptoError::RecordIntegrity(_))
    )
}

#[tokio::test]
async fn memory_key_store_conformance() {
    let clock = clock();
    let store = MemoryKeyStore::with_clock_and_ids(clock.clone(), ids());
    key_store_conformance(&store, &clock).await;
}

#[tokio::test]
async fn envelope_key_store_conformance() {
    let clock = clock();
    let store = EnvelopeKeyStore::new(
        MemoryKeyRecordStore::new(),
        MasterKey::generate().unwrap(),
        clock.clone(),
        ids(),
    )
    .unwrap();
    key_store_conformance(&store, &clock).await;
}

#[tokio::test]
async fn memory_key_record_store_conformance() {
    key_record_store_conformance(&MemoryKeyRecordStore::new()).await;
    let shared: Arc<dyn KeyRecordStore> = Arc::new(MemoryKeyRecordStore::new());
    key_record_store_conformance(&shared).await;
}

#[tokio::test]
async fn crypto_shredding_with_both_stores() {
    let memory: Arc<dyn KeyStore> = Arc::new(MemoryKeyStore::with_clock_and_ids(clock(), ids()));
    let envelope: Arc<dyn KeyStore> = Arc::new(envelope(
        Arc::new(MemoryKeyRecordStore::new()),
        MasterKey::generate().unwrap(),
    ));
    for store in [memory, envelope] {
        let (alice, bob) = (owner(1), owner(2));
        let fields: [&[u8]; 3] = [
            b"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            b"JBSWY3DPEHPK3PXP",
            b"[\"1234-5678\"]",
        ];
        let mut sealed_alice = Vec::new();
        for field in fields {
            sealed_alice.push(store.seal(alice, field).await.unwrap());
        }
        let sealed_bob = store.seal(bob, b"JBSWY3DPEHPK3PXQ").await.unwrap();

        store.shred(alice).await.unwrap();

        for sealed in &sealed_alice {
            assert!(
                matches!(store.unseal(sealed).await, Err(KeyStoreError::Destroyed(id)) if id == sealed.key_id())
            );
        }
        assert_eq!(
            store.unseal(&sealed_bob).await.unwrap().expose_secret(),
            b"JBSWY3DPEHPK3PXQ"
        );
    }
}

#[tokio::test]
async fn shredding_removes_the_material_from_storage() {
    let records = Arc::new(MemoryKeyRecordStore::new());
    let store = envelope(records.clone(), MasterKey::generate().unwrap());
    let sealed = store.seal(owner(1), b"secret").await.unwrap();
    assert!(
        records
            .get(sealed.key_id())
            .await
            .unwrap()
            .unwrap()
            .material
            .is_some()
    );
    store.shred(owner(1)).await.unwrap();
    let record = records.get(sealed.key_id()).await.unwrap().unwrap();
    assert!(record.material.is_none(), "nothing left to decrypt with");
    assert!(matches!(record.info.status, KeyStatus::Destroyed { .. }));
}

#[tokio::test]
async fn records_never_hold_private_keys_in_clear() {
    let records = Arc::new(MemoryKeyRecordStore::new());
    let store = envelope(records.clone(), MasterKey::generate().unwrap());
    let mut secrets = Vec::new();
    for purpose in [
        KeyPurpose::OperatorSigning,
        KeyPurpose::AccountSigning,
        KeyPurpose::UserIdentity,
        KeyPurpose::TokenSigning,
        KeyPurpose::LookupHashing,
        KeyPurpose::DataEncryption,
    ] {
        let info = store
            .create_key(KeySpec {
                exportable: true,
                ..KeySpec::new(owner(1), purpose)
            })
            .await
            .unwrap();
        let exported = store.export_private_key(info.key_id).await.unwrap();
        let text = exported.expose_secret().to_owned();
        if let Ok(seed) = nkeys::decode_seed(&text) {
            secrets.push(URL_SAFE_NO_PAD.encode(seed.1));
            secrets.push(STANDARD.encode(seed.1));
        } else {
            let key = SymmetricKey::from_base64(&text).unwrap();
            secrets.push(STANDARD.encode(key.expose_secret()));
            secrets.push(crate::hex(key.expose_secret()));
        }
        secrets.push(text);
    }
    let stored = serde_json::to_string(&records.list_by_owner(owner(1)).await.unwrap()).unwrap();
    assert_eq!(records.len(), 6);
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "private material found in a stored record"
        );
    }
}

#[tokio::test]
async fn records_changed_behind_the_store_are_refused() {
    let records = Arc::new(MemoryKeyRecordStore::new());
    let store = envelope(records.clone(), MasterKey::generate().unwrap());

    // A revoked key set back to active.
    let key = store
        .create_key(KeySpec::new(owner(1), KeyPurpose::TokenSigning))
        .await
        .unwrap();
    store.revoke_key(key.key_id).await.unwrap();
    let mut record = records.get(key.key_id).await.unwrap().unwrap();
    record.info.status = KeyStatus::Active;
    records.overwrite_unchecked(record);
    assert!(integrity_failure(
        &store.sign(key.key_id, b"m").await.unwrap_err()
    ));
    assert!(integrity_failure(&store.key(key.key_id).await.unwrap_err()));
    assert!(integrity_failure(
        &store.list_keys(owner(1)).await.unwrap_err()
    ));

    // A key made exportable.
    let key = store
        .create_key(KeySpec::new(owner(2), KeyPurpose::UserIdentity))
        .await
        .unwrap();
    let mut record = records.get(key.key_id).await.unwrap().unwrap();
    record.info.exportable = true;
    records.overwrite_unchecked(record);
    assert!(integrity_failure(
        &store.export_private_key(key.key_id).await.unwrap_err()
    ));

    // Material moved from one record to another.
    let a = store
        .create_key(KeySpec::new(owner(3), KeyPurpose::TokenSigning))
        .await
        .unwrap();
    let b = store
        .create_key(KeySpec::new(owner(3), KeyPurpose::TokenSigning))
        .await
        .unwrap();
    let mut record_a = records.get(a.key_id).await.unwrap().unwrap();
    record_a.material = records.get(b.key_id).await.unwrap().unwrap().material;
    records.overwrite_unchecked(record_a);
    assert!(integrity_failure(
        &store.sign(a.key_id, b"m").await.unwrap_err()
    ));
    store.sign(b.key_id, b"m").await.unwrap();
}

#[tokio::test]
async fn a_second_process_shares_keys_and_sees_revocations_at_once() {
    let records = Arc::new(MemoryKeyRecordStore::new());
    let master = MasterKey::generate().unwrap();
    let first = envelope(records.clone(), same_master(&master));
    let second = envelope(records.clone(), master);

    let key = first
        .create_key(KeySpec::new(owner(1), KeyPurpose::TokenSigning))
        .await
        .unwrap();
    let signature = second.sign(key.key_id, b"m").await.unwrap();
    assert!(first.verify(key.key_id, b"m", &signature).await.unwrap());
    let sealed = first.seal(owner(1), b"shared").await.unwrap();
    assert_eq!(
        second.unseal(&sealed).await.unwrap().expose_secret(),
        b"shared"
    );
    assert_eq!(
        second.seal(owner(1), b"x").await.unwrap().key_id(),
        sealed.key_id(),
        "same data key"
    );

    first.revoke_key(key.key_id).await.unwrap();
    assert!(matches!(
        second.sign(key.key_id, b"m").await,
        Err(KeyStoreError::Revoked(_))
    ));
}

#[tokio::test]
async fn another_master_key_cannot_read_the_records() {
    let records = Arc::new(MemoryKeyRecordStore::new());
    let store = envelope(records.clone(), MasterKey::generate().unwrap());
    let key = store
        .create_key(KeySpec::new(owner(1), KeyPurpose::TokenSigning))
        .await
        .unwrap();
    let intruder = envelope(records, MasterKey::generate().unwrap());
    let error = intruder.sign(key.key_id, b"m").await.unwrap_err();
    let KeyStoreError::Backend(source) = error else {
        panic!("expected a backend error, got {error:?}")
    };
    assert!(matches!(
        source.downcast_ref::<CryptoError>(),
        Some(CryptoError::UnknownMasterKey(_))
    ));
}

#[tokio::test]
async fn master_key_rotation_rewraps_every_record() {
    let records = Arc::new(MemoryKeyRecordStore::new());
    let old_master = MasterKey::generate().unwrap();
    let old = envelope(records.clone(), same_master(&old_master));
    let mut keys = Vec::new();
    for n in 0..5 {
        keys.push(
            old.create_key(KeySpec::new(owner(n), KeyPurpose::TokenSigning))
                .await
                .unwrap(),
        );
    }
    let sealed = old.seal(owner(9), b"sealed before").await.unwrap();
    old.destroy_key(keys[4].key_id).await.unwrap();

    let new_master = MasterKey::generate().unwrap();
    let new_id = new_master.id().to_owned();
    let rotating = envelope(records.clone(), same_master(&new_master))
        .with_previous_master_keys(vec![same_master(&old_master)])
        .unwrap();
    // Readable before the rewrap, through the previous key.
    rotating.sign(keys[0].key_id, b"m").await.unwrap();
    assert_eq!(rotating.rewrap(4).await.unwrap(), 4);
    assert_eq!(rotating.rewrap(4).await.unwrap(), 2);
    assert_eq!(rotating.rewrap(4).await.unwrap(), 0);
    assert!(
        records
            .list_by_master_key(old_master.id(), 100)
            .await
            .unwrap()
            .is_empty(),
        "no record left under the old master key"
    );

    let new_only = envelope(records.clone(), new_master);
    for key in &keys[..4] {
        let signature = new_only.sign(key.key_id, b"m").await.unwrap();
        assert!(new_only.verify(key.key_id, b"m", &signature).await.unwrap());
        assert_eq!(
            records
                .get(key.key_id)
                .await
                .unwrap()
                .unwrap()
                .master_key_id,
            new_id
        );
    }
    assert!(matches!(
        new_only.sign(keys[4].key_id, b"m").await,
        Err(KeyStoreError::Destroyed(_))
    ));
    assert_eq!(
        new_only.unseal(&sealed).await.unwrap().expose_secret(),
        b"sealed before"
    );
    let old_only = envelope(records, old_master);
    assert!(
        old_only.sign(keys[0].key_id, b"m").await.is_err(),
        "the old key is retired"
    );
}

#[tokio::test]
async fn keys_survive_a_json_round_trip_of_their_records() {
    // What a database adapter does: store the record's fields, read them back.
    let records = Arc::new(MemoryKeyRecordStore::new());
    let master = MasterKey::generate().unwrap();
    let store = envelope(records.clone(), same_master(&master));
    let key = store
        .create_key(KeySpec::new(owner(1), KeyPurpose::OperatorSigning))
        .await
        .unwrap();
    let signature = store.sign(key.key_id, b"m").await.unwrap();
    let record = records.get(key.key_id).await.unwrap().unwrap();
    let json = serde_json::to_string(&record).unwrap();
    let back: security_crypto::KeyRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, record);
    assert_eq!(
        back.info.created_at.timestamp_subsec_nanos() % 1000,
        0,
        "microsecond precision"
    );

    let copy = Arc::new(MemoryKeyRecordStore::new());
    copy.insert(&back).await.unwrap();
    let restored = envelope(copy, master);
    assert_eq!(restored.sign(key.key_id, b"m").await.unwrap(), signature);
}
