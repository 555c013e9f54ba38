//! A small world of accounts, users, roles and policies in a memory store,
//! with an authorizer fed by the core's projection runner.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use security_authz::{
    AuditLog, AuditWriter, AuthorizationService, AuthorizationServiceBuilder, AuthzProjection,
    Principal,
};
use security_core::*;
use security_eventstore::MemoryEventStore;
use uuid::Uuid;

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

pub(crate) fn perm(p: &str) -> Permission {
    Permission::parse(p).unwrap()
}

pub(crate) fn role(r: &str) -> RoleName {
    RoleName::new(r).unwrap()
}

pub(crate) struct World {
    pub(crate) store: Arc<MemoryEventStore>,
    pub(crate) repo: Repository,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) authz: AuthorizationService,
    pub(crate) runner: ProjectionRunner<AuthzProjection>,
    pub(crate) audit: AuditLog,
    pub(crate) writer: AuditWriter,
    pub(crate) operator: OperatorId,
    next: u128,
}

impl World {
    pub(crate) async fn new() -> Self {
        Self::with(|b| b).await
    }

    pub(crate) async fn with(
        configure: impl FnOnce(AuthorizationServiceBuilder) -> AuthorizationServiceBuilder,
    ) -> Self {
        let store = Arc::new(MemoryEventStore::new());
        let ids = Arc::new(SequentialIds::new());
        let repo = Repository::new(store.clone(), ids.clone());
        let clock = Arc::new(ManualClock::new(t0()));
        let (audit, writer) = AuditLog::new(1024, store.clone(), ids.clone());
        let builder = AuthorizationService::builder(clock.clone()).audit(Arc::new(audit.clone()));
        let (authz, projection) = configure(builder).build();
        let runner = ProjectionRunner::new(
            store.clone(),
            Arc::new(InMemoryCheckpoints::new()),
            projection,
            Scope::All,
        )
        .await
        .unwrap();
        let mut world = Self {
            store,
            repo,
            clock,
            authz,
            runner,
            audit,
            writer,
            operator: OperatorId::from_uuid(Uuid::nil()),
            next: 1000,
        };
        world.operator = world.create_operator().await;
        world
    }

    pub(crate) fn uuid(&mut self) -> Uuid {
        self.next += 1;
        Uuid::from_u128(self.next)
    }

    pub(crate) fn ctx(&self, tenant: TenantId) -> CommandContext {
        CommandContext::new(tenant, self.clock.now())
    }

    pub(crate) fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Applies everything committed so far to the authorizer.
    pub(crate) async fn sync(&mut self) {
        self.runner.catch_up().await.unwrap();
    }

    /// Another operator (a second root of trust in the same store).
    pub(crate) async fn create_operator(&mut self) -> OperatorId {
        let operator_id = OperatorId::from_uuid(self.uuid());
        let initial_key = NewSigningKey {
            key_id: KeyId::from_uuid(self.uuid()),
            public_key: PublicKey::ed25519("OTESTOPERATORKEY"),
            expires_at: None,
        };
        let cmd = OperatorCommand::CreateOperator {
            operator_id,
            name: "operator".into(),
            initial_key,
        };
        self.repo
            .execute::<Operator>(operator_id, &cmd, &self.ctx(TenantId::SYSTEM))
            .await
            .unwrap();
        operator_id
    }

    pub(crate) async fn set_system_account(&mut self, account: AccountId) {
        self.set_system_account_of(self.operator, account).await;
    }

    pub(crate) async fn set_system_account_of(&mut self, operator: OperatorId, account: AccountId) {
        let cmd = OperatorCommand::SetSystemAccount {
            account_id: account,
        };
        self.repo
            .execute::<Operator>(operator, &cmd, &self.ctx(TenantId::SYSTEM))
            .await
            .unwrap();
    }

    /// An account of another operator.
    pub(crate) async fn account_of(&mut self, operator: OperatorId, name: &str) -> AccountId {
        let account_id = AccountId::from_uuid(self.uuid());
        let cmd = AccountCommand::CreateAccount {
            account_id,
            name: name.into(),
            operator_id: operator,
            claims: AccountClaims::default(),
        };
        self.repo
            .execute::<Account>(account_id, &cmd, &self.ctx(account_id.tenant()))
            .await
            .unwrap();
        account_id
    }

    pub(crate) async fn account(&mut self, name: &str) -> AccountId {
        self.account_with(name, AccountClaims::default()).await
    }

