//! Conditions: attribute-based rules that applications register.
//!
//! A condition is evaluated against an [`AccessRequest`] (the principal, the
//! permission, the resource, and what the read model knows of the user).
//! It is used in two ways:
//! - a **conditional grant**: a role holds a permission only when the
//!   condition holds (the matrix's `own` cells are conditional grants with
//!   [`OWNER`]);
//! - a **guard**: every grant of a permission additionally requires the
//!   condition (e.g. an approval limit).
//!
//! An evaluation error is a deny, never an allow.

use std::fmt;
use std::sync::Arc;

use security_core::{Permission, RoleName, TenantId, UserId};

use crate::decision::{Principal, Resource};

/// The name of the built-in ownership condition: the resource's owner is
/// the principal, in the principal's tenant.
pub const OWNER: &str = "owner";

/// What a condition sees.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// What it wants to do.
    pub permission: &'a Permission,
    /// What it wants to do it to.
    pub resource: &'a Resource,
    /// The user's roles, as the read model has them.
    pub roles: &'a [Arc<RoleName>],
}

impl AccessRequest<'_> {
    /// Whether the principal owns the resource (same tenant, owner is the
    /// principal).
    pub fn principal_owns_resource(&self) -> bool {
        self.resource.tenant_id == self.principal.tenant_id
            && self.resource.owner == Some(self.principal.user_id)
    }

    /// The principal's tenant.
    pub fn tenant_id(&self) -> TenantId {
        self.principal.tenant_id
    }

    /// The principal's user.
    pub fn user_id(&self) -> UserId {
        self.principal.user_id
    }
}

/// A condition could not be evaluated. The decision is a deny; the message
/// goes to the logs, never into the decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("condition could not be evaluated: {message}")]
pub struct ConditionError {
    message: String,
}

impl ConditionError {
    /// An error with a message for the logs (no secrets, no user input).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// An attribute-based rule.
pub trait Condition: fmt::Debug + Send + Sync {
    /// Whether the condition holds for this request.
    fn evaluate(&self, request: &AccessRequest<'_>) -> Result<bool, ConditionError>;
}

/// The built-in ownership condition ([`OWNER`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Owner;

impl Condition for Owner {
    fn evaluate(&self, request: &AccessRequest<'_>) -> Result<bool, ConditionError> {
        Ok(request.principal_owns_resource())
    }
}

/// A condition made from a closure.
///
/// ```
/// use security_authz::{AccessRequest, Condition, ConditionError, FnCondition};
///
/// // Approve only amounts up to the principal's approval limit.
/// let within_limit = FnCondition::new(|req: &AccessRequest<'_>| {
///     let amount = req.resource.attributes.get("amount").and_then(|v| v.as_u64());
///     let limit = req.principal.attributes.get("approval_limit").and_then(|v| v.as_u64());
///     match (amount, limit) {
///         (Some(a), Some(l)) => Ok(a <= l),
///         _ => Err(ConditionError::new("amount or approval_limit missing")),
///     }
/// });
/// # let _ = within_limit;
/// ```
pub struct FnCondition<F>(F);

impl<F> FnCondition<F>
where
    F: Fn(&AccessRequest<'_>) -> Result<bool, ConditionError> + Send + Sync,
{
    /// Wraps a closure.
    pub fn new(f: F) -> Self {
        Self(f)
    }
}

impl<F> fmt::Debug for FnCondition<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnCondition")
    }
}

impl<F> Condition for FnCondition<F>
where
    F: Fn(&AccessRequest<'_>) -> Result<bool, ConditionError> + Send + Sync,
{
    fn evaluate(&self, request: &AccessRequest<'_>) -> Result<bool, ConditionError> {
        (self.0)(request)
    }
}

/// A registered condition and its name.
#[derive(Debug, Clone)]
pub(crate) struct NamedCondition {
    pub(crate) name: Arc<str>,
    pub(crate) condition: Arc<dyn Condition>,
}
