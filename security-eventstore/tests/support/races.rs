//! One idempotent request sent by several replicas at once, the way a
//! client retrying through a round-robin balancer does: shared by the
//! memory and PostgreSQL tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use security_core::{
    AccountClaims, AccountId, Actor, AdminError, AdminService, AuthMethod, ClientInfo,
    CommandContext, CommandError, Credential, EventStore, IdGenerator, IdempotencyKey, KeyId,
    KeyStore, ManualClock, NewUser, OperatorId, Repository, Request, RetryPolicy, SealedSecret,
    StateCache, StreamQuery, TenantId, TokioTimer, User, UserCommand, UserId, UserStatus,
};
use security_crypto::{MemoryKeyStore, UuidV7Ids};
use uuid::Uuid;

/// What the replicas answered, over every race.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Calls that returned the request's result.
    pub(crate) answered: usize,
    /// Calls refused by a rule the first run made true ("already exists").
    pub(crate) rejected: usize,
    /// Calls that gave up on contention.
    pub(crate) conflicts: usize,
}

fn count(tally: &mut Tally, result: Result<(), AdminError>, what: &str) {
    match result {
        Ok(()) => tally.answered += 1,
        Err(AdminError::Command(CommandError::Rejected(_))) => tally.rejected += 1,
        Err(AdminError::Command(CommandError::Conflict { .. })) => tally.conflicts += 1,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

/// `races` times: every replica creates the same user with one key at the
/// same moment, then locks it with another key. Returns the tallies of
/// both steps and checks that each happened exactly once in the store.
pub(crate) async fn create_and_lock_races(
    stores: &[Arc<dyn EventStore>],
    races: usize,
) -> (Tally, Tally) {
    let clock = Arc::new(ManualClock::new(
        Utc.timestamp_opt(1_700_000_000, 0).single().unwrap(),
    ));
    let keys: Arc<dyn KeyStore> = Arc::new(MemoryKeyStore::new());
    let replicas: Vec<AdminService> = stores
        .iter()
        .map(|store| {
            let repo = Repository::new(Arc::clone(store), Arc::new(UuidV7Ids));
            AdminService::new(repo, clock.clone(), Arc::clone(&keys))
        })
        .collect();
    let admin = &replicas[0];
    let by = || Request::by(Actor::service("race"));
    let operator: OperatorId = admin.create_operator(&by(), "races").await.unwrap();
    let account: AccountId = admin
        .create_account(&by(), operator, "racers", AccountClaims::default())
        .await
        .unwrap();
    let tenant: TenantId = account.tenant();
    let (mut created, mut locked) = (Tally::default(), Tally::default());
    for race in 0..races {
        let key =
            |step: &str| IdempotencyKey::new(format!("{step}-{race}-{}", Uuid::now_v7())).unwrap();
        let create = by().idempotent(key("create"));
        let user_id: UserId = admin.user_id_for(&create, account);
        let barrier = Arc::new(tokio::sync::Barrier::new(replicas.len()));
        let tasks: Vec<_> = replicas
            .iter()
            .map(|replica| {
                let (replica, create, barrier) =
                    (replica.clone(), create.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    let new_user = NewUser {
                        username: format!("user-{race}"),
                        credential: Credential::Password {
                            hash: SealedSecret::new(KeyId::from_uuid(Uuid::nil()), "ct".into()),
                        },
                        metadata: BTreeMap::new(),
                        must_change_password: false,
                    };
                    barrier.wait().await;
                    replica.create_user(&create, account, new_user).await
                })
            })
            .collect();
        for task in tasks {
            let result = task.await.unwrap();
            if let Ok(id) = &result {
                assert_eq!(*id, user_id, "every replica names the same user");
            }
            count(&mut created, result.map(|_| ()), "create_user");
        }

        let lock = by().idempotent(key("lock"));
        let barrier = Arc::new(tokio::sync::Barrier::new(replicas.len()));
        let tasks: Vec<_> = replicas
            .iter()
            .map(|replica| {
                let (replica, lock, barrier) =
                    (replica.clone(), lock.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    replica.lock_user(&lock, tenant, user_id, "review").await
                })
            })
            .collect();
        for task in tasks {
            let result = task.await.unwrap();
            if let Ok(user) = &result {
                assert!(
                    matches!(user.status, UserStatus::Locked { .. }),
                    "the answer is the locked user"
                );
            }
            count(&mut locked, result.map(|_| ()), "lock_user");
        }

        let stream = Repository::stream_id::<User>(tenant, user_id);
        let types: Vec<String> = stores[0]
            .read_stream(&stream, StreamQuery::all())
            .await
            .unwrap()
            .iter()
            .map(|e| e.event_type.to_string())
            .collect();
        assert_eq!(
            types,
            ["UserCreated", "UserLocked", "SessionsRevoked"],
            "race {race}: each request happened exactly once"
        );
    }
    let roster = admin.account(account).await.unwrap().users.len();
    assert_eq!(roster, races, "one roster entry per created user");
    (created, locked)
}

/// `logins` concurrent logins of one user spread over the replicas (each
/// with its own state cache), each recorded with `policy`. Returns how
/// many landed and how many surfaced a conflict; checks that the stream
/// holds one `UserAuthenticated` per landed login.
pub(crate) async fn concurrent_logins(
    stores: &[Arc<dyn EventStore>],
    logins: usize,
    policy: RetryPolicy,
) -> (usize, usize) {
    let ids: Arc<dyn IdGenerator> = Arc::new(UuidV7Ids);
    let replicas: Vec<Repository> = stores
        .iter()
        .map(|store| {
            Repository::new(Arc::clone(store), Arc::clone(&ids))
                .with_state_cache(StateCache::default())
                .with_timer(Arc::new(TokioTimer))
        })
        .collect();
    let tenant = TenantId::from_uuid(Uuid::now_v7());
    let now = Utc.timestamp_opt(1_700_000_000, 0).single().unwrap();
    let user_id = UserId::from_uuid(Uuid::now_v7());
    let create = UserCommand::CreateUser {
        user_id,
        account_id: AccountId::from(tenant),
        username: "service-account".into(),
        credentials: Credential::Password {
            hash: SealedSecret::new(KeyId::from_uuid(Uuid::nil()), "ct".into()),
        },
        metadata: BTreeMap::new(),
        must_change_password: false,
    };
    replicas[0]
        .execute::<User>(user_id, &create, &CommandContext::new(tenant, now))
        .await
        .unwrap();
    // Every replica has the user cached, as after earlier logins.
    for replica in &replicas {
        replica.load::<User>(tenant, user_id).await.unwrap();
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(logins));
    let tasks: Vec<_> = (0..logins)
        .map(|i| {
            let replica = replicas[i % replicas.len()].clone();
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let login = UserCommand::RecordAuthentication {
                    method: AuthMethod::Password,
                    client: ClientInfo::default(),
                };
                barrier.wait().await;
                replica
                    .execute_with::<User>(
                        user_id,
                        &login,
                        &CommandContext::new(tenant, now),
                        &policy,
                    )
                    .await
            })
        })
        .collect();
    let (mut landed, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => landed += 1,
            Err(CommandError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("login: unexpected error {e:?}"),
        }
    }
    let stream = Repository::stream_id::<User>(tenant, user_id);
    let recorded = stores[0]
        .read_stream(&stream, StreamQuery::all())
        .await
        .unwrap()
        .iter()
        .filter(|e| &*e.event_type == "UserAuthenticated")
        .count();
    assert_eq!(recorded, landed, "one event per login that landed");
    (landed, conflicts)
}
