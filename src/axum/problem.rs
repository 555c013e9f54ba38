//! RFC 9457 problem details: every error of the crate family as an HTTP
//! response.
//!
//! The errors live in other crates and `IntoResponse` in axum, so the
//! orphan rule forbids implementing one for the other here: each error
//! converts into a [`Problem`] (`?` does it in a handler returning
//! `Result<_, Problem>`), and `Problem` is the response.

use std::fmt;
use std::time::Duration;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use security_authn::AuthnError;
use security_authz::AuthzError;
use security_core::{AdminError, CommandError, DomainError, KeyStoreError, TokenError};
use security_crypto::CryptoError;

/// The media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The prefix of every problem `type` URI; the rest names the kind, e.g.
/// `urn:security:problem:throttled`.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:security:problem:";

/// An HTTP error response with an RFC 9457 `application/problem+json`
/// body: `type`, `title`, `status`, `detail` and extension members.
///
/// Built from any error of the crate family. The body never holds a
/// secret, a token, a username or a driver's message: infrastructure
/// failures (503) say only that a backend is unavailable, and are logged
/// with their cause when converted. A `401` carries `WWW-Authenticate`
/// (RFC 6750: `Bearer`, with `error="invalid_token"` for a refused token,
/// `error="insufficient_scope"` on a `403` for a missing permission);
/// `429`, a timed `423` and a `503` carry `Retry-After`.
#[derive(Clone)]
pub struct Problem(Box<Inner>);

#[derive(Clone)]
struct Inner {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: Option<String>,
    retry_after: Option<Duration>,
    challenge: Option<&'static str>,
    extensions: Map<String, Value>,
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Problem")
            .field("status", &self.0.status.as_u16())
            .field("kind", &self.0.kind)
            .field("detail", &self.0.detail)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.status.as_u16(), self.0.title)?;
        if let Some(detail) = &self.0.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// `WWW-Authenticate` of a request that presented no usable token.
const BEARER: &str = "Bearer";
/// `WWW-Authenticate` of a refused token.
const INVALID_TOKEN: &str = "Bearer error=\"invalid_token\"";
/// `WWW-Authenticate` of a missing permission.
const INSUFFICIENT_SCOPE: &str = "Bearer error=\"insufficient_scope\"";

