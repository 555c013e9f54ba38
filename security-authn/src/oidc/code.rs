//! Authorization codes: single-use challenges in the shared
//! [`ChallengeStore`](security_core::ChallengeStore), so a code issued on
//! one replica is redeemed on any other, exactly once.
//!
//! A code is `sec_oc_` + base64url(tenant ‖ expiry ‖ 32 random bytes); the
//! store keeps its SHA-256 and what it is bound to ([`CodeBinding`]): the
//! client, the redirect URI, the PKCE challenge, the nonce, the scopes and
//! the sign-in (`auth_time`, method). None of it is a secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use security_core::oauth::{OAuthClientId, Scope};
use security_core::{AuthMethod, ChallengeDigest, ChallengePurpose, SessionId, TenantId};

/// Prefix of authorization codes.
pub(crate) const CODE_PREFIX: &str = "sec_oc_";

/// The challenge purpose of authorization codes.
pub(crate) fn code_purpose() -> ChallengePurpose {
    ChallengePurpose::other("oauth_code").unwrap_or_else(ChallengePurpose::mfa)
}

/// What a code is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CodeBinding {
    pub(crate) client_id: OAuthClientId,
    pub(crate) redirect_uri: String,
    /// base64url(SHA-256(verifier)), PKCE `S256`.
    pub(crate) code_challenge: String,
    pub(crate) nonce: Option<String>,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) auth_time: DateTime<Utc>,
    pub(crate) method: AuthMethod,
}

/// The session a code's redemption opens: derived from the code's digest,
/// so that every replica finds it again when the code is presented twice.
pub(crate) fn session_for_code(tenant: TenantId, digest: &ChallengeDigest) -> SessionId {
    let mut name = Vec::with_capacity(64);
    name.extend_from_slice(b"security-authn:oauth-code:");
    name.extend_from_slice(&digest.0);
    SessionId::from_uuid(Uuid::new_v5(&tenant.as_uuid(), &name))
}

/// Whether a PKCE challenge has the shape of an `S256` one (43 base64url
/// characters: a SHA-256).
pub(crate) fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `verifier` (RFC 7636 §4.1: 43 to 128 unreserved characters)
/// hashes to `challenge`; compared in constant time.
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let shaped = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !shaped {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(security_crypto::sha256(verifier.as_bytes()));
    security_crypto::constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_challenge(challenge));
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        assert!(!pkce_matches(challenge, challenge));
        assert!(!pkce_matches("short", challenge));
        assert!(!pkce_matches(&"a".repeat(129), challenge));
        assert!(!valid_challenge("plain-verifier"));
    }

    #[test]
    fn a_code_names_one_session_per_tenant() {
        let digest = ChallengeDigest([7; 32]);
        let a = TenantId::from_uuid(Uuid::from_u128(1));
        let b = TenantId::from_uuid(Uuid::from_u128(2));
        assert_eq!(session_for_code(a, &digest), session_for_code(a, &digest));
        assert_ne!(session_for_code(a, &digest), session_for_code(b, &digest));
        assert_ne!(
            session_for_code(a, &digest),
            session_for_code(a, &ChallengeDigest([8; 32]))
        );
    }
}
