//! The immutable snapshot readers check against.
//!
//! A snapshot is built by the projection's writer side
//! ([`ReadModel`](crate::model::ReadModel)) after each batch and swapped in
//! atomically; readers never see a half-applied batch and never wait.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use fixedbitset::FixedBitSet;
use security_core::{OperatorId, Permission, PolicyId, RoleName, TenantId, UserId};

use crate::cowmap::CowMap;
use crate::decision::DenyReason;
use crate::limits::EffectiveLimits;
use crate::matrix::{BuiltinRole, Grant, MATRIX};
use crate::trie::{CompiledPermissions, Parts};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Interns permissions to bit indexes. The built-in ones take 0..22 in
/// matrix order; tenant-defined ones are appended as they appear. Indexes
/// never change, so a role compiled against an older catalog stays valid.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    index: FastMap<Box<str>, u32>,
}

impl Catalog {
    pub(crate) fn builtin() -> Self {
        let mut catalog = Self {
            index: FastMap::default(),
        };
        for (p, _) in &MATRIX {
            catalog.insert(p);
        }
        catalog
    }

    pub(crate) fn get(&self, permission: &str) -> Option<u32> {
        self.index.get(permission).copied()
    }

    pub(crate) fn contains_all<'a>(
        &self,
        permissions: impl IntoIterator<Item = &'a Permission>,
    ) -> bool {
        permissions
            .into_iter()
            .all(|p| self.index.contains_key(p.as_str()))
    }

    pub(crate) fn insert(&mut self, permission: &str) -> u32 {
        let next = u32::try_from(self.index.len()).unwrap_or(u32::MAX);
        *self.index.entry(permission.into()).or_insert(next)
    }
}

/// A set of permission indexes: a bitset, or a sorted list when the
/// indexes are spread over a large catalog (a bitset would cost a bit per
/// permission of the whole catalog, per role).
#[derive(Debug, Clone)]
pub(crate) enum PermissionSet {
    Dense(FixedBitSet),
    Sparse(Box<[u32]>),
}

/// The largest index a role's permissions may reach and still be a bitset
/// (512 bytes).
const DENSE_LIMIT: u32 = 4096;

impl PermissionSet {
    fn of(indexes: &[u32]) -> Self {
        let max = indexes.iter().copied().max();
        match max {
            Some(max) if max >= DENSE_LIMIT => {
                let mut sorted = indexes.to_vec();
                sorted.sort_unstable();
                sorted.dedup();
                Self::Sparse(sorted.into_boxed_slice())
            }
            _ => {
                let mut bits = FixedBitSet::with_capacity(max.map_or(0, |m| m as usize + 1));
                for &i in indexes {
                    bits.insert(i as usize);
                }
                Self::Dense(bits)
            }
        }
    }

    pub(crate) fn contains(&self, index: usize) -> bool {
        match self {
            // `contains` is false past the end: indexes added to the
            // catalog later are not granted.
            Self::Dense(bits) => bits.contains(index),
            Self::Sparse(list) => {
                u32::try_from(index).is_ok_and(|i| list.binary_search(&i).is_ok())
            }
        }
    }
}

/// A role compiled to bitsets over the catalog.
#[derive(Debug)]
pub(crate) struct CompiledRole {
    pub(crate) name: Arc<RoleName>,
    /// Grants every permission (admin, super_admin).
    pub(crate) everything: bool,
    /// May act across tenants (super_admin, subject to the scope).
    pub(crate) crosses_tenants: bool,
    /// Permissions granted on every resource of the tenant.
    pub(crate) grants: PermissionSet,
    /// Permissions granted on owned resources only.
    pub(crate) own: PermissionSet,
}

impl CompiledRole {
    fn builtin(role: BuiltinRole) -> Self {
        let mut grants = Vec::new();
        let mut own = Vec::new();
        for (i, (_, cells)) in (0_u32..).zip(MATRIX.iter()) {
            match cells.get(role as usize).and_then(|c| c.grant()) {
                Some(Grant::Always) => grants.push(i),
                Some(Grant::Own) => own.push(i),
                None => {}
            }
        }
        Self {
            name: Arc::new(role.role_name()),
            everything: role.grants_everything(),
            crosses_tenants: role.crosses_tenants(),
            grants: PermissionSet::of(&grants),
            own: PermissionSet::of(&own),
        }
    }

