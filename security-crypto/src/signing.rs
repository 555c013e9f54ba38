//! Ed25519 signing keys: for JWTs (`EdDSA`) and for NATS nkeys (operator,
//! account and user), with public-key export as JWK / JWKS.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use secrecy::SecretString;
use security_core::{KeyAlgorithm, KeyInfo, KeyPurpose, KeyStatus};
use serde::{Deserialize, Serialize};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::error::CryptoError;
use crate::random::random_bytes;
use crate::secret::SymmetricKey;

/// An Ed25519 key pair (RFC 8032). The private half zeroizes on drop.
pub struct Ed25519KeyPair {
    signing: SigningKey,
}

impl Ed25519KeyPair {
    /// A new random key pair.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self::from_seed(&*random_bytes::<32>()?))
    }

    /// The key pair of a 32-byte seed (the RFC 8032 private key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The key pair whose seed is `key`.
    pub fn from_key(key: &SymmetricKey) -> Self {
        Self::from_seed(key.expose_secret())
    }

    /// The public half.
    pub fn public_key(&self) -> Ed25519PublicKey {
        Ed25519PublicKey(self.signing.verifying_key())
    }

    /// The 64-byte signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.public_key().verify(message, signature)
    }

    /// The seed, for storage under encryption.
    pub(crate) fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }
}

impl ZeroizeOnDrop for Ed25519KeyPair {}

impl fmt::Debug for Ed25519KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519KeyPair")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Ed25519KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519 key pair {}", self.public_key())
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ed25519PublicKey(VerifyingKey);

impl Ed25519PublicKey {
    /// A public key from its 32 bytes; refuses bytes that are not a point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| CryptoError::InvalidKey("not an Ed25519 public key"))
    }

    /// A public key from unpadded base64url (the `x` of a JWK, and the text
    /// of token-signing keys in a key store).
    pub fn from_base64url(text: &str) -> Result<Self, CryptoError> {
        let mut bytes = [0_u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(32) => Self::from_bytes(&bytes),
            _ => Err(CryptoError::InvalidKey(
                "expected 32 bytes of unpadded base64url",
            )),
        }
    }

    /// A public key from a NATS nkey public key (`O…`, `A…`, `U…`, …).
    pub fn from_nkey(text: &str) -> Result<Self, CryptoError> {
        let (_, bytes) = nkeys::from_public_key(text)
            .map_err(|_| CryptoError::InvalidKey("not an nkey public key"))?;
        Self::from_bytes(&bytes)
    }

    /// A public key from the text a key store gives for it: an nkey for
    /// keys of the trust hierarchy, base64url otherwise.
    pub fn from_public_key(key: &security_core::PublicKey) -> Result<Self, CryptoError> {
        if key.algorithm != KeyAlgorithm::Ed25519 {
            return Err(CryptoError::InvalidKey("not an Ed25519 key"));
        }
        if key.encoded.len() == 56 {
            Self::from_nkey(&key.encoded)
        } else {
            Self::from_base64url(&key.encoded)
        }
    }

    /// A public key from PEM (`-----BEGIN PUBLIC KEY-----`, an Ed25519
    /// SubjectPublicKeyInfo, RFC 8410).
    pub fn from_pem(text: &str) -> Result<Self, CryptoError> {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        VerifyingKey::from_public_key_pem(text.trim())
            .map(Self)
            .map_err(|_| CryptoError::InvalidKey("not an Ed25519 public key in PEM"))
    }

    /// The key as PEM (SubjectPublicKeyInfo, RFC 8410).
    pub fn to_pem(&self) -> Result<String, CryptoError> {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        self.0
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| CryptoError::InvalidKey("the key could not be encoded as PEM"))
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Unpadded base64url of the 32 bytes.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    /// Whether `signature` is a valid signature of `message` by this key.
    ///
    /// Uses strict verification (rejects non-canonical signatures and
    /// small-order keys), so a signature cannot be altered into another
    /// valid one.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature)
            .is_ok_and(|signature| self.0.verify_strict(message, &signature).is_ok())
    }
}

