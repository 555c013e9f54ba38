//! Password login, the MFA step, and the forced password change.

use axum::extract::State;
use axum::response::Response;
use secrecy::SecretString;
use serde::Deserialize;

use security_authn::LoginOutcome;
use security_core::TenantId;

use crate::axum::body::{JsonBody, outcome_response};
use crate::axum::client_ip::Client;
use crate::axum::problem::Problem;
use crate::axum::state::SecurityState;
use crate::axum::tenant::Tenant;

/// `POST /auth/login`.
#[derive(Deserialize)]
pub(crate) struct LoginBody {
    username: String,
    password: SecretString,
}

/// `POST /auth/mfa`.
#[derive(Deserialize)]
pub(crate) struct MfaBody {
    mfa_challenge: SecretString,
    code: SecretString,
}

/// `POST /auth/password/complete`.
#[derive(Deserialize)]
pub(crate) struct CompleteBody {
    password_change_ticket: SecretString,
    new_password: SecretString,
}

/// Logs in with a username and password: tokens, an MFA challenge or a
/// password-change ticket. Throttled by the service (`auth` tier, per IP
/// and per username, audited).
pub(crate) async fn login(
    State(state): State<SecurityState>,
    Tenant(tenant): Tenant,
    Client(client): Client,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, Problem> {
    let outcome = state
        .authn()
        .authenticate(tenant, &body.username, &body.password, &client)
        .await?;
    Ok(outcome_response(&outcome))
}

/// Completes a login with a TOTP or backup code. Throttled by the service
/// (`mfa` tier, per IP and per user, audited).
pub(crate) async fn mfa(
    State(state): State<SecurityState>,
    Tenant(tenant): Tenant,
    Client(client): Client,
    JsonBody(body): JsonBody<MfaBody>,
) -> Result<Response, Problem> {
    let outcome = state
        .authn()
        .verify_mfa(&body.mfa_challenge, &body.code, &client)
        .await?;
    same_tenant(&state, tenant, &outcome).await?;
    Ok(outcome_response(&outcome))
}

/// Sets the new password a login demanded, and finishes the login.
pub(crate) async fn complete_password_change(
    State(state): State<SecurityState>,
    Tenant(tenant): Tenant,
    Client(client): Client,
    JsonBody(body): JsonBody<CompleteBody>,
) -> Result<Response, Problem> {
    let tokens = state
        .authn()
        .complete_password_change(&body.password_change_ticket, &body.new_password, &client)
        .await?;
    let outcome = LoginOutcome::Authenticated(tokens);
    same_tenant(&state, tenant, &outcome).await?;
    Ok(outcome_response(&outcome))
}

/// A challenge completed under another tenant's URL: the session it
/// opened is revoked and the step refused, so a tenant's routes only ever
/// hand out that tenant's tokens.
pub(crate) async fn same_tenant(
    state: &SecurityState,
    tenant: TenantId,
    outcome: &LoginOutcome,
) -> Result<(), Problem> {
    if let LoginOutcome::Authenticated(tokens) = outcome
        && tokens.tenant_id != tenant
    {
        state
            .authn()
            .revoke_session(
                tokens.tenant_id,
                tokens.session_id,
                "completed under another tenant",
            )
            .await?;
        return Err(security_authn::AuthnError::InvalidChallenge.into());
    }
    Ok(())
}
