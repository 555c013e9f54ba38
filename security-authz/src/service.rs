//! The [`AuthorizationService`] and the projection that feeds it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use security_core::{
    Clock, EventStore, GlobalQuery, ManualClock, Permission, Projection, ProjectionError, RoleName,
    Scope, StoreError, StoredEvent, TenantId, Until,
};
use tokio::sync::watch;

use crate::audit::{
    AuditRecord, AuditSink, AuditedAction, AuditedRequest, AuditedResource, AuthzAuditEvent,
    GrantSampling,
};
use crate::condition::{AccessRequest, Condition, NamedCondition, OWNER, Owner};
use crate::decision::{Decision, DenyReason, Principal, Resource, Rule};
use crate::error::AuthzError;
use crate::limits::{EffectiveLimits, LimitExceeded, LimitKind, LimitSource};
use crate::model::ReadModel;
use crate::observe::{self, Check};
use crate::snapshot::{Snapshot, UserView};
use crate::trie::{Parts, valid_subscription};

/// Which `super_admin`s may act on other tenants' resources.
///
/// ROLES.md gives `super_admin` every permission in every tenant. A role is
/// assigned by an admin of the user's own tenant, so honouring it in any
/// tenant would let a tenant admin make itself an admin of every tenant;
/// and one deployment may hold several operators (several roots of
/// trust), whose system accounts must not reach each other's tenants. The
/// default therefore honours it across tenants only for users of an
/// operator's system account, and only on the accounts of that same
/// operator. Inside its own tenant a `super_admin` holds every permission
/// whatever the scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SuperAdminScope {
    /// Users of an operator's system account (`SystemAccountSet`, naming an
    /// account of that operator), on the accounts of that operator only.
    #[default]
    SystemAccounts,
    /// Users of any operator's system account, on the accounts of every
    /// operator (use only when one party runs every operator).
    AllOperators,
    /// Users of any tenant, on every tenant (ROLES.md taken literally; use
    /// only when the application alone assigns `super_admin`).
    AnyTenant,
}

/// Configuration shared by a service and the services rebuilt from it.
#[derive(Debug, Default)]
struct Config {
    super_admin_scope: SuperAdminScope,
    grant_sampling: GrantSampling,
    /// Conditional grants registered by the application: role → permission → conditions.
    conditional: HashMap<RoleName, HashMap<Box<str>, Vec<NamedCondition>>>,
    /// Guards: permission → conditions every grant must also meet.
    guards: HashMap<Box<str>, Vec<NamedCondition>>,
    projection_name: String,
}

/// What readers share with the projection.
#[derive(Debug)]
struct Published {
    snapshot: ArcSwap<Snapshot>,
    position: watch::Sender<u64>,
}

impl Published {
    fn new() -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(Snapshot::empty()),
            position: watch::Sender::new(0),
        }
    }

    fn publish(&self, snapshot: Snapshot) {
        let position = snapshot.position;
        self.snapshot.store(Arc::new(snapshot));
        self.position.send_replace(position);
    }
}

/// Builds an [`AuthorizationService`] and its [`AuthzProjection`].
#[derive(Debug)]
pub struct AuthorizationServiceBuilder {
    clock: Arc<dyn Clock>,
    audit: Option<Arc<dyn AuditSink>>,
    config: Config,
}

impl AuthorizationServiceBuilder {
    /// Sends every denied decision (and the sampled granted ones) to `sink`.
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Which granted decisions are recorded too (default: none).
    pub fn sample_grants(mut self, sampling: GrantSampling) -> Self {
        self.config.grant_sampling = sampling;
        self
    }

    /// Which `super_admin`s may cross tenants (default:
    /// [`SuperAdminScope::SystemAccounts`]).
    pub fn super_admin_scope(mut self, scope: SuperAdminScope) -> Self {
        self.config.super_admin_scope = scope;
        self
    }

    /// Grants `permission` to `role` (built-in or custom) on resources for
    /// which `condition` holds. The decision names the condition.
    pub fn grant_when(
        mut self,
        role: RoleName,
        permission: &Permission,
        name: &str,
        condition: impl Condition + 'static,
    ) -> Self {
        let named = NamedCondition {
            name: Arc::from(name),
            condition: Arc::new(condition),
        };
        self.config
            .conditional
            .entry(role)
            .or_default()
            .entry(permission.as_str().into())
            .or_default()
            .push(named);
        self
    }

