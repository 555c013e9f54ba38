//! Revoking one access token is an event, so that every replica refuses
//! it (through its [`RevocationProjection`](crate::RevocationProjection)).
//!
//! The events go to the stream `(tenant, "access_token_revocation",
//! user)`, through the repository like every command, retried until they
//! land (a revocation must never fail on contention).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use security_core::{
    AccessClaims, Actor, Aggregate, CommandContext, RetryPolicy, UserId, impl_domain_event,
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

impl_domain_event!(
    TokenRevocationEvent,
    version = 1,
    types = [AccessTokenRevoked]
);

/// The access tokens of one user revoked one by one (the stream's
/// aggregate: it only counts them; the revocation list is a projection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRevocations {
    /// How many tokens were revoked.
    pub revoked: u64,
}

/// Revokes one access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeAccessToken {
    /// Its user.
    pub user_id: UserId,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp` (Unix seconds).
    pub expires_at: i64,
}

impl Aggregate for TokenRevocations {
    const TYPE: &'static str = ACCESS_TOKEN_REVOCATION;
    type Command = RevokeAccessToken;
    type Event = TokenRevocationEvent;
    type Error = std::convert::Infallible;

    fn handle(
        &self,
        command: &RevokeAccessToken,
        ctx: &CommandContext,
    ) -> Result<Vec<TokenRevocationEvent>, Self::Error> {
        Ok(vec![TokenRevocationEvent::AccessTokenRevoked {
            user_id: command.user_id,
            jti: command.jti.clone(),
            expires_at: command.expires_at,
            revoked_at: ctx.now,
        }])
    }

    fn apply(&mut self, _event: &TokenRevocationEvent) {
        self.revoked += 1;
    }
}

impl AuthenticationService {
    /// Revokes one access token (by its `jti`) until it expires: an
    /// `AccessTokenRevoked` event, applied in this process at once and by
    /// every other replica through its revocation projection (within its
    /// lag: see [`revocation_health`](Self::revocation_health)).
    #[tracing::instrument(
        name = "authn.revoke_access_token",
        skip_all,
        fields(
            operation = "revoke_access_token",
            tenant = %claims.tenant_id,
            user_id = %claims.user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn revoke_access_token(&self, claims: &AccessClaims) -> Result<(), AuthnError> {
        crate::observe::traced(
            "revoke_access_token",
            async {
                if claims.jti.is_empty() || claims.jti.len() > 256 {
                    return Err(AuthnError::Token(security_core::TokenError::Malformed));
                }
                let tenant = claims.tenant_id;
                let ctx: CommandContext = self.context(tenant, Some(Actor::user(claims.user_id)));
                let command = RevokeAccessToken {
                    user_id: claims.user_id,
                    jti: claims.jti.clone(),
                    expires_at: claims.exp,
                };
                self.inner
                    .repo
                    .execute_with::<TokenRevocations>(
                        claims.user_id,
                        &command,
                        &ctx,
                        &RetryPolicy::persistent(),
                    )
                    .await?;
                self.inner.validator.revocations().revoke_jti(
                    tenant,
                    &claims.jti,
                    claims.exp,
                    ctx.now,
                );
                Ok(())
            },
            crate::observe::outcome,
        )
        .await
    }
}
