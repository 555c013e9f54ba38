//! Three replicas of the authentication service over one PostgreSQL schema
//! (fresh per test, owned by a role of its own) and one Redis (a key prefix
//! per test), sharing a key store (envelope-encrypted records in the same
//! database, one master key), a clock and a counting password hasher.
//!
//! Tests FAIL (never skip) when PostgreSQL or Redis is missing.

#![allow(
    unreachable_pub,
    dead_code,
    reason = "test support: each test uses part of it"
)]

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use security::authn::{AuthenticationService, AuthnConfig, NewPasswordUser, RateLimit};
use security::core::{
    AccountClaims, AccountId, ClientInfo, Clock, KeyStore, ManualClock, PasswordHashError,
    PasswordHasher, Repository, Request, UserId,
};
use security::crypto::{
    Argon2Config, Argon2PasswordHasher, EnvelopeKeyStore, MasterKey, UuidV7Ids,
};
use security::eventstore::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use security::eventstore::{
    PostgresAttemptLedger, PostgresChallengeStore, PostgresEventStore, PostgresKeyRecordStore,
    PostgresRateLimiter, RedisAttemptLedger, RedisConfig, RedisConnection, RedisRateLimiter,
    StoreOptions,
};

pub const PASSWORD: &str = "Correct-Horse-Battery-9";

pub fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

pub fn client(n: u32) -> ClientInfo {
    let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
    ClientInfo::new(Some(ip.parse().unwrap()), Some("fleet-test"))
}

fn env(var: &str, loopback: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| loopback.to_owned())
}

pub fn database_url() -> String {
    env(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
}

pub fn redis_url() -> String {
    env("REDIS_URL", "redis://127.0.0.1:6379")
}

/// A password hasher that counts the verifications against real hashes
/// (the work an attacker's guess costs and the oracle it may give).
#[derive(Debug)]
pub struct CountingHasher {
    inner: Argon2PasswordHasher,
    pub verifies: AtomicUsize,
    pub dummies: AtomicUsize,
}

impl CountingHasher {
    fn new() -> Self {
        Self {
            inner: Argon2PasswordHasher::new(Argon2Config {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
                ..Argon2Config::OWASP
            })
            .unwrap(),
            verifies: AtomicUsize::new(0),
            dummies: AtomicUsize::new(0),
        }
    }

    pub fn verifies(&self) -> usize {
        self.verifies.load(Ordering::SeqCst)
    }
}

impl PasswordHasher for CountingHasher {
    fn hash(&self, password: &SecretString) -> Result<SecretString, PasswordHashError> {
        self.inner.hash(password)
    }

    fn verify(
        &self,
        password: &SecretString,
        hash: &SecretString,
    ) -> Result<bool, PasswordHashError> {
        self.verifies.fetch_add(1, Ordering::SeqCst);
        self.inner.verify(password, hash)
    }

    fn needs_rehash(&self, hash: &SecretString) -> bool {
        self.inner.needs_rehash(hash)
    }

    fn dummy_verify(&self, password: &SecretString) {
        self.dummies.fetch_add(1, Ordering::SeqCst);
        self.inner.dummy_verify(password);
    }
}

/// Where the replicas keep rate limits and verification budgets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    /// Redis (the default wiring where there is one).
    Redis,
    /// The event store's PostgreSQL (deployments without Redis).
    Postgres,
}

/// Which clock the fleet shares.
pub enum Time {
    /// The system clock (races, delays).
    Real,
    /// A clock the test moves (TOTP steps, rate windows).
    Manual(Arc<ManualClock>),
}

pub struct Fleet {
    pub admin: PgPool,
    pub schema: String,
    pub prefix: String,
    pub stores: Vec<PostgresEventStore>,
    pub replicas: Vec<AuthenticationService>,
    pub keys: Vec<Arc<dyn KeyStore>>,
    pub hasher: Arc<CountingHasher>,
    pub clock: Arc<dyn Clock>,
    pub manual: Option<Arc<ManualClock>>,
    pub account: AccountId,
}

pub async fn admin_pool() -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(PgConnectOptions::from_str(&database_url()).unwrap())
        .await
        .expect("PostgreSQL must be running (scripts/services.sh starts it)")
}

pub async fn role_pool(name: &str, port: Option<u16>, max: u32) -> PgPool {
    let mut options = PgConnectOptions::from_str(&database_url())
        .unwrap()
        .username(name)
        .options([("search_path", name)]);
    if let Some(port) = port {
        options = options.host("127.0.0.1").port(port);
    }
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(20))
        .connect_with(options)
        .await
        .expect("connect as the test role")
}

/// The configuration of the fleet's tests: no throttling in the way
/// unless a test asks for it.
pub fn open_config() -> AuthnConfig {
    AuthnConfig {
        login_rate: RateLimit {
            max: 1_000_000,
            window: Duration::from_secs(60),
        },
        mfa_rate: RateLimit {
            max: 1_000_000,
            window: Duration::from_secs(60),
        },
        ..AuthnConfig::default()
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600, 0).unwrap()
}

impl Fleet {
    pub async fn new(config: AuthnConfig, time: Time) -> Self {
        Self::build(config, time, &[None, None, None], Shared::Redis).await
    }

    /// The fleet of a deployment without Redis.
    pub async fn postgres_only(config: AuthnConfig, time: Time) -> Self {
        Self::build(config, time, &[None, None, None], Shared::Postgres).await
    }

