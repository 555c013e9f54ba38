//! Protocol errors of the OAuth 2.0 / OpenID Connect provider.

use std::fmt;

/// The error codes of RFC 6749 §4.1.2.1 and §5.2, RFC 7009 and OpenID
/// Connect Core §3.1.2.6 that this provider answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// A parameter is missing, repeated, malformed or unsupported.
    InvalidRequest,
    /// Client authentication failed (unknown client, wrong secret, no
    /// authentication where one is needed, disabled client).
    InvalidClient,
    /// The code, refresh token or PKCE verifier is wrong, expired, used,
    /// revoked, or was issued to another client or redirect URI.
    InvalidGrant,
    /// The client may not use this grant or response type.
    UnauthorizedClient,
    /// The grant type is not one this provider supports (`implicit`,
    /// `password`, …).
    UnsupportedGrantType,
    /// The response type is not `code`.
    UnsupportedResponseType,
    /// A scope was asked for that the client is not allowed.
    InvalidScope,
    /// The user or the provider refused.
    AccessDenied,
    /// `prompt=none` (or `max_age`) needs a sign-in the request does not
    /// allow.
    LoginRequired,
    /// The token type hint names a kind of token this provider does not
    /// revoke.
    UnsupportedTokenType,
}

impl OAuthErrorCode {
    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::LoginRequired => "login_required",
            Self::UnsupportedTokenType => "unsupported_token_type",
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request to the provider was refused. The client's fault: answer with
/// [`code`](Self::code) (HTTP 400, or 401 for
/// [`OAuthErrorCode::InvalidClient`]), or, when
/// [`redirect_to`](Self::redirect_to) is set, by redirecting the browser
/// there. `redirect_to` is only ever set after the client and its redirect
/// URI were validated, so following it is never an open redirect; without
/// it, show an error page and never redirect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// The protocol error code.
    pub code: OAuthErrorCode,
    /// A fixed, human-readable text (never the value that was wrong).
    pub description: &'static str,
    /// The error response to send the browser to (authorization
    /// endpoint only).
    pub redirect_to: Option<String>,
}

impl OAuthError {
    pub(crate) fn new(code: OAuthErrorCode, description: &'static str) -> Self {
        Self {
            code,
            description,
            redirect_to: None,
        }
    }

    /// The HTTP status of this error at the token, revocation and
    /// introspection endpoints.
    pub fn status(&self) -> u16 {
        match self.code {
            OAuthErrorCode::InvalidClient => 401,
            _ => 400,
        }
    }
}
