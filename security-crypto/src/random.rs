//! The production implementations of the core's injected ports (time and
//! ids) and the one place this family draws randomness from the operating
//! system.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand_core::{OsRng, RngCore};
use secrecy::SecretString;
use security_core::{Clock, IdGenerator};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::CryptoError;

/// The system's wall clock: the production [`Clock`].
///
/// Tests use [`security_core::ManualClock`] instead.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock.
    pub const fn new() -> Self {
        Self
    }
}

impl Clock for SystemClock {
    /// The current time, truncated to whole microseconds: the precision of
    /// PostgreSQL's `timestamptz`, so that an event's time is the same in
    /// every store and after every round trip.
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }
}

/// UUID version 7 ids (RFC 9562): the production [`IdGenerator`].
///
/// Ids carry a millisecond timestamp followed by random bits, so they sort
/// by creation time; ids made by one process are strictly increasing even
/// within one millisecond (the `uuid` crate keeps a shared counter).
#[derive(Debug, Default, Clone, Copy)]
pub struct UuidV7Ids;

impl UuidV7Ids {
    /// A generator.
    pub const fn new() -> Self {
        Self
    }
}

impl IdGenerator for UuidV7Ids {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    OsRng.try_fill_bytes(buf).map_err(|_| CryptoError::Random)
}

/// `N` random bytes from the operating system's CSPRNG, zeroized on drop.
pub fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, CryptoError> {
    let mut bytes = Zeroizing::new([0_u8; N]);
    fill_random(bytes.as_mut())?;
    Ok(bytes)
}

/// A new opaque token: `prefix` followed by 256 random bits in base64url
/// (43 characters), e.g. `sec_rt_Q2x…`.
///
/// The fixed prefix lets secret scanners find leaked tokens; it must be
/// ASCII letters, digits and `_` (at most 16 characters). Store only a keyed
/// hash of the token ([`LookupHasher`](crate::LookupHasher)).
pub fn generate_token(prefix: &str) -> Result<SecretString, CryptoError> {
    if prefix.len() > 16
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(CryptoError::InvalidParameters(
            "token prefix must be at most 16 of [A-Za-z0-9_]",
        ));
    }
    let bytes = random_bytes::<32>()?;
    let mut text = String::with_capacity(prefix.len() + 43);
    text.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(bytes.as_ref(), &mut text);
    Ok(SecretString::from(text))
}

/// A redacted stand-in for secret values in `Debug`/`Display` output.
pub(crate) struct Redacted<'a>(pub(crate) &'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}([REDACTED])", self.0)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn uuid_v7_ids_are_version_7_and_increasing() {
        let ids = UuidV7Ids::new();
        let mut previous = ids.new_id();
        assert_eq!(previous.get_version_num(), 7);
        for _ in 0..1000 {
            let next = ids.new_id();
            assert!(next > previous);
            previous = next;
        }
    }

    #[test]
    fn system_clock_has_whole_microseconds() {
        for _ in 0..100 {
            assert_eq!(SystemClock::new().now().timestamp_subsec_nanos() % 1000, 0);
        }
    }

    #[test]
    fn system_clock_is_close_to_now() {
        let delta = (SystemClock::new().now() - Utc::now()).num_seconds().abs();
        assert!(delta <= 1);
    }

    #[test]
    fn tokens_carry_their_prefix_and_differ() {
        let a = generate_token("sec_rt_").unwrap();
        let b = generate_token("sec_rt_").unwrap();
        assert!(a.expose_secret().starts_with("sec_rt_"));
        assert_eq!(a.expose_secret().len(), 7 + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(generate_token("bad prefix").is_err());
        assert!(generate_token("a_prefix_that_is_far_too_long").is_err());
    }

    #[test]
    fn random_bytes_are_not_all_zero() {
        let bytes = random_bytes::<32>().unwrap();
        assert!(bytes.iter().any(|b| *b != 0));
    }
}
