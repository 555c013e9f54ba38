//! Refresh tokens: one per generation of a session, each derived from the
//! session's secret seed.
//!
//! A token is `sec_rt_` + base64url(tenant ‖ session ‖ generation ‖ tag):
//! the tenant and session name the stream, the generation (big-endian
//! `u32`) says which token of the family it claims to be, and the tag is
//! HMAC-SHA256 under the session's 256-bit random seed over a domain label
//! and the same three fields. The seed is sealed with the user's data key
//! in `SessionStarted` and never stored in clear.
//!
//! So a session keeps one seed and one generation counter, whatever its
//! age, and still recognises every token it ever issued: a presented token
//! whose tag is right and whose generation is the current one rotates; a
//! right tag of an older generation is reuse (a stolen token), which
//! revokes the family; anything else was never issued. Nobody without the
//! seed can make a tag, so reuse cannot be faked to log someone out.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;
use zeroize::Zeroizing;

use security_core::{SessionId, TenantId};

use crate::error::AuthnError;
use crate::service::REFRESH_TOKEN_PREFIX;

/// The label every tag covers, so that no other use of a 32-byte key can
/// produce a refresh-token tag.
const DOMAIN: &[u8] = b"security-authn refresh token v1\0";

/// Bytes of a token after its prefix, decoded: tenant, session,
/// generation, tag.
const RAW_LEN: usize = 16 + 16 + 4 + 32;

/// Characters of the base64url body (no padding).
const BODY_LEN: usize = (RAW_LEN * 4).div_ceil(3);

/// A session's secret, from which every generation's token is derived.
pub(crate) struct Seed(Zeroizing<[u8; 32]>);

impl Seed {
    /// A new random seed.
    pub(crate) fn generate() -> Result<Self, AuthnError> {
        let bytes = security_crypto::random_bytes::<32>().map_err(AuthnError::crypto)?;
        let mut seed = Zeroizing::new([0_u8; 32]);
        seed.copy_from_slice(bytes.as_ref());
        Ok(Self(seed))
    }

    /// A seed unsealed from a session's start (exactly 32 bytes).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut seed = Zeroizing::new([0_u8; 32]);
        if bytes.len() != seed.len() {
            return None;
        }
        seed.copy_from_slice(bytes);
        Some(Self(seed))
    }

    /// The bytes to seal.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_ref()
    }

    fn tag(&self, tenant: TenantId, session: SessionId, generation: u32) -> [u8; 32] {
        let mut message = Vec::with_capacity(DOMAIN.len() + 36);
        message.extend_from_slice(DOMAIN);
        message.extend_from_slice(tenant.as_uuid().as_bytes());
        message.extend_from_slice(session.as_uuid().as_bytes());
        message.extend_from_slice(&generation.to_be_bytes());
        security_crypto::hmac_sha256(self.0.as_ref(), &message)
    }

    /// The token of one generation of the session.
    pub(crate) fn token(
        &self,
        tenant: TenantId,
        session: SessionId,
        generation: u32,
    ) -> SecretString {
        let mut raw = Zeroizing::new([0_u8; RAW_LEN]);
        raw[..16].copy_from_slice(tenant.as_uuid().as_bytes());
        raw[16..32].copy_from_slice(session.as_uuid().as_bytes());
        raw[32..36].copy_from_slice(&generation.to_be_bytes());
        raw[36..].copy_from_slice(&self.tag(tenant, session, generation));
        let mut text = String::with_capacity(REFRESH_TOKEN_PREFIX.len() + BODY_LEN);
        text.push_str(REFRESH_TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(raw.as_ref(), &mut text);
        SecretString::from(text)
    }

    /// Whether `token` is one this seed issued (constant time in the tag).
    pub(crate) fn issued(&self, token: &RefreshToken) -> bool {
        let expected = self.tag(token.tenant, token.session_id, token.generation);
        security_crypto::constant_time_eq(&expected, token.tag.as_ref())
    }
}

/// A refresh token split into its parts (nothing is verified yet).
pub(crate) struct RefreshToken {
    /// The session's tenant.
    pub(crate) tenant: TenantId,
    /// The session.
    pub(crate) session_id: SessionId,
    /// Which token of the family it claims to be (the first is 0).
    pub(crate) generation: u32,
    tag: Zeroizing<[u8; 32]>,
}

impl RefreshToken {
    /// Splits a token; `None` unless it has exactly this format.
    pub(crate) fn parse(token: &SecretString) -> Option<Self> {
        let body = token.expose_secret().strip_prefix(REFRESH_TOKEN_PREFIX)?;
        if body.len() != BODY_LEN {
            return None;
        }
        let mut raw = Zeroizing::new([0_u8; RAW_LEN]);
        match URL_SAFE_NO_PAD.decode_slice(body, raw.as_mut()) {
            Ok(RAW_LEN) => {}
            _ => return None,
        }
        let tenant = Uuid::from_slice(&raw[..16]).ok()?;
        let session = Uuid::from_slice(&raw[16..32]).ok()?;
        let generation = u32::from_be_bytes(raw[32..36].try_into().ok()?);
        let mut tag = Zeroizing::new([0_u8; 32]);
        tag.copy_from_slice(&raw[36..]);
        Some(Self {
            tenant: TenantId::from_uuid(tenant),
            session_id: SessionId::from_uuid(session),
            generation,
            tag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_generation_has_its_own_token_and_only_the_seed_makes_them() {
        let seed = Seed::generate().unwrap();
        let other = Seed::generate().unwrap();
        let tenant = TenantId::from_uuid(Uuid::from_u128(7));
        let session = SessionId::from_uuid(Uuid::from_u128(9));
        let first = seed.token(tenant, session, 0);
        let second = seed.token(tenant, session, 1);
        assert!(first.expose_secret().starts_with("sec_rt_"));
        assert_ne!(first.expose_secret(), second.expose_secret());
        for (token, generation) in [(&first, 0), (&second, 1)] {
            let parsed = RefreshToken::parse(token).unwrap();
            assert_eq!(parsed.tenant, tenant);
            assert_eq!(parsed.session_id, session);
            assert_eq!(parsed.generation, generation);
            assert!(seed.issued(&parsed));
            assert!(!other.issued(&parsed));
        }
        // Claiming another generation with a genuine tag fails.
        let mut forged = RefreshToken::parse(&second).unwrap();
        forged.generation = 0;
        assert!(!seed.issued(&forged));
        // Shapes.
        assert!(RefreshToken::parse(&SecretString::from("sec_rt_")).is_none());
        let cut = SecretString::from(first.expose_secret()[..80].to_owned());
        assert!(RefreshToken::parse(&cut).is_none());
        let junk = SecretString::from(format!("sec_rt_{}", "!".repeat(BODY_LEN)));
        assert!(RefreshToken::parse(&junk).is_none());
        let api_key = SecretString::from(first.expose_secret().replacen("sec_rt_", "sec_ak_", 1));
        assert!(RefreshToken::parse(&api_key).is_none());
        let seed_again = Seed::from_bytes(seed.as_bytes()).unwrap();
        assert!(seed_again.issued(&RefreshToken::parse(&first).unwrap()));
        assert!(Seed::from_bytes(&[0; 31]).is_none());
    }
}
