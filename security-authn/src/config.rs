//! Configuration, with defaults from the source documents, read from the
//! environment.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretSlice};
use security_core::{ChallengeQuota, LockoutPolicy};

#[cfg(feature = "passkeys")]
use crate::passkeys::PasskeyConfig;
use crate::policy::PasswordPolicy;
use crate::totp::TotpConfig;
use security_core::RateLimit;

/// The smallest HS256 key accepted, in bytes (RFC 7518 §3.2: at least the
/// hash output size).
pub const MIN_HS256_KEY_BYTES: usize = 32;

/// A configuration value is invalid. The message names the variable and
/// what it must be, never the value (it may be a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable (or setting) at fault.
    pub variable: &'static str,
    /// What it must be.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            reason: reason.into(),
        }
    }
}

/// How access tokens are signed.
#[derive(Clone, Default)]
pub enum JwtSigning {
    /// EdDSA (Ed25519) with each tenant's `TokenSigning` key from the key
    /// store; the private key never leaves the store. The default.
    #[default]
    EdDsa,
    /// HS256 with one shared secret (`JWT_SECRET_KEY`, at least 32 bytes),
    /// for deployments that configure one.
    Hs256(SecretSlice<u8>),
}

impl JwtSigning {
    /// An HS256 secret, refused if shorter than [`MIN_HS256_KEY_BYTES`].
    pub fn hs256(secret: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        let secret = secret.into();
        if secret.len() < MIN_HS256_KEY_BYTES {
            return Err(ConfigError::new(
                "JWT_SECRET_KEY",
                format!("must be at least {MIN_HS256_KEY_BYTES} bytes for HS256"),
            ));
        }
        Ok(Self::Hs256(SecretSlice::from(secret)))
    }

    /// The JWT `alg` name.
    pub fn algorithm_name(&self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Hs256(_) => "HS256",
        }
    }
}

impl fmt::Debug for JwtSigning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EdDsa => f.write_str("EdDsa"),
            Self::Hs256(secret) => write!(
                f,
                "Hs256([REDACTED {} bytes])",
                secret.expose_secret().len()
            ),
        }
    }
}

/// Access-token settings.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// How tokens are signed (`JWT_SECRET_KEY`, `JWT_ALGORITHM`).
    pub signing: JwtSigning,
    /// The `iss` claim (`JWT_ISSUER`).
    pub issuer: String,
    /// The `aud` claim (`JWT_AUDIENCE`).
    pub audience: String,
    /// How long an access token lasts (`JWT_ACCESS_TOKEN_EXPIRE_MINUTES`, 30).
    pub access_token_ttl: Duration,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (`JWT_LEEWAY_SECONDS`, 60).
    pub leeway: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            signing: JwtSigning::EdDsa,
            issuer: "security".to_owned(),
            audience: "security".to_owned(),
            access_token_ttl: Duration::from_secs(30 * 60),
            leeway: Duration::from_secs(60),
        }
    }
}

