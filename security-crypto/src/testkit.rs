//! Conformance suites for [`KeyStore`] and [`KeyRecordStore`]
//! implementations (feature `testkit`).
//!
//! An adapter written elsewhere (a PostgreSQL [`KeyRecordStore`], a KMS
//! [`KeyStore`]) proves it keeps the contract by running these from its
//! own tests. Failures panic, like `assert!`. The suites use fresh random
//! owners, so they may run against a store that already holds data.
#![allow(
    clippy::expect_used,
    reason = "a conformance suite reports a failure by panicking, like assert!"
)]
#![allow(
    clippy::missing_panics_doc,
    reason = "panicking is how these suites report failures"
)]

use chrono::{Duration, SubsecRound, TimeZone, Utc};
use secrecy::ExposeSecret;
use security_core::{
    Clock, IdGenerator, KeyAlgorithm, KeyId, KeyInfo, KeyOwner, KeyPurpose, KeySpec, KeyStatus,
    KeyStore, KeyStoreError, ManualClock, PublicKey, SealedSecret, TenantId,
};

use crate::keystore::{KeyRecord, KeyRecordStore, KeyRecordStoreError, WrappedMaterial};
use crate::random::UuidV7Ids;
use crate::signing::{Ed25519PublicKey, NkeyPair};

fn fresh_owner() -> KeyOwner {
    let ids = UuidV7Ids::new();
    KeyOwner::new(TenantId::from_uuid(ids.new_id()), ids.new_id())
}

/// Runs the [`KeyStore`] contract against `store`, which must read its time
/// from `clock` (the suite moves it forward, never back).
pub async fn key_store_conformance(store: &dyn KeyStore, clock: &ManualClock) {
    creates_keys_of_every_purpose(store, clock).await;
    signs_and_verifies(store).await;
    refuses_other_purposes(store).await;
    exports_only_exportable_keys(store).await;
    rotates(store).await;
    revokes(store).await;
    expires(store, clock).await;
    destroys(store).await;
    lists_by_owner_and_tenant(store).await;
    seals_and_unseals(store).await;
    data_keys_rotate_and_revoke(store).await;
    shreds_one_owner_only(store).await;
    concurrent_first_seals_all_open(store).await;
}

async fn creates_keys_of_every_purpose(store: &dyn KeyStore, clock: &ManualClock) {
    let owner = fresh_owner();
    let cases = [
        (KeyPurpose::OperatorSigning, Some('O')),
        (KeyPurpose::AccountSigning, Some('A')),
        (KeyPurpose::UserIdentity, Some('U')),
        (KeyPurpose::TokenSigning, None),
        (KeyPurpose::ApplicationSigning, None),
        (KeyPurpose::LookupHashing, None),
        (KeyPurpose::DataEncryption, None),
    ];
    for (purpose, nkey_prefix) in cases {
        let info = store
            .create_key(KeySpec::new(owner, purpose))
            .await
            .expect("create_key");
        assert_eq!(info.owner, owner);
        assert_eq!(info.purpose, purpose);
        assert_eq!(info.algorithm, purpose.default_algorithm());
        assert_eq!(info.status, KeyStatus::Active);
        assert!(!info.exportable);
        assert_eq!(info.expires_at, None);
        let lag = (clock.now() - info.created_at).num_milliseconds();
        assert!(
            (0..1000).contains(&lag),
            "created_at comes from the injected clock"
        );
        match (purpose.default_algorithm(), nkey_prefix) {
            (KeyAlgorithm::Ed25519, Some(prefix)) => {
                let public = info.public_key.as_ref().expect("public key");
                assert!(
                    public.encoded.starts_with(prefix) && public.encoded.len() == 56,
                    "{public:?}"
                );
                Ed25519PublicKey::from_nkey(&public.encoded).expect("valid nkey");
            }
            (KeyAlgorithm::Ed25519, None) => {
                let public = info.public_key.as_ref().expect("public key");
                assert_eq!(public.encoded.len(), 43, "base64url of 32 bytes");
                Ed25519PublicKey::from_base64url(&public.encoded).expect("valid key");
            }
            _ => assert_eq!(info.public_key, None, "symmetric keys have no public half"),
        }
        assert_eq!(store.key(info.key_id).await.expect("key"), info);
    }
    let unknown = KeyId::from_uuid(UuidV7Ids::new().new_id());
    assert!(matches!(store.key(unknown).await, Err(KeyStoreError::NotFound(id)) if id == unknown));
    assert!(matches!(
        store.sign(unknown, b"m").await,
        Err(KeyStoreError::NotFound(_))
    ));
    assert!(matches!(
        store.rotate_key(unknown).await,
        Err(KeyStoreError::NotFound(_))
    ));
    assert!(matches!(
        store.revoke_key(unknown).await,
        Err(KeyStoreError::NotFound(_))
    ));
    assert!(matches!(
        store.destroy_key(unknown).await,
        Err(KeyStoreError::NotFound(_))
    ));
}

