//! Refresh, logout and session revocation.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use security_core::{ClientInfo, CommandContext, SessionId, TenantId, UserCommand, UserId};

use crate::error::AuthnError;
use crate::service::{
    AuthenticationService, REFRESH_TOKEN_PREFIX, TokenPair, new_opaque_token, parse_opaque_token,
};
use crate::session::{Session, SessionCommand, SessionError};

impl AuthenticationService {
    async fn load_session(
        &self,
        tenant: TenantId,
        session_id: SessionId,
    ) -> Result<Session, AuthnError> {
        Ok(self
            .inner
            .repo
            .load::<Session>(tenant, session_id)
            .await?
            .state)
    }

    /// The keyed hash of a refresh token under the session's key (`None`
    /// when that key no longer hashes: the session cannot be refreshed).
    async fn refresh_hash(
        &self,
        session: &Session,
        token: &SecretString,
    ) -> Result<Option<String>, AuthnError> {
        let Some(key_id) = session.hash_key_id else {
            return Ok(None);
        };
        Ok(self
            .inner
            .keys
            .lookup_hash_with(key_id, token.expose_secret().as_bytes())
            .await?
            .map(|tag| URL_SAFE_NO_PAD.encode(tag)))
    }

    async fn end_session(
        &self,
        ctx: &CommandContext,
        session_id: SessionId,
        reason: &str,
    ) -> Result<(), AuthnError> {
        let command = SessionCommand::Revoke {
            reason: reason.to_owned(),
        };
        self.inner
            .repo
            .execute::<Session>(session_id, &command, ctx)
            .await?;
        self.inner
            .validator
            .revocations()
            .revoke_session(ctx.tenant_id, session_id, ctx.now);
        Ok(())
    }

