//! Extractors for validated access tokens and permission requirements.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};

use security_authz::{Principal, Resource, bearer_token};
use security_core::{AccessClaims, Permission};

use super::problem::Problem;
use super::state::SecurityState;

/// The claims of a valid access token from `Authorization: Bearer …`.
///
/// Validation is the authentication service's async one
/// (`validate_access_token`): signature, algorithm, times, issuer,
/// audience, revocation, and signing keys of other replicas looked up in
/// the key store. Under a route that names a tenant (path or host), the
/// token must be that tenant's. Refusals are `401` problems with
/// `WWW-Authenticate: Bearer` (no token) or `Bearer
/// error="invalid_token"`. A request validated once (e.g. by the
/// rate-limit layer) is not validated again.
#[derive(Debug, Clone)]
pub struct Authenticated(pub AccessClaims);

impl Deref for Authenticated {
    type Target = AccessClaims;

    fn deref(&self) -> &AccessClaims {
        &self.0
    }
}

/// The bearer token of a request: `Ok(None)` without an `Authorization`
/// header, an error for one that is not `Bearer <token>`.
pub(crate) fn bearer(parts: &Parts) -> Result<Option<SecretString>, Problem> {
    let Some(header) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = header.to_str().map_err(|_| Problem::unauthenticated())?;
    bearer_token(value)
        .map(Some)
        .map_err(|_| Problem::unauthenticated())
}

/// Validates the request's bearer token once and remembers the claims in
/// the request's extensions.
pub(crate) async fn authenticate(
    parts: &mut Parts,
    state: &SecurityState,
) -> Result<AccessClaims, Problem> {
    if let Some(Authenticated(claims)) = parts.extensions.get::<Authenticated>() {
        return Ok(claims.clone());
    }
    let token = bearer(parts)?.ok_or_else(Problem::unauthenticated)?;
    let claims = state
        .authn()
        .validate_access_token(token.expose_secret())
        .await?;
    if let Some(tenant) = state.tenants().find(parts).await?
        && tenant != claims.tenant_id
    {
        return Err(Problem::invalid_token(
            "the token was issued for another tenant",
        ));
    }
    parts.extensions.insert(Authenticated(claims.clone()));
    Ok(claims)
}

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    SecurityState: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = SecurityState::from_ref(state);
        authenticate(parts, &state).await.map(Authenticated)
    }
}

/// A permission a route requires, named by a type:
///
/// ```
/// use security::axum::RequiredPermission;
///
/// struct ApproveLoans;
/// impl RequiredPermission for ApproveLoans {
///     const PERMISSION: &'static str = "loan:approve";
/// }
/// // async fn approve(RequirePermission(claims, ..): RequirePermission<ApproveLoans>) { … }
/// ```
pub trait RequiredPermission: Send + Sync + 'static {
    /// The permission, `resource:action` (e.g. `loan:approve`).
    const PERMISSION: &'static str;
}

/// The claims of a valid access token whose holder has the permission
/// `P` in its tenant, as the live authorizer decides it now (roles as they
/// are, not as the token says; the denial is audited). `401` like
/// [`Authenticated`]; `403` problem with `WWW-Authenticate: Bearer
/// error="insufficient_scope"` when denied.
pub struct RequirePermission<P>(pub AccessClaims, pub PhantomData<P>);

impl<P> std::fmt::Debug for RequirePermission<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequirePermission").field(&self.0).finish()
    }
}

impl<P> Deref for RequirePermission<P> {
    type Target = AccessClaims;

    fn deref(&self) -> &AccessClaims {
        &self.0
    }
}

impl<S, P> FromRequestParts<S> for RequirePermission<P>
where
    S: Send + Sync,
    SecurityState: FromRef<S>,
    P: RequiredPermission,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = SecurityState::from_ref(state);
        let claims = authenticate(parts, &state).await?;
        let permission: Permission = P::PERMISSION
            .parse()
            .map_err(|e: security_core::InvalidPermission| Problem::internal(&e))?;
        let decision = state.authz().authorize(
            &Principal::from_claims(&claims),
            &permission,
            &Resource::in_tenant(claims.tenant_id),
        );
        if decision.is_allowed() {
            Ok(Self(claims, PhantomData))
        } else {
            Err(Problem::forbidden(P::PERMISSION))
        }
    }
}
