//! The tenant's public token-signing keys.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::axum::problem::Problem;
use crate::axum::state::SecurityState;
use crate::axum::tenant::Tenant;

/// How long verifiers may cache the set (a verifier that meets an unknown
/// `kid` fetches it again).
const MAX_AGE: &str = "public, max-age=300";

/// `GET /.well-known/jwks.json`: the JWK Set (RFC 7517) of the tenant's
/// token-signing keys verifiers may trust.
pub(crate) async fn jwks(
    State(state): State<SecurityState>,
    Tenant(tenant): Tenant,
) -> Result<Response, Problem> {
    let set = state.authn().jwks(tenant).await?;
    let mut response = axum::Json(set).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(MAX_AGE));
    Ok(response)
}
