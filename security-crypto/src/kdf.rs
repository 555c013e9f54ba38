//! Key derivation: HKDF-SHA256 subkeys with context labels, and a
//! password-based KDF on argon2id.

use argon2::{Algorithm, Argon2, Params, Version};
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::CryptoError;
use crate::password::Argon2Config;
use crate::random::random_bytes;
use crate::secret::SymmetricKey;

/// The domain-separation prefix of every `info` this crate passes to HKDF.
const HKDF_DOMAIN: &[u8] = b"security-crypto/v1\0";

/// HKDF-SHA256 (RFC 5869): fills `out` with key material derived from
/// `ikm`, an optional `salt` and `info`. Fails if `out` is longer than
/// 8160 bytes.
pub fn hkdf_sha256(
    ikm: &[u8],
    salt: Option<&[u8]>,
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    Hkdf::<Sha256>::new(salt, ikm)
        .expand(info, out)
        .map_err(|_| CryptoError::InvalidParameters("hkdf output longer than 8160 bytes"))
}

/// A 256-bit subkey of `master` for one purpose.
///
/// `label` names the purpose (e.g. `"lookup-hash"`, `"field-encryption"`)
/// and `context` binds the key to whatever it is used for (a tenant id, a
/// record id). Different labels or contexts give independent keys; the
/// same inputs always give the same key. The label is length-prefixed, so
/// no (label, context) pair can collide with another.
pub fn derive_subkey(
    master: &SymmetricKey,
    label: &str,
    context: &[u8],
) -> Result<SymmetricKey, CryptoError> {
    let label_len =
        u16::try_from(label.len()).map_err(|_| CryptoError::InvalidParameters("label too long"))?;
    let mut out = Zeroizing::new([0_u8; 32]);
    Hkdf::<Sha256>::new(None, master.expose_secret())
        .expand_multi_info(
            &[
                HKDF_DOMAIN,
                &label_len.to_be_bytes(),
                label.as_bytes(),
                context,
            ],
            out.as_mut(),
        )
        .map_err(|_| CryptoError::InvalidParameters("hkdf output too long"))?;
    Ok(SymmetricKey::from_bytes(out))
}

/// A password-based key derivation function on argon2id: turns a
/// passphrase and a salt into a 256-bit key.
///
/// Use a fresh random salt ([`PasswordKdf::generate_salt`]) per derived
/// key and store it beside what the key protects. For storing passwords
/// use [`Argon2PasswordHasher`](crate::Argon2PasswordHasher) instead.
/// The default is argon2id at the OWASP cost (m = 19456 KiB, t = 2, p = 1).
#[derive(Debug, Clone, Default)]
pub struct PasswordKdf {
    params: Params,
}

impl PasswordKdf {
    /// The minimum salt length accepted, in bytes.
    pub const MIN_SALT_LEN: usize = 16;

    /// A KDF with the given cost (the output length of `config` is ignored:
    /// keys are 32 bytes).
    pub fn new(config: &Argon2Config) -> Result<Self, CryptoError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            Some(SymmetricKey::LEN),
        )
        .map_err(|_| CryptoError::InvalidParameters("argon2 parameters out of range"))?;
        Ok(Self { params })
    }

    /// A fresh random 16-byte salt.
    pub fn generate_salt() -> Result<[u8; 16], CryptoError> {
        random_bytes::<16>().map(|salt| *salt)
    }

    /// The key derived from `password` and `salt`.
    pub fn derive(
        &self,
        password: &SecretString,
        salt: &[u8],
    ) -> Result<SymmetricKey, CryptoError> {
        if salt.len() < Self::MIN_SALT_LEN {
            return Err(CryptoError::InvalidParameters(
                "salt must be at least 16 bytes",
            ));
        }
        self.derive_unchecked(password, salt)
    }

    fn derive_unchecked(
        &self,
        password: &SecretString,
        salt: &[u8],
    ) -> Result<SymmetricKey, CryptoError> {
        let mut out = Zeroizing::new([0_u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
            .hash_password_into(password.expose_secret().as_bytes(), salt, out.as_mut())
            .map_err(|_| CryptoError::InvalidParameters("argon2 rejected the input"))?;
        Ok(SymmetricKey::from_bytes(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::secret::to_hex as hex;

    #[test]
    fn hkdf_rfc5869_test_case_1() {
        let ikm = [0x0b_u8; 22];
        let salt: Vec<u8> = (0x00_u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0_u8..=0xf9).collect();
        let mut okm = [0_u8; 42];
        hkdf_sha256(&ikm, Some(&salt), &info, &mut okm).unwrap();
        assert_eq!(
            hex(&okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        let mut too_long = vec![0_u8; 255 * 32 + 1];
        assert!(hkdf_sha256(&ikm, None, &info, &mut too_long).is_err());
    }

    #[test]
    fn subkeys_are_separated_by_label_and_context() {
        let master = SymmetricKey::generate().unwrap();
        let a = derive_subkey(&master, "ab", b"c").unwrap();
        assert_eq!(a, derive_subkey(&master, "ab", b"c").unwrap());
        assert_ne!(a, derive_subkey(&master, "a", b"bc").unwrap());
        assert_ne!(a, derive_subkey(&master, "ab", b"d").unwrap());
        assert_ne!(
            a,
            derive_subkey(&SymmetricKey::generate().unwrap(), "ab", b"c").unwrap()
        );
    }

    #[test]
    fn password_kdf_is_deterministic_per_salt() {
        let config = Argon2Config {
            memory_kib: 1024,
            iterations: 1,
            ..Argon2Config::default()
        };
        let kdf = PasswordKdf::new(&config).unwrap();
        let password = SecretString::from("correct horse battery staple");
        let salt = PasswordKdf::generate_salt().unwrap();
        let key = kdf.derive(&password, &salt).unwrap();
        assert_eq!(key, kdf.derive(&password, &salt).unwrap());
        assert_ne!(
            key,
            kdf.derive(&password, &PasswordKdf::generate_salt().unwrap())
                .unwrap()
        );
        assert_ne!(
            key,
            kdf.derive(&SecretString::from("wrong"), &salt).unwrap()
        );
        assert!(kdf.derive(&password, &salt[..8]).is_err());
    }

    #[test]
    fn password_kdf_known_answer() {
        // The argon2 reference implementation's test vector (phc-winner-argon2
        // src/test.c): argon2id v1.3, t=2, m=2^16 KiB, p=1, "password", "somesalt".
        let config = Argon2Config {
            memory_kib: 1 << 16,
            iterations: 2,
            parallelism: 1,
            ..Argon2Config::default()
        };
        let key = PasswordKdf::new(&config)
            .unwrap()
            .derive_unchecked(&SecretString::from("password"), b"somesalt")
            .unwrap();
        assert_eq!(
            hex(key.expose_secret()),
            "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7"
        );
    }
}
