//! What a service needs most, from one place:
//! `use security::prelude::*;`.
//!
//! The services and their errors, the ids, the request and client types,
//! the secret types; with feature `setup` the one-call setup; with feature
//! `axum` the extractors, the problem response and the router.

pub use crate::{ApiRateLimits, ExposeSecret, RateTier, SecretString, Security};
pub use security_authn::{
    AuthenticationService, AuthnConfig, AuthnError, LoginOutcome, NewPasswordUser, SessionSummary,
    TokenPair,
};
pub use security_authz::{AuthorizationService, AuthzError, Decision, Principal, Resource};
pub use security_core::{
    AccessClaims, AccountId, Actor, AdminError, AdminService, ClientInfo, IdempotencyKey,
    Permission, Request, RoleName, SessionId, TenantId, UserId,
};
pub use security_crypto::{CryptoError, EncryptionService};

#[cfg(feature = "setup")]
pub use crate::setup::{SecurityServices, Settings, SetupError};

#[cfg(feature = "axum")]
pub use crate::axum::{
    Authenticated, ClientIp, Problem, RequirePermission, RequiredPermission, SecurityState, Tenant,
    TrustedProxies,
};
