//! Refresh, logout and session revocation.

use secrecy::SecretString;

use security_core::{ClientInfo, CommandContext, SessionId, TenantId, UserCommand, UserId};

use crate::error::AuthnError;
use crate::refresh::{RefreshToken, Seed};
use crate::service::{AuthenticationService, TokenPair};
use crate::session::{Session, SessionCommand, SessionError};

/// A refresh token checked against its session: the token issued for that
/// generation by this session's seed.
pub(crate) struct Presented {
    pub(crate) token: RefreshToken,
    pub(crate) session: Session,
    seed: Seed,
}

/// A refresh token rotated: the next one, and what an access token for
/// the session needs.
pub(crate) struct Rotated {
    pub(crate) tenant: TenantId,
    pub(crate) session_id: SessionId,
    pub(crate) user_id: UserId,
    pub(crate) user: security_core::User,
    pub(crate) account: security_core::Account,
    pub(crate) refresh_token: SecretString,
    pub(crate) refresh_expires_at: chrono::DateTime<chrono::Utc>,
    pub(crate) now: chrono::DateTime<chrono::Utc>,
}

impl AuthenticationService {
    pub(crate) async fn load_session(
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

    /// Parses a refresh token, loads its session and checks that the
    /// session's seed issued it (for a generation not after the current
    /// one). Anything else is [`AuthnError::InvalidRefreshToken`], without
    /// a trace in the session.
    pub(crate) async fn presented(
        &self,
        refresh_token: &SecretString,
    ) -> Result<Presented, AuthnError> {
        let token = RefreshToken::parse(refresh_token).ok_or(AuthnError::InvalidRefreshToken)?;
        let session = self.load_session(token.tenant, token.session_id).await?;
        let sealed = session
            .seed
            .as_ref()
            .ok_or(AuthnError::InvalidRefreshToken)?;
        let seed = match self.unseal(sealed).await {
            Ok(bytes) => {
                use secrecy::ExposeSecret as _;
                Seed::from_bytes(bytes.expose_secret()).ok_or(AuthnError::InvalidRefreshToken)?
            }
            // The user's data key is gone (crypto-shredded): no token of
            // the session can be checked, or issued, again.
            Err(AuthnError::KeyStore(security_core::KeyStoreError::Destroyed(_))) => {
                if session.is_active() {
                    let ctx = self.context(token.tenant, None);
                    self.end_session(&ctx, token.session_id, "session key destroyed")
                        .await?;
                }
                return Err(AuthnError::SessionRevoked);
            }
            Err(e) => return Err(e),
        };
        if token.generation > session.generation || !seed.issued(&token) {
            return Err(AuthnError::InvalidRefreshToken);
        }
        Ok(Presented {
            token,
            session,
            seed,
        })
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
    ///
    /// A refresh never moves the session's absolute expiry
    /// ([`AuthnConfig::session_max_lifetime`](crate::AuthnConfig::session_max_lifetime)):
    /// past it the token is refused as expired. A session opened with an
    /// API key or a login key that was replaced or revoked since is
    /// revoked. The cost of a refresh does not grow with the session's age
    /// (the session holds a seed and a generation counter, and the
    /// repository's state cache replays only what is new).
    #[tracing::instrument(
        name = "authn.refresh",
        skip_all,
        fields(
            operation = "refresh",
            tenant = tracing::field::Empty,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthnError> {
        crate::observe::traced(
            "refresh",
            async {
                let rotated = self.rotate_refresh_token(refresh_token, client).await?;
                let (access_token, expires_at) = self
                    .access_token(
                        rotated.tenant,
                        &rotated.user,
                        &rotated.account,
                        rotated.session_id,
                        rotated.now,
                    )
                    .await?;
                Ok(TokenPair {
                    access_token,
                    refresh_token: rotated.refresh_token,
                    token_type: "Bearer",
                    expires_at,
                    refresh_expires_at: rotated.refresh_expires_at,
                    session_id: rotated.session_id,
                    user_id: rotated.user_id,
                    tenant_id: rotated.tenant,
                })
            },
            crate::observe::outcome,
        )
        .await
    }

    /// The checks and the rotation of [`refresh`](Self::refresh), without
    /// the access token: the next refresh token of the session.
    pub(crate) async fn rotate_refresh_token(
        &self,
        refresh_token: &SecretString,
        client: &ClientInfo,
    ) -> Result<Rotated, AuthnError> {
        let now = self.now();
        let ip = client.ip.map(|ip| format!("refresh:ip:{ip}"));
        if let Some((_, retry_after)) = self
            .throttle(&[ip], self.inner.config.api_rate, now)
            .await?
        {
            return Err(AuthnError::Throttled { retry_after });
        }
        let Presented {
            token,
            session,
            seed,
        } = self.presented(refresh_token).await?;
        let tenant = token.tenant;
        let session_id = token.session_id;
        let ctx = self.context(tenant, None);
        let (Some(user_id), Some(started_at)) = (session.user_id, session.started_at) else {
            return Err(AuthnError::InvalidRefreshToken);
        };
        if !session.is_active() {
            return Err(AuthnError::SessionRevoked);
        }
        let ctx = ctx.with_actor(security_core::Actor::user(user_id));
        let user = self.user(tenant, user_id).await?;
        let account = self.account(tenant).await?;
        // Only the current token can lead to new tokens; an old one goes
        // straight to the aggregate, which records the reuse.
        if token.generation == session.generation {
            let Some(user) = &user else {
                self.end_session(&ctx, session_id, "user not found").await?;
                return Err(AuthnError::SessionRevoked);
            };
            if user.is_session_revoked_for(started_at, session.opened_by)
                || session
                    .passkey
                    .as_ref()
                    .is_some_and(|id| user.is_passkey_session_revoked(started_at, id))
            {
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
        let command = SessionCommand::Refresh {
            presented_generation: token.generation,
            expires_at: now + self.refresh_ttl(),
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
        let rotated = outcome.state;
        let refresh_expires_at = rotated.expires_at.unwrap_or(now);
        let refresh_token = seed.token(tenant, session_id, rotated.generation);
        let user = user.ok_or(AuthnError::SessionRevoked)?;
        Ok(Rotated {
            tenant,
            session_id,
            user_id,
            user,
            account,
            refresh_token,
            refresh_expires_at,
            now,
        })
    }

    /// Logs out: revokes the session of this refresh token (its access
    /// tokens are refused from now on in this process, and in others that
    /// follow the event stream). Any token the session issued will do.
    #[tracing::instrument(
        name = "authn.logout",
        skip_all,
        fields(
            operation = "logout",
            tenant = tracing::field::Empty,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn logout(&self, refresh_token: &SecretString) -> Result<(), AuthnError> {
        crate::observe::traced(
            "logout",
            async {
                let Presented { token, session, .. } = self.presented(refresh_token).await?;
                let actor = session.user_id.map(security_core::Actor::user);
                let ctx = self.context(token.tenant, actor);
                self.end_session(&ctx, token.session_id, "logout").await
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Revokes one session (e.g. from a "your devices" page, or with the
    /// `session_id` of an access token).
    #[tracing::instrument(
        name = "authn.revoke_session",
        skip_all,
        fields(
            operation = "revoke_session",
            tenant = %tenant,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn revoke_session(
        &self,
        tenant: TenantId,
        session_id: SessionId,
        reason: &str,
    ) -> Result<(), AuthnError> {
        crate::observe::traced(
            "revoke_session",
            async {
                let session = self.load_session(tenant, session_id).await?;
                if session.id.is_none() {
                    return Err(AuthnError::InvalidRefreshToken);
                }
                let ctx = self.context(tenant, None);
                self.end_session(&ctx, session_id, reason).await
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Revokes every session and access token of a user issued until now
    /// (`SessionsRevoked` in the user's stream). Locking a user, changing
    /// its password or its roles does the same.
    #[tracing::instrument(
        name = "authn.revoke_all_sessions",
        skip_all,
        fields(
            operation = "revoke_all_sessions",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn revoke_all_sessions(
        &self,
        tenant: TenantId,
        user_id: UserId,
        reason: &str,
    ) -> Result<(), AuthnError> {
        crate::observe::traced(
            "revoke_all_sessions",
            async {
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
            },
            crate::observe::outcome,
        )
        .await
    }
}
