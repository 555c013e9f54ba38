//! The authorization endpoint's logic: validating a request, and
//! answering it with a code once the user has signed in.
//!
//! Errors are sent to the redirect URI only after the client and the
//! redirect URI were validated (RFC 6749 §4.1.2.1); before that, the
//! caller shows an error page, so the endpoint is never an open redirect.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use security_core::oauth::{GrantType, OAuthClient, OAuthClientId, Scope, parse_scopes};
use security_core::{Actor, AuthMethod, PendingChallenge, SessionId, TenantId};

use super::audit::OAuthAuditEvent;
use super::code::{CODE_PREFIX, CodeBinding, code_purpose, valid_challenge};
use super::error::{OAuthError, OAuthErrorCode};
use super::provider::OidcProvider;
use crate::error::AuthnError;

/// The longest `state` or `nonce` accepted, in bytes.
pub const MAX_STATE_BYTES: usize = 1024;

/// An authorization request's parameters, as received (query or form).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// Must be `code`.
    pub response_type: Option<String>,
    /// The client.
    pub client_id: Option<String>,
    /// One of the client's registered redirect URIs, exactly.
    pub redirect_uri: Option<String>,
    /// Space-separated scopes (`openid` for an ID token).
    pub scope: Option<String>,
    /// Opaque to the provider, echoed in the response.
    pub state: Option<String>,
    /// Copied into the ID token.
    pub nonce: Option<String>,
    /// PKCE: base64url(SHA-256(verifier)); required.
    pub code_challenge: Option<String>,
    /// PKCE method: must be `S256`.
    pub code_challenge_method: Option<String>,
    /// `none` or `login`.
    pub prompt: Option<String>,
    /// The oldest sign-in accepted, in seconds.
    pub max_age: Option<String>,
    /// `query` (the only mode supported) when given.
    pub response_mode: Option<String>,
    /// Request objects are not supported (refused).
    pub request: Option<String>,
    /// Request objects by reference are not supported (refused).
    pub request_uri: Option<String>,
}

/// What the request says about signing in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// No `prompt`: an existing sign-in will do, or the user signs in.
    Default,
    /// `prompt=none`: never show a page; without a usable sign-in the
    /// answer is `login_required`.
    None,
    /// `prompt=login`: the user signs in again, whatever sign-in exists.
    Login,
}

/// A validated authorization request: the client is active, the redirect
/// URI is one of its own, PKCE `S256` is there. Only
/// [`OidcProvider::validate_authorization`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedAuthorization {
    tenant: TenantId,
    client_id: OAuthClientId,
    client_name: String,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    scopes: BTreeSet<Scope>,
    code_challenge: String,
    prompt: Prompt,
    max_age: Option<u64>,
    received_at: DateTime<Utc>,
}

impl ValidatedAuthorization {
    /// The tenant.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The client.
    pub fn client_id(&self) -> OAuthClientId {
        self.client_id
    }

    /// The client's name, for the sign-in page.
    pub fn client_name(&self) -> &str {
        &self.client_name
    }

    /// The scopes asked for.
    pub fn scopes(&self) -> &BTreeSet<Scope> {
        &self.scopes
    }

    /// What the request says about signing in.
    pub fn prompt(&self) -> Prompt {
        self.prompt
    }

    /// The `state` to echo.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// When the request was validated (a `prompt=login` request needs a
    /// sign-in after it).
    pub fn received_at(&self) -> DateTime<Utc> {
        self.received_at
    }
}

fn too_long(value: Option<&String>, max: usize) -> bool {
    value.is_some_and(|v| v.len() > max)
}

/// The redirect URI with `params` (and `iss`) added to its query.
pub(crate) fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (name, value) in params {
                    query.append_pair(name, value);
                }
            }
            url.into()
        }
        // Registered URIs always parse; nothing to send otherwise.
        Err(_) => redirect_uri.to_owned(),
    }
}

impl OidcProvider {
    fn error_redirect(
        &self,
        tenant: TenantId,
        redirect_uri: &str,
        state: Option<&str>,
        code: OAuthErrorCode,
        description: &'static str,
    ) -> OAuthError {
        let issuer = self.issuer(tenant);
        let mut params = vec![("error", code.as_str()), ("error_description", description)];
        if let Some(state) = state {
            params.push(("state", state));
        }
        params.push(("iss", &issuer));
        OAuthError {
            code,
            description,
            redirect_to: Some(redirect_with(redirect_uri, &params)),
        }
    }

    async fn refuse_authorization(
        &self,
        tenant: TenantId,
        client_id: Option<OAuthClientId>,
        error: OAuthError,
    ) -> Result<ValidatedAuthorization, AuthnError> {
        let event = OAuthAuditEvent::AuthorizationRefused {
            client_id,
            error: error.code.as_str().to_owned(),
            redirected: error.redirect_to.is_some(),
            refused_at: self.authn.now(),
        };
        self.record(tenant, None, &event).await?;
        Err(error.into())
    }