fn public_of(info: &KeyInfo) -> Ed25519PublicKey {
    Ed25519PublicKey::from_public_key(info.public_key.as_ref().expect("public key"))
        .expect("ed25519 key")
}

async fn signs_and_verifies(store: &dyn KeyStore) {
    let owner = fresh_owner();
    for purpose in [
        KeyPurpose::OperatorSigning,
        KeyPurpose::UserIdentity,
        KeyPurpose::TokenSigning,
    ] {
        let info = store
            .create_key(KeySpec::new(owner, purpose))
            .await
            .expect("create");
        let signature = store
            .sign(info.key_id, b"header.payload")
            .await
            .expect("sign");
        assert_eq!(signature.len(), 64);
        assert!(
            public_of(&info).verify(b"header.payload", &signature),
            "verifies with the public key"
        );
        assert!(
            store
                .verify(info.key_id, b"header.payload", &signature)
                .await
                .expect("verify")
        );
        assert!(
            !store
                .verify(info.key_id, b"header.payloaD", &signature)
                .await
                .expect("verify")
        );
        assert!(
            !store
                .verify(info.key_id, b"header.payload", &signature[..63])
                .await
                .expect("verify")
        );
    }
    let hmac = store
        .create_key(KeySpec::new(owner, KeyPurpose::LookupHashing))
        .await
        .expect("create");
    let tag = store.sign(hmac.key_id, b"sec_ak_123").await.expect("sign");
    assert_eq!(tag.len(), 32);
    assert_eq!(
        tag,
        store.sign(hmac.key_id, b"sec_ak_123").await.expect("sign"),
        "deterministic"
    );
    assert!(
        store
            .verify(hmac.key_id, b"sec_ak_123", &tag)
            .await
            .expect("verify")
    );
    assert!(
        !store
            .verify(hmac.key_id, b"sec_ak_124", &tag)
            .await
            .expect("verify")
    );
    let other = store
        .create_key(KeySpec::new(owner, KeyPurpose::LookupHashing))
        .await
        .expect("create");
    assert_ne!(
        tag,
        store.sign(other.key_id, b"sec_ak_123").await.expect("sign"),
        "keys differ"
    );
}

async fn refuses_other_purposes(store: &dyn KeyStore) {
    let owner = fresh_owner();
    let data = store
        .create_key(KeySpec::new(owner, KeyPurpose::DataEncryption))
        .await
        .expect("create");
    assert!(matches!(
        store.sign(data.key_id, b"m").await,
        Err(KeyStoreError::WrongPurpose(_))
    ));
    assert!(matches!(
        store.verify(data.key_id, b"m", &[0; 64]).await,
        Err(KeyStoreError::WrongPurpose(_))
    ));
    let signing = store
        .create_key(KeySpec::new(owner, KeyPurpose::TokenSigning))
        .await
        .expect("create");
    let sealed = store.seal(owner, b"secret").await.expect("seal");
    let forged = SealedSecret::new(signing.key_id, sealed.ciphertext().to_owned());
    assert!(matches!(
        store.unseal(&forged).await,
        Err(KeyStoreError::WrongPurpose(_))
    ));
}

