//! The OAuth 2.0 / OpenID Connect provider's routes (see
//! [`OidcRoutes`]).

mod authorize;
mod discovery;
mod logout;
mod page;
mod token;

use axum::Router;
use axum::routing::{get, post};

use security_authn::oidc::OidcProvider;

use super::rate_limit::RateLimitLayer;
use super::state::SecurityState;
use crate::rate_tiers::RateTier;

/// The largest form the routes read.
const BODY_LIMIT: usize = 16 * 1024;

/// The provider's routes, to add to an [`AuthRouter`](super::AuthRouter)
/// with [`merge`](super::AuthRouter::merge), under each tenant's root:
///
/// | route | |
/// |---|---|
/// | `GET /.well-known/openid-configuration` | the discovery document |
/// | `GET /oauth/authorize` | validates the request; the sign-in page, or a redirect with the error |
/// | `POST /oauth/authorize` | the sign-in page's form (CSRF token bound to the browser and the request; MFA step); redirects with `code`, `state`, `iss` |
/// | `POST /oauth/token` | `authorization_code`, `refresh_token`, `client_credentials`; `client_secret_basic` or `client_secret_post` |
/// | `GET`, `POST /oauth/userinfo` | bearer → `sub` (and `preferred_username` with `profile`) |
/// | `POST /oauth/revoke` | RFC 7009 |
/// | `POST /oauth/introspect` | RFC 7662, confidential clients |
/// | `GET`, `POST /oauth/logout` | RP-initiated logout: `id_token_hint` ends its session; `post_logout_redirect_uri` exact |
///
/// Or mount them alone: `Router::new().nest(TENANT_PREFIX,
/// OidcRoutes::new(&state, provider).with_state(state))`.
///
/// With tenants from the path, the issuer is
/// `{issuer_base}/t/{tenant id}`: clients must use the tenant's id in the
/// URL (not a configured name), so the issuer they discover is the one in
/// their tokens.
#[derive(Debug)]
pub struct OidcRoutes;

impl OidcRoutes {
    /// The routes over `provider`, rate-limited with `state`'s tiers.
    #[allow(clippy::new_ret_no_self, reason = "a router is what is built")]
    pub fn new(state: &SecurityState, provider: OidcProvider) -> Router<SecurityState> {
        let tier = |route: axum::routing::MethodRouter<SecurityState>, tier| {
            route.layer(RateLimitLayer::new(state.clone(), tier))
        };
        Router::new()
            .route(
                "/.well-known/openid-configuration",
                tier(get(discovery::configuration), RateTier::Read),
            )
            .route(
                "/oauth/authorize",
                tier(get(authorize::page), RateTier::Read).post(authorize::sign_in),
            )
            .route("/oauth/token", tier(post(token::token), RateTier::Write))
            .route(
                "/oauth/userinfo",
                tier(
                    get(discovery::userinfo).post(discovery::userinfo),
                    RateTier::Read,
                ),
            )
            .route("/oauth/revoke", tier(post(token::revoke), RateTier::Write))
            .route(
                "/oauth/logout",
                tier(
                    get(logout::logout_get).post(logout::logout_post),
                    RateTier::Write,
                ),
            )
            .route(
                "/oauth/introspect",
                tier(post(token::introspect), RateTier::Read),
            )
            .layer(axum::Extension(provider))
            .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
    }
}
