//! The command bus, projections and temporal reads of security-core, run
//! on the memory store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::{FutureExt, StreamExt};
use proptest::prelude::*;
use security_core::*;
use security_eventstore::{MemoryEventStore, MemoryPublisher};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

fn tenant() -> TenantId {
    TenantId::from_uuid(Uuid::now_v7())
}

fn repo(store: &MemoryEventStore) -> Repository {
    Repository::new(Arc::new(store.clone()), Arc::new(SequentialIds::new()))
}

fn create_policy(policy_id: PolicyId, name: &str) -> PolicyCommand {
    PolicyCommand::CreatePolicy {
        policy_id,
        name: name.into(),
        description: String::new(),
        permissions: Permissions::default(),
        limits: ResourceLimits::default(),
    }
}

fn limits(n: u32) -> PolicyCommand {
    PolicyCommand::UpdateLimits {
        new_limits: ResourceLimits {
            max_subscriptions: Some(n),
            ..ResourceLimits::default()
        },
    }
}

#[tokio::test]
async fn execute_appends_applies_and_publishes_without_secrets() {
    let store = MemoryEventStore::new();
    let publisher = MemoryPublisher::new();
    let repo = repo(&store).with_publisher(Arc::new(publisher.clone()));
    let t = tenant();
    let ctx = CommandContext::new(t, t0())
        .with_actor(Actor::service("test"))
        .with_trace_id("trace-1");
    let user_id = UserId::from_uuid(Uuid::now_v7());
    let create = UserCommand::CreateUser {
        user_id,
        account_id: AccountId::from(t),
        username: "alice".into(),
        credentials: Credential::Password {
            hash: SealedSecret::new(KeyId::from_uuid(Uuid::nil()), "SECRET-CT".into()),
        },
        metadata: BTreeMap::new(),
        must_change_password: false,
    };
    let outcome = repo.execute::<User>(user_id, &create, &ctx).await.unwrap();
    assert_eq!(outcome.version, 1);
    assert!(outcome.published);
    assert_eq!(outcome.state.username, "alice");
    let stored = &outcome.events[0];
    assert_eq!(&*stored.event_type, "UserCreated");
    assert_eq!(stored.metadata.actor, Some(Actor::service("test")));
    assert_eq!(stored.occurred_at, t0());
    assert!(
        stored.payload.to_string().contains("SECRET-CT"),
        "sealed inside the store"
    );
    let published = publisher.published();
    assert_eq!(published.len(), 1);
    assert!(
        !serde_json::to_string(&published[0])
            .unwrap()
            .contains("SECRET-CT"),
        "stripped when published"
    );
    // Loading gives the same state.
    assert_eq!(
        repo.load::<User>(t, user_id).await.unwrap().state,
        outcome.state
    );
    // A refused command appends nothing.
    let err = repo
        .execute::<User>(user_id, &create, &ctx)
        .await
        .unwrap_err();
    assert_eq!(
        err.rejection(),
        Some(&DomainError::AlreadyExists { kind: "user" })
    );
    assert!(!err.is_retryable());
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn a_publisher_outage_loses_no_stored_event() {
    let store = MemoryEventStore::new();
    let publisher = MemoryPublisher::new();
    publisher.fail_next(1);
    let repo = repo(&store).with_publisher(Arc::new(publisher.clone()));
    let ctx = CommandContext::new(tenant(), t0());
    let id = PolicyId::from_uuid(Uuid::now_v7());
    let outcome = repo
        .execute::<Policy>(id, &create_policy(id, "p"), &ctx)
        .await
        .unwrap();
    assert!(!outcome.published, "the outcome says it was not published");
    assert_eq!(store.len(), 1, "the event is stored anyway");
}

#[tokio::test]
async fn an_idempotency_key_makes_a_command_happen_once() {
    let store = MemoryEventStore::new();
    let repo = repo(&store);
    let key = IdempotencyKey::new("create-p-1").unwrap();
    let ctx = CommandContext::new(tenant(), t0()).with_idempotency_key(key.clone());
    let id = PolicyId::from_uuid(Uuid::now_v7());
    let first = repo
        .execute::<Policy>(id, &create_policy(id, "p"), &ctx)
        .await
        .unwrap();
    let again = repo
        .execute::<Policy>(id, &create_policy(id, "p"), &ctx)
        .await
        .unwrap();
    assert!(again.deduplicated);
    assert_eq!(
        again.events, first.events,
        "the first run's events are returned"
    );
    assert_eq!(again.state, first.state);
    assert_eq!(store.len(), 1, "nothing appended the second time");
    // The same key for another aggregate of the tenant is refused.
    let other = PolicyId::from_uuid(Uuid::now_v7());
    let err = repo
        .execute::<Policy>(other, &create_policy(other, "q"), &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Store(StoreError::DuplicateIdempotencyKey { .. })
        ),
        "{err:?}"
    );
    // After later changes, the repeat still returns the state as of the first run.
    let later = CommandContext::new(ctx.tenant_id, t0());
    repo.execute::<Policy>(id, &limits(5), &later)
        .await
        .unwrap();
    let replay = repo
        .execute::<Policy>(id, &create_policy(id, "p"), &ctx)
        .await
        .unwrap();
    assert_eq!(replay.version, 1);
    assert_eq!(replay.state.version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_retry_and_lose_no_update() {
    let store = MemoryEventStore::new();
    let repo = repo(&store).with_max_retries(50);
    let t = tenant();
    let id = PolicyId::from_uuid(Uuid::now_v7());
    repo.execute::<Policy>(id, &create_policy(id, "p"), &CommandContext::new(t, t0()))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8_u32)
        .map(|i| {
            let repo = repo.clone();
            tokio::spawn(async move {
                for j in 0..5 {
                    repo.execute::<Policy>(
                        id,
                        &limits(1 + i * 100 + j),
                        &CommandContext::new(t, t0()),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let loaded = repo.load::<Policy>(t, id).await.unwrap();
    assert_eq!(loaded.version, 41, "40 updates, none lost");
    assert_eq!(loaded.state.version, 41);
}

// A store that always reports a conflict.
#[derive(Debug)]
struct AlwaysConflict(MemoryEventStore);
#[async_trait]
impl EventStore for AlwaysConflict {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        Err(StoreError::Conflict {
            stream_id: request.stream_id,
            expected: request.expected,
            actual: 99,
        })
    }
    async fn read_stream(
        &self,
        s: &StreamId,
        q: StreamQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.0.read_stream(s, q).await
    }
    async fn read_global(&self, s: Scope, q: GlobalQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.0.read_global(s, q).await
    }
    async fn stream_version(&self, s: &StreamId) -> Result<u64, StoreError> {
        self.0.stream_version(s).await
    }
    async fn idempotent_result(
        &self,
        t: TenantId,
        k: &IdempotencyKey,
    ) -> Result<Option<AppendResult>, StoreError> {
        self.0.idempotent_result(t, k).await
    }
    async fn head_position(&self) -> Result<u64, StoreError> {
        self.0.head_position().await
    }
    fn subscribe(&self, s: Scope, after: u64) -> EventStream {
        self.0.subscribe(s, after)
    }
    async fn read_chain(
        &self,
        t: TenantId,
        q: security_core::chain::ChainQuery,
    ) -> Result<Vec<security_core::chain::ChainRecord>, StoreError> {
        self.0.read_chain(t, q).await
    }
    async fn chain_head(
        &self,
        t: TenantId,
    ) -> Result<Option<security_core::chain::ChainHead>, StoreError> {
        self.0.chain_head(t).await
    }
    async fn chain_heads(
        &self,
    ) -> Result<Vec<(TenantId, security_core::chain::ChainHead)>, StoreError> {
        self.0.chain_heads().await
    }
}

#[tokio::test]
async fn contention_gives_up_with_a_retryable_conflict() {
    let repo = Repository::new(
        Arc::new(AlwaysConflict(MemoryEventStore::new())),
        Arc::new(SequentialIds::new()),
    )
    .with_max_retries(3);
    let id = PolicyId::from_uuid(Uuid::now_v7());
    let err = repo
        .execute::<Policy>(
            id,
            &create_policy(id, "p"),
            &CommandContext::new(tenant(), t0()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Conflict { attempts: 4, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn rebuild_as_of_a_version_or_a_time() {
    let store = MemoryEventStore::new();
    let repo = repo(&store);
    let t = tenant();
    let id = PolicyId::from_uuid(Uuid::now_v7());
    repo.execute::<Policy>(id, &create_policy(id, "p"), &CommandContext::new(t, t0()))
        .await
        .unwrap();
    for (i, minutes) in [10, 20, 30].into_iter().enumerate() {
        let ctx = CommandContext::new(t, t0() + Duration::minutes(minutes));
        repo.execute::<Policy>(id, &limits(u32::try_from(i).unwrap() + 1), &ctx)
            .await
            .unwrap();
    }
    let as_of_v2 = repo
        .load_until::<Policy>(t, id, Until::Version(2))
        .await
        .unwrap();
    assert_eq!(
        (as_of_v2.version, as_of_v2.state.limits.max_subscriptions),
        (2, Some(1))
    );
    let at_25 = repo
        .load_until::<Policy>(t, id, Until::Time(t0() + Duration::minutes(25)))
        .await
        .unwrap();
    assert_eq!(at_25.state.limits.max_subscriptions, Some(2));
    let before = repo
        .load_until::<Policy>(t, id, Until::Time(t0() - Duration::seconds(1)))
        .await
        .unwrap();
    assert!(before.state.id.is_none(), "nothing existed before creation");
}

/// Counts events per tenant and type: a simple read model.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    by_type: BTreeMap<(TenantId, String), u64>,
    flushes: u64,
}

impl Projection for Counts {
    fn name(&self) -> &'static str {
        "counts"
    }
    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        *self
            .by_type
            .entry((event.tenant_id(), event.event_type.to_string()))
            .or_default() += 1;
        Ok(())
    }
    fn reset(&mut self) {
        self.by_type.clear();
    }
    fn flush(&mut self) {
        self.flushes += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_catch_up_follow_live_and_rebuild_to_the_same_state() {
    let store = MemoryEventStore::new();
    let repo = repo(&store);
    let checkpoints: Arc<dyn CheckpointStore> = Arc::new(InMemoryCheckpoints::new());
    let (t1, t2) = (tenant(), tenant());
    for t in [t1, t2] {
        let id = PolicyId::from_uuid(Uuid::now_v7());
        repo.execute::<Policy>(id, &create_policy(id, "p"), &CommandContext::new(t, t0()))
            .await
            .unwrap();
        repo.execute::<Policy>(id, &limits(3), &CommandContext::new(t, t0()))
            .await
            .unwrap();
    }
    let shared: Arc<dyn EventStore> = Arc::new(store.clone());
    let mut runner = ProjectionRunner::new(
        Arc::clone(&shared),
        Arc::clone(&checkpoints),
        Counts::default(),
        Scope::All,
    )
    .await
    .unwrap()
    .with_batch_size(3);
    assert_eq!(runner.catch_up().await.unwrap(), 4);
    assert_eq!(checkpoints.load("counts").await.unwrap(), Some(4));

    // Live: events appended while the runner follows are applied.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let live = tokio::spawn(async move {
        runner.run_until(stop_rx.map(|_| ())).await.unwrap();
        runner
    });
    let id = PolicyId::from_uuid(Uuid::now_v7());
    repo.execute::<Policy>(
        id,
        &create_policy(id, "live"),
        &CommandContext::new(t1, t0()),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while checkpoints.load("counts").await.unwrap() != Some(5) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "live event not applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop_tx.send(()).unwrap();
    let mut runner = live.await.unwrap();
    let live_state = std::mem::take(&mut runner.projection_mut().by_type);
    assert_eq!(live_state.get(&(t1, "PolicyCreated".to_owned())), Some(&2));

    // Rebuilt from zero: the same state.
    runner.rebuild().await.unwrap();
    assert_eq!(runner.projection().by_type, live_state);

    // A new runner resumes from the checkpoint and applies nothing twice.
    let mut resumed =
        ProjectionRunner::new(shared, checkpoints, Counts::default(), Scope::Tenant(t2))
            .await
            .unwrap();
    assert_eq!(resumed.position(), 5);
    assert_eq!(resumed.catch_up().await.unwrap(), 0);
}

// ----- property: replay gives the state the handler saw --------------------

#[derive(Debug, Clone)]
enum Op {
    AssignPolicy(u8),
    RemovePolicy(u8),
    AssignRole(u8),
    RemoveRole(u8),
    Lock,
    Unlock,
    Fail,
    Succeed,
    ChangePassword(u8),
    StartMfa,
    ConfirmMfa(u16),
    Totp(u16),
    Backup(u8),
    NewBackupCodes,
    RevokeSessions,
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4_u8).prop_map(Op::AssignPolicy),
        (0..4_u8).prop_map(Op::RemovePolicy),
        (0..3_u8).prop_map(Op::AssignRole),
        (0..3_u8).prop_map(Op::RemoveRole),
        Just(Op::Lock),
        Just(Op::Unlock),
        Just(Op::Fail),
        Just(Op::Succeed),
        any::<u8>().prop_map(Op::ChangePassword),
        Just(Op::StartMfa),
        (0..50_u16).prop_map(Op::ConfirmMfa),
        (0..50_u16).prop_map(Op::Totp),
        (0..12_u8).prop_map(Op::Backup),
        Just(Op::NewBackupCodes),
        Just(Op::RevokeSessions),
        (1..600_u16).prop_map(Op::Advance),
    ]
}

fn sealed(n: u8) -> SealedSecret {
    SealedSecret::new(
        KeyId::from_uuid(Uuid::from_u128(u128::from(n))),
        format!("ct-{n}"),
    )
}

fn command(op: &Op) -> Option<UserCommand> {
    let role = |n: u8| RoleName::new(["admin", "auditor", "teller"][usize::from(n)]).unwrap();
    let client = ClientInfo::default();
    let lockout = Some(LockoutPolicy {
        max_failures: 3,
        base_lock_secs: 60,
        max_lock_secs: 600,
        escalation_reset_secs: 3600,
    });
    Some(match *op {
        Op::AssignPolicy(n) => UserCommand::AssignPolicy {
            policy_id: PolicyId::from_uuid(Uuid::from_u128(u128::from(n))),
        },
        Op::RemovePolicy(n) => UserCommand::RemovePolicy {
            policy_id: PolicyId::from_uuid(Uuid::from_u128(u128::from(n))),
        },
        Op::AssignRole(n) => UserCommand::AssignRole { role: role(n) },
        Op::RemoveRole(n) => UserCommand::RemoveRole { role: role(n) },
        Op::Lock => UserCommand::LockUser {
            reason: "review".into(),
            until: None,
        },
        Op::Unlock => UserCommand::UnlockUser,
        Op::Fail => UserCommand::RecordAuthenticationFailure {
            reason: FailureReason::BadPassword,
            client,
            lockout,
        },
        Op::Succeed => UserCommand::RecordAuthentication {
            method: AuthMethod::Password,
            client,
        },
        Op::ChangePassword(n) => UserCommand::UpdateCredentials {
            new_credentials: Credential::Password { hash: sealed(n) },
            must_change: n % 2 == 0,
        },
        Op::StartMfa => UserCommand::StartMfaEnrollment {
            secret: sealed(200),
        },
        Op::ConfirmMfa(step) => UserCommand::ConfirmMfaEnrollment {
            step: u64::from(step),
        },
        Op::Totp(step) => UserCommand::RecordMfaSuccess {
            proof: MfaProof::Totp {
                step: u64::from(step),
            },
            client,
        },
        Op::Backup(index) => UserCommand::RecordMfaSuccess {
            proof: MfaProof::BackupCode { index },
            client,
        },
        Op::NewBackupCodes => UserCommand::RegenerateBackupCodes {
            codes: sealed(201),
            count: 10,
        },
        Op::RevokeSessions => UserCommand::RevokeSessions {
            reason: "logout".into(),
        },
        Op::Advance(_) => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever valid sequence of commands runs, rebuilding the user from
    /// the store gives exactly the state the handler saw after each command,
    /// both live and as of every version.
    #[test]
    fn replay_gives_the_state_the_handler_saw(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = MemoryEventStore::new();
            let repo = repo(&store);
            let t = tenant();
            let user_id = UserId::from_uuid(Uuid::now_v7());
            let mut now = t0();
            let create = UserCommand::CreateUser {
                user_id,
                account_id: AccountId::from(t),
                username: "prop".into(),
                credentials: Credential::Password { hash: sealed(0) },
                metadata: BTreeMap::new(),
                must_change_password: false,
            };
            let mut seen = vec![repo.execute::<User>(user_id, &create, &CommandContext::new(t, now)).await.unwrap().state];
            for op in &ops {
                if let Op::Advance(secs) = op {
                    now += Duration::seconds(i64::from(*secs));
                    continue;
                }
                let cmd = command(op).unwrap();
                match repo.execute::<User>(user_id, &cmd, &CommandContext::new(t, now)).await {
                    Ok(outcome) if !outcome.events.is_empty() => seen.push(outcome.state),
                    Ok(_) | Err(CommandError::Rejected(_)) => {}
                    Err(e) => panic!("infrastructure error {e:?}"),
                }
            }
            let loaded = repo.load::<User>(t, user_id).await.unwrap();
            prop_assert_eq!(&loaded.state, seen.last().unwrap());
            // Every intermediate state is reachable as of its version.
            let mut version = 0;
            for state in &seen {
                let stream = Repository::stream_id::<User>(t, user_id);
                let all = store.read_stream(&stream, StreamQuery::all()).await.unwrap();
                // Find the first version at which replay equals this state.
                let mut found = false;
                while version < all.len() as u64 {
                    version += 1;
                    let as_of = repo.load_until::<User>(t, user_id, Until::Version(version)).await.unwrap();
                    if &as_of.state == state {
                        found = true;
                        break;
                    }
                }
                prop_assert!(found, "an intermediate state is not reproduced by replay");
            }
            Ok(())
        })?;
    }
}

// ----- idempotent requests racing on several replicas ----------------------

#[path = "support/races.rs"]
mod races;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotent_request_racing_on_replicas_answers_every_caller_in_memory() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let replicas = vec![Arc::clone(&store), Arc::clone(&store), store];
    let (created, locked) = races::create_and_lock_races(&replicas, 100).await;
    let every = races::Tally {
        answered: 300,
        rejected: 0,
        conflicts: 0,
    };
    assert_eq!(created, every, "create_user with one key on three replicas");
    assert_eq!(locked, every, "lock_user with one key on three replicas");
}

// ----- the state cache ------------------------------------------------------

/// A store that counts the events its stream reads return.
#[derive(Debug)]
struct Counting {
    inner: MemoryEventStore,
    read: std::sync::atomic::AtomicUsize,
}

impl Counting {
    fn new(inner: MemoryEventStore) -> Arc<Self> {
        Arc::new(Self {
            inner,
            read: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn take(&self) -> usize {
        self.read.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl EventStore for Counting {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        self.inner.append(request).await
    }
    async fn read_stream(
        &self,
        s: &StreamId,
        q: StreamQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let events = self.inner.read_stream(s, q).await?;
        self.read
            .fetch_add(events.len(), std::sync::atomic::Ordering::SeqCst);
        Ok(events)
    }
    async fn read_global(&self, s: Scope, q: GlobalQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.read_global(s, q).await
    }
    async fn stream_version(&self, s: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(s).await
    }
    async fn idempotent_result(
        &self,
        t: TenantId,
        k: &IdempotencyKey,
    ) -> Result<Option<AppendResult>, StoreError> {
        self.inner.idempotent_result(t, k).await
    }
    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.head_position().await
    }
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn read_snapshot(
        &self,
        s: &StreamId,
        schema_version: u32,
        until: Until,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.inner.read_snapshot(s, schema_version, until).await
    }
    fn subscribe(&self, s: Scope, after: u64) -> EventStream {
        self.inner.subscribe(s, after)
    }
    async fn read_chain(
        &self,
        t: TenantId,
        q: security_core::chain::ChainQuery,
    ) -> Result<Vec<security_core::chain::ChainRecord>, StoreError> {
        self.inner.read_chain(t, q).await
    }
    async fn chain_head(
        &self,
        t: TenantId,
    ) -> Result<Option<security_core::chain::ChainHead>, StoreError> {
        self.inner.chain_head(t).await
    }
    async fn chain_heads(
        &self,
    ) -> Result<Vec<(TenantId, security_core::chain::ChainHead)>, StoreError> {
        self.inner.chain_heads().await
    }
}

fn login() -> UserCommand {
    UserCommand::RecordAuthentication {
        method: AuthMethod::Password,
        client: ClientInfo::default(),
    }
}

async fn create_user(repo: &Repository, t: TenantId) -> UserId {
    let user_id = UserId::from_uuid(Uuid::now_v7());
    let create = UserCommand::CreateUser {
        user_id,
        account_id: AccountId::from(t),
        username: "cached".into(),
        credentials: Credential::Password { hash: sealed(1) },
        metadata: BTreeMap::new(),
        must_change_password: false,
    };
    repo.execute::<User>(user_id, &create, &CommandContext::new(t, t0()))
        .await
        .unwrap();
    user_id
}

#[tokio::test]
async fn with_a_state_cache_a_command_reads_only_what_was_appended_since() {
    let store = Counting::new(MemoryEventStore::new());
    let shared: Arc<dyn EventStore> = store.clone();
    let cache = StateCache::new(100);
    let ids: Arc<dyn IdGenerator> = Arc::new(SequentialIds::new());
    let cached =
        Repository::new(Arc::clone(&shared), Arc::clone(&ids)).with_state_cache(cache.clone());
    let t = tenant();
    let user_id = create_user(&cached, t).await;
    for _ in 0..200 {
        cached
            .execute::<User>(user_id, &login(), &CommandContext::new(t, t0()))
            .await
            .unwrap();
    }
    store.take();
    // The 202nd command reads back only its own event.
    cached
        .execute::<User>(user_id, &login(), &CommandContext::new(t, t0()))
        .await
        .unwrap();
    assert_eq!(store.take(), 1, "the command read only the event it stored");
    assert_eq!(cache.len(), 1);

    // Another process appends: the next load reads just those events.
    let other = Repository::new(Arc::clone(&shared), Arc::clone(&ids));
    for _ in 0..3 {
        other
            .execute::<User>(user_id, &login(), &CommandContext::new(t, t0()))
            .await
            .unwrap();
    }
    store.take();
    let loaded = cached.load::<User>(t, user_id).await.unwrap();
    assert_eq!(store.take(), 3, "caught up with the three new events only");
    assert_eq!(loaded.version, 205);
    let replayed = Repository::new(Arc::clone(&shared), Arc::new(SequentialIds::new()))
        .load::<User>(t, user_id)
        .await
        .unwrap();
    assert_eq!(loaded, replayed, "the cached state is the replayed one");
    // Without a cache a load reads the newest snapshot and the events
    // after it.
    let stream = Repository::stream_id::<User>(t, user_id);
    let kept = store
        .inner
        .read_snapshot(&stream, user_snapshot_schema(), Until::End)
        .await
        .unwrap()
        .unwrap();
    store.take();
    other.load::<User>(t, user_id).await.unwrap();
    assert_eq!(store.take() as u64, 205 - kept.version);
    assert!(kept.version > 190);

    // Temporal reads: a cached state inside the bound is caught up, one
    // past it is not used.
    let as_of = cached
        .load_until::<User>(t, user_id, Until::Version(100))
        .await
        .unwrap();
    assert_eq!(as_of.version, 100);
    assert_eq!(
        as_of,
        other
            .load_until::<User>(t, user_id, Until::Version(100))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_cache_whose_store_was_replaced_is_not_trusted() {
    let t = tenant();
    let cache = StateCache::default();
    let first = MemoryEventStore::new();
    let repo = Repository::new(Arc::new(first), Arc::new(SequentialIds::new()))
        .with_state_cache(cache.clone());
    let user_id = create_user(&repo, t).await;
    for _ in 0..5 {
        repo.execute::<User>(user_id, &login(), &CommandContext::new(t, t0()))
            .await
            .unwrap();
    }
    // A new, empty store behind the same cache: the stream does not exist
    // there, whatever the cache says, and a new one starts at version 1.
    let second = MemoryEventStore::new();
    let repo = Repository::new(Arc::new(second.clone()), Arc::new(SequentialIds::new()))
        .with_state_cache(cache.clone());
    let loaded = repo.load::<User>(t, user_id).await.unwrap();
    assert_eq!(loaded.version, 6, "an empty tail keeps the cached state");
    // Writing through it conflicts with the real store, which shows the
    // cached state is not its own: the retry starts from the store, where
    // the user does not exist.
    let err = repo
        .execute::<User>(user_id, &login(), &CommandContext::new(t, t0()))
        .await
        .unwrap_err();
    assert_eq!(
        err.rejection(),
        Some(&DomainError::NotFound { kind: "user" }),
        "{err:?}"
    );
    assert_eq!(second.len(), 0, "nothing was written on a stale state");
    // A store that has other events for the stream replaces the cached state.
    let user_id_again = user_id;
    let fresh = Repository::new(Arc::new(second.clone()), Arc::new(SequentialIds::new()));
    let create = UserCommand::CreateUser {
        user_id: user_id_again,
        account_id: AccountId::from(t),
        username: "again".into(),
        credentials: Credential::Password { hash: sealed(2) },
        metadata: BTreeMap::new(),
        must_change_password: false,
    };
    fresh
        .execute::<User>(user_id, &create, &CommandContext::new(t, t0()))
        .await
        .unwrap();
    let loaded = repo.load::<User>(t, user_id).await.unwrap();
    assert_eq!(
        (loaded.version, loaded.state.username.as_str()),
        (1, "again")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_logins_on_three_replicas_all_land_with_the_persistent_policy() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let replicas = vec![Arc::clone(&store), Arc::clone(&store), store];
    let (landed, conflicts) =
        races::concurrent_logins(&replicas, 100, RetryPolicy::persistent()).await;
    assert_eq!((landed, conflicts), (100, 0));
}

/// A timer that records what it was asked and does not wait.
#[derive(Debug, Default)]
struct RecordingTimer {
    ceilings: std::sync::Mutex<Vec<std::time::Duration>>,
    slept: std::sync::Mutex<Vec<std::time::Duration>>,
}

#[async_trait]
impl Timer for RecordingTimer {
    async fn sleep(&self, duration: std::time::Duration) {
        self.slept.lock().unwrap().push(duration);
    }
    fn jitter(&self, max: std::time::Duration) -> std::time::Duration {
        self.ceilings.lock().unwrap().push(max);
        max / 2
    }
}

#[tokio::test]
async fn retries_wait_a_jittered_doubling_backoff_between_attempts() {
    let timer = Arc::new(RecordingTimer::default());
    let repo = Repository::new(
        Arc::new(AlwaysConflict(MemoryEventStore::new())),
        Arc::new(SequentialIds::new()),
    )
    .with_timer(timer.clone());
    let ms = std::time::Duration::from_millis;
    let policy = RetryPolicy::immediate(4).with_backoff(ms(10), ms(25));
    let id = PolicyId::from_uuid(Uuid::now_v7());
    let err = repo
        .execute_with::<Policy>(
            id,
            &create_policy(id, "p"),
            &CommandContext::new(tenant(), t0()),
            &policy,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Conflict { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(*timer.ceilings.lock().unwrap(), [ms(10), ms(20), ms(25)]);
    assert_eq!(
        *timer.slept.lock().unwrap(),
        [
            ms(5),
            ms(10),
            ms(12) + std::time::Duration::from_micros(500)
        ]
    );
    // The repository's default policy makes no wait.
    let immediate = Repository::new(
        Arc::new(AlwaysConflict(MemoryEventStore::new())),
        Arc::new(SequentialIds::new()),
    )
    .with_timer(timer.clone());
    timer.ceilings.lock().unwrap().clear();
    immediate
        .execute::<Policy>(
            id,
            &create_policy(id, "p"),
            &CommandContext::new(tenant(), t0()),
        )
        .await
        .unwrap_err();
    assert!(timer.ceilings.lock().unwrap().is_empty());
}

// ----- snapshots --------------------------------------------------------------

fn full_replay(events: &[StoredEvent], stream: &StreamId) -> Loaded<User> {
    replay::<User>(stream, events).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the history and wherever snapshots were taken, loading
    /// from a snapshot plus the events after it gives exactly the state a
    /// full replay gives, as of the end and as of every version.
    #[test]
    fn a_snapshot_gives_exactly_the_state_a_full_replay_gives(
        ops in proptest::collection::vec(op(), 1..60),
        every in 1..8_u64,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = MemoryEventStore::new();
            let writer = repo(&store).with_snapshots(SnapshotPolicy::every(every));
            let t = tenant();
            let user_id = UserId::from_uuid(Uuid::now_v7());
            let mut now = t0();
            let create = UserCommand::CreateUser {
                user_id,
                account_id: AccountId::from(t),
                username: "snap".into(),
                credentials: Credential::Password { hash: sealed(0) },
                metadata: BTreeMap::from([("n".to_owned(), serde_json::json!([1, {"x": null}]))]),
                must_change_password: false,
            };
            writer.execute::<User>(user_id, &create, &CommandContext::new(t, now)).await.unwrap();
            for op in &ops {
                if let Op::Advance(secs) = op {
                    now += Duration::seconds(i64::from(*secs));
                    continue;
                }
                match writer.execute::<User>(user_id, &command(op).unwrap(), &CommandContext::new(t, now)).await {
                    Ok(_) | Err(CommandError::Rejected(_)) => {}
                    Err(e) => panic!("infrastructure error {e:?}"),
                }
            }
            let stream = Repository::stream_id::<User>(t, user_id);
            let events = store.read_stream(&stream, StreamQuery::all()).await.unwrap();
            let snapshot = store.read_snapshot(&stream, user_snapshot_schema(), Until::End).await.unwrap();
            if events.len() as u64 >= every {
                prop_assert!(snapshot.is_some(), "a snapshot was taken");
            }
            // A cold repository (no cache) loads from the snapshot.
            let cold = repo(&store);
            prop_assert_eq!(cold.load::<User>(t, user_id).await.unwrap(), full_replay(&events, &stream));
            for version in 1..=events.len() {
                let until = Until::Version(version as u64);
                prop_assert_eq!(
                    cold.load_until::<User>(t, user_id, until).await.unwrap(),
                    full_replay(&events[..version], &stream)
                );
            }
            Ok(())
        })?;
    }
}

async fn user_with_logins(store: &MemoryEventStore, logins: usize) -> (TenantId, UserId, StreamId) {
    let repo = repo(store);
    let t = tenant();
    let user_id = create_user(&repo, t).await;
    for i in 0..logins {
        let ctx = CommandContext::new(t, t0() + Duration::seconds(i64::try_from(i).unwrap()));
        repo.execute::<User>(user_id, &login(), &ctx).await.unwrap();
    }
    (t, user_id, Repository::stream_id::<User>(t, user_id))
}

#[tokio::test]
async fn a_long_stream_loads_from_its_snapshot_and_the_events_after_it() {
    let memory = MemoryEventStore::new();
    let (t, user_id, stream) = user_with_logins(&memory, 100).await;
    let snapshot = memory
        .read_snapshot(&stream, user_snapshot_schema(), Until::End)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.version, 96, "written every 12 events");
    let store = Counting::new(memory.clone());
    let cold = Repository::new(store.clone(), Arc::new(SequentialIds::new()));
    let loaded = cold.load::<User>(t, user_id).await.unwrap();
    assert_eq!(loaded.version, 101);
    assert_eq!(
        store.take(),
        5,
        "only the events after the snapshot were read"
    );
    let events = memory
        .read_stream(&stream, StreamQuery::all())
        .await
        .unwrap();
    assert_eq!(loaded, full_replay(&events, &stream));

    // A temporal read uses the snapshot only when it is inside the bound.
    let as_of = cold
        .load_until::<User>(t, user_id, Until::Version(98))
        .await
        .unwrap();
    assert_eq!(store.take(), 2, "inside: the snapshot and two events");
    assert_eq!(as_of, full_replay(&events[..98], &stream));
    let as_of = cold
        .load_until::<User>(t, user_id, Until::Version(50))
        .await
        .unwrap();
    assert_eq!(store.take(), 50, "outside: a replay of the fifty events");
    assert_eq!(as_of, full_replay(&events[..50], &stream));
    let before = events[95].occurred_at - Duration::microseconds(1);
    let as_of = cold
        .load_until::<User>(t, user_id, Until::Time(before))
        .await
        .unwrap();
    assert_eq!(
        store.take(),
        95,
        "a time before the snapshot's events: replayed"
    );
    assert_eq!(as_of, full_replay(&events[..95], &stream));
    let position = events[96].global_position;
    cold.load_until::<User>(t, user_id, Until::Position(position))
        .await
        .unwrap();
    assert_eq!(store.take(), 1, "a position after the snapshot: one event");
}

#[tokio::test]
async fn snapshots_of_another_schema_version_or_unreadable_are_ignored() {
    let memory = MemoryEventStore::new();
    let (t, user_id, stream) = user_with_logins(&memory, 40).await;
    let events = memory
        .read_stream(&stream, StreamQuery::all())
        .await
        .unwrap();
    let kept = memory
        .read_snapshot(&stream, user_snapshot_schema(), Until::End)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.version, 36);
    // A newer snapshot at another schema version, claiming another state:
    // never read by this build.
    let mut foreign = kept.clone();
    foreign.version = 41;
    foreign.global_position = events[40].global_position;
    foreign.occurred_until = events[40].occurred_at;
    foreign.schema_version = user_snapshot_schema() + 1;
    foreign.state = Arc::new(serde_json::json!({"username": "mallory"}));
    memory.save_snapshot(&foreign).await.unwrap();
    let store = Counting::new(memory.clone());
    let cold = Repository::new(store.clone(), Arc::new(SequentialIds::new()));
    let loaded = cold.load::<User>(t, user_id).await.unwrap();
    assert_eq!(loaded, full_replay(&events, &stream));
    assert_eq!(
        store.take(),
        5,
        "the schema-1 snapshot and the five events after it"
    );
    // A snapshot of this schema version that does not decode: a full replay.
    let mut garbled = kept;
    garbled.version = 40;
    garbled.global_position = events[39].global_position;
    garbled.occurred_until = events[39].occurred_at;
    garbled.state = Arc::new(serde_json::json!({"username": 5}));
    memory.save_snapshot(&garbled).await.unwrap();
    let loaded = cold.load::<User>(t, user_id).await.unwrap();
    assert_eq!(loaded, full_replay(&events, &stream));
    assert_eq!(store.take(), 1 + 41, "the tail, then every event");
}

#[tokio::test]
async fn sealed_fields_stay_sealed_in_snapshots() {
    let memory = MemoryEventStore::new();
    let repo = repo(&memory).with_snapshots(SnapshotPolicy::every(1));
    let t = tenant();
    let user_id = create_user(&repo, t).await;
    let secret = SealedSecret::new(KeyId::from_uuid(Uuid::now_v7()), "TOTP-CIPHERTEXT".into());
    repo.execute::<User>(
        user_id,
        &UserCommand::StartMfaEnrollment {
            secret: secret.clone(),
        },
        &CommandContext::new(t, t0()),
    )
    .await
    .unwrap();
    let stream = Repository::stream_id::<User>(t, user_id);
    let snapshot = memory
        .read_snapshot(&stream, user_snapshot_schema(), Until::End)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.version, 2);
    let state = &snapshot.state;
    assert_eq!(
        state["mfa"]["pending_secret"],
        serde_json::to_value(&secret).unwrap(),
        "the secret is kept as the event keeps it: sealed"
    );
    assert!(contains_sealed(state));
    assert!(state["mfa"]["pending_secret"][SEALED_TAG].is_object());
    assert_eq!(
        state["credentials"][0]["hash"],
        serde_json::to_value(sealed(1)).unwrap()
    );
    // Stripping sealed values leaves no ciphertext.
    assert!(!strip_sealed(state).to_string().contains("CIPHERTEXT"));
}

/// The schema version of the User aggregate's snapshots in this build.
fn user_snapshot_schema() -> u32 {
    <User as Aggregate>::SNAPSHOT
        .map(|codec| codec.schema_version)
        .unwrap_or_default()
}

// ----- projections that survive bad events and store outages ------------------

/// Applies policy events, refuses ones named "poison", panics on "bomb".
#[derive(Debug, Default)]
struct Picky {
    policies: Vec<String>,
}

impl Projection for Picky {
    fn name(&self) -> &'static str {
        "picky"
    }
    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        if let PolicyEvent::PolicyCreated { name, .. } = event.decode::<PolicyEvent>()? {
            match name.as_str() {
                "poison" => {
                    return Err(ProjectionError::Failed {
                        projection: "picky".into(),
                        reason: "poison refused".into(),
                    });
                }
                "bomb" => panic!("bomb"),
                _ => self.policies.push(name),
            }
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.policies.clear();
    }
}

fn raw_event(event_type: &str, payload: serde_json::Value, schema_version: u32) -> NewEvent {
    NewEvent {
        event_id: EventId::from_uuid(Uuid::now_v7()),
        event_type: Arc::from(event_type),
        schema_version,
        occurred_at: t0(),
        payload: Arc::new(payload),
        metadata: Arc::new(EventMetadata::default()),
    }
}

#[tokio::test]
async fn a_projection_records_the_events_it_cannot_use_and_goes_on() {
    let store = MemoryEventStore::new();
    let repo = repo(&store);
    let t = tenant();
    let ctx = CommandContext::new(t, t0());
    for name in ["first", "poison", "bomb", "second"] {
        let id = PolicyId::from_uuid(Uuid::now_v7());
        repo.execute::<Policy>(id, &create_policy(id, name), &ctx)
            .await
            .unwrap();
    }
    // Events no build of this projection can decode.
    let bad = [
        raw_event("PolicyCreated", serde_json::json!({"policy_id": 5}), 1),
        raw_event("PolicyTeleported", serde_json::json!({}), 1),
        raw_event("PolicyCreated", serde_json::json!({}), 99),
    ];
    for event in bad {
        let s = StreamId::new(t, "policy", Uuid::now_v7());
        store
            .append(AppendRequest {
                stream_id: s,
                expected: ExpectedVersion::NoStream,
                events: vec![event],
                idempotency_key: None,
            })
            .await
            .unwrap();
    }
    let id = PolicyId::from_uuid(Uuid::now_v7());
    repo.execute::<Policy>(id, &create_policy(id, "third"), &ctx)
        .await
        .unwrap();
    let checkpoints = Arc::new(InMemoryCheckpoints::new());
    let mut runner = ProjectionRunner::new(
        Arc::new(store.clone()),
        checkpoints.clone(),
        Picky::default(),
        Scope::Tenant(t),
    )
    .await
    .unwrap();
    assert_eq!(runner.catch_up().await.unwrap(), 8);
    assert_eq!(runner.projection().policies, ["first", "second", "third"]);
    let letters = runner.dead_letters().await.unwrap();
    let reasons: Vec<(&str, &str)> = letters
        .iter()
        .map(|l| (l.event_type.as_str(), l.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert!(reasons[0].1.contains("poison refused"));
    assert!(reasons[1].1.contains("panicked"));
    assert!(reasons[2].1.contains("malformed payload"), "{reasons:?}");
    assert_eq!(reasons[3].0, "PolicyTeleported");
    assert!(reasons[3].1.contains("unknown event type"));
    assert!(reasons[4].1.contains("schema version 99"));
    let health = runner.health().report();
    assert_eq!(health.dead_letters, 5);
    assert_eq!(health.position, store.head_position().await.unwrap());
    assert_eq!(health.lag(), 0);
    // A rebuild meets the same events and records nothing twice.
    runner.rebuild().await.unwrap();
    assert_eq!(runner.dead_letters().await.unwrap(), letters);
}

/// A store whose global reads and subscriptions fail while it is "down".
#[derive(Debug)]
struct Flaky {
    inner: MemoryEventStore,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("simulated outage".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for Flaky {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        self.inner.append(request).await
    }
    async fn read_stream(
        &self,
        s: &StreamId,
        q: StreamQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.read_stream(s, q).await
    }
    async fn read_global(&self, s: Scope, q: GlobalQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.check()?;
        self.inner.read_global(s, q).await
    }
    async fn stream_version(&self, s: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(s).await
    }
    async fn idempotent_result(
        &self,
        t: TenantId,
        k: &IdempotencyKey,
    ) -> Result<Option<AppendResult>, StoreError> {
        self.inner.idempotent_result(t, k).await
    }
    async fn head_position(&self) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.head_position().await
    }
    async fn read_chain(
        &self,
        t: TenantId,
        q: security_core::chain::ChainQuery,
    ) -> Result<Vec<security_core::chain::ChainRecord>, StoreError> {
        self.check()?;
        self.inner.read_chain(t, q).await
    }
    async fn chain_head(
        &self,
        t: TenantId,
    ) -> Result<Option<security_core::chain::ChainHead>, StoreError> {
        self.check()?;
        self.inner.chain_head(t).await
    }
    async fn chain_heads(
        &self,
    ) -> Result<Vec<(TenantId, security_core::chain::ChainHead)>, StoreError> {
        self.check()?;
        self.inner.chain_heads().await
    }
    fn subscribe(&self, s: Scope, after: u64) -> EventStream {
        let down = Arc::clone(&self.down);
        Box::pin(self.inner.subscribe(s, after).map(move |item| {
            if down.load(std::sync::atomic::Ordering::SeqCst) {
                Err(StoreError::Unavailable("simulated outage".into()))
            } else {
                item
            }
        }))
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_projection_rides_out_a_store_outage() {
    let memory = MemoryEventStore::new();
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let store: Arc<dyn EventStore> = Arc::new(Flaky {
        inner: memory.clone(),
        down: Arc::clone(&down),
    });
    let repo = repo(&memory);
    let t = tenant();
    let ctx = CommandContext::new(t, t0());
    let id = PolicyId::from_uuid(Uuid::now_v7());
    repo.execute::<Policy>(id, &create_policy(id, "before"), &ctx)
        .await
        .unwrap();
    // Made while the store is down: the checkpoint loads on the first run.
    let mut runner = ProjectionRunner::deferred(
        Arc::clone(&store),
        Arc::new(InMemoryCheckpoints::new()),
        Counts::default(),
        Scope::Tenant(t),
    );
    let health = runner.health();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let backoff = Backoff {
        base: std::time::Duration::from_millis(5),
        max: std::time::Duration::from_millis(40),
    };
    let task = tokio::spawn(async move {
        runner
            .run_supervised(&TokioTimer, backoff, stopped.map(|_| ()))
            .await;
        runner
    });
    eventually("failures reported", || {
        health.report().consecutive_failures >= 3
    })
    .await;
    let report = health.report();
    assert_eq!(report.status, ProjectionStatus::Retrying);
    assert_eq!(
        report.last_error.as_deref(),
        Some("event store unavailable")
    );
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    eventually("caught up after the outage", || {
        health.report().position == 1
    })
    .await;
    eventually("live", || health.report().is_healthy()).await;
    // A second outage while following live, with writes meanwhile.
    down.store(true, std::sync::atomic::Ordering::SeqCst);
    let id = PolicyId::from_uuid(Uuid::now_v7());
    repo.execute::<Policy>(id, &create_policy(id, "during"), &ctx)
        .await
        .unwrap();
    eventually("second outage seen", || {
        health.report().consecutive_failures >= 1
    })
    .await;
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    eventually("caught up again", || {
        let report = health.report();
        report.position == 2 && report.is_healthy()
    })
    .await;
    let report = health.report();
    assert!(report.restarts >= 2, "{report:?}");
    assert!(report.last_error.is_none());
    stop.send(()).unwrap();
    let runner = task.await.unwrap();
    assert_eq!(health.report().status, ProjectionStatus::Stopped);
    assert_eq!(
        runner
            .projection()
            .by_type
            .get(&(t, "PolicyCreated".to_owned())),
        Some(&2),
        "each event applied once"
    );
}

// ----- event schema evolution ----------------------------------------------------

#[path = "support/evolution.rs"]
mod evolution;

#[tokio::test]
async fn old_events_are_upcast_on_every_read_in_memory() {
    evolution::old_events_are_upcast_on_every_read(
        Arc::new(MemoryEventStore::new()),
        Arc::new(SequentialIds::new()),
    )
    .await;
}

// ----- bounded input ----------------------------------------------------------------

#[path = "support/limits.rs"]
mod limits_at_the_edge;

#[tokio::test]
async fn the_worst_legal_input_is_stored_and_the_deep_attack_refused_in_memory() {
    limits_at_the_edge::worst_legal_input_is_stored_and_the_attack_refused(Arc::new(
        MemoryEventStore::new(),
    ))
    .await;
}