async fn exports_only_exportable_keys(store: &dyn KeyStore) {
    let owner = fresh_owner();
    let hidden = store
        .create_key(KeySpec::new(owner, KeyPurpose::UserIdentity))
        .await
        .expect("create");
    assert!(matches!(
        store.export_private_key(hidden.key_id).await,
        Err(KeyStoreError::NotExportable(_))
    ));
    let spec = KeySpec {
        exportable: true,
        ..KeySpec::new(owner, KeyPurpose::UserIdentity)
    };
    let user = store.create_key(spec).await.expect("create");
    assert!(user.exportable);
    let seed = store.export_private_key(user.key_id).await.expect("export");
    assert!(seed.expose_secret().starts_with("SU"), "an nkey user seed");
    let pair = NkeyPair::from_seed(&seed).expect("valid seed");
    assert_eq!(
        Some(pair.public_key()),
        user.public_key.as_ref().map(|k| k.encoded.as_str())
    );
    let signature = store.sign(user.key_id, b"nonce").await.expect("sign");
    assert_eq!(
        pair.sign(b"nonce").to_vec(),
        signature,
        "the exported seed is the signing key"
    );
}

async fn rotates(store: &dyn KeyStore) {
    let owner = fresh_owner();
    let spec = KeySpec {
        exportable: true,
        ..KeySpec::new(owner, KeyPurpose::AccountSigning)
    };
    let old = store.create_key(spec).await.expect("create");
    let signature = store.sign(old.key_id, b"m").await.expect("sign");
    let new = store.rotate_key(old.key_id).await.expect("rotate");
    assert_ne!(new.key_id, old.key_id);
    assert_ne!(new.public_key, old.public_key);
    assert_eq!(
        (new.owner, new.purpose, new.exportable),
        (old.owner, old.purpose, old.exportable)
    );
    assert_eq!(new.status, KeyStatus::Active);
    let old_now = store.key(old.key_id).await.expect("key");
    assert!(
        matches!(old_now.status, KeyStatus::Rotated { successor, .. } if successor == new.key_id)
    );
    assert!(matches!(
        store.sign(old.key_id, b"m").await,
        Err(KeyStoreError::RotatedOut(_))
    ));
    assert!(
        store
            .verify(old.key_id, b"m", &signature)
            .await
            .expect("rotated keys still verify")
    );
    assert!(matches!(
        store.rotate_key(old.key_id).await,
        Err(KeyStoreError::RotatedOut(_))
    ));
    store
        .sign(new.key_id, b"m")
        .await
        .expect("the successor signs");
}

async fn revokes(store: &dyn KeyStore) {
    let owner = fresh_owner();
    let key = store
        .create_key(KeySpec::new(owner, KeyPurpose::OperatorSigning))
        .await
        .expect("create");
    let signature = store.sign(key.key_id, b"m").await.expect("sign");
    let revoked = store.revoke_key(key.key_id).await.expect("revoke");
    assert!(matches!(revoked.status, KeyStatus::Revoked { .. }));
    assert!(matches!(
        store.sign(key.key_id, b"m").await,
        Err(KeyStoreError::Revoked(_))
    ));
    assert!(matches!(
        store.verify(key.key_id, b"m", &signature).await,
        Err(KeyStoreError::Revoked(_))
    ));
    assert!(matches!(
        store.rotate_key(key.key_id).await,
        Err(KeyStoreError::Revoked(_))
    ));
    let again = store
        .revoke_key(key.key_id)
        .await
        .expect("revoking twice is harmless");
    assert_eq!(
        again.status, revoked.status,
        "the first revocation time stays"
    );
    // A rotated-out key can be revoked too.
    let key = store
        .create_key(KeySpec::new(owner, KeyPurpose::TokenSigning))
        .await
        .expect("create");
    store.rotate_key(key.key_id).await.expect("rotate");
    store.revoke_key(key.key_id).await.expect("revoke rotated");
    assert!(matches!(
        store.verify(key.key_id, b"m", &[0; 64]).await,
        Err(KeyStoreError::Revoked(_))
    ));
}

