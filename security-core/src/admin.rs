//! The admin / command API: tenant-aware operations over the aggregates,
//! with the cross-aggregate checks a single aggregate cannot make (a policy
//! must exist in the user's tenant, a user joins its account's roster
//! first, keys are created in the key store).
//!
//! Every operation takes a [`Request`]: who asks, and an optional
//! idempotency key. With a key, the ids of anything created are derived
//! from it (UUID v5), so repeating the request finds the same streams and
//! returns the first result without writing anything again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use crate::account::{Account, AccountClaims, AccountCommand};
use crate::aggregate::{Aggregate, CommandContext};
use crate::error::DomainError;
use crate::event::{Actor, IdempotencyKey};
use crate::ids::{AccountId, KeyId, OperatorId, PolicyId, RoleId, TenantId, UserId};
use crate::keys::{KeyInfo, KeyOwner, KeyPurpose, KeySpec, KeyStore, KeyStoreError};
use crate::operator::{NewSigningKey, Operator, OperatorCommand};
use crate::permissions::{AccountLimits, Permissions, ResourceLimits};
use crate::policy::{Policy, PolicyCommand};
use crate::ports::Clock;
use crate::repository::{CommandError, CommandOutcome, Loaded, Repository};
use crate::role::{Permission, Role, RoleCommand, RoleName};
use crate::store::Until;
use crate::user::{Credential, User, UserCommand};
use crate::user_claim::{UserIdClaim, UserIdClaimCommand};

/// Who asks, and how to make the request safe to repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Who asks.
    pub actor: Option<Actor>,
    /// Makes the request happen at most once.
    pub idempotency_key: Option<IdempotencyKey>,
    /// Groups every event caused by one request.
    pub correlation_id: Option<Uuid>,
    /// A distributed-tracing id.
    pub trace_id: Option<Arc<str>>,
}

impl Request {
    /// A request by `actor`.
    pub fn by(actor: Actor) -> Self {
        Self {
            actor: Some(actor),
            ..Self::default()
        }
    }

    /// Adds an idempotency key.
    pub fn idempotent(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }
}

/// An admin operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A command failed (rejected, conflict, store).
    #[error(transparent)]
    Command(#[from] CommandError<DomainError>),
    /// The key store failed.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
}

impl AdminError {
    /// The domain rule that refused the operation, if that is what happened.
    pub fn rejection(&self) -> Option<&DomainError> {
        match self {
            Self::Command(e) => e.rejection(),
            Self::KeyStore(_) => None,
        }
    }
}

impl From<DomainError> for AdminError {
    fn from(e: DomainError) -> Self {
        Self::Command(CommandError::Rejected(e))
    }
}

/// What a new user starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    /// Its username (unique in the account, case-insensitively).
    pub username: String,
    /// Its first credential (secret parts already sealed).
    pub credential: Credential,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, Value>,
    /// Whether the password must be changed at the next login.
    pub must_change_password: bool,
}

/// A policy to create ([`AdminService::create_policy`]): a name, then
/// any of a description, permissions and limits (default: none, nothing
/// allowed, no limits).
///
/// ```
/// use security_core::{NewPolicy, Permissions, ResourceLimits};
///
/// let policy = NewPolicy::new("orders")
///     .description("the order service")
///     .permissions(Permissions::default())
///     .limits(ResourceLimits::default());
/// assert_eq!(policy.name, "orders");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewPolicy {
    /// Its name (unique in the tenant).
    pub name: String,
    /// What it is for.
    pub description: String,
    /// What it allows.
    pub permissions: Permissions,
    /// The limits it sets.
    pub limits: ResourceLimits,
}

