//! TOTP (RFC 6238) on top of `totp-rs`: secrets, codes, `otpauth://` URIs
//! and QR codes.

use std::fmt;

use chrono::{DateTime, Utc};
use qrcode::QrCode;
use qrcode::render::svg;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::AuthnError;

/// The HMAC of TOTP codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TotpAlgorithm {
    /// HMAC-SHA1, the default, and the only one every authenticator app supports.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl TotpAlgorithm {
    /// The name used in `otpauth://` URIs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    fn to_totp_rs(self) -> totp_rs::Algorithm {
        match self {
            Self::Sha1 => totp_rs::Algorithm::SHA1,
            Self::Sha256 => totp_rs::Algorithm::SHA256,
            Self::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

/// TOTP parameters. Defaults: 30-second steps, 6 digits, SHA-1, ±1 step of
/// skew, issuer `UltraCore` (the source documents' `MFA_ISSUER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpConfig {
    /// Shown by authenticator apps next to the code (`MFA_ISSUER`).
    pub issuer: String,
    /// Length of a time step in seconds (`MFA_TOTP_INTERVAL`).
    pub step_secs: u64,
    /// Digits per code (6 to 8).
    pub digits: u8,
    /// The HMAC.
    pub algorithm: TotpAlgorithm,
    /// Steps before and after the current one also accepted (clock skew).
    pub skew: u8,
}

impl Default for TotpConfig {
    fn default() -> Self {
        Self {
            issuer: "UltraCore".to_owned(),
            step_secs: 30,
            digits: 6,
            algorithm: TotpAlgorithm::Sha1,
            skew: 1,
        }
    }
}

/// The number of random bytes in a new TOTP secret (160 bits, as RFC 4226
/// recommends).
pub const TOTP_SECRET_BYTES: usize = 20;

/// A TOTP shared secret. Zeroized on drop; `Debug` shows nothing of it.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// A new random secret of [`TOTP_SECRET_BYTES`] bytes.
    pub fn generate() -> Result<Self, AuthnError> {
        let bytes =
            security_crypto::random_bytes::<TOTP_SECRET_BYTES>().map_err(AuthnError::crypto)?;
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// A secret from its bytes (at least 16).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// A secret from its base32 text (RFC 4648, padding optional).
    pub fn from_base32(text: &str) -> Option<Self> {
        totp_rs::Secret::try_from_base32(text.trim().trim_end_matches('='))
            .ok()
            .map(|s| Self::from_bytes(s.as_bytes()))
    }

    /// The secret in base32 (what a user types into an authenticator app).
    pub fn to_base32(&self) -> SecretString {
        SecretString::from(totp_rs::Secret::from(self.0.to_vec()).to_base32())
    }

    /// The raw bytes. Keep the borrow short; never log them.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

fn unix_secs(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp()).unwrap_or(0)
}

impl TotpConfig {
    fn totp(
        &self,
        secret: &TotpSecret,
        account: &str,
    ) -> Result<totp_rs::Totp, totp_rs::TotpError> {
        totp_rs::Builder::new()
            .with_algorithm(self.algorithm.to_totp_rs())
            .with_digits(self.digits)
            .with_skew(u16::from(self.skew))
            .with_step_duration(self.step_secs)
            .with_secret(secret.expose_secret().to_vec())
            .with_issuer(Some(self.issuer.as_str()))
            .with_account_name(account)
            .build()
    }

    /// The RFC 6238 time step of an instant.
    pub fn step_at(&self, at: DateTime<Utc>) -> u64 {
        unix_secs(at) / self.step_secs.max(1)
    }

    /// The code for the step containing `at`.
    pub fn code_at(
        &self,
        secret: &TotpSecret,
        at: DateTime<Utc>,
    ) -> Result<SecretString, AuthnError> {
        let totp = self.totp(secret, "").map_err(AuthnError::crypto)?;
        Ok(SecretString::from(totp.generate(unix_secs(at)).to_string()))
    }

