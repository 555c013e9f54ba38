//! The Policy: publish/subscribe subject permissions and resource limits,
//! versioned. Users hold policies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, CommandContext};
use crate::error::{DomainError, validate_name};
use crate::ids::PolicyId;
use crate::impl_domain_event;
use crate::limits;
use crate::permissions::{Permissions, ResourceLimits};

/// Commands of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyCommand {
    /// Creates the policy (version 1).
    CreatePolicy {
        /// The new policy's id.
        policy_id: PolicyId,
        /// Its name.
        name: String,
        /// Free text.
        description: String,
        /// Subject permissions (patterns validated when built).
        permissions: Permissions,
        /// Resource limits.
        limits: ResourceLimits,
    },
    /// Replaces the permissions; increments the version.
    UpdatePermissions {
        /// The new permissions.
        new_permissions: Permissions,
    },
    /// Replaces the limits; increments the version.
    UpdateLimits {
        /// The new limits.
        new_limits: ResourceLimits,
    },
}

/// Events of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyEvent {
    /// The policy was created at version 1.
    PolicyCreated {
        /// Its id.
        policy_id: PolicyId,
        /// Its name.
        name: String,
        /// Free text.
        #[serde(default)]
        description: String,
        /// Its permissions.
        permissions: Permissions,
        /// Its limits.
        limits: ResourceLimits,
        /// When.
        created_at: DateTime<Utc>,
    },
    /// The permissions changed.
    PermissionsUpdated {
        /// The policy.
        policy_id: PolicyId,
        /// Before.
        old_permissions: Permissions,
        /// After.
        new_permissions: Permissions,
        /// The policy's version after the change.
        version: u32,
        /// When.
        updated_at: DateTime<Utc>,
    },
    /// The limits changed.
    LimitsUpdated {
        /// The policy.
        policy_id: PolicyId,
        /// Before.
        old_limits: ResourceLimits,
        /// After.
        new_limits: ResourceLimits,
        /// The policy's version after the change.
        version: u32,
        /// When.
        updated_at: DateTime<Utc>,
    },
}

impl_domain_event!(
    PolicyEvent,
    version = 1,
    types = [PolicyCreated, PermissionsUpdated, LimitsUpdated]
);

/// The policy's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Its id (`None` before creation).
    pub id: Option<PolicyId>,
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Subject permissions.
    pub permissions: Permissions,
    /// Resource limits.
    pub limits: ResourceLimits,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// 1 at creation, +1 on every update.
    pub version: u32,
    /// When an update last took something away (permissions not a plain
    /// widening, or tighter limits): credentials issued with the policy
    /// before then grant too much (see [`Permissions::covers`]).
    pub narrowed_at: Option<DateTime<Utc>>,
}

impl Policy {
    /// Whether the policy grants anything at `now` (not past `expires_at`).
    pub fn is_in_force(&self, now: DateTime<Utc>) -> bool {
        self.id.is_some() && self.limits.expires_at.is_none_or(|e| now < e)
    }
}

impl Aggregate for Policy {
    const TYPE: &'static str = "policy";
    type Command = PolicyCommand;
    type Event = PolicyEvent;
    type Error = DomainError;

    fn handle(
        &self,
        command: &PolicyCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<PolicyEvent>, DomainError> {
        match command {
            PolicyCommand::CreatePolicy {
                policy_id,
                name,
                description,
                permissions,
                limits,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists { kind: "policy" });
                }
                validate_name("name", name)?;
                limits::check_description("description", description)?;
                limits::check_permissions("permissions", permissions)?;
                limits::check_permissions("limits", limits)?;
                Ok(vec![PolicyEvent::PolicyCreated {
                    policy_id: *policy_id,
                    name: name.clone(),
                    description: description.clone(),
                    permissions: permissions.clone(),
                    limits: limits.clone(),
                    created_at: ctx.now,
                }])
            }
            PolicyCommand::UpdatePermissions { new_permissions } => {
                let policy_id = self.id.ok_or(DomainError::NotFound { kind: "policy" })?;
                limits::check_permissions("new_permissions", new_permissions)?;
                if *new_permissions == self.permissions {
                    return Ok(Vec::new());
                }
                Ok(vec![PolicyEvent::PermissionsUpdated {
                    policy_id,
                    old_permissions: self.permissions.clone(),
                    new_permissions: new_permissions.clone(),
                    version: self.version + 1,
                    updated_at: ctx.now,
                }])
            }
            PolicyCommand::UpdateLimits { new_limits } => {
                let policy_id = self.id.ok_or(DomainError::NotFound { kind: "policy" })?;
                limits::check_permissions("new_limits", new_limits)?;
                if *new_limits == self.limits {
                    return Ok(Vec::new());
                }
                Ok(vec![PolicyEvent::LimitsUpdated {
                    policy_id,
                    old_limits: self.limits.clone(),
                    new_limits: new_limits.clone(),
                    version: self.version + 1,
                    updated_at: ctx.now,
                }])
            }
        }
    }

    fn apply(&mut self, event: &PolicyEvent) {
        match event {
            PolicyEvent::PolicyCreated {
                policy_id,
                name,
                description,
                permissions,
                limits,
                created_at,
            } => {
                self.id = Some(*policy_id);
                self.name.clone_from(name);
                self.description.clone_from(description);
                self.permissions = permissions.clone();
                self.limits = limits.clone();
                self.created_at = Some(*created_at);
                self.updated_at = Some(*created_at);
                self.version = 1;
            }
            PolicyEvent::PermissionsUpdated {
                new_permissions,
                version,
                updated_at,
                ..
            } => {
                if !new_permissions.covers(&self.permissions) {
                    self.narrowed_at = Some(*updated_at);
                }
                self.permissions = new_permissions.clone();
                self.version = *version;
                self.updated_at = Some(*updated_at);
            }
            PolicyEvent::LimitsUpdated {
                new_limits,
                version,
                updated_at,
                ..
            } => {
                if !new_limits.covers(&self.limits) {
                    self.narrowed_at = Some(*updated_at);
                }
                self.limits = new_limits.clone();
                self.version = *version;
                self.updated_at = Some(*updated_at);
            }
        }
    }
}