async fn expires(store: &dyn KeyStore, clock: &ManualClock) {
    let owner = fresh_owner();
    let expires_at = (clock.now() + Duration::hours(1)).trunc_subsecs(6);
    let spec = KeySpec {
        expires_at: Some(expires_at),
        ..KeySpec::new(owner, KeyPurpose::TokenSigning)
    };
    let key = store.create_key(spec).await.expect("create");
    assert_eq!(key.expires_at, Some(expires_at));
    let signature = store
        .sign(key.key_id, b"m")
        .await
        .expect("signs before expiry");
    clock.advance(Duration::hours(2));
    assert!(matches!(
        store.sign(key.key_id, b"m").await,
        Err(KeyStoreError::Expired(_))
    ));
    assert!(
        store
            .verify(key.key_id, b"m", &signature)
            .await
            .expect("expired keys still verify")
    );
    let successor = store
        .rotate_key(key.key_id)
        .await
        .expect("expired keys rotate");
    let lifetime = successor.expires_at.expect("successor expires") - successor.created_at;
    assert_eq!(
        lifetime.num_minutes(),
        60,
        "the successor gets the same lifetime"
    );
    store
        .sign(successor.key_id, b"m")
        .await
        .expect("successor signs");
}

async fn destroys(store: &dyn KeyStore) {
    let owner = fresh_owner();
    let spec = KeySpec {
        exportable: true,
        ..KeySpec::new(owner, KeyPurpose::UserIdentity)
    };
    let key = store.create_key(spec).await.expect("create");
    store.destroy_key(key.key_id).await.expect("destroy");
    let info = store.key(key.key_id).await.expect("metadata stays");
    assert!(matches!(info.status, KeyStatus::Destroyed { .. }));
    assert_eq!(
        info.public_key, key.public_key,
        "the public half stays for audit"
    );
    assert!(matches!(
        store.sign(key.key_id, b"m").await,
        Err(KeyStoreError::Destroyed(_))
    ));
    assert!(matches!(
        store.verify(key.key_id, b"m", &[0; 64]).await,
        Err(KeyStoreError::Destroyed(_))
    ));
    assert!(matches!(
        store.export_private_key(key.key_id).await,
        Err(KeyStoreError::Destroyed(_))
    ));
    assert!(matches!(
        store.revoke_key(key.key_id).await,
        Err(KeyStoreError::Destroyed(_))
    ));
    assert!(matches!(
        store.rotate_key(key.key_id).await,
        Err(KeyStoreError::Destroyed(_))
    ));
    store
        .destroy_key(key.key_id)
        .await
        .expect("destroying twice is harmless");
}

async fn lists_by_owner_and_tenant(store: &dyn KeyStore) {
    let owner = fresh_owner();
    let same_id_other_tenant = KeyOwner::new(
        TenantId::from_uuid(UuidV7Ids::new().new_id()),
        owner.owner_id,
    );
    let same_tenant_other_id = KeyOwner::new(owner.tenant_id, UuidV7Ids::new().new_id());
    let a = store
        .create_key(KeySpec::new(owner, KeyPurpose::TokenSigning))
        .await
        .expect("create");
    let b = store
        .create_key(KeySpec::new(owner, KeyPurpose::LookupHashing))
        .await
        .expect("create");
    let c = store.rotate_key(a.key_id).await.expect("rotate");
    store.revoke_key(b.key_id).await.expect("revoke");
    store
        .create_key(KeySpec::new(same_id_other_tenant, KeyPurpose::TokenSigning))
        .await
        .expect("create");
    store
        .create_key(KeySpec::new(same_tenant_other_id, KeyPurpose::TokenSigning))
        .await
        .expect("create");
    let listed: Vec<KeyId> = store
        .list_keys(owner)
        .await
        .expect("list")
        .iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(
        listed,
        vec![a.key_id, b.key_id, c.key_id],
        "all of the owner's keys, oldest first, any status"
    );
    assert_eq!(
        store
            .list_keys(same_id_other_tenant)
            .await
            .expect("list")
            .len(),
        1
    );
    assert!(
        store
            .list_keys(fresh_owner())
            .await
            .expect("list")
            .is_empty()
    );
}

