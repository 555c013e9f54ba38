//! The crate's root error.

use security_core::{KeyId, KeyStoreError, PasswordHashError};

/// An operation of this crate failed.
///
/// Messages never contain secret material, ciphertext or key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A token or ciphertext is malformed, was made under another key, or
    /// was tampered with. Treat it as hostile or corrupt; retrying will not
    /// help.
    #[error("token is invalid")]
    InvalidToken,
    /// The token is authentic but older than its time-to-live. Ask for a
    /// fresh one.
    #[error("token has expired")]
    TokenExpired,
    /// Key bytes or key text have the wrong length or encoding. Fix the
    /// configuration or the caller.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The master key is not configured (the named environment variable is
    /// unset). Configure it; the process cannot protect keys without it.
    #[error("master key is not configured: set {0}")]
    MissingMasterKey(String),
    /// A key ring needs at least one key. Fix the configuration.
    #[error("key ring is empty")]
    EmptyKeyRing,
    /// A parameter is out of its allowed range (the text says which). Fix
    /// the caller or the configuration.
    #[error("invalid parameters: {0}")]
    InvalidParameters(&'static str),
    /// A value could not be serialized before encryption or deserialized
    /// after decryption. The value or the target type is wrong.
    #[error("value could not be encoded or decoded")]
    Serialization(#[source] serde_json::Error),
    /// The operating system's random number generator failed. Log it; the
    /// machine is unhealthy.
    #[error("the operating system random number generator failed")]
    Random,
    /// No application key ring was configured for this operation.
    /// Configure one with `EncryptionService::with_key_ring`.
    #[error("no application key ring is configured")]
    NoKeyRing,
    /// A stored key record failed its integrity check (modified outside the
    /// key store, or restored from another deployment). Treat as tampering;
    /// log it and alert.
    #[error("key record {0} failed its integrity check")]
    RecordIntegrity(KeyId),
    /// A stored key record is genuine but not the latest one the key
    /// ledger recorded (an older record written back: a rollback of a
    /// revocation or a destruction), or it changed without the ledger.
    /// Treat as tampering; log it and alert. The key is unusable until an
    /// operator restores its latest record.
    #[error("key record {0} is not the revision its ledger recorded")]
    RecordRolledBack(KeyId),
    /// A stored key record is protected by a master key this process does
    /// not have. Configure the previous master key (see
    /// `EnvelopeKeyStore::with_previous_master_keys`).
    #[error("key record is protected by an unknown master key {0}")]
    UnknownMasterKey(String),
    /// A key-store operation failed; the inner error says how to handle it.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// Password hashing failed; the inner error says how to handle it.
    #[error(transparent)]
    Password(#[from] PasswordHashError),
}

impl CryptoError {
    /// Wraps this error as a key-store backend failure.
    pub(crate) fn into_backend(self) -> KeyStoreError {
        match self {
            Self::KeyStore(inner) => inner,
            other => KeyStoreError::Backend(Box::new(other)),
        }
    }
}