    /// Requires `condition` for every grant of `permission`, whatever role
    /// grants it (an attribute-based guard, e.g. an approval limit).
    pub fn require(
        mut self,
        permission: &Permission,
        name: &str,
        condition: impl Condition + 'static,
    ) -> Self {
        let named = NamedCondition {
            name: Arc::from(name),
            condition: Arc::new(condition),
        };
        self.config
            .guards
            .entry(permission.as_str().into())
            .or_default()
            .push(named);
        self
    }

    /// The projection's name, the key of its checkpoint (default `"authz"`).
    pub fn projection_name(mut self, name: impl Into<String>) -> Self {
        self.config.projection_name = name.into();
        self
    }

    /// The service and the projection that keeps it up to date. Run the
    /// projection with a [`ProjectionRunner`](security_core::ProjectionRunner)
    /// over [`Scope::All`].
    pub fn build(self) -> (AuthorizationService, AuthzProjection) {
        let published = Arc::new(Published::new());
        let config = Arc::new(self.config);
        let service = AuthorizationService {
            inner: Arc::new(Inner {
                published: Arc::clone(&published),
                config: Arc::clone(&config),
                clock: self.clock,
                audit: self.audit,
                grants: AtomicU64::new(0),
            }),
        };
        let projection = AuthzProjection {
            name: config.projection_name.clone(),
            model: ReadModel::new(),
            published,
        };
        (service, projection)
    }
}

#[derive(Debug)]
struct Inner {
    published: Arc<Published>,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    audit: Option<Arc<dyn AuditSink>>,
    grants: AtomicU64,
}

/// Answers "may this principal do this to that?".
///
/// Decisions come from an immutable snapshot of the read model (accounts,
/// users, roles, policies), swapped atomically by the [`AuthzProjection`]
/// after each batch of events: a check never waits for a writer and never
/// sees half a change. Roles are bitsets and subject patterns are tries, so
/// a check costs the same with 10 or 100 000 policies.
///
/// Checks are synchronous (no I/O). Every decision checks the tenant: no
/// principal acts on another tenant's resource unless a `super_admin` (see
/// [`SuperAdminScope`]). Default deny: anything that goes wrong while
/// deciding is a deny with a reason.
///
/// Cloning is cheap and clones share everything.
#[derive(Debug, Clone)]
pub struct AuthorizationService {
    inner: Arc<Inner>,
}

impl AuthorizationService {
    /// A builder; `clock` tells the time of checks (locks with an end,
    /// policy and account expiry, audit records).
    pub fn builder(clock: Arc<dyn Clock>) -> AuthorizationServiceBuilder {
        AuthorizationServiceBuilder {
            clock,
            audit: None,
            config: Config {
                projection_name: "authz".to_owned(),
                ..Config::default()
            },
        }
    }

    /// The global position of the last event the current snapshot reflects.
    pub fn position(&self) -> u64 {
        self.inner.published.snapshot.load().position
    }

    /// Waits until the snapshot reflects every event up to `position` (e.g.
    /// the position of a command's last event, to read one's own writes).
    pub async fn wait_for_position(&self, position: u64) {
        let mut rx = self.inner.published.position.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|p| *p >= position).await;
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    // ----- permission checks ---------------------------------------------

    /// Decides whether `principal` may do `permission` to `resource`, and
    /// records the decision in the audit trail (every deny, sampled grants).
    pub fn authorize(
        &self,
        principal: &Principal,
        permission: &Permission,
        resource: &Resource,
    ) -> Decision {
        self.authorize_recorded(principal, permission, resource, None)
    }

    /// Decides like [`authorize`](Self::authorize), for an HTTP request:
    /// a denial is recorded with the request's method, path and client
    /// address.
    pub fn authorize_request(
        &self,
        principal: &Principal,
        permission: &Permission,
        resource: &Resource,
        request: &AuditedRequest,
    ) -> Decision {
        self.authorize_recorded(principal, permission, resource, Some(request))
    }

