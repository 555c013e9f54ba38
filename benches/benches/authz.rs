//! Authorization checks, side by side on the same workload:
//! security-authz, casbin (RBAC with domains) and cedar-policy.
//!
//! Workload: the ROLES.md matrix as 100 permission rules (the matrix's 92
//! granted cells, `own` cells as ownership conditions, plus 8 rules of a
//! custom role), 1 000 users each linked to one role in one tenant, and two
//! checks: a manager approving a loan (allowed) and a customer-service
//! agent approving one (denied).
//!
//! `authz/observe/*`: a check with and without its metrics and span.
//!
//! Targets: ≥ 100× faster per check than both references; a check with
//! 100 000 policies at most 2× one with 100; and `can_publish` on compiled
//! tries against the reference loop over patterns.
//!
//! `cargo bench -p security-benches --bench authz -- --warm-up-time 1 --measurement-time 3`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark code"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use casbin::prelude::*;
use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};
use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use metrics_exporter_prometheus::PrometheusBuilder;
use security::authz::{
    AuditRecord, AuditSink, AuthorizationService, AuthzProjection, BuiltinRole, Cell,
    CompiledPermissions, MATRIX, Principal, Resource,
};
use security::core::{
    AccountClaims, AccountEvent, AccountId, Credential, CredentialType, DomainEvent, EventId,
    EventMetadata, ManualClock, NewEvent, OperatorId, Permission, Permissions, PolicyEvent,
    PolicyId, Projection, ResourceLimits, RoleEvent, RoleId, RoleName, StoredEvent, StreamId,
    SubjectPermissions, TenantId, UserEvent, UserId,
};
use uuid::Uuid;

const USERS: usize = 1_000;
/// Extra rules of the custom role that bring the matrix's 92 to 100.
const CUSTOM_RULES: [&str; 8] = [
    "vault:open",
    "vault:close",
    "vault:audit",
    "branch:view",
    "branch:update",
    "card:issue",
    "card:block",
    "card:view",
];
const CUSTOM_ROLE: &str = "teller";
/// The checked users: user 2 is a manager, user 4 a customer-service agent
/// (users take the built-in roles in turn).
const ALLOWED_USER: usize = 2;
const DENIED_USER: usize = 4;

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

fn role_of(i: usize) -> &'static str {
    // 1 000 users over the 7 built-in roles and the custom one.
    if i % 8 == 7 {
        CUSTOM_ROLE
    } else {
        BuiltinRole::ALL[i % 8].name()
    }
}

// ----- security-authz ---------------------------------------------------------

/// Feeds hand-made stored events to the projection (what a ProjectionRunner
/// does from a store), without an async store in the way of the setup.
struct Feed {
    projection: AuthzProjection,
    position: u64,
    versions: BTreeMap<StreamId, u64>,
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
        self.projection
            .apply(&StoredEvent::from_new(
                new,
                stream_id,
                *version,
                self.position,
            ))
            .unwrap();
    }
}

fn user_id(i: usize) -> UserId {
    UserId::from_uuid(Uuid::from_u128(1_000_000 + i as u128))
}

/// Counts audit records (stands in for the audit queue on the check path).
#[derive(Debug, Default)]
struct CountingSink(AtomicU64);

