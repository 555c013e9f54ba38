//! The writer side of the read model: folds account, user, policy, role and
//! operator events, keeps reverse indexes to know what a change touches,
//! and on flush recompiles only what changed into a new [`Snapshot`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use security_core::{
    AccountEvent, AccountLimits, AccountStatus, EventDecodeError, OperatorEvent, OperatorId,
    Permission, Permissions, PolicyEvent, PolicyId, ResourceLimits, RoleEvent, RoleId, RoleName,
    StoredEvent, TenantId, UserEvent, UserId, UserStatus,
};

use crate::cowmap::CowMap;
use crate::decision::DenyReason;
use crate::limits::EffectiveLimits;
use crate::matrix::BuiltinRole;
use crate::snapshot::{
    BUILTIN, Catalog, CompiledRole, PolicySource, Snapshot, TenantView, UserView,
};
use crate::trie::{CompiledPermissions, PatternSource};

#[derive(Debug)]
struct AccountRec {
    operator: OperatorId,
    status: AccountStatus,
    expires_at: Option<DateTime<Utc>>,
    limits: AccountLimits,
    defaults: Permissions,
    defaults_compiled: Arc<CompiledPermissions>,
    user_count: u64,
}

#[derive(Debug)]
struct UserRec {
    tenant: TenantId,
    status: UserStatus,
    roles: BTreeSet<RoleName>,
    policies: Vec<PolicyId>,
}

#[derive(Debug)]
struct PolicyRec {
    permissions: Permissions,
    limits: ResourceLimits,
    compiled: Arc<CompiledPermissions>,
}

#[derive(Debug)]
struct RoleRec {
    permissions: BTreeSet<Permission>,
    retired: bool,
}

type PolicyKey = (TenantId, PolicyId);
type RoleKey = (TenantId, RoleName);
/// A user is known by its tenant and its id: an id used in two tenants
/// names two users, and an event of one never touches the other.
type UserKey = (TenantId, UserId);

/// The read model's mutable state. Not shared: readers only see the
/// snapshots it produces.
#[derive(Debug)]
pub(crate) struct ReadModel {
    accounts: HashMap<TenantId, AccountRec>,
    users: HashMap<UserKey, UserRec>,
    policies: HashMap<PolicyKey, PolicyRec>,
    roles: HashMap<RoleKey, RoleRec>,
    role_names: HashMap<(TenantId, RoleId), RoleName>,
    system_accounts: HashMap<OperatorId, TenantId>,

    tenant_users: HashMap<TenantId, HashSet<UserId>>,
    policy_holders: HashMap<PolicyKey, HashSet<UserId>>,
    role_holders: HashMap<RoleKey, HashSet<UserId>>,

    dirty_users: HashSet<UserKey>,
    dirty_tenants: HashSet<TenantId>,
    dirty_tenant_users: HashSet<TenantId>,
    dirty_roles: HashSet<RoleKey>,
    dirty_system: bool,

    catalog: Arc<Catalog>,
    compiled_roles: HashMap<RoleKey, Arc<CompiledRole>>,
    users_out: CowMap<UserKey, Arc<UserView>>,
    tenants_out: CowMap<TenantId, Arc<TenantView>>,
    system_out: Arc<HashMap<TenantId, OperatorId>>,
    position: u64,
    /// The latest `occurred_at` applied: a policy that expired before it has
    /// expired for every later check too, so it is left out of the union.
    high_water: Option<DateTime<Utc>>,
}

impl Default for ReadModel {
    fn default() -> Self {
        Self::new()
    }
}

/// The user event types the read model needs; every other one is skipped
/// without being decoded (authentication events are frequent).
const USER_EVENTS: [&str; 8] = [
    "UserCreated",
    "PolicyAssigned",
    "PolicyRemoved",
    "UserLocked",
    "UserUnlocked",
    "UserExpired",
    "RoleAssigned",
    "RoleRemoved",
];

