//! Passkeys (WebAuthn credentials) as a user's stream keeps them.
//!
//! The core knows nothing of WebAuthn itself: a passkey is its credential
//! id, a name the user chose, the credential as the verifying library
//! serialised it (public key and algorithm included: public material, no
//! secret), and the facts the login needs to judge it by: the signature
//! counter, the backup flags, the transports and whether it is
//! discoverable. `security-authn` makes and verifies them.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DomainError, validate_name};
use crate::limits::{self, LimitExceeded};

/// The most passkeys one user holds.
pub const MAX_PASSKEYS_PER_USER: usize = 32;
/// The longest passkey name, in characters.
pub const MAX_PASSKEY_NAME_CHARS: usize = 64;
/// The longest credential id, in bytes (WebAuthn allows 1023).
pub const MAX_PASSKEY_ID_BYTES: usize = 1023;
/// The largest serialised credential, as JSON text.
pub const MAX_PASSKEY_CREDENTIAL_BYTES: usize = 16 * 1024;
/// The deepest nesting of a serialised credential.
pub const MAX_PASSKEY_CREDENTIAL_DEPTH: usize = 16;
/// The most transports recorded for one passkey.
pub const MAX_PASSKEY_TRANSPORTS: usize = 8;
/// The longest transport name, in bytes.
pub const MAX_PASSKEY_TRANSPORT_BYTES: usize = 32;

/// A credential id, base64url without padding (as WebAuthn's JSON shows
/// it). Not a secret.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasskeyId(String);

impl PasskeyId {
    /// The id of these credential-id bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DomainError> {
        if bytes.is_empty() {
            return Err(DomainError::invalid("passkey_id", "must not be empty"));
        }
        if bytes.len() > MAX_PASSKEY_ID_BYTES {
            return Err(LimitExceeded::new(
                "passkey_id",
                limits::Limit::Bytes(MAX_PASSKEY_ID_BYTES),
            )
            .into());
        }
        Ok(Self(data_encoding::BASE64URL_NOPAD.encode(bytes)))
    }

    /// An id from its base64url text, checked (at most
    /// [`MAX_PASSKEY_ID_BYTES`] once decoded).
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        if text.len() > MAX_PASSKEY_ID_BYTES.div_ceil(3) * 4 {
            return Err(LimitExceeded::new(
                "passkey_id",
                limits::Limit::Bytes(MAX_PASSKEY_ID_BYTES),
            )
            .into());
        }
        let bytes = data_encoding::BASE64URL_NOPAD
            .decode(text.as_bytes())
            .map_err(|_| DomainError::invalid("passkey_id", "must be base64url without padding"))?;
        Self::from_bytes(&bytes)
    }

    /// The base64url text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The credential-id bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        data_encoding::BASE64URL_NOPAD
            .decode(self.0.as_bytes())
            .unwrap_or_default()
    }
}

impl fmt::Debug for PasskeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasskeyId({})", self.0)
    }
}

impl fmt::Display for PasskeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A passkey registered to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredPasskey {
    /// The credential id.
    pub id: PasskeyId,
    /// The name the user gave it.
    pub name: String,
    /// The credential as the WebAuthn library serialised it at
    /// registration (public key, algorithm, flags). Opaque to the core.
    pub credential: Value,
    /// The authenticator's signature counter last accepted (0: the
    /// authenticator keeps none).
    pub sign_count: u32,
    /// How the authenticator can be reached (`usb`, `internal`, `hybrid`…).
    #[serde(default)]
    pub transports: Vec<String>,
    /// Whether the credential may be backed up (synced to other devices).
    pub backup_eligible: bool,
    /// Whether it is backed up, as last seen.
    pub backup_state: bool,
    /// Whether it is discoverable (a resident key that logs in without a
    /// username), when the client said so.
    #[serde(default)]
    pub resident: Option<bool>,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// When it last logged in.
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl RegisteredPasskey {
    /// Checks sizes and shapes before anything is stored.
    pub fn check(&self) -> Result<(), DomainError> {
        check_passkey_name(&self.name)?;
        limits::check_json(
            "passkey_credential",
            &self.credential,
            MAX_PASSKEY_CREDENTIAL_BYTES,
            MAX_PASSKEY_CREDENTIAL_DEPTH,
        )?;
        if self.transports.len() > MAX_PASSKEY_TRANSPORTS {
            return Err(DomainError::invalid("passkey_transports", "too many"));
        }
        for transport in &self.transports {
            limits::check_bytes("passkey_transport", transport, MAX_PASSKEY_TRANSPORT_BYTES)?;
        }
        Ok(())
    }
}

/// Checks a passkey's name: 1 to [`MAX_PASSKEY_NAME_CHARS`] characters, no
/// control characters, no surrounding whitespace.
pub fn check_passkey_name(name: &str) -> Result<(), DomainError> {
    validate_name("passkey_name", name)?;
    limits::check_chars("passkey_name", name, MAX_PASSKEY_NAME_CHARS)?;
    Ok(())
}

/// Why a passkey assertion with a valid signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PasskeyRefusal {
    /// The signature counter did not grow: two copies of the credential's
    /// private key may exist (a cloned authenticator).
    SignCountRegression {
        /// The counter last accepted.
        stored: u32,
        /// The counter presented.
        presented: u32,
    },
    /// The authenticator's backup flags changed in a way the credential
    /// never may (a sign of another authenticator).
    BackupFlagsChanged,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_oversize() {
        let id = PasskeyId::from_bytes(&[1, 2, 3, 250]).unwrap();
        assert_eq!(id.as_str(), "AQID-g");
        assert_eq!(id.to_bytes(), vec![1, 2, 3, 250]);
        assert_eq!(PasskeyId::parse("AQID-g").unwrap(), id);
        assert!(PasskeyId::parse("AQID+g==").is_err());
        assert!(PasskeyId::from_bytes(&[]).is_err());
        assert!(PasskeyId::from_bytes(&[0; MAX_PASSKEY_ID_BYTES + 1]).is_err());
        assert!(PasskeyId::parse(&"A".repeat(10_000)).is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_passkey_name("Laptop").is_ok());
        assert!(check_passkey_name("").is_err());
        assert!(check_passkey_name(" x").is_err());
        assert!(check_passkey_name("a\nb").is_err());
        assert!(check_passkey_name(&"x".repeat(MAX_PASSKEY_NAME_CHARS + 1)).is_err());
    }
}
