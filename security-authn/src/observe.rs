//! What authentication tells the operator: a `tracing` span per public
//! operation of [`AuthenticationService`](crate::AuthenticationService) and
//! metrics through the [`metrics`] facade.
//!
//! Each operation's span (level INFO, named `authn.<operation>`) carries
//! `operation`, `tenant` and `user_id` (once known: an unknown username
//! never names one) and `outcome` (`ok`, a login's result such as
//! `mfa_required`, or the error's kind such as `invalid_credentials`).
//! No span or metric carries a password, token, secret, code or a
//! username typed by the caller.
//!
//! The metric names below are recorded once the application installs a
//! recorder; `docs/OBSERVABILITY.md` lists every name, type and label.
//! Labels are low-cardinality: no tenant or user id is a label.

use std::future::Future;
use std::time::Instant;

use security_core::{TenantId, TokenError, UserId};
use tracing::Span;

use crate::error::AuthnError;
use crate::login::LoginOutcome;

/// Counter: first-factor login attempts. Labels: `method` (`password`,
/// `api_key`, `public_key`), `outcome` (`authenticated`, `mfa_required`,
/// `password_change_required`, or an error kind: `invalid_credentials`,
/// `locked`, `throttled`, `expired`, `account_inactive`, ...).
pub const LOGINS: &str = "security_logins_total";

/// Histogram: how long a login attempt took, in seconds (password
/// hashing included). Label: `method`.
pub const LOGIN_DURATION: &str = "security_login_duration_seconds";

/// Counter: operations refused by a rate limit. Label: `operation` (e.g.
/// `authenticate`, `verify_mfa`, `refresh`).
pub const THROTTLES: &str = "security_throttles_total";

/// Counter: users locked automatically after too many failed attempts
/// (locks by an admin are not counted here).
pub const LOCKOUTS: &str = "security_lockouts_total";

/// Counter: second-factor verifications. Label: `outcome` (`authenticated`,
/// `password_change_required`, `invalid_code`, `invalid_challenge`,
/// `throttled`, `locked`, ...).
pub const MFA_VERIFICATIONS: &str = "security_mfa_verifications_total";

/// Counter: access-token validations by this crate's validator. Label:
/// `outcome` (`valid`, or the refusal: `expired`, `revoked`, `signature`,
/// `malformed`, ..., `other` for a kind this build does not name).
pub const TOKEN_VALIDATIONS: &str = "security_token_validations_total";

/// The `outcome` of an error: its kind, never its content.
pub(crate) fn error_outcome(error: &AuthnError) -> &'static str {
    match error {
        AuthnError::InvalidCredentials => "invalid_credentials",
        AuthnError::InvalidMfaCode => "invalid_code",
        AuthnError::InvalidChallenge => "invalid_challenge",
        AuthnError::Throttled { .. } => "throttled",
        AuthnError::UserLocked { .. } => "locked",
        AuthnError::UserExpired => "expired",
        AuthnError::AccountSuspended | AuthnError::AccountExpired => "account_inactive",
        AuthnError::PasswordPolicy(_) => "password_policy",
        AuthnError::InvalidRefreshToken => "invalid_refresh_token",
        AuthnError::RefreshTokenReused => "refresh_token_reused",
        AuthnError::SessionRevoked => "session_revoked",
        AuthnError::Token(_) => "invalid_token",
        AuthnError::Rejected(_) => "rejected",
        AuthnError::OAuth(_) => "oauth_refused",
        AuthnError::UnknownOrganization(_) => "unknown_organization",
        AuthnError::Config(_) => "config",
        AuthnError::PasskeysNotConfigured => "passkeys_not_configured",
        AuthnError::InvalidPasskey => "invalid_passkey",
        AuthnError::Conflict => "conflict",
        AuthnError::Store(_)
        | AuthnError::KeyStore(_)
        | AuthnError::RateLimiter(_)
        | AuthnError::Challenges(_)
        | AuthnError::Attempts(_)
        | AuthnError::Crypto(_) => "error",
    }
}

/// The `outcome` of a login step.
pub(crate) fn login_outcome(result: &Result<LoginOutcome, AuthnError>) -> &'static str {
    match result {
        Ok(LoginOutcome::Authenticated(_)) => "authenticated",
        Ok(LoginOutcome::MfaRequired(_)) => "mfa_required",
        Ok(LoginOutcome::PasswordChangeRequired(_)) => "password_change_required",
        Err(error) => error_outcome(error),
    }
}

