//! Fernet symmetric encryption (AES-128-CBC + HMAC-SHA256, the public
//! Fernet specification), a rotating key ring in the manner of Python's
//! `MultiFernet`, and serde field encryption.
//!
//! The work is done by the `fernet` crate with its pure-Rust `rustcrypto`
//! backend. Its `fernet_danger_timestamps` feature is on so that the time
//! comes from the injected [`Clock`] rather than the system clock: that is
//! what the feature is for (tests and replays need a clock they control).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretSlice};
use security_core::Clock;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::error::CryptoError;
use crate::random::Redacted;
use crate::secret::SymmetricKey;

/// The clock skew the Fernet specification tolerates for tokens from the
/// future (and the `fernet` crate enforces).
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// The version byte of every Fernet token.
const VERSION: u8 = 0x80;

/// The token's timestamp, read from its header *without* authenticating it:
/// only for bounds checks before the MAC is verified, and for rotation
/// after it was.
fn token_timestamp(token: &str) -> Result<u64, CryptoError> {
    // 12 base64 characters encode exactly the 9 header bytes: version and
    // the big-endian 64-bit timestamp.
    let head = token.get(..12).ok_or(CryptoError::InvalidToken)?;
    let mut header = [0_u8; 9];
    match URL_SAFE_NO_PAD.decode_slice(head, &mut header) {
        Ok(9) if header[0] == VERSION => {}
        _ => return Err(CryptoError::InvalidToken),
    }
    let mut timestamp = [0_u8; 8];
    timestamp.copy_from_slice(&header[1..]);
    let timestamp = u64::from_be_bytes(timestamp);
    // No genuine token is dated beyond what a `DateTime` can hold; refusing
    // those also keeps the crate's own arithmetic far from overflow.
    if i64::try_from(timestamp).is_err() {
        return Err(CryptoError::InvalidToken);
    }
    Ok(timestamp)
}

/// Decrypted bytes: wiped when dropped, redacted in `Debug`. Read them
/// with [`ExposeSecret::expose_secret`].
///
/// (Not a [`SecretSlice`]: that needs an exactly-sized allocation, so
/// building one means copying the plaintext and wiping it twice, which
/// costs more than the rest of decrypting a small token; this keeps the
/// decryptor's own buffer and wipes it once.)
pub struct Plaintext(Zeroizing<Vec<u8>>);

impl Plaintext {
    fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes as a [`SecretSlice`] (copied; this buffer is wiped).
    pub fn into_secret(self) -> SecretSlice<u8> {
        SecretSlice::from(Box::<[u8]>::from(self.0.as_slice()))
    }
}

impl ExposeSecret<[u8]> for Plaintext {
    fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl ZeroizeOnDrop for Plaintext {}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted("Plaintext").fmt(f)
    }
}

fn unix_seconds(at: DateTime<Utc>) -> Result<u64, CryptoError> {
    u64::try_from(at.timestamp()).map_err(|_| CryptoError::InvalidParameters("time before 1970"))
}

/// One Fernet key: 128-bit signing key and 128-bit encryption key.
///
/// Decryption returns [`Plaintext`]: redacted in `Debug`, wiped when
/// dropped.
pub struct FernetKey {
    inner: fernet::Fernet,
}

impl FernetKey {
    /// A new random key.
    pub fn generate() -> Result<Self, CryptoError> {
        Self::from_key(&SymmetricKey::generate()?)
    }

    /// A key from 32 bytes: the first 16 sign, the last 16 encrypt (the
    /// layout of the specification).
    pub fn from_key(key: &SymmetricKey) -> Result<Self, CryptoError> {
        // The `fernet` crate only takes keys as base64url text. It decodes
        // the text into a temporary buffer that it does not wipe; ours is.
        let text = Zeroizing::new(URL_SAFE.encode(key.expose_secret()));
        fernet::Fernet::new(&text)
            .map(|inner| Self { inner })
            .ok_or(CryptoError::InvalidKey("expected 32 bytes"))
    }

