//! JSON request and response bodies of the routes.

use axum::extract::{FromRequest, Request};
use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use secrecy::ExposeSecret;
use security_authn::{LoginOutcome, TokenPair};

use super::problem::Problem;

/// A JSON request body; a malformed one is a `400`/`415`/`413` problem
/// that never echoes the input (it may hold a password).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                let status = rejection.status();
                let detail = match status {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "send Content-Type: application/json",
                    StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
                    _ => "expected a JSON object with the documented fields",
                };
                Err(Problem::new(status, "invalid-body", "Invalid request body")
                    .with_detail(detail))
            }
        }
    }
}

/// A JSON response that must never be cached (it holds tokens or secrets).
pub(crate) fn no_store(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The body of a token pair (RFC 6749 §5.1 names, plus the session).
pub(crate) fn tokens_body(tokens: &TokenPair) -> serde_json::Value {
    let expires_in = (tokens.expires_at - chrono::Utc::now())
        .num_seconds()
        .max(0);
    json!({
        "status": "authenticated",
        "access_token": tokens.access_token.expose_secret(),
        "token_type": tokens.token_type,
        "expires_in": expires_in,
        "expires_at": tokens.expires_at,
        "refresh_token": tokens.refresh_token.expose_secret(),
        "refresh_expires_at": tokens.refresh_expires_at,
        "session_id": tokens.session_id,
        "user_id": tokens.user_id,
        "tenant_id": tokens.tenant_id,
    })
}

/// The response to a login step.
pub(crate) fn outcome_response(outcome: &LoginOutcome) -> Response {
    let body = match outcome {
        LoginOutcome::Authenticated(tokens) => tokens_body(tokens),
        LoginOutcome::MfaRequired(challenge) => {
            let mut body = json!({
                "status": "mfa_required",
                "mfa_challenge": challenge.challenge.expose_secret(),
                "expires_at": challenge.expires_at,
            });
            if let Some(options) = &challenge.passkey_options {
                body["passkey_options"] = options.clone();
            }
            body
        }
        LoginOutcome::PasswordChangeRequired(ticket) => json!({
            "status": "password_change_required",
            "password_change_ticket": ticket.ticket.expose_secret(),
            "expires_at": ticket.expires_at,
        }),
    };
    no_store(StatusCode::OK, &body)
}
