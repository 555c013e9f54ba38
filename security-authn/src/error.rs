//! The crate's root error for authentication.

use std::time::Duration;

use security_core::{
    AttemptLedgerError, ChallengeStoreError, CommandError, DomainError, EventEncodeError,
    KeyStoreError, StoreError, TokenError,
};
use uuid::Uuid;

use crate::config::ConfigError;
use crate::policy::PolicyViolation;
use security_core::RateLimitError;

/// An authentication operation failed.
///
/// Three kinds are kept apart: the caller's fault (wrong credentials,
/// throttled, locked, a policy broken: show a generic message, never the
/// detail of what was wrong), a conflict (retry), and infrastructure (the
/// event store, the key store, the rate limiter: log it, answer 503, do not
/// show it). [`AuthnError::is_infrastructure`] tells them apart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthnError {
    /// The username, password, API key or signature is wrong, or the user
    /// does not exist: deliberately one answer for all of them. Show it as
    /// it is and never say which part was wrong.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The MFA code is wrong, was already used, or is out of its time
    /// window. Ask for a new code (the challenge allows a few tries).
    #[error("invalid MFA code")]
    InvalidMfaCode,
    /// The MFA challenge, password-change ticket or public-key challenge is
    /// unknown, expired, used up or already used: start the login again.
    #[error("login challenge is invalid or expired")]
    InvalidChallenge,
    /// Too many attempts from this client or for this user. Refuse with
    /// HTTP 429 and a `Retry-After` of `retry_after`.
    #[error("too many attempts: retry after {} seconds", retry_after.as_secs())]
    Throttled {
        /// How long until an attempt may succeed.
        retry_after: Duration,
    },
    /// The user is locked, after too many failed attempts or by an admin.
    /// `retry_after` is how long a timed lock still lasts (`None`: until an
    /// admin unlocks).
    #[error("user is locked")]
    UserLocked {
        /// How long the lock still lasts, if it lifts by itself.
        retry_after: Option<Duration>,
    },
    /// The user has expired and never authenticates again.
    #[error("user has expired")]
    UserExpired,
    /// The account (tenant) is suspended: nobody in it authenticates.
    #[error("account is suspended")]
    AccountSuspended,
    /// The account (tenant) has expired.
    #[error("account has expired")]
    AccountExpired,
    /// The new password breaks the password policy; the violation lists
    /// every rule broken. Show them and ask for another password.
    #[error(transparent)]
    PasswordPolicy(#[from] PolicyViolation),
    /// The refresh token is malformed, unknown or expired: log in again.
    #[error("refresh token is invalid or expired")]
    InvalidRefreshToken,
    /// A refresh token that was already rotated was presented again: the
    /// whole session (token family) was revoked. Treat as theft: the user
    /// logs in again, and may be told.
    #[error("refresh token was already used: the session is revoked")]
    RefreshTokenReused,
    /// The session was revoked (logout, lock, password change, revoke-all):
    /// log in again.
    #[error("session is revoked")]
    SessionRevoked,
    /// An access token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A domain rule refused the operation (e.g. confirming MFA that was
    /// never started, enrolling twice). The caller's fault: do not retry
    /// unchanged.
    #[error(transparent)]
    Rejected(DomainError),
    /// An OAuth 2.0 / OpenID Connect request was refused: answer with the
    /// error's protocol code (see [`OAuthError`](crate::oidc::OAuthError)),
    /// by redirect only when it carries a redirect. The caller's fault: do
    /// not retry unchanged.
    #[error(transparent)]
    OAuth(#[from] crate::oidc::OAuthError),
    /// An identity event named an organization that has no account yet.
    /// Retry once its `OrganizationCreated` was handled.
    #[error("organization {0} has no account yet")]
    UnknownOrganization(Uuid),
    /// Passkeys are not configured for this tenant (no relying party:
    /// `WEBAUTHN_RP_ID` and `WEBAUTHN_RP_ORIGIN`, or a tenant override).
    /// Offer another login method; configure a relying party to enable
    /// them.
    #[error("passkeys are not configured")]
    PasskeysNotConfigured,
    /// A passkey registration response is malformed, too large, or did
    /// not verify (wrong origin or RP id, no user verification, refused
    /// attestation, a credential already registered). Start the
    /// registration again; do not retry the same response.
    #[error("invalid passkey registration")]
    InvalidPasskey,
    /// The configuration is invalid; the message names the variable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Other writers kept changing the same stream; retrying later may
    /// succeed.
    #[error("too much contention: retry later")]
    Conflict,
    /// The event store failed. Infrastructure: log it, answer 503.
    #[error("event store failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The key store failed. Infrastructure: log it, answer 503.
    #[error("key store failed")]
    KeyStore(#[source] KeyStoreError),
    /// The rate limiter's backend failed. Infrastructure: authentication
    /// fails closed; log it, answer 503.
    #[error("rate limiter failed")]
    RateLimiter(#[source] RateLimitError),
    /// The challenge store's backend failed. Infrastructure: log it,
    /// answer 503.
    #[error("challenge store failed")]
    Challenges(#[source] ChallengeStoreError),
    /// The attempt ledger's backend failed. Infrastructure: authentication
    /// fails closed; log it, answer 503.
    #[error("attempt ledger failed")]
    Attempts(#[source] AttemptLedgerError),
    /// A cryptographic operation (hashing, randomness, encoding) failed.
    /// Infrastructure: log it, answer 503.
    #[error("cryptographic operation failed")]
    Crypto(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AuthnError {
    /// Whether this is an infrastructure failure (log it, answer 503) rather
    /// than the caller's fault.
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            Self::Store(_)
                | Self::KeyStore(_)
                | Self::RateLimiter(_)
                | Self::Challenges(_)
                | Self::Attempts(_)
                | Self::Crypto(_)
        )
    }

    /// How long the caller should wait before trying again, when the error
    /// says so (throttled, timed lock).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } => Some(*retry_after),
            Self::UserLocked { retry_after } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn crypto(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Crypto(Box::new(e))
    }
}

impl From<std::convert::Infallible> for AuthnError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<KeyStoreError> for AuthnError {
    fn from(e: KeyStoreError) -> Self {
        Self::KeyStore(e)
    }
}

impl From<StoreError> for AuthnError {
    fn from(e: StoreError) -> Self {
        Self::Store(Box::new(e))
    }
}

impl From<EventEncodeError> for AuthnError {
    fn from(e: EventEncodeError) -> Self {
        Self::Store(Box::new(e))
    }
}

impl From<RateLimitError> for AuthnError {
    fn from(e: RateLimitError) -> Self {
        Self::RateLimiter(e)
    }
}

impl From<DomainError> for AuthnError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::UserLocked => Self::UserLocked { retry_after: None },
            DomainError::UserExpired => Self::UserExpired,
            DomainError::AccountSuspended => Self::AccountSuspended,
            DomainError::AccountExpired => Self::AccountExpired,
            other => Self::Rejected(other),
        }
    }
}

impl<E> From<CommandError<E>> for AuthnError
where
    E: std::error::Error + Send + Sync + 'static + Into<AuthnError>,
{
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Rejected(e) => e.into(),
            CommandError::Conflict { .. } => Self::Conflict,
            CommandError::Store(e) => e.into(),
            CommandError::Decode(e) => Self::Store(Box::new(e)),
            CommandError::Encode(e) => e.into(),
            other => Self::Store(Box::new(other)),
        }
    }
}

impl From<security_core::AdminError> for AuthnError {
    fn from(e: security_core::AdminError) -> Self {
        match e {
            security_core::AdminError::Command(e) => e.into(),
            security_core::AdminError::KeyStore(e) => e.into(),
            other => Self::Store(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_apart() {
        assert!(!AuthnError::InvalidCredentials.is_infrastructure());
        assert!(AuthnError::KeyStore(KeyStoreError::Unseal).is_infrastructure());
        let throttled = AuthnError::Throttled {
            retry_after: Duration::from_secs(12),
        };
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(12)));
        assert_eq!(
            throttled.to_string(),
            "too many attempts: retry after 12 seconds"
        );
        assert_eq!(
            AuthnError::from(DomainError::UserLocked).retry_after(),
            None
        );
    }
}