impl NewPolicy {
    /// A policy with this name, no description, no permissions, no limits.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            permissions: Permissions::default(),
            limits: ResourceLimits::default(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the permissions.
    pub fn permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: ResourceLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// The admin / command API.
#[derive(Debug, Clone)]
pub struct AdminService {
    repo: Repository,
    clock: Arc<dyn Clock>,
    keys: Arc<dyn KeyStore>,
}

/// The result of an admin operation.
pub type AdminResult<T> = Result<T, AdminError>;

impl AdminService {
    /// An admin API over a repository, a clock and a key store.
    pub fn new(repo: Repository, clock: Arc<dyn Clock>, keys: Arc<dyn KeyStore>) -> Self {
        Self { repo, clock, keys }
    }

    /// The repository.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The key store.
    pub fn key_store(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// A command context for `tenant_id` at the clock's time. `step` tells
    /// apart the commands of one multi-step request, each getting its own
    /// idempotency key derived from the request's.
    pub fn context(&self, tenant_id: TenantId, request: &Request, step: &str) -> CommandContext {
        let mut ctx = CommandContext::new(tenant_id, self.clock.now());
        ctx.actor.clone_from(&request.actor);
        ctx.correlation_id = request.correlation_id;
        ctx.trace_id.clone_from(&request.trace_id);
        ctx.idempotency_key = request.idempotency_key.as_ref().and_then(|key| {
            if step.is_empty() {
                Some(key.clone())
            } else {
                IdempotencyKey::new(format!("{}#{step}", key.as_str())).ok()
            }
        });
        ctx
    }

    /// A new id: derived from the idempotency key when there is one, so a
    /// repeated request names the same aggregate.
    pub fn new_id(&self, request: &Request, scope: Uuid, purpose: &str) -> Uuid {
        match &request.idempotency_key {
            Some(key) => Uuid::new_v5(&scope, format!("{purpose}:{}", key.as_str()).as_bytes()),
            None => self.repo.ids().new_id(),
        }
    }

    async fn run<A: Aggregate<Error = DomainError>>(
        &self,
        id: impl Into<Uuid> + Send,
        command: &A::Command,
        ctx: &CommandContext,
    ) -> AdminResult<CommandOutcome<A>> {
        Ok(self.repo.execute::<A>(id, command, ctx).await?)
    }

    async fn load<A: Aggregate<Error = DomainError>>(
        &self,
        tenant: TenantId,
        id: impl Into<Uuid> + Send,
    ) -> AdminResult<Loaded<A>> {
        Ok(self.repo.load::<A>(tenant, id).await?)
    }

    /// Whether a request with this key already ran in the tenant (and so
    /// must not create keys again).
    async fn already_done(
        &self,
        tenant: TenantId,
        request: &Request,
        step: &str,
    ) -> AdminResult<bool> {
        let ctx = self.context(tenant, request, step);
        match &ctx.idempotency_key {
            Some(key) => Ok(self
                .repo
                .store()
                .idempotent_result(tenant, key)
                .await
                .map_err(CommandError::<DomainError>::from)?
                .is_some()),
            None => Ok(false),
        }
    }

    async fn new_signing_key(
        &self,
        owner: KeyOwner,
        purpose: KeyPurpose,
    ) -> AdminResult<NewSigningKey> {
        let info = self.keys.create_key(KeySpec::new(owner, purpose)).await?;
        signing_key_of(&info)
    }

    // ----- operator -------------------------------------------------------

    /// Creates the operator, with a new signing key in the key store.
    pub async fn create_operator(&self, request: &Request, name: &str) -> AdminResult<OperatorId> {
        let operator_id = OperatorId::from_uuid(self.new_id(request, Uuid::nil(), "operator"));
        if self.already_done(TenantId::SYSTEM, request, "").await? {
            return Ok(operator_id);
        }
        let initial_key = self
            .new_signing_key(
                KeyOwner::new(TenantId::SYSTEM, operator_id),
                KeyPurpose::OperatorSigning,
            )
            .await?;
        let ctx = self.context(TenantId::SYSTEM, request, "");
        let command = OperatorCommand::CreateOperator {
            operator_id,
            name: name.to_owned(),
            initial_key,
        };
        self.run::<Operator>(operator_id, &command, &ctx).await?;
        Ok(operator_id)
    }

    /// Makes a new key the operator's active one (the old stays valid until revoked).
    pub async fn rotate_operator_key(
        &self,
        request: &Request,
        operator_id: OperatorId,
    ) -> AdminResult<KeyId> {
        let current = self.operator(operator_id).await?;
        if current.id.is_none() {
            return Err(DomainError::NotFound { kind: "operator" }.into());
        }
        if self.already_done(TenantId::SYSTEM, request, "").await? {
            return current
                .active_key_id
                .ok_or(DomainError::InvalidState("operator has no active key").into());
        }
        let new_key = self
            .new_signing_key(
                KeyOwner::new(TenantId::SYSTEM, operator_id),
                KeyPurpose::OperatorSigning,
            )
            .await?;
        let key_id = new_key.key_id;
        let ctx = self.context(TenantId::SYSTEM, request, "");
        self.run::<Operator>(
            operator_id,
            &OperatorCommand::RotateSigningKey { new_key },
            &ctx,
        )
        .await?;
        Ok(key_id)
    }

    /// Revokes an operator key; if it is the active one, a successor is
    /// created first. The key store revokes the key too.
    pub async fn revoke_operator_key(
        &self,
        request: &Request,
        operator_id: OperatorId,
        key_id: KeyId,
        reason: &str,
    ) -> AdminResult<()> {
        let current = self.operator(operator_id).await?;
        let successor = if current.active_key_id == Some(key_id)
            && !self.already_done(TenantId::SYSTEM, request, "").await?
        {
            Some(
                self.new_signing_key(
                    KeyOwner::new(TenantId::SYSTEM, operator_id),
                    KeyPurpose::OperatorSigning,
                )
                .await?,
            )
        } else {
            None
        };
        let ctx = self.context(TenantId::SYSTEM, request, "");
        let command = OperatorCommand::RevokeSigningKey {
            key_id,
            reason: reason.to_owned(),
            successor,
        };
        self.run::<Operator>(operator_id, &command, &ctx).await?;
        match self.keys.revoke_key(key_id).await {
            Ok(_) | Err(KeyStoreError::Revoked(_) | KeyStoreError::Destroyed(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Names the operator's system account.
    pub async fn set_system_account(
        &self,
        request: &Request,
        operator_id: OperatorId,
        account_id: AccountId,
    ) -> AdminResult<()> {
        let ctx = self.context(TenantId::SYSTEM, request, "");
        self.run::<Operator>(
            operator_id,
            &OperatorCommand::SetSystemAccount { account_id },
            &ctx,
        )
        .await?;
        Ok(())
    }

    /// The operator.
    pub async fn operator(&self, operator_id: OperatorId) -> AdminResult<Operator> {
        Ok(self
            .load::<Operator>(TenantId::SYSTEM, operator_id)
            .await?
            .state)
    }

    // ----- account --------------------------------------------------------

    /// Creates an account (a tenant) under an operator, with an identity
    /// key in the key store unless `claims.public_key` names one.
    pub async fn create_account(
        &self,
        request: &Request,
        operator_id: OperatorId,
        name: &str,
        mut claims: AccountClaims,
    ) -> AdminResult<AccountId> {
        let operator = self.operator(operator_id).await?;
        if operator.id.is_none() {
            return Err(DomainError::NotFound { kind: "operator" }.into());
        }
        let account_id =
            AccountId::from_uuid(self.new_id(request, operator_id.as_uuid(), "account"));
        let tenant = account_id.tenant();
        if self.already_done(tenant, request, "").await? {
            return Ok(account_id);
        }
        if claims.public_key.is_none() {
            let key = self
                .new_signing_key(
                    KeyOwner::new(tenant, account_id),
                    KeyPurpose::AccountSigning,
                )
                .await?;
            claims.public_key = Some(key.public_key);
        }
        let ctx = self.context(tenant, request, "");
        let command = AccountCommand::CreateAccount {
            account_id,
            name: name.to_owned(),
            operator_id,
            claims,
        };
        self.run::<Account>(account_id, &command, &ctx).await?;
        Ok(account_id)
    }

    async fn account_command(
        &self,
        request: &Request,
        account_id: AccountId,
        command: AccountCommand,
    ) -> AdminResult<Account> {
        let ctx = self.context(account_id.tenant(), request, "");
        Ok(self.run::<Account>(account_id, &command, &ctx).await?.state)
    }

    /// Replaces an account's limits.
    pub async fn update_account_limits(
        &self,
        request: &Request,
        account_id: AccountId,
        new_limits: AccountLimits,
    ) -> AdminResult<Account> {
        self.account_command(
            request,
            account_id,
            AccountCommand::UpdateAccountLimits { new_limits },
        )
        .await
    }

    /// Suspends an account: nobody in it authenticates, no user joins.
    pub async fn suspend_account(
        &self,
        request: &Request,
        account_id: AccountId,
        reason: &str,
    ) -> AdminResult<Account> {
        self.account_command(
            request,
            account_id,
            AccountCommand::SuspendAccount {
                reason: reason.to_owned(),
            },
        )
        .await
    }

    /// Lifts a suspension.
    pub async fn reactivate_account(
        &self,
        request: &Request,
        account_id: AccountId,
    ) -> AdminResult<Account> {
        self.account_command(request, account_id, AccountCommand::ReactivateAccount)
            .await
    }

    /// Expires an account.
    pub async fn expire_account(
        &self,
        request: &Request,
        account_id: AccountId,
    ) -> AdminResult<Account> {
        self.account_command(request, account_id, AccountCommand::ExpireAccount)
            .await
    }

    /// Replaces the permissions every user of the account inherits.
    pub async fn update_default_permissions(
        &self,
        request: &Request,
        account_id: AccountId,
        permissions: Permissions,
    ) -> AdminResult<Account> {
        self.account_command(
            request,
            account_id,
            AccountCommand::UpdateDefaultPermissions { permissions },
        )
        .await
    }

    /// The account.
    pub async fn account(&self, account_id: AccountId) -> AdminResult<Account> {
        Ok(self
            .load::<Account>(account_id.tenant(), account_id)
            .await?
            .state)
    }

    // ----- policy ---------------------------------------------------------

    /// Creates a policy in a tenant.
    pub async fn create_policy(
        &self,
        request: &Request,
        tenant: TenantId,
        policy: NewPolicy,
    ) -> AdminResult<PolicyId> {
        let policy_id = PolicyId::from_uuid(self.new_id(request, tenant.as_uuid(), "policy"));
        let ctx = self.context(tenant, request, "");
        let NewPolicy {
            name,
            description,
            permissions,
            limits,
        } = policy;
        let command = PolicyCommand::CreatePolicy {
            policy_id,
            name,
            description,
            permissions,
            limits,
        };
        self.run::<Policy>(policy_id, &command, &ctx).await?;
        Ok(policy_id)
    }

    /// Replaces a policy's permissions (its version goes up).
    pub async fn update_policy_permissions(
        &self,
        request: &Request,
        tenant: TenantId,
        policy_id: PolicyId,
        new_permissions: Permissions,
    ) -> AdminResult<Policy> {
        let ctx = self.context(tenant, request, "");
        let command = PolicyCommand::UpdatePermissions { new_permissions };
        Ok(self.run::<Policy>(policy_id, &command, &ctx).await?.state)
    }

    /// Replaces a policy's limits (its version goes up).
    pub async fn update_policy_limits(
        &self,
        request: &Request,
        tenant: TenantId,
        policy_id: PolicyId,
        new_limits: ResourceLimits,
    ) -> AdminResult<Policy> {
        let ctx = self.context(tenant, request, "");
        Ok(self
            .run::<Policy>(policy_id, &PolicyCommand::UpdateLimits { new_limits }, &ctx)
            .await?
            .state)
    }

    /// A policy of a tenant.
    pub async fn policy(&self, tenant: TenantId, policy_id: PolicyId) -> AdminResult<Policy> {
        Ok(self.load::<Policy>(tenant, policy_id).await?.state)
    }

    // ----- roles ----------------------------------------------------------

    /// Defines a custom role in a tenant.
    pub async fn define_role(
        &self,
        request: &Request,
        tenant: TenantId,
        name: RoleName,
        description: &str,
        permissions: BTreeSet<Permission>,
    ) -> AdminResult<RoleId> {
        let role_id = RoleId::for_name(tenant, &name);
        let ctx = self.context(tenant, request, "");
        let command = RoleCommand::DefineRole {
            name,
            description: description.to_owned(),
            permissions,
        };
        self.run::<Role>(role_id, &command, &ctx).await?;
        Ok(role_id)
    }

    /// Replaces what a custom role grants.
    pub async fn update_role_permissions(
        &self,
        request: &Request,
        tenant: TenantId,
        name: &RoleName,
        permissions: BTreeSet<Permission>,
    ) -> AdminResult<Role> {
        let ctx = self.context(tenant, request, "");
        let command = RoleCommand::UpdateRolePermissions { permissions };
        Ok(self
            .run::<Role>(RoleId::for_name(tenant, name), &command, &ctx)
            .await?
            .state)
    }

    /// Retires a custom role.
    pub async fn retire_role(
        &self,
        request: &Request,
        tenant: TenantId,
        name: &RoleName,
    ) -> AdminResult<Role> {
        let ctx = self.context(tenant, request, "");
        Ok(self
            .run::<Role>(
                RoleId::for_name(tenant, name),
                &RoleCommand::RetireRole,
                &ctx,
            )
            .await?
            .state)
    }

    /// A custom role of a tenant.
    pub async fn role(&self, tenant: TenantId, name: &RoleName) -> AdminResult<Role> {
        Ok(self
            .load::<Role>(tenant, RoleId::for_name(tenant, name))
            .await?
            .state)
    }

    // ----- users ----------------------------------------------------------

    /// The id [`create_user`](Self::create_user) gives the user of this
    /// request: derived from the idempotency key when there is one, fresh
    /// otherwise. Call it first when something must be tied to the user's id
    /// before it exists (its data key, to seal its password hash), then
    /// pass the id to [`create_user_with_id`](Self::create_user_with_id).
    pub fn user_id_for(&self, request: &Request, account_id: AccountId) -> UserId {
        UserId::from_uuid(self.new_id(request, account_id.as_uuid(), "user"))
    }

    /// Creates a user: the account takes it into its roster (checking that
    /// it is active, below `max_users`, and that the username is free),
    /// then the user's own stream starts.
    pub async fn create_user(
        &self,
        request: &Request,
        account_id: AccountId,
        new_user: NewUser,
    ) -> AdminResult<UserId> {
        let user_id = self.user_id_for(request, account_id);
        self.create_user_with_id(request, account_id, user_id, new_user)
            .await
    }

    /// [`create_user`](Self::create_user) with a chosen id (see
    /// [`user_id_for`](Self::user_id_for)).
    ///
    /// A user id belongs to one account for good: the id is first claimed
    /// in the system tenant ([`UserIdClaim`], appended only if no claim
    /// exists, so the check holds across processes sharing the store). An
    /// id already used in another account is refused with
    /// [`DomainError::AlreadyExists`], and nothing is written; repeating a
    /// creation in the same account passes the claim.
    pub async fn create_user_with_id(
        &self,
        request: &Request,
        account_id: AccountId,
        user_id: UserId,
        new_user: NewUser,
    ) -> AdminResult<UserId> {
        let tenant = account_id.tenant();
        let username = new_user.username;
        let command = UserCommand::CreateUser {
            user_id,
            account_id,
            username: username.clone(),
            credentials: new_user.credential,
            metadata: new_user.metadata,
            must_change_password: new_user.must_change_password,
        };
        let user_ctx = self.context(tenant, request, "user");
        // The user's own rules (sizes and shapes included) are checked
        // before the id is claimed and the roster takes the name: a user the
        // last step would refuse claims nothing.
        User::default().handle(&command, &user_ctx)?;
        let claim = UserIdClaimCommand::Claim {
            user_id,
            account_id,
        };
        // The claim is idempotent by itself (the same account passes it
        // again), so it takes no idempotency key: a key is scoped to a
        // tenant, and every account's claims share the system tenant.
        let mut claim_ctx = self.context(TenantId::SYSTEM, request, "");
        claim_ctx.idempotency_key = None;
        self.run::<UserIdClaim>(user_id, &claim, &claim_ctx).await?;
        let roster = AccountCommand::AddUser { user_id, username };
        self.run::<Account>(
            account_id,
            &roster,
            &self.context(tenant, request, "roster"),
        )
        .await?;
        self.run::<User>(user_id, &command, &user_ctx).await?;
        Ok(user_id)
    }

    /// Runs any user command (the checks that need other aggregates are
    /// made by the dedicated methods: prefer them where one exists).
    pub async fn user_command(
        &self,
        request: &Request,
        tenant: TenantId,
        user_id: UserId,
        command: UserCommand,
    ) -> AdminResult<CommandOutcome<User>> {
        let ctx = self.context(tenant, request, "");
        self.run::<User>(user_id, &command, &ctx).await
    }

    /// Gives a user a policy, which must exist in the user's tenant.
    pub async fn assign_policy(
        &self,
        request: &Request,
        tenant: TenantId,
        user_id: UserId,
        policy_id: PolicyId,
    ) -> AdminResult<User> {
        if self.policy(tenant, policy_id).await?.id.is_none() {
            return Err(DomainError::PolicyNotInTenant(policy_id).into());
        }
        Ok(self
            .user_command(
                request,
                tenant,
                user_id,
                UserCommand::AssignPolicy { policy_id },
            )
            .await?
            .state)
    }

    /// Takes a policy from a user.
    pub async fn remove_policy(
        &self,
        request: &Request,
        tenant: TenantId,
        user_id: UserId,
        policy_id: PolicyId,
    ) -> AdminResult<User> {
        Ok(self
            .user_command(
                request,
                tenant,
                user_id,
                UserCommand::RemovePolicy { policy_id },
            )
            .await?
            .state)
    }

    /// Gives a user a role: a built-in one, or one defined in the tenant.
    pub async fn assign_role(
        &self,
        request: &Request,
        tenant: TenantId,
        user_id: UserId,
        role: RoleName,
    ) -> AdminResult<User> {
        if !role.is_builtin() && !self.role(tenant, &role).await?.is_defined() {
            return Err(DomainError::RoleNotDefined(role.to_string()).into());
        }
        Ok(self
            .user_command(request, tenant, user_id, UserCommand::AssignRole { role })
            .await?
            .state)
    }

    /// Takes a role from a user.
    pub async fn remove_role(
        &self,
        request: &Request,
        tenant: TenantId,
        user_id: UserId,
        role: RoleName,
    ) -> AdminResult<User> {
        Ok(self
            .user_command(request, tenant, user_id, UserCommand::RemoveRole { role })
            .await?
            .state)
    }

    /// Locks a user (and revokes its sessions).
    pub async fn lock_user(
        &self,
        request: &Request,
        tenant: TenantId,
        user_id: UserId,
        reason: &str,
    ) -> AdminResult<User> {
        let command = UserCommand::LockUser {
            reason: reason.to_owned(),
            until: None,
        };
        Ok(self
            .user_command(request, tenant, user_id, command)
            .await?
            .state)
    }

    /// Unlocks a user.
    pub async fn unlock_user(
        &self,
        request: &Request,
        tenant: TenantId,
        user_id: UserId,
    ) -> AdminResult<User> {
        Ok(self
            .user_command(request, tenant, user_id, UserCommand::UnlockUser)
            .await?
            .state)
    }

    /// A user of a tenant.
    pub async fn user(&self, tenant: TenantId, user_id: UserId) -> AdminResult<User> {
        Ok(self.load::<User>(tenant, user_id).await?.state)
    }

    /// A user as it was at a version, position or time.
    pub async fn user_as_of(
        &self,
        tenant: TenantId,
        user_id: UserId,
        until: Until,
    ) -> AdminResult<User> {
        Ok(self
            .repo
            .load_until::<User>(tenant, user_id, until)
            .await?
            .state)
    }

    /// A user by username (case-insensitively) in an account.
    pub async fn user_by_username(
        &self,
        account_id: AccountId,
        username: &str,
    ) -> AdminResult<Option<User>> {
        let account = self.account(account_id).await?;
        match account.user_by_name(username) {
            Some(user_id) => {
                let user = self.user(account_id.tenant(), user_id).await?;
                Ok(user.id.is_some().then_some(user))
            }
            None => Ok(None),
        }
    }
}

fn signing_key_of(info: &KeyInfo) -> AdminResult<NewSigningKey> {
    let public_key = info
        .public_key
        .clone()
        .ok_or(KeyStoreError::WrongPurpose(info.key_id))?;
    Ok(NewSigningKey {
        key_id: info.key_id,
        public_key,
        expires_at: info.expires_at,
    })
}
