//! The token endpoint: `authorization_code` (with PKCE), `refresh_token`
//! (the library's rotation and reuse detection) and `client_credentials`.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use security_core::oauth::{
    ClientKind, GrantType, OAuthClient, OAuthClientId, Scope, parse_scopes,
};
use security_core::{
    AccessClaims, Account, Actor, Audience, ClientInfo, CommandError, DomainError, Permissions,
    SessionId, TenantId, User, UserId,
};

use super::audit::OAuthAuditEvent;
use super::claims::{ID_TOKEN_TYP, IdTokenClaims, OAuthAccessClaims, authentication_methods};
use super::clients::ClientAuthentication;
use super::code::{CODE_PREFIX, CodeBinding, code_purpose, pkce_matches, session_for_code};
use super::error::{OAuthError, OAuthErrorCode};
use super::grant::{OAuthGrant, OAuthGrantCommand};
use super::provider::OidcProvider;
use crate::error::AuthnError;
use crate::jwt::ACCESS_TOKEN_TYP;
use crate::refresh::RefreshToken;

/// A token request's parameters (besides client authentication), as
/// received in the form.
#[derive(Clone, Default, Deserialize)]
pub struct TokenRequest {
    /// `authorization_code`, `refresh_token` or `client_credentials`.
    pub grant_type: Option<String>,
    /// The authorization code.
    pub code: Option<SecretString>,
    /// The redirect URI the code was asked for with.
    pub redirect_uri: Option<String>,
    /// The PKCE verifier.
    pub code_verifier: Option<SecretString>,
    /// The refresh token.
    pub refresh_token: Option<SecretString>,
    /// Space-separated scopes (refresh: a subset of the grant's;
    /// client credentials: a subset of the client's).
    pub scope: Option<String>,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("redirect_uri", &self.redirect_uri)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A token response (RFC 6749 §5.1). `Debug` shows no token.
pub struct TokenResponse {
    /// The access token (a JWT of the library, with `scope` and
    /// `client_id`).
    pub access_token: SecretString,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token (user grants whose client may refresh).
    pub refresh_token: Option<SecretString>,
    /// The ID token (when `openid` was granted).
    pub id_token: Option<String>,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The session the tokens belong to (user grants).
    pub session_id: Option<SessionId>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[REDACTED]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "[REDACTED]"))
            .field("scope", &self.scope)
            .field("session_id", &self.session_id)
            .finish()
    }
}

fn invalid_grant(description: &'static str) -> AuthnError {
    OAuthError::new(OAuthErrorCode::InvalidGrant, description).into()
}

fn scope_text(scopes: &BTreeSet<Scope>) -> String {
    scopes
        .iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The sign-in an ID token describes.
struct SignIn<'a> {
    user_id: UserId,
    session_id: SessionId,
    auth_time: DateTime<Utc>,
    amr: &'a [String],
    acr: &'a str,
    nonce: Option<&'a str>,
}

impl OidcProvider {
    /// Answers a token request of an authenticated client. Refusals are
    /// [`AuthnError::OAuth`] with the protocol's error code, and audit
    /// events; the `implicit` and `password` grants (and any other) are
    /// `unsupported_grant_type`.
    pub async fn token(
        &self,
        tenant: TenantId,
        auth: &ClientAuthentication,
        request: &TokenRequest,
        client_info: &ClientInfo,
    ) -> Result<TokenResponse, AuthnError> {
        let client = self.authenticate_client(tenant, auth).await?;
        let client_id = client.id.ok_or_else(super::clients::invalid_client)?;
        let result = self
            .token_for(tenant, &client, client_id, request, client_info)
            .await;
        if let Err(AuthnError::OAuth(error)) = &result {
            let event = OAuthAuditEvent::TokenRequestRefused {
                client_id,
                error: error.code.as_str().to_owned(),
                refused_at: self.authn.now(),
            };
            self.record(tenant, None, &event).await?;
        }
        result
    }

