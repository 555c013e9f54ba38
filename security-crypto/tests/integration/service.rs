//! The `EncryptionService` facade: tenant scoping, JWKS, lookup hashes,
//! passwords and application encryption.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use security_core::{KeyOwner, KeyPurpose, KeySpec, KeyStoreError, PasswordHasher, TenantId};
use security_crypto::{
    Argon2Config, Argon2PasswordHasher, CryptoError, EncryptionService, EnvelopeKeyStore,
    FernetKey, FernetKeyRing, Jwk, MasterKey, MemoryKeyRecordStore, MemoryKeyStore,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{clock, ids};

fn cheap_hasher() -> Arc<Argon2PasswordHasher> {
    Arc::new(
        Argon2PasswordHasher::new(Argon2Config {
            memory_kib: 256,
            iterations: 1,
            ..Argon2Config::OWASP
        })
        .unwrap(),
    )
}

fn service() -> EncryptionService {
    EncryptionService::new(
        Arc::new(MemoryKeyStore::with_clock_and_ids(clock(), ids())),
        cheap_hasher(),
    )
}

fn tenant(n: u128) -> TenantId {
    TenantId::from_uuid(Uuid::from_u128(n))
}

#[tokio::test]
async fn keys_of_another_tenant_are_not_found() {
    let service = service();
    let mine = KeyOwner::new(tenant(1), Uuid::from_u128(10));
    let spec = KeySpec {
        exportable: true,
        ..KeySpec::new(mine, KeyPurpose::UserIdentity)
    };
    let key = service.create_key(spec).await.unwrap();
    let signer = service
        .create_key(KeySpec::new(mine, KeyPurpose::ApplicationSigning))
        .await
        .unwrap();
    let lookup = service
        .create_key(KeySpec::new(mine, KeyPurpose::LookupHashing))
        .await
        .unwrap();
    let other = tenant(2);
    let not_found = |r: Result<_, KeyStoreError>| matches!(r, Err(KeyStoreError::NotFound(_)));

    assert!(not_found(service.key(other, key.key_id).await.map(|_| ())));
    assert!(not_found(
        service.sign(other, signer.key_id, b"m").await.map(|_| ())
    ));
    assert!(not_found(
        service
            .verify(other, signer.key_id, b"m", &[0; 64])
            .await
            .map(|_| ())
    ));
    assert!(not_found(
        service
            .export_private_key(other, key.key_id)
            .await
            .map(|_| ())
    ));
    assert!(not_found(
        service.rotate_key(other, key.key_id).await.map(|_| ())
    ));
    assert!(not_found(
        service.revoke_key(other, key.key_id).await.map(|_| ())
    ));
    assert!(not_found(service.destroy_key(other, key.key_id).await));
    let token = SecretString::from("sec_ak_x");
    assert!(not_found(
        service
            .lookup_hash(other, lookup.key_id, &token)
            .await
            .map(|_| ())
    ));

    // Nothing happened to the key.
    let signature = service.sign(tenant(1), signer.key_id, b"m").await.unwrap();
    assert!(
        service
            .verify(tenant(1), signer.key_id, b"m", &signature)
            .await
            .unwrap()
    );
    assert!(
        service
            .export_private_key(tenant(1), key.key_id)
            .await
            .unwrap()
            .expose_secret()
            .starts_with("SU")
    );
}

#[tokio::test]
async fn sealed_values_open_only_for_their_owner() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct BackupCodes(Vec<String>);

    let service = service();
    let alice = KeyOwner::new(tenant(1), Uuid::from_u128(10));
    let same_id_other_tenant = KeyOwner::new(tenant(2), Uuid::from_u128(10));
    let bob = KeyOwner::new(tenant(1), Uuid::from_u128(11));
    let codes = BackupCodes(vec!["1234-5678".into(), "8765-4321".into()]);
    let sealed = service.seal_json(alice, &codes).await.unwrap();
    assert_eq!(
        service
            .unseal_json::<BackupCodes>(alice, &sealed)
            .await
            .unwrap(),
        codes
    );
    for intruder in [same_id_other_tenant, bob] {
        assert!(matches!(
            service.unseal(intruder, &sealed).await,
            Err(KeyStoreError::NotFound(_))
        ));
    }
    let secret = service
        .seal_secret(bob, &SecretString::from("JBSWY3DPEHPK3PXP"))
        .await
        .unwrap();
    assert_eq!(
        service
            .unseal_secret(bob, &secret)
            .await
            .unwrap()
            .expose_secret(),
        "JBSWY3DPEHPK3PXP"
    );
    assert_eq!(
        service
            .unseal(bob, &service.seal(bob, b"raw").await.unwrap())
            .await
            .unwrap()
            .expose_secret(),
        b"raw"
    );

    service.shred(alice).await.unwrap();
    assert!(matches!(
        service.unseal(alice, &sealed).await,
        Err(KeyStoreError::Destroyed(_))
    ));
    assert!(matches!(
        service.unseal_json::<BackupCodes>(alice, &sealed).await,
        Err(CryptoError::KeyStore(KeyStoreError::Destroyed(_)))
    ));
    assert_eq!(
        service
            .unseal_secret(bob, &secret)
            .await
            .unwrap()
            .expose_secret(),
        "JBSWY3DPEHPK3PXP"
    );
}