    /// Replica `i` connects to PostgreSQL on 127.0.0.1:`ports[i]` when
    /// given (a proxy), else as `DATABASE_URL` says.
    pub async fn with_ports(config: AuthnConfig, time: Time, ports: &[Option<u16>]) -> Self {
        Self::build(config, time, ports, Shared::Redis).await
    }

    async fn build(config: AuthnConfig, time: Time, ports: &[Option<u16>], shared: Shared) -> Self {
        let admin = admin_pool().await;
        let schema = format!("fleet_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        security::eventstore::sqlx::raw_sql(&format!(
            "CREATE ROLE \"{schema}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
             CREATE SCHEMA \"{schema}\" AUTHORIZATION \"{schema}\";"
        ))
        .execute(&admin)
        .await
        .unwrap();
        let (clock, manual): (Arc<dyn Clock>, _) = match time {
            Time::Real => (Arc::new(security::crypto::SystemClock::new()), None),
            Time::Manual(clock) => (clock.clone() as Arc<dyn Clock>, Some(clock)),
        };
        let master = MasterKey::generate().unwrap().to_base64();
        let prefix = format!("{schema}:");
        let redis =
            RedisConnection::connect(&RedisConfig::new(redis_url()).with_key_prefix(&prefix))
                .await
                .expect("Redis must be running (scripts/services.sh starts it)");
        let hasher = Arc::new(CountingHasher::new());
        let options = StoreOptions::default();
        let mut stores = Vec::new();
        let mut replicas = Vec::new();
        let mut keys = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let store = PostgresEventStore::from_pool_with(
                role_pool(&schema, *port, 8).await,
                options.clone(),
            );
            if i == 0 {
                store.migrate().await.unwrap();
            }
            let key_store: Arc<dyn KeyStore> = Arc::new(
                EnvelopeKeyStore::new(
                    PostgresKeyRecordStore::new(&store),
                    MasterKey::from_base64(master.expose_secret()).unwrap(),
                    clock.clone(),
                    Arc::new(UuidV7Ids::new()),
                )
                .unwrap(),
            );
            let repo = Repository::new(Arc::new(store.clone()), Arc::new(UuidV7Ids::new()));
            let authn = AuthenticationService::builder(
                repo,
                key_store.clone(),
                hasher.clone(),
                clock.clone(),
            )
            .config(config.clone())
            .challenge_store(Arc::new(PostgresChallengeStore::new(&store)));
            let authn = match shared {
                Shared::Redis => authn
                    .rate_limiter(Arc::new(RedisRateLimiter::new(&redis)))
                    .attempt_ledger(Arc::new(RedisAttemptLedger::new(&redis))),
                Shared::Postgres => authn
                    .rate_limiter(Arc::new(PostgresRateLimiter::new(&store)))
                    .attempt_ledger(Arc::new(PostgresAttemptLedger::new(&store))),
            }
            .build()
            .unwrap();
            stores.push(store);
            replicas.push(authn);
            keys.push(key_store);
        }
        let admin_api = replicas[0].admin();
        let operator = admin_api
            .create_operator(&Request::default(), "ops")
            .await
            .unwrap();
        let account = admin_api
            .create_account(
                &Request::default(),
                operator,
                "bank",
                AccountClaims::default(),
            )
            .await
            .unwrap();
        Self {
            admin,
            schema,
            prefix,
            stores,
            replicas,
            keys,
            hasher,
            clock,
            manual,
            account,
        }
    }

    pub fn tenant(&self) -> security::core::TenantId {
        self.account.tenant()
    }

    pub fn replica(&self, i: usize) -> &AuthenticationService {
        &self.replicas[i % self.replicas.len()]
    }

    pub fn advance(&self, secs: i64) {
        if let Some(clock) = &self.manual {
            clock.advance(chrono::Duration::seconds(secs));
        }
    }

    pub async fn user(&self, name: &str) -> UserId {
        self.user_in(self.account, name).await
    }

    pub async fn user_in(&self, account: AccountId, name: &str) -> UserId {
        self.replicas[0]
            .create_user_with_password(
                &Request::default(),
                account,
                NewPasswordUser::new(name, secret(PASSWORD)),
            )
            .await
            .unwrap()
    }

    /// Drops the schema, the role and the Redis keys.
    pub async fn cleanup(self) {
        for store in &self.stores {
            store.close().await;
        }
        let name = self.schema.clone();
        let _ = security::eventstore::sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
        )
        .bind(&name)
        .execute(&self.admin)
        .await;
        security::eventstore::sqlx::raw_sql(&format!(
            "DROP SCHEMA IF EXISTS \"{name}\" CASCADE; DROP ROLE IF EXISTS \"{name}\";"
        ))
        .execute(&self.admin)
        .await
        .unwrap();
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// The p-th percentile of durations (p in 0..=100).
pub fn percentile(mut samples: Vec<Duration>, p: usize) -> Duration {
    samples.sort();
    let index = (samples.len() * p).div_ceil(100).saturating_sub(1);
    samples[index.min(samples.len() - 1)]
}

/// A TCP proxy to PostgreSQL that the test can cut (every connection
/// dropped, new ones refused) and restore: a database outage for the
/// replicas behind it, without touching the shared server.
pub struct Proxy {
    pub port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    pub async fn start() -> Self {
        let target = {
            let options = PgConnectOptions::from_str(&database_url()).unwrap();
            format!("{}:{}", options.get_host(), options.get_port())
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *watch.borrow() {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { port, cut }
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}
