//! The seven built-in roles and their permission matrix (ROLES.md).

use std::fmt;

use security_core::{BUILTIN_ROLES, Permission, RoleName};

/// One of the seven built-in roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuiltinRole {
    /// Every permission, in every tenant (crossing tenants is further
    /// limited by [`SuperAdminScope`](crate::SuperAdminScope)).
    SuperAdmin,
    /// Every permission in its own tenant.
    Admin,
    /// Runs a branch: most permissions, no deletes, no settings changes.
    Manager,
    /// Handles accounts, transactions and loans.
    Officer,
    /// Reads and opens accounts for customers.
    CustomerService,
    /// Read-only audit access.
    Auditor,
    /// An end customer: only what it owns.
    Customer,
}

impl BuiltinRole {
    /// Every built-in role, in the column order of the matrix.
    pub const ALL: [Self; 7] = [
        Self::SuperAdmin,
        Self::Admin,
        Self::Manager,
        Self::Officer,
        Self::CustomerService,
        Self::Auditor,
        Self::Customer,
    ];

    /// The role's name (one of [`BUILTIN_ROLES`]).
    pub const fn name(self) -> &'static str {
        BUILTIN_ROLES[self as usize]
    }

    /// The built-in role with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The role's name as a [`RoleName`].
    pub fn role_name(self) -> RoleName {
        // BUILTIN_ROLES are valid role names (checked by a test); fall back
        // to an impossible-to-match name rather than panicking.
        RoleName::new(self.name()).unwrap_or_else(|_| unreachable_role_name())
    }

    /// Whether the role grants every permission (built-in or tenant-defined).
    pub const fn grants_everything(self) -> bool {
        matches!(self, Self::SuperAdmin | Self::Admin)
    }

    /// Whether the role may act on other tenants' resources.
    pub const fn crosses_tenants(self) -> bool {
        matches!(self, Self::SuperAdmin)
    }

    /// How the role holds `permission` according to the matrix (`None`: not
    /// at all). `super_admin` and `admin` hold every permission, including
    /// ones a tenant defined.
    pub fn grant(self, permission: &Permission) -> Option<Grant> {
        if self.grants_everything() {
            return Some(Grant::Always);
        }
        let row = MATRIX.iter().find(|(p, _)| *p == permission.as_str())?;
        row.1[self as usize].grant()
    }
}

#[allow(
    clippy::unwrap_used,
    reason = "only reached if a constant role name were invalid, which a test rules out"
)]
fn unreachable_role_name() -> RoleName {
    RoleName::new("invalid").unwrap()
}

impl fmt::Display for BuiltinRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a role holds a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    /// On every resource of the role holder's tenant.
    Always,
    /// Only on resources the subject owns (the [`OWNER`](crate::OWNER)
    /// condition).
    Own,
}

/// One cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Granted (`Y`).
    Yes,
    /// Granted on owned resources only (`own`).
    Own,
    /// Not granted (`.`).
    No,
}

impl Cell {
    /// The grant this cell gives.
    pub const fn grant(self) -> Option<Grant> {
        match self {
            Self::Yes => Some(Grant::Always),
            Self::Own => Some(Grant::Own),
            Self::No => None,
        }
    }
}

use Cell::{No as N, Own as O, Yes as Y};

/// The built-in permission matrix of ROLES.md: one row per permission, one
/// column per [`BuiltinRole`] in [`BuiltinRole::ALL`] order.
pub const MATRIX: [(&str, [Cell; 7]); 22] = [
    //                      super  admin  mgr  officer  cs  auditor  customer
    ("user:create", [Y, Y, Y, N, N, N, N]),
    ("user:read", [Y, Y, Y, Y, Y, Y, O]),
    ("user:update", [Y, Y, Y, N, N, N, O]),
    ("user:delete", [Y, Y, N, N, N, N, N]),
    ("account:create", [Y, Y, Y, Y, Y, N, N]),
    ("account:read", [Y, Y, Y, Y, Y, Y, O]),
    ("account:update", [Y, Y, Y, Y, N, N, N]),
    ("account:delete", [Y, Y, N, N, N, N, N]),
    ("account:approve", [Y, Y, Y, N, N, N, N]),
    ("transaction:create", [Y, Y, Y, Y, N, N, O]),
    ("transaction:read", [Y, Y, Y, Y, Y, Y, O]),
    ("transaction:approve", [Y, Y, Y, Y, N, N, N]),
    ("transaction:reverse", [Y, Y, Y, N, N, N, N]),
    ("loan:create", [Y, Y, Y, Y, N, N, N]),
    ("loan:read", [Y, Y, Y, Y, Y, Y, O]),
    ("loan:update", [Y, Y, Y, Y, N, N, N]),
    ("loan:approve", [Y, Y, Y, N, N, N, N]),
    ("loan:disburse", [Y, Y, Y, N, N, N, N]),
    ("report:view", [Y, Y, Y, Y, N, Y, N]),
    ("report:export", [Y, Y, Y, N, N, Y, N]),
    ("settings:view", [Y, Y, Y, N, N, Y, N]),
    ("settings:update", [Y, Y, N, N, N, N, N]),
];

/// The built-in permissions, in matrix order.
pub fn builtin_permissions() -> impl Iterator<Item = Permission> {
    MATRIX.iter().filter_map(|(p, _)| Permission::parse(p).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_core_constant_and_are_valid() {
        for (i, role) in BuiltinRole::ALL.into_iter().enumerate() {
            assert_eq!(role.name(), BUILTIN_ROLES[i]);
            assert_eq!(BuiltinRole::from_name(role.name()), Some(role));
            assert_eq!(role.role_name().as_str(), role.name());
            assert!(role.role_name().is_builtin());
        }
        assert_eq!(BuiltinRole::from_name("teller"), None);
    }

    #[test]
    fn every_matrix_permission_parses_and_is_unique() {
        let parsed: Vec<Permission> = builtin_permissions().collect();
        assert_eq!(parsed.len(), MATRIX.len());
        let unique: std::collections::BTreeSet<_> = parsed.iter().collect();
        assert_eq!(unique.len(), MATRIX.len());
    }

    #[test]
    fn super_admin_and_admin_hold_everything_even_custom_permissions() {
        let custom = Permission::parse("vault:open").unwrap();
        assert_eq!(BuiltinRole::Admin.grant(&custom), Some(Grant::Always));
        assert_eq!(BuiltinRole::SuperAdmin.grant(&custom), Some(Grant::Always));
        assert_eq!(BuiltinRole::Manager.grant(&custom), None);
    }
}