impl Problem {
    /// A problem of `kind` (the last part of its `type` URI) with this
    /// status and title (a short summary that does not change between
    /// occurrences).
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str) -> Self {
        Self(Box::new(Inner {
            status,
            kind,
            title,
            detail: None,
            retry_after: None,
            challenge: None,
            extensions: Map::new(),
        }))
    }

    /// Adds a human-readable explanation of this occurrence. Never put a
    /// secret, a token or a backend's message in it.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// Adds an extension member (e.g. the rules a password broke).
    pub fn with_extension(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.0.extensions.insert(name.to_owned(), value.into());
        self
    }

    /// Sets `Retry-After` (whole seconds, rounded up, at least 1).
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.0.retry_after = Some(retry_after);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The `type` URI.
    pub fn type_uri(&self) -> String {
        format!("{PROBLEM_TYPE_PREFIX}{}", self.0.kind)
    }

    /// The seconds of `Retry-After`, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.0
            .retry_after
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .map(|s| s.max(1))
    }

    // ----- the common cases -------------------------------------------------

    /// `401`: no bearer token, or not a well-formed `Authorization` header.
    pub fn unauthenticated() -> Self {
        let mut p = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
        )
        .with_detail("send an access token as Authorization: Bearer <token>");
        p.0.challenge = Some(BEARER);
        p
    }

    /// `401`: the access token was refused (RFC 6750 `invalid_token`).
    pub fn invalid_token(detail: impl Into<String>) -> Self {
        let mut p = Self::new(StatusCode::UNAUTHORIZED, "invalid-token", "Invalid token")
            .with_detail(detail);
        p.0.challenge = Some(INVALID_TOKEN);
        p
    }

    /// `403`: the caller lacks `permission` (RFC 6750 `insufficient_scope`).
    pub fn forbidden(permission: &str) -> Self {
        let mut p = Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
            .with_detail(format!("the permission {permission} is required"))
            .with_extension("permission", permission);
        p.0.challenge = Some(INSUFFICIENT_SCOPE);
        p
    }

    /// `429` with `Retry-After`.
    pub fn throttled(retry_after: Duration) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "Too many requests",
        )
        .with_detail("too many requests: retry later")
        .with_retry_after(retry_after)
    }

    /// `404`: no such resource (or not the caller's).
    pub fn not_found(what: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found")
            .with_detail(format!("{what} not found"))
    }

    /// `400`: the request is malformed; `detail` says how (no echo of input).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request").with_detail(detail)
    }

    /// `503` with `Retry-After`: a backend failed. Logs `error` (with its
    /// sources, which may hold a driver's message) and shows none of it.
    pub fn unavailable(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %error, cause = ?error.source().map(ToString::to_string), "request failed on a backend");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
        )
        .with_detail("a backend is unavailable: retry later")
        .with_retry_after(Duration::from_secs(5))
    }

    /// `500`: a bug or a misconfiguration. Logs `error`; shows none of it.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %error, cause = ?error.source().map(ToString::to_string), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after_secs();
        let mut body = Map::new();
        body.insert("type".to_owned(), Value::String(self.type_uri()));
        body.insert("title".to_owned(), Value::from(self.0.title));
        body.insert("status".to_owned(), Value::from(self.0.status.as_u16()));
        if let Some(detail) = self.0.detail {
            body.insert("detail".to_owned(), Value::String(detail));
        }
        if let Some(secs) = retry_after {
            body.insert("retry_after".to_owned(), Value::from(secs));
        }
        for (name, value) in self.0.extensions {
            body.entry(name).or_insert(value);
        }
        let text = Value::Object(body).to_string();
        let mut response = (self.0.status, text).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.0.challenge {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

// ----- conversions ----------------------------------------------------------

impl From<TokenError> for Problem {
    fn from(e: TokenError) -> Self {
        Self::invalid_token(e.to_string())
    }
}

impl From<DomainError> for Problem {
    fn from(e: DomainError) -> Self {
        let (status, kind, title) = match &e {
            DomainError::NotFound { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            DomainError::AlreadyExists { .. } | DomainError::UsernameTaken => {
                (StatusCode::CONFLICT, "already-exists", "Already exists")
            }
            DomainError::UserLocked => (StatusCode::LOCKED, "locked", "Locked"),
            DomainError::UserExpired
            | DomainError::AccountSuspended
            | DomainError::AccountExpired => {
                (StatusCode::FORBIDDEN, "inactive", "Account not active")
            }
            DomainError::MaxUsersReached { .. } => {
                (StatusCode::CONFLICT, "limit-reached", "Limit reached")
            }
            DomainError::Invalid { .. } | DomainError::Subject(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "Invalid request",
            ),
            _ => (StatusCode::CONFLICT, "rejected", "Not allowed now"),
        };
        Self::new(status, kind, title).with_detail(e.to_string())
    }
}

impl From<AuthnError> for Problem {
    fn from(e: AuthnError) -> Self {
        let unauthorized = |kind, title| {
            let mut p = Self::new(StatusCode::UNAUTHORIZED, kind, title).with_detail(e.to_string());
            p.0.challenge = Some(BEARER);
            p
        };
        match &e {
            AuthnError::InvalidCredentials => {
                unauthorized("invalid-credentials", "Invalid credentials")
            }
            AuthnError::InvalidMfaCode => unauthorized("invalid-mfa-code", "Invalid MFA code"),
            AuthnError::InvalidChallenge => {
                unauthorized("invalid-challenge", "Invalid or expired challenge")
            }
            AuthnError::InvalidRefreshToken
            | AuthnError::RefreshTokenReused
            | AuthnError::SessionRevoked => {
                let mut p = Self::new(StatusCode::UNAUTHORIZED, "invalid-grant", "Invalid grant")
                    .with_detail(e.to_string());
                p.0.challenge = Some(INVALID_TOKEN);
                p
            }
            AuthnError::Token(t) => Self::invalid_token(t.to_string()),
            AuthnError::Throttled { retry_after } => Self::throttled(*retry_after),
            AuthnError::UserLocked { retry_after } => {
                let p = Self::new(StatusCode::LOCKED, "locked", "Locked")
                    .with_detail("the user is locked");
                match retry_after {
                    Some(d) => p.with_retry_after(*d),
                    None => p,
                }
            }
            AuthnError::UserExpired | AuthnError::AccountSuspended | AuthnError::AccountExpired => {
                Self::new(StatusCode::FORBIDDEN, "inactive", "Account not active")
                    .with_detail(e.to_string())
            }
            AuthnError::PasswordPolicy(violation) => {
                let rules: Vec<Value> = violation
                    .rules
                    .iter()
                    .map(|r| Value::String(r.to_string()))
                    .collect();
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "password-policy",
                    "Password does not meet the policy",
                )
                .with_detail(violation.to_string())
                .with_extension("violations", rules)
            }
            AuthnError::Rejected(d) => Self::from(d.clone()),
            AuthnError::OAuth(o) => {
                let status = StatusCode::from_u16(o.status()).unwrap_or(StatusCode::BAD_REQUEST);
                Self::new(status, o.code.as_str(), "OAuth request refused")
                    .with_detail(o.description)
            }
            AuthnError::UnknownOrganization(_) | AuthnError::Conflict => {
                Self::new(StatusCode::CONFLICT, "conflict", "Conflict")
                    .with_detail("the request conflicted with another: retry")
                    .with_retry_after(Duration::from_secs(1))
            }
            AuthnError::Config(_) => Self::internal(&e),
            AuthnError::PasskeysNotConfigured => Self::new(
                StatusCode::NOT_FOUND,
                "passkeys-not-configured",
                "Passkeys are not available",
            )
            .with_detail(e.to_string()),
            AuthnError::InvalidPasskey => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid-passkey",
                "Invalid passkey",
            )
            .with_detail(e.to_string()),
            _ if e.is_infrastructure() => Self::unavailable(&e),
            _ => Self::internal(&e),
        }
    }
}

