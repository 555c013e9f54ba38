//! Refresh and logout.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;

use security_authn::AuthnError;
use security_core::TenantId;

use crate::axum::body::{JsonBody, no_store, tokens_body};
use crate::axum::client_ip::Client;
use crate::axum::problem::Problem;
use crate::axum::state::SecurityState;
use crate::axum::tenant::Tenant;

/// `POST /auth/refresh` and `POST /auth/logout`.
#[derive(Deserialize)]
pub(crate) struct RefreshBody {
    refresh_token: SecretString,
}

fn check_tenant(
    state: &SecurityState,
    tenant: TenantId,
    token: &SecretString,
) -> Result<(), Problem> {
    if state.authn().refresh_token_tenant(token) == Some(tenant) {
        Ok(())
    } else {
        Err(AuthnError::InvalidRefreshToken.into())
    }
}

/// Exchanges a refresh token for a new pair (the old one is dead; a
/// replayed one revokes the whole session).
pub(crate) async fn refresh(
    State(state): State<SecurityState>,
    Tenant(tenant): Tenant,
    Client(client): Client,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Response, Problem> {
    check_tenant(&state, tenant, &body.refresh_token)?;
    let tokens = state.authn().refresh(&body.refresh_token, &client).await?;
    Ok(no_store(StatusCode::OK, &tokens_body(&tokens)))
}

/// Ends the session of a refresh token (its access tokens stop working).
pub(crate) async fn logout(
    State(state): State<SecurityState>,
    Tenant(tenant): Tenant,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Response, Problem> {
    check_tenant(&state, tenant, &body.refresh_token)?;
    state.authn().logout(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