    /// The time step whose code `code` is, among the current step and
    /// `skew` steps either side of it (constant-time comparison), or
    /// `None`. The caller must refuse a step already used (RFC 6238 §5.2).
    pub fn verify(&self, secret: &TotpSecret, code: &str, at: DateTime<Utc>) -> Option<u64> {
        let totp = self.totp(secret, "").ok()?;
        totp.check(code.trim(), unix_secs(at))
    }

    /// The `otpauth://totp/…` URI an authenticator app imports.
    pub fn otpauth_uri(
        &self,
        secret: &TotpSecret,
        account: &str,
    ) -> Result<SecretString, AuthnError> {
        // `otpauth` labels cannot hold ':' (the issuer separator).
        let account = account.replace(':', "_");
        let totp = self.totp(secret, &account).map_err(AuthnError::crypto)?;
        totp.to_url()
            .map(SecretString::from)
            .map_err(AuthnError::crypto)
    }

    /// Everything a user needs to enrol an authenticator app.
    pub fn enrollment(
        &self,
        secret: &TotpSecret,
        account: &str,
    ) -> Result<TotpEnrollment, AuthnError> {
        let uri = self.otpauth_uri(secret, account)?;
        let qr = QrCode::new(uri.expose_secret().as_bytes()).map_err(AuthnError::crypto)?;
        let svg = qr
            .render::<svg::Color<'_>>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .build();
        Ok(TotpEnrollment {
            secret_base32: secret.to_base32(),
            otpauth_uri: uri,
            qr_svg: SecretString::from(svg),
        })
    }
}

/// What TOTP enrolment hands the user, once: the secret (to type in), the
/// `otpauth://` URI and the same URI as a QR code (an SVG image). All three
/// hold the secret: show them over a secure channel, never log them.
pub struct TotpEnrollment {
    /// The secret in base32.
    pub secret_base32: SecretString,
    /// The `otpauth://totp/Issuer:account?secret=…&issuer=…` URI.
    pub otpauth_uri: SecretString,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: SecretString,
}

impl fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpEnrollment([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn codes_verify_within_the_skew_and_name_their_step() {
        let config = TotpConfig::default();
        let secret = TotpSecret::generate().unwrap();
        let t = Utc.timestamp_opt(1_700_000_015, 0).unwrap();
        let step = config.step_at(t);
        let code = config.code_at(&secret, t).unwrap();
        assert_eq!(code.expose_secret().len(), 6);
        assert_eq!(config.verify(&secret, code.expose_secret(), t), Some(step));
        let later = t + chrono::Duration::seconds(30);
        assert_eq!(
            config.verify(&secret, code.expose_secret(), later),
            Some(step)
        );
        let much_later = t + chrono::Duration::seconds(65);
        assert_eq!(
            config.verify(&secret, code.expose_secret(), much_later),
            None
        );
        assert_eq!(config.verify(&secret, "12345", t), None);
        assert_eq!(config.verify(&secret, "abcdef", t), None);
    }

    #[test]
    fn enrollment_has_uri_and_qr_and_hides_them_in_debug() {
        let config = TotpConfig::default();
        let secret = TotpSecret::generate().unwrap();
        let e = config.enrollment(&secret, "alice@example.com").unwrap();
        let b32 = e.secret_base32.expose_secret().to_owned();
        let uri = e.otpauth_uri.expose_secret();
        assert!(
            uri.starts_with("otpauth://totp/UltraCore:alice%40example.com?"),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={b32}")), "{uri}");
        assert!(uri.contains("issuer=UltraCore"), "{uri}");
        assert!(e.qr_svg.expose_secret().starts_with("<?xml"));
        assert!(e.qr_svg.expose_secret().contains("<svg"));
        let debug = format!("{e:?} {secret:?}");
        assert!(!debug.contains(&b32), "{debug}");
        assert_eq!(
            TotpSecret::from_base32(&b32).unwrap().expose_secret(),
            secret.expose_secret()
        );
    }
}