    #[tracing::instrument(
        level = "debug",
        name = "authz.authorize",
        skip_all,
        fields(
            operation = "authorize",
            tenant = %principal.tenant_id,
            user_id = %principal.user_id,
            permission = %permission,
            outcome = tracing::field::Empty,
        )
    )]
    fn authorize_recorded(
        &self,
        principal: &Principal,
        permission: &Permission,
        resource: &Resource,
        request: Option<&AuditedRequest>,
    ) -> Decision {
        let snapshot = self.inner.published.snapshot.load();
        let decision = self.decide_in(&snapshot, principal, permission, resource);
        self.audit(
            &snapshot,
            principal,
            || AuditedAction::Permission {
                permission: permission.clone(),
            },
            Some(resource),
            &decision,
            request,
        );
        observe::decided(Check::Permission, &decision);
        decision
    }

    /// Decides like [`authorize`](Self::authorize) but records nothing (for
    /// what-if questions and explanations).
    pub fn decide(
        &self,
        principal: &Principal,
        permission: &Permission,
        resource: &Resource,
    ) -> Decision {
        let snapshot = self.inner.published.snapshot.load();
        self.decide_in(&snapshot, principal, permission, resource)
    }

    /// Decides many checks against one snapshot (so they are consistent
    /// with each other), recording each like [`authorize`](Self::authorize).
    #[tracing::instrument(
        level = "debug",
        name = "authz.authorize_batch",
        skip_all,
        fields(
            operation = "authorize_batch",
            tenant = %principal.tenant_id,
            user_id = %principal.user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub fn authorize_batch<'a, I>(&self, principal: &Principal, checks: I) -> Vec<Decision>
    where
        I: IntoIterator<Item = (&'a Permission, &'a Resource)>,
    {
        let snapshot = self.inner.published.snapshot.load();
        let mut denied = false;
        let decisions = checks
            .into_iter()
            .map(|(permission, resource)| {
                let decision = self.decide_in(&snapshot, principal, permission, resource);
                self.audit(
                    &snapshot,
                    principal,
                    || AuditedAction::Permission {
                        permission: permission.clone(),
                    },
                    Some(resource),
                    &decision,
                    None,
                );
                observe::decided(Check::Permission, &decision);
                denied |= !decision.is_allowed();
                decision
            })
            .collect();
        observe::record_outcome(!denied);
        decisions
    }

    /// Which of `resources` `principal` may do `permission` to, in order.
    /// A listing filter: the resources left out are not recorded as denials.
    pub fn authorized<'r>(
        &self,
        principal: &Principal,
        permission: &Permission,
        resources: &'r [Resource],
    ) -> Vec<&'r Resource> {
        let snapshot = self.inner.published.snapshot.load();
        resources
            .iter()
            .filter(|r| {
                self.decide_in(&snapshot, principal, permission, r)
                    .is_allowed()
            })
            .collect()
    }

    fn user<'s>(
        &self,
        snapshot: &'s Snapshot,
        principal: &Principal,
    ) -> Result<&'s UserView, DenyReason> {
        // Users are known by tenant and id: a principal that names a
        // tenant its user is not in finds nobody.
        let user = snapshot
            .users
            .get(&(principal.tenant_id, principal.user_id))
            .ok_or(DenyReason::UnknownPrincipal)?;
        match user.gate(|| self.now()) {
            Some(reason) => Err(reason),
            None => Ok(user),
        }
    }

    /// Whether a `super_admin` of tenant `from` may act on tenant `to`.
    fn may_cross_tenants(&self, snapshot: &Snapshot, from: TenantId, to: TenantId) -> bool {
        match self.inner.config.super_admin_scope {
            SuperAdminScope::AnyTenant => true,
            SuperAdminScope::AllOperators => snapshot.system_accounts.contains_key(&from),
            SuperAdminScope::SystemAccounts => {
                snapshot.system_accounts.get(&from).is_some_and(|operator| {
                    snapshot
                        .tenants
                        .get(&to)
                        .is_some_and(|view| view.operator == *operator)
                })
            }
        }
    }

    fn decide_in(
        &self,
        snapshot: &Snapshot,
        principal: &Principal,
        permission: &Permission,
        resource: &Resource,
    ) -> Decision {
        let user = match self.user(snapshot, principal) {
            Ok(user) => user,
            Err(reason) => return Decision::deny(reason),
        };
        let cross = resource.tenant_id != user.tenant;
        let crossing_allowed =
            cross && self.may_cross_tenants(snapshot, user.tenant, resource.tenant_id);
        let index = snapshot
            .catalog
            .get(permission.as_str())
            .map(|i| i as usize);
        for role in &user.roles {
            if cross && !(crossing_allowed && role.crosses_tenants) {
                continue;
            }
            if role.everything || index.is_some_and(|i| role.grants.contains(i)) {
                return self.guarded(
                    user,
                    principal,
                    permission,
                    resource,
                    Rule::Role {
                        role: Arc::clone(&role.name),
                    },
                );
            }
        }
        if cross {
            return Decision::deny(DenyReason::CrossTenant);
        }
        let request = AccessRequest {
            principal,
            permission,
            resource,
            roles: &user.role_names,
        };
        let mut refusal: Option<DenyReason> = None;
        let config = &self.inner.config;
        for role in &user.roles {
            if index.is_some_and(|i| role.own.contains(i)) {
                match Owner.evaluate(&request) {
                    Ok(true) => {
                        let rule = Rule::RoleWhen {
                            role: Arc::clone(&role.name),
                            condition: Arc::from(OWNER),
                        };
                        return self.guarded(user, principal, permission, resource, rule);
                    }
                    Ok(false) => {
                        refusal.get_or_insert(DenyReason::ConditionNotMet {
                            role: Arc::clone(&role.name),
                            condition: Arc::from(OWNER),
                        });
                    }
                    Err(_) => {
                        refusal = Some(DenyReason::ConditionFailed {
                            condition: Arc::from(OWNER),
                        });
                    }
                }
            }
            if config.conditional.is_empty() {
                continue;
            }
            let Some(conditions) = config
                .conditional
                .get(&*role.name)
                .and_then(|m| m.get(permission.as_str()))
            else {
                continue;
            };
            for named in conditions {
                match named.condition.evaluate(&request) {
                    Ok(true) => {
                        let rule = Rule::RoleWhen {
                            role: Arc::clone(&role.name),
                            condition: Arc::clone(&named.name),
                        };
                        return self.guarded(user, principal, permission, resource, rule);
                    }
                    Ok(false) => {
                        refusal.get_or_insert(DenyReason::ConditionNotMet {
                            role: Arc::clone(&role.name),
                            condition: Arc::clone(&named.name),
                        });
                    }
                    Err(error) => {
                        tracing::warn!(condition = %named.name, %error, "authorization condition failed: denying");
                        refusal = Some(DenyReason::ConditionFailed {
                            condition: Arc::clone(&named.name),
                        });
                    }
                }
            }
        }
        Decision::deny(refusal.unwrap_or(DenyReason::NotGranted))
    }

    /// Applies the guards registered for `permission` to a grant.
    fn guarded(
        &self,
        user: &UserView,
        principal: &Principal,
        permission: &Permission,
        resource: &Resource,
        rule: Rule,
    ) -> Decision {
        let guards = &self.inner.config.guards;
        if guards.is_empty() {
            return Decision::Allow { rule };
        }
        let Some(conditions) = guards.get(permission.as_str()) else {
            return Decision::Allow { rule };
        };
        let request = AccessRequest {
            principal,
            permission,
            resource,
            roles: &user.role_names,
        };
        for named in conditions {
            match named.condition.evaluate(&request) {
                Ok(true) => {}
                Ok(false) => {
                    return Decision::deny(DenyReason::GuardRefused {
                        condition: Arc::clone(&named.name),
                    });
                }
                Err(error) => {
                    tracing::warn!(condition = %named.name, %error, "authorization guard failed: denying");
                    return Decision::deny(DenyReason::ConditionFailed {
                        condition: Arc::clone(&named.name),
                    });
                }
            }
        }
        Decision::Allow { rule }
    }

    // ----- subject permissions -------------------------------------------

    /// Whether `principal` may publish to the literal `subject`: the union
    /// of its policies in force and its account's default permissions,
    /// default deny, deny wins. Denials are recorded.
    #[tracing::instrument(
        level = "debug",
        name = "authz.authorize_publish",
        skip_all,
        fields(
            operation = "authorize_publish",
            tenant = %principal.tenant_id,
            user_id = %principal.user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub fn authorize_publish(&self, principal: &Principal, subject: &str) -> Decision {
        let snapshot = self.inner.published.snapshot.load();
        let decision = self.subject_decision(&snapshot, principal, |user| {
            if !security_core::subject::is_valid_literal(subject) {
                return Err(DenyReason::InvalidSubject);
            }
            Ok(user.publish_parts(subject, || self.now()))
        });
        self.audit(
            &snapshot,
            principal,
            || AuditedAction::Publish {
                subject: subject.to_owned(),
            },
            None,
            &decision,
            None,
        );
        observe::decided(Check::Publish, &decision);
        decision
    }

    /// Whether `principal` may subscribe to `subject` (wildcards allowed)
    /// in `queue`. Denials are recorded.
    #[tracing::instrument(
        level = "debug",
        name = "authz.authorize_subscribe",
        skip_all,
        fields(
            operation = "authorize_subscribe",
            tenant = %principal.tenant_id,
            user_id = %principal.user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub fn authorize_subscribe(
        &self,
        principal: &Principal,
        subject: &str,
        queue: Option<&str>,
    ) -> Decision {
        let snapshot = self.inner.published.snapshot.load();
        let decision = self.subject_decision(&snapshot, principal, |user| {
            if !valid_subscription(subject, queue) {
                return Err(DenyReason::InvalidSubject);
            }
            Ok(user.subscribe_parts(subject, queue, || self.now()))
        });
        self.audit(
            &snapshot,
            principal,
            || AuditedAction::Subscribe {
                subject: subject.to_owned(),
                queue: queue.map(str::to_owned),
            },
            None,
            &decision,
            None,
        );
        observe::decided(Check::Subscribe, &decision);
        decision
    }

    /// [`authorize_publish`](Self::authorize_publish) as a boolean.
    pub fn can_publish(&self, principal: &Principal, subject: &str) -> bool {
        self.authorize_publish(principal, subject).is_allowed()
    }

    /// [`authorize_subscribe`](Self::authorize_subscribe) as a boolean.
    pub fn can_subscribe(&self, principal: &Principal, subject: &str, queue: Option<&str>) -> bool {
        self.authorize_subscribe(principal, subject, queue)
            .is_allowed()
    }

    fn subject_decision<'s>(
        &self,
        snapshot: &'s Snapshot,
        principal: &Principal,
        check: impl FnOnce(&'s UserView) -> Result<Parts<'s>, DenyReason>,
    ) -> Decision {
        let parts = match self.user(snapshot, principal).and_then(check) {
            Ok(parts) => parts,
            Err(reason) => return Decision::deny(reason),
        };
        match (parts.deny, parts.allow) {
            (Some(deny), _) => Decision::deny(DenyReason::SubjectDenied {
                pattern: deny.clone(),
            }),
            (None, Some(allow)) => Decision::Allow {
                rule: Rule::Subject {
                    pattern: allow.clone(),
                },
            },
            (None, None) => Decision::deny(DenyReason::SubjectNotAllowed),
        }
    }

    // ----- limits ----------------------------------------------------------

    /// The limits that apply to `principal` now.
    pub fn limits(&self, principal: &Principal) -> Result<EffectiveLimits, AuthzError> {
        let snapshot = self.inner.published.snapshot.load();
        let user = self
            .user(&snapshot, principal)
            .map_err(AuthzError::Denied)?;
        let mut limits = user.limits(self.now());
        if let Some(tenant) = snapshot.tenants.get(&user.tenant) {
            limits.max_users = tenant.limits.max_users;
            limits.max_connections = tenant.limits.max_connections;
        }
        Ok(limits)
    }

    /// Checks that a message of `bytes` may be published by `principal`.
    pub fn check_payload_size(&self, principal: &Principal, bytes: u64) -> Result<(), AuthzError> {
        Ok(self
            .limits(principal)?
            .check(LimitKind::PayloadSize, bytes)?)
    }

    /// Checks that `principal` may hold `count` subscriptions at once (the
    /// count including the one about to be made).
    pub fn check_subscriptions(&self, principal: &Principal, count: u64) -> Result<(), AuthzError> {
        Ok(self
            .limits(principal)?
            .check(LimitKind::Subscriptions, count)?)
    }

    /// Checks that `principal` may send `bytes_per_second`.
    pub fn check_data_rate(
        &self,
        principal: &Principal,
        bytes_per_second: u64,
    ) -> Result<(), AuthzError> {
        Ok(self
            .limits(principal)?
            .check(LimitKind::DataRate, bytes_per_second)?)
    }

    /// Checks that `principal` may open its `count`-th connection at once.
    pub fn check_connections(&self, principal: &Principal, count: u64) -> Result<(), AuthzError> {
        Ok(self
            .limits(principal)?
            .check(LimitKind::Connections, count)?)
    }

    /// Checks that the account `tenant` may take one more user (`max_users`;
    /// the account aggregate enforces it again when the user is created).
    pub fn check_new_user(&self, tenant: TenantId) -> Result<(), AuthzError> {
        let snapshot = self.inner.published.snapshot.load();
        let view = snapshot
            .tenants
            .get(&tenant)
            .ok_or(AuthzError::Denied(DenyReason::AccountInactive))?;
        if view.closed.is_some() || view.expires_at.is_some_and(|e| self.now() >= e) {
            return Err(AuthzError::Denied(DenyReason::AccountInactive));
        }
        match view.limits.max_users {
            Some(limit) if view.user_count >= limit.max => Err(LimitExceeded {
                kind: LimitKind::Users,
                limit: limit.max,
                requested: view.user_count + 1,
                source_of_limit: LimitSource::Account,
            }
            .into()),
            _ => Ok(()),
        }
    }

    // ----- history ---------------------------------------------------------

    /// The authorizer as it was at `until` (a time or a global position),
    /// rebuilt from the event history: ask it "was this allowed then, and by
    /// which rule?". Its clock is fixed at that time, and it records
    /// nothing in the audit trail.
    pub async fn as_of(&self, store: &dyn EventStore, until: Until) -> Result<Self, AuthzError> {
        if let Until::Version(_) = until {
            return Err(StoreError::InvalidRequest(
                "a global read cannot stop at a stream version",
            )
            .into());
        }
        let mut model = ReadModel::new();
        loop {
            let query = GlobalQuery {
                after: model.position(),
                until,
                limit: security_core::DEFAULT_BATCH_SIZE,
            };
            let batch = store.read_global(Scope::All, query).await?;
            if batch.is_empty() {
                break;
            }
            for event in &batch {
                model.apply(event)?;
            }
        }
        let at = match until {
            Until::Time(t) => Some(t),
            Until::Position(_) | Until::Version(_) => model.high_water(),
            Until::End => None,
        };
        let clock: Arc<dyn Clock> = match at {
            Some(t) => Arc::new(ManualClock::new(t)),
            None => Arc::clone(&self.inner.clock),
        };
        let published = Arc::new(Published::new());
        published.publish(model.flush());
        Ok(Self {
            inner: Arc::new(Inner {
                published,
                config: Arc::clone(&self.inner.config),
                clock,
                audit: None,
                grants: AtomicU64::new(0),
            }),
        })
    }

    // ----- audit -----------------------------------------------------------

    fn audit(
        &self,
        snapshot: &Snapshot,
        principal: &Principal,
        action: impl FnOnce() -> AuditedAction,
        resource: Option<&Resource>,
        decision: &Decision,
        request: Option<&AuditedRequest>,
    ) {
        let Some(sink) = &self.inner.audit else {
            return;
        };
        let event = match decision {
            Decision::Deny { reason } => AuthzAuditEvent::AccessDenied {
                user_id: principal.user_id,
                action: action(),
                resource: resource.map(AuditedResource::from),
                reason: reason.clone(),
                request: request.cloned(),
                read_model_position: snapshot.position,
                decided_at: self.now(),
            },
            Decision::Allow { rule } => {
                let GrantSampling::OneIn(n) = self.inner.config.grant_sampling else {
                    return;
                };
                let n = n.max(1);
                if !self
                    .inner
                    .grants
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(n)
                {
                    return;
                }
                AuthzAuditEvent::AccessGranted {
                    user_id: principal.user_id,
                    action: action(),
                    resource: resource.map(AuditedResource::from),
                    rule: rule.clone(),
                    read_model_position: snapshot.position,
                    sampled_one_in: n,
                    decided_at: self.now(),
                }
            }
        };
        sink.record(AuditRecord {
            tenant_id: principal.tenant_id,
            event,
        });
    }
}

/// The projection that keeps an [`AuthorizationService`] up to date: feed
/// it the global stream ([`Scope::All`]) with a
/// [`ProjectionRunner`](security_core::ProjectionRunner).
///
/// Its state lives in memory: start it from position 0 (in-memory
/// checkpoints, or [`ProjectionRunner::rebuild`](security_core::ProjectionRunner::rebuild))
/// each time the process starts.
pub struct AuthzProjection {
    name: String,
    model: ReadModel,
    published: Arc<Published>,
}

impl fmt::Debug for AuthzProjection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthzProjection")
            .field("name", &self.name)
            .field("position", &self.model.position())
            .finish_non_exhaustive()
    }
}

impl Projection for AuthzProjection {
    fn name(&self) -> &str {
        &self.name
    }

    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        Ok(self.model.apply(event)?)
    }

    fn reset(&mut self) {
        self.model = ReadModel::new();
    }

    fn flush(&mut self) {
        self.published.publish(self.model.flush());
    }
}
