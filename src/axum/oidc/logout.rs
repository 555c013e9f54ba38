//! `GET` and `POST /oauth/logout`: RP-initiated logout.

use axum::Extension;
use axum::extract::{Form, Query};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use security_authn::AuthnError;
use security_authn::oidc::{LogoutRequest, OidcProvider};

use super::page;
use crate::axum::problem::Problem;
use crate::axum::tenant::Tenant;

async fn end(
    provider: &OidcProvider,
    tenant: security_core::TenantId,
    request: &LogoutRequest,
) -> Response {
    match provider.end_session(tenant, request).await {
        Ok(Some(location)) => match HeaderValue::from_str(&location) {
            Ok(value) => {
                let mut response = StatusCode::SEE_OTHER.into_response();
                response.headers_mut().insert(LOCATION, value);
                response
            }
            Err(_) => page::error_page(StatusCode::BAD_REQUEST, "the redirect URI is not usable"),
        },
        Ok(None) => page::html(
            StatusCode::OK,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Signed out</title></head>\
             <body><h1>You are signed out</h1></body></html>"
                .to_owned(),
        ),
        Err(AuthnError::OAuth(error)) => {
            page::error_page(StatusCode::BAD_REQUEST, error.description)
        }
        Err(error) => Problem::from(error).into_response(),
    }
}

/// `GET /oauth/logout`.
pub(crate) async fn logout_get(
    Extension(provider): Extension<OidcProvider>,
    Tenant(tenant): Tenant,
    Query(request): Query<LogoutRequest>,
) -> Response {
    end(&provider, tenant, &request).await
}

/// `POST /oauth/logout`.
pub(crate) async fn logout_post(
    Extension(provider): Extension<OidcProvider>,
    Tenant(tenant): Tenant,
    Form(request): Form<LogoutRequest>,
) -> Response {
    end(&provider, tenant, &request).await
}
