//! The store path under faults, across every crate: projections of the
//! authorization model and of revocations stay current past corrupt rows
//! (recorded as dead letters), and a supervised projection recovers from
//! an outage of its store. Runs against the real PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

#[path = "support/pg.rs"]
mod pg;
#[path = "support/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use security::authn::{RevocationList, RevocationProjection};
use security::authz::{AuthorizationService, Principal, Resource};
use security::core::{
    AccountClaims, AccountId, Actor, AdminService, Backoff, CheckpointStore, Credential,
    EventStore, KeyId, ManualClock, NewUser, Permission, Projection, ProjectionRunner,
    ProjectionStatus, Repository, Request, RoleName, Scope, SealedSecret, TenantId, TokioTimer,
    UserId,
};
use security::crypto::{MemoryKeyStore, UuidV7Ids};
use security::eventstore::sqlx;
use security::eventstore::{PostgresCheckpointStore, PostgresEventStore};
use serde_json::{Value, json};
use uuid::Uuid;

fn now() -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).single().unwrap()
}

/// A tenant with two users, through the admin API.
struct World {
    admin: AdminService,
    account: AccountId,
    tenant: TenantId,
}

impl World {
    async fn new(store: Arc<dyn EventStore>) -> Self {
        let repo = Repository::new(store, Arc::new(UuidV7Ids));
        let admin = AdminService::new(
            repo,
            Arc::new(ManualClock::new(now())),
            Arc::new(MemoryKeyStore::new()),
        );
        let by = Request::by(Actor::service("test"));
        let operator = admin.create_operator(&by, "operator").await.unwrap();
        let account = admin
            .create_account(&by, operator, "bank", AccountClaims::default())
            .await
            .unwrap();
        Self {
            admin,
            account,
            tenant: account.tenant(),
        }
    }

    async fn user(&self, name: &str) -> UserId {
        let new_user = NewUser {
            username: name.into(),
            credential: Credential::Password {
                hash: SealedSecret::new(KeyId::from_uuid(Uuid::now_v7()), "ct".into()),
            },
            metadata: BTreeMap::new(),
            must_change_password: false,
        };
        self.admin
            .create_user(&Request::by(Actor::service("test")), self.account, new_user)
            .await
            .unwrap()
    }

    async fn lock(&self, user: UserId) {
        self.admin
            .lock_user(
                &Request::by(Actor::service("test")),
                self.tenant,
                user,
                "review",
            )
            .await
            .unwrap();
    }

    async fn grant(&self, user: UserId, role: &str) {
        self.admin
            .assign_role(
                &Request::by(Actor::service("test")),
                self.tenant,
                user,
                RoleName::new(role).unwrap(),
            )
            .await
            .unwrap();
    }
}