    /// Exchanges a refresh token for a new token pair. The refresh token is
    /// rotated: the one presented is dead from now on. Presenting a rotated
    /// token again is reuse (a sign of theft): the whole session is revoked,
    /// an event records it, and [`AuthnError::RefreshTokenReused`] is
    /// returned. The new access token carries the user's roles and
    /// permissions as they are now.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthnError> {
        let now = self.now();
        let ip = client.ip.map(|ip| format!("refresh:ip:{ip}"));
        if let Some((_, retry_after)) = self
            .throttle(&[ip], self.inner.config.api_rate, now)
            .await?
        {
            return Err(AuthnError::Throttled { retry_after });
        }
        let parsed = parse_opaque_token(REFRESH_TOKEN_PREFIX, refresh_token)
            .ok_or(AuthnError::InvalidRefreshToken)?;
        let tenant = parsed.tenant;
        let session_id = SessionId::from_uuid(parsed.id);
        let ctx = self.context(tenant, None);
        let session = self.load_session(tenant, session_id).await?;
        let (Some(user_id), Some(started_at)) = (session.user_id, session.started_at) else {
            return Err(AuthnError::InvalidRefreshToken);
        };
        let Some(presented_hash) = self.refresh_hash(&session, refresh_token).await? else {
            if session.is_active() {
                self.end_session(&ctx, session_id, "refresh key retired")
                    .await?;
            }
            return Err(AuthnError::SessionRevoked);
        };
        if !session.knows(&presented_hash) {
            return Err(AuthnError::InvalidRefreshToken);
        }
        if !session.is_active() {
            return Err(AuthnError::SessionRevoked);
        }
        let ctx = ctx.with_actor(security_core::Actor::user(user_id));
        let user = self.user(tenant, user_id).await?;
        let account = self.account(tenant).await?;
        // Only the current token can lead to new tokens; an old one goes
        // straight to the aggregate, which records the reuse.
        if session.current_hash == presented_hash {
            let Some(user) = &user else {
                self.end_session(&ctx, session_id, "user not found").await?;
                return Err(AuthnError::SessionRevoked);
            };
            if user.is_session_revoked(started_at) {
                self.end_session(&ctx, session_id, "user sessions revoked")
                    .await?;
                return Err(AuthnError::SessionRevoked);
            }
            // A lock caused by failed logins (which anyone can cause) does
            // not stop a session that was already open; an admin's lock
            // revokes the sessions anyway.
            let failure_lock = matches!(
                &user.status,
                security_core::UserStatus::Locked { reason, .. }
                    if reason == security_core::FAILURE_LOCK_REASON
            );
            if let Err(e) = user.check_can_authenticate(now)
                && !failure_lock
            {
                if user.status == security_core::UserStatus::Expired {
                    self.end_session(&ctx, session_id, "user expired").await?;
                }
                return Err(e.into());
            }
            account.check_active(now)?;
        }
        let new_token = new_opaque_token(REFRESH_TOKEN_PREFIX, tenant, session_id.as_uuid())?;
        let Some(new_hash) = self.refresh_hash(&session, &new_token).await? else {
            self.end_session(&ctx, session_id, "refresh key retired")
                .await?;
            return Err(AuthnError::SessionRevoked);
        };
        let refresh_expires_at = now + self.refresh_ttl();
        let command = SessionCommand::Refresh {
            presented_hash,
            new_hash,
            expires_at: refresh_expires_at,
            client: client.clone(),
        };
        let outcome = match self
            .inner
            .repo
            .execute::<Session>(session_id, &command, &ctx)
            .await
        {
            Ok(outcome) => outcome,
            Err(security_core::CommandError::Rejected(SessionError::Revoked)) => {
                return Err(AuthnError::SessionRevoked);
            }
            Err(e) => return Err(e.into()),
        };
        if outcome
            .events
            .iter()
            .any(|e| &*e.event_type == "RefreshTokenReuseDetected")
        {
            self.inner
                .validator
                .revocations()
                .revoke_session(tenant, session_id, now);
            tracing::warn!(%session_id, "refresh token reuse: session revoked");
            return Err(AuthnError::RefreshTokenReused);
        }
        let user = user.ok_or(AuthnError::SessionRevoked)?;
        let (access_token, expires_at) = self
            .access_token(tenant, &user, &account, session_id, now)
            .await?;
        Ok(TokenPair {
            access_token,
            refresh_token: new_token,
            token_type: "Bearer",
            expires_at,
            refresh_expires_at,
            session_id,
            user_id,
            tenant_id: tenant,
        })
    }

    /// Logs out: revokes the session of this refresh token (its access
    /// tokens are refused from now on in this process, and in others that
    /// follow the event stream).
    pub async fn logout(&self, refresh_token: &SecretString) -> Result<(), AuthnError> {
        let parsed = parse_opaque_token(REFRESH_TOKEN_PREFIX, refresh_token)
            .ok_or(AuthnError::InvalidRefreshToken)?;
        let tenant = parsed.tenant;
        let session_id = SessionId::from_uuid(parsed.id);
        let session = self.load_session(tenant, session_id).await?;
        let Some(hash) = self.refresh_hash(&session, refresh_token).await? else {
            return Err(AuthnError::InvalidRefreshToken);
        };
        if !session.knows(&hash) {
            return Err(AuthnError::InvalidRefreshToken);
        }
        let actor = session.user_id.map(security_core::Actor::user);
        let ctx = self.context(tenant, actor);
        self.end_session(&ctx, session_id, "logout").await
    }

    /// Revokes one session (e.g. from a "your devices" page, or with the
    /// `session_id` of an access token).
    pub async fn revoke_session(
        &self,
        tenant: TenantId,
        session_id: SessionId,
        reason: &str,
    ) -> Result<(), AuthnError> {
        let session = self.load_session(tenant, session_id).await?;
        if session.id.is_none() {
            return Err(AuthnError::InvalidRefreshToken);
        }
        let ctx = self.context(tenant, None);
        self.end_session(&ctx, session_id, reason).await
    }

    /// Revokes every session and access token of a user issued until now
    /// (`SessionsRevoked` in the user's stream). Locking a user, changing
    /// its password or its roles does the same.
    pub async fn revoke_all_sessions(
        &self,
        tenant: TenantId,
        user_id: UserId,
        reason: &str,
    ) -> Result<(), AuthnError> {
        let ctx = self.context(tenant, None);
        self.user_command(
            &ctx,
            user_id,
            UserCommand::RevokeSessions {
                reason: reason.to_owned(),
            },
        )
        .await
        .map(|_| ())
    }
}