async fn seals_and_unseals(store: &dyn KeyStore) {
    let owner = fresh_owner();
    let first = store.seal(owner, b"totp secret").await.expect("seal");
    let second = store.seal(owner, b"backup codes").await.expect("seal");
    assert_eq!(first.key_id(), second.key_id(), "one data key per owner");
    let keys = store.list_keys(owner).await.expect("list");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].purpose, KeyPurpose::DataEncryption);
    assert!(!first.ciphertext().contains("totp secret"));
    assert_eq!(
        store.unseal(&first).await.expect("unseal").expose_secret(),
        b"totp secret"
    );
    assert_eq!(
        store.unseal(&second).await.expect("unseal").expose_secret(),
        b"backup codes"
    );
    assert_eq!(
        store
            .unseal(&store.seal(owner, b"").await.expect("seal"))
            .await
            .expect("unseal")
            .expose_secret(),
        b""
    );

    let other_tenant = KeyOwner::new(
        TenantId::from_uuid(UuidV7Ids::new().new_id()),
        owner.owner_id,
    );
    let elsewhere = store.seal(other_tenant, b"x").await.expect("seal");
    assert_ne!(
        elsewhere.key_id(),
        first.key_id(),
        "data keys are per tenant and owner"
    );

    let mut tampered = first.ciphertext().to_owned().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = SealedSecret::new(first.key_id(), String::from_utf8(tampered).expect("ascii"));
    assert!(matches!(
        store.unseal(&tampered).await,
        Err(KeyStoreError::Unseal)
    ));
    let moved = SealedSecret::new(elsewhere.key_id(), first.ciphertext().to_owned());
    assert!(
        matches!(store.unseal(&moved).await, Err(KeyStoreError::Unseal)),
        "other keys cannot open it"
    );
    let unknown = SealedSecret::new(
        KeyId::from_uuid(UuidV7Ids::new().new_id()),
        first.ciphertext().to_owned(),
    );
    assert!(matches!(
        store.unseal(&unknown).await,
        Err(KeyStoreError::NotFound(_))
    ));
}

async fn data_keys_rotate_and_revoke(store: &dyn KeyStore) {
    let owner = fresh_owner();
    let old = store.seal(owner, b"old").await.expect("seal");
    let successor = store
        .rotate_key(old.key_id())
        .await
        .expect("rotate data key");
    let new = store.seal(owner, b"new").await.expect("seal");
    assert_eq!(
        new.key_id(),
        successor.key_id,
        "new values use the successor"
    );
    assert_eq!(
        store
            .unseal(&old)
            .await
            .expect("old values still open")
            .expose_secret(),
        b"old"
    );
    store.revoke_key(successor.key_id).await.expect("revoke");
    let newer = store.seal(owner, b"newer").await.expect("seal");
    assert!(
        newer.key_id() != successor.key_id && newer.key_id() != old.key_id(),
        "a fresh key after revocation"
    );
    assert_eq!(
        store
            .unseal(&new)
            .await
            .expect("revoked data keys still open")
            .expose_secret(),
        b"new"
    );
}