    async fn token_for(
        &self,
        tenant: TenantId,
        client: &OAuthClient,
        client_id: OAuthClientId,
        request: &TokenRequest,
        client_info: &ClientInfo,
    ) -> Result<TokenResponse, AuthnError> {
        let grant = request
            .grant_type
            .as_deref()
            .and_then(GrantType::parse)
            .ok_or_else(|| {
                OAuthError::new(
                    OAuthErrorCode::UnsupportedGrantType,
                    "grant_type is not supported",
                )
            })?;
        if !client.allows(grant) {
            return Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "the client may not use this grant",
            )
            .into());
        }
        match grant {
            GrantType::AuthorizationCode => {
                self.redeem_code(tenant, client, client_id, request, client_info)
                    .await
            }
            GrantType::RefreshToken => self.refresh(tenant, client_id, request, client_info).await,
            GrantType::ClientCredentials => {
                self.client_credentials(tenant, client, client_id, request)
                    .await
            }
        }
    }

    async fn redeem_code(
        &self,
        tenant: TenantId,
        client: &OAuthClient,
        client_id: OAuthClientId,
        request: &TokenRequest,
        client_info: &ClientInfo,
    ) -> Result<TokenResponse, AuthnError> {
        let (Some(code), Some(redirect_uri), Some(verifier)) = (
            &request.code,
            request.redirect_uri.as_deref(),
            &request.code_verifier,
        ) else {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                "code, redirect_uri and code_verifier are required",
            )
            .into());
        };
        let now = self.authn.now();
        let parts = crate::tickets::parse_token(CODE_PREFIX, code)
            .filter(|parts| parts.tenant == tenant)
            .ok_or_else(|| invalid_grant("the code is invalid"))?;
        let taken = self
            .authn
            .take_pending(tenant, &parts.digest, &code_purpose(), now)
            .await?;
        let session_id = session_for_code(tenant, &parts.digest);
        let Some(pending) = taken else {
            self.code_reused(tenant, client_id, session_id).await?;
            return Err(invalid_grant("the code is invalid, expired or used"));
        };
        let binding: CodeBinding = serde_json::from_value(pending.payload)
            .map_err(|_| invalid_grant("the code is invalid"))?;
        let refusal = if binding.client_id != client_id {
            Some("the code was issued to another client")
        } else if binding.redirect_uri != redirect_uri {
            Some("redirect_uri does not match the authorization request")
        } else if !pkce_matches(verifier.expose_secret(), &binding.code_challenge) {
            Some("code_verifier does not match the code_challenge")
        } else {
            None
        };
        if let Some(reason) = refusal {
            let event = OAuthAuditEvent::AuthorizationCodeRefused {
                client_id,
                reason: reason.to_owned(),
                refused_at: now,
            };
            self.record(tenant, None, &event).await?;
            return Err(invalid_grant(reason));
        }
        let user_id = pending.user_id;
        let user = self
            .authn
            .user(tenant, user_id)
            .await?
            .ok_or_else(|| invalid_grant("the user is gone"))?;
        user.check_can_authenticate(now)?;
        let account = self.authn.account(tenant).await?;
        account.check_active(now)?;
        let scopes: BTreeSet<Scope> = binding.scopes.iter().cloned().collect();
        let (amr, acr) = authentication_methods(binding.method);
        let ctx = self.authn.context(tenant, Some(Actor::user(user_id)));
        let start = OAuthGrantCommand::Start {
            session_id,
            client_id,
            user_id,
            scopes: scopes.clone(),
            auth_time: binding.auth_time,
            amr: amr.clone(),
            acr: acr.to_owned(),
        };
        match self
            .authn
            .inner
            .repo
            .execute::<OAuthGrant>(session_id, &start, &ctx)
            .await
        {
            Ok(_) => {}
            Err(CommandError::Rejected(DomainError::AlreadyExists { .. })) => {
                return Err(invalid_grant("the code was used"));
            }
            Err(e) => return Err(e.into()),
        }
        let started = self
            .authn
            .start_session(&ctx, &user, binding.method, client_info, session_id)
            .await?;
        // A second presentation of the code may have marked the grant
        // before this session existed to be revoked: then this redemption
        // revokes it itself. (A mark after this read finds the session.)
        let grant = self
            .authn
            .inner
            .repo
            .load::<OAuthGrant>(tenant, session_id)
            .await?
            .state;
        if grant.code_reused {
            self.authn
                .revoke_session(tenant, session_id, "authorization code reused")
                .await?;
            return Err(invalid_grant("the code was used"));
        }
        let sign_in = SignIn {
            user_id,
            session_id,
            auth_time: binding.auth_time,
            amr: &amr,
            acr,
            nonce: binding.nonce.as_deref(),
        };
        let (mut response, jti) = self
            .user_tokens(
                tenant,
                &user,
                &account,
                client_id,
                &scopes,
                &sign_in,
                started.now,
            )
            .await?;
        if client.allows(GrantType::RefreshToken) {
            response.refresh_token = Some(started.refresh_token);
        } else {
            // A session nobody can refresh: its refresh token is dropped.
            drop(started.refresh_token);
        }
        let event = OAuthAuditEvent::AuthorizationCodeRedeemed {
            client_id,
            user_id,
            session_id,
            jti,
            redeemed_at: now,
        };
        self.record(tenant, Some(Actor::user(user_id)), &event)
            .await?;
        Ok(response)
    }

    /// A code that is not (or no longer) in the store: if it was redeemed,
    /// the session it gave is revoked, on every replica (the revocation is
    /// an event), whoever presents it.
    async fn code_reused(
        &self,
        tenant: TenantId,
        client_id: OAuthClientId,
        session_id: SessionId,
    ) -> Result<(), AuthnError> {
        let grant = self
            .authn
            .inner
            .repo
            .load::<OAuthGrant>(tenant, session_id)
            .await?
            .state;
        if grant.session_id.is_none() {
            return Ok(());
        }
        let ctx = self.authn.context(tenant, Some(Actor::system()));
        self.authn
            .inner
            .repo
            .execute::<OAuthGrant>(session_id, &OAuthGrantCommand::RecordCodeReuse, &ctx)
            .await?;
        match self
            .authn
            .revoke_session(tenant, session_id, "authorization code reused")
            .await
        {
            // Not started yet: its redemption sees the mark and revokes it.
            Ok(()) | Err(AuthnError::SessionRevoked | AuthnError::InvalidRefreshToken) => {}
            Err(e) => return Err(e),
        }
        let event = OAuthAuditEvent::AuthorizationCodeReused {
            client_id,
            session_id,
            detected_at: ctx.now,
        };
        self.record(tenant, None, &event).await?;
        tracing::warn!(%session_id, "authorization code reused: session revoked");
        Ok(())
    }

    async fn refresh(
        &self,
        tenant: TenantId,
        client_id: OAuthClientId,
        request: &TokenRequest,
        client_info: &ClientInfo,
    ) -> Result<TokenResponse, AuthnError> {
        let token = request.refresh_token.as_ref().ok_or_else(|| {
            OAuthError::new(OAuthErrorCode::InvalidRequest, "refresh_token is required")
        })?;
        let parsed = RefreshToken::parse(token)
            .filter(|t| t.tenant == tenant)
            .ok_or_else(|| invalid_grant("the refresh token is invalid"))?;
        let grant = self
            .authn
            .inner
            .repo
            .load::<OAuthGrant>(tenant, parsed.session_id)
            .await?
            .state;
        if grant.client_id != Some(client_id) {
            return Err(invalid_grant("the refresh token is invalid"));
        }
        let scopes = match request.scope.as_deref() {
            None => grant.scopes.clone(),
            Some(text) => {
                let asked = parse_scopes(text).map_err(|_| {
                    OAuthError::new(OAuthErrorCode::InvalidScope, "scope is malformed")
                })?;
                if !asked.is_subset(&grant.scopes) {
                    return Err(OAuthError::new(
                        OAuthErrorCode::InvalidScope,
                        "scope exceeds the grant",
                    )
                    .into());
                }
                asked
            }
        };
        let rotated = match self.authn.rotate_refresh_token(token, client_info).await {
            Ok(rotated) => rotated,
            Err(
                AuthnError::InvalidRefreshToken
                | AuthnError::SessionRevoked
                | AuthnError::RefreshTokenReused,
            ) => {
                return Err(invalid_grant(
                    "the refresh token is invalid, revoked or reused",
                ));
            }
            Err(e) => return Err(e),
        };
        let sign_in = SignIn {
            user_id: rotated.user_id,
            session_id: rotated.session_id,
            auth_time: grant.auth_time.unwrap_or(rotated.now),
            amr: &grant.amr,
            acr: &grant.acr,
            nonce: None,
        };
        let (mut response, jti) = self
            .user_tokens(
                tenant,
                &rotated.user,
                &rotated.account,
                client_id,
                &scopes,
                &sign_in,
                rotated.now,
            )
            .await?;
        response.refresh_token = Some(rotated.refresh_token);
        let event = OAuthAuditEvent::TokensIssued {
            client_id,
            grant: GrantType::RefreshToken,
            session_id: Some(rotated.session_id),
            jti,
            issued_at: rotated.now,
        };
        self.record(tenant, Some(Actor::user(rotated.user_id)), &event)
            .await?;
        Ok(response)
    }

    /// The access token (and ID token, with `openid`) of a user grant, and
    /// the access token's `jti` (for the caller's audit event).
    #[allow(clippy::too_many_arguments, reason = "the parts of one token response")]
    async fn user_tokens(
        &self,
        tenant: TenantId,
        user: &User,
        account: &Account,
        client_id: OAuthClientId,
        scopes: &BTreeSet<Scope>,
        sign_in: &SignIn<'_>,
        now: DateTime<Utc>,
    ) -> Result<(TokenResponse, String), AuthnError> {
        let base = self
            .authn
            .access_claims(tenant, user, account, Some(sign_in.session_id), now)
            .await?;
        let scope = scope_text(scopes);
        let (access_token, expires_in, jti) =
            self.sign_access(tenant, base, &scope, client_id).await?;
        let id_token = if scopes.contains(&Scope::openid()) {
            let iat = now.timestamp();
            let ttl = i64::try_from(self.id_token_ttl().as_secs()).unwrap_or(300);
            let claims = IdTokenClaims {
                iss: self.issuer(tenant),
                sub: sign_in.user_id.to_string(),
                aud: client_id.to_string(),
                exp: iat + ttl,
                iat,
                auth_time: sign_in.auth_time.timestamp(),
                nonce: sign_in.nonce.map(str::to_owned),
                acr: sign_in.acr.to_owned(),
                amr: sign_in.amr.to_vec(),
                azp: client_id.to_string(),
                sid: sign_in.session_id.to_string(),
            };
            Some(self.authn.sign_jwt(tenant, ID_TOKEN_TYP, &claims).await?)
        } else {
            None
        };
        Ok((
            TokenResponse {
                access_token,
                token_type: "Bearer",
                expires_in,
                refresh_token: None,
                id_token,
                scope,
                session_id: Some(sign_in.session_id),
            },
            jti,
        ))
    }

    async fn sign_access(
        &self,
        tenant: TenantId,
        base: AccessClaims,
        scope: &str,
        client_id: OAuthClientId,
    ) -> Result<(SecretString, u64, String), AuthnError> {
        let expires_in = u64::try_from(base.exp - self.authn.now().timestamp()).unwrap_or(0);
        let jti = base.jti.clone();
        let claims = OAuthAccessClaims {
            base,
            scope: scope.to_owned(),
            client_id: client_id.to_string(),
        };
        let token = self
            .authn
            .sign_jwt(tenant, ACCESS_TOKEN_TYP, &claims)
            .await?;
        Ok((SecretString::from(token), expires_in, jti))
    }

    async fn client_credentials(
        &self,
        tenant: TenantId,
        client: &OAuthClient,
        client_id: OAuthClientId,
        request: &TokenRequest,
    ) -> Result<TokenResponse, AuthnError> {
        if client.kind != Some(ClientKind::Confidential) {
            return Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "client_credentials needs a confidential client",
            )
            .into());
        }
        let allowed = client
            .settings
            .as_ref()
            .map(|s| s.scopes.clone())
            .unwrap_or_default();
        let mut scopes = match request.scope.as_deref() {
            None => allowed.clone(),
            Some(text) => parse_scopes(text)
                .map_err(|_| OAuthError::new(OAuthErrorCode::InvalidScope, "scope is malformed"))?,
        };
        if !scopes.is_subset(&allowed) {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidScope,
                "a scope is not allowed for this client",
            )
            .into());
        }
        // No user signed in: no ID token.
        scopes.remove(&Scope::openid());
        let now = self.authn.now();
        let jwt = &self.authn.config().jwt;
        let iat = now.timestamp();
        let ttl = i64::try_from(jwt.access_token_ttl.as_secs()).unwrap_or(1800);
        // The client is the subject; no user holds its id, so it has no
        // roles or permissions of a user, only its scopes.
        let base = AccessClaims {
            iss: jwt.issuer.clone(),
            sub: client_id.to_string(),
            aud: Audience::One(jwt.audience.clone()),
            exp: iat + ttl,
            nbf: None,
            iat,
            jti: self.authn.new_id().to_string(),
            tenant_id: tenant,
            user_id: UserId::from_uuid(client_id.as_uuid()),
            session_id: None,
            roles: Vec::new(),
            permissions: Permissions::default(),
        };
        let scope = scope_text(&scopes);
        let (access_token, expires_in, jti) =
            self.sign_access(tenant, base, &scope, client_id).await?;
        let event = OAuthAuditEvent::TokensIssued {
            client_id,
            grant: GrantType::ClientCredentials,
            session_id: None,
            jti,
            issued_at: now,
        };
        self.record(tenant, None, &event).await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in,
            refresh_token: None,
            id_token: None,
            scope,
            session_id: None,
        })
    }
}
