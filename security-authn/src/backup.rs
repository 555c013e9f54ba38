//! MFA backup codes: generation, normalisation, and the sealed form of
//! their keyed hashes.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::AuthnError;

/// Crockford's base32 alphabet: no `I`, `L`, `O` or `U` to misread.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters per backup code (50 bits), shown as two groups of five.
pub const BACKUP_CODE_LEN: usize = 10;

/// A new set of backup codes, shown to the user once.
///
/// Each code is 10 characters of Crockford base32 (50 random bits), shown
/// as `XXXXX-XXXXX`, and works once. Only keyed hashes are stored (sealed
/// with the user's data key). `Debug` shows only how many there are.
pub struct BackupCodes {
    codes: Vec<SecretString>,
}

impl BackupCodes {
    /// The codes, formatted `XXXXX-XXXXX`.
    pub fn codes(&self) -> &[SecretString] {
        &self.codes
    }

    /// How many codes the set has.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

impl fmt::Debug for BackupCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupCodes([REDACTED; {}])", self.codes.len())
    }
}

/// `count` new random codes, formatted.
pub(crate) fn generate(count: u8) -> Result<BackupCodes, AuthnError> {
    let mut codes = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let mut text = String::with_capacity(BACKUP_CODE_LEN + 1);
        let mut produced = 0;
        while produced < BACKUP_CODE_LEN {
            // 32 symbols: the low five bits of a random byte are uniform.
            let random = security_crypto::random_bytes::<16>().map_err(AuthnError::crypto)?;
            for byte in random.iter() {
                if produced == BACKUP_CODE_LEN {
                    break;
                }
                if produced == BACKUP_CODE_LEN / 2 {
                    text.push('-');
                }
                text.push(char::from(ALPHABET[usize::from(byte & 0x1f)]));
                produced += 1;
            }
        }
        codes.push(SecretString::from(text));
    }
    Ok(BackupCodes { codes })
}

/// The canonical form of a code as typed: separators and spaces removed,
/// upper case, Crockford's look-alikes mapped (`I`/`L` to `1`, `O` to `0`).
/// `None` if it cannot be a backup code.
pub(crate) fn normalize(code: &str) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(BACKUP_CODE_LEN));
    for c in code.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
            return None;
        }
        out.push(c);
    }
    (out.len() == BACKUP_CODE_LEN).then_some(out)
}

/// What is sealed in the user's events: the lookup-hashing key and the
/// keyed hash of each code, by index.
#[derive(Serialize, Deserialize)]
pub(crate) struct SealedCodes {
    /// The `LookupHashing` key that made the hashes.
    pub(crate) kid: security_core::KeyId,
    /// Unpadded base64url keyed hashes, one per code.
    pub(crate) hashes: Vec<String>,
}

/// The message whose keyed hash is stored for a code: bound to the user,
/// so one code never hashes alike for two users.
pub(crate) fn hash_input(user_id: security_core::UserId, normalized: &str) -> Zeroizing<Vec<u8>> {
    let mut message = Zeroizing::new(Vec::with_capacity(32 + normalized.len()));
    message.extend_from_slice(b"backup-code\0");
    message.extend_from_slice(user_id.as_uuid().as_bytes());
    message.extend_from_slice(normalized.as_bytes());
    message
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn codes_are_formatted_random_and_normalize() {
        let set = generate(10).unwrap();
        assert_eq!(set.len(), 10);
        let mut seen = std::collections::HashSet::new();
        for code in set.codes() {
            let text = code.expose_secret();
            assert_eq!(text.len(), 11);
            assert_eq!(&text[5..6], "-");
            let n = normalize(text).unwrap();
            assert_eq!(n.len(), 10);
            assert!(seen.insert(n.to_string()));
            assert_eq!(
                normalize(&text.to_lowercase().replace('-', " ")).as_deref(),
                Some(&*n)
            );
        }
        assert_eq!(normalize("ABCDE-FGHJ").as_deref(), None);
        assert_eq!(normalize("ABCDE-FGHJU").as_deref(), None);
        assert_eq!(normalize("abcde-fghio").unwrap().as_str(), "ABCDEFGH10");
        assert_eq!(normalize("123456"), None);
        let debug = format!("{set:?}");
        assert_eq!(debug, "BackupCodes([REDACTED; 10])");
    }
}
