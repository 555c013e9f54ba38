//! The API rate-limit tiers as a tower layer, per client IP and per user.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tower_layer::Layer;
use tower_service::Service;

use security_authn::{RateDecision, RateLimit};

use super::auth::{Authenticated, authenticate, bearer};
use super::client_ip::client_ip;
use super::problem::Problem;
use super::state::SecurityState;
use crate::rate_tiers::RateTier;

/// Limits the requests of the routes it wraps to a [`RateTier`], counted
/// per client IP (see [`TrustedProxies`](super::TrustedProxies)) and, when
/// the request carries a valid access token, per user; the hourly cap of
/// the API tiers counts too. Over a limit: `429` with `Retry-After`. A
/// failing limiter backend fails closed (`503`). The counts live in the
/// state's [`RateLimiter`](security_authn::RateLimiter): share one backend
/// across replicas.
///
/// ```
/// use axum::Router;
/// use axum::routing::get;
/// use security::RateTier;
/// use security::axum::{RateLimitLayer, SecurityState};
///
/// async fn list() -> &'static str {
///     "[]"
/// }
///
/// fn routes(state: &SecurityState) -> Router {
///     Router::new().route(
///         "/loans",
///         get(list).layer(RateLimitLayer::new(state.clone(), RateTier::Read)),
///     )
/// }
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    state: SecurityState,
    tier: RateTier,
}

impl RateLimitLayer {
    /// Limits to `tier` with the state's limiter and limits.
    pub fn new(state: SecurityState, tier: RateTier) -> Self {
        Self { state, tier }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            state: self.state.clone(),
            tier: self.tier,
        }
    }
}

/// The service [`RateLimitLayer`] wraps around routes.
#[derive(Debug, Clone)]
pub struct RateLimited<S> {
    inner: S,
    state: SecurityState,
    tier: RateTier,
}

impl<S> Service<Request> for RateLimited<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        let tier = self.tier;
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match check(&mut parts, &state, tier).await {
                Ok(()) => inner.call(Request::from_parts(parts, body)).await,
                Err(problem) => Ok(problem.into_response()),
            }
        })
    }
}

async fn check(
    parts: &mut axum::http::request::Parts,
    state: &SecurityState,
    tier: RateTier,
) -> Result<(), Problem> {
    let ip = client_ip(parts, state.trusted_proxies())?;
    // A valid token counts per user as well; a bad one is left for the
    // handler to refuse (it is counted per IP here).
    let user = if matches!(bearer(parts), Ok(Some(_))) {
        authenticate(parts, state).await.ok().map(|claims| {
            parts.extensions.insert(Authenticated(claims.clone()));
            format!("{}:{}", claims.tenant_id, claims.user_id)
        })
    } else {
        None
    };
    let limits = state.rate_limits();
    let mut keys: Vec<(String, RateLimit)> =
        vec![(format!("api:{tier}:ip:{ip}"), limits.limit(tier))];
    if let Some(user) = &user {
        keys.push((format!("api:{tier}:user:{user}"), limits.limit(tier)));
    }
    if tier.is_api() {
        keys.push((format!("api:hour:ip:{ip}"), limits.per_hour));
        if let Some(user) = &user {
            keys.push((format!("api:hour:user:{user}"), limits.per_hour));
        }
    }
    // The first refusal wins; the keys after it are not counted.
    let now = Utc::now();
    for (key, limit) in keys {
        match state.rate_limiter().acquire(&key, limit, now).await {
            Ok(RateDecision::Allowed { .. }) => {}
            Ok(RateDecision::Limited { retry_after }) => {
                return Err(Problem::throttled(retry_after));
            }
            Err(e) => return Err(Problem::unavailable(&e)),
        }
    }
    Ok(())
}