impl fmt::Debug for Ed25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519PublicKey({})", self.to_base64url())
    }
}

impl fmt::Display for Ed25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

/// The kinds of NATS nkey this family issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NkeyKind {
    /// Operator (`O…`, seed `SO…`).
    Operator,
    /// Account (`A…`, seed `SA…`).
    Account,
    /// User (`U…`, seed `SU…`).
    User,
}

impl NkeyKind {
    /// The nkey kind of a key purpose, for the purposes of the trust
    /// hierarchy.
    pub fn for_purpose(purpose: KeyPurpose) -> Option<Self> {
        match purpose {
            KeyPurpose::OperatorSigning => Some(Self::Operator),
            KeyPurpose::AccountSigning => Some(Self::Account),
            KeyPurpose::UserIdentity => Some(Self::User),
            _ => None,
        }
    }

    /// The first letter of the public key.
    pub fn prefix(self) -> char {
        match self {
            Self::Operator => 'O',
            Self::Account => 'A',
            Self::User => 'U',
        }
    }

    fn key_pair_type(self) -> nkeys::KeyPairType {
        match self {
            Self::Operator => nkeys::KeyPairType::Operator,
            Self::Account => nkeys::KeyPairType::Account,
            Self::User => nkeys::KeyPairType::User,
        }
    }

    fn from_key_pair_type(kind: &nkeys::KeyPairType) -> Option<Self> {
        match kind {
            nkeys::KeyPairType::Operator => Some(Self::Operator),
            nkeys::KeyPairType::Account => Some(Self::Account),
            nkeys::KeyPairType::User => Some(Self::User),
            _ => None,
        }
    }
}

/// Runs `f` on an `nkeys::KeyPair` built from `seed`, then drops it.
///
/// `nkeys::KeyPair` keeps a plain copy of the seed that it does not wipe on
/// drop, so this crate never keeps one alive: it signs with its own
/// zeroizing [`Ed25519KeyPair`] and builds an nkeys pair only for the
/// moment it needs the nkey text encodings (at key creation and export).
fn with_nkeys_pair<T>(
    kind: NkeyKind,
    seed: &[u8; 32],
    f: impl FnOnce(&nkeys::KeyPair) -> T,
) -> Result<T, CryptoError> {
    let pair = nkeys::KeyPair::new_from_raw(kind.key_pair_type(), *seed)
        .map_err(|_| CryptoError::InvalidKey("nkeys refused the seed"))?;
    Ok(f(&pair))
}

/// The nkey public key text of the key pair with this seed.
pub(crate) fn nkey_public_key(kind: NkeyKind, seed: &[u8; 32]) -> Result<String, CryptoError> {
    with_nkeys_pair(kind, seed, nkeys::KeyPair::public_key)
}

/// The nkey seed text (`SO…`, `SA…`, `SU…`) of this seed.
pub(crate) fn nkey_seed(kind: NkeyKind, seed: &[u8; 32]) -> Result<SecretString, CryptoError> {
    with_nkeys_pair(kind, seed, nkeys::KeyPair::seed)?
        .map(SecretString::from)
        .map_err(|_| CryptoError::InvalidKey("nkeys could not encode the seed"))
}

/// A NATS nkey pair: an Ed25519 key pair with its nkey kind.
pub struct NkeyPair {
    kind: NkeyKind,
    key: Ed25519KeyPair,
    public_key: String,
}

impl NkeyPair {
    /// A new random nkey pair.
    pub fn generate(kind: NkeyKind) -> Result<Self, CryptoError> {
        Self::from_raw(kind, &*random_bytes::<32>()?)
    }

    fn from_raw(kind: NkeyKind, seed: &[u8; 32]) -> Result<Self, CryptoError> {
        let public_key = nkey_public_key(kind, seed)?;
        Ok(Self {
            kind,
            key: Ed25519KeyPair::from_seed(seed),
            public_key,
        })
    }

