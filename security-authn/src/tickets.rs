//! Challenge tokens (MFA challenges, password-change tickets, public-key
//! nonces) and how the service keeps them in its [`ChallengeStore`].
//!
//! A token is `prefix` + base64url(tenant ‖ expiry ‖ 32 random bytes):
//! 56 bytes, 75 characters of body. The random part makes it a secret;
//! the tenant and the expiry (Unix seconds, big-endian) let a replica that
//! finds no stored challenge tell "expired" from "unknown" without storing
//! anything, which is how a challenge for a username that does not exist
//! answers exactly like one for a real user while nothing is stored for it.
//! The store keeps only the token's SHA-256.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use security_core::{
    ChallengeDigest, ChallengePurpose, ChallengeStoreError, PendingChallenge, QuotaScope, TenantId,
    UserId,
};
use zeroize::Zeroizing;

use crate::error::AuthnError;
use crate::service::AuthenticationService;

const RAW_LEN: usize = 56;
/// Base64url length of [`RAW_LEN`] bytes, unpadded.
const BODY_LEN: usize = 75;

/// A challenge token split into its parts (nothing verified yet).
pub(crate) struct TokenParts {
    pub(crate) tenant: TenantId,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) digest: ChallengeDigest,
}

/// A new token for `tenant`, valid until `expires_at`.
pub(crate) fn new_token(
    prefix: &str,
    tenant: TenantId,
    expires_at: DateTime<Utc>,
) -> Result<(SecretString, ChallengeDigest), AuthnError> {
    let random = security_crypto::random_bytes::<32>().map_err(AuthnError::crypto)?;
    let mut raw = Zeroizing::new([0_u8; RAW_LEN]);
    raw[..16].copy_from_slice(tenant.as_uuid().as_bytes());
    raw[16..24].copy_from_slice(&expires_at.timestamp().to_be_bytes());
    raw[24..].copy_from_slice(random.as_ref());
    let mut text = String::with_capacity(prefix.len() + BODY_LEN);
    text.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(raw.as_ref(), &mut text);
    let digest = ChallengeDigest(security_crypto::sha256(text.as_bytes()));
    Ok((SecretString::from(text), digest))
}

/// The parts of a token, if it has the shape of one (checked before any
/// hashing: a token of the wrong length costs nothing).
pub(crate) fn parse_token(prefix: &str, token: &SecretString) -> Option<TokenParts> {
    let text = token.expose_secret();
    let body = text.strip_prefix(prefix)?;
    if body.len() != BODY_LEN {
        return None;
    }
    let mut raw = Zeroizing::new([0_u8; RAW_LEN]);
    match URL_SAFE_NO_PAD.decode_slice(body, raw.as_mut()) {
        Ok(RAW_LEN) => {}
        _ => return None,
    }
    let tenant = uuid::Uuid::from_slice(&raw[..16]).ok()?;
    let secs = i64::from_be_bytes(raw[16..24].try_into().ok()?);
    Some(TokenParts {
        tenant: TenantId::from_uuid(tenant),
        expires_at: DateTime::from_timestamp(secs, 0)?,
        digest: ChallengeDigest(security_crypto::sha256(text.as_bytes())),
    })
}

/// What looking a token up found.
pub(crate) enum Lookup {
    /// A live challenge of the purpose: it is now taken (removed).
    Found(PendingChallenge),
    /// None: the token is malformed, expired, of another purpose, already
    /// used, or was never stored (a challenge for an unknown username).
    Missing {
        /// The tenant the token names, when it has the shape of a token
        /// that has not expired yet.
        live_tenant: Option<TenantId>,
    },
}

