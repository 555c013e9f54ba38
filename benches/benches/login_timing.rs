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
//! every round), and reports the time of its own path only. Because the
//! shared machine's load moves between two criterion functions, the
//! difference itself is then measured (only under `cargo bench`) as a
//! *paired* ratio: the median over many rounds of unknown / known, each
//! round timing one call of each back to back. Release build, OWASP
//! parameters.
//!
//! `cargo bench -p security-benches --bench login_timing -- --warm-up-time 2 --measurement-time 10`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    missing_docs,
    reason = "benchmark code"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use secrecy::SecretString;
use security::authn::{AuthenticationService, AuthnConfig, NewPasswordUser, RateLimit};
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

/// The median over `rounds` of unknown / known, one call of each per
/// round, the order swapped every round.
fn paired_ratio(name: &str, rounds: usize, mut known: impl FnMut(), mut unknown: impl FnMut()) {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed().as_secs_f64() * 1e3
    };
    time(&mut known);
    time(&mut unknown);
    let (mut ratios, mut known_ms, mut unknown_ms) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (k, u) = if round % 2 == 0 {
            let k = time(&mut known);
            (k, time(&mut unknown))
        } else {
            let u = time(&mut unknown);
            (time(&mut known), u)
        };
        ratios.push(u / k);
        known_ms.push(k);
        unknown_ms.push(u);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = median(&mut ratios);
    println!(
        "paired {name}: unknown/known = {ratio:.3} ({:+.1} %), known {:.2} ms, unknown {:.2} ms (medians of {rounds} rounds)",
        (ratio - 1.0) * 100.0,
        median(&mut known_ms),
        median(&mut unknown_ms),
    );
}

/// The hasher and a stored hash of [`PASSWORD`].
fn hasher() -> (Argon2PasswordHasher, SecretString) {
    let hasher = Argon2PasswordHasher::owasp().unwrap();
    let stored = hasher.hash(&SecretString::from(PASSWORD)).unwrap();
    (hasher, stored)
}

/// The hasher alone: `verify` against a stored hash (wrong password)
/// against `dummy_verify`.
fn hasher_paths(c: &mut Criterion) {
    let (hasher, stored) = hasher();
    let wrong = SecretString::from(WRONG);
    let known = || {
        let matched = hasher
            .verify(black_box(&wrong), black_box(&stored))
            .unwrap();
        assert!(!matched);
    };
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

/// A login service (throttling and lockout out of the way, so both paths
/// go all the way) with one user, alice, and its tenant.
struct Logins {
    rt: tokio::runtime::Runtime,
    authn: AuthenticationService,
    account: AccountId,
    client: ClientInfo,
    wrong: SecretString,
}

impl Logins {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let unlimited = RateLimit {
            max: u32::MAX,
            window: Duration::from_secs(1),
        };
        let authn = AuthenticationService::builder(
            Repository::new(
                Arc::new(MemoryEventStore::new()),
                Arc::new(UuidV7Ids::new()),
            ),
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
                escalation_reset_secs: 1,
            },
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
            authn,
            account,
            client: ClientInfo::new(Some("198.51.100.1".parse().unwrap()), Some("bench")),
            wrong: SecretString::from(WRONG),
        }
    }

    /// One failed attempt as `username`.
    fn attempt(&self, username: &'static str) {
        let result = self.rt.block_on(self.authn.authenticate(
            self.account.tenant(),
            black_box(username),
            black_box(&self.wrong),
            &self.client,
        ));
        assert!(result.is_err(), "{username}");
    }
}

/// The whole login: a wrong password for a known user against any
/// password for an unknown username.
fn login_paths(c: &mut Criterion) {
    let logins = Logins::new();
    let mut group = c.benchmark_group("login_known_vs_unknown_username");
    group.sample_size(30);
    group.bench_function("known_user_wrong_password", |b| {
        b.iter_custom(|iters| {
            interleaved(
                iters,
                || logins.attempt("alice"),
                || logins.attempt("mallory"),
            )
            .known
        });
    });
    group.bench_function("unknown_username", |b| {
        b.iter_custom(|iters| {
            interleaved(
                iters,
                || logins.attempt("alice"),
                || logins.attempt("mallory"),
            )
            .unknown
        });
    });
    group.finish();
}

fn paired() {
    let (hasher, stored) = hasher();
    let wrong = SecretString::from(WRONG);
    paired_ratio(
        "argon2id verify vs dummy_verify",
        200,
        || {
            let matched = hasher
                .verify(black_box(&wrong), black_box(&stored))
                .unwrap();
            assert!(!matched);
        },
        || hasher.dummy_verify(black_box(&wrong)),
    );
    drop(hasher);
    let logins = Logins::new();
    paired_ratio(
        "login known user (wrong password) vs unknown username",
        200,
        || logins.attempt("alice"),
        || logins.attempt("mallory"),
    );
}

criterion_group!(benches, hasher_paths, login_paths);

fn main() {
    benches();
    // Only when benchmarking, not when `cargo test --benches` runs each once.
    if std::env::args().any(|arg| arg == "--bench") {
        paired();
    }
    Criterion::default().configure_from_args().final_summary();
}
