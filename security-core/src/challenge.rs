//! The [`ChallengeStore`] port: short-lived, single-use challenges of a
//! multi-step login (an MFA challenge, a password-change ticket, a
//! public-key nonce; and later WebAuthn ceremonies or OAuth codes), shared
//! by every replica of a service.
//!
//! The client holds the challenge token (256 random bits); the store keeps
//! only its SHA-256 ([`ChallengeDigest`]), bound to a tenant, a user, a
//! purpose and an expiry. Taking a challenge removes it atomically, so of
//! any number of concurrent uses on any replicas exactly one gets it.
//!
//! Implementations: in memory (`security_authn::MemoryChallengeStore`, one
//! process) and PostgreSQL (`security_eventstore::PostgresChallengeStore`).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{TenantId, UserId};

/// The SHA-256 of a challenge token: the only form a store keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChallengeDigest(pub [u8; 32]);

impl fmt::Debug for ChallengeDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to tell digests apart in logs.
        write!(f, "ChallengeDigest({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// What a challenge is for: a challenge is only ever taken for its own
/// purpose. The names are short lowercase ASCII words.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChallengePurpose(Arc<str>);

impl ChallengePurpose {
    /// The password was right; a second factor is asked for.
    pub fn mfa() -> Self {
        Self(Arc::from("mfa"))
    }

    /// The credentials were right; the password must be changed first.
    pub fn password_change() -> Self {
        Self(Arc::from("password_change"))
    }

    /// A nonce for the user's key to sign.
    pub fn public_key() -> Self {
        Self(Arc::from("public_key"))
    }

    /// Another purpose (1 to 64 characters of `a-z`, `0-9`, `_`, `-`).
    pub fn other(name: &str) -> Option<Self> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        valid.then(|| Self(Arc::from(name)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A challenge waiting to be completed.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingChallenge {
    /// The SHA-256 of the token the client holds.
    pub digest: ChallengeDigest,
    /// The tenant it was issued in.
    pub tenant_id: TenantId,
    /// The user it was issued to. Challenges are only ever stored for users
    /// that exist.
    pub user_id: UserId,
    /// What it is for.
    pub purpose: ChallengePurpose,
    /// Purpose-specific data (a nonce, what comes next). Stored in clear:
    /// never put a secret here.
    pub payload: serde_json::Value,
    /// Wrong answers so far (a challenge allows a few).
    pub failures: u32,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
}

/// How many live challenges may wait at once, so that a flood of starts in
/// one tenant or for one user cannot fill the store for everyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeQuota {
    /// Live challenges per user (all purposes together).
    pub per_user: u32,
    /// Live challenges per tenant.
    pub per_tenant: u32,
}

impl Default for ChallengeQuota {
    fn default() -> Self {
        Self {
            per_user: 32,
            per_tenant: 10_000,
        }
    }
}

/// Which quota a refused challenge hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaScope {
    /// The user's.
    User,
    /// The tenant's.
    Tenant,
}

/// A challenge store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeStoreError {
    /// Too many live challenges for the user or the tenant: nothing was
    /// stored. Answer as throttled (HTTP 429) and let the client retry when
    /// older challenges have expired.
    #[error("too many pending challenges")]
    QuotaExceeded {
        /// Which quota.
        scope: QuotaScope,
    },
    /// A challenge with this digest already exists (a token was reused:
    /// tokens are 256 random bits, so this is a programming error). Never
    /// retry with the same token.
    #[error("challenge already exists")]
    Duplicate,
    /// The backend failed (database unreachable, …). Log it, answer 503;
    /// retrying later may succeed.
    #[error("challenge store backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ChallengeStoreError {
    /// Wraps a backend error (kept as the source, never in the message).
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(error))
    }

    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::QuotaExceeded { .. } | Self::Backend(_))
    }
}

/// Keeps pending challenges where every replica sees them.
///
/// Contract (every implementation; the in-memory one is the reference):
/// - [`issue`](Self::issue) stores a challenge unless the user already has
///   `quota.per_user` live challenges or the tenant `quota.per_tenant`
///   (expired ones do not count, and may be removed by any call);
/// - [`take`](Self::take) removes and returns a live challenge of the given
///   tenant and purpose; of concurrent takes of one digest, on any replicas, exactly
///   one gets it; an expired challenge or one of another purpose is never
///   returned (and one of another purpose stays);
/// - [`put_back`](Self::put_back) stores a taken challenge again (after a
///   wrong answer that the challenge tolerates), unless it has expired.
#[async_trait]
pub trait ChallengeStore: fmt::Debug + Send + Sync {
    /// Stores a new challenge within the quotas.
    async fn issue(
        &self,
        challenge: PendingChallenge,
        quota: ChallengeQuota,
        now: DateTime<Utc>,
    ) -> Result<(), ChallengeStoreError>;

    /// Removes and returns the live challenge of the tenant with this
    /// digest and purpose.
    async fn take(
        &self,
        tenant: TenantId,
        digest: &ChallengeDigest,
        purpose: &ChallengePurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingChallenge>, ChallengeStoreError>;

    /// Stores a taken challenge again (same digest), unless it has expired.
    async fn put_back(
        &self,
        challenge: PendingChallenge,
        now: DateTime<Utc>,
    ) -> Result<(), ChallengeStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_are_short_words() {
        assert_eq!(ChallengePurpose::mfa().as_str(), "mfa");
        assert!(ChallengePurpose::other("webauthn-register").is_some());
        assert!(ChallengePurpose::other("").is_none());
        assert!(ChallengePurpose::other("Upper").is_none());
        assert!(ChallengePurpose::other(&"x".repeat(65)).is_none());
        let digest = ChallengeDigest([0xab; 32]);
        assert_eq!(format!("{digest:?}"), "ChallengeDigest(abab…)");
    }
}