/// Writes a row behind the store's back, as a superuser would with SQL:
/// numbered from the log head, on a stream of its own.
#[allow(clippy::too_many_arguments, reason = "one column each")]
async fn insert_raw(
    schema: &pg::Schema,
    tenant: TenantId,
    aggregate_type: &str,
    event_type: &str,
    schema_version: i64,
    payload: &str,
    metadata: &str,
) {
    let name = &schema.name;
    sqlx::query(&format!(
        "WITH head AS (UPDATE \"{name}\".security_log_head SET position = position + 1 \
           RETURNING position) \
         INSERT INTO \"{name}\".security_events (global_position, event_id, tenant_id, \
           aggregate_type, aggregate_id, version, event_type, schema_version, occurred_at, \
           payload, metadata, prev_hash, hash) \
         SELECT head.position, $1, $2, $3, $4, 1, $5, $6, now(), $7::json, $8::json, \
           decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex') FROM head"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(aggregate_type)
    .bind(Uuid::now_v7())
    .bind(event_type)
    .bind(schema_version)
    .bind(payload)
    .bind(metadata)
    .execute(&schema.admin)
    .await
    .unwrap();
}

fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = json!({ "k": value });
    }
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_projection_stays_current_past_corrupt_rows() {
    let schema = pg::Schema::new().await;
    let store = PostgresEventStore::from_pool(
        schema
            .pool(pg::Schema::port(), Duration::from_secs(10))
            .await,
    );
    store.migrate().await.unwrap();
    let shared: Arc<dyn EventStore> = Arc::new(store.clone());
    let world = World::new(Arc::clone(&shared)).await;
    let (alice, bob) = (world.user("alice").await, world.user("bob").await);

    let (authz, authz_projection) =
        AuthorizationService::builder(Arc::new(ManualClock::new(now()))).build();
    let revocations = Arc::new(RevocationList::new(Duration::from_secs(3600)));
    let checkpoints: Arc<dyn CheckpointStore> =
        Arc::new(PostgresCheckpointStore::new(&store, Scope::All));
    let mut authz_runner = ProjectionRunner::new(
        Arc::clone(&shared),
        Arc::clone(&checkpoints),
        authz_projection,
        Scope::All,
    )
    .await
    .unwrap();
    let mut revocation_runner = ProjectionRunner::new(
        Arc::clone(&shared),
        Arc::clone(&checkpoints),
        RevocationProjection::new(Arc::clone(&revocations)),
        Scope::All,
    )
    .await
    .unwrap();
    authz_runner.catch_up().await.unwrap();
    revocation_runner.catch_up().await.unwrap();

    // Corrupt rows of every kind, in streams both projections read (the
    // revocation projection reads `SessionsRevoked` only).
    let t = world.tenant;
    let user = alice.as_uuid().to_string();
    let deep = nested(200).to_string();
    let corrupt: [(&str, &str, i64, String, &str); 8] = [
        // a payload of the wrong shape
        (
            "user",
            "SessionsRevoked",
            1,
            json!({"user_id": 5}).to_string(),
            "{}",
        ),
        (
            "user",
            "UserLocked",
            1,
            json!({"user_id": [user]}).to_string(),
            "{}",
        ),
        // a type no build knows
        ("account", "AccountTeleported", 1, "{}".into(), "{}"),
        // a newer schema version than this build reads
        (
            "user",
            "UserLocked",
            99,
            json!({"user_id": user, "reason": "x", "locked_at": "2026-01-01T00:00:00Z"})
                .to_string(),
            "{}",
        ),
        // JSON that decodes but breaks the domain's rules (a role name
        // that is not one)
        (
            "user",
            "RoleAssigned",
            1,
            json!({"user_id": user, "role": "Not A Role!", "assigned_at": "2026-01-01T00:00:00Z"})
                .to_string(),
            "{}",
        ),
        // deeper than any reader may parse (the old jam), in a type each
        // projection reads
        ("user", "SessionsRevoked", 1, deep.clone(), "{}"),
        ("user", "UserLocked", 1, deep, "{}"),
        // metadata of the wrong shape
        (
            "user",
            "UserUnlocked",
            1,
            json!({"user_id": user, "unlocked_at": "2026-01-01T00:00:00Z"}).to_string(),
            r#"{"correlation_id": 5}"#,
        ),
    ];
    for (aggregate, event_type, version, payload, metadata) in &corrupt {
        insert_raw(
            &schema, t, aggregate, event_type, *version, payload, metadata,
        )
        .await;
    }

    // What happens after the corrupt rows must still reach every reader.
    world.lock(alice).await;
    world.grant(bob, "auditor").await;
    let head = store.head_position().await.unwrap();

    assert!(authz_runner.catch_up().await.unwrap() > 0);
    assert!(revocation_runner.catch_up().await.unwrap() > 0);
    for health in [
        authz_runner.health().report(),
        revocation_runner.health().report(),
    ] {
        assert_eq!(health.position, head, "{} is current", health.projection);
        assert_eq!(health.lag(), 0);
    }
    let report = Permission::new("report", "view").unwrap();
    let resource = Resource::in_tenant(t);
    assert!(
        authz
            .decide(&Principal::new(t, bob), &report, &resource)
            .is_allowed(),
        "the role granted after the corrupt rows is in force"
    );
    assert!(
        !authz
            .decide(
                &Principal::new(t, alice),
                &Permission::new("user", "read").unwrap(),
                &resource
            )
            .is_allowed(),
        "the lock after the corrupt rows is in force"
    );
    assert!(
        revocations.user_cutoff(t, alice).is_some(),
        "the lock's revocation reached the revocation list"
    );

    // Each projection recorded the rows it could not use, with the reason.
    let authz_letters = authz_runner.dead_letters().await.unwrap();
    let revocation_letters = revocation_runner.dead_letters().await.unwrap();
    let kinds = |letters: &[security::core::DeadLetter]| {
        letters
            .iter()
            .map(|l| format!("{}: {}", l.event_type, l.reason))
            .collect::<Vec<_>>()
    };
    let authz_kinds = kinds(&authz_letters);
    assert_eq!(authz_letters.len(), 6, "{authz_kinds:#?}");
    for needle in [
        "unknown event type AccountTeleported",
        "schema version 99",
        "malformed payload",
        "larger or deeper than the limits",
        "metadata is not valid",
    ] {
        assert!(
            authz_kinds.iter().any(|k| k.contains(needle)),
            "no authz dead letter says {needle:?}: {authz_kinds:#?}"
        );
    }
    let revocation_kinds = kinds(&revocation_letters);
    assert_eq!(revocation_letters.len(), 2, "{revocation_kinds:#?}");
    assert!(
        revocation_kinds
            .iter()
            .all(|k| k.starts_with("SessionsRevoked"))
    );
    assert_eq!(
        authz_runner.health().report().dead_letters,
        6,
        "the health handle counts them"
    );
    // Kept in PostgreSQL, under the projection's name.
    assert_eq!(
        checkpoints
            .dead_letters(authz_runner.projection().name())
            .await
            .unwrap(),
        authz_letters
    );

    store.close().await;
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_projection_recovers_when_its_store_comes_back() {
    let schema = pg::Schema::new().await;
    // The writer talks to PostgreSQL directly; the projection through a
    // proxy the test cuts.
    let direct = PostgresEventStore::from_pool(
        schema
            .pool(pg::Schema::port(), Duration::from_secs(10))
            .await,
    );
    direct.migrate().await.unwrap();
    let proxy = proxy::Proxy::start(pg::Schema::port()).await;
    let proxied =
        PostgresEventStore::from_pool(schema.pool(proxy.port, Duration::from_millis(500)).await);
    let world = World::new(Arc::new(direct.clone())).await;
    let (alice, bob) = (world.user("alice").await, world.user("bob").await);

    let revocations = Arc::new(RevocationList::new(Duration::from_secs(3600)));
    let mut runner = ProjectionRunner::deferred(
        Arc::new(proxied.clone()),
        Arc::new(PostgresCheckpointStore::new(&proxied, Scope::All)),
        RevocationProjection::new(Arc::clone(&revocations)),
        Scope::All,
    );
    let health = runner.health();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let backoff = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_millis(400),
    };
    let task = tokio::spawn(async move {
        runner
            .run_supervised(&TokioTimer, backoff, async {
                let _ = stopped.await;
            })
            .await;
    });
    let eventually = |what: &'static str, check: Box<dyn Fn() -> bool + Send>| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let h = health.clone();
    eventually("live", Box::new(move || h.report().is_healthy())).await;

    // The outage: the projection's connections are cut; a lock is written
    // meanwhile, directly.
    proxy.cut();
    world.lock(alice).await;
    let h = health.clone();
    eventually(
        "the outage is reported",
        Box::new(move || {
            let report = h.report();
            report.status == ProjectionStatus::Retrying && report.consecutive_failures >= 2
        }),
    )
    .await;
    let report = health.report();
    assert_eq!(
        report.last_error.as_deref(),
        Some("event store unavailable")
    );
    assert!(
        revocations.user_cutoff(world.tenant, alice).is_none(),
        "not seen during the outage"
    );

    // The store comes back: the projection catches up by itself.
    proxy.restore();
    let head = direct.head_position().await.unwrap();
    let (h, list, t) = (health.clone(), Arc::clone(&revocations), world.tenant);
    eventually(
        "recovered",
        Box::new(move || {
            let report = h.report();
            report.is_healthy() && report.position >= head && list.user_cutoff(t, alice).is_some()
        }),
    )
    .await;
    // And follows live again.
    world.lock(bob).await;
    let list = Arc::clone(&revocations);
    eventually(
        "live after recovery",
        Box::new(move || list.user_cutoff(t, bob).is_some()),
    )
    .await;
    assert!(health.report().restarts >= 1);

    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(health.report().status, ProjectionStatus::Stopped);
    proxied.close().await;
    direct.close().await;
    schema.drop().await;
}
