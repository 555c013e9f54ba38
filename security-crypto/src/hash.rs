//! Hashing and MACs: SHA-256/512, HMAC-SHA256 with constant-time
//! verification, and keyed hashes for lookup tokens.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::ZeroizeOnDrop;

use crate::error::CryptoError;
use crate::kdf::derive_subkey;
use crate::random::Redacted;
use crate::secret::SymmetricKey;

type HmacSha256 = Hmac<Sha256>;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-512 of `data`.
pub fn sha512(data: &[u8]) -> [u8; 64] {
    Sha512::digest(data).into()
}

/// HMAC-SHA256 of `message` under `key` (any length; RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail; the
    // fallback keeps the function total without a panic path.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA256 of `message` under `key`, compared in
/// constant time. A tag of the wrong length is simply wrong.
pub fn hmac_sha256_verify(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return false;
    };
    mac.update(message);
    mac.verify_slice(tag).is_ok()
}

/// Constant-time equality of two byte strings (the length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A 256-bit HMAC-SHA256 key.
pub struct HmacKey(SymmetricKey);

impl HmacKey {
    /// A new random key.
    pub fn generate() -> Result<Self, CryptoError> {
        SymmetricKey::generate().map(Self)
    }

    /// A key from its bytes.
    pub fn from_key(key: SymmetricKey) -> Self {
        Self(key)
    }

    /// The tag of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 32] {
        hmac_sha256(self.0.expose_secret(), message)
    }

    /// Whether `tag` is the tag of `message` (constant time).
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        hmac_sha256_verify(self.0.expose_secret(), message, tag)
    }

    /// The key bytes. Keep the borrow short and never log them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl ZeroizeOnDrop for HmacKey {}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted("HmacKey").fmt(f)
    }
}

impl fmt::Display for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A keyed hash of a lookup token (API key, refresh token, backup code):
/// what is stored instead of the token.
///
/// Without the hashing key a stolen table of these is useless: it can be
/// neither reversed nor brute-forced offline. Equality is constant time.
/// Text form: 43 characters of unpadded base64url.
#[derive(Clone, Copy)]
pub struct LookupHash([u8; 32]);

impl LookupHash {
    /// A hash from its 32 bytes (e.g. read from a database).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes (e.g. to store in a database).
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for LookupHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for LookupHash {}

impl fmt::Display for LookupHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for LookupHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LookupHash({self})")
    }
}

impl FromStr for LookupHash {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0_u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(s, &mut bytes) {
            Ok(32) => Ok(Self(bytes)),
            _ => Err(CryptoError::InvalidParameters(
                "a lookup hash is 32 bytes of unpadded base64url",
            )),
        }
    }
}

impl Serialize for LookupHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LookupHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Keyed hashing (HMAC-SHA256) of lookup tokens.
///
/// Use one hasher per kind of token, derived from a root key with a label
/// ([`LookupHasher::derive`]), so that an API key and a refresh token with
/// the same text never hash alike. For keys held in a
/// [`KeyStore`](security_core::KeyStore), see
/// [`EncryptionService::lookup_hash`](crate::EncryptionService::lookup_hash).
pub struct LookupHasher {
    key: HmacKey,
}

impl LookupHasher {
    /// A hasher with its own key.
    pub fn new(key: HmacKey) -> Self {
        Self { key }
    }

    /// A hasher whose key is derived from `root` for `label` (e.g.
    /// `"api-key"`, `"refresh-token"`, `"backup-code"`) with HKDF-SHA256.
    pub fn derive(root: &SymmetricKey, label: &str) -> Result<Self, CryptoError> {
        derive_subkey(root, "lookup-hash", label.as_bytes())
            .map(|key| Self::new(HmacKey::from_key(key)))
    }

    /// The keyed hash of `token`.
    pub fn hash(&self, token: &[u8]) -> LookupHash {
        LookupHash(self.key.sign(token))
    }

    /// Whether `token` hashes to `expected` (constant time).
    pub fn verify(&self, token: &[u8], expected: &LookupHash) -> bool {
        self.key.verify(token, &expected.0)
    }
}

impl ZeroizeOnDrop for LookupHasher {}

impl fmt::Debug for LookupHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted("LookupHasher").fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::secret::to_hex as hex;

    #[test]
    fn sha_known_answers() {
        // FIPS 180-2 "abc" examples.
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha512(b"abc")),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn hmac_rfc4231_case_2() {
        let tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(hmac_sha256_verify(
            b"Jefe",
            b"what do ya want for nothing?",
            &tag
        ));
        let mut bad = tag;
        bad[31] ^= 1;
        assert!(!hmac_sha256_verify(
            b"Jefe",
            b"what do ya want for nothing?",
            &bad
        ));
        assert!(!hmac_sha256_verify(
            b"Jefe",
            b"what do ya want for nothing?",
            &tag[..31]
        ));
    }

    #[test]
    fn hmac_key_signs_and_verifies() {
        let key = HmacKey::generate().unwrap();
        let tag = key.sign(b"message");
        assert!(key.verify(b"message", &tag));
        assert!(!key.verify(b"messagf", &tag));
        assert!(!HmacKey::generate().unwrap().verify(b"message", &tag));
    }

    #[test]
    fn lookup_hashes_are_keyed_and_labelled() {
        let root = SymmetricKey::generate().unwrap();
        let api = LookupHasher::derive(&root, "api-key").unwrap();
        let refresh = LookupHasher::derive(&root, "refresh-token").unwrap();
        let other_root =
            LookupHasher::derive(&SymmetricKey::generate().unwrap(), "api-key").unwrap();
        let hash = api.hash(b"sec_ak_token");
        assert!(api.verify(b"sec_ak_token", &hash));
        assert!(!api.verify(b"sec_ak_tokeN", &hash));
        assert_ne!(hash, refresh.hash(b"sec_ak_token"));
        assert_ne!(hash, other_root.hash(b"sec_ak_token"));
        assert_eq!(
            hash,
            LookupHasher::derive(&root, "api-key")
                .unwrap()
                .hash(b"sec_ak_token")
        );
        assert_ne!(hash, api.hash(&sha256(b"sec_ak_token")));
    }

    #[test]
    fn lookup_hash_text_and_serde_round_trip() {
        let hash = LookupHasher::new(HmacKey::generate().unwrap()).hash(b"x");
        let text = hash.to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(text.parse::<LookupHash>().unwrap(), hash);
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(serde_json::from_str::<LookupHash>(&json).unwrap(), hash);
        assert!("short".parse::<LookupHash>().is_err());
        assert_eq!(LookupHash::from_bytes(*hash.as_bytes()), hash);
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