impl From<AuthzError> for Problem {
    fn from(e: AuthzError) -> Self {
        match &e {
            AuthzError::Denied(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                .with_detail("access denied"),
            AuthzError::LimitExceeded(limit) => {
                use security_authz::LimitKind;
                let (status, kind) = match limit.kind {
                    LimitKind::PayloadSize => (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
                    LimitKind::DataRate => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
                    _ => (StatusCode::FORBIDDEN, "limit-reached"),
                };
                Self::new(status, kind, "Limit exceeded")
                    .with_detail(format!("the {} limit is {}", limit.kind, limit.limit))
            }
            AuthzError::Token(t) => Self::invalid_token(t.to_string()),
            AuthzError::Store(_) | AuthzError::Sink(_) => Self::unavailable(&e),
            _ => Self::internal(&e),
        }
    }
}

impl From<CommandError<DomainError>> for Problem {
    fn from(e: CommandError<DomainError>) -> Self {
        match e {
            CommandError::Rejected(d) => Self::from(d),
            CommandError::Conflict { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", "Conflict")
                    .with_detail("the request conflicted with another: retry")
                    .with_retry_after(Duration::from_secs(1))
            }
            e @ CommandError::Store(_) => Self::unavailable(&e),
            e => Self::internal(&e),
        }
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Command(c) => Self::from(c),
            other => Self::unavailable(&other),
        }
    }
}

impl From<KeyStoreError> for Problem {
    fn from(e: KeyStoreError) -> Self {
        match e {
            KeyStoreError::NotFound(_) => Self::not_found("key"),
            KeyStoreError::Unseal => Self::new(StatusCode::GONE, "erased", "Erased")
                .with_detail("the value can no longer be opened (its key was destroyed)"),
            e @ KeyStoreError::Backend(_) => Self::unavailable(&e),
            e => Self::new(StatusCode::CONFLICT, "key-unusable", "Key unusable")
                .with_detail(e.to_string()),
        }
    }
}

impl From<CryptoError> for Problem {
    fn from(e: CryptoError) -> Self {
        match &e {
            CryptoError::InvalidToken => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-ciphertext",
                "Invalid ciphertext",
            )
            .with_detail(e.to_string()),
            CryptoError::TokenExpired => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "expired-ciphertext",
                "Expired ciphertext",
            )
            .with_detail(e.to_string()),
            CryptoError::InvalidParameters(_) | CryptoError::Serialization(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "Invalid request",
            )
            .with_detail(e.to_string()),
            CryptoError::KeyStore(_) | CryptoError::Random => Self::unavailable(&e),
            _ => Self::internal(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(problem: Problem) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = problem.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let body = futures_body(response);
        (status, headers, body)
    }

