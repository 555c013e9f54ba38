//! Introspection (RFC 7662), revocation (RFC 7009) and userinfo.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};

use security_core::oauth::ClientKind;
use security_core::{TenantId, TokenError};

use super::audit::OAuthAuditEvent;
use super::claims::OAuthAccessClaims;
use super::clients::ClientAuthentication;
use super::error::{OAuthError, OAuthErrorCode};
use super::grant::OAuthGrant;
use super::provider::OidcProvider;
use crate::error::AuthnError;
use crate::refresh::RefreshToken;

/// An introspection response (RFC 7662 §2.2): `active: false` and nothing
/// else for any token that is not live.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Introspection {
    /// Whether the token is live.
    pub active: bool,
    /// The granted scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client it was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The subject (user, or client for client credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// Expiry (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// The longest token looked at (larger ones are not tokens of this
/// provider and are never parsed).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

impl OidcProvider {
    /// An access token of this provider, validated (signature, expiry,
    /// revocation) and of the tenant.
    async fn access_claims_of(
        &self,
        tenant: TenantId,
        token: &str,
    ) -> Result<OAuthAccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let claims: OAuthAccessClaims = self.authn.validator().validate_fetching(token).await?;
        if claims.base.tenant_id != tenant {
            return Err(TokenError::Signature);
        }
        Ok(claims)
    }

    /// The grant of a refresh token (not checked against its session).
    async fn grant_of(
        &self,
        tenant: TenantId,
        token: &SecretString,
    ) -> Result<Option<(RefreshToken, OAuthGrant)>, AuthnError> {
        let Some(parsed) = RefreshToken::parse(token).filter(|t| t.tenant == tenant) else {
            return Ok(None);
        };
        let grant = self
            .authn
            .inner
            .repo
            .load::<OAuthGrant>(tenant, parsed.session_id)
            .await?
            .state;
        Ok(grant.session_id.is_some().then_some((parsed, grant)))
    }

    /// Introspects a token for a confidential client (a resource server).
    /// Access tokens of the tenant and refresh tokens of its grants are
    /// answered; everything else is inactive.
    pub async fn introspect(
        &self,
        tenant: TenantId,
        auth: &ClientAuthentication,
        token: &SecretString,
    ) -> Result<Introspection, AuthnError> {
        let client = self.authenticate_client(tenant, auth).await?;
        let client_id = client.id.ok_or_else(super::clients::invalid_client)?;
        if client.kind != Some(ClientKind::Confidential) {
            return Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "introspection needs a confidential client",
            )
            .into());
        }
        let answer = self.introspection(tenant, token).await?;
        let event = OAuthAuditEvent::TokenIntrospected {
            client_id,
            active: answer.active,
            introspected_at: self.authn.now(),
        };
        self.record(tenant, None, &event).await?;
        Ok(answer)
    }

    async fn introspection(
        &self,
        tenant: TenantId,
        token: &SecretString,
    ) -> Result<Introspection, AuthnError> {
        if let Some((parsed, grant)) = self.grant_of(tenant, token).await? {
            let presented = match self.authn.presented(token).await {
                Ok(presented) => presented,
                Err(AuthnError::InvalidRefreshToken | AuthnError::SessionRevoked) => {
                    return Ok(Introspection::default());
                }
                Err(e) => return Err(e),
            };
            let session = &presented.session;
            let now = self.authn.now();
            let live = session.is_active()
                && parsed.generation == session.generation
                && session.expires_at.is_some_and(|at| at > now);
            if !live {
                return Ok(Introspection::default());
            }
            return Ok(Introspection {
                active: true,
                scope: Some(
                    grant
                        .scopes
                        .iter()
                        .map(security_core::oauth::Scope::as_str)
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                client_id: grant.client_id.map(|c| c.to_string()),
                sub: grant.user_id.map(|u| u.to_string()),
                token_type: Some("refresh_token"),
                exp: session.expires_at.map(|at| at.timestamp()),
                iat: None,
                iss: Some(self.issuer(tenant)),
            });
        }
        match self.access_claims_of(tenant, token.expose_secret()).await {
            Ok(claims) => Ok(Introspection {
                active: true,
                scope: Some(claims.scope),
                client_id: Some(claims.client_id),
                sub: Some(claims.base.sub),
                token_type: Some("access_token"),
                exp: Some(claims.base.exp),
                iat: Some(claims.base.iat),
                iss: Some(claims.base.iss),
            }),
            Err(_) => Ok(Introspection::default()),
        }
    }

    /// Revokes a token the client holds (RFC 7009): a refresh token ends
    /// its session (and the session's access tokens) on every replica; an
    /// access token is revoked by its `jti`. A token that is not the
    /// client's, or not a token, is answered the same way and changes
    /// nothing.
    pub async fn revoke(
        &self,
        tenant: TenantId,
        auth: &ClientAuthentication,
        token: &SecretString,
    ) -> Result<(), AuthnError> {
        let client = self.authenticate_client(tenant, auth).await?;
        let client_id = client.id.ok_or_else(super::clients::invalid_client)?;
        let revoked = if let Some((parsed, grant)) = self.grant_of(tenant, token).await? {
            if grant.client_id == Some(client_id) {
                match self
                    .authn
                    .revoke_session(tenant, parsed.session_id, "revoked by the client")
                    .await
                {
                    Ok(()) => Some("refresh_token"),
                    Err(AuthnError::SessionRevoked | AuthnError::InvalidRefreshToken) => None,
                    Err(e) => return Err(e),
                }
            } else {
                None
            }
        } else {
            match self.access_claims_of(tenant, token.expose_secret()).await {
                Ok(claims) if claims.client_id == client_id.to_string() => {
                    self.authn.revoke_access_token(&claims.base).await?;
                    Some("access_token")
                }
                _ => None,
            }
        };
        if let Some(token_type) = revoked {
            let event = OAuthAuditEvent::TokenRevoked {
                client_id,
                token_type: token_type.to_owned(),
                revoked_at: self.authn.now(),
            };
            self.record(tenant, None, &event).await?;
        }
        Ok(())
    }

    /// The userinfo response for an access token granted `openid`: `sub`,
    /// and `preferred_username` with `profile`.
    pub async fn userinfo(
        &self,
        tenant: TenantId,
        access_token: &str,
    ) -> Result<Value, AuthnError> {
        let claims = self.access_claims_of(tenant, access_token).await?;
        let scopes: Vec<&str> = claims.scope.split(' ').collect();
        if !scopes.contains(&"openid") || claims.base.session_id.is_none() {
            return Err(AuthnError::Token(TokenError::MissingClaim));
        }
        let user = self
            .authn
            .user(tenant, claims.base.user_id)
            .await?
            .ok_or(AuthnError::Token(TokenError::Signature))?;
        let mut info = json!({ "sub": claims.base.sub });
        if scopes.contains(&"profile") {
            info["preferred_username"] = Value::String(user.username.clone());
        }
        Ok(info)
    }
}