    /// The pair of an nkey seed (`SO…`, `SA…`, `SU…`, 58 characters).
    pub fn from_seed(seed: &SecretString) -> Result<Self, CryptoError> {
        let (prefix, raw) = nkeys::decode_seed(secrecy::ExposeSecret::expose_secret(seed))
            .map_err(|_| CryptoError::InvalidKey("not an nkey seed"))?;
        let raw = Zeroizing::new(raw);
        let kind = NkeyKind::from_key_pair_type(&nkeys::KeyPairType::from(prefix)).ok_or(
            CryptoError::InvalidKey("not an operator, account or user seed"),
        )?;
        Self::from_raw(kind, &raw)
    }

    /// The kind.
    pub fn kind(&self) -> NkeyKind {
        self.kind
    }

    /// The nkey public key (`O…`, `A…`, `U…`, 56 characters).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The nkey seed: the secret that goes into a `.creds` file.
    pub fn seed(&self) -> Result<SecretString, CryptoError> {
        nkey_seed(self.kind, &self.key.seed())
    }

    /// The 64-byte Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message)
    }

    /// The underlying Ed25519 key pair.
    pub fn ed25519(&self) -> &Ed25519KeyPair {
        &self.key
    }
}

impl ZeroizeOnDrop for NkeyPair {}

impl fmt::Debug for NkeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NkeyPair")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for NkeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.public_key)
    }
}

/// Whether `signature` is a valid signature of `message` by the nkey
/// `public_key`. Fails if `public_key` is not a valid nkey public key.
pub fn verify_nkey_signature(
    public_key: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, CryptoError> {
    Ok(Ed25519PublicKey::from_nkey(public_key)?.verify(message, signature))
}

/// A JSON Web Key (RFC 7517) of an Ed25519 public key (RFC 8037:
/// `kty` `OKP`, `crv` `Ed25519`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP`.
    pub kty: String,
    /// Curve: `Ed25519`.
    pub crv: String,
    /// The public key, unpadded base64url.
    pub x: String,
    /// The key id (the key store's key id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm: `EdDSA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Use: `sig`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

impl Jwk {
    /// The JWK of an Ed25519 public key.
    pub fn ed25519(key: &Ed25519PublicKey, kid: Option<String>) -> Self {
        Self {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: key.to_base64url(),
            kid,
            alg: Some("EdDSA".to_owned()),
            use_: Some("sig".to_owned()),
        }
    }

    /// The JWK of a key-store key (its `kid` is the key id), or `None` if
    /// it is not an Ed25519 key.
    pub fn from_key_info(info: &KeyInfo) -> Option<Self> {
        let public = Ed25519PublicKey::from_public_key(info.public_key.as_ref()?).ok()?;
        Some(Self::ed25519(&public, Some(info.key_id.to_string())))
    }

    /// The public key, checking `kty` and `crv`.
    pub fn public_key(&self) -> Result<Ed25519PublicKey, CryptoError> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(CryptoError::InvalidKey("not an Ed25519 JWK"));
        }
        Ed25519PublicKey::from_base64url(&self.x)
    }
}

/// A JWK Set (RFC 7517 §5): what a JWT verifier elsewhere fetches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// The set of the Ed25519 keys among `infos` that verifiers may still
    /// trust: active and rotated-out keys (tokens they signed may still be
    /// live); revoked and destroyed keys are left out.
    pub fn from_key_infos<'a>(infos: impl IntoIterator<Item = &'a KeyInfo>) -> Self {
        let keys = infos
            .into_iter()
            .filter(|info| matches!(info.status, KeyStatus::Active | KeyStatus::Rotated { .. }))
            .filter_map(Jwk::from_key_info)
            .collect();
        Self { keys }
    }

    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|key| key.kid.as_deref() == Some(kid))
    }
}

#[cfg(test)]
mod tests {

