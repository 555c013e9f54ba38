//! Random sequences of role events against a simple model of RBAC
//! (default deny, roles from the live model, custom roles by tenant).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use security_authz::{
    AuthorizationService, AuthzProjection, BuiltinRole, Grant, Principal, Resource,
};
use security_core::*;
use uuid::Uuid;

use crate::common::{perm, role, t0};

const PERMS: [&str; 5] = [
    "loan:read",
    "loan:approve",
    "vault:open",
    "vault:close",
    "report:view",
];
const CUSTOM: [&str; 3] = ["r0", "r1", "r2"];
const ASSIGNABLE: [&str; 6] = ["r0", "r1", "r2", "officer", "customer", "auditor"];

#[derive(Debug, Clone)]
enum Op {
    Define(usize, Vec<bool>),
    Retire(usize),
    Assign(usize, usize),
    Remove(usize, usize),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0..3_usize,
            prop::collection::vec(any::<bool>(), PERMS.len())
        )
            .prop_map(|(r, p)| Op::Define(r, p)),
        (0..3_usize).prop_map(Op::Retire),
        (0..3_usize, 0..ASSIGNABLE.len()).prop_map(|(u, r)| Op::Assign(u, r)),
        (0..3_usize, 0..ASSIGNABLE.len()).prop_map(|(u, r)| Op::Remove(u, r)),
        Just(Op::Flush),
    ]
}

/// Feeds hand-made stored events to a projection.
struct Feed {
    projection: AuthzProjection,
    position: u64,
    versions: BTreeMap<StreamId, u64>,
    history: Vec<StoredEvent>,
}

impl Feed {
    fn push<E: DomainEvent>(&mut self, tenant: TenantId, aggregate: &str, id: Uuid, event: &E) {
        self.position += 1;
        let stream_id = StreamId::new(tenant, aggregate, id);
        let version = self.versions.entry(stream_id.clone()).or_default();
        *version += 1;
        let new = NewEvent {
            event_id: EventId::from_uuid(Uuid::from_u128(u128::from(self.position))),
            event_type: Arc::from(event.event_type()),
            schema_version: event.schema_version(),
            occurred_at: t0(),
            payload: Arc::new(event.encode().unwrap()),
            metadata: Arc::new(EventMetadata::default()),
        };
        let stored = StoredEvent::from_new(new, stream_id, *version, self.position);
        self.projection.apply(&stored).unwrap();
        self.history.push(stored);
    }
}

#[derive(Default)]
struct Model {
    custom: BTreeMap<usize, (BTreeSet<usize>, bool)>, // role → (permissions, live)
    users: BTreeMap<usize, BTreeSet<usize>>,          // user → assignable indexes
}

impl Model {
    fn allowed(&self, user: usize, p: usize) -> bool {
        self.users.get(&user).is_some_and(|roles| {
            roles
                .iter()
                .any(|&r| match BuiltinRole::from_name(ASSIGNABLE[r]) {
                    Some(b) => b.grant(&perm(PERMS[p])) == Some(Grant::Always),
                    None => self
                        .custom
                        .get(&r)
                        .is_some_and(|(perms, live)| *live && perms.contains(&p)),
                })
        })
    }
}

fn check(
    authz: &AuthorizationService,
    model: &Model,
    tenant: TenantId,
    users: &[UserId],
) -> Result<(), TestCaseError> {
    let here = Resource::in_tenant(tenant);
    for (u, user) in users.iter().enumerate() {
        for (p, name) in PERMS.iter().enumerate() {
            let decision = authz.decide(&Principal::new(tenant, *user), &perm(name), &here);
            prop_assert_eq!(
                decision.is_allowed(),
                model.allowed(u, p),
                "user {} {} {}",
                u,
                name,
                decision
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn rbac_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let clock = Arc::new(ManualClock::new(t0()));
        let (authz, projection) = AuthorizationService::builder(clock).build();
        let mut feed = Feed { projection, position: 0, versions: BTreeMap::new(), history: Vec::new() };
        let account = AccountId::from_uuid(Uuid::from_u128(1));
        let tenant = account.tenant();
        feed.push(tenant, "account", account.as_uuid(), &AccountEvent::AccountCreated {
            account_id: account, name: "bank".into(), operator_id: OperatorId::from_uuid(Uuid::from_u128(2)),
            jwt_claims: AccountClaims::default(), created_at: t0(),
        });
        let users: Vec<UserId> = (0..3).map(|i| UserId::from_uuid(Uuid::from_u128(100 + i))).collect();
        for user in &users {
            feed.push(tenant, "user", user.as_uuid(), &UserEvent::UserCreated {
                user_id: *user, account_id: account, username: user.to_string(), credential_type: CredentialType::Token,
                credential: Credential::Token { token_hash: "h".into(), expires_at: None },
                metadata: BTreeMap::new(), must_change_password: false, created_at: t0(),
            });
        }
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Define(r, mask) => {
                    let name = role(CUSTOM[r]);
                    let role_id = RoleId::for_name(tenant, &name);
                    let chosen: BTreeSet<usize> = (0..PERMS.len()).filter(|&i| mask[i]).collect();
                    let permissions: BTreeSet<Permission> = chosen.iter().map(|&i| perm(PERMS[i])).collect();
                    let event = match model.custom.get(&r) {
                        Some((old, true)) => RoleEvent::RolePermissionsUpdated {
                            role_id, old_permissions: old.iter().map(|&i| perm(PERMS[i])).collect(),
                            new_permissions: permissions, version: 2, updated_at: t0(),
                        },
                        _ => RoleEvent::RoleDefined { role_id, name, description: String::new(), permissions, defined_at: t0() },
                    };
                    feed.push(tenant, "role", role_id.as_uuid(), &event);
                    model.custom.insert(r, (chosen, true));
                }
                Op::Retire(r) => {
                    if let Some((_, live)) = model.custom.get_mut(&r).filter(|(_, live)| *live) {
                        let role_id = RoleId::for_name(tenant, &role(CUSTOM[r]));
                        feed.push(tenant, "role", role_id.as_uuid(), &RoleEvent::RoleRetired { role_id, retired_at: t0() });
                        *live = false;
                    }
                }
                Op::Assign(u, r) => {
                    if model.users.entry(u).or_default().insert(r) {
                        feed.push(tenant, "user", users[u].as_uuid(), &UserEvent::RoleAssigned { user_id: users[u], role: role(ASSIGNABLE[r]), assigned_at: t0() });
                    }
                }
                Op::Remove(u, r) => {
                    if model.users.entry(u).or_default().remove(&r) {
                        feed.push(tenant, "user", users[u].as_uuid(), &UserEvent::RoleRemoved { user_id: users[u], role: role(ASSIGNABLE[r]), removed_at: t0() });
                    }
                }
                Op::Flush => {
                    feed.projection.flush();
                    check(&authz, &model, tenant, &users)?;
                }
            }
        }
        feed.projection.flush();
        check(&authz, &model, tenant, &users)?;
        // Rebuilt from nothing in one batch, the same events give the same answers.
        let (rebuilt, mut projection) = AuthorizationService::builder(Arc::new(ManualClock::new(t0()))).build();
        for event in &feed.history {
            projection.apply(event).unwrap();
        }
        projection.flush();
        prop_assert_eq!(rebuilt.position(), feed.position);
        check(&rebuilt, &model, tenant, &users)?;
    }
}