    /// Validates an authorization request (RFC 6749 §4.1.1 with RFC 9700
    /// and OpenID Connect Core §3.1.2). An unknown or disabled client, or a
    /// redirect URI that is not exactly one of the client's, is refused
    /// without a redirect; every later error carries the error response
    /// to redirect to ([`OAuthError::redirect_to`]). Every refusal is an
    /// audit event.
    pub async fn validate_authorization(
        &self,
        tenant: TenantId,
        request: &AuthorizationRequest,
    ) -> Result<ValidatedAuthorization, AuthnError> {
        use OAuthErrorCode as C;
        let fatal = |code, description| OAuthError::new(code, description);
        let client_id = request.client_id.as_deref().unwrap_or_default();
        let client = if client_id.len() > 64 {
            None
        } else {
            self.active_client(tenant, client_id).await?
        };
        let Some(client) = client else {
            let error = fatal(C::InvalidRequest, "unknown or disabled client");
            return self.refuse_authorization(tenant, None, error).await;
        };
        let id = client.id;
        let Some(redirect_uri) = request
            .redirect_uri
            .as_deref()
            .and_then(|uri| client.redirect_uri(uri))
            .map(|uri| uri.as_str().to_owned())
        else {
            let error = fatal(C::InvalidRequest, "redirect_uri is not registered");
            return self.refuse_authorization(tenant, id, error).await;
        };
        let state = request.state.clone();
        if too_long(state.as_ref(), MAX_STATE_BYTES) {
            // The state itself is not echoed: it is what was wrong.
            let error = self.error_redirect(
                tenant,
                &redirect_uri,
                None,
                C::InvalidRequest,
                "state is too long",
            );
            return self.refuse_authorization(tenant, id, error).await;
        }
        let refuse = |code, description| {
            self.error_redirect(tenant, &redirect_uri, state.as_deref(), code, description)
        };
        match Self::check_request(&client, request) {
            Ok((scopes, code_challenge, prompt, max_age)) => Ok(ValidatedAuthorization {
                tenant,
                client_id: id.unwrap_or_else(|| OAuthClientId::from_uuid(uuid::Uuid::nil())),
                client_name: client
                    .settings
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                redirect_uri: redirect_uri.clone(),
                state: state.clone(),
                nonce: request.nonce.clone(),
                scopes,
                code_challenge,
                prompt,
                max_age,
                received_at: self.authn.now(),
            }),
            Err((code, description)) => {
                let error = refuse(code, description);
                self.refuse_authorization(tenant, id, error).await
            }
        }
    }