    /// A key from its text form (32 bytes in base64url, as Fernet
    /// implementations print keys; standard base64 is accepted too).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        Self::from_key(&SymmetricKey::from_base64(text)?)
    }

    /// Encrypts `plaintext` into a token dated `at`.
    pub fn encrypt_at(&self, plaintext: &[u8], at: DateTime<Utc>) -> Result<String, CryptoError> {
        Ok(self.inner.encrypt_at_time(plaintext, unix_seconds(at)?))
    }

    /// Decrypts a token as the specification says: the MAC must verify, the
    /// token must not come from more than 60 s in the future, and with a
    /// `ttl` it must not be older than that (expired tokens fail with
    /// [`CryptoError::TokenExpired`], which is only reported for authentic
    /// tokens).
    pub fn decrypt_at(
        &self,
        token: &str,
        now: DateTime<Utc>,
        ttl: Option<Duration>,
    ) -> Result<Plaintext, CryptoError> {
        let timestamp = token_timestamp(token)?;
        let now = unix_seconds(now)?;
        // The TTL is checked here, after the MAC, rather than by the crate:
        // so that "expired" is only ever said of an authentic token, and
        // because the crate adds the unauthenticated timestamp to the TTL
        // without overflow checks.
        let plaintext = Plaintext::new(
            self.inner
                .decrypt_at_time(token, None, now)
                .map_err(|_| CryptoError::InvalidToken)?,
        );
        if let Some(ttl) = ttl
            && timestamp.saturating_add(ttl.as_secs()) < now
        {
            return Err(CryptoError::TokenExpired);
        }
        Ok(plaintext)
    }

    /// Decrypts a token holding data at rest: the MAC must verify; its
    /// timestamp is not compared with any clock (a value written by a
    /// machine whose clock runs ahead must stay readable).
    pub fn decrypt_stored(&self, token: &str) -> Result<Plaintext, CryptoError> {
        let timestamp = token_timestamp(token)?;
        // Passing the token's own time as "now" turns off the skew check.
        self.inner
            .decrypt_at_time(token, None, timestamp)
            .map(Plaintext::new)
            .map_err(|_| CryptoError::InvalidToken)
    }
}

impl ZeroizeOnDrop for FernetKey {}

impl fmt::Debug for FernetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted("FernetKey").fmt(f)
    }
}

impl fmt::Display for FernetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A ring of Fernet keys for rotation, like Python's `MultiFernet`:
/// encrypts with the newest (primary) key, decrypts with any key of the
/// ring, and re-encrypts old tokens under the primary key.
///
/// Rotation: generate a key, make it primary with
/// [`with_primary`](Self::with_primary) (deploy it everywhere before anyone
/// encrypts with it, i.e. add it as a secondary first), re-encrypt stored
/// tokens with [`rotate`](Self::rotate), then drop the old key with
/// [`retain_newest`](Self::retain_newest).
pub struct FernetKeyRing {
    keys: Vec<FernetKey>,
    clock: Arc<dyn Clock>,
}

