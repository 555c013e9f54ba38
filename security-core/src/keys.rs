//! Keys and the [`KeyStore`] trait.
//!
//! Private key material never leaves a key store in clear: callers ask it
//! to sign or to seal/unseal, and get public keys and metadata back. The one
//! exception is [`KeyStore::export_private_key`], which only works for keys
//! created `exportable` (NATS user seeds that go into a `.creds` file).

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{SecretSlice, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{KeyId, TenantId};
use crate::sealed::SealedSecret;

/// The algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// Ed25519 signatures (JWT `EdDSA`, NATS nkeys).
    Ed25519,
    /// HMAC-SHA256 (JWT `HS256`, keyed lookup hashes).
    HmacSha256,
    /// Fernet: AES-128-CBC with HMAC-SHA256 (sealing fields).
    Fernet,
}

/// What a key is for. A key store refuses to use a key for anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyPurpose {
    /// An operator's identity or signing key (NATS `O…` nkey).
    OperatorSigning,
    /// An account's identity or signing key (NATS `A…` nkey).
    AccountSigning,
    /// A user's identity key (NATS `U…` nkey).
    UserIdentity,
    /// Signs access tokens (JWT).
    TokenSigning,
    /// Keyed hashing of lookup tokens (API keys, refresh tokens, backup codes).
    LookupHashing,
    /// A subject's data key: seals secret fields in that subject's events.
    DataEncryption,
    /// Signs the application's own messages (`EncryptionService::sign`).
    /// The only purpose an application may sign arbitrary bytes with: the
    /// keys of every other purpose sign only what their owner builds
    /// (tokens, NATS JWTs, lookup hashes).
    ApplicationSigning,
}

impl KeyPurpose {
    /// The algorithm a key of this purpose uses.
    pub fn default_algorithm(self) -> KeyAlgorithm {
        match self {
            Self::OperatorSigning
            | Self::AccountSigning
            | Self::UserIdentity
            | Self::TokenSigning
            | Self::ApplicationSigning => KeyAlgorithm::Ed25519,
            Self::LookupHashing => KeyAlgorithm::HmacSha256,
            Self::DataEncryption => KeyAlgorithm::Fernet,
        }
    }
}

/// A public key, as text.
///
/// For Ed25519 keys of the trust hierarchy (operator, account, user) the
/// text is the NATS nkey public key (`O…`, `A…`, `U…`); for other Ed25519
/// keys it is the base64url (unpadded) encoding of the 32 raw bytes.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKey {
    /// The algorithm.
    pub algorithm: KeyAlgorithm,
    /// The encoded key.
    pub encoded: String,
}

impl PublicKey {
    /// An Ed25519 public key in the given text encoding.
    pub fn ed25519(encoded: impl Into<String>) -> Self {
        Self {
            algorithm: KeyAlgorithm::Ed25519,
            encoded: encoded.into(),
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({:?}, {})", self.algorithm, self.encoded)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encoded)
    }
}

/// Who a key belongs to: a tenant and an owner inside it (the operator,
/// an account, a user, or any subject whose data is sealed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyOwner {
    /// The owner's tenant.
    pub tenant_id: TenantId,
    /// The owner's id (operator, account, user or data subject).
    pub owner_id: Uuid,
}

impl KeyOwner {
    /// An owner.
    pub fn new(tenant_id: TenantId, owner_id: impl Into<Uuid>) -> Self {
        Self {
            tenant_id,
            owner_id: owner_id.into(),
        }
    }
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// Who the key belongs to.
    pub owner: KeyOwner,
    /// What it is for.
    pub purpose: KeyPurpose,
    /// When it stops being valid for new signatures (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether [`KeyStore::export_private_key`] may return it. Only for
    /// keys whose private half must be handed to a client (NATS user seeds).
    pub exportable: bool,
}

impl KeySpec {
    /// A non-exportable key that never expires.
    pub fn new(owner: KeyOwner, purpose: KeyPurpose) -> Self {
        Self {
            owner,
            purpose,
            expires_at: None,
            exportable: false,
        }
    }
}

/// The life-cycle state of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum KeyStatus {
    /// Usable for everything its purpose allows.
    Active,
    /// Replaced by a successor: still verifies and unseals, no longer signs
    /// or seals.
    Rotated {
        /// The key that replaced it.
        successor: KeyId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Revoked: signatures by it must be refused; it signs nothing.
    Revoked {
        /// When.
        at: DateTime<Utc>,
    },
    /// Destroyed: the private material is gone forever (crypto-shredding).
    Destroyed {
        /// When.
        at: DateTime<Utc>,
    },
}

