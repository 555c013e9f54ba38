//! The signed-in user's own account: password, sessions, TOTP, backup
//! codes.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use security_authn::BackupCodes;
use security_core::SessionId;

use crate::axum::auth::Authenticated;
use crate::axum::body::{JsonBody, no_store};
use crate::axum::client_ip::Client;
use crate::axum::problem::Problem;
use crate::axum::state::SecurityState;

/// How long a sessions request waits for the read model to reach the
/// store's head (the caller's own login may have been served elsewhere).
const CATCH_UP: Duration = Duration::from_secs(2);

/// `POST /auth/password`.
#[derive(Deserialize)]
pub(crate) struct ChangeBody {
    current_password: SecretString,
    new_password: SecretString,
}

/// `POST /auth/mfa/totp/confirm`.
#[derive(Deserialize)]
pub(crate) struct ConfirmBody {
    code: SecretString,
}

/// Changes the caller's password (the current one is needed); every
/// session of the caller is revoked.
pub(crate) async fn change_password(
    State(state): State<SecurityState>,
    Authenticated(claims): Authenticated,
    Client(client): Client,
    JsonBody(body): JsonBody<ChangeBody>,
) -> Result<Response, Problem> {
    state
        .authn()
        .change_password(
            claims.tenant_id,
            claims.user_id,
            &body.current_password,
            &body.new_password,
            &client,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Waits (a little) for the sessions view to reflect everything stored.
async fn caught_up(state: &SecurityState) -> Result<(), Problem> {
    let head = state
        .store()
        .head_position()
        .await
        .map_err(|e| Problem::unavailable(&e))?;
    if tokio::time::timeout(CATCH_UP, state.sessions().wait_for_position(head))
        .await
        .is_err()
    {
        tracing::warn!(head, "sessions read model lags behind the store");
    }
    Ok(())
}

/// The caller's live sessions, the current one marked.
pub(crate) async fn list_sessions(
    State(state): State<SecurityState>,
    Authenticated(claims): Authenticated,
) -> Result<Response, Problem> {
    caught_up(&state).await?;
    let sessions = state
        .sessions()
        .sessions(claims.tenant_id, claims.user_id, chrono::Utc::now());
    let body = json!({ "current": claims.session_id, "sessions": sessions });
    Ok(no_store(StatusCode::OK, &body))
}

/// Revokes one of the caller's sessions.
pub(crate) async fn revoke_session(
    State(state): State<SecurityState>,
    Authenticated(claims): Authenticated,
    Path(params): Path<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let session: SessionId = params
        .iter()
        .find(|(name, _)| name == "session_id")
        .and_then(|(_, value)| value.parse().ok())
        .ok_or_else(|| Problem::not_found("session"))?;
    caught_up(&state).await?;
    if !state.sessions().owns(
        claims.tenant_id,
        claims.user_id,
        session,
        chrono::Utc::now(),
    ) {
        return Err(Problem::not_found("session"));
    }
    state
        .authn()
        .revoke_session(claims.tenant_id, session, "revoked by its user")
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Starts TOTP enrolment: the secret, the `otpauth://` URI and its QR code
/// (SVG), shown once.
pub(crate) async fn start_totp(
    State(state): State<SecurityState>,
    Authenticated(claims): Authenticated,
) -> Result<Response, Problem> {
    let enrollment = state
        .authn()
        .start_totp_enrollment(claims.tenant_id, claims.user_id)
        .await?;
    let body = json!({
        "secret": enrollment.secret_base32.expose_secret(),
        "otpauth_uri": enrollment.otpauth_uri.expose_secret(),
        "qr_svg": enrollment.qr_svg.expose_secret(),
    });
    Ok(no_store(StatusCode::OK, &body))
}

fn codes_body(codes: &BackupCodes) -> serde_json::Value {
    let codes: Vec<&str> = codes
        .codes()
        .iter()
        .map(ExposeSecret::expose_secret)
        .collect();
    json!({ "backup_codes": codes })
}

/// Confirms TOTP enrolment with a first code; answers the backup codes,
/// shown once.
pub(crate) async fn confirm_totp(
    State(state): State<SecurityState>,
    Authenticated(claims): Authenticated,
    JsonBody(body): JsonBody<ConfirmBody>,
) -> Result<Response, Problem> {
    let codes = state
        .authn()
        .confirm_totp_enrollment(claims.tenant_id, claims.user_id, &body.code)
        .await?;
    Ok(no_store(StatusCode::OK, &codes_body(&codes)))
}

/// Replaces the caller's backup codes, shown once.
pub(crate) async fn regenerate_backup_codes(
    State(state): State<SecurityState>,
    Authenticated(claims): Authenticated,
) -> Result<Response, Problem> {
    let codes = state
        .authn()
        .regenerate_backup_codes(claims.tenant_id, claims.user_id)
        .await?;
    Ok(no_store(StatusCode::OK, &codes_body(&codes)))
}
