//! The state several replicas must share (rate limits, lockouts, login
//! challenges), chosen in one place.
//!
//! One process alone may keep it in memory. Behind a balancer, each
//! replica must see the others' counts and challenges: the shared
//! PostgreSQL and Redis implementations of these ports are wired here,
//! and nowhere else.

use std::sync::Arc;

use security_authn::{MemoryRateLimiter, RateLimiter};

use super::settings::{Settings, redis_configured};

/// The shared ports handed to the authentication service and the HTTP
/// rate-limit tiers.
#[derive(Debug, Clone)]
pub(crate) struct SharedBackends {
    /// Counts login, MFA and API-tier attempts.
    pub(crate) rate_limiter: Arc<dyn RateLimiter>,
}

/// The shared backends for these settings.
///
/// This build has the in-process implementations only: limits, lockouts
/// and challenges hold per replica. With `REDIS_URL` set a warning says
/// so at start, so that a fleet is never silently weaker than its
/// configuration suggests.
pub(crate) fn shared_backends(settings: &Settings) -> SharedBackends {
    if redis_configured(settings) {
        tracing::warn!(
            "REDIS_URL is set but this build wires no Redis backend: rate limits, lockouts and \
             login challenges hold per replica"
        );
    }
    SharedBackends {
        rate_limiter: Arc::new(MemoryRateLimiter::new()),
    }
}