async fn shreds_one_owner_only(store: &dyn KeyStore) {
    let erased = fresh_owner();
    let kept = fresh_owner();
    let mut erased_values = Vec::new();
    for field in ["password hash", "totp secret", "backup codes"] {
        erased_values.push(store.seal(erased, field.as_bytes()).await.expect("seal"));
    }
    // A second data key for the erased owner, so shredding must get both.
    store
        .rotate_key(erased_values[0].key_id())
        .await
        .expect("rotate");
    erased_values.push(store.seal(erased, b"after rotation").await.expect("seal"));
    let signing = store
        .create_key(KeySpec::new(erased, KeyPurpose::UserIdentity))
        .await
        .expect("create");
    let kept_value = store.seal(kept, b"someone else").await.expect("seal");

    store.shred(erased).await.expect("shred");
    for sealed in &erased_values {
        assert!(
            matches!(store.unseal(sealed).await, Err(KeyStoreError::Destroyed(id)) if id == sealed.key_id()),
            "shredded values are unreadable"
        );
    }
    for info in store.list_keys(erased).await.expect("list") {
        if info.purpose == KeyPurpose::DataEncryption {
            assert!(matches!(info.status, KeyStatus::Destroyed { .. }));
        }
    }
    store
        .sign(signing.key_id, b"m")
        .await
        .expect("shred destroys data keys only");
    assert_eq!(
        store
            .unseal(&kept_value)
            .await
            .expect("others unaffected")
            .expose_secret(),
        b"someone else"
    );
    store
        .shred(erased)
        .await
        .expect("shredding twice is harmless");
    let later = store
        .seal(erased, b"new")
        .await
        .expect("a later seal makes a fresh key");
    assert!(
        erased_values
            .iter()
            .all(|old| old.key_id() != later.key_id())
    );
    assert!(
        matches!(
            store.unseal(&erased_values[0]).await,
            Err(KeyStoreError::Destroyed(_))
        ),
        "forever"
    );
}

async fn concurrent_first_seals_all_open(store: &dyn KeyStore) {
    let owner = fresh_owner();
    let seals =
        (0..8_u8).map(|i| async move { (i, store.seal(owner, &[i; 5]).await.expect("seal")) });
    for (i, sealed) in futures::future::join_all(seals).await {
        assert_eq!(
            store.unseal(&sealed).await.expect("unseal").expose_secret(),
            &[i; 5]
        );
    }
}

/// A record as an [`EnvelopeKeyStore`](crate::EnvelopeKeyStore) would
/// write it (the record store never looks inside, so the contents here are
/// opaque placeholders).
fn sample_record(owner: KeyOwner, created_micros: i64, master_key_id: &str) -> KeyRecord {
    let created_at = Utc
        .timestamp_micros(created_micros)
        .single()
        .expect("valid time");
    KeyRecord {
        info: KeyInfo {
            key_id: KeyId::from_uuid(UuidV7Ids::new().new_id()),
            owner,
            purpose: KeyPurpose::UserIdentity,
            algorithm: KeyAlgorithm::Ed25519,
            public_key: Some(PublicKey::ed25519(
                "UCODERUVFFAWZQDSS6SBIACUA5O6SXF7HJ3YTYXBALHZP3P7R4BUO4J2",
            )),
            status: KeyStatus::Active,
            created_at,
            expires_at: Some(created_at + Duration::microseconds(86_400_000_001)),
            exportable: true,
        },
        master_key_id: master_key_id.to_owned(),
        material: Some(WrappedMaterial {
            wrapped_key: "gAAAAAwrapped".into(),
            ciphertext: "gAAAAAcipher".into(),
        }),
        revision: 1,
        mac: "mac".into(),
    }
}

