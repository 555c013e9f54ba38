//! Revoking one access token is an event, so that every replica refuses
//! it (through its [`RevocationProjection`](crate::RevocationProjection)).
//!
//! The events go to the stream `(tenant, "access_token_revocation",
//! user)`, appended without a version check (a revocation has no invariant
//! to protect and must never fail on contention).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use security_core::{
    AccessClaims, Actor, CommandContext, ExpectedVersion, StreamId, UserId, impl_domain_event,
};

use crate::error::AuthnError;
use crate::service::AuthenticationService;

/// The aggregate type of token-revocation streams.
pub const ACCESS_TOKEN_REVOCATION: &str = "access_token_revocation";

/// Events of a token-revocation stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenRevocationEvent {
    /// One access token is refused from now on, until it expires.
    AccessTokenRevoked {
        /// Its user.
        user_id: UserId,
        /// Its `jti`.
        jti: String,
        /// Its `exp` (Unix seconds): the entry is needed until then.
        expires_at: i64,
        /// When.
        revoked_at: DateTime<Utc>,
    },
}

impl_domain_event!(TokenRevocationEvent, version = 1, types = [AccessTokenRevoked]);

impl AuthenticationService {
    /// Revokes one access token (by its `jti`) until it expires: an
    /// `AccessTokenRevoked` event, applied in this process at once and by
    /// every other replica through its revocation projection (within its
    /// lag: see [`revocation_health`](Self::revocation_health)).
    pub async fn revoke_access_token(&self, claims: &AccessClaims) -> Result<(), AuthnError> {
        if claims.jti.is_empty() || claims.jti.len() > 256 {
            return Err(AuthnError::Token(security_core::TokenError::Malformed));
        }
        let tenant = claims.tenant_id;
        let ctx: CommandContext = self.context(tenant, Some(Actor::user(claims.user_id)));
        let event = TokenRevocationEvent::AccessTokenRevoked {
            user_id: claims.user_id,
            jti: claims.jti.clone(),
            expires_at: claims.exp,
            revoked_at: ctx.now,
        };
        let stream = StreamId::new(tenant, ACCESS_TOKEN_REVOCATION, claims.user_id.as_uuid());
        let writer = &self.inner.writer;
        let events = writer.encode(std::slice::from_ref(&event), &ctx)?;
        writer
            .append(&stream, ExpectedVersion::Any, events, &ctx)
            .await?
            .ok_or(AuthnError::Conflict)?;
        self.inner
            .validator
            .revocations()
            .revoke_jti(tenant, &claims.jti, claims.exp, ctx.now);
        Ok(())
    }
}