    /// A tenant-defined role: unconditional grants only.
    pub(crate) fn custom(name: RoleName, permissions: &[u32]) -> Self {
        Self {
            name: Arc::new(name),
            everything: false,
            crosses_tenants: false,
            grants: PermissionSet::of(permissions),
            own: PermissionSet::of(&[]),
        }
    }
}

/// The seven built-in roles, compiled once.
pub(crate) static BUILTIN: LazyLock<[Arc<CompiledRole>; 7]> =
    LazyLock::new(|| BuiltinRole::ALL.map(|r| Arc::new(CompiledRole::builtin(r))));

/// One policy a user holds, as compiled.
#[derive(Debug, Clone)]
pub(crate) struct PolicySource {
    pub(crate) id: PolicyId,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    pub(crate) compiled: Arc<CompiledPermissions>,
    pub(crate) limits: security_core::ResourceLimits,
}

/// Everything a check needs about one user.
#[derive(Debug)]
pub(crate) struct UserView {
    pub(crate) tenant: TenantId,
    /// Set when the user can do nothing whatever the time (expired, locked
    /// for good, account suspended, expired or unknown).
    pub(crate) closed: Option<DenyReason>,
    /// Locked until then.
    pub(crate) locked_until: Option<DateTime<Utc>>,
    /// The account expires then.
    pub(crate) account_expires_at: Option<DateTime<Utc>>,
    /// The first expiry among the policies compiled into `subjects`.
    pub(crate) first_policy_expiry: Option<DateTime<Utc>>,
    /// Roles that grant something: built-in first (strongest first), then
    /// custom ones by name.
    pub(crate) roles: Box<[Arc<CompiledRole>]>,
    /// The names of `roles`, for conditions.
    pub(crate) role_names: Box<[Arc<RoleName>]>,
    /// The union of the account's defaults and every policy.
    pub(crate) subjects: Arc<CompiledPermissions>,
    /// The account's defaults alone.
    pub(crate) defaults: Arc<CompiledPermissions>,
    /// The policies, one by one (for when one of them has expired).
    pub(crate) policies: Box<[PolicySource]>,
    /// The account's limits (the policies' are added per check time).
    pub(crate) account_limits: EffectiveLimits,
}

impl UserView {
    /// Whether anything about the user depends on the time of the check.
    pub(crate) fn time_sensitive(&self) -> bool {
        self.locked_until.is_some() || self.account_expires_at.is_some()
    }

    /// Why the user may do nothing at `now`, if so.
    pub(crate) fn gate(&self, now: impl FnOnce() -> DateTime<Utc>) -> Option<DenyReason> {
        if let Some(reason) = &self.closed {
            return Some(reason.clone());
        }
        if !self.time_sensitive() {
            return None;
        }
        let now = now();
        if self.account_expires_at.is_some_and(|e| now >= e) {
            return Some(DenyReason::AccountInactive);
        }
        if self.locked_until.is_some_and(|u| now < u) {
            return Some(DenyReason::PrincipalInactive);
        }
        None
    }

    /// Whether every compiled policy is still in force at `now`.
    pub(crate) fn subjects_current(&self, now: DateTime<Utc>) -> bool {
        self.first_policy_expiry.is_none_or(|e| now < e)
    }

