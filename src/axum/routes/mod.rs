//! The mountable authentication router.

mod account;
mod jwks;
mod login;
mod passkeys;
mod tokens;

use std::fmt;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, delete, get, patch, post};

use super::rate_limit::RateLimitLayer;
use super::state::SecurityState;
use crate::rate_tiers::RateTier;

/// The prefix of every tenant's routes when the tenant comes from the path.
pub const TENANT_PREFIX: &str = "/t/{tenant}";

/// The largest request body the routes read (JSON of a few fields).
const BODY_LIMIT: usize = 16 * 1024;

/// The largest body of a passkey route (a WebAuthn response, which may
/// carry an attestation certificate chain).
const PASSKEY_BODY_LIMIT: usize = security_authn::passkeys::MAX_RESPONSE_BYTES + 4096;

/// The authentication routes of every tenant, ready to mount.
///
/// Under the tenant's root (`/t/{tenant}` with [`TenantSource::path`](super::TenantSource::path),
/// `/` with [`TenantSource::host`](super::TenantSource::host)):
///
/// | route | | tier |
/// |---|---|---|
/// | `POST /auth/login` | `{username, password}` → tokens, `mfa_required` or `password_change_required` | `auth`, by the service (per IP and username, audited) |
/// | `POST /auth/mfa` | `{mfa_challenge, code}` (TOTP or backup code) → tokens | `mfa`, by the service |
/// | `POST /auth/password/complete` | `{password_change_ticket, new_password}` → tokens | `auth` |
/// | `POST /auth/password` | bearer; `{current_password, new_password}` → 204 | `api_write` |
/// | `POST /auth/refresh` | `{refresh_token}` → tokens | `api_write` |
/// | `POST /auth/logout` | `{refresh_token}` → 204 | `api_write` |
/// | `GET /auth/sessions` | bearer → the caller's live sessions | `api_read` |
/// | `DELETE /auth/sessions/{session_id}` | bearer → 204 | `api_write` |
/// | `POST /auth/mfa/totp` | bearer → `{secret, otpauth_uri, qr_svg}` | `api_write` |
/// | `POST /auth/mfa/totp/confirm` | bearer; `{code}` → `{backup_codes}` | `mfa` (and the service's) |
/// | `POST /auth/mfa/backup-codes` | bearer → `{backup_codes}` | `api_write` |
/// | `POST /auth/mfa/passkey` | `{mfa_challenge, credential}` (the assertion for the login's `passkey_options`) → tokens | `mfa`, by the service |
/// | `POST /auth/passkeys/login/start` | → `{passkey_challenge, options}` (passwordless, no username) | `auth`, and by the service |
/// | `POST /auth/passkeys/login/finish` | `{passkey_challenge, credential}` → tokens | `auth` |
/// | `POST /auth/passkeys/register/start` | bearer; `{discoverable?}` (default `true`) → `{passkey_challenge, options}` | `api_write` |
/// | `POST /auth/passkeys/register/finish` | bearer; `{passkey_challenge, credential, name}` → 201 the passkey | `api_write` |
/// | `GET /auth/passkeys` | bearer → `{passkeys}` (id, name, flags, dates) | `api_read` |
/// | `PATCH /auth/passkeys/{passkey_id}` | bearer; `{name}` → 204 | `api_write` |
/// | `DELETE /auth/passkeys/{passkey_id}` | bearer → 204 (the sessions it opened end) | `api_write` |
/// | `GET /.well-known/jwks.json` | the tenant's JWK Set | `api_read` |
///
/// A login of a user with a passkey answers `mfa_required` with
/// `passkey_options` beside the `mfa_challenge`. Passkey routes answer
/// `404 passkeys-not-configured` in a tenant without a relying party
/// (`WEBAUTHN_RP_ID`, `WEBAUTHN_RP_ORIGIN`) and read bodies up to 68 KiB.
///
/// Errors are [`Problem`](super::Problem) responses. Token bodies carry
/// `Cache-Control: no-store`. Further routes (an OAuth provider)
/// join under the same root with [`merge`](Self::merge), using the same
/// state and extractors.
pub struct AuthRouter {
    state: SecurityState,
    routes: Router<SecurityState>,
}

impl fmt::Debug for AuthRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRouter")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl AuthRouter {
    /// The routes above, over `state`.
    pub fn new(state: SecurityState) -> Self {
        let tier = |route: MethodRouter<SecurityState>, tier| {
            route.layer(RateLimitLayer::new(state.clone(), tier))
        };
        // A WebAuthn response: a larger body than the other routes'.
        let large = |route: MethodRouter<SecurityState>| {
            route.layer(DefaultBodyLimit::max(PASSKEY_BODY_LIMIT))
        };
        let routes = Router::new()
            .route("/auth/login", post(login::login))
            .route("/auth/mfa", post(login::mfa))
            .route(
                "/auth/password/complete",
                tier(post(login::complete_password_change), RateTier::Login),
            )
            .route(
                "/auth/password",
                tier(post(account::change_password), RateTier::Write),
            )
            .route(
                "/auth/refresh",
                tier(post(tokens::refresh), RateTier::Write),
            )
            .route("/auth/logout", tier(post(tokens::logout), RateTier::Write))
            .route(
                "/auth/sessions",
                tier(get(account::list_sessions), RateTier::Read),
            )
            .route(
                "/auth/sessions/{session_id}",
                tier(delete(account::revoke_session), RateTier::Write),
            )
            .route(
                "/auth/mfa/totp",
                tier(post(account::start_totp), RateTier::Write),
            )
            .route(
                "/auth/mfa/totp/confirm",
                tier(post(account::confirm_totp), RateTier::Mfa),
            )
            .route(
                "/auth/mfa/backup-codes",
                tier(post(account::regenerate_backup_codes), RateTier::Write),
            )
            .route("/auth/mfa/passkey", large(post(passkeys::mfa)))
            .route(
                "/auth/passkeys/login/start",
                tier(post(passkeys::start_login), RateTier::Login),
            )
            .route(
                "/auth/passkeys/login/finish",
                large(tier(post(passkeys::finish_login), RateTier::Login)),
            )
            .route(
                "/auth/passkeys/register/start",
                tier(post(passkeys::start_registration), RateTier::Write),
            )
            .route(
                "/auth/passkeys/register/finish",
                large(tier(post(passkeys::finish_registration), RateTier::Write)),
            )
            .route("/auth/passkeys", tier(get(passkeys::list), RateTier::Read))
            .route(
                "/auth/passkeys/{passkey_id}",
                tier(patch(passkeys::rename), RateTier::Write)
                    .merge(tier(delete(passkeys::remove), RateTier::Write)),
            )
            .route(
                "/.well-known/jwks.json",
                tier(get(jwks::jwks), RateTier::Read),
            );
        Self { state, routes }
    }

    /// Adds routes under the tenant's root (relative paths such as
    /// `/auth/passkeys/login/start`).
    pub fn merge(mut self, routes: Router<SecurityState>) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// The router to mount (e.g. `app.merge(auth.into_router())`): nested
    /// under [`TENANT_PREFIX`] when the tenant comes from the path, at the
    /// root when it comes from the host.
    pub fn into_router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let routes = self
            .routes
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(self.state.clone());
        if self.state.tenants().is_path() {
            Router::new().nest(TENANT_PREFIX, routes)
        } else {
            routes
        }
    }
}
