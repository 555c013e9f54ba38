//! Encryption, hashing, key derivation, password hashing, signing keys and
//! key stores for the security crate family.
//!
//! This crate is where randomness and private keys live. It provides:
//!
//! - **Symmetric encryption** with Fernet ([`FernetKey`], a rotating
//!   [`FernetKeyRing`], serde field encryption with [`Encrypted`]); it
//!   passes every case of the Fernet specification's test vectors.
//! - **Hashing and MACs**: [`sha256`], [`sha512`], HMAC-SHA256 with
//!   constant-time verification ([`HmacKey`], [`hmac_sha256_verify`]), and
//!   keyed [`LookupHasher`]s for API keys, refresh tokens and backup codes,
//!   so that a stolen table of hashes is useless.
//! - **Key derivation**: HKDF-SHA256 subkeys with context labels
//!   ([`derive_subkey`]) and argon2id for passwords ([`PasswordKdf`]).
//! - **Password hashing**: [`Argon2PasswordHasher`], the production
//!   [`PasswordHasher`](security_core::PasswordHasher): argon2id PHC
//!   strings at the OWASP defaults, `needs_rehash`, `dummy_verify`.
//! - **Signing keys**: Ed25519 ([`Ed25519KeyPair`]) for JWTs and NATS
//!   nkeys ([`NkeyPair`]), public keys as JWK / JWKS ([`Jwk`], [`JwkSet`]).
//! - **Key stores** implementing [`KeyStore`](security_core::KeyStore):
//!   [`MemoryKeyStore`] and [`EnvelopeKeyStore`] (private keys encrypted
//!   under per-key data keys under a master key, stored through any
//!   [`KeyRecordStore`]). Per-subject data keys seal secret fields of
//!   events; [`shred`](security_core::KeyStore::shred) destroys them
//!   (crypto-shredding).
//! - The production ports of the core: [`SystemClock`] and [`UuidV7Ids`].
//! - [`EncryptionService`], the tenant-aware facade over all of it.
//!
//! # Secrets
//!
//! Every secret type zeroizes on drop and prints `[REDACTED]` (or only
//! public parts) in `Debug` and `Display`; decrypted data comes back in
//! zeroizing buffers or `secrecy` wrappers; MACs, tags and hashes are
//! compared in constant time; error messages never contain key material.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use secrecy::{ExposeSecret, SecretString};
//! use security_core::{KeyOwner, KeyStoreError, TenantId};
//! use security_crypto::{Argon2Config, Argon2PasswordHasher, EncryptionService, MasterKey, EnvelopeKeyStore};
//! use uuid::Uuid;
//!
//! # tokio_test_block_on(async {
//! // Private keys encrypted at rest under a master key (from ENCRYPTION_KEY in production).
//! let keys = EnvelopeKeyStore::in_memory(MasterKey::generate()?)?;
//! let passwords = Argon2PasswordHasher::new(Argon2Config::OWASP)?;
//! let service = EncryptionService::new(Arc::new(keys), Arc::new(passwords));
//!
//! // Seal a secret for one subject, open it again.
//! let subject = KeyOwner::new(TenantId::from_uuid(Uuid::from_u128(1)), Uuid::from_u128(2));
//! let sealed = service.seal_secret(subject, &SecretString::from("JBSWY3DPEHPK3PXP")).await?;
//! assert_eq!(service.unseal_secret(subject, &sealed).await?.expose_secret(), "JBSWY3DPEHPK3PXP");
//!
//! // Erase the subject: what was sealed for it is gone for good.
//! service.shred(subject).await?;
//! assert!(matches!(service.unseal(subject, &sealed).await, Err(KeyStoreError::Destroyed(_))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod fernet;
mod hash;
mod kdf;
mod keystore;
mod password;
mod random;
mod secret;
mod service;
mod signing;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::CryptoError;
pub use fernet::{Encrypted, FernetKey, FernetKeyRing, MAX_CLOCK_SKEW_SECS, Plaintext};
pub use hash::{
    HmacKey, LookupHash, LookupHasher, constant_time_eq, hmac_sha256, hmac_sha256_verify, sha256,
    sha512,
};
pub use kdf::{PasswordKdf, derive_subkey, hkdf_sha256};
pub use keystore::{
    EnvelopeKeyStore, KeyChange, KeyLedger, KeyLedgerCommand, KeyLedgerError, KeyLedgerEvent,
    KeyRecord, KeyRecordStore, KeyRecordStoreError, MemoryKeyRecordStore, MemoryKeyStore,
    WrappedMaterial,
};
pub use password::{Argon2Config, Argon2PasswordHasher};
pub use random::{SystemClock, UuidV7Ids, fill_random, generate_token, random_bytes};
pub use secret::{MasterKey, SymmetricKey};
pub use service::EncryptionService;
pub use signing::{
    Ed25519KeyPair, Ed25519PublicKey, Jwk, JwkSet, NkeyKind, NkeyPair, verify_nkey_signature,
};
