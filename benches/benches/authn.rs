//! security-authn, each beside its reference:
//!
//! - A full password login (`AuthenticationService::authenticate`: rate
//!   limits, account and user replay, unsealing the hash, argon2id
//!   verification, the login event, a new session with its refresh-token
//!   hash, an EdDSA access token signed through the key store) against the
//!   argon2id verification alone, both at the OWASP parameters. Target: the
//!   login costs at most 5 % more.
//! - Access-token validation (`JwtValidator::validate`, with every check of
//!   the RFC 8725 vectors and the revocation lookups) against a bare
//!   `jsonwebtoken::decode` of the same token with a prebuilt `DecodingKey`,
//!   for EdDSA and HS256. Target: at most 1.2×.
//!
//! `cargo bench -p security-benches --bench authn -- --warm-up-time 1 --measurement-time 3`

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
use secrecy::{ExposeSecret, SecretString};
use security::authn::{
    AuthenticationService, AuthnConfig, LoginOutcome, NewPasswordUser, RateLimit,
};
use security::core::{
    AccessClaims, AccountClaims, AccountId, ClientInfo, PasswordHasher, Repository, Request,
    TokenValidator,
};
use security::crypto::{Argon2PasswordHasher, MemoryKeyStore, SystemClock, UuidV7Ids};
use security::eventstore::MemoryEventStore;

const PASSWORD: &str = "Correct-Horse-Battery-9";

