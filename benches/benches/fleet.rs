//! The shared state of a fleet of replicas, each beside its reference:
//!
//! - Rate limiting: `RedisRateLimiter` (one Lua script, one round trip per
//!   check of both login keys) and `PostgresRateLimiter` (one function
//!   call) beside the in-memory limiter.
//! - A full password login on the shared backends (PostgreSQL event store,
//!   envelope key store in PostgreSQL, PostgreSQL challenge store, Redis
//!   rate limiter and attempt ledger) beside the argon2id verification
//!   alone, both at the OWASP parameters, interleaved. Target: the login
//!   costs at most 5 % more.
//!
//! Needs PostgreSQL (`DATABASE_URL`) and Redis (`REDIS_URL`):
//! `cargo bench -p security-benches --features postgres --bench fleet`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "benchmark code"
)]

use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use security::authn::{
    AuthenticationService, AuthnConfig, LoginOutcome, MemoryRateLimiter, NewPasswordUser, RateLimit,
};
use security::core::{
    AccountClaims, ClientInfo, KeyStore, PasswordHasher, RateLimiter, Repository, Request,
};
use security::crypto::{Argon2PasswordHasher, EnvelopeKeyStore, MasterKey, SystemClock, UuidV7Ids};
use security::eventstore::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use security::eventstore::{
    PostgresChallengeStore, PostgresEventStore, PostgresKeyRecordStore, PostgresRateLimiter,
    RedisAttemptLedger, RedisConfig, RedisConnection, RedisRateLimiter, StoreOptions,
};