    /// Publish check at `now`.
    pub(crate) fn publish_parts(
        &self,
        subject: &str,
        now: impl FnOnce() -> DateTime<Utc>,
    ) -> Parts<'_> {
        if self.first_policy_expiry.is_none() {
            return self.subjects.publish_parts(subject);
        }
        let now = now();
        if self.subjects_current(now) {
            return self.subjects.publish_parts(subject);
        }
        self.combine(now, |c| c.publish_parts(subject))
    }

    /// Subscribe check at `now`.
    pub(crate) fn subscribe_parts(
        &self,
        subject: &str,
        queue: Option<&str>,
        now: impl FnOnce() -> DateTime<Utc>,
    ) -> Parts<'_> {
        if self.first_policy_expiry.is_none() {
            return self.subjects.subscribe_parts(subject, queue);
        }
        let now = now();
        if self.subjects_current(now) {
            return self.subjects.subscribe_parts(subject, queue);
        }
        self.combine(now, |c| c.subscribe_parts(subject, queue))
    }

    /// The slow path once a policy has expired: check the account defaults
    /// and each policy still in force, then combine (deny wins).
    fn combine<'a>(
        &'a self,
        now: DateTime<Utc>,
        check: impl Fn(&'a CompiledPermissions) -> Parts<'a>,
    ) -> Parts<'a> {
        let in_force = self
            .policies
            .iter()
            .filter(|p| p.expires_at.is_none_or(|e| now < e))
            .map(|p| &*p.compiled);
        let mut combined = Parts::default();
        for compiled in std::iter::once(&*self.defaults).chain(in_force) {
            let parts = check(compiled);
            if parts.deny.is_some() {
                return Parts {
                    allow: None,
                    deny: parts.deny,
                };
            }
            if combined.allow.is_none() {
                combined.allow = parts.allow;
            }
            // `parts` may have skipped its allow lookup only when it found a
            // deny, which returned above.
        }
        combined
    }

    /// The limits at `now`: the account's, tightened by every policy in force.
    pub(crate) fn limits(&self, now: DateTime<Utc>) -> EffectiveLimits {
        let mut limits = self.account_limits;
        for p in self
            .policies
            .iter()
            .filter(|p| p.expires_at.is_none_or(|e| now < e))
        {
            limits.tighten(p.id, &p.limits);
        }
        limits
    }
}

/// What limit checks need about one tenant.
#[derive(Debug, Clone)]
pub(crate) struct TenantView {
    /// The operator the account belongs to.
    pub(crate) operator: OperatorId,
    pub(crate) closed: Option<DenyReason>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    pub(crate) limits: EffectiveLimits,
    pub(crate) user_count: u64,
}

/// One consistent view of the whole read model.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) position: u64,
    pub(crate) catalog: Arc<Catalog>,
    /// Users by tenant and id.
    pub(crate) users: CowMap<(TenantId, UserId), Arc<UserView>>,
    pub(crate) tenants: CowMap<TenantId, Arc<TenantView>>,
    /// The operators' system accounts, each with its operator (where
    /// `super_admin` may cross tenants: into that operator's accounts under
    /// the default scope). Only accounts that belong to the operator
    /// naming them are listed.
    pub(crate) system_accounts: Arc<HashMap<TenantId, OperatorId>>,
}

impl Snapshot {
    pub(crate) fn empty() -> Self {
        Self {
            position: 0,
            catalog: Arc::new(Catalog::builtin()),
            users: CowMap::new(),
            tenants: CowMap::new(),
            system_accounts: Arc::new(HashMap::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_sets_dense_and_sparse_agree() {
        for indexes in [vec![], vec![0, 3, 64, 4095], vec![1, 5000, 70_000, 5000]] {
            let set = PermissionSet::of(&indexes);
            assert_eq!(
                matches!(set, PermissionSet::Sparse(_)),
                indexes.iter().any(|&i| i >= DENSE_LIMIT)
            );
            for i in 0..80_000_usize {
                assert_eq!(
                    set.contains(i),
                    indexes.contains(&u32::try_from(i).unwrap()),
                    "{indexes:?} {i}"
                );
            }
        }
    }

    #[test]
    fn builtin_roles_follow_the_matrix() {
        let catalog = Catalog::builtin();
        for role in BuiltinRole::ALL {
            let compiled = &BUILTIN[role as usize];
            for (p, cells) in MATRIX {
                let i = catalog.get(p).unwrap() as usize;
                let cell = cells[role as usize];
                assert_eq!(
                    compiled.grants.contains(i),
                    cell == crate::matrix::Cell::Yes,
                    "{role} {p}"
                );
                assert_eq!(
                    compiled.own.contains(i),
                    cell == crate::matrix::Cell::Own,
                    "{role} {p}"
                );
            }
        }
    }
}