impl FernetKeyRing {
    /// A ring of `keys`, newest (primary) first.
    pub fn new(keys: Vec<FernetKey>, clock: Arc<dyn Clock>) -> Result<Self, CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::EmptyKeyRing);
        }
        Ok(Self { keys, clock })
    }

    /// A ring from key texts, newest first (e.g. a comma-separated
    /// configuration value split by the caller).
    pub fn from_base64_keys<'a>(
        keys: impl IntoIterator<Item = &'a str>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CryptoError> {
        let keys = keys
            .into_iter()
            .map(FernetKey::from_base64)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys, clock)
    }

    /// The ring with `key` as its new primary key; the others stay for
    /// decryption.
    pub fn with_primary(mut self, key: FernetKey) -> Self {
        self.keys.insert(0, key);
        self
    }

    /// Keeps only the `n` newest keys (at least one).
    pub fn retain_newest(mut self, n: usize) -> Self {
        self.keys.truncate(n.max(1));
        self
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a ring holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn primary(&self) -> Result<&FernetKey, CryptoError> {
        self.keys.first().ok_or(CryptoError::EmptyKeyRing)
    }

    /// Encrypts under the primary key, dated now.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, CryptoError> {
        self.primary()?.encrypt_at(plaintext, self.clock.now())
    }

    /// Decrypts with whichever key made the token (spec checks, no TTL).
    pub fn decrypt(&self, token: &str) -> Result<Plaintext, CryptoError> {
        self.decrypt_inner(token, None)
    }

    /// Decrypts a token no older than `ttl`.
    pub fn decrypt_with_ttl(&self, token: &str, ttl: Duration) -> Result<Plaintext, CryptoError> {
        self.decrypt_inner(token, Some(ttl))
    }

    fn decrypt_inner(&self, token: &str, ttl: Option<Duration>) -> Result<Plaintext, CryptoError> {
        let now = self.clock.now();
        for key in &self.keys {
            match key.decrypt_at(token, now, ttl) {
                Err(CryptoError::InvalidToken) => {}
                other => return other,
            }
        }
        Err(CryptoError::InvalidToken)
    }

    /// Decrypts data at rest (no clock checks) with whichever key made it.
    pub fn decrypt_stored(&self, token: &str) -> Result<Plaintext, CryptoError> {
        for key in &self.keys {
            match key.decrypt_stored(token) {
                Err(CryptoError::InvalidToken) => {}
                other => return other,
            }
        }
        Err(CryptoError::InvalidToken)
    }

    /// Re-encrypts a token (made by any key of the ring) under the primary
    /// key, keeping its original timestamp so that TTLs still count from
    /// when it was first made.
    pub fn rotate(&self, token: &str) -> Result<String, CryptoError> {
        let plaintext = self.decrypt_stored(token)?;
        let timestamp =
            i64::try_from(token_timestamp(token)?).map_err(|_| CryptoError::InvalidToken)?;
        let at = Utc
            .timestamp_opt(timestamp, 0)
            .single()
            .ok_or(CryptoError::InvalidToken)?;
        self.primary()?.encrypt_at(plaintext.expose_secret(), at)
    }

    /// Encrypts a string.
    pub fn encrypt_str(&self, plaintext: &str) -> Result<String, CryptoError> {
        self.encrypt(plaintext.as_bytes())
    }

    /// Decrypts a string (spec checks, no TTL).
    pub fn decrypt_string(&self, token: &str) -> Result<secrecy::SecretString, CryptoError> {
        let bytes = self.decrypt(token)?;
        let text =
            std::str::from_utf8(bytes.expose_secret()).map_err(|_| CryptoError::InvalidToken)?;
        Ok(secrecy::SecretString::from(text))
    }

    /// Serializes `value` to JSON and encrypts it.
    pub fn encrypt_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<String, CryptoError> {
        let json = Zeroizing::new(serde_json::to_vec(value).map_err(CryptoError::Serialization)?);
        self.encrypt(&json)
    }

    /// Decrypts data at rest (no clock checks) and deserializes its JSON.
    pub fn decrypt_json<T: DeserializeOwned>(&self, token: &str) -> Result<T, CryptoError> {
        let json = self.decrypt_stored(token)?;
        serde_json::from_slice(json.expose_secret()).map_err(CryptoError::Serialization)
    }
}