impl ReadModel {
    pub(crate) fn new() -> Self {
        let empty = Snapshot::empty();
        Self {
            accounts: HashMap::new(),
            users: HashMap::new(),
            policies: HashMap::new(),
            roles: HashMap::new(),
            role_names: HashMap::new(),
            system_accounts: HashMap::new(),
            tenant_users: HashMap::new(),
            policy_holders: HashMap::new(),
            role_holders: HashMap::new(),
            dirty_users: HashSet::new(),
            dirty_tenants: HashSet::new(),
            dirty_tenant_users: HashSet::new(),
            dirty_roles: HashSet::new(),
            dirty_system: false,
            catalog: empty.catalog,
            compiled_roles: HashMap::new(),
            users_out: empty.users,
            tenants_out: empty.tenants,
            system_out: empty.system_accounts,
            position: 0,
            high_water: None,
        }
    }

    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    pub(crate) fn high_water(&self) -> Option<DateTime<Utc>> {
        self.high_water
    }

    /// Folds one stored event in.
    pub(crate) fn apply(&mut self, stored: &StoredEvent) -> Result<(), EventDecodeError> {
        let tenant = stored.tenant_id();
        match &*stored.stream_id.aggregate_type {
            "account" => self.apply_account(tenant, stored.decode()?),
            "user" if USER_EVENTS.contains(&&*stored.event_type) => {
                self.apply_user(tenant, stored.decode()?);
            }
            "policy" => self.apply_policy(tenant, stored.decode()?),
            "role" => self.apply_role(tenant, stored.decode()?),
            "operator" if tenant.is_system() && &*stored.event_type == "SystemAccountSet" => {
                if let OperatorEvent::SystemAccountSet {
                    operator_id,
                    account_id,
                } = stored.decode()?
                {
                    self.system_accounts
                        .insert(operator_id, account_id.tenant());
                    self.dirty_system = true;
                }
            }
            _ => {}
        }
        self.position = self.position.max(stored.global_position);
        self.high_water = Some(
            self.high_water
                .map_or(stored.occurred_at, |h| h.max(stored.occurred_at)),
        );
        Ok(())
    }

    fn apply_account(&mut self, tenant: TenantId, event: AccountEvent) {
        let touches_users = !matches!(
            event,
            AccountEvent::UserAdded { .. }
                | AccountEvent::AccountSigningKeyAdded { .. }
                | AccountEvent::AccountSigningKeyRevoked { .. }
        );
        match event {
            AccountEvent::AccountCreated {
                jwt_claims,
                operator_id,
                ..
            } => {
                let defaults_compiled = Arc::new(CompiledPermissions::union([(
                    PatternSource::AccountDefaults,
                    &jwt_claims.default_permissions,
                )]));
                self.accounts.insert(
                    tenant,
                    AccountRec {
                        operator: operator_id,
                        status: AccountStatus::Active,
                        expires_at: jwt_claims.expires_at,
                        limits: jwt_claims.limits,
                        defaults: jwt_claims.default_permissions,
                        defaults_compiled,
                        user_count: 0,
                    },
                );
                // A system account is honoured only once it is known to
                // belong to the operator that names it.
                self.dirty_system = true;
            }
            AccountEvent::AccountLimitsUpdated { new_limits, .. } => {
                if let Some(a) = self.accounts.get_mut(&tenant) {
                    a.limits = new_limits;
                }
            }
            AccountEvent::AccountSuspended {
                reason,
                suspended_at,
                ..
            } => {
                if let Some(a) = self.accounts.get_mut(&tenant) {
                    a.status = AccountStatus::Suspended {
                        reason,
                        since: suspended_at,
                    };
                }
            }
            AccountEvent::AccountReactivated { .. } => {
                if let Some(a) = self.accounts.get_mut(&tenant) {
                    a.status = AccountStatus::Active;
                }
            }
            AccountEvent::AccountExpired { .. } => {
                if let Some(a) = self.accounts.get_mut(&tenant) {
                    a.status = AccountStatus::Expired;
                }
            }
            AccountEvent::DefaultPermissionsUpdated {
                new_permissions, ..
            } => {
                if let Some(a) = self.accounts.get_mut(&tenant) {
                    a.defaults_compiled = Arc::new(CompiledPermissions::union([(
                        PatternSource::AccountDefaults,
                        &new_permissions,
                    )]));
                    a.defaults = new_permissions;
                }
            }
            AccountEvent::UserAdded { .. } => {
                if let Some(a) = self.accounts.get_mut(&tenant) {
                    a.user_count += 1;
                }
            }
            AccountEvent::AccountSigningKeyAdded { .. }
            | AccountEvent::AccountSigningKeyRevoked { .. } => {}
        }
        self.dirty_tenants.insert(tenant);
        if touches_users {
            self.dirty_tenant_users.insert(tenant);
        }
    }

