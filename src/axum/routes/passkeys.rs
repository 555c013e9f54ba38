//! Passkeys: registration and management for the signed-in user,
//! passwordless login, and a passkey as the second factor.
//!
//! WebAuthn options go out as JSON in WebAuthn's own format
//! (`{"publicKey": …}`, for `PublicKeyCredential.parseCreationOptionsFromJSON`
//! / `parseRequestOptionsFromJSON`), and the authenticator's answer comes
//! back as the JSON of the credential (`credential.toJSON()`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use security_authn::LoginOutcome;
use security_authn::passkeys::{PasskeyCeremony, PasskeyId};

use crate::axum::auth::Authenticated;
use crate::axum::body::{JsonBody, no_store, outcome_response};
use crate::axum::client_ip::Client;
use crate::axum::problem::Problem;
use crate::axum::routes::login::same_tenant;
use crate::axum::state::SecurityState;
use crate::axum::tenant::Tenant;

/// `POST /auth/passkeys/register/start`.
#[derive(Deserialize, Default)]
pub(crate) struct StartBody {
    /// Ask for a discoverable credential (passwordless); default true.
    #[serde(default)]
    discoverable: Option<bool>,
}

/// `POST /auth/passkeys/register/finish`.
#[derive(Deserialize)]
pub(crate) struct RegisterBody {
    passkey_challenge: SecretString,
    credential: serde_json::Value,
    name: String,
}

/// `POST /auth/passkeys/login/finish`.
#[derive(Deserialize)]
pub(crate) struct LoginBody {
    passkey_challenge: SecretString,
    credential: serde_json::Value,
}

/// `POST /auth/mfa/passkey`.
#[derive(Deserialize)]
pub(crate) struct MfaBody {
    mfa_challenge: SecretString,
    credential: serde_json::Value,
}

/// `PATCH /auth/passkeys/{passkey_id}`.
#[derive(Deserialize)]
pub(crate) struct RenameBody {
    name: String,
}

fn ceremony_body(ceremony: &PasskeyCeremony) -> Response {
    no_store(
        StatusCode::OK,
        &json!({
            "passkey_challenge": ceremony.challenge.expose_secret(),
            "options": ceremony.options,
            "expires_at": ceremony.expires_at,
        }),
    )
}

fn passkey_id(params: &[(String, String)]) -> Result<PasskeyId, Problem> {
    params
        .iter()
        .find(|(name, _)| name == "passkey_id")
        .and_then(|(_, value)| PasskeyId::parse(value).ok())
        .ok_or_else(|| Problem::not_found("passkey"))
}

/// Starts registering a passkey for the caller.
pub(crate) async fn start_registration(
    State(state): State<SecurityState>,
    Authenticated(claims): Authenticated,
    JsonBody(body): JsonBody<StartBody>,
) -> Result<Response, Problem> {
    let ceremony = state
        .authn()
        .start_passkey_registration(
            claims.tenant_id,
            claims.user_id,
            body.discoverable.unwrap_or(true),
        )
        .await?;
    Ok(ceremony_body(&ceremony))
}

/// Finishes the caller's registration; answers the new passkey (201).
pub(crate) async fn finish_registration(
    State(state): State<SecurityState>,
    Authenticated(claims): Authenticated,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<Response, Problem> {
    let info = state
        .authn()
        .finish_passkey_registration(
            claims.tenant_id,
            claims.user_id,
            &body.passkey_challenge,
            &body.credential.to_string(),
            &body.name,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(info)).into_response())
}

/// The caller's passkeys.
pub(crate) async fn list(
    State(state): State<SecurityState>,
    Authenticated(claims): Authenticated,
) -> Result<Response, Problem> {
    let passkeys = state
        .authn()
        .passkeys(claims.tenant_id, claims.user_id)
        .await?;
    Ok(no_store(StatusCode::OK, &json!({ "passkeys": passkeys })))
}

/// Renames one of the caller's passkeys.
pub(crate) async fn rename(
    State(state): State<SecurityState>,
    Authenticated(claims): Authenticated,
    Path(params): Path<Vec<(String, String)>>,
    JsonBody(body): JsonBody<RenameBody>,
) -> Result<Response, Problem> {
    let id = passkey_id(&params)?;
    state
        .authn()
        .rename_passkey(claims.tenant_id, claims.user_id, &id, &body.name)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Removes one of the caller's passkeys (its sessions end).
pub(crate) async fn remove(
    State(state): State<SecurityState>,
    Authenticated(claims): Authenticated,
    Path(params): Path<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let id = passkey_id(&params)?;
    state
        .authn()
        .remove_passkey(claims.tenant_id, claims.user_id, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Starts a passwordless login in the tenant.
pub(crate) async fn start_login(
    State(state): State<SecurityState>,
    Tenant(tenant): Tenant,
    Client(client): Client,
) -> Result<Response, Problem> {
    let ceremony = state.authn().start_passkey_login(tenant, &client).await?;
    Ok(ceremony_body(&ceremony))
}

/// Finishes a passwordless login: tokens.
pub(crate) async fn finish_login(
    State(state): State<SecurityState>,
    Tenant(tenant): Tenant,
    Client(client): Client,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, Problem> {
    let tokens = state
        .authn()
        .finish_passkey_login(
            &body.passkey_challenge,
            &body.credential.to_string(),
            &client,
        )
        .await?;
    let outcome = LoginOutcome::Authenticated(tokens);
    same_tenant(&state, tenant, &outcome).await?;
    Ok(outcome_response(&outcome))
}

/// Completes a password login's second factor with a passkey.
pub(crate) async fn mfa(
    State(state): State<SecurityState>,
    Tenant(tenant): Tenant,
    Client(client): Client,
    JsonBody(body): JsonBody<MfaBody>,
) -> Result<Response, Problem> {
    let outcome = state
        .authn()
        .verify_mfa_passkey(&body.mfa_challenge, &body.credential.to_string(), &client)
        .await?;
    same_tenant(&state, tenant, &outcome).await?;
    Ok(outcome_response(&outcome))
}
