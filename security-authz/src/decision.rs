//! What a check is asked (principal, action, resource) and what it answers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use security_core::{AccessClaims, RoleName, TenantId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::trie::MatchedPattern;

/// Free-form attributes of a principal or a resource, for conditions.
pub type Attributes = BTreeMap<String, Value>;

/// The name of a condition (e.g. [`OWNER`](crate::OWNER)).
pub type ConditionName = Arc<str>;

/// Who asks: a user of a tenant, as a validated token names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The tenant the principal belongs to (checked against the read model).
    pub tenant_id: TenantId,
    /// The user.
    pub user_id: UserId,
    /// Attributes for conditions (e.g. a department, an approval limit).
    pub attributes: Attributes,
}

impl Principal {
    /// A principal without attributes.
    pub fn new(tenant_id: TenantId, user_id: UserId) -> Self {
        Self {
            tenant_id,
            user_id,
            attributes: Attributes::new(),
        }
    }

    /// The principal a validated token names. Its roles and permissions are
    /// not taken from the token: the authorizer uses the live read model, so
    /// a role removed after the token was issued no longer grants anything.
    pub fn from_claims(claims: &AccessClaims) -> Self {
        Self::new(claims.tenant_id, claims.user_id)
    }

    /// Adds an attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// What is acted on: a resource of a tenant, maybe owned by a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The tenant the resource belongs to.
    pub tenant_id: TenantId,
    /// The resource's id, for the audit trail (never a secret).
    pub id: Option<String>,
    /// The user that owns it, if any (for the `own` cells).
    pub owner: Option<UserId>,
    /// Attributes for conditions (e.g. an amount, a branch).
    pub attributes: Attributes,
}

impl Resource {
    /// A resource of a tenant, with no owner and no attributes (e.g. "the
    /// tenant's loans" for `loan:create`).
    pub fn in_tenant(tenant_id: TenantId) -> Self {
        Self {
            tenant_id,
            id: None,
            owner: None,
            attributes: Attributes::new(),
        }
    }

    /// Sets the resource's id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the resource's owner.
    pub fn owned_by(mut self, owner: UserId) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Adds an attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// The rule that granted a permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// A role grants the permission on every resource of its tenant (a `Y`
    /// cell of the matrix, or a permission of a custom role); for
    /// `super_admin`, of every tenant.
    Role {
        /// The role.
        role: Arc<RoleName>,
    },
    /// A role grants the permission when a condition holds (an `own` cell of
    /// the matrix uses [`OWNER`](crate::OWNER)).
    RoleWhen {
        /// The role.
        role: Arc<RoleName>,
        /// The condition that held.
        condition: ConditionName,
    },
    /// A subject pattern allowed a publish or a subscription.
    Subject {
        /// The allow pattern.
        pattern: MatchedPattern,
    },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Role { role } => write!(f, "role {role}"),
            Self::RoleWhen { role, condition } => write!(f, "role {role} when {condition}"),
            Self::Subject { pattern } => write!(f, "subject pattern {pattern}"),
        }
    }
}

/// Why a check was denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DenyReason {
    /// The read model knows no such user in the principal's tenant (never
    /// created, created in another tenant, not caught up, or the read model
    /// is empty).
    UnknownPrincipal,
    /// The user is locked or expired.
    PrincipalInactive,
    /// The user's account is suspended, expired or unknown.
    AccountInactive,
    /// The resource belongs to another tenant and no role of the principal
    /// may cross tenants.
    CrossTenant,
    /// No role of the principal grants the permission (default deny).
    NotGranted,
    /// A role grants the permission only under a condition, and it did not
    /// hold (e.g. the resource is not the principal's own).
    ConditionNotMet {
        /// The role.
        role: Arc<RoleName>,
        /// The condition.
        condition: ConditionName,
    },
    /// A guard the application requires for this permission refused.
    GuardRefused {
        /// The guard's condition.
        condition: ConditionName,
    },
    /// A condition could not be evaluated (an error is a deny).
    ConditionFailed {
        /// The condition.
        condition: ConditionName,
    },
    /// A deny subject pattern covers the subject (deny wins).
    SubjectDenied {
        /// The deny pattern.
        pattern: MatchedPattern,
    },
    /// No allow subject pattern covers the subject (default deny).
    SubjectNotAllowed,
    /// The subject or queue group breaks the NATS grammar.
    InvalidSubject,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownPrincipal => f.write_str("unknown principal"),
            Self::PrincipalInactive => f.write_str("principal is locked or expired"),
            Self::AccountInactive => {
                f.write_str("principal's account is suspended, expired or unknown")
            }
            Self::CrossTenant => f.write_str("resource belongs to another tenant"),
            Self::NotGranted => f.write_str("no role grants the permission"),
            Self::ConditionNotMet { role, condition } => {
                write!(f, "role {role} grants it only when {condition}")
            }
            Self::GuardRefused { condition } => write!(f, "guard {condition} refused"),
            Self::ConditionFailed { condition } => {
                write!(f, "condition {condition} could not be evaluated")
            }
            Self::SubjectDenied { pattern } => write!(f, "subject denied by {pattern}"),
            Self::SubjectNotAllowed => f.write_str("no allow pattern covers the subject"),
            Self::InvalidSubject => f.write_str("subject or queue group is invalid"),
        }
    }
}

/// The answer to "may this principal do this to that?".
///
/// Default deny: a decision is `Allow` only when a rule grants it and every
/// check passed; anything that goes wrong while deciding is a `Deny` with a
/// reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
#[must_use]
pub enum Decision {
    /// Allowed, by this rule.
    Allow {
        /// The rule that granted it.
        rule: Rule,
    },
    /// Denied, for this reason.
    Deny {
        /// Why.
        reason: DenyReason,
    },
}

impl Decision {
    /// Whether the decision allows the action.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }

    /// The rule that granted it, if allowed.
    pub fn rule(&self) -> Option<&Rule> {
        match self {
            Self::Allow { rule } => Some(rule),
            Self::Deny { .. } => None,
        }
    }

    /// Why it was denied, if denied.
    pub fn deny_reason(&self) -> Option<&DenyReason> {
        match self {
            Self::Allow { .. } => None,
            Self::Deny { reason } => Some(reason),
        }
    }

    pub(crate) const fn deny(reason: DenyReason) -> Self {
        Self::Deny { reason }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allow { rule } => write!(f, "allow ({rule})"),
            Self::Deny { reason } => write!(f, "deny ({reason})"),
        }
    }
}