    fn apply_user(&mut self, tenant: TenantId, event: UserEvent) {
        let user_id = match &event {
            UserEvent::UserCreated { user_id, .. }
            | UserEvent::PolicyAssigned { user_id, .. }
            | UserEvent::PolicyRemoved { user_id, .. }
            | UserEvent::UserLocked { user_id, .. }
            | UserEvent::UserUnlocked { user_id, .. }
            | UserEvent::UserExpired { user_id, .. }
            | UserEvent::RoleAssigned { user_id, .. }
            | UserEvent::RoleRemoved { user_id, .. } => *user_id,
            _ => return,
        };
        if let UserEvent::UserCreated { .. } = event {
            self.users.insert(
                (tenant, user_id),
                UserRec {
                    tenant,
                    status: UserStatus::Active,
                    roles: BTreeSet::new(),
                    policies: Vec::new(),
                },
            );
            self.tenant_users.entry(tenant).or_default().insert(user_id);
            self.dirty_users.insert((tenant, user_id));
            return;
        }
        // An event for a user the model does not know in this tenant
        // changes nothing (a user of another tenant with the same id is
        // another user).
        let Some(user) = self.users.get_mut(&(tenant, user_id)) else {
            return;
        };
        match event {
            UserEvent::PolicyAssigned { policy_id, .. } => {
                if !user.policies.contains(&policy_id) {
                    user.policies.push(policy_id);
                }
                self.policy_holders
                    .entry((tenant, policy_id))
                    .or_default()
                    .insert(user_id);
            }
            UserEvent::PolicyRemoved { policy_id, .. } => {
                user.policies.retain(|p| *p != policy_id);
                if let Some(h) = self.policy_holders.get_mut(&(tenant, policy_id)) {
                    h.remove(&user_id);
                }
            }
            UserEvent::UserLocked {
                reason,
                locked_at,
                until,
                ..
            } => {
                user.status = UserStatus::Locked {
                    reason,
                    since: locked_at,
                    until,
                };
            }
            UserEvent::UserUnlocked { .. } => user.status = UserStatus::Active,
            UserEvent::UserExpired { .. } => user.status = UserStatus::Expired,
            UserEvent::RoleAssigned { role, .. } => {
                self.role_holders
                    .entry((tenant, role.clone()))
                    .or_default()
                    .insert(user_id);
                user.roles.insert(role);
            }
            UserEvent::RoleRemoved { role, .. } => {
                if let Some(h) = self.role_holders.get_mut(&(tenant, role.clone())) {
                    h.remove(&user_id);
                }
                user.roles.remove(&role);
            }
            _ => return,
        }
        self.dirty_users.insert((tenant, user_id));
    }