    pub(crate) async fn account_with(&mut self, name: &str, claims: AccountClaims) -> AccountId {
        let account_id = AccountId::from_uuid(self.uuid());
        let cmd = AccountCommand::CreateAccount {
            account_id,
            name: name.into(),
            operator_id: self.operator,
            claims,
        };
        self.repo
            .execute::<Account>(account_id, &cmd, &self.ctx(account_id.tenant()))
            .await
            .unwrap();
        account_id
    }

    pub(crate) async fn account_command(&mut self, account: AccountId, cmd: AccountCommand) {
        self.repo
            .execute::<Account>(account, &cmd, &self.ctx(account.tenant()))
            .await
            .unwrap();
    }

    /// A user in the account's roster, with the given roles.
    pub(crate) async fn user(&mut self, account: AccountId, name: &str, roles: &[&str]) -> UserId {
        let user_id = UserId::from_uuid(self.uuid());
        self.user_with_id(account, user_id, name, roles).await
    }

    /// [`user`](Self::user) with a chosen id, written straight through the
    /// repository (no admin-API check).
    pub(crate) async fn user_with_id(
        &mut self,
        account: AccountId,
        user_id: UserId,
        name: &str,
        roles: &[&str],
    ) -> UserId {
        let tenant = account.tenant();
        let roster = AccountCommand::AddUser {
            user_id,
            username: name.into(),
        };
        self.repo
            .execute::<Account>(account, &roster, &self.ctx(tenant))
            .await
            .unwrap();
        let cmd = UserCommand::CreateUser {
            user_id,
            account_id: account,
            username: name.into(),
            credentials: Credential::Token {
                token_hash: "keyed-hash".into(),
                expires_at: None,
            },
            metadata: BTreeMap::new(),
            must_change_password: false,
        };
        self.repo
            .execute::<User>(user_id, &cmd, &self.ctx(tenant))
            .await
            .unwrap();
        for r in roles {
            self.user_command(tenant, user_id, UserCommand::AssignRole { role: role(r) })
                .await;
        }
        user_id
    }

    pub(crate) async fn user_command(
        &mut self,
        tenant: TenantId,
        user: UserId,
        cmd: UserCommand,
    ) -> CommandOutcome<User> {
        self.repo
            .execute::<User>(user, &cmd, &self.ctx(tenant))
            .await
            .unwrap()
    }

    pub(crate) async fn define_role(&mut self, tenant: TenantId, name: &str, permissions: &[&str]) {
        let name = role(name);
        let cmd = RoleCommand::DefineRole {
            name: name.clone(),
            description: String::new(),
            permissions: permissions.iter().map(|p| perm(p)).collect::<BTreeSet<_>>(),
        };
        self.repo
            .execute::<Role>(RoleId::for_name(tenant, &name), &cmd, &self.ctx(tenant))
            .await
            .unwrap();
    }

    pub(crate) async fn role_command(&mut self, tenant: TenantId, name: &str, cmd: RoleCommand) {
        let id = RoleId::for_name(tenant, &role(name));
        self.repo
            .execute::<Role>(id, &cmd, &self.ctx(tenant))
            .await
            .unwrap();
    }

    pub(crate) async fn policy(
        &mut self,
        tenant: TenantId,
        permissions: Permissions,
        limits: ResourceLimits,
    ) -> PolicyId {
        let policy_id = PolicyId::from_uuid(self.uuid());
        let cmd = PolicyCommand::CreatePolicy {
            policy_id,
            name: format!("policy {policy_id}"),
            description: String::new(),
            permissions,
            limits,
        };
        self.repo
            .execute::<Policy>(policy_id, &cmd, &self.ctx(tenant))
            .await
            .unwrap();
        policy_id
    }

    pub(crate) async fn policy_command(
        &mut self,
        tenant: TenantId,
        policy: PolicyId,
        cmd: PolicyCommand,
    ) {
        self.repo
            .execute::<Policy>(policy, &cmd, &self.ctx(tenant))
            .await
            .unwrap();
    }

    pub(crate) async fn assign_policy(&mut self, tenant: TenantId, user: UserId, policy: PolicyId) {
        self.user_command(
            tenant,
            user,
            UserCommand::AssignPolicy { policy_id: policy },
        )
        .await;
    }

    pub(crate) fn principal(account: AccountId, user: UserId) -> Principal {
        Principal::new(account.tenant(), user)
    }
}

pub(crate) fn publish_perms(allow: &[&str], deny: &[&str]) -> Permissions {
    Permissions {
        publish: SubjectPermissions::from_patterns(allow.iter().copied(), deny.iter().copied())
            .unwrap(),
        ..Permissions::default()
    }
}
