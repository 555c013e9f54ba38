//! `POST /oauth/token`, `/oauth/revoke` and `/oauth/introspect`, with
//! client authentication by `client_secret_basic` or `client_secret_post`.

use axum::Extension;
use axum::extract::Form;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use security_authn::AuthnError;
use security_authn::oidc::{
    ClientAuthentication, OAuthError, OAuthErrorCode, OidcProvider, TokenRequest,
};

use crate::axum::body::no_store;
use crate::axum::client_ip::Client;
use crate::axum::problem::Problem;
use crate::axum::tenant::Tenant;

/// The form of the three endpoints: the token request's fields, the
/// client's credentials when posted, and the token to revoke or inspect.
#[derive(Deserialize)]
pub(crate) struct EndpointForm {
    #[serde(flatten)]
    request: TokenRequest,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    token: Option<SecretString>,
}

/// An OAuth error response (RFC 6749 §5.2).
fn error_response(error: &OAuthError, basic: bool) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = no_store(
        status,
        &json!({ "error": error.code.as_str(), "error_description": error.description }),
    );
    if status == StatusCode::UNAUTHORIZED && basic {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"oauth\""),
        );
    }
    response
}

fn failure(error: AuthnError, basic: bool) -> Response {
    match error {
        AuthnError::OAuth(error) => error_response(&error, basic),
        other => Problem::from(other).into_response(),
    }
}

fn invalid_request(description: &'static str) -> Response {
    error_response(&oauth(OAuthErrorCode::InvalidRequest, description), false)
}

fn oauth(code: OAuthErrorCode, description: &'static str) -> OAuthError {
    OAuthError {
        code,
        description,
        redirect_to: None,
    }
}

/// The client's credentials (and whether they came by Basic): Basic, or
/// posted, never both. A refusal says whether Basic was used.
fn client_auth(
    headers: &HeaderMap,
    form: &EndpointForm,
) -> Result<(ClientAuthentication, bool), (OAuthError, bool)> {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(header) = header else {
        let client_id = form.client_id.clone().ok_or((
            oauth(OAuthErrorCode::InvalidRequest, "client_id is required"),
            false,
        ))?;
        return Ok((
            ClientAuthentication {
                client_id,
                client_secret: form.client_secret.clone(),
            },
            false,
        ));
    };
    if form.client_secret.is_some() {
        return Err((
            oauth(
                OAuthErrorCode::InvalidRequest,
                "use one client authentication method",
            ),
            true,
        ));
    }
    let auth = ClientAuthentication::from_basic(header).ok_or((
        oauth(
            OAuthErrorCode::InvalidClient,
            "malformed client authentication",
        ),
        true,
    ))?;
    if form
        .client_id
        .as_ref()
        .is_some_and(|id| *id != auth.client_id)
    {
        return Err((
            oauth(OAuthErrorCode::InvalidRequest, "client_id does not match"),
            true,
        ));
    }
    Ok((auth, true))
}

/// `POST /oauth/token`.
pub(crate) async fn token(
    Extension(provider): Extension<OidcProvider>,
    Tenant(tenant): Tenant,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<EndpointForm>,
) -> Response {
    let (auth, basic) = match client_auth(&headers, &form) {
        Ok(auth) => auth,
        Err((error, basic)) => return error_response(&error, basic),
    };
    match provider.token(tenant, &auth, &form.request, &client).await {
        Ok(tokens) => {
            let mut body = json!({
                "access_token": tokens.access_token.expose_secret(),
                "token_type": tokens.token_type,
                "expires_in": tokens.expires_in,
                "scope": tokens.scope,
            });
            if let Some(refresh) = &tokens.refresh_token {
                body["refresh_token"] = json!(refresh.expose_secret());
            }
            if let Some(id_token) = &tokens.id_token {
                body["id_token"] = json!(id_token);
            }
            no_store(StatusCode::OK, &body)
        }
        Err(error) => failure(error, basic),
    }
}

/// `POST /oauth/revoke` (RFC 7009): 200 whether or not the token was
/// live.
pub(crate) async fn revoke(
    Extension(provider): Extension<OidcProvider>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<EndpointForm>,
) -> Response {
    let (auth, basic) = match client_auth(&headers, &form) {
        Ok(auth) => auth,
        Err((error, basic)) => return error_response(&error, basic),
    };
    let Some(token) = &form.token else {
        return invalid_request("token is required");
    };
    match provider.revoke(tenant, &auth, token).await {
        Ok(()) => no_store(StatusCode::OK, &json!({})),
        Err(error) => failure(error, basic),
    }
}

/// `POST /oauth/introspect` (RFC 7662).
pub(crate) async fn introspect(
    Extension(provider): Extension<OidcProvider>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<EndpointForm>,
) -> Response {
    let (auth, basic) = match client_auth(&headers, &form) {
        Ok(auth) => auth,
        Err((error, basic)) => return error_response(&error, basic),
    };
    let Some(token) = &form.token else {
        return invalid_request("token is required");
    };
    match provider.introspect(tenant, &auth, token).await {
        Ok(answer) => no_store(StatusCode::OK, &json!(answer)),
        Err(error) => failure(error, basic),
    }
}
