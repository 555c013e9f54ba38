//! The axum integration (feature `axum`).
//!
//! - **Extractors**: [`Authenticated`] (a valid access token, validated
//!   asynchronously so tokens of other replicas work), [`RequirePermission`]
//!   (the holder has a permission, decided by the live authorizer),
//!   [`ClientIp`] and [`Client`] (the client's address under an explicit
//!   [`TrustedProxies`] policy), [`Tenant`] (from the path or the host,
//!   see [`TenantSource`]).
//! - **Errors**: every error of the crate family converts into a
//!   [`Problem`], an RFC 9457 `application/problem+json` response with the
//!   right status and headers (`WWW-Authenticate` per RFC 6750,
//!   `Retry-After`), never a secret or a backend's message.
//! - **Rate limits**: [`RateLimitLayer`] applies a [`RateTier`](crate::RateTier)
//!   per client IP and per user.
//! - **Routes**: [`AuthRouter`] — login, MFA, password changes, refresh,
//!   logout, sessions, TOTP enrolment, backup codes, the JWKS; and
//!   [`OidcRoutes`], the OAuth 2.0 / OpenID Connect provider.
//!
//! The extractors need the [`SecurityState`] in the application's state
//! (`SecurityState: FromRef<AppState>`), and the server must give the peer
//! address: `axum::serve(listener,
//! app.into_make_service_with_connect_info::<SocketAddr>())`.
//!
//! For tower stacks without axum, `security::authz::RequirePermissionLayer`
//! (feature `tower`) does the bearer-and-permission check as a layer.

mod auth;
mod body;
mod client_ip;
mod oidc;
mod problem;
mod rate_limit;
mod routes;
mod state;
mod tenant;

pub use auth::{Authenticated, RequirePermission, RequiredPermission};
pub use body::JsonBody;
pub use client_ip::{Client, ClientIp, InvalidTrustedProxies, TrustedProxies};
pub use oidc::OidcRoutes;
pub use problem::{PROBLEM_JSON, PROBLEM_TYPE_PREFIX, Problem};
pub use rate_limit::{RateLimitLayer, RateLimited};
pub use routes::{AuthRouter, TENANT_PREFIX};
pub use state::{SecurityState, SecurityStateBuilder};
pub use tenant::{TENANT_PARAM, Tenant, TenantSource};
