//! Checking a permission for the holder of validated claims, without a
//! particular resource (a request handler's "may this caller use this
//! endpoint at all?").

use std::fmt;
use std::sync::Arc;

use security_core::{AccessClaims, Permission};

use crate::audit::AuditedRequest;
use crate::decision::{Decision, DenyReason, Principal, Resource, Rule};
use crate::matrix::{BuiltinRole, Grant};
use crate::service::AuthorizationService;

/// Decides whether the holder of validated claims may use a permission on
/// its own tenant.
pub trait ClaimsPolicy: fmt::Debug + Send + Sync {
    /// The decision.
    fn check(&self, claims: &AccessClaims, permission: &Permission) -> Decision;

    /// The decision for an HTTP request. A policy that records its
    /// decisions records a denial with the request's method, path and
    /// client address; the default decides like [`check`](Self::check).
    fn check_request(
        &self,
        claims: &AccessClaims,
        permission: &Permission,
        request: &AuditedRequest,
    ) -> Decision {
        let _ = request;
        self.check(claims, permission)
    }
}

/// The live read model decides (roles as they are now, not as the token
/// says), and denials are recorded.
impl ClaimsPolicy for AuthorizationService {
    fn check(&self, claims: &AccessClaims, permission: &Permission) -> Decision {
        self.authorize(
            &Principal::from_claims(claims),
            permission,
            &Resource::in_tenant(claims.tenant_id),
        )
    }

    fn check_request(
        &self,
        claims: &AccessClaims,
        permission: &Permission,
        request: &AuditedRequest,
    ) -> Decision {
        self.authorize_request(
            &Principal::from_claims(claims),
            permission,
            &Resource::in_tenant(claims.tenant_id),
            request,
        )
    }
}

/// The roles the token carries, checked against the built-in matrix: for
/// services without a read model. Only unconditional cells grant (an `own`
/// cell needs a resource to own); custom roles grant nothing. A role
/// removed after the token was issued keeps granting until the token
/// expires: prefer [`AuthorizationService`] where there is a read model.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenRoles;

impl ClaimsPolicy for TokenRoles {
    fn check(&self, claims: &AccessClaims, permission: &Permission) -> Decision {
        let mut refusal = DenyReason::NotGranted;
        let mut roles: Vec<BuiltinRole> = claims
            .roles
            .iter()
            .filter_map(|r| BuiltinRole::from_name(r.as_str()))
            .collect();
        roles.sort_unstable();
        for role in roles {
            match role.grant(permission) {
                Some(Grant::Always) => {
                    return Decision::Allow {
                        rule: Rule::Role {
                            role: Arc::new(role.role_name()),
                        },
                    };
                }
                Some(Grant::Own) => {
                    refusal = DenyReason::ConditionNotMet {
                        role: Arc::new(role.role_name()),
                        condition: Arc::from(crate::OWNER),
                    };
                }
                None => {}
            }
        }
        Decision::Deny { reason: refusal }
    }
}
