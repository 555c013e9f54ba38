//! The cost of a refresh against the age of its session.
//!
//! A refresh of a session refreshed 2 000 times must cost what a refresh
//! of a new session costs: the session holds a sealed seed and a
//! generation counter (no list of past token hashes), and the repository's
//! state cache catches a session up with the events appended since it was
//! last seen instead of replaying its stream. A process that has never
//! seen the session loads it from its latest snapshot and the events
//! after it. The reference line is the whole-stream replay (read every
//! event, fold them) that every refresh used to pay.
//!
//! `cargo bench -p security-benches --bench sessions -- --warm-up-time 1 --measurement-time 5`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "benchmark code"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use security::authn::{
    AuthenticationService, AuthnConfig, NewPasswordUser, RateLimit, Session, TokenPair,
};
use security::core::{
    AccountClaims, AccountId, Aggregate as _, ClientInfo, EventStore as _, Repository, Request,
    StreamId, StreamQuery, replay,
};
use security::crypto::{
    Argon2Config, Argon2PasswordHasher, MemoryKeyStore, SystemClock, UuidV7Ids,
};
use security::eventstore::MemoryEventStore;

const PASSWORD: &str = "Correct-Horse-Battery-9";
const AGE: usize = 2_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

struct World {
    rt: tokio::runtime::Runtime,
    store: Arc<MemoryEventStore>,
    authn: AuthenticationService,
    account: AccountId,
    client: ClientInfo,
}

impl World {
    fn new() -> Self {
        let rt = runtime();
        let store = Arc::new(MemoryEventStore::new());
        let repo = Repository::new(store.clone(), Arc::new(UuidV7Ids::new()));
        let hasher = Argon2PasswordHasher::new(Argon2Config {
            memory_kib: 64,
            iterations: 1,
            ..Argon2Config::OWASP
        })
        .unwrap();
        let unlimited = RateLimit {
            max: u32::MAX,
            window: Duration::from_secs(1),
        };
        let authn = AuthenticationService::builder(
            repo,
            Arc::new(MemoryKeyStore::new()),
            Arc::new(hasher),
            Arc::new(SystemClock::new()),
        )
        .config(AuthnConfig {
            login_rate: unlimited,
            api_rate: unlimited,
            ..AuthnConfig::default()
        })
        .build()
        .unwrap();
        let account = rt.block_on(async {
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
            account
        });
        Self {
            rt,
            store,
            authn,
            account,
            client: ClientInfo::new(Some("198.51.100.1".parse().unwrap()), Some("bench")),
        }
    }

    fn login(&self) -> TokenPair {
        self.rt
            .block_on(self.authn.authenticate(
                self.account.tenant(),
                "alice",
                &SecretString::from(PASSWORD),
                &self.client,
            ))
            .unwrap()
            .into_tokens()
            .unwrap()
    }

    fn refresh(&self, tokens: &TokenPair) -> TokenPair {
        self.rt
            .block_on(
                self.authn
                    .refresh(black_box(&tokens.refresh_token), &self.client),
            )
            .unwrap()
    }

    /// `iters` refreshes of `tokens`' session, timed; returns the time and
    /// the last token pair.
    fn timed_refreshes(&self, mut tokens: TokenPair, iters: u64) -> (Duration, TokenPair) {
        let start = Instant::now();
        for _ in 0..iters {
            tokens = self.refresh(&tokens);
        }
        (start.elapsed(), tokens)
    }
}

fn refresh_by_age(c: &mut Criterion) {
    let world = World::new();
    let mut group = c.benchmark_group("session_refresh");
    group.bench_function("new_session", |b| {
        b.iter_custom(|iters| world.timed_refreshes(world.login(), iters).0);
    });
    let mut old = world.login();
    for _ in 0..AGE {
        old = world.refresh(&old);
    }
    let mut old = Some(old);
    group.bench_function("session_refreshed_2000_times", |b| {
        b.iter_custom(|iters| {
            let (elapsed, tokens) = world.timed_refreshes(old.take().unwrap(), iters);
            old = Some(tokens);
            elapsed
        });
    });
    // The reference: the whole-stream replay every refresh used to pay, on
    // a session of the same age (a repository without a state cache).
    let aged = world.login();
    let session_id = aged.session_id;
    let mut tokens = aged;
    for _ in 0..AGE {
        tokens = world.refresh(&tokens);
    }
    let tenant = world.account.tenant();
    // A process that has never seen the session (no state cache): its
    // latest snapshot and the events after it.
    let cold = Repository::new(world.store.clone(), Arc::new(UuidV7Ids::new()));
    group.bench_function("first_load_in_another_process_2000_refreshes", |b| {
        b.iter(|| {
            world
                .rt
                .block_on(cold.load::<Session>(tenant, black_box(session_id)))
                .unwrap()
        });
    });
    let stream = StreamId::new(tenant, Session::TYPE, session_id.as_uuid());
    group.bench_function("reference_whole_stream_replay_2000_refreshes", |b| {
        b.iter(|| {
            let events = world
                .rt
                .block_on(
                    world
                        .store
                        .read_stream(black_box(&stream), StreamQuery::all()),
                )
                .unwrap();
            replay::<Session>(&stream, &events).unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, refresh_by_age);
criterion_main!(benches);