/// Everything the authentication service can be told. The defaults are
/// those of the source documents (access 30 min, refresh 7 days, sessions
/// at most 30 days, TOTP 30 s
/// / 6 digits / SHA-1, login 5/minute, MFA 3/minute, the password policy of
/// [`PasswordPolicy::default`]).
#[derive(Debug, Clone)]
pub struct AuthnConfig {
    /// Access tokens.
    pub jwt: JwtConfig,
    /// How long a refresh token lasts (`JWT_REFRESH_TOKEN_EXPIRE_DAYS`, 7).
    /// Every refresh issues a new one with a new lifetime, never beyond the
    /// session's absolute expiry.
    pub refresh_token_ttl: Duration,
    /// The longest a session lives from its login, however often it is
    /// refreshed (`SESSION_MAX_LIFETIME_DAYS`, 30): then the user logs in
    /// again.
    pub session_max_lifetime: Duration,
    /// TOTP (`MFA_ISSUER`, `MFA_TOTP_INTERVAL`).
    pub totp: TotpConfig,
    /// How long an MFA challenge or a password-change ticket lasts (5 min).
    pub challenge_ttl: Duration,
    /// Wrong codes one MFA challenge accepts before it is used up (3).
    pub challenge_max_attempts: u32,
    /// How many backup codes a set has (10).
    pub backup_code_count: u8,
    /// Login attempts per client IP and per username (`AUTH_RATE_LIMIT`, 5/minute).
    pub login_rate: RateLimit,
    /// MFA attempts per client IP and per user (`MFA_RATE_LIMIT`, 3/minute).
    pub mfa_rate: RateLimit,
    /// API-key logins and refreshes per client IP
    /// (`API_RATE_LIMIT_PER_MINUTE`, 60: the source documents' default API tier).
    pub api_rate: RateLimit,
    /// When failures lock a user and for how long (`LOCKOUT_MAX_FAILURES`
    /// 5, `LOCKOUT_BASE_SECONDS` 300, doubling up to `LOCKOUT_MAX_SECONDS`
    /// 86400).
    pub lockout: LockoutPolicy,
    /// The password policy (`PASSWORD_MIN_LENGTH` 12, `PASSWORD_HISTORY` 5,
    /// `PASSWORD_MAX_AGE_DAYS` 90).
    pub password_policy: PasswordPolicy,
    /// IPv6 clients are throttled by this prefix of their address
    /// (`RATE_LIMIT_IPV6_PREFIX`, 64: one customer's network), since one
    /// host commonly holds a whole /64. IPv4 clients by their address.
    pub ipv6_prefix_len: u8,
    /// Live challenges allowed per user and per tenant, so that a flood of
    /// starts in one tenant cannot deny the others.
    pub challenge_quota: ChallengeQuota,
    /// How long a lease on one password verification lives if the replica
    /// that took it never settles it (it crashed): 30 s.
    pub attempt_lease_ttl: Duration,
    /// How long a login waits for the verifications in flight on the same
    /// user before it is answered as throttled: 30 s.
    pub attempt_wait: Duration,
    /// Passkeys (WebAuthn): the relying party (`WEBAUTHN_RP_ID`,
    /// `WEBAUTHN_RP_ORIGIN`), per-tenant overrides, attestation. None by
    /// default: passkeys are off until a relying party is set.
    #[cfg(feature = "passkeys")]
    pub passkeys: PasskeyConfig,
}

impl Default for AuthnConfig {
    fn default() -> Self {
        Self {
            jwt: JwtConfig::default(),
            refresh_token_ttl: Duration::from_secs(7 * 86_400),
            session_max_lifetime: Duration::from_secs(30 * 86_400),
            totp: TotpConfig::default(),
            challenge_ttl: Duration::from_secs(300),
            challenge_max_attempts: 3,
            backup_code_count: 10,
            login_rate: RateLimit::per_minute(5),
            mfa_rate: RateLimit::per_minute(3),
            api_rate: RateLimit::per_minute(60),
            lockout: LockoutPolicy {
                max_failures: 5,
                base_lock_secs: 300,
                max_lock_secs: 86_400,
                escalation_reset_secs: security_core::DEFAULT_ESCALATION_RESET_SECS,
            },
            password_policy: PasswordPolicy::default(),
            ipv6_prefix_len: 64,
            challenge_quota: ChallengeQuota::default(),
            attempt_lease_ttl: Duration::from_secs(30),
            attempt_wait: Duration::from_secs(30),
            #[cfg(feature = "passkeys")]
            passkeys: PasskeyConfig::default(),
        }
    }
}

/// The environment variables read by [`AuthnConfig::from_env`].
pub const ENV_VARS: &[&str] = &[
    "JWT_SECRET_KEY",
    "JWT_ALGORITHM",
    "JWT_ACCESS_TOKEN_EXPIRE_MINUTES",
    "JWT_REFRESH_TOKEN_EXPIRE_DAYS",
    "SESSION_MAX_LIFETIME_DAYS",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_LEEWAY_SECONDS",
    "MFA_ISSUER",
    "MFA_TOTP_INTERVAL",
    "AUTH_RATE_LIMIT",
    "MFA_RATE_LIMIT",
    "API_RATE_LIMIT_PER_MINUTE",
    "LOCKOUT_MAX_FAILURES",
    "LOCKOUT_BASE_SECONDS",
    "LOCKOUT_MAX_SECONDS",
    "PASSWORD_MIN_LENGTH",
    "PASSWORD_HISTORY",
    "PASSWORD_MAX_AGE_DAYS",
    "RATE_LIMIT_IPV6_PREFIX",
    "WEBAUTHN_RP_ID",
    "WEBAUTHN_RP_ORIGIN",
];