/// A current-thread runtime: argon2id then runs on Tokio's blocking pool,
/// for the login as for the reference "in task" measurement. (On a
/// multi-threaded runtime the idle workers' spinning competed with argon2id
/// for the machine's two cores and made the measurements erratic.)
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A service with the given hasher and no throttling in the way (the
/// limiter still runs: its cost is part of the login), and its key store.
fn service(
    config: AuthnConfig,
    hasher: Arc<Argon2PasswordHasher>,
) -> (AuthenticationService, Arc<MemoryKeyStore>) {
    let repo = Repository::new(
        Arc::new(MemoryEventStore::new()),
        Arc::new(UuidV7Ids::new()),
    );
    let keys = Arc::new(MemoryKeyStore::new());
    let authn =
        AuthenticationService::builder(repo, keys.clone(), hasher, Arc::new(SystemClock::new()))
            .config(AuthnConfig {
                login_rate: RateLimit {
                    max: u32::MAX,
                    window: Duration::from_secs(1),
                },
                ..config
            })
            .build()
            .unwrap();
    (authn, keys)
}

async fn tenant_with_alice(authn: &AuthenticationService) -> AccountId {
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
}

/// What one round of [`rounds`] measured.
#[derive(Default)]
struct Round {
    /// argon2id verification on the benchmark's own thread.
    alone: Duration,
    /// argon2id verification on the runtime's blocking pool (where the
    /// login runs it).
    alone_in_task: Duration,
    /// The full login.
    login: Duration,
}

/// Runs `iters` rounds of (verification alone, verification alone on the
/// blocking pool, full login), interleaved so that all three see the same
/// machine load.
fn rounds(
    iters: u64,
    rt: &tokio::runtime::Runtime,
    hasher: &Arc<Argon2PasswordHasher>,
    phc: &SecretString,
    authn: &AuthenticationService,
    account: AccountId,
    client: &ClientInfo,
) -> Round {
    let password = SecretString::from(PASSWORD);
    let mut round = Round::default();
    for _ in 0..iters {
        let start = Instant::now();
        assert!(hasher.verify(black_box(&password), black_box(phc)).unwrap());
        round.alone += start.elapsed();

        let (h, p, phc) = (Arc::clone(hasher), password.clone(), phc.clone());
        let start = Instant::now();
        let ok = rt
            .block_on(rt.spawn_blocking(move || h.verify(black_box(&p), &phc)))
            .unwrap()
            .unwrap();
        round.alone_in_task += start.elapsed();
        assert!(ok);

        let start = Instant::now();
        let outcome = rt
            .block_on(authn.authenticate(account.tenant(), "alice", black_box(&password), client))
            .unwrap();
        round.login += start.elapsed();
        assert!(matches!(outcome, LoginOutcome::Authenticated(_)));
    }
    round
}

fn login_group(
    c: &mut Criterion,
    name: &str,
    hasher: &Arc<Argon2PasswordHasher>,
    sample_size: usize,
) {
    let rt = runtime();
    let (authn, _) = service(AuthnConfig::default(), Arc::clone(hasher));
    let account = rt.block_on(tenant_with_alice(&authn));
    let phc = hasher.hash(&SecretString::from(PASSWORD)).unwrap();
    let client = ClientInfo::new(Some("198.51.100.1".parse().unwrap()), Some("bench"));
    let mut group = c.benchmark_group(name);
    group.sample_size(sample_size);
    group.bench_function("argon2id_verify_alone", |b| {
        b.iter_custom(|iters| rounds(iters, &rt, hasher, &phc, &authn, account, &client).alone);
    });
    group.bench_function("argon2id_verify_alone_blocking_pool", |b| {
        b.iter_custom(|iters| {
            rounds(iters, &rt, hasher, &phc, &authn, account, &client).alone_in_task
        });
    });
    group.bench_function("full_login", |b| {
        b.iter_custom(|iters| rounds(iters, &rt, hasher, &phc, &authn, account, &client).login);
    });
    group.finish();
}

fn password_login(c: &mut Criterion) {
    // The target: OWASP argon2id (19 MiB, 2 passes), as in production.
    login_group(
        c,
        "password_login",
        &Arc::new(Argon2PasswordHasher::owasp().unwrap()),
        20,
    );
    // For information: an argon2id so cheap (64 KiB, one pass) that the
    // difference is the login's own work (limits, replay catch-up, events,
    // session, key-store signing).
    let cheap = Argon2PasswordHasher::new(security::crypto::Argon2Config {
        memory_kib: 64,
        iterations: 1,
        ..security::crypto::Argon2Config::OWASP
    })
    .unwrap();
    login_group(c, "password_login_fixed_cost", &Arc::new(cheap), 50);
}

/// Validation of one access token, by the validator and by a bare
/// `jsonwebtoken::decode` with the key `reference_key` gives (built once).
fn validation(
    c: &mut Criterion,
    name: &str,
    config: AuthnConfig,
    reference_key: impl Fn(&str, &MemoryKeyStore, &tokio::runtime::Runtime) -> jsonwebtoken::DecodingKey,
) {
    let rt = runtime();
    let hasher = Arc::new(
        Argon2PasswordHasher::new(security::crypto::Argon2Config {
            memory_kib: 64,
            iterations: 1,
            ..security::crypto::Argon2Config::OWASP
        })
        .unwrap(),
    );
    let (authn, keys) = service(config, hasher);
    let account = rt.block_on(tenant_with_alice(&authn));
    let client = ClientInfo::new(Some("198.51.100.1".parse().unwrap()), None);
    let tokens = rt
        .block_on(authn.authenticate(
            account.tenant(),
            "alice",
            &SecretString::from(PASSWORD),
            &client,
        ))
        .unwrap()
        .into_tokens()
        .unwrap();
    let token = tokens.access_token.expose_secret().to_owned();
    let validator = authn.validator();
    validator.validate(&token).unwrap();
    let key = reference_key(&token, &keys, &rt);
    let algorithm = jsonwebtoken::decode_header(&token).unwrap().alg;
    let mut reference = jsonwebtoken::Validation::new(algorithm);
    reference.set_issuer(&["security"]);
    reference.set_audience(&["security"]);
    jsonwebtoken::decode::<AccessClaims>(&token, &key, &reference).unwrap();

    let mut group = c.benchmark_group(format!("access_token_validation_{name}"));
    group.bench_function("bare_jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<AccessClaims>(black_box(&token), &key, &reference).unwrap()
        });
    });
    group.bench_function("jwt_validator", |b| {
        b.iter(|| validator.validate(black_box(&token)).unwrap());
    });
    group.finish();
}

fn validation_eddsa(c: &mut Criterion) {
    validation(c, "eddsa", AuthnConfig::default(), |token, keys, rt| {
        // The public half of the key the token names, from the key store.
        use security::core::KeyStore as _;
        let kid: security::core::KeyId = jsonwebtoken::decode_header(token)
            .unwrap()
            .kid
            .unwrap()
            .parse()
            .unwrap();
        let info = rt.block_on(keys.key(kid)).unwrap();
        let public =
            security::crypto::Ed25519PublicKey::from_public_key(&info.public_key.unwrap()).unwrap();
        jsonwebtoken::DecodingKey::from_ed_components(&public.to_base64url()).unwrap()
    });
}

fn validation_hs256(c: &mut Criterion) {
    let secret = "bench-hs256-secret-of-at-least-32-bytes";
    let config =
        AuthnConfig::from_lookup(|name| (name == "JWT_SECRET_KEY").then(|| secret.to_owned()))
            .unwrap();
    validation(c, "hs256", config, |_, _, _| {
        jsonwebtoken::DecodingKey::from_secret(secret.as_bytes())
    });
}

criterion_group!(benches, password_login, validation_eddsa, validation_hs256);
criterion_main!(benches);