/// What a key store tells about a key: never its private half.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The key's id.
    pub key_id: KeyId,
    /// Who it belongs to.
    pub owner: KeyOwner,
    /// What it is for.
    pub purpose: KeyPurpose,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
    /// The public half (asymmetric keys only).
    pub public_key: Option<PublicKey>,
    /// Where it is in its life cycle.
    pub status: KeyStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops signing.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the private half may be exported.
    pub exportable: bool,
}

/// A key-store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// No key with this id (or it belongs to another tenant).
    #[error("key {0} not found")]
    NotFound(KeyId),
    /// The key was revoked and may not be used.
    #[error("key {0} is revoked")]
    Revoked(KeyId),
    /// The key was destroyed: what it sealed is unreadable forever.
    #[error("key {0} was destroyed")]
    Destroyed(KeyId),
    /// The key was rotated out: it may still verify and unseal but no
    /// longer sign or seal.
    #[error("key {0} was rotated out")]
    RotatedOut(KeyId),
    /// The key has expired.
    #[error("key {0} has expired")]
    Expired(KeyId),
    /// The key's purpose or algorithm does not allow this operation.
    #[error("key {0} cannot be used for this operation")]
    WrongPurpose(KeyId),
    /// The key was not created exportable.
    #[error("key {0} is not exportable")]
    NotExportable(KeyId),
    /// A sealed value failed its integrity check or was sealed by another
    /// store: treat as tampering.
    #[error("sealed value could not be opened")]
    Unseal,
    /// The store's backend failed (database, KMS). Log it; retrying may help.
    #[error("key store backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Holds private keys and performs the operations that need them.
///
/// Contract: private material never leaves in clear (except through
/// [`export_private_key`](Self::export_private_key) for exportable keys);
/// keys are scoped to their owner's tenant; a revoked key signs nothing; a
/// destroyed key's sealed values are unreadable forever, including by this
/// store; every method is safe to call concurrently.
#[async_trait]
pub trait KeyStore: fmt::Debug + Send + Sync {
    /// Creates a key.
    async fn create_key(&self, spec: KeySpec) -> Result<KeyInfo, KeyStoreError>;

    /// A key's metadata and public half.
    async fn key(&self, key_id: KeyId) -> Result<KeyInfo, KeyStoreError>;

    /// Every key of an owner, oldest first, whatever its status.
    async fn list_keys(&self, owner: KeyOwner) -> Result<Vec<KeyInfo>, KeyStoreError>;

    /// Creates a successor with the same owner and purpose and marks this
    /// key rotated. Returns the successor.
    async fn rotate_key(&self, key_id: KeyId) -> Result<KeyInfo, KeyStoreError>;

    /// Revokes a key: it signs and seals nothing more.
    async fn revoke_key(&self, key_id: KeyId) -> Result<KeyInfo, KeyStoreError>;

    /// Erases a key's private material forever.
    async fn destroy_key(&self, key_id: KeyId) -> Result<(), KeyStoreError>;

    /// Signs `message` (Ed25519 signature or HMAC-SHA256 tag, by the key's
    /// algorithm). Refused for revoked, rotated-out, expired, destroyed keys.
    async fn sign(&self, key_id: KeyId, message: &[u8]) -> Result<Vec<u8>, KeyStoreError>;

    /// Checks a signature or tag made by [`sign`](Self::sign) (HMAC tags
    /// are compared in constant time). Active, rotated-out and expired keys
    /// still verify what they signed while valid; revoked and destroyed
    /// keys are refused with an error (never `Ok(false)`), as are keys that
    /// do not sign. This is how HMAC keys (lookup hashes, HS256) are
    /// checked, since their secret never leaves the store.
    async fn verify(
        &self,
        key_id: KeyId,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, KeyStoreError>;

    /// Seals `plaintext` under the owner's active data key, creating one if
    /// the owner has none.
    async fn seal(&self, owner: KeyOwner, plaintext: &[u8]) -> Result<SealedSecret, KeyStoreError>;

    /// Opens a sealed value.
    async fn unseal(&self, sealed: &SealedSecret) -> Result<SecretSlice<u8>, KeyStoreError>;

    /// Destroys every data key of an owner: everything sealed for it becomes
    /// unreadable forever (crypto-shredding, GDPR erasure).
    async fn shred(&self, owner: KeyOwner) -> Result<(), KeyStoreError>;

    /// The private half of an exportable key, in its text form (an nkey
    /// seed for Ed25519 keys of the trust hierarchy).
    async fn export_private_key(&self, key_id: KeyId) -> Result<SecretString, KeyStoreError>;
}