/// The `outcome` of any other operation.
pub(crate) fn outcome<T>(result: &Result<T, AuthnError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(error) => error_outcome(error),
    }
}

/// The `outcome` of a token validation.
pub(crate) fn token_outcome(error: &TokenError) -> &'static str {
    match error {
        TokenError::Malformed => "malformed",
        TokenError::TooLarge => "too_large",
        TokenError::Algorithm => "algorithm",
        TokenError::UnknownKey => "unknown_key",
        TokenError::RevokedKey => "revoked_key",
        TokenError::Signature => "signature",
        TokenError::Expired => "expired",
        TokenError::NotYetValid => "not_yet_valid",
        TokenError::MissingClaim => "missing_claim",
        TokenError::Issuer => "issuer",
        TokenError::Audience => "audience",
        TokenError::Header => "header",
        TokenError::Revoked => "revoked",
        _ => "other",
    }
}

/// Runs an operation inside its span (made by `#[tracing::instrument]` on
/// the public method), then records its `outcome` and counts a throttle.
pub(crate) async fn traced<T>(
    operation: &'static str,
    run: impl Future<Output = Result<T, AuthnError>>,
    outcome_of: fn(&Result<T, AuthnError>) -> &'static str,
) -> Result<T, AuthnError> {
    let result = run.await;
    Span::current().record("outcome", outcome_of(&result));
    if matches!(result, Err(AuthnError::Throttled { .. })) {
        metrics::counter!(THROTTLES, "operation" => operation).increment(1);
    }
    result
}

/// [`traced`], counting a first-factor login ([`LOGINS`],
/// [`LOGIN_DURATION`]) by `method`.
pub(crate) async fn traced_login<T>(
    method: &'static str,
    operation: &'static str,
    run: impl Future<Output = Result<T, AuthnError>>,
    outcome_of: fn(&Result<T, AuthnError>) -> &'static str,
) -> Result<T, AuthnError> {
    let started = Instant::now();
    let result = traced(operation, run, outcome_of).await;
    metrics::counter!(LOGINS, "method" => method, "outcome" => outcome_of(&result)).increment(1);
    metrics::histogram!(LOGIN_DURATION, "method" => method).record(started.elapsed());
    result
}

/// [`traced`], counting a second-factor verification
/// ([`MFA_VERIFICATIONS`]).
pub(crate) async fn traced_mfa(
    run: impl Future<Output = Result<LoginOutcome, AuthnError>>,
) -> Result<LoginOutcome, AuthnError> {
    let result = traced("verify_mfa", run, login_outcome).await;
    metrics::counter!(MFA_VERIFICATIONS, "outcome" => login_outcome(&result)).increment(1);
    result
}

/// Names the tenant on the current operation's span.
pub(crate) fn record_tenant(tenant: TenantId) {
    Span::current().record("tenant", tracing::field::display(tenant));
}

/// Names the user on the current operation's span (a user that exists).
pub(crate) fn record_user(user_id: UserId) {
    Span::current().record("user_id", tracing::field::display(user_id));
}

/// Counts an automatic lock.
pub(crate) fn lockout() {
    metrics::counter!(LOCKOUTS).increment(1);
}

/// Counts a token validation; no allocation (every label is static).
pub(crate) fn token_validation<T>(result: &Result<T, TokenError>) {
    macro_rules! count {
        ($outcome:literal) => {
            metrics::counter!(TOKEN_VALIDATIONS, "outcome" => $outcome).increment(1)
        };
    }
    match result {
        Ok(_) => count!("valid"),
        Err(TokenError::Malformed) => count!("malformed"),
        Err(TokenError::TooLarge) => count!("too_large"),
        Err(TokenError::Algorithm) => count!("algorithm"),
        Err(TokenError::UnknownKey) => count!("unknown_key"),
        Err(TokenError::RevokedKey) => count!("revoked_key"),
        Err(TokenError::Signature) => count!("signature"),
        Err(TokenError::Expired) => count!("expired"),
        Err(TokenError::NotYetValid) => count!("not_yet_valid"),
        Err(TokenError::MissingClaim) => count!("missing_claim"),
        Err(TokenError::Issuer) => count!("issuer"),
        Err(TokenError::Audience) => count!("audience"),
        Err(TokenError::Header) => count!("header"),
        Err(TokenError::Revoked) => count!("revoked"),
        Err(_) => count!("other"),
    }
}
