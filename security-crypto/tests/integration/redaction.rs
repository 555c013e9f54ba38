//! No secret appears in any formatted output: every secret-bearing type is
//! formatted with `{:?}`, `{:#?}` and (where it has one) `{}`, and none of
//! the textual forms of its secret may appear.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use security_core::{KeyOwner, KeyPurpose, KeySpec, KeyStore, TenantId};
use security_crypto::{
    Argon2Config, Argon2PasswordHasher, Ed25519KeyPair, Encrypted, EncryptionService,
    EnvelopeKeyStore, FernetKey, FernetKeyRing, HmacKey, KeyRecordStore, LookupHasher, MasterKey,
    MemoryKeyRecordStore, MemoryKeyStore, NkeyPair, SymmetricKey,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::{clock, ids};

/// Bytes that look like nothing else in the output.
const SECRET: [u8; 32] = [
    0xd1, 0x7a, 0x3c, 0x99, 0x05, 0xee, 0x42, 0x8b, 0x17, 0x6f, 0xa0, 0x33, 0xc8, 0x5d, 0x21, 0xfe,
    0x90, 0x0b, 0x74, 0xcd, 0x38, 0x66, 0xe1, 0x12, 0xab, 0x4f, 0x87, 0x29, 0xd4, 0x5a, 0x03, 0xb6,
];

/// The textual forms a 32-byte secret could take in output.
fn forms(bytes: &[u8]) -> Vec<String> {
    let hex = crate::hex(bytes);
    let decimal = format!("{:?}", &bytes[..6]);
    vec![
        hex.clone(),
        hex.to_uppercase(),
        hex[..16].to_owned(),
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        URL_SAFE_NO_PAD.encode(&bytes[..12]),
        decimal
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    ]
}

fn assert_hidden(what: &str, outputs: &[String], secrets: &[String]) {
    for output in outputs {
        for secret in secrets {
            assert!(
                !output.contains(secret.as_str()),
                "{what} leaks a secret in {output:?}"
            );
        }
    }
}

fn debug<T: std::fmt::Debug>(value: &T) -> Vec<String> {
    vec![format!("{value:?}"), format!("{value:#?}")]
}

fn debug_display<T: std::fmt::Debug + std::fmt::Display>(value: &T) -> Vec<String> {
    let mut out = debug(value);
    out.push(format!("{value}"));
    out
}

fn symmetric() -> SymmetricKey {
    SymmetricKey::from_bytes(Zeroizing::new(SECRET))
}

#[test]
fn key_types_are_redacted() {
    let secrets = forms(&SECRET);
    assert_hidden("SymmetricKey", &debug_display(&symmetric()), &secrets);
    assert_hidden(
        "MasterKey",
        &debug_display(&MasterKey::from_key(symmetric())),
        &secrets,
    );
    assert_hidden(
        "HmacKey",
        &debug_display(&HmacKey::from_key(symmetric())),
        &secrets,
    );
    assert_hidden(
        "LookupHasher",
        &debug(&LookupHasher::new(HmacKey::from_key(symmetric()))),
        &secrets,
    );
    assert_hidden(
        "FernetKey",
        &debug_display(&FernetKey::from_key(&symmetric()).unwrap()),
        &secrets,
    );
    let ring =
        FernetKeyRing::new(vec![FernetKey::from_key(&symmetric()).unwrap()], clock()).unwrap();
    assert_hidden("FernetKeyRing", &debug(&ring), &secrets);
    let pair = Ed25519KeyPair::from_seed(&SECRET);
    assert_hidden("Ed25519KeyPair", &debug_display(&pair), &secrets);
    assert!(
        format!("{pair:?}").contains(&pair.public_key().to_base64url()),
        "the public half is shown"
    );
}

#[test]
fn nkey_pairs_are_redacted() {
    let pair = NkeyPair::generate(security_crypto::NkeyKind::User).unwrap();
    let seed = pair.seed().unwrap();
    let raw = nkeys::decode_seed(seed.expose_secret()).unwrap().1;
    let mut secrets = forms(&raw);
    secrets.push(seed.expose_secret().to_owned());
    secrets.push(seed.expose_secret()[..20].to_owned());
    assert_hidden("NkeyPair", &debug_display(&pair), &secrets);
    assert_hidden("SecretString seed", &debug(&seed), &secrets);
}

#[test]
fn passwords_and_plaintext_are_redacted() {
    let hasher = Argon2PasswordHasher::new(Argon2Config {
        memory_kib: 256,
        iterations: 1,
        ..Argon2Config::OWASP
    })
    .unwrap();
    let password = SecretString::from("tr0ub4dor&3-unique");
    let hash = security_core::PasswordHasher::hash(&hasher, &password).unwrap();
    let secrets = vec![
        "tr0ub4dor".to_owned(),
        "$argon2id$".to_owned(),
        hash.expose_secret()[30..].to_owned(),
    ];
    assert_hidden("Argon2PasswordHasher", &debug(&hasher), &secrets);
    assert_hidden("password", &debug(&password), &secrets);
    assert_hidden("password hash", &debug(&hash), &secrets);

    let ring = FernetKeyRing::new(vec![FernetKey::generate().unwrap()], clock()).unwrap();
    let field = Encrypted::seal(&ring, &"4111 1111 1111 1111".to_owned()).unwrap();
    let decrypted = ring.decrypt_stored(field.token()).unwrap();
    let secrets = vec!["4111".to_owned(), field.token()[..20].to_owned()];
    assert_hidden("Encrypted", &debug(&field), &secrets);
    assert_hidden("decrypted bytes", &debug(&decrypted), &secrets);
    assert_hidden(
        "decrypted string",
        &debug(
            &ring
                .decrypt_string(&ring.encrypt_str("4111").unwrap())
                .unwrap(),
        ),
        &secrets,
    );
}

#[tokio::test]
async fn key_stores_records_and_the_service_are_redacted() {
    let master = MasterKey::from_key(symmetric());
    let records = Arc::new(MemoryKeyRecordStore::new());
    let envelope =
        Arc::new(EnvelopeKeyStore::new(records.clone(), master, clock(), ids()).unwrap());
    let memory = Arc::new(MemoryKeyStore::with_clock_and_ids(clock(), ids()));
    let owner = KeyOwner::new(TenantId::from_uuid(Uuid::from_u128(1)), Uuid::from_u128(2));
    let mut secrets = forms(&SECRET);
    for store in [envelope.clone() as Arc<dyn KeyStore>, memory.clone()] {
        for purpose in [
            KeyPurpose::UserIdentity,
            KeyPurpose::TokenSigning,
            KeyPurpose::LookupHashing,
        ] {
            let spec = KeySpec {
                exportable: true,
                ..KeySpec::new(owner, purpose)
            };
            let key = store.create_key(spec).await.unwrap();
            let exported = store.export_private_key(key.key_id).await.unwrap();
            secrets.push(exported.expose_secret().to_owned());
            secrets.push(exported.expose_secret()[..16].to_owned());
            assert_hidden("exported key", &debug(&exported), &secrets);
        }
        let sealed = store.seal(owner, b"sealed-plaintext").await.unwrap();
        secrets.push("sealed-plaintext".to_owned());
        secrets.push(sealed.ciphertext()[..24].to_owned());
        assert_hidden("SealedSecret", &debug(&sealed), &secrets);
        assert_hidden(
            "unsealed",
            &debug(&store.unseal(&sealed).await.unwrap()),
            &secrets,
        );
    }
    for record in records.list_by_owner(owner).await.unwrap() {
        let mut record_secrets = secrets.clone();
        if let Some(material) = &record.material {
            record_secrets.push(material.ciphertext.clone());
            record_secrets.push(material.wrapped_key.clone());
            assert_hidden("WrappedMaterial", &debug(material), &record_secrets);
        }
        assert_hidden("KeyRecord", &debug(&record), &record_secrets);
    }
    assert_hidden("EnvelopeKeyStore", &debug(&envelope), &secrets);
    assert_hidden("MemoryKeyStore", &debug(&memory), &secrets);
    let hasher = Argon2PasswordHasher::new(Argon2Config {
        memory_kib: 256,
        iterations: 1,
        ..Argon2Config::OWASP
    })
    .unwrap();
    let service = EncryptionService::new(envelope, Arc::new(hasher)).with_key_ring(
        FernetKeyRing::new(vec![FernetKey::from_key(&symmetric()).unwrap()], clock()).unwrap(),
    );
    assert_hidden("EncryptionService", &debug(&service), &secrets);
}

#[test]
fn errors_never_echo_what_they_were_given() {
    let secret_text = URL_SAFE_NO_PAD.encode(&SECRET[..31]);
    let errors = [
        MasterKey::from_base64(&secret_text).unwrap_err(),
        SymmetricKey::from_base64(&secret_text).unwrap_err(),
        FernetKey::from_base64(&secret_text).unwrap_err(),
        NkeyPair::from_seed(&SecretString::from(format!("SU{secret_text}"))).unwrap_err(),
        FernetKey::generate()
            .unwrap()
            .decrypt_stored(&secret_text)
            .unwrap_err(),
    ];
    for error in errors {
        assert_hidden(
            "CryptoError",
            &[format!("{error}"), format!("{error:?}")],
            &[secret_text[..12].to_owned()],
        );
    }
}