    fn apply_policy(&mut self, tenant: TenantId, event: PolicyEvent) {
        let policy_id = match event {
            PolicyEvent::PolicyCreated {
                policy_id,
                permissions,
                limits,
                ..
            } => {
                let compiled = Arc::new(CompiledPermissions::union([(
                    PatternSource::Policy(policy_id),
                    &permissions,
                )]));
                self.policies.insert(
                    (tenant, policy_id),
                    PolicyRec {
                        permissions,
                        limits,
                        compiled,
                    },
                );
                policy_id
            }
            PolicyEvent::PermissionsUpdated {
                policy_id,
                new_permissions,
                ..
            } => {
                if let Some(p) = self.policies.get_mut(&(tenant, policy_id)) {
                    p.compiled = Arc::new(CompiledPermissions::union([(
                        PatternSource::Policy(policy_id),
                        &new_permissions,
                    )]));
                    p.permissions = new_permissions;
                }
                policy_id
            }
            PolicyEvent::LimitsUpdated {
                policy_id,
                new_limits,
                ..
            } => {
                if let Some(p) = self.policies.get_mut(&(tenant, policy_id)) {
                    p.limits = new_limits;
                }
                policy_id
            }
        };
        if let Some(holders) = self.policy_holders.get(&(tenant, policy_id)) {
            self.dirty_users
                .extend(holders.iter().map(|user| (tenant, *user)));
        }
    }

    fn apply_role(&mut self, tenant: TenantId, event: RoleEvent) {
        let name = match event {
            RoleEvent::RoleDefined {
                role_id,
                name,
                permissions,
                ..
            } => {
                self.role_names.insert((tenant, role_id), name.clone());
                self.roles.insert(
                    (tenant, name.clone()),
                    RoleRec {
                        permissions,
                        retired: false,
                    },
                );
                name
            }
            RoleEvent::RolePermissionsUpdated {
                role_id,
                new_permissions,
                ..
            } => {
                let Some(name) = self.role_names.get(&(tenant, role_id)).cloned() else {
                    return;
                };
                if let Some(r) = self.roles.get_mut(&(tenant, name.clone())) {
                    r.permissions = new_permissions;
                }
                name
            }
            RoleEvent::RoleRetired { role_id, .. } => {
                let Some(name) = self.role_names.get(&(tenant, role_id)).cloned() else {
                    return;
                };
                if let Some(r) = self.roles.get_mut(&(tenant, name.clone())) {
                    r.retired = true;
                }
                name
            }
        };
        self.dirty_roles.insert((tenant, name));
    }

    /// Recompiles what changed and returns the new snapshot.
    pub(crate) fn flush(&mut self) -> Snapshot {
        for key in std::mem::take(&mut self.dirty_roles) {
            self.compile_role(&key);
            if let Some(holders) = self.role_holders.get(&key) {
                self.dirty_users
                    .extend(holders.iter().map(|user| (key.0, *user)));
            }
        }
        for tenant in std::mem::take(&mut self.dirty_tenant_users) {
            if let Some(users) = self.tenant_users.get(&tenant) {
                self.dirty_users
                    .extend(users.iter().map(|user| (tenant, *user)));
            }
        }
        for tenant in std::mem::take(&mut self.dirty_tenants) {
            match self.compile_tenant(tenant) {
                Some(view) => self.tenants_out.insert(tenant, Arc::new(view)),
                None => self.tenants_out.remove(&tenant),
            }
        }
        for key in std::mem::take(&mut self.dirty_users) {
            match self.compile_user(key) {
                Some(view) => self.users_out.insert(key, Arc::new(view)),
                None => self.users_out.remove(&key),
            }
        }
        if std::mem::take(&mut self.dirty_system) {
            self.system_out = Arc::new(
                self.system_accounts
                    .iter()
                    .filter(|(operator, tenant)| {
                        self.accounts
                            .get(tenant)
                            .is_some_and(|a| a.operator == **operator)
                    })
                    .map(|(operator, tenant)| (*tenant, *operator))
                    .collect(),
            );
        }
        Snapshot {
            position: self.position,
            catalog: Arc::clone(&self.catalog),
            users: self.users_out.clone(),
            tenants: self.tenants_out.clone(),
            system_accounts: Arc::clone(&self.system_out),
        }
    }

    fn compile_role(&mut self, key: &RoleKey) {
        let Some(rec) = self
            .roles
            .get(key)
            .filter(|r| !r.retired && !key.1.is_builtin())
        else {
            self.compiled_roles.remove(key);
            return;
        };
        if !self.catalog.contains_all(&rec.permissions) {
            // Copies the catalog only if a published snapshot still shares it.
            let catalog = Arc::make_mut(&mut self.catalog);
            for p in &rec.permissions {
                catalog.insert(p.as_str());
            }
        }
        let indexes: Vec<u32> = rec
            .permissions
            .iter()
            .filter_map(|p| self.catalog.get(p.as_str()))
            .collect();
        let role = CompiledRole::custom(key.1.clone(), &indexes);
        self.compiled_roles.insert(key.clone(), Arc::new(role));
    }