    fn futures_body(response: Response) -> Value {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = runtime
            .block_on(axum::body::to_bytes(response.into_body(), 64 * 1024))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused by db.internal:5432 for user app (password hunter2)")]
    struct DriverError;

    #[test]
    fn infrastructure_failures_are_503_without_the_drivers_text() {
        let error = AuthnError::Store(Box::new(DriverError));
        let (status, headers, body) = parts(Problem::from(error));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[CONTENT_TYPE], PROBLEM_JSON);
        assert!(headers.contains_key(RETRY_AFTER));
        let text = body.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("db.internal"),
            "{text}"
        );
        assert_eq!(body["type"], "urn:security:problem:unavailable");
    }

    #[test]
    fn throttling_and_locks_carry_retry_after() {
        let throttled = AuthnError::Throttled {
            retry_after: Duration::from_millis(12_300),
        };
        let (status, headers, body) = parts(Problem::from(throttled));
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[RETRY_AFTER], "13");
        assert_eq!(body["retry_after"], 13);
        let timed = AuthnError::UserLocked {
            retry_after: Some(Duration::from_secs(300)),
        };
        let (status, headers, _) = parts(Problem::from(timed));
        assert_eq!(status, StatusCode::LOCKED);
        assert_eq!(headers[RETRY_AFTER], "300");
        let by_admin = AuthnError::UserLocked { retry_after: None };
        let (status, headers, _) = parts(Problem::from(by_admin));
        assert_eq!(status, StatusCode::LOCKED);
        assert!(!headers.contains_key(RETRY_AFTER));
    }

    #[test]
    fn token_refusals_follow_rfc_6750() {
        let (status, headers, body) = parts(Problem::from(TokenError::Expired));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[WWW_AUTHENTICATE], "Bearer error=\"invalid_token\"");
        assert_eq!(body["detail"], "token has expired");
        let (status, headers, _) = parts(Problem::forbidden("loan:approve"));
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            headers[WWW_AUTHENTICATE],
            "Bearer error=\"insufficient_scope\""
        );
        let (_, headers, _) = parts(Problem::from(AuthnError::InvalidCredentials));
        assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn caller_errors_map_to_their_statuses() {
        let cases: Vec<(Problem, StatusCode)> = vec![
            (
                DomainError::NotFound { kind: "user" }.into(),
                StatusCode::NOT_FOUND,
            ),
            (DomainError::UsernameTaken.into(), StatusCode::CONFLICT),
            (AuthnError::AccountSuspended.into(), StatusCode::FORBIDDEN),
            (
                AuthnError::RefreshTokenReused.into(),
                StatusCode::UNAUTHORIZED,
            ),
            (AuthnError::Conflict.into(), StatusCode::CONFLICT),
            (
                CryptoError::InvalidToken.into(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (KeyStoreError::Unseal.into(), StatusCode::GONE),
        ];
        for (problem, status) in cases {
            assert_eq!(problem.status(), status, "{problem}");
        }
    }
}