    /// The checks after the client and redirect URI are known.
    #[allow(clippy::type_complexity, reason = "a private tuple of parts")]
    fn check_request(
        client: &OAuthClient,
        request: &AuthorizationRequest,
    ) -> Result<(BTreeSet<Scope>, String, Prompt, Option<u64>), (OAuthErrorCode, &'static str)>
    {
        use OAuthErrorCode as C;
        if request.request.is_some() {
            return Err((C::InvalidRequest, "request objects are not supported"));
        }
        if request.request_uri.is_some() {
            return Err((C::InvalidRequest, "request_uri is not supported"));
        }
        if request.response_type.as_deref() != Some("code") {
            return Err((C::UnsupportedResponseType, "response_type must be code"));
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return Err((
                C::UnauthorizedClient,
                "the client may not use the authorization code grant",
            ));
        }
        if request
            .response_mode
            .as_deref()
            .is_some_and(|mode| mode != "query")
        {
            return Err((C::InvalidRequest, "response_mode must be query"));
        }
        let challenge = request.code_challenge.as_deref().unwrap_or_default();
        if challenge.is_empty() {
            return Err((C::InvalidRequest, "PKCE code_challenge is required"));
        }
        if request.code_challenge_method.as_deref() != Some("S256") {
            return Err((C::InvalidRequest, "code_challenge_method must be S256"));
        }
        if !valid_challenge(challenge) {
            return Err((C::InvalidRequest, "code_challenge is malformed"));
        }
        if too_long(request.nonce.as_ref(), MAX_STATE_BYTES) {
            return Err((C::InvalidRequest, "nonce is too long"));
        }
        let scopes = parse_scopes(request.scope.as_deref().unwrap_or_default())
            .map_err(|_| (C::InvalidScope, "scope is malformed"))?;
        let allowed = client.settings.as_ref().map(|s| &s.scopes);
        if !scopes
            .iter()
            .all(|s| allowed.is_some_and(|allowed| allowed.contains(s)))
        {
            return Err((C::InvalidScope, "a scope is not allowed for this client"));
        }
        let prompt = match request.prompt.as_deref() {
            None | Some("") => Prompt::Default,
            Some("none") => Prompt::None,
            Some("login") => Prompt::Login,
            Some(_) => return Err((C::InvalidRequest, "prompt must be none or login")),
        };
        let max_age = match request.max_age.as_deref() {
            None => None,
            Some(text) => Some(
                text.parse::<u64>()
                    .ok()
                    .filter(|_| text.len() <= 10)
                    .ok_or((C::InvalidRequest, "max_age must be a number of seconds"))?,
            ),
        };
        Ok((scopes, challenge.to_owned(), prompt, max_age))
    }

    /// The answer to a request that cannot be served without a sign-in
    /// (`prompt=none`): `login_required` at the client's redirect URI.
    pub async fn login_required(
        &self,
        request: &ValidatedAuthorization,
    ) -> Result<OAuthError, AuthnError> {
        let error = self.error_redirect(
            request.tenant,
            &request.redirect_uri,
            request.state.as_deref(),
            OAuthErrorCode::LoginRequired,
            "the user must sign in",
        );
        let event = OAuthAuditEvent::AuthorizationRefused {
            client_id: Some(request.client_id),
            error: error.code.as_str().to_owned(),
            redirected: true,
            refused_at: self.authn.now(),
        };
        self.record(request.tenant, None, &event).await?;
        Ok(error)
    }

    /// Answers a validated request for the user signed in with
    /// `login_session` (a session of the [`AuthenticationService`]'s own
    /// login, MFA and all): a single-use code, bound to the client, the
    /// redirect URI, the PKCE challenge, the nonce and the sign-in, and
    /// the URI to redirect the browser to (with `code`, `state` and `iss`,
    /// RFC 9207).
    ///
    /// Refused with `login_required` (at the redirect URI) when the
    /// sign-in is older than `max_age`, or than the request under
    /// `prompt=login`; the session must be active and opened by a sign-in
    /// of the user (not an API key or a refresh).
    ///
    /// [`AuthenticationService`]: crate::AuthenticationService
    pub async fn approve(
        &self,
        request: &ValidatedAuthorization,
        login_session: SessionId,
    ) -> Result<String, AuthnError> {
        let tenant = request.tenant;
        let now = self.authn.now();
        let session = self.authn.load_session(tenant, login_session).await?;
        let (Some(user_id), Some(auth_time), Some(method)) =
            (session.user_id, session.started_at, session.method)
        else {
            return Err(self.login_required(request).await?.into());
        };
        let interactive = !matches!(method, AuthMethod::ApiToken | AuthMethod::RefreshToken);
        let too_old = request.max_age.is_some_and(|max| {
            (now - auth_time).num_seconds() > i64::try_from(max).unwrap_or(i64::MAX)
        });
        let stale_for_login = request.prompt == Prompt::Login && auth_time < request.received_at;
        if !session.is_active() || !interactive || too_old || stale_for_login {
            return Err(self.login_required(request).await?.into());
        }
        let user = self
            .authn
            .user(tenant, user_id)
            .await?
            .ok_or(AuthnError::InvalidCredentials)?;
        user.check_can_authenticate(now)?;
        self.authn.account(tenant).await?.check_active(now)?;
        let client = self
            .active_client(tenant, &request.client_id.to_string())
            .await?
            .filter(|c| c.allows(GrantType::AuthorizationCode));
        if client.is_none() {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                "unknown or disabled client",
            )
            .into());
        }
        let ttl = chrono::Duration::from_std(self.config.code_ttl)
            .unwrap_or(chrono::Duration::seconds(60));
        let expires_at = DateTime::from_timestamp((now + ttl).timestamp(), 0).unwrap_or(now + ttl);
        let (code, digest) = crate::tickets::new_token(CODE_PREFIX, tenant, expires_at)?;
        let binding = CodeBinding {
            client_id: request.client_id,
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            scopes: request.scopes.iter().cloned().collect(),
            auth_time,
            method,
        };
        let challenge = PendingChallenge {
            digest,
            tenant_id: tenant,
            user_id,
            purpose: code_purpose(),
            payload: serde_json::to_value(&binding).map_err(AuthnError::crypto)?,
            failures: 0,
            expires_at,
        };
        self.authn.issue_pending(challenge, now).await?;
        let event = OAuthAuditEvent::AuthorizationCodeIssued {
            client_id: request.client_id,
            user_id,
            login_session_id: login_session,
            scopes: request
                .scopes
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            expires_at,
            issued_at: now,
        };
        self.record(tenant, Some(Actor::user(user_id)), &event)
            .await?;
        let issuer = self.issuer(tenant);
        let mut params = vec![("code", code.expose_secret())];
        if let Some(state) = request.state.as_deref() {
            params.push(("state", state));
        }
        params.push(("iss", &issuer));
        Ok(redirect_with(&request.redirect_uri, &params))
    }
}