    fn account_gate(account: Option<&AccountRec>) -> Option<DenyReason> {
        match account.map(|a| &a.status) {
            None | Some(AccountStatus::Suspended { .. } | AccountStatus::Expired) => {
                Some(DenyReason::AccountInactive)
            }
            Some(AccountStatus::Active) => None,
        }
    }

    fn compile_tenant(&self, tenant: TenantId) -> Option<TenantView> {
        let account = self.accounts.get(&tenant)?;
        Some(TenantView {
            operator: account.operator,
            closed: Self::account_gate(Some(account)),
            expires_at: account.expires_at,
            limits: EffectiveLimits::of_account(&account.limits),
            user_count: account.user_count,
        })
    }

    fn compile_user(&self, key: UserKey) -> Option<UserView> {
        let user = self.users.get(&key)?;
        let tenant = user.tenant;
        let account = self.accounts.get(&tenant);

        let (mut closed, locked_until) = match &user.status {
            UserStatus::Active => (None, None),
            UserStatus::Locked {
                until: Some(until), ..
            } => (None, Some(*until)),
            UserStatus::Locked { until: None, .. } | UserStatus::Expired => {
                (Some(DenyReason::PrincipalInactive), None)
            }
        };
        if let Some(reason) = Self::account_gate(account) {
            closed = Some(reason);
        }

        let mut builtin: Vec<(BuiltinRole, Arc<CompiledRole>)> = Vec::new();
        let mut custom: Vec<Arc<CompiledRole>> = Vec::new();
        for name in &user.roles {
            if let Some(role) = BuiltinRole::from_name(name.as_str()) {
                if let Some(compiled) = BUILTIN.get(role as usize) {
                    builtin.push((role, Arc::clone(compiled)));
                }
            } else if let Some(compiled) = self.compiled_roles.get(&(tenant, name.clone())) {
                custom.push(Arc::clone(compiled));
            }
        }
        builtin.sort_by_key(|(r, _)| *r);
        let roles: Box<[Arc<CompiledRole>]> =
            builtin.into_iter().map(|(_, c)| c).chain(custom).collect();
        let role_names = roles.iter().map(|r| Arc::clone(&r.name)).collect();

        let empty = Permissions::default();
        let defaults_raw = account.map_or(&empty, |a| &a.defaults);
        let defaults = account.map_or_else(
            || Arc::new(CompiledPermissions::default()),
            |a| Arc::clone(&a.defaults_compiled),
        );
        let mut policies = Vec::new();
        let mut union =
            CompiledPermissions::union([(PatternSource::AccountDefaults, defaults_raw)]);
        for policy_id in &user.policies {
            let Some(rec) = self.policies.get(&(tenant, *policy_id)) else {
                continue;
            };
            let expires_at = rec.limits.expires_at;
            if expires_at.is_some_and(|e| self.high_water.is_some_and(|h| h >= e)) {
                continue;
            }
            union.add(PatternSource::Policy(*policy_id), &rec.permissions);
            policies.push(PolicySource {
                id: *policy_id,
                expires_at,
                compiled: Arc::clone(&rec.compiled),
                limits: rec.limits.clone(),
            });
        }
        let first_policy_expiry = policies.iter().filter_map(|p| p.expires_at).min();

        Some(UserView {
            tenant,
            closed,
            locked_until,
            account_expires_at: account.and_then(|a| a.expires_at),
            first_policy_expiry,
            roles,
            role_names,
            subjects: Arc::new(union),
            defaults,
            policies: policies.into_boxed_slice(),
            account_limits: account
                .map(|a| EffectiveLimits::of_account(&a.limits))
                .unwrap_or_default(),
        })
    }
}