/// Runs the [`KeyRecordStore`] contract against `store`.
pub async fn key_record_store_conformance(store: &dyn KeyRecordStore) {
    let owner = fresh_owner();
    let master = format!("m{}", UuidV7Ids::new().new_id().simple());
    // Microsecond precision, out of insertion order.
    let late = sample_record(owner, 1_700_000_000_123_457, &master);
    let early = sample_record(owner, 1_700_000_000_123_456, &master);
    store.insert(&late).await.expect("insert");
    store.insert(&early).await.expect("insert");
    assert_eq!(
        store.get(late.key_id()).await.expect("get").as_ref(),
        Some(&late),
        "read back exactly"
    );
    assert_eq!(
        store
            .get(KeyId::from_uuid(UuidV7Ids::new().new_id()))
            .await
            .expect("get"),
        None
    );
    assert!(
        matches!(store.insert(&late).await, Err(KeyRecordStoreError::AlreadyExists(id)) if id == late.key_id())
    );

    // Scoped by tenant and owner, ordered by (created_at, key id).
    let other_tenant = KeyOwner::new(
        TenantId::from_uuid(UuidV7Ids::new().new_id()),
        owner.owner_id,
    );
    store
        .insert(&sample_record(other_tenant, 1, &master))
        .await
        .expect("insert");
    let listed = store.list_by_owner(owner).await.expect("list");
    assert_eq!(listed, vec![early.clone(), late.clone()]);
    assert_eq!(
        store.list_by_owner(other_tenant).await.expect("list").len(),
        1
    );
    assert!(
        store
            .list_by_owner(fresh_owner())
            .await
            .expect("list")
            .is_empty()
    );

    // Compare-and-swap.
    let mut revoked = late.clone();
    revoked.info.status = KeyStatus::Revoked {
        at: late.info.created_at + Duration::microseconds(1),
    };
    revoked.material = None;
    revoked.revision = 2;
    revoked.mac = "mac2".into();
    store
        .update(&revoked, 1)
        .await
        .expect("update at the right revision");
    assert_eq!(
        store.get(late.key_id()).await.expect("get"),
        Some(revoked.clone())
    );
    let mut stale = late.clone();
    stale.revision = 2;
    assert!(matches!(
        store.update(&stale, 1).await,
        Err(KeyRecordStoreError::Conflict(_))
    ));
    assert_eq!(
        store.get(late.key_id()).await.expect("get"),
        Some(revoked.clone()),
        "a conflict writes nothing"
    );
    let missing = sample_record(owner, 5, &master);
    assert!(matches!(
        store.update(&missing, 1).await,
        Err(KeyRecordStoreError::NotFound(_))
    ));

    // Rotation is atomic.
    let successor = sample_record(owner, 1_700_000_000_200_000, &master);
    let mut rotated = early.clone();
    rotated.info.status = KeyStatus::Rotated {
        successor: successor.key_id(),
        at: successor.info.created_at,
    };
    rotated.revision = 2;
    assert!(matches!(
        store.insert_successor(&rotated, 7, &successor).await,
        Err(KeyRecordStoreError::Conflict(_))
    ));
    assert_eq!(
        store.get(successor.key_id()).await.expect("get"),
        None,
        "nothing written on conflict"
    );
    assert_eq!(
        store.get(early.key_id()).await.expect("get"),
        Some(early.clone())
    );
    store
        .insert_successor(&rotated, 1, &successor)
        .await
        .expect("rotate");
    assert_eq!(
        store.get(early.key_id()).await.expect("get"),
        Some(rotated.clone())
    );
    assert_eq!(
        store.get(successor.key_id()).await.expect("get"),
        Some(successor.clone())
    );
    let mut again = rotated.clone();
    again.revision = 3;
    assert!(matches!(
        store.insert_successor(&again, 2, &successor).await,
        Err(KeyRecordStoreError::AlreadyExists(_) | KeyRecordStoreError::Conflict(_))
    ));
    assert_eq!(
        store.get(early.key_id()).await.expect("get"),
        Some(rotated.clone()),
        "nothing written"
    );

    // Master-key work list: any tenant, ordered, limited.
    let by_master = store.list_by_master_key(&master, 10).await.expect("list");
    assert_eq!(by_master.len(), 4);
    assert!(by_master.windows(2).all(|w| (w[0].info.created_at, w[0].key_id()) <= (w[1].info.created_at, w[1].key_id())));
    assert_eq!(
        store.list_by_master_key(&master, 2).await.expect("list"),
        by_master[..2].to_vec()
    );
    assert!(
        store
            .list_by_master_key("no-such-master", 10)
            .await
            .expect("list")
            .is_empty()
    );

    // Of concurrent writers at one revision exactly one wins.
    let contested = sample_record(fresh_owner(), 10, &master);
    store.insert(&contested).await.expect("insert");
    let writers = (0..8_u64).map(|i| {
        let mut next = contested.clone();
        next.revision = 2;
        next.mac = format!("writer {i}");
        async move { store.update(&next, 1).await }
    });
    let results = futures::future::join_all(writers).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "exactly one writer wins"
    );
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(KeyRecordStoreError::Conflict(_))))
    );
}