const PASSWORD: &str = "Correct-Horse-Battery-9";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn env(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// A fresh schema owned by a fresh role, and a migrated store on it.
async fn fresh_store() -> PostgresEventStore {
    let url = env(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(PgConnectOptions::from_str(&url).unwrap())
        .await
        .expect("PostgreSQL must be running");
    let name = format!(
        "bench_fleet_{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    security::eventstore::sqlx::raw_sql(&format!(
        "CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
         CREATE SCHEMA \"{name}\" AUTHORIZATION \"{name}\";"
    ))
    .execute(&admin)
    .await
    .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(
            PgConnectOptions::from_str(&url)
                .unwrap()
                .username(&name)
                .options([("search_path", name.as_str())]),
        )
        .await
        .unwrap();
    let store = PostgresEventStore::from_pool_with(pool, StoreOptions::default());
    store.migrate().await.unwrap();
    store
}

async fn redis(prefix: &str) -> RedisConnection {
    RedisConnection::connect(
        &RedisConfig::new(env("REDIS_URL", "redis://127.0.0.1:6379")).with_key_prefix(prefix),
    )
    .await
    .expect("Redis must be running")
}

fn rate_limiters(c: &mut Criterion) {
    let rt = runtime();
    let (store, connection) = rt.block_on(async {
        let prefix = format!("bench:{}:", uuid::Uuid::now_v7().simple());
        (fresh_store().await, redis(&prefix).await)
    });
    let limit = RateLimit {
        max: u32::MAX,
        window: Duration::from_secs(1),
    };
    let limiters: Vec<(&str, Arc<dyn RateLimiter>)> = vec![
        ("memory", Arc::new(MemoryRateLimiter::new())),
        ("redis", Arc::new(RedisRateLimiter::new(&connection))),
        ("postgres", Arc::new(PostgresRateLimiter::new(&store))),
    ];
    let mut group = c.benchmark_group("rate_limiter_two_keys");
    for (name, limiter) in &limiters {
        let mut n = 0_u64;
        group.bench_function(*name, |b| {
            b.iter(|| {
                n += 1;
                let ip = format!("login:ip:10.0.{}.{}", (n >> 8) & 255, n & 255);
                let user = format!("login:user:{}", n % 1000);
                rt.block_on(limiter.acquire_all(&[&ip, &user], limit, Utc::now()))
                    .unwrap()
            });
        });
    }
    group.finish();
}

/// One replica's service on the shared backends, and its tenant with Alice.
async fn shared_service(
    hasher: Arc<Argon2PasswordHasher>,
) -> (AuthenticationService, security::core::AccountId) {
    let store = fresh_store().await;
    let connection = redis(&format!("bench:{}:", uuid::Uuid::now_v7().simple())).await;
    let clock = Arc::new(SystemClock::new());
    let keys: Arc<dyn KeyStore> = Arc::new(
        EnvelopeKeyStore::new(
            PostgresKeyRecordStore::new(&store),
            MasterKey::generate().unwrap(),
            clock.clone(),
            Arc::new(UuidV7Ids::new()),
        )
        .unwrap(),
    );
    let repo = Repository::new(Arc::new(store.clone()), Arc::new(UuidV7Ids::new()));
    let authn = AuthenticationService::builder(repo, keys, hasher, clock)
        .config(AuthnConfig {
            login_rate: RateLimit {
                max: u32::MAX,
                window: Duration::from_secs(1),
            },
            ..AuthnConfig::default()
        })
        .rate_limiter(Arc::new(RedisRateLimiter::new(&connection)))
        .attempt_ledger(Arc::new(RedisAttemptLedger::new(&connection)))
        .challenge_store(Arc::new(PostgresChallengeStore::new(&store)))
        .build()
        .unwrap();
    let admin = authn.admin();
    let operator = admin
        .create_operator(&Request::default(), "ops")
        .await
        .unwrap();
    let account = admin
        .create_account(
            &Request::default(),
            operator,
            "acme",
            AccountClaims::default(),
        )
        .await
        .unwrap();
    authn
        .create_user_with_password(
            &Request::default(),
            account,
            NewPasswordUser::new("alice", SecretString::from(PASSWORD)),
        )
        .await
        .unwrap();
    (authn, account)
}

#[derive(Default)]
struct Round {
    alone: Duration,
    login: Duration,
}

fn rounds(
    iters: u64,
    rt: &tokio::runtime::Runtime,
    hasher: &Arc<Argon2PasswordHasher>,
    phc: &SecretString,
    authn: &AuthenticationService,
    account: security::core::AccountId,
) -> Round {
    let password = SecretString::from(PASSWORD);
    let client = ClientInfo::new(Some("198.51.100.1".parse().unwrap()), Some("bench"));
    let mut round = Round::default();
    for _ in 0..iters {
        let (h, p, phc) = (Arc::clone(hasher), password.clone(), phc.clone());
        let start = Instant::now();
        let ok = rt
            .block_on(rt.spawn_blocking(move || h.verify(black_box(&p), &phc)))
            .unwrap()
            .unwrap();
        round.alone += start.elapsed();
        assert!(ok);
        let start = Instant::now();
        let outcome = rt
            .block_on(authn.authenticate(account.tenant(), "alice", black_box(&password), &client))
            .unwrap();
        round.login += start.elapsed();
        assert!(matches!(outcome, LoginOutcome::Authenticated(_)));
    }
    round
}

fn shared_login(c: &mut Criterion) {
    let rt = runtime();
    let hasher = Arc::new(Argon2PasswordHasher::owasp().unwrap());
    let (authn, account) = rt.block_on(shared_service(Arc::clone(&hasher)));
    let phc = hasher.hash(&SecretString::from(PASSWORD)).unwrap();
    let mut group = c.benchmark_group("password_login_shared_backends");
    group.sample_size(20);
    group.bench_function("argon2id_verify_alone_blocking_pool", |b| {
        b.iter_custom(|iters| rounds(iters, &rt, &hasher, &phc, &authn, account).alone);
    });
    group.bench_function("full_login_postgres_redis", |b| {
        b.iter_custom(|iters| rounds(iters, &rt, &hasher, &phc, &authn, account).login);
    });
    group.finish();
}

criterion_group!(benches, rate_limiters, shared_login);
criterion_main!(benches);