impl AuthenticationService {
    /// Stores a challenge for a user and returns its token.
    pub(crate) async fn issue_challenge(
        &self,
        prefix: &str,
        tenant: TenantId,
        user_id: UserId,
        purpose: ChallengePurpose,
        payload: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(SecretString, DateTime<Utc>), AuthnError> {
        let expires_at = self.challenge_expiry(now);
        let (token, digest) = new_token(prefix, tenant, expires_at)?;
        let challenge = PendingChallenge {
            digest,
            tenant_id: tenant,
            user_id,
            purpose,
            payload,
            failures: 0,
            expires_at,
        };
        self.inner
            .challenges
            .issue(challenge, self.inner.config.challenge_quota, now)
            .await
            .map_err(challenge_error)?;
        Ok((token, expires_at))
    }

    /// Stores a challenge made elsewhere (with its own token and expiry).
    pub(crate) async fn issue_pending(
        &self,
        challenge: PendingChallenge,
        now: DateTime<Utc>,
    ) -> Result<(), AuthnError> {
        self.inner
            .challenges
            .issue(challenge, self.inner.config.challenge_quota, now)
            .await
            .map_err(challenge_error)
    }

    /// Takes the live challenge of a tenant with this digest and purpose.
    pub(crate) async fn take_pending(
        &self,
        tenant: TenantId,
        digest: &ChallengeDigest,
        purpose: &ChallengePurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingChallenge>, AuthnError> {
        self.inner
            .challenges
            .take(tenant, digest, purpose, now)
            .await
            .map_err(challenge_error)
    }

    /// A token shaped like a stored one, for a username that matches no
    /// user: nothing is stored, but the store is asked the same kind of
    /// question (so both cost one round trip).
    pub(crate) async fn phantom_challenge(
        &self,
        prefix: &str,
        tenant: TenantId,
        purpose: &ChallengePurpose,
        now: DateTime<Utc>,
    ) -> Result<(SecretString, DateTime<Utc>), AuthnError> {
        let expires_at = self.challenge_expiry(now);
        let (token, digest) = new_token(prefix, tenant, expires_at)?;
        self.inner
            .challenges
            .take(tenant, &digest, purpose, now)
            .await
            .map_err(challenge_error)?;
        Ok((token, expires_at))
    }

    /// Takes the live challenge a token names.
    pub(crate) async fn take_challenge(
        &self,
        prefix: &str,
        token: &SecretString,
        purpose: &ChallengePurpose,
        now: DateTime<Utc>,
    ) -> Result<Lookup, AuthnError> {
        let Some(parts) = parse_token(prefix, token) else {
            return Ok(Lookup::Missing { live_tenant: None });
        };
        let live_tenant = (parts.expires_at > now).then_some(parts.tenant);
        if live_tenant.is_none() {
            return Ok(Lookup::Missing { live_tenant });
        }
        match self
            .inner
            .challenges
            .take(parts.tenant, &parts.digest, purpose, now)
            .await
            .map_err(challenge_error)?
        {
            Some(found) => Ok(Lookup::Found(found)),
            None => Ok(Lookup::Missing { live_tenant }),
        }
    }

    /// Stores a taken challenge again after a wrong answer it tolerates.
    pub(crate) async fn put_back_challenge(
        &self,
        challenge: PendingChallenge,
        now: DateTime<Utc>,
    ) -> Result<(), AuthnError> {
        self.inner
            .challenges
            .put_back(challenge, now)
            .await
            .map_err(challenge_error)
    }

    fn challenge_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let ttl = chrono::Duration::from_std(self.inner.config.challenge_ttl)
            .unwrap_or(chrono::Duration::minutes(5));
        // Whole seconds: the token carries the expiry in seconds.
        DateTime::from_timestamp((now + ttl).timestamp(), 0).unwrap_or(now + ttl)
    }
}

/// A full quota is a refusal the client may retry later; anything else is
/// the backend's failure.
fn challenge_error(error: ChallengeStoreError) -> AuthnError {
    match error {
        ChallengeStoreError::QuotaExceeded { scope } => AuthnError::Throttled {
            retry_after: match scope {
                QuotaScope::User => std::time::Duration::from_secs(30),
                QuotaScope::Tenant => std::time::Duration::from_secs(60),
            },
        },
        other => AuthnError::Challenges(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_junk() {
        let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(7));
        let expires = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (token, digest) = new_token("sec_mfa_", tenant, expires).unwrap();
        let parts = parse_token("sec_mfa_", &token).unwrap();
        assert_eq!(parts.tenant, tenant);
        assert_eq!(parts.expires_at, expires);
        assert_eq!(parts.digest, digest);
        assert!(parse_token("sec_pwc_", &token).is_none());
        let long = SecretString::from(format!("sec_mfa_{}", "A".repeat(10_000_000)));
        assert!(parse_token("sec_mfa_", &long).is_none());
        let (other, _) = new_token("sec_mfa_", tenant, expires).unwrap();
        assert_ne!(token.expose_secret(), other.expose_secret());
    }
}