impl fmt::Debug for FernetKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FernetKeyRing")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// A field of type `T` stored encrypted: serializes as the Fernet token
/// string of `T`'s JSON.
///
/// ```
/// # use std::sync::Arc;
/// # use security_crypto::{Encrypted, FernetKey, FernetKeyRing, SystemClock};
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize)]
/// struct Customer {
///     name: String,
///     iban: Encrypted<String>,
/// }
///
/// let ring = FernetKeyRing::new(vec![FernetKey::generate()?], Arc::new(SystemClock))?;
/// let customer = Customer { name: "Ada".into(), iban: Encrypted::seal(&ring, &"DE89 3704 0044 0532 0130 00".to_owned())? };
/// let json = serde_json::to_string(&customer)?;
/// assert!(!json.contains("DE89"));
/// let back: Customer = serde_json::from_str(&json)?;
/// assert_eq!(back.iban.open(&ring)?, "DE89 3704 0044 0532 0130 00");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct Encrypted<T> {
    token: String,
    #[serde(skip)]
    value: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Encrypted<T> {
    /// Encrypts `value` under the ring's primary key.
    pub fn seal(ring: &FernetKeyRing, value: &T) -> Result<Self, CryptoError> {
        ring.encrypt_json(value).map(Self::from_token)
    }

    /// Decrypts the value (with any key of the ring; no clock checks).
    pub fn open(&self, ring: &FernetKeyRing) -> Result<T, CryptoError> {
        ring.decrypt_json(&self.token)
    }

    /// The same value re-encrypted under the ring's primary key.
    pub fn rotate(&self, ring: &FernetKeyRing) -> Result<Self, CryptoError> {
        ring.rotate(&self.token).map(Self::from_token)
    }
}

impl<T> Encrypted<T> {
    /// Wraps a token read from storage.
    pub fn from_token(token: String) -> Self {
        Self {
            token,
            value: PhantomData,
        }
    }

    /// The Fernet token.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl<T> Clone for Encrypted<T> {
    fn clone(&self) -> Self {
        Self::from_token(self.token.clone())
    }
}

impl<T> PartialEq for Encrypted<T> {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token
    }
}

impl<T> Eq for Encrypted<T> {}

