//! Roles (RBAC): names that map to `resource:action` permissions.
//!
//! Seven roles are built in ([`BUILTIN_ROLES`]; their matrix lives in
//! `security-authz`). A tenant may define more with the [`Role`] aggregate.
//! A custom role's id is derived from its tenant and name
//! ([`RoleId::for_name`]), so that two roles of one tenant can never share a
//! name: the second definition finds the stream taken.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::{Aggregate, CommandContext};
use crate::error::DomainError;
use crate::ids::{RoleId, TenantId};
use crate::impl_domain_event;
use crate::limits;

/// The names of the built-in roles; tenants cannot redefine them.
pub const BUILTIN_ROLES: [&str; 7] = [
    "super_admin",
    "admin",
    "manager",
    "officer",
    "customer_service",
    "auditor",
    "customer",
];

fn valid_token(token: &str, extra: &[char]) -> bool {
    !token.is_empty()
        && token.len() <= 64
        && token
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || extra.contains(&c))
}

/// A permission, `resource:action` (e.g. `loan:approve`): lowercase ASCII
/// letters, digits, `_` and `-`, at most 64 bytes each side.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Permission {
    text: String,
    colon: usize,
}

/// A permission string was malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid permission: expected resource:action in lowercase letters, digits, '_' or '-'")]
pub struct InvalidPermission;

impl Permission {
    /// Parses `resource:action`.
    pub fn parse(text: &str) -> Result<Self, InvalidPermission> {
        let (resource, action) = text.split_once(':').ok_or(InvalidPermission)?;
        if !valid_token(resource, &['-']) || !valid_token(action, &['-']) {
            return Err(InvalidPermission);
        }
        Ok(Self {
            text: text.to_owned(),
            colon: resource.len(),
        })
    }

    /// Builds one from its two halves.
    pub fn new(resource: &str, action: &str) -> Result<Self, InvalidPermission> {
        Self::parse(&format!("{resource}:{action}"))
    }

    /// The resource half.
    pub fn resource(&self) -> &str {
        &self.text[..self.colon]
    }

    /// The action half.
    pub fn action(&self) -> &str {
        &self.text[self.colon + 1..]
    }

    /// The whole `resource:action`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for Permission {
    type Error = InvalidPermission;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Permission> for String {
    fn from(p: Permission) -> Self {
        p.text
    }
}

impl std::str::FromStr for Permission {
    type Err = InvalidPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({})", self.text)
    }
}

/// A role name: lowercase ASCII letters, digits, `_`, `-` and `.`, 1 to 64
/// bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleName(String);

/// A role name was malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid role name: expected 1 to 64 lowercase letters, digits, '_', '-' or '.'")]
pub struct InvalidRoleName;

impl RoleName {
    /// Validates a role name.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidRoleName> {
        let name = name.into();
        if valid_token(&name, &['-', '.']) {
            Ok(Self(name))
        } else {
            Err(InvalidRoleName)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this names a built-in role.
    pub fn is_builtin(&self) -> bool {
        BUILTIN_ROLES.contains(&self.0.as_str())
    }
}

impl TryFrom<String> for RoleName {
    type Error = InvalidRoleName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

impl From<RoleName> for String {
    fn from(n: RoleName) -> Self {
        n.0
    }
}

impl std::str::FromStr for RoleName {
    type Err = InvalidRoleName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoleName({})", self.0)
    }
}

impl RoleId {
    /// The id of the custom role `name` in `tenant` (UUID v5): the same
    /// name always maps to the same stream, so names are unique per tenant.
    pub fn for_name(tenant: TenantId, name: &RoleName) -> Self {
        Self::from_uuid(Uuid::new_v5(&tenant.as_uuid(), name.as_str().as_bytes()))
    }
}

/// Commands of a custom role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleCommand {
    /// Defines the role (or defines a retired one again).
    DefineRole {
        /// Its name (not a built-in one).
        name: RoleName,
        /// Free text.
        description: String,
        /// What it grants.
        permissions: BTreeSet<Permission>,
    },
    /// Replaces what it grants.
    UpdateRolePermissions {
        /// The new permissions.
        permissions: BTreeSet<Permission>,
    },
    /// Retires the role: it grants nothing and cannot be assigned.
    RetireRole,
}

/// Events of a custom role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names, reason = "the domain names these events")]
pub enum RoleEvent {
    /// The role was defined.
    RoleDefined {
        /// Its id.
        role_id: RoleId,
        /// Its name.
        name: RoleName,
        /// Free text.
        #[serde(default)]
        description: String,
        /// What it grants.
        permissions: BTreeSet<Permission>,
        /// When.
        defined_at: DateTime<Utc>,
    },
    /// What it grants changed.
    RolePermissionsUpdated {
        /// The role.
        role_id: RoleId,
        /// Before.
        old_permissions: BTreeSet<Permission>,
        /// After.
        new_permissions: BTreeSet<Permission>,
        /// The role's version after the change.
        version: u32,
        /// When.
        updated_at: DateTime<Utc>,
    },
    /// The role was retired.
    RoleRetired {
        /// The role.
        role_id: RoleId,
        /// When.
        retired_at: DateTime<Utc>,
    },
}

