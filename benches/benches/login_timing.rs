//! Whether a login attempt tells a known username from an unknown one by
//! its time.
//!
//! A wrong password for a known user verifies against the user's argon2id
//! hash; an unknown username verifies against the hasher's dummy hash
//! (`dummy_verify`), so both do the same argon2id work. Both now borrow
//! pre-faulted working memory from the hasher's pool; before, the 19 MiB
//! were allocated per call and the unknown path often paid thousands of
//! page faults (35 % to 120 % slower). Target: the two medians within 5 %.
//!
//! Each benchmark runs both paths, alternating (and swapping the order
//! every round), and reports the time of its own path only, so both see the
//! same machine load. Release build, OWASP parameters.
//!
//! `cargo bench -p security-benches --bench login_timing -- --warm-up-time 2 --measurement-time 10`

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
use security::authn::{AuthenticationService, AuthnConfig, RateLimit};
use security::core::{
    AccountClaims, AccountId, ClientInfo, LockoutPolicy, PasswordHasher, Repository, Request,
};
use security::crypto::{Argon2PasswordHasher, MemoryKeyStore, SystemClock, UuidV7Ids};
use security::eventstore::MemoryEventStore;

const PASSWORD: &str = "Correct-Horse-Battery-9";
const WRONG: &str = "Wrong-Horse-Battery-0";

/// Known and unknown, timed separately, `iters` rounds each, alternating.
#[derive(Default)]
struct Pair {
    known: Duration,
    unknown: Duration,
}

fn interleaved(iters: u64, mut known: impl FnMut(), mut unknown: impl FnMut()) -> Pair {
    let mut pair = Pair::default();
    for i in 0..iters {
        let mut run_known = || {
            let start = Instant::now();
            known();
            pair.known += start.elapsed();
        };
        if i % 2 == 0 {
            run_known();
            let start = Instant::now();
            unknown();
            pair.unknown += start.elapsed();
        } else {
            let start = Instant::now();
            unknown();
            pair.unknown += start.elapsed();
            run_known();
        }
    }
    pair
}

/// The hasher alone: `verify` against a stored hash (wrong password)
/// against `dummy_verify`.
fn hasher_paths(c: &mut Criterion) {
    let hasher = Argon2PasswordHasher::owasp().unwrap();
    let stored = hasher.hash(&SecretString::from(PASSWORD)).unwrap();
    let wrong = SecretString::from(WRONG);
    let known = || assert!(!hasher.verify(black_box(&wrong), black_box(&stored)).unwrap());
    let unknown = || hasher.dummy_verify(black_box(&wrong));
    let mut group = c.benchmark_group("argon2id_known_vs_unknown");
    group.sample_size(30);
    group.bench_function("verify_stored_hash", |b| {
        b.iter_custom(|iters| interleaved(iters, known, unknown).known);
    });
    group.bench_function("dummy_verify", |b| {
        b.iter_custom(|iters| interleaved(iters, known, unknown).unknown);
    });
    group.finish();
}

/// The whole login: a wrong password for a known user against any
/// password for an unknown username (throttling and lockout out of the
/// way, so both paths go all the way).
fn login_paths(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let unlimited = RateLimit {
        max: u32::MAX,
        window: Duration::from_secs(1),
    };
    let authn = AuthenticationService::builder(
        Repository::new(Arc::new(MemoryEventStore::new()), Arc::new(UuidV7Ids::new())),
        Arc::new(MemoryKeyStore::new()),
        Arc::new(Argon2PasswordHasher::owasp().unwrap()),
        Arc::new(SystemClock::new()),
    )
    .config(AuthnConfig {
        login_rate: unlimited,
        lockout: LockoutPolicy {
            max_failures: u32::MAX,
            base_lock_secs: 1,
            max_lock_secs: 1,
        },
        ..AuthnConfig::default()
    })
    .build()
    .unwrap();
    let account: AccountId = rt.block_on(async {
        let admin = authn.admin();
        let operator = admin
            .create_operator(&Request::default(), "ops")
            .await
            .unwrap();
        let account = admin
            .create_account(&Request::default(), operator, "acme", AccountClaims::default())
            .await
            .unwrap();
        authn
            .create_user_with_password(
                &Request::default(),
                account,
                "alice",
                &SecretString::from(PASSWORD),
                std::collections::BTreeMap::default(),
                false,
            )
            .await
            .unwrap();
        account
    });
    let client = ClientInfo::new(Some("198.51.100.1".parse().unwrap()), Some("bench"));
    let wrong = SecretString::from(WRONG);
    let attempt = |username: &'static str| {
        let result = rt.block_on(authn.authenticate(
            account.tenant(),
            black_box(username),
            black_box(&wrong),
            &client,
        ));
        assert!(result.is_err(), "{username}");
    };
    let mut group = c.benchmark_group("login_known_vs_unknown_username");
    group.sample_size(30);
    group.bench_function("known_user_wrong_password", |b| {
        b.iter_custom(|iters| interleaved(iters, || attempt("alice"), || attempt("mallory")).known);
    });
    group.bench_function("unknown_username", |b| {
        b.iter_custom(|iters| {
            interleaved(iters, || attempt("alice"), || attempt("mallory")).unknown
        });
    });
    group.finish();
}

criterion_group!(benches, hasher_paths, login_paths);
criterion_main!(benches);