#[tokio::test]
async fn jwks_lists_the_keys_verifiers_may_trust() {
    let service = EncryptionService::new(
        Arc::new(
            EnvelopeKeyStore::new(
                MemoryKeyRecordStore::new(),
                MasterKey::generate().unwrap(),
                clock(),
                ids(),
            )
            .unwrap(),
        ),
        cheap_hasher(),
    );
    let issuer = KeyOwner::new(tenant(1), Uuid::from_u128(1));
    let old = service
        .create_key(KeySpec::new(issuer, KeyPurpose::TokenSigning))
        .await
        .unwrap();
    let current = service.rotate_key(tenant(1), old.key_id).await.unwrap();
    let revoked = service
        .create_key(KeySpec::new(issuer, KeyPurpose::TokenSigning))
        .await
        .unwrap();
    service.revoke_key(tenant(1), revoked.key_id).await.unwrap();
    service
        .create_key(KeySpec::new(issuer, KeyPurpose::LookupHashing))
        .await
        .unwrap();
    service
        .create_key(KeySpec::new(issuer, KeyPurpose::AccountSigning))
        .await
        .unwrap();

    let jwks = service.jwks(issuer).await.unwrap();
    let kids: Vec<String> = jwks.keys.iter().filter_map(|k| k.kid.clone()).collect();
    assert_eq!(
        kids,
        vec![old.key_id.to_string(), current.key_id.to_string()]
    );

    // The token issuer signs through the key store; the facade's `sign`
    // refuses token-signing keys.
    let signature = service
        .key_store()
        .sign(current.key_id, b"header.payload")
        .await
        .unwrap();
    let jwk = jwks.find(&current.key_id.to_string()).unwrap();
    assert!(
        jwk.public_key()
            .unwrap()
            .verify(b"header.payload", &signature)
    );
    assert_eq!(Jwk::from_key_info(&current).as_ref(), Some(jwk));
    let json = serde_json::to_value(&jwks).unwrap();
    assert_eq!(json["keys"][1]["kty"], "OKP");
    assert_eq!(json["keys"][1]["x"], current.public_key.unwrap().encoded);
}

#[tokio::test]
async fn lookup_hashes_with_a_store_key_survive_rotation() {
    let service = service();
    let owner = KeyOwner::new(tenant(1), Uuid::from_u128(1));
    let key = service
        .create_key(KeySpec::new(owner, KeyPurpose::LookupHashing))
        .await
        .unwrap();
    let token = SecretString::from("sec_ak_abcdef");
    let hash = service
        .lookup_hash(tenant(1), key.key_id, &token)
        .await
        .unwrap();
    assert_eq!(
        hash,
        service
            .lookup_hash(tenant(1), key.key_id, &token)
            .await
            .unwrap()
    );
    assert!(
        service
            .verify_lookup_hash(tenant(1), key.key_id, &token, &hash)
            .await
            .unwrap()
    );
    let wrong = SecretString::from("sec_ak_abcdeg");
    assert!(
        !service
            .verify_lookup_hash(tenant(1), key.key_id, &wrong, &hash)
            .await
            .unwrap()
    );

    let successor = service.rotate_key(tenant(1), key.key_id).await.unwrap();
    assert!(
        service
            .verify_lookup_hash(tenant(1), key.key_id, &token, &hash)
            .await
            .unwrap(),
        "old hashes verify"
    );
    assert!(matches!(
        service.lookup_hash(tenant(1), key.key_id, &token).await,
        Err(KeyStoreError::RotatedOut(_))
    ));
    assert_ne!(
        service
            .lookup_hash(tenant(1), successor.key_id, &token)
            .await
            .unwrap(),
        hash
    );

    let signing = service
        .create_key(KeySpec::new(owner, KeyPurpose::TokenSigning))
        .await
        .unwrap();
    assert!(matches!(
        service.lookup_hash(tenant(1), signing.key_id, &token).await,
        Err(KeyStoreError::WrongPurpose(_))
    ));
}