impl<T> fmt::Debug for Encrypted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Encrypted(..)")
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration as ChronoDuration;
    use security_core::ManualClock;

    use super::*;

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        ))
    }

    #[test]
    fn round_trip_and_wrong_key() {
        let key = FernetKey::generate().unwrap();
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let token = key.encrypt_at(b"secret", now).unwrap();
        assert!(token.starts_with("gAAAAA"));
        assert_eq!(
            key.decrypt_at(&token, now, None).unwrap().expose_secret(),
            b"secret"
        );
        assert_eq!(
            key.decrypt_stored(&token).unwrap().expose_secret(),
            b"secret"
        );
        let other = FernetKey::generate().unwrap();
        assert!(matches!(
            other.decrypt_at(&token, now, None),
            Err(CryptoError::InvalidToken)
        ));
        assert!(matches!(
            other.decrypt_stored(&token),
            Err(CryptoError::InvalidToken)
        ));
    }

    #[test]
    fn ttl_and_skew() {
        let key = FernetKey::generate().unwrap();
        let t0 = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let token = key.encrypt_at(b"x", t0).unwrap();
        let ttl = Some(Duration::from_secs(60));
        assert!(
            key.decrypt_at(&token, t0 + ChronoDuration::seconds(60), ttl)
                .is_ok()
        );
        assert!(matches!(
            key.decrypt_at(&token, t0 + ChronoDuration::seconds(61), ttl),
            Err(CryptoError::TokenExpired)
        ));
        // From the future: tolerated up to 60 s by decrypt_at, always by decrypt_stored.
        assert!(
            key.decrypt_at(&token, t0 - ChronoDuration::seconds(60), None)
                .is_ok()
        );
        assert!(matches!(
            key.decrypt_at(&token, t0 - ChronoDuration::seconds(61), None),
            Err(CryptoError::InvalidToken)
        ));
        assert!(key.decrypt_stored(&token).is_ok());
        assert!(
            key.encrypt_at(b"x", Utc.timestamp_opt(-1, 0).unwrap())
                .is_err()
        );
    }

    #[test]
    fn hostile_headers_never_panic() {
        let key = FernetKey::generate().unwrap();
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let mut forged = vec![VERSION];
        forged.extend_from_slice(&u64::MAX.to_be_bytes());
        forged.extend_from_slice(&[0_u8; 16 + 16 + 32]);
        let forged = URL_SAFE.encode(&forged);
        for token in [
            forged.as_str(),
            "",
            "gAAAA",
            "gAAAAAAdwJ6x\u{e9}",
            "%%%%%%%%%%%%%%%%%%%%%%",
        ] {
            assert!(
                key.decrypt_at(token, now, Some(Duration::from_secs(u64::MAX)))
                    .is_err()
            );
            assert!(key.decrypt_stored(token).is_err());
        }
    }

    #[test]
    fn key_ring_rotation() {
        let clock = clock();
        let old = FernetKey::generate().unwrap();
        let ring = FernetKeyRing::new(vec![old], clock.clone()).unwrap();
        let old_token = ring.encrypt(b"payload").unwrap();
        clock.advance(ChronoDuration::seconds(30));

        let ring = ring.with_primary(FernetKey::generate().unwrap());
        assert_eq!(ring.len(), 2);
        assert_eq!(
            ring.decrypt(&old_token).unwrap().expose_secret(),
            b"payload"
        );
        let rotated = ring.rotate(&old_token).unwrap();
        assert_ne!(rotated, old_token);
        assert_eq!(
            token_timestamp(&rotated).unwrap(),
            token_timestamp(&old_token).unwrap()
        );

        let new_only = ring.retain_newest(1);
        assert_eq!(new_only.len(), 1);
        assert_eq!(
            new_only.decrypt(&rotated).unwrap().expose_secret(),
            b"payload"
        );
        assert!(matches!(
            new_only.decrypt(&old_token),
            Err(CryptoError::InvalidToken)
        ));
        // The rotated token kept its age.
        clock.advance(ChronoDuration::seconds(31));
        assert!(matches!(
            new_only.decrypt_with_ttl(&rotated, Duration::from_secs(60)),
            Err(CryptoError::TokenExpired)
        ));
        assert!(matches!(
            FernetKeyRing::new(Vec::new(), clock),
            Err(CryptoError::EmptyKeyRing)
        ));
    }

    #[test]
    fn strings_json_and_fields() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Card {
            holder: String,
            pan: Encrypted<String>,
        }
        let ring = FernetKeyRing::new(vec![FernetKey::generate().unwrap()], clock()).unwrap();
        let token = ring.encrypt_str("hello").unwrap();
        assert_eq!(
            ring.decrypt_string(&token).unwrap().expose_secret(),
            "hello"
        );

        let card = Card {
            holder: "Ada".into(),
            pan: Encrypted::seal(&ring, &"4111111111111111".to_owned()).unwrap(),
        };
        let json = serde_json::to_string(&card).unwrap();
        assert!(!json.contains("4111"), "{json}");
        assert!(!format!("{card:?}").contains(card.pan.token()));
        let back: Card = serde_json::from_str(&json).unwrap();
        assert_eq!(back, card);
        assert_eq!(back.pan.open(&ring).unwrap(), "4111111111111111");

        let ring = ring.with_primary(FernetKey::generate().unwrap());
        let rotated = back.pan.rotate(&ring).unwrap();
        assert_eq!(
            rotated.open(&ring.retain_newest(1)).unwrap(),
            "4111111111111111"
        );

        let wrong: Encrypted<u64> = Encrypted::from_token(card.pan.token().to_owned());
        let ring2 = FernetKeyRing::new(vec![FernetKey::generate().unwrap()], clock()).unwrap();
        assert!(matches!(wrong.open(&ring2), Err(CryptoError::InvalidToken)));
    }
}
