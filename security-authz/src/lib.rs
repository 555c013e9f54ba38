//! Authorization: given a validated principal, may it do this to that?
//!
//! - **RBAC**: the seven built-in roles and the matrix of ROLES.md
//!   ([`MATRIX`], [`BuiltinRole`]), tenant-defined roles (the `Role`
//!   aggregate of `security-core`), permissions as `resource:action`.
//! - **Ownership and attributes**: the matrix's `own` cells are the
//!   [`OWNER`] condition; applications register their own [`Condition`]s as
//!   conditional grants or guards. Every decision checks the tenant: no
//!   principal acts on another tenant's resource unless `super_admin`
//!   ([`SuperAdminScope`]).
//! - **Subject permissions** (NATS style): the union of a user's policies
//!   and its account's defaults, default deny, deny wins, compiled into
//!   token tries ([`CompiledPermissions`]).
//! - **Limits**: the account's and the policies' ([`EffectiveLimits`]),
//!   with a typed [`LimitExceeded`] error.
//! - **Decisions**: [`Decision`] `Allow` (with the [`Rule`] that matched) or
//!   `Deny` (with the [`DenyReason`]); anything that goes wrong is a deny.
//!   Denials (and a sample of grants) are recorded as [`AuthzAuditEvent`]s.
//! - **Read model**: an [`AuthzProjection`] fed by the core's
//!   `ProjectionRunner` swaps immutable snapshots into the
//!   [`AuthorizationService`]; readers never block writers. Roles are
//!   bitsets and patterns tries, so a check costs the same with 10 or
//!   100 000 policies.
//! - **As of a time**: [`AuthorizationService::as_of`] rebuilds the
//!   authorizer from history to answer "was this allowed then, and by
//!   which rule?".
//! - **Secure messages**: [`SecureMessage`], [`SecurityContext`],
//!   [`SecurePublisher::publish_secure`], and (feature `tower`) a
//!   `RequirePermissionLayer` for HTTP services.
//!
//! ```
//! use std::sync::Arc;
//! use chrono::{TimeZone, Utc};
//! use security_authz::{AuthorizationService, DenyReason, Principal, Resource, Rule};
//! use security_core::*;
//! use security_eventstore::MemoryEventStore;
//! use uuid::Uuid;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = Arc::new(MemoryEventStore::new());
//! let repo = Repository::new(store.clone(), Arc::new(SequentialIds::new()));
//! let clock = Arc::new(ManualClock::new(Utc.timestamp_opt(1_700_000_000, 0).unwrap()));
//!
//! // The service, and the projection that keeps it up to date.
//! let (authz, projection) = AuthorizationService::builder(clock.clone()).build();
//! let checkpoints = Arc::new(InMemoryCheckpoints::new());
//! let mut runner = ProjectionRunner::new(store.clone(), checkpoints, projection, Scope::All).await?;
//!
//! // A tenant with one manager, Alice.
//! let account = AccountId::from_uuid(Uuid::from_u128(1));
//! let tenant = account.tenant();
//! let ctx = CommandContext::new(tenant, clock.now());
//! let create = AccountCommand::CreateAccount {
//!     account_id: account,
//!     name: "First Bank".into(),
//!     operator_id: OperatorId::from_uuid(Uuid::from_u128(9)),
//!     claims: AccountClaims::default(),
//! };
//! repo.execute::<Account>(account, &create, &ctx).await.unwrap();
//! let alice = UserId::from_uuid(Uuid::from_u128(2));
//! let create = UserCommand::CreateUser {
//!     user_id: alice,
//!     account_id: account,
//!     username: "alice".into(),
//!     credentials: Credential::Token { token_hash: "keyed-hash".into(), expires_at: None },
//!     metadata: Default::default(),
//!     must_change_password: false,
//! };
//! repo.execute::<User>(alice, &create, &ctx).await.unwrap();
//! let assign = UserCommand::AssignRole { role: RoleName::new("manager").unwrap() };
//! repo.execute::<User>(alice, &assign, &ctx).await.unwrap();
//! runner.catch_up().await?;
//!
//! let alice = Principal::new(tenant, alice);
//! let approve: Permission = "loan:approve".parse().unwrap();
//! let decision = authz.authorize(&alice, &approve, &Resource::in_tenant(tenant));
//! assert!(matches!(decision.rule(), Some(Rule::Role { role }) if role.as_str() == "manager"));
//!
//! // Managers may not delete users, and nobody acts on another tenant.
//! let delete: Permission = "user:delete".parse().unwrap();
//! let decision = authz.authorize(&alice, &delete, &Resource::in_tenant(tenant));
//! assert_eq!(decision.deny_reason(), Some(&DenyReason::NotGranted));
//! let elsewhere = Resource::in_tenant(TenantId::from_uuid(Uuid::from_u128(77)));
//! let decision = authz.authorize(&alice, &approve, &elsewhere);
//! assert_eq!(decision.deny_reason(), Some(&DenyReason::CrossTenant));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Threat model and defaults
//!
//! - Default deny everywhere: unknown principal, tenant mismatch, locked or
//!   expired user, suspended or expired account, unknown permission, a
//!   condition that errs: all deny.
//! - Roles come from the live read model, not from the token: removing a
//!   role takes effect at the next snapshot, not at token expiry.
//! - `super_admin` crosses tenants only for users of an operator's system
//!   account, and only into the accounts of that operator, unless
//!   [`SuperAdminScope::AllOperators`] or [`SuperAdminScope::AnyTenant`] is
//!   chosen.
//! - The audit trail records no attribute and no secret; its queue never
//!   blocks a check and counts what it had to drop.

mod audit;
mod claims_policy;
mod condition;
mod cowmap;
mod decision;
mod error;
#[cfg(feature = "tower")]
mod layer;
mod limits;
mod matrix;
mod model;
pub mod observe;
mod secure;
mod service;
mod snapshot;
mod trie;

pub use audit::{
    AUDIT_AGGREGATE_TYPE, AuditLog, AuditRecord, AuditSink, AuditWriter, AuditedAction,
    AuditedRequest, AuditedResource, AuthzAuditEvent, GrantSampling, MAX_AUDITED_PATH,
};
pub use claims_policy::{ClaimsPolicy, TokenRoles};
pub use condition::{AccessRequest, Condition, ConditionError, FnCondition, OWNER, Owner};
pub use decision::{Attributes, ConditionName, Decision, DenyReason, Principal, Resource, Rule};
pub use error::{AuthzError, SinkError};
#[cfg(feature = "tower")]
pub use layer::{RequirePermission, RequirePermissionLayer};
pub use limits::{EffectiveLimits, Limit, LimitExceeded, LimitKind, LimitSource};
pub use matrix::{BuiltinRole, Cell, Grant, MATRIX, builtin_permissions};
pub use secure::{MessageSink, SecureMessage, SecurePublisher, SecurityContext, bearer_token};
pub use service::{
    AuthorizationService, AuthorizationServiceBuilder, AuthzProjection, SuperAdminScope,
};
pub use trie::{CompiledPermissions, MatchedPattern, PatternSource, SubjectDecision};
