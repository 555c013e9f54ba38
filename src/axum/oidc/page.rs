//! The minimal server-rendered sign-in page (no JavaScript), and the
//! error page shown when a request cannot be answered at the client's
//! redirect URI. Applications that want their own page drive
//! [`OidcProvider`](security_authn::oidc::OidcProvider) themselves.

use std::fmt::Write as _;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use security_authn::oidc::AuthorizationRequest;

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// An HTML response with the headers every page of the provider carries:
/// no caching, no framing (clickjacking), no scripts, no referrer.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The page for a request that cannot go back to the client.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    html(
        status,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in error</title></head>\
             <body><h1>Sign-in error</h1><p>{}</p></body></html>",
            escape(message)
        ),
    )
}

/// The hidden fields that carry the authorization request through the form.
fn hidden_request(request: &AuthorizationRequest) -> String {
    let fields = [
        ("response_type", &request.response_type),
        ("client_id", &request.client_id),
        ("redirect_uri", &request.redirect_uri),
        ("scope", &request.scope),
        ("state", &request.state),
        ("nonce", &request.nonce),
        ("code_challenge", &request.code_challenge),
        ("code_challenge_method", &request.code_challenge_method),
        ("prompt", &request.prompt),
        ("max_age", &request.max_age),
        ("response_mode", &request.response_mode),
    ];
    let mut out = String::new();
    for (name, value) in fields {
        if let Some(value) = value {
            let _ = write!(
                out,
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(value)
            );
        }
    }
    out
}

/// What the form asks for.
pub(crate) enum Step<'a> {
    /// Username and password.
    Password,
    /// A TOTP or backup code, after the password.
    Mfa {
        /// The MFA challenge of the login.
        challenge: &'a str,
    },
}

/// The sign-in page for `client_name`'s request.
pub(crate) fn sign_in(
    status: StatusCode,
    client_name: &str,
    request: &AuthorizationRequest,
    csrf_token: &str,
    step: &Step<'_>,
    message: Option<&str>,
) -> Response {
    let fields = match step {
        Step::Password => "<label>Username <input name=\"username\" autocomplete=\"username\" required></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>"
            .to_owned(),
        Step::Mfa { challenge } => format!(
            "<input type=\"hidden\" name=\"mfa_challenge\" value=\"{}\">\
             <label>Code <input name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" required></label>",
            escape(challenge)
        ),
    };
    let message = message
        .map(|m| format!("<p role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default();
    html(
        status,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in</title>\
             <style>body{{font-family:sans-serif;max-width:24rem;margin:3rem auto}}label{{display:block;margin:.5rem 0}}</style>\
             </head><body><h1>Sign in</h1><p>to continue to <strong>{}</strong></p>{message}\
             <form method=\"post\">{}<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">{fields}\
             <button type=\"submit\">Continue</button></form></body></html>",
            escape(client_name),
            hidden_request(request),
            escape(csrf_token),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<script>\"a\"&'b'</script>"),
            "&lt;script&gt;&quot;a&quot;&amp;&#x27;b&#x27;&lt;/script&gt;"
        );
        let request = AuthorizationRequest {
            state: Some("\"><script>alert(1)</script>".into()),
            ..AuthorizationRequest::default()
        };
        assert!(!hidden_request(&request).contains("<script>"));
    }
}
