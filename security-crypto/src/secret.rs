//! Secret key types: 256-bit symmetric keys and the master key.
//!
//! Every type here zeroizes its bytes on drop, has no derived `Debug`, and
//! prints `[REDACTED]` in both `Debug` and `Display`.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use secrecy::SecretString;
use subtle::ConstantTimeEq;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::error::CryptoError;
use crate::hash::hmac_sha256;
use crate::random::{Redacted, random_bytes};

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes base64 in either alphabet (standard or URL-safe), padded or
/// not, ignoring surrounding whitespace (configuration files and
/// environment variables often end with a newline).
pub(crate) fn decode_base64_any(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let text = text.trim();
    let engine = if text.contains(['-', '_']) {
        &URL_SAFE_LENIENT
    } else {
        &STANDARD_LENIENT
    };
    engine.decode(text).ok().map(Zeroizing::new)
}

/// A 256-bit symmetric key: HMAC keys, Fernet keys, derived subkeys.
pub struct SymmetricKey(Zeroizing<[u8; 32]>);

impl SymmetricKey {
    /// The key length in bytes.
    pub const LEN: usize = 32;

    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, CryptoError> {
        random_bytes::<32>().map(Self)
    }

    /// A key from its bytes (the caller should zeroize its own copy).
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    /// A key from a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut key = Zeroizing::new([0_u8; 32]);
        if bytes.len() != Self::LEN {
            return Err(CryptoError::InvalidKey("expected 32 bytes"));
        }
        key.copy_from_slice(bytes);
        Ok(Self(key))
    }

    /// A key from base64 text (standard or URL-safe alphabet, padded or
    /// not) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = decode_base64_any(text).ok_or(CryptoError::InvalidKey("not base64"))?;
        Self::from_slice(&bytes)
    }

    /// The key as unpadded base64url text (for configuration files).
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(URL_SAFE_NO_PAD.encode(self.0.as_ref()))
    }

    /// The key bytes. Keep the borrow short and never log them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }

    /// A copy of the key (both copies zeroize on drop).
    pub fn duplicate(&self) -> Self {
        Self(self.0.clone())
    }
}

impl ZeroizeOnDrop for SymmetricKey {}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted("SymmetricKey").fmt(f)
    }
}

impl fmt::Display for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Constant-time equality, so that comparing keys leaks nothing.
impl PartialEq for SymmetricKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(other.0.as_ref()).into()
    }
}

impl Eq for SymmetricKey {}

/// The master key of an [`EnvelopeKeyStore`](crate::EnvelopeKeyStore): it
/// protects every data key, which protects every private key at rest.
///
/// It comes from configuration, by default the `ENCRYPTION_KEY` environment
/// variable: 32 random bytes in base64 (either alphabet, padded or not).
/// Generate one with [`MasterKey::generate`] and
/// [`MasterKey::to_base64`]. Its [`id`](Self::id) is a fingerprint that is
/// safe to store and log: it names the key without revealing it.
pub struct MasterKey {
    key: SymmetricKey,
    id: String,
}

impl MasterKey {
    /// The default environment variable holding the master key.
    pub const ENV_VAR: &'static str = "ENCRYPTION_KEY";

    /// A master key from its bytes.
    pub fn from_key(key: SymmetricKey) -> Self {
        let tag = hmac_sha256(key.expose_secret(), b"security-crypto/master-key-id/v1");
        let id = to_hex(tag.get(..8).unwrap_or_default());
        Self { key, id }
    }

    /// A new random master key.
    pub fn generate() -> Result<Self, CryptoError> {
        SymmetricKey::generate().map(Self::from_key)
    }

    /// A master key from base64 text of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        SymmetricKey::from_base64(text)
            .map(Self::from_key)
            .map_err(|_| CryptoError::InvalidKey("master key must be 32 bytes in base64"))
    }

    /// The master key from the `ENCRYPTION_KEY` environment variable.
    pub fn from_env() -> Result<Self, CryptoError> {
        Self::from_env_var(Self::ENV_VAR)
    }

    /// The master key from the named environment variable.
    pub fn from_env_var(name: &str) -> Result<Self, CryptoError> {
        let value =
            std::env::var(name).map_err(|_| CryptoError::MissingMasterKey(name.to_owned()))?;
        let value = Zeroizing::new(value);
        Self::from_base64(&value)
    }

    /// The key's fingerprint: 16 hex digits, safe to store and log.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as unpadded base64url text (to put into configuration).
    pub fn to_base64(&self) -> SecretString {
        self.key.to_base64()
    }

    pub(crate) fn key(&self) -> &SymmetricKey {
        &self.key
    }
}

/// Lowercase hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0x0f)]));
            text
        })
}

impl ZeroizeOnDrop for MasterKey {}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "master key {}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn base64_in_every_form_decodes_to_the_same_key() {
        let bytes: Vec<u8> = (0_u8..32)
            .map(|b| b.wrapping_mul(37).wrapping_add(250))
            .collect();
        let forms = [
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes),
            base64::engine::general_purpose::URL_SAFE.encode(&bytes),
            URL_SAFE_NO_PAD.encode(&bytes),
            format!("  {}\n", URL_SAFE_NO_PAD.encode(&bytes)),
        ];
        for form in forms {
            let key = SymmetricKey::from_base64(&form).unwrap();
            assert_eq!(key.expose_secret().as_slice(), bytes.as_slice(), "{form}");
        }
    }

    #[test]
    fn wrong_lengths_and_garbage_are_refused() {
        assert!(SymmetricKey::from_base64("AAAA").is_err());
        assert!(SymmetricKey::from_base64("not base64 at all!").is_err());
        assert!(SymmetricKey::from_slice(&[0; 31]).is_err());
        assert!(MasterKey::from_base64(&URL_SAFE_NO_PAD.encode([1_u8; 33])).is_err());
    }

    #[test]
    fn master_key_id_is_a_stable_fingerprint() {
        let key = MasterKey::generate().unwrap();
        let again = MasterKey::from_base64(key.to_base64().expose_secret()).unwrap();
        assert_eq!(key.id(), again.id());
        assert_eq!(key.id().len(), 16);
        assert_ne!(key.id(), MasterKey::generate().unwrap().id());
        assert!(!key.to_base64().expose_secret().contains(key.id()));
    }

    #[test]
    fn missing_env_var_is_reported_by_name() {
        let err = MasterKey::from_env_var("SECURITY_CRYPTO_TEST_SURELY_UNSET").unwrap_err();
        assert!(
            err.to_string()
                .contains("SECURITY_CRYPTO_TEST_SURELY_UNSET")
        );
    }
}