impl_domain_event!(
    RoleEvent,
    version = 1,
    types = [RoleDefined, RolePermissionsUpdated, RoleRetired]
);

/// A custom role's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Role {
    /// Its id (`None` before definition).
    pub id: Option<RoleId>,
    /// Its name.
    pub name: Option<RoleName>,
    /// Free text.
    pub description: String,
    /// What it grants.
    pub permissions: BTreeSet<Permission>,
    /// 1 at definition, +1 on every change.
    pub version: u32,
    /// Whether it was retired.
    pub retired: bool,
}

impl Role {
    /// Whether the role is defined and not retired.
    pub fn is_defined(&self) -> bool {
        self.id.is_some() && !self.retired
    }
}

impl Aggregate for Role {
    const TYPE: &'static str = "role";
    type Command = RoleCommand;
    type Event = RoleEvent;
    type Error = DomainError;

    fn handle(
        &self,
        command: &RoleCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<RoleEvent>, DomainError> {
        match command {
            RoleCommand::DefineRole {
                name,
                description,
                permissions,
            } => {
                if name.is_builtin() {
                    return Err(DomainError::RoleNameReserved(name.to_string()));
                }
                if self.is_defined() {
                    return Err(DomainError::AlreadyExists { kind: "role" });
                }
                limits::check_description("description", description)?;
                limits::check_permissions("permissions", permissions)?;
                Ok(vec![RoleEvent::RoleDefined {
                    role_id: RoleId::for_name(ctx.tenant_id, name),
                    name: name.clone(),
                    description: description.clone(),
                    permissions: permissions.clone(),
                    defined_at: ctx.now,
                }])
            }
            RoleCommand::UpdateRolePermissions { permissions } => {
                let role_id = self.live_id()?;
                limits::check_permissions("permissions", permissions)?;
                if *permissions == self.permissions {
                    return Ok(Vec::new());
                }
                Ok(vec![RoleEvent::RolePermissionsUpdated {
                    role_id,
                    old_permissions: self.permissions.clone(),
                    new_permissions: permissions.clone(),
                    version: self.version + 1,
                    updated_at: ctx.now,
                }])
            }
            RoleCommand::RetireRole => {
                let role_id = self.live_id()?;
                Ok(vec![RoleEvent::RoleRetired {
                    role_id,
                    retired_at: ctx.now,
                }])
            }
        }
    }

    fn apply(&mut self, event: &RoleEvent) {
        match event {
            RoleEvent::RoleDefined {
                role_id,
                name,
                description,
                permissions,
                ..
            } => {
                self.id = Some(*role_id);
                self.name = Some(name.clone());
                self.description.clone_from(description);
                self.permissions.clone_from(permissions);
                self.version += 1;
                self.retired = false;
            }
            RoleEvent::RolePermissionsUpdated {
                new_permissions,
                version,
                ..
            } => {
                self.permissions.clone_from(new_permissions);
                self.version = *version;
            }
            RoleEvent::RoleRetired { .. } => {
                self.retired = true;
                self.version += 1;
            }
        }
    }
}

impl Role {
    fn live_id(&self) -> Result<RoleId, DomainError> {
        match self.id {
            Some(id) if !self.retired => Ok(id),
            _ => Err(DomainError::NotFound { kind: "role" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_parse() {
        let p = Permission::parse("loan:approve").unwrap();
        assert_eq!((p.resource(), p.action()), ("loan", "approve"));
        for bad in [
            "loan",
            "Loan:approve",
            ":x",
            "x:",
            "a:b:c",
            "a b:c",
            "loan:*",
        ] {
            assert!(Permission::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"loan:approve\"");
        assert!(serde_json::from_str::<Permission>("\"bad\"").is_err());
    }

    #[test]
    fn role_names() {
        assert!(RoleName::new("teller.senior").unwrap().as_str() == "teller.senior");
        assert!(RoleName::new("Admin").is_err());
        assert!(RoleName::new("admin").unwrap().is_builtin());
        let t = TenantId::from_uuid(Uuid::from_u128(9));
        let n = RoleName::new("teller").unwrap();
        assert_eq!(RoleId::for_name(t, &n), RoleId::for_name(t, &n));
        assert_ne!(
            RoleId::for_name(t, &n),
            RoleId::for_name(TenantId::SYSTEM, &n)
        );
    }
}