    /// RFC 8410, section 10.1: an Ed25519 public key in PEM.
    #[test]
    fn public_keys_read_and_write_pem() {
        let pem = "-----BEGIN PUBLIC KEY-----\n\
                   MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
                   -----END PUBLIC KEY-----\n";
        let key = super::Ed25519PublicKey::from_pem(pem).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            key.to_bytes(),
            [
                0x19, 0xbf, 0x44, 0x09, 0x69, 0x84, 0xcd, 0xfe, 0x85, 0x41, 0xba, 0xc1, 0x67, 0xdc,
                0x3b, 0x96, 0xc8, 0x50, 0x86, 0xaa, 0x30, 0xb6, 0xb6, 0xcb, 0x0c, 0x5c, 0x38, 0xad,
                0x70, 0x31, 0x66, 0xe1
            ]
        );
        assert_eq!(key.to_pem().ok().as_deref(), Some(pem));
        assert!(
            super::Ed25519PublicKey::from_pem(
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
            )
            .is_err()
        );
    }
    use secrecy::ExposeSecret;

    use super::*;

    fn hex_decode(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc8032_test_1() {
        let seed: [u8; 32] =
            hex_decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .try_into()
                .unwrap();
        let pair = Ed25519KeyPair::from_seed(&seed);
        assert_eq!(
            pair.public_key().to_bytes().to_vec(),
            hex_decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let signature = pair.sign(b"");
        assert_eq!(
            signature.to_vec(),
            hex_decode(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            )
        );
        assert!(pair.verify(b"", &signature));
        assert!(!pair.verify(b"x", &signature));
        assert!(!pair.verify(b"", &signature[..63]));
    }

    #[test]
    fn public_key_text_forms() {
        let pair = Ed25519KeyPair::generate().unwrap();
        let public = pair.public_key();
        assert_eq!(
            Ed25519PublicKey::from_base64url(&public.to_base64url()).unwrap(),
            public
        );
        assert!(Ed25519PublicKey::from_base64url("AAAA").is_err());
        let jwk = Jwk::ed25519(&public, Some("k1".into()));
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["kty"], "OKP");
        assert_eq!(json["crv"], "Ed25519");
        assert_eq!(json["use"], "sig");
        assert_eq!(json["alg"], "EdDSA");
        assert_eq!(
            serde_json::from_value::<Jwk>(json)
                .unwrap()
                .public_key()
                .unwrap(),
            public
        );
    }

    #[test]
    fn nkeys_match_the_nkeys_crate() {
        // Seed and public key generated by Go's nkeys (from the nkeys crate's tests).
        let seed = SecretString::from("SAAPN4W3EG6KCJGUQTKTJ5GSB5NHK5CHAJL4DBGFUM3HHROI4XUEP4OBK4");
        let pair = NkeyPair::from_seed(&seed).unwrap();
        assert_eq!(pair.kind(), NkeyKind::Account);
        assert_eq!(
            pair.public_key(),
            "ACODERUVFFAWZQDSS6SBIACUA5O6SXF7HJ3YTYXBALHZP3P7R4BUO4J2"
        );
        assert_eq!(pair.seed().unwrap().expose_secret(), seed.expose_secret());

        for kind in [NkeyKind::Operator, NkeyKind::Account, NkeyKind::User] {
            let pair = NkeyPair::generate(kind).unwrap();
            assert!(pair.public_key().starts_with(kind.prefix()));
            assert_eq!(pair.public_key().len(), 56);
            let seed = pair.seed().unwrap();
            assert!(
                seed.expose_secret()
                    .starts_with(&format!("S{}", kind.prefix()))
            );
            assert_eq!(seed.expose_secret().len(), 58);
            let theirs = nkeys::KeyPair::from_seed(seed.expose_secret()).unwrap();
            assert_eq!(theirs.public_key(), pair.public_key());
            let signature = pair.sign(b"nonce");
            theirs.verify(b"nonce", &signature).unwrap();
            assert!(verify_nkey_signature(pair.public_key(), b"nonce", &signature).unwrap());
            assert!(!verify_nkey_signature(pair.public_key(), b"other", &signature).unwrap());
        }
        assert!(verify_nkey_signature("UNOTAKEY", b"", &[0; 64]).is_err());
        let server = nkeys::KeyPair::new_server().seed().unwrap();
        assert!(NkeyPair::from_seed(&SecretString::from(server)).is_err());
    }
}