impl AuthnConfig {
    /// The defaults overridden by the environment variables of
    /// [`ENV_VARS`]. An unset or empty variable keeps its default; an
    /// invalid one is an error naming it.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through
    /// `lookup` (for tests, or another configuration source).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = Self::default();

        let secret = get("JWT_SECRET_KEY");
        let algorithm = get("JWT_ALGORITHM");
        config.jwt.signing = match (algorithm.as_deref().map(str::trim), secret) {
            (None | Some("HS256"), Some(secret)) => JwtSigning::hs256(secret.into_bytes())?,
            (Some("HS256"), None) => {
                return Err(ConfigError::new(
                    "JWT_SECRET_KEY",
                    "must be set when JWT_ALGORITHM is HS256",
                ));
            }
            (None | Some("EdDSA"), None) => JwtSigning::EdDsa,
            (Some("EdDSA"), Some(_)) => {
                return Err(ConfigError::new(
                    "JWT_SECRET_KEY",
                    "must not be set when JWT_ALGORITHM is EdDSA (EdDSA uses the key store)",
                ));
            }
            (Some(_), _) => {
                return Err(ConfigError::new("JWT_ALGORITHM", "must be EdDSA or HS256"));
            }
        };
        if let Some(v) = get("JWT_ACCESS_TOKEN_EXPIRE_MINUTES") {
            let minutes = number("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", &v, 1, 24 * 60, "minutes")?;
            config.jwt.access_token_ttl = Duration::from_secs(minutes * 60);
        }
        if let Some(v) = get("JWT_REFRESH_TOKEN_EXPIRE_DAYS") {
            let days = number("JWT_REFRESH_TOKEN_EXPIRE_DAYS", &v, 1, 365, "days")?;
            config.refresh_token_ttl = Duration::from_secs(days * 86_400);
        }
        if let Some(v) = get("SESSION_MAX_LIFETIME_DAYS") {
            let days = number("SESSION_MAX_LIFETIME_DAYS", &v, 1, 3650, "days")?;
            config.session_max_lifetime = Duration::from_secs(days * 86_400);
        }
        if let Some(v) = get("JWT_ISSUER") {
            config.jwt.issuer = text("JWT_ISSUER", &v)?;
        }
        if let Some(v) = get("JWT_AUDIENCE") {
            config.jwt.audience = text("JWT_AUDIENCE", &v)?;
        }
        if let Some(v) = get("JWT_LEEWAY_SECONDS") {
            config.jwt.leeway =
                Duration::from_secs(number("JWT_LEEWAY_SECONDS", &v, 0, 300, "seconds")?);
        }
        if let Some(v) = get("MFA_ISSUER") {
            let issuer = text("MFA_ISSUER", &v)?;
            if issuer.contains(':') {
                return Err(ConfigError::new("MFA_ISSUER", "must not contain ':'"));
            }
            config.totp.issuer = issuer;
        }
        if let Some(v) = get("MFA_TOTP_INTERVAL") {
            config.totp.step_secs = number("MFA_TOTP_INTERVAL", &v, 15, 300, "seconds")?;
        }
        if let Some(v) = get("AUTH_RATE_LIMIT") {
            config.login_rate = rate("AUTH_RATE_LIMIT", &v)?;
        }
        if let Some(v) = get("MFA_RATE_LIMIT") {
            config.mfa_rate = rate("MFA_RATE_LIMIT", &v)?;
        }
        if let Some(v) = get("API_RATE_LIMIT_PER_MINUTE") {
            let n = number("API_RATE_LIMIT_PER_MINUTE", &v, 1, 1_000_000, "requests")?;
            config.api_rate = RateLimit::per_minute(u32::try_from(n).unwrap_or(u32::MAX));
        }
        if let Some(v) = get("LOCKOUT_MAX_FAILURES") {
            let n = number("LOCKOUT_MAX_FAILURES", &v, 1, 1000, "failures")?;
            config.lockout.max_failures = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(v) = get("LOCKOUT_BASE_SECONDS") {
            config.lockout.base_lock_secs =
                number("LOCKOUT_BASE_SECONDS", &v, 1, 86_400, "seconds")?;
        }
        if let Some(v) = get("LOCKOUT_MAX_SECONDS") {
            config.lockout.max_lock_secs =
                number("LOCKOUT_MAX_SECONDS", &v, 1, 365 * 86_400, "seconds")?;
        }
        if config.lockout.max_lock_secs < config.lockout.base_lock_secs {
            return Err(ConfigError::new(
                "LOCKOUT_MAX_SECONDS",
                "must not be below LOCKOUT_BASE_SECONDS",
            ));
        }
        if let Some(v) = get("PASSWORD_MIN_LENGTH") {
            let n = number("PASSWORD_MIN_LENGTH", &v, 8, 256, "characters")?;
            config.password_policy.min_length = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(v) = get("PASSWORD_HISTORY") {
            let n = number("PASSWORD_HISTORY", &v, 0, 24, "passwords")?;
            config.password_policy.history = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(v) = get("PASSWORD_MAX_AGE_DAYS") {
            let days = number("PASSWORD_MAX_AGE_DAYS", &v, 0, 3650, "days")?;
            config.password_policy.max_age = (days > 0).then(|| Duration::from_secs(days * 86_400));
        }
        if let Some(v) = get("RATE_LIMIT_IPV6_PREFIX") {
            let bits = number("RATE_LIMIT_IPV6_PREFIX", &v, 16, 128, "bits")?;
            config.ipv6_prefix_len = u8::try_from(bits).unwrap_or(64);
        }
        #[cfg(feature = "passkeys")]
        {
            config.passkeys = PasskeyConfig::from_lookup(get)?;
        }
        Ok(config)
    }
}

fn number(
    variable: &'static str,
    value: &str,
    min: u64,
    max: u64,
    unit: &str,
) -> Result<u64, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(
            variable,
            format!("expected a whole number of {unit} from {min} to {max}"),
        )),
    }
}

