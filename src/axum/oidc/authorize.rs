//! `GET` and `POST /oauth/authorize`: the authorization endpoint and its
//! sign-in page.

use axum::Extension;
use axum::extract::{Form, Query};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use security_authn::oidc::{AuthorizationRequest, OidcProvider, Prompt, ValidatedAuthorization};
use security_authn::{AuthnError, LoginOutcome, TokenPair};
use security_core::TenantId;

use super::page::{self, Step};
use crate::axum::client_ip::Client;
use crate::axum::problem::Problem;
use crate::axum::tenant::Tenant;

/// The browser's half of the CSRF token (`__Host-`: this host only,
/// HTTPS only, path `/`).
const CSRF_COOKIE: &str = "__Host-oidc_csrf";

/// The sign-in form: the authorization request again, the CSRF token, and
/// the credentials of the step.
#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(flatten)]
    request: AuthorizationRequest,
    csrf_token: Option<String>,
    username: Option<String>,
    password: Option<SecretString>,
    mfa_challenge: Option<SecretString>,
    code: Option<SecretString>,
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(LOCATION, value);
            response
        }
        Err(_) => page::error_page(StatusCode::BAD_REQUEST, "the redirect URI is not usable"),
    }
}

/// The answer to a refused request: the client's redirect URI when it was
/// validated, an error page otherwise (never an open redirect).
fn refused(error: AuthnError) -> Response {
    match error {
        AuthnError::OAuth(error) => match error.redirect_to {
            Some(location) => redirect(&location),
            None => page::error_page(StatusCode::BAD_REQUEST, error.description),
        },
        other => Problem::from(other).into_response(),
    }
}

fn browser_value(headers: &HeaderMap) -> Option<SecretString> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, value)| SecretString::from(value.to_owned()))
}

/// `GET /oauth/authorize`: validates the request and shows the sign-in
/// page (with a fresh CSRF cookie); `prompt=none` is answered with
/// `login_required` (the provider keeps no sign-in of its own between
/// requests).
pub(crate) async fn page(
    Extension(provider): Extension<OidcProvider>,
    Tenant(tenant): Tenant,
    Query(request): Query<AuthorizationRequest>,
) -> Response {
    let validated = match provider.validate_authorization(tenant, &request).await {
        Ok(validated) => validated,
        Err(error) => return refused(error),
    };
    if validated.prompt() == Prompt::None {
        return match provider.login_required(&validated).await {
            Ok(error) => refused(AuthnError::OAuth(error)),
            Err(error) => refused(error),
        };
    }
    let browser = match provider.new_csrf_cookie() {
        Ok(browser) => browser,
        Err(error) => return refused(error),
    };
    let token = match provider.csrf_token(tenant, &browser, &request).await {
        Ok(token) => token,
        Err(error) => return refused(error),
    };
    let mut response = page::sign_in(
        StatusCode::OK,
        validated.client_name(),
        &request,
        &token,
        &Step::Password,
        None,
    );
    let cookie = format!(
        "{CSRF_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=900",
        browser.expose_secret()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

/// `POST /oauth/authorize`: the sign-in form. The CSRF token must fit the
/// browser's cookie and this very request; then the user signs in through
/// the library's login (password, then a TOTP or backup code when MFA is
/// on), and the browser goes back to the client with a code.
pub(crate) async fn sign_in(
    Extension(provider): Extension<OidcProvider>,
    Tenant(tenant): Tenant,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let validated = match provider.validate_authorization(tenant, &form.request).await {
        Ok(validated) => validated,
        Err(error) => return refused(error),
    };
    let browser = browser_value(&headers);
    let csrf = form.csrf_token.as_deref();
    match provider
        .check_csrf(tenant, browser.as_ref(), csrf, &form.request)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return page::error_page(
                StatusCode::FORBIDDEN,
                "The sign-in form expired or did not come from this site. Start again from the application.",
            );
        }
        Err(error) => return refused(error),
    }
    let token = csrf.unwrap_or_default();
    let authn = provider.authn();
    let outcome = match (
        &form.mfa_challenge,
        &form.code,
        &form.username,
        &form.password,
    ) {
        (Some(challenge), Some(code), _, _) => authn.verify_mfa(challenge, code, &client).await,
        (None, None, Some(username), Some(password)) => {
            authn
                .authenticate(tenant, username, password, &client)
                .await
        }
        _ => {
            return page::error_page(StatusCode::BAD_REQUEST, "the form is incomplete");
        }
    };
    let again = |status, step: &Step<'_>, message| {
        page::sign_in(
            status,
            validated.client_name(),
            &form.request,
            token,
            step,
            Some(message),
        )
    };
    match outcome {
        Ok(LoginOutcome::Authenticated(tokens)) => {
            approve(&provider, tenant, &validated, tokens).await
        }
        Ok(LoginOutcome::MfaRequired(challenge)) => {
            let step = Step::Mfa {
                challenge: challenge.challenge.expose_secret(),
            };
            again(
                StatusCode::OK,
                &step,
                "Enter the code from your authenticator app or a backup code.",
            )
        }
        Ok(LoginOutcome::PasswordChangeRequired(_)) => page::error_page(
            StatusCode::FORBIDDEN,
            "Your password must be changed before you can sign in here.",
        ),
        Err(AuthnError::InvalidCredentials) => again(
            StatusCode::UNAUTHORIZED,
            &Step::Password,
            "Wrong username or password.",
        ),
        Err(AuthnError::InvalidMfaCode) => match &form.mfa_challenge {
            Some(challenge) => again(
                StatusCode::UNAUTHORIZED,
                &Step::Mfa {
                    challenge: challenge.expose_secret(),
                },
                "Wrong code.",
            ),
            None => again(StatusCode::UNAUTHORIZED, &Step::Password, "Wrong code."),
        },
        Err(AuthnError::InvalidChallenge) => again(
            StatusCode::UNAUTHORIZED,
            &Step::Password,
            "The sign-in expired. Sign in again.",
        ),
        Err(error) => refused(error),
    }
}

/// Approves the request with the session the sign-in just opened. That
/// session's own tokens are never handed out: once the code carries the
/// sign-in, the session is revoked.
async fn approve(
    provider: &OidcProvider,
    tenant: TenantId,
    validated: &ValidatedAuthorization,
    tokens: TokenPair,
) -> Response {
    let authn = provider.authn();
    if tokens.tenant_id != tenant {
        // An MFA challenge of another tenant, completed under this URL.
        let _ = authn
            .revoke_session(tokens.tenant_id, tokens.session_id, "wrong tenant")
            .await;
        return page::error_page(
            StatusCode::UNAUTHORIZED,
            "The sign-in expired. Start again.",
        );
    }
    let result = provider.approve(validated, tokens.session_id).await;
    if let Err(error) = authn
        .revoke_session(tenant, tokens.session_id, "oauth sign-in completed")
        .await
    {
        return refused(error);
    }
    match result {
        Ok(location) => redirect(&location),
        Err(error) => refused(error),
    }
}