impl AuditSink for CountingSink {
    fn record(&self, record: AuditRecord) {
        black_box(record);
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The service over the workload, with `extra_rules` more role rules and
/// `subject_policies` NATS policies (both spread over 1 000 users).
fn ours(
    extra_rules: usize,
    subject_policies: usize,
    audit: bool,
) -> (AuthorizationService, TenantId) {
    let clock = Arc::new(ManualClock::new(t0()));
    let mut builder = AuthorizationService::builder(clock);
    if audit {
        builder = builder.audit(Arc::new(CountingSink::default()));
    }
    let (service, projection) = builder.build();
    let mut feed = Feed {
        projection,
        position: 0,
        versions: BTreeMap::new(),
    };
    let account = AccountId::from_uuid(Uuid::from_u128(1));
    let tenant = account.tenant();
    feed.push(
        tenant,
        "account",
        account.as_uuid(),
        &AccountEvent::AccountCreated {
            account_id: account,
            name: "bank".into(),
            operator_id: OperatorId::from_uuid(Uuid::from_u128(2)),
            jwt_claims: AccountClaims::default(),
            created_at: t0(),
        },
    );
    let define = |feed: &mut Feed, name: &str, permissions: BTreeSet<Permission>| {
        let name = RoleName::new(name).unwrap();
        let role_id = RoleId::for_name(tenant, &name);
        feed.push(
            tenant,
            "role",
            role_id.as_uuid(),
            &RoleEvent::RoleDefined {
                role_id,
                name,
                description: String::new(),
                permissions,
                defined_at: t0(),
            },
        );
    };
    define(
        &mut feed,
        CUSTOM_ROLE,
        CUSTOM_RULES.iter().map(|p| p.parse().unwrap()).collect(),
    );
    // Extra rules: roles of 20 permissions each over a catalog of 2 000.
    let extra_roles = extra_rules / 20;
    for r in 0..extra_roles {
        let permissions = (0..20)
            .map(|k| {
                format!("res{}:act{}", (r * 7 + k) % 400, k % 5)
                    .parse()
                    .unwrap()
            })
            .collect();
        define(&mut feed, &format!("extra-{r}"), permissions);
    }
    for i in 0..USERS {
        let user = user_id(i);
        feed.push(
            tenant,
            "user",
            user.as_uuid(),
            &UserEvent::UserCreated {
                user_id: user,
                account_id: account,
                username: format!("user{i}"),
                credential_type: CredentialType::Token,
                credential: Credential::Token {
                    token_hash: "h".into(),
                    expires_at: None,
                },
                metadata: BTreeMap::new(),
                must_change_password: false,
                created_at: t0(),
            },
        );
        let mut roles = vec![role_of(i).to_owned()];
        if extra_roles > 0 {
            // Every user also holds a few of the extra roles.
            roles.extend((0..3).map(|k| format!("extra-{}", (i * 3 + k) % extra_roles)));
        }
        for role in roles {
            feed.push(
                tenant,
                "user",
                user.as_uuid(),
                &UserEvent::RoleAssigned {
                    user_id: user,
                    role: RoleName::new(role).unwrap(),
                    assigned_at: t0(),
                },
            );
        }
    }
    for p in 0..subject_policies {
        let policy_id = PolicyId::from_uuid(Uuid::from_u128(5_000_000 + p as u128));
        let permissions = Permissions {
            publish: SubjectPermissions::from_patterns(
                [format!("svc{p}.>"), format!("shared.{p}.*")],
                [format!("svc{p}.admin")],
            )
            .unwrap(),
            ..Permissions::default()
        };
        feed.push(
            tenant,
            "policy",
            policy_id.as_uuid(),
            &PolicyEvent::PolicyCreated {
                policy_id,
                name: format!("p{p}"),
                description: String::new(),
                permissions,
                limits: ResourceLimits::default(),
                created_at: t0(),
            },
        );
        let user = user_id(p % USERS);
        feed.push(
            tenant,
            "user",
            user.as_uuid(),
            &UserEvent::PolicyAssigned {
                user_id: user,
                policy_id,
                assigned_at: t0(),
            },
        );
    }
    feed.projection.flush();
    (service, tenant)
}

// ----- casbin -------------------------------------------------------------------

const CASBIN_MODEL: &str = r#"
[request_definition]
r = sub, dom, obj, act, owner

[policy_definition]
p = sub, obj, act, cond

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.obj == p.obj && r.act == p.act && (p.cond == "any" || r.owner == r.sub)
"#;

/// The 100 rules as (role, resource, action, condition).
fn rules() -> Vec<(String, String, String, &'static str)> {
    let mut rules = Vec::new();
    for (permission, cells) in MATRIX {
        let (resource, action) = permission.split_once(':').unwrap();
        for (col, role) in BuiltinRole::ALL.into_iter().enumerate() {
            let cond = match cells[col] {
                Cell::Yes => "any",
                Cell::Own => "own",
                Cell::No => continue,
            };
            rules.push((
                role.name().to_owned(),
                resource.to_owned(),
                action.to_owned(),
                cond,
            ));
        }
    }
    for p in CUSTOM_RULES {
        let (resource, action) = p.split_once(':').unwrap();
        rules.push((
            CUSTOM_ROLE.to_owned(),
            resource.to_owned(),
            action.to_owned(),
            "any",
        ));
    }
    assert_eq!(rules.len(), 100);
    rules
}

async fn casbin() -> Enforcer {
    let model = DefaultModel::from_str(CASBIN_MODEL).await.unwrap();
    let mut enforcer = Enforcer::new(model, MemoryAdapter::default())
        .await
        .unwrap();
    let policies = rules()
        .into_iter()
        .map(|(r, o, a, c)| vec![r, o, a, c.to_owned()])
        .collect();
    enforcer.add_policies(policies).await.unwrap();
    let links = (0..USERS)
        .map(|i| vec![format!("user{i}"), role_of(i).to_owned(), "t1".to_owned()])
        .collect();
    enforcer.add_grouping_policies(links).await.unwrap();
    enforcer
}

// ----- cedar --------------------------------------------------------------------

fn cedar() -> (PolicySet, Entities) {
    let mut text = String::new();
    for (role, resource, action, cond) in rules() {
        let condition = if cond == "own" {
            "resource.tenant == principal.tenant && resource.owner == principal"
        } else {
            "resource.tenant == principal.tenant"
        };
        writeln!(
            text,
            "permit(principal in Role::\"{role}\", action == Action::\"{resource}:{action}\", resource) when {{ {condition} }};"
        )
        .unwrap();
    }
    let policies = PolicySet::from_str(&text).unwrap();
    assert_eq!(policies.policies().count(), 100);
    let mut entities: Vec<serde_json::Value> = (0..USERS)
        .map(|i| {
            serde_json::json!({
                "uid": {"type": "User", "id": format!("user{i}")},
                "attrs": {"tenant": "t1"},
                "parents": [{"type": "Role", "id": role_of(i)}],
            })
        })
        .collect();
    let mut roles: Vec<&str> = BuiltinRole::ALL.iter().map(|r| r.name()).collect();
    roles.push(CUSTOM_ROLE);
    for role in roles {
        entities.push(
            serde_json::json!({"uid": {"type": "Role", "id": role}, "attrs": {}, "parents": []}),
        );
    }
    entities.push(serde_json::json!({
        "uid": {"type": "Loan", "id": "loan-1"},
        "attrs": {"tenant": "t1", "owner": {"__entity": {"type": "User", "id": "user999"}}},
        "parents": [],
    }));
    (
        policies,
        Entities::from_json_value(serde_json::Value::Array(entities), None).unwrap(),
    )
}

fn cedar_request(user: usize) -> Request {
    Request::new(
        EntityUid::from_str(&format!("User::\"user{user}\"")).unwrap(),
        EntityUid::from_str("Action::\"loan:approve\"").unwrap(),
        EntityUid::from_str("Loan::\"loan-1\"").unwrap(),
        Context::empty(),
        None,
    )
    .unwrap()
}

// ----- the benchmark ------------------------------------------------------------

fn checks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let approve: Permission = "loan:approve".parse().unwrap();

    let (small, tenant) = ours(0, 100, false);
    let loan = Resource::in_tenant(tenant)
        .with_id("loan-1")
        .owned_by(user_id(999));
    let allowed = Principal::new(tenant, user_id(ALLOWED_USER));
    let denied = Principal::new(tenant, user_id(DENIED_USER));
    assert!(small.decide(&allowed, &approve, &loan).is_allowed());
    assert!(!small.decide(&denied, &approve, &loan).is_allowed());

    let enforcer = runtime.block_on(casbin());
    let casbin_allowed = ("user2", "t1", "loan", "approve", "user999");
    let casbin_denied = ("user4", "t1", "loan", "approve", "user999");
    assert!(enforcer.enforce(casbin_allowed).unwrap());
    assert!(!enforcer.enforce(casbin_denied).unwrap());

    let (policies, entities) = cedar();
    let authorizer = Authorizer::new();
    let (cedar_allowed, cedar_denied) = (cedar_request(ALLOWED_USER), cedar_request(DENIED_USER));
    assert_eq!(
        authorizer
            .is_authorized(&cedar_allowed, &policies, &entities)
            .decision(),
        cedar_policy::Decision::Allow
    );
    assert_eq!(
        authorizer
            .is_authorized(&cedar_denied, &policies, &entities)
            .decision(),
        cedar_policy::Decision::Deny
    );

    let mut group = c.benchmark_group("authz/check");
    group.bench_function("security-authz/allowed", |b| {
        b.iter(|| black_box(small.decide(black_box(&allowed), &approve, &loan)));
    });
    group.bench_function("security-authz/denied", |b| {
        b.iter(|| black_box(small.decide(black_box(&denied), &approve, &loan)));
    });
    let (audited, _) = ours(0, 100, true);
    group.bench_function("security-authz/denied+audit", |b| {
        b.iter(|| black_box(audited.authorize(black_box(&denied), &approve, &loan)));
    });
    group.bench_function("casbin/allowed", |b| {
        b.iter(|| black_box(enforcer.enforce(black_box(casbin_allowed)).unwrap()));
    });
    group.bench_function("casbin/denied", |b| {
        b.iter(|| black_box(enforcer.enforce(black_box(casbin_denied)).unwrap()));
    });
    group.bench_function("cedar/allowed", |b| {
        b.iter(|| {
            black_box(
                authorizer
                    .is_authorized(black_box(&cedar_allowed), &policies, &entities)
                    .decision(),
            )
        });
    });
    group.bench_function("cedar/denied", |b| {
        b.iter(|| {
            black_box(
                authorizer
                    .is_authorized(black_box(&cedar_denied), &policies, &entities)
                    .decision(),
            )
        });
    });
    group.finish();

    // What observability costs a check: `decide` records nothing;
    // `authorize` also counts the decision (metrics facade, static labels)
    // and opens its DEBUG span, first with no recorder installed (the
    // facade's no-op), then with a Prometheus recorder.
    let prometheus = PrometheusBuilder::new().build_recorder();
    let mut group = c.benchmark_group("authz/observe");
    for (name, principal) in [("allowed", &allowed), ("denied", &denied)] {
        group.bench_function(format!("decide/{name}"), |b| {
            b.iter(|| black_box(small.decide(black_box(principal), &approve, &loan)));
        });
        group.bench_function(format!("authorize/{name}"), |b| {
            b.iter(|| black_box(small.authorize(black_box(principal), &approve, &loan)));
        });
        group.bench_function(format!("authorize+prometheus/{name}"), |b| {
            metrics::with_local_recorder(&prometheus, || {
                b.iter(|| black_box(small.authorize(black_box(principal), &approve, &loan)));
            });
        });
    }
    group.finish();
    assert!(
        prometheus
            .handle()
            .render()
            .contains("security_authz_decisions_total")
    );

    // The same checks with 100 000 role rules and 100 000 subject policies.
    let (large, tenant) = ours(100_000, 100_000, false);
    let loan = Resource::in_tenant(tenant)
        .with_id("loan-1")
        .owned_by(user_id(999));
    assert!(large.decide(&allowed, &approve, &loan).is_allowed());
    assert!(!large.decide(&denied, &approve, &loan).is_allowed());
    let mut group = c.benchmark_group("authz/scale");
    for (name, service) in [("100", &small), ("100000", &large)] {
        group.bench_function(format!("allowed/{name}"), |b| {
            b.iter(|| black_box(service.decide(black_box(&allowed), &approve, &loan)));
        });
        group.bench_function(format!("denied/{name}"), |b| {
            b.iter(|| black_box(service.decide(black_box(&denied), &approve, &loan)));
        });
        group.bench_function(format!("can_publish/{name}"), |b| {
            b.iter(|| black_box(service.can_publish(black_box(&allowed), "svc2.orders.created")));
        });
    }
    group.finish();

    // can_publish: compiled tries against the reference loop over patterns.
    let mut group = c.benchmark_group("authz/can_publish");
    for n in [10_usize, 100, 10_000] {
        let permissions = Permissions {
            publish: SubjectPermissions::from_patterns(
                (0..n).map(|i| format!("svc{i}.commands.*")),
                (0..n / 10).map(|i| format!("svc{i}.commands.drop")),
            )
            .unwrap(),
            ..Permissions::default()
        };
        let compiled = CompiledPermissions::compile(&permissions);
        // The last allow pattern: the reference loop goes through them all.
        let subject = format!("svc{}.commands.create", n - 1);
        assert!(compiled.can_publish(&subject) && permissions.can_publish(&subject));
        group.bench_function(format!("compiled/{n}"), |b| {
            b.iter(|| black_box(compiled.can_publish(black_box(&subject))));
        });
        group.bench_function(format!("reference/{n}"), |b| {
            b.iter(|| black_box(permissions.can_publish(black_box(&subject))));
        });
    }
    group.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
