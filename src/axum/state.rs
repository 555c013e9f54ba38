//! What the extractors and the routes need: the services, the rate-limit
//! tiers, the trusted proxies and where the tenant comes from.

use std::fmt;
use std::sync::Arc;

use security_authn::{AuthenticationService, MemoryRateLimiter, RateLimiter, SessionsView};
use security_authz::AuthorizationService;
use security_core::EventStore;

use super::client_ip::TrustedProxies;
use super::tenant::TenantSource;
use crate::rate_tiers::ApiRateLimits;

/// The security side of an axum application's state.
///
/// Make it reachable from your state with `FromRef` (or use it as the
/// state): every extractor of this module needs `SecurityState: FromRef<S>`.
/// Cheap to clone.
#[derive(Clone)]
pub struct SecurityState {
    inner: Arc<Inner>,
}

struct Inner {
    authn: AuthenticationService,
    authz: AuthorizationService,
    sessions: SessionsView,
    store: Arc<dyn EventStore>,
    limiter: Arc<dyn RateLimiter>,
    limits: ApiRateLimits,
    proxies: TrustedProxies,
    tenants: TenantSource,
}

impl fmt::Debug for SecurityState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityState")
            .field("limits", &self.inner.limits)
            .field("proxies", &self.inner.proxies)
            .field("tenants", &self.inner.tenants)
            .finish_non_exhaustive()
    }
}

impl SecurityState {
    /// The state of running [`SecurityServices`](crate::SecurityServices):
    /// its services, sessions view, rate limiter and tiers; tenants from
    /// the path, no trusted proxy (change both on the builder).
    #[cfg(feature = "setup")]
    pub fn builder_for(services: &crate::SecurityServices) -> SecurityStateBuilder {
        SecurityStateBuilder {
            authn: services.authn().clone(),
            authz: services.authz().clone(),
            sessions: services.sessions().clone(),
            store: Arc::clone(services.security().store()),
            limiter: Arc::clone(services.rate_limiter()),
            limits: *services.rate_limits(),
            proxies: TrustedProxies::none(),
            tenants: TenantSource::path(),
        }
    }

    /// A builder from the services themselves. The sessions view must be
    /// fed by its projection over `store` (the setup does it).
    pub fn builder(
        authn: AuthenticationService,
        authz: AuthorizationService,
        sessions: SessionsView,
        store: Arc<dyn EventStore>,
    ) -> SecurityStateBuilder {
        SecurityStateBuilder {
            authn,
            authz,
            sessions,
            store,
            limiter: Arc::new(MemoryRateLimiter::new()),
            limits: ApiRateLimits::default(),
            proxies: TrustedProxies::none(),
            tenants: TenantSource::path(),
        }
    }

    /// Authentication.
    pub fn authn(&self) -> &AuthenticationService {
        &self.inner.authn
    }

    /// Authorization.
    pub fn authz(&self) -> &AuthorizationService {
        &self.inner.authz
    }

    /// Every user's live sessions.
    pub fn sessions(&self) -> &SessionsView {
        &self.inner.sessions
    }

    /// The event store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// The rate limiter of the API tiers.
    pub fn rate_limiter(&self) -> &Arc<dyn RateLimiter> {
        &self.inner.limiter
    }

    /// The API tiers.
    pub fn rate_limits(&self) -> &ApiRateLimits {
        &self.inner.limits
    }

    /// Who may tell the client's address.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.inner.proxies
    }

    /// Where the tenant comes from.
    pub fn tenants(&self) -> &TenantSource {
        &self.inner.tenants
    }
}

/// Builds a [`SecurityState`].
pub struct SecurityStateBuilder {
    authn: AuthenticationService,
    authz: AuthorizationService,
    sessions: SessionsView,
    store: Arc<dyn EventStore>,
    limiter: Arc<dyn RateLimiter>,
    limits: ApiRateLimits,
    proxies: TrustedProxies,
    tenants: TenantSource,
}

impl fmt::Debug for SecurityStateBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityStateBuilder")
            .field("limits", &self.limits)
            .field("proxies", &self.proxies)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl SecurityStateBuilder {
    /// Counts the API tiers with this limiter (share one backend across
    /// replicas).
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// The tiers' limits.
    pub fn rate_limits(mut self, limits: ApiRateLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Who may tell the client's address (default: nobody).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Where the tenant comes from (default: the `{tenant}` path segment).
    pub fn tenants(mut self, tenants: TenantSource) -> Self {
        self.tenants = tenants;
        self
    }

    /// The state.
    pub fn build(self) -> SecurityState {
        SecurityState {
            inner: Arc::new(Inner {
                authn: self.authn,
                authz: self.authz,
                sessions: self.sessions,
                store: self.store,
                limiter: self.limiter,
                limits: self.limits,
                proxies: self.proxies,
                tenants: self.tenants,
            }),
        }
    }
}