fn rate(variable: &'static str, value: &str) -> Result<RateLimit, ConfigError> {
    value
        .parse()
        .map_err(|e: security_core::InvalidRateLimit| ConfigError::new(variable, e.to_string()))
}

fn text(variable: &'static str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim().to_owned();
    if value.len() > 256 || value.chars().any(char::is_control) {
        return Err(ConfigError::new(
            variable,
            "expected at most 256 printable characters",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::totp::TotpAlgorithm;

    fn from(vars: &[(&str, &str)]) -> Result<AuthnConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        AuthnConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_come_from_the_source_documents() {
        let c = from(&[]).unwrap();
        assert!(matches!(c.jwt.signing, JwtSigning::EdDsa));
        assert_eq!(c.jwt.access_token_ttl, Duration::from_secs(1800));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(c.session_max_lifetime, Duration::from_secs(30 * 86_400));
        assert_eq!(c.totp.step_secs, 30);
        assert_eq!(c.totp.digits, 6);
        assert_eq!(c.totp.algorithm, TotpAlgorithm::Sha1);
        assert_eq!(c.totp.issuer, "UltraCore");
        assert_eq!(c.login_rate, RateLimit::per_minute(5));
        assert_eq!(c.mfa_rate, RateLimit::per_minute(3));
        assert_eq!(c.backup_code_count, 10);
        assert_eq!(c.password_policy, PasswordPolicy::default());
    }

    #[test]
    fn the_environment_overrides() {
        let secret = "0123456789abcdef0123456789abcdef";
        let c = from(&[
            ("JWT_SECRET_KEY", secret),
            ("JWT_ALGORITHM", "HS256"),
            ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "15"),
            ("JWT_REFRESH_TOKEN_EXPIRE_DAYS", "1"),
            ("SESSION_MAX_LIFETIME_DAYS", "14"),
            ("MFA_ISSUER", "Bank"),
            ("MFA_TOTP_INTERVAL", "60"),
            ("AUTH_RATE_LIMIT", "10/minute"),
            ("MFA_RATE_LIMIT", "2/minute"),
            ("LOCKOUT_MAX_FAILURES", "3"),
            ("PASSWORD_MAX_AGE_DAYS", "0"),
            ("RATE_LIMIT_IPV6_PREFIX", "56"),
        ])
        .unwrap();
        assert_eq!(c.ipv6_prefix_len, 56);
        assert_eq!(c.jwt.signing.algorithm_name(), "HS256");
        assert_eq!(c.jwt.access_token_ttl, Duration::from_secs(900));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(86_400));
        assert_eq!(c.session_max_lifetime, Duration::from_secs(14 * 86_400));
        assert_eq!(c.totp.issuer, "Bank");
        assert_eq!(c.totp.step_secs, 60);
        assert_eq!(c.login_rate, RateLimit::per_minute(10));
        assert_eq!(c.mfa_rate, RateLimit::per_minute(2));
        assert_eq!(c.lockout.max_failures, 3);
        assert_eq!(c.password_policy.max_age, None);
        // A secret alone selects HS256; the Debug output never shows it.
        let c = from(&[("JWT_SECRET_KEY", secret)]).unwrap();
        let debug = format!("{c:?}");
        assert!(debug.contains("Hs256"), "{debug}");
        assert!(!debug.contains(secret), "{debug}");
    }

    #[test]
    fn an_invalid_value_names_its_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "soon")],
                "JWT_ACCESS_TOKEN_EXPIRE_MINUTES",
            ),
            (
                &[("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "0")],
                "JWT_ACCESS_TOKEN_EXPIRE_MINUTES",
            ),
            (
                &[("JWT_REFRESH_TOKEN_EXPIRE_DAYS", "-1")],
                "JWT_REFRESH_TOKEN_EXPIRE_DAYS",
            ),
            (
                &[("SESSION_MAX_LIFETIME_DAYS", "0")],
                "SESSION_MAX_LIFETIME_DAYS",
            ),
            (&[("JWT_ALGORITHM", "RS256")], "JWT_ALGORITHM"),
            (&[("JWT_ALGORITHM", "none")], "JWT_ALGORITHM"),
            (&[("JWT_ALGORITHM", "HS256")], "JWT_SECRET_KEY"),
            (&[("JWT_SECRET_KEY", "secret")], "JWT_SECRET_KEY"),
            (
                &[
                    ("JWT_ALGORITHM", "EdDSA"),
                    ("JWT_SECRET_KEY", "0123456789abcdef0123456789abcdef"),
                ],
                "JWT_SECRET_KEY",
            ),
            (&[("MFA_TOTP_INTERVAL", "0")], "MFA_TOTP_INTERVAL"),
            (&[("MFA_ISSUER", "a:b")], "MFA_ISSUER"),
            (&[("AUTH_RATE_LIMIT", "lots")], "AUTH_RATE_LIMIT"),
            (&[("MFA_RATE_LIMIT", "0/minute")], "MFA_RATE_LIMIT"),
            (&[("LOCKOUT_MAX_FAILURES", "0")], "LOCKOUT_MAX_FAILURES"),
            (
                &[
                    ("LOCKOUT_BASE_SECONDS", "600"),
                    ("LOCKOUT_MAX_SECONDS", "60"),
                ],
                "LOCKOUT_MAX_SECONDS",
            ),
            (&[("PASSWORD_MIN_LENGTH", "4")], "PASSWORD_MIN_LENGTH"),
            (&[("RATE_LIMIT_IPV6_PREFIX", "8")], "RATE_LIMIT_IPV6_PREFIX"),
        ];
        for (vars, variable) in cases {
            let err = from(vars).unwrap_err();
            assert_eq!(err.variable, *variable, "{vars:?}");
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("invalid {variable}: ")),
                "{message}"
            );
            assert!(!message.contains("secret"), "{message}");
        }
    }
}
