//! The discovery document and userinfo.

use axum::Extension;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use security_authn::AuthnError;
use security_authn::oidc::OidcProvider;

use crate::axum::problem::Problem;
use crate::axum::tenant::Tenant;

/// `GET /.well-known/openid-configuration`.
pub(crate) async fn configuration(
    Extension(provider): Extension<OidcProvider>,
    Tenant(tenant): Tenant,
) -> Response {
    axum::Json(provider.discovery(tenant)).into_response()
}

/// `GET` or `POST /oauth/userinfo` with a bearer access token granted
/// `openid`.
pub(crate) async fn userinfo(
    Extension(provider): Extension<OidcProvider>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
) -> Response {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let refused = || {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        response
    };
    let Some(token) = token else {
        return refused();
    };
    match provider.userinfo(tenant, token).await {
        Ok(info) => {
            let mut response = axum::Json(info).into_response();
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(AuthnError::Token(_) | AuthnError::OAuth(_)) => refused(),
        Err(error) => Problem::from(error).into_response(),
    }
}
