//! Private key material as a key store holds it: a 32-byte seed, and the
//! primitive built from it.

use secrecy::SecretString;
use security_core::{KeyAlgorithm, KeyPurpose, PublicKey};

use crate::error::CryptoError;
use crate::fernet::FernetKey;
use crate::hash::{hmac_sha256, hmac_sha256_verify};
use crate::secret::SymmetricKey;
use crate::signing::{Ed25519KeyPair, NkeyKind, nkey_public_key, nkey_seed};

/// Every key of every algorithm here is 32 random bytes: an Ed25519 seed,
/// an HMAC-SHA256 key, or a Fernet key. Only the seed is ever stored; the
/// primitive is rebuilt from it.
pub(crate) struct Material {
    seed: SymmetricKey,
    primitive: Primitive,
}

enum Primitive {
    Ed25519(Ed25519KeyPair),
    Hmac,
    Fernet(FernetKey),
}

impl Material {
    pub(crate) fn generate(algorithm: KeyAlgorithm) -> Result<Self, CryptoError> {
        Self::from_seed(algorithm, SymmetricKey::generate()?)
    }

    pub(crate) fn from_seed(
        algorithm: KeyAlgorithm,
        seed: SymmetricKey,
    ) -> Result<Self, CryptoError> {
        let primitive = match algorithm {
            KeyAlgorithm::Ed25519 => Primitive::Ed25519(Ed25519KeyPair::from_key(&seed)),
            KeyAlgorithm::HmacSha256 => Primitive::Hmac,
            KeyAlgorithm::Fernet => Primitive::Fernet(FernetKey::from_key(&seed)?),
            _ => return Err(CryptoError::InvalidParameters("unsupported key algorithm")),
        };
        Ok(Self { seed, primitive })
    }

    pub(crate) fn seed(&self) -> &SymmetricKey {
        &self.seed
    }

    /// The public half as text: an nkey for the trust hierarchy, base64url
    /// for other Ed25519 keys, nothing for symmetric keys.
    pub(crate) fn public_key(&self, purpose: KeyPurpose) -> Result<Option<PublicKey>, CryptoError> {
        let Primitive::Ed25519(pair) = &self.primitive else {
            return Ok(None);
        };
        let encoded = match NkeyKind::for_purpose(purpose) {
            Some(kind) => nkey_public_key(kind, self.seed.expose_secret())?,
            None => pair.public_key().to_base64url(),
        };
        Ok(Some(PublicKey::ed25519(encoded)))
    }

    /// An Ed25519 signature or HMAC tag; `None` for keys that do not sign.
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match &self.primitive {
            Primitive::Ed25519(pair) => Some(pair.sign(message).to_vec()),
            Primitive::Hmac => Some(hmac_sha256(self.seed.expose_secret(), message).to_vec()),
            Primitive::Fernet(_) => None,
        }
    }

    /// Checks a signature or tag (constant time for tags); `None` for keys
    /// that do not sign.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> Option<bool> {
        match &self.primitive {
            Primitive::Ed25519(pair) => Some(pair.verify(message, signature)),
            Primitive::Hmac => Some(hmac_sha256_verify(
                self.seed.expose_secret(),
                message,
                signature,
            )),
            Primitive::Fernet(_) => None,
        }
    }

    pub(crate) fn fernet(&self) -> Option<&FernetKey> {
        match &self.primitive {
            Primitive::Fernet(key) => Some(key),
            _ => None,
        }
    }

    /// The private half as text: an nkey seed for the trust hierarchy,
    /// unpadded base64url of the 32 bytes otherwise.
    pub(crate) fn export(&self, purpose: KeyPurpose) -> Result<SecretString, CryptoError> {
        match NkeyKind::for_purpose(purpose) {
            Some(kind) => nkey_seed(kind, self.seed.expose_secret()),
            None => Ok(self.seed.to_base64()),
        }
    }
}
