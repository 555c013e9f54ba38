//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use security_core::{KeyId, KeyPurpose, KeyStoreError, SessionId, TenantId};

use super::audit::OAuthAuditEvent;
use super::authorize::{MAX_STATE_BYTES, redirect_with};
use super::claims::IdTokenClaims;
use super::error::{OAuthError, OAuthErrorCode};
use super::grant::OAuthGrant;
use super::provider::OidcProvider;
use crate::error::AuthnError;

/// The longest ID token hint looked at, in bytes.
const MAX_HINT_BYTES: usize = 16 * 1024;

/// A logout request's parameters, as received (query or form).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutRequest {
    /// An ID token this provider issued to the client (expired ones too):
    /// it names the session to end. Required.
    pub id_token_hint: Option<String>,
    /// Where to send the browser afterwards: one of the client's
    /// registered post-logout redirect URIs, exactly.
    pub post_logout_redirect_uri: Option<String>,
    /// Echoed to the post-logout redirect URI.
    pub state: Option<String>,
    /// The client, when given: must be the hint's audience.
    pub client_id: Option<String>,
}

/// The JOSE header fields a hint is checked on.
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: String,
    typ: Option<String>,
}

fn refused(description: &'static str) -> AuthnError {
    OAuthError::new(OAuthErrorCode::InvalidRequest, description).into()
}

impl OidcProvider {
    /// The claims of an ID token this provider signed for the tenant
    /// (its signature checked with the tenant's token-signing key in the
    /// key store; expiry is not checked, as a logout hint may be old).
    async fn id_token_hint(
        &self,
        tenant: TenantId,
        hint: &str,
    ) -> Result<Option<IdTokenClaims>, AuthnError> {
        if hint.len() > MAX_HINT_BYTES {
            return Ok(None);
        }
        let Some((input, signature)) = hint.rsplit_once('.') else {
            return Ok(None);
        };
        let Some((header, payload)) = input.split_once('.') else {
            return Ok(None);
        };
        let (Ok(header), Ok(payload), Ok(signature)) = (
            URL_SAFE_NO_PAD.decode(header),
            URL_SAFE_NO_PAD.decode(payload),
            URL_SAFE_NO_PAD.decode(signature),
        ) else {
            return Ok(None);
        };
        let Ok(header) = serde_json::from_slice::<Header>(&header) else {
            return Ok(None);
        };
        if header.alg != "EdDSA" || header.typ.as_deref() != Some(super::claims::ID_TOKEN_TYP) {
            return Ok(None);
        }
        let Ok(kid) = header.kid.parse::<KeyId>() else {
            return Ok(None);
        };
        let store = self.authn.inner.keys.store();
        let info = match store.key(kid).await {
            Ok(info) => info,
            Err(KeyStoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if info.owner.tenant_id != tenant || info.purpose != KeyPurpose::TokenSigning {
            return Ok(None);
        }
        match store.verify(kid, input.as_bytes(), &signature).await {
            Ok(true) => {}
            Ok(false) | Err(KeyStoreError::Revoked(_) | KeyStoreError::Destroyed(_)) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        let Ok(claims) = serde_json::from_slice::<IdTokenClaims>(&payload) else {
            return Ok(None);
        };
        Ok((claims.iss == self.issuer(tenant)).then_some(claims))
    }

    /// Ends the session an ID token hint names (its access and refresh
    /// tokens stop working, on every replica) and returns where to send the
    /// browser: the client's registered post-logout redirect URI with
    /// `state`, or `None` (show a signed-out page). A missing or forged
    /// hint, a `client_id` that is not the hint's audience or an
    /// unregistered post-logout URI is refused, never redirected.
    pub async fn end_session(
        &self,
        tenant: TenantId,
        request: &LogoutRequest,
    ) -> Result<Option<String>, AuthnError> {
        let hint = request
            .id_token_hint
            .as_deref()
            .ok_or_else(|| refused("id_token_hint is required"))?;
        let claims = self
            .id_token_hint(tenant, hint)
            .await?
            .ok_or_else(|| refused("id_token_hint is not valid"))?;
        if request
            .client_id
            .as_deref()
            .is_some_and(|client| client != claims.aud)
        {
            return Err(refused("client_id is not the audience of the hint"));
        }
        if request
            .state
            .as_ref()
            .is_some_and(|state| state.len() > MAX_STATE_BYTES)
        {
            return Err(refused("state is too long"));
        }
        let client = self.active_client(tenant, &claims.aud).await?;
        let location = match (&request.post_logout_redirect_uri, &client) {
            (None, _) => None,
            (Some(uri), Some(client)) => {
                let registered = client
                    .post_logout_redirect_uri(uri)
                    .ok_or_else(|| refused("post_logout_redirect_uri is not registered"))?;
                let mut params = Vec::new();
                if let Some(state) = request.state.as_deref() {
                    params.push(("state", state));
                }
                Some(redirect_with(registered.as_str(), &params))
            }
            (Some(_), None) => return Err(refused("unknown or disabled client")),
        };
        let session_id: SessionId = claims
            .sid
            .parse::<uuid::Uuid>()
            .map(SessionId::from_uuid)
            .map_err(|_| refused("id_token_hint is not valid"))?;
        let grant = self
            .authn
            .inner
            .repo
            .load::<OAuthGrant>(tenant, session_id)
            .await?
            .state;
        if let Some(client_id) = grant.client_id.filter(|c| c.to_string() == claims.aud) {
            match self
                .authn
                .revoke_session(tenant, session_id, "logged out by the client")
                .await
            {
                Ok(()) | Err(AuthnError::SessionRevoked | AuthnError::InvalidRefreshToken) => {}
                Err(e) => return Err(e),
            }
            let event = OAuthAuditEvent::LoggedOut {
                client_id,
                session_id,
                logged_out_at: self.authn.now(),
            };
            self.record(tenant, None, &event).await?;
        }
        Ok(location)
    }
}
