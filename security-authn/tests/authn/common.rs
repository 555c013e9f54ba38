//! The fixture every test builds on: memory store and publisher, a manual
//! clock, a memory key store, a cheap argon2id hasher that counts its calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use security_authn::{
    AuthenticationService, AuthnConfig, LoginOutcome, NewPasswordUser, TokenPair,
};
use security_core::{
    AccountClaims, AccountId, ClientInfo, Clock, EventStore, ManualClock, OperatorId,
    PasswordHashError, PasswordHasher, Repository, Request, SequentialIds, StoredEvent, StreamId,
    StreamQuery, TenantId, UserId,
};
use security_crypto::{Argon2Config, Argon2PasswordHasher, MemoryKeyStore, UuidV7Ids};
use security_eventstore::{MemoryEventStore, MemoryPublisher};

/// A cheap argon2id for tests (the production cost is the OWASP one).
pub(crate) fn cheap_argon2() -> Argon2Config {
    Argon2Config {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
        ..Argon2Config::OWASP
    }
}

/// A password hasher that counts what it is asked to do.
#[derive(Debug)]
pub(crate) struct CountingHasher {
    inner: Argon2PasswordHasher,
    pub(crate) hashes: AtomicUsize,
    pub(crate) verifies: AtomicUsize,
    pub(crate) dummies: AtomicUsize,
    pub(crate) force_rehash: AtomicBool,
}

impl CountingHasher {
    pub(crate) fn new() -> Self {
        Self {
            inner: Argon2PasswordHasher::new(cheap_argon2()).unwrap(),
            hashes: AtomicUsize::new(0),
            verifies: AtomicUsize::new(0),
            dummies: AtomicUsize::new(0),
            force_rehash: AtomicBool::new(false),
        }
    }

    /// Verifications, real or dummy: the work an attempt costs.
    pub(crate) fn work(&self) -> usize {
        self.verifies.load(Ordering::SeqCst) + self.dummies.load(Ordering::SeqCst)
    }
}

impl PasswordHasher for CountingHasher {
    fn hash(&self, password: &SecretString) -> Result<SecretString, PasswordHashError> {
        self.hashes.fetch_add(1, Ordering::SeqCst);
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
        self.force_rehash.swap(false, Ordering::SeqCst) || self.inner.needs_rehash(hash)
    }

    fn dummy_verify(&self, password: &SecretString) {
        self.dummies.fetch_add(1, Ordering::SeqCst);
        self.inner.dummy_verify(password);
    }
}

pub(crate) const PASSWORD: &str = "Correct-Horse-Battery-9";

pub(crate) fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

pub(crate) fn client(ip: &str) -> ClientInfo {
    ClientInfo::new(Some(ip.parse().unwrap()), Some("tests/1.0"))
}

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600, 0).unwrap()
}

pub(crate) struct Fixture {
    pub(crate) store: Arc<MemoryEventStore>,
    pub(crate) publisher: Arc<MemoryPublisher>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) keys: Arc<MemoryKeyStore>,
    pub(crate) hasher: Arc<CountingHasher>,
    pub(crate) repo: Repository,
    pub(crate) authn: AuthenticationService,
    pub(crate) operator: OperatorId,
    pub(crate) account: AccountId,
}

impl Fixture {
    pub(crate) async fn new() -> Self {
        Self::with_config(AuthnConfig::default()).await
    }

    pub(crate) async fn with_config(config: AuthnConfig) -> Self {
        Self::with_challenges(
            config,
            Arc::new(security_authn::MemoryChallengeStore::new()),
        )
        .await
    }

    pub(crate) async fn with_challenges(
        config: AuthnConfig,
        challenges: Arc<security_authn::MemoryChallengeStore>,
    ) -> Self {
        let store = Arc::new(MemoryEventStore::new());
        let publisher = Arc::new(MemoryPublisher::new());
        let clock = Arc::new(ManualClock::new(t0()));
        let keys = Arc::new(MemoryKeyStore::with_clock_and_ids(
            clock.clone(),
            Arc::new(UuidV7Ids::new()),
        ));
        let hasher = Arc::new(CountingHasher::new());
        let repo = Repository::new(store.clone(), Arc::new(SequentialIds::new()))
            .with_publisher(publisher.clone());
        let authn = AuthenticationService::builder(
            repo.clone(),
            keys.clone(),
            hasher.clone(),
            clock.clone(),
        )
        .config(config)
        .challenge_store(challenges)
        .build()
        .unwrap();
        let operator = authn
            .admin()
            .create_operator(&Request::default(), "ops")
            .await
            .unwrap();
        let account = authn
            .admin()
            .create_account(
                &Request::default(),
                operator,
                "acme",
                AccountClaims::default(),
            )
            .await
            .unwrap();
        Self {
            store,
            publisher,
            clock,
            keys,
            hasher,
            repo,
            authn,
            operator,
            account,
        }
    }

    /// Another service over the same store, keys and clock (another
    /// instance of the application).
    pub(crate) fn second_instance(&self, config: AuthnConfig) -> AuthenticationService {
        AuthenticationService::builder(
            self.repo.clone(),
            self.keys.clone(),
            self.hasher.clone(),
            self.clock.clone(),
        )
        .config(config)
        .build()
        .unwrap()
    }

    pub(crate) fn tenant(&self) -> TenantId {
        self.account.tenant()
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn advance(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }

    pub(crate) async fn user(&self, name: &str) -> UserId {
        self.authn
            .create_user_with_password(
                &Request::default(),
                self.account,
                NewPasswordUser::new(name, secret(PASSWORD)),
            )
            .await
            .unwrap()
    }

    pub(crate) async fn login(
        &self,
        name: &str,
        password: &str,
    ) -> Result<LoginOutcome, security_authn::AuthnError> {
        self.authn
            .authenticate(
                self.tenant(),
                name,
                &secret(password),
                &client("198.51.100.1"),
            )
            .await
    }

    pub(crate) async fn tokens(&self, name: &str) -> TokenPair {
        self.tokens_with(name, PASSWORD).await
    }

    pub(crate) async fn tokens_with(&self, name: &str, password: &str) -> TokenPair {
        match self.login(name, password).await.unwrap() {
            LoginOutcome::Authenticated(tokens) => tokens,
            other => panic!("expected tokens, got {other:?}"),
        }
    }

    pub(crate) async fn stream(
        &self,
        aggregate: &str,
        id: impl Into<uuid::Uuid>,
    ) -> Vec<StoredEvent> {
        self.store
            .read_stream(
                &StreamId::new(self.tenant(), aggregate, id.into()),
                StreamQuery::all(),
            )
            .await
            .unwrap()
    }

    pub(crate) async fn event_types(
        &self,
        aggregate: &str,
        id: impl Into<uuid::Uuid>,
    ) -> Vec<String> {
        self.stream(aggregate, id)
            .await
            .iter()
            .map(|e| e.event_type.to_string())
            .collect()
    }

    pub(crate) async fn audit(&self) -> Vec<security_authn::AuthAuditEvent> {
        self.stream("auth_audit", security_authn::audit_stream_id(self.tenant()))
            .await
            .iter()
            .map(|e| e.decode().unwrap())
            .collect()
    }

    pub(crate) async fn validate(
        &self,
        tokens: &TokenPair,
    ) -> Result<security_core::AccessClaims, security_core::TokenError> {
        self.authn
            .validate_access_token(tokens.access_token.expose_secret())
            .await
    }
}