#[test]
fn passwords_at_the_owasp_defaults() {
    let hasher = Argon2PasswordHasher::owasp().unwrap();
    let service = EncryptionService::new(Arc::new(MemoryKeyStore::new()), Arc::new(hasher));
    let password = SecretString::from("correct horse battery staple");
    let hash = service.hash_password(&password).unwrap();
    assert!(
        hash.expose_secret()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    assert!(service.verify_password(&password, &hash).unwrap());
    assert!(
        !service
            .verify_password(&SecretString::from("Correct horse battery staple"), &hash)
            .unwrap()
    );
    assert!(!service.needs_rehash(&hash));
    service.dummy_verify(&password);

    let weak = cheap_hasher().hash(&password).unwrap();
    assert!(
        service.needs_rehash(&weak),
        "hashes made at a lower cost are flagged"
    );
    assert!(
        service.verify_password(&password, &weak).unwrap(),
        "and still verify"
    );
}

#[test]
fn application_encryption_needs_a_key_ring() {
    let service = service();
    assert!(matches!(service.encrypt(b"x"), Err(CryptoError::NoKeyRing)));
    let clock = clock();
    let ring = FernetKeyRing::new(vec![FernetKey::generate().unwrap()], clock.clone()).unwrap();
    let service = service.with_key_ring(ring);
    let token = service.encrypt(b"card").unwrap();
    assert_eq!(
        service.decrypt(&token, None).unwrap().expose_secret(),
        b"card"
    );
    clock.advance(chrono::Duration::seconds(120));
    assert!(matches!(
        service.decrypt(&token, Some(Duration::from_secs(60))),
        Err(CryptoError::TokenExpired)
    ));
    let rotated = service.rotate_token(&token).unwrap();
    assert_eq!(
        service.decrypt(&rotated, None).unwrap().expose_secret(),
        b"card"
    );
}

#[tokio::test]
async fn the_facade_signs_only_with_application_keys() {
    // An application that exposes `EncryptionService::sign` must not become
    // a token mint: the tenant's token-signing key (and every key whose
    // signatures mean something elsewhere) is refused.
    let service = service();
    let owner = KeyOwner::new(tenant(1), Uuid::from_u128(10));
    let header = r#"{"alg":"EdDSA","typ":"at+jwt"}"#;
    let claims = r#"{"sub":"admin","roles":["super_admin"]}"#;
    let forged = format!(
        "{}.{}",
        base64_url(header.as_bytes()),
        base64_url(claims.as_bytes())
    );
    for purpose in [
        KeyPurpose::TokenSigning,
        KeyPurpose::OperatorSigning,
        KeyPurpose::AccountSigning,
        KeyPurpose::UserIdentity,
        KeyPurpose::LookupHashing,
        KeyPurpose::DataEncryption,
    ] {
        let key = service
            .create_key(KeySpec::new(owner, purpose))
            .await
            .unwrap();
        let refused = service.sign(tenant(1), key.key_id, forged.as_bytes()).await;
        assert!(
            matches!(refused, Err(KeyStoreError::WrongPurpose(id)) if id == key.key_id),
            "{purpose:?} signed for the application: {refused:?}"
        );
        let refused = service
            .verify(tenant(1), key.key_id, forged.as_bytes(), &[0; 64])
            .await;
        assert!(
            matches!(refused, Err(KeyStoreError::WrongPurpose(_))),
            "{purpose:?} verified for the application: {refused:?}"
        );
    }
    let application = service
        .create_key(KeySpec::new(owner, KeyPurpose::ApplicationSigning))
        .await
        .unwrap();
    let signature = service
        .sign(tenant(1), application.key_id, b"invoice 42")
        .await
        .unwrap();
    assert_eq!(signature.len(), 64);
    assert!(
        service
            .verify(tenant(1), application.key_id, b"invoice 42", &signature)
            .await
            .unwrap()
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
