//! NATS JWTs, each beside a bare Ed25519 operation on the same
//! number of bytes. Target: at most 1.3× the bare cost.
//!
//! - Issuing a user JWT (`NatsIssuer::user_jwt`: union of the account
//!   defaults and a policy, default-deny encoding, Go `jti`, JSON, base64,
//!   signing through the `MemoryKeyStore`) vs `ed25519_dalek` signing the
//!   same number of bytes.
//! - Verifying a user JWT with its account chain (`NatsTrust::verify_user`:
//!   parse, header, key checks, the account and signer lookup, signature,
//!   times, revocations), the account JWT having been verified against the
//!   operator when it was loaded, as `nats-server` does, vs `ed25519_dalek`
//!   verifying the same number of bytes.
//! - For information: the cold chain (`verify_user_chain`: operator,
//!   account and user JWTs parsed and three signatures checked) vs three
//!   bare verifications.
//!
//! `cargo bench -p security-benches --bench nats -- --warm-up-time 1 --measurement-time 4`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs,
    reason = "benchmark code"
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use security::authn::{NatsAdmin, NatsTrust, UserJwtOptions, UserSigner, verify_user_chain};
use security::core::{
    AccountClaims, AdminService, ManualClock, NewPolicy, Permissions, Policy, Repository, Request,
    ResponsePermission, SubjectPermissions,
};
use security::crypto::{MemoryKeyStore, UuidV7Ids};
use security::eventstore::MemoryEventStore;

const NOW: i64 = 1_700_000_000;

struct Setup {
    nats: NatsAdmin,
    operator_jwt: String,
    account_jwt: String,
    user_jwt: String,
    account: security::core::Account,
    user: security::core::User,
    policies: Vec<Policy>,
}

async fn setup() -> Setup {
    let clock = Arc::new(ManualClock::new(Utc.timestamp_opt(NOW, 0).unwrap()));
    let ids = Arc::new(UuidV7Ids);
    let keys = Arc::new(MemoryKeyStore::with_clock_and_ids(
        clock.clone(),
        ids.clone(),
    ));
    let repo = Repository::new(Arc::new(MemoryEventStore::new()), ids);
    let admin = AdminService::new(repo, clock, keys);
    let nats = NatsAdmin::new(admin.clone());
    let req = Request::default();
    let operator = admin.create_operator(&req, "Bench Operator").await.unwrap();
    nats.create_system_account(&req, operator, "SYS")
        .await
        .unwrap();
    let claims = AccountClaims {
        default_permissions: Permissions {
            subscribe: SubjectPermissions::from_patterns(["_INBOX.>"], Vec::<String>::new())
                .unwrap(),
            ..Permissions::default()
        },
        ..AccountClaims::default()
    };
    let account_id = admin
        .create_account(&req, operator, "Orders", claims)
        .await
        .unwrap();
    let policy = admin
        .create_policy(
            &req,
            account_id.tenant(),
            NewPolicy::new("orders").permissions(Permissions {
                publish: SubjectPermissions::from_patterns(["orders.>"], ["orders.delete"])
                    .unwrap(),
                subscribe: SubjectPermissions::from_patterns(["orders.>"], Vec::<String>::new())
                    .unwrap(),
                allow_responses: Some(ResponsePermission::default()),
            }),
        )
        .await
        .unwrap();
    let (user_id, _) = nats
        .create_user(&req, account_id, "order-service", BTreeMap::new())
        .await
        .unwrap();
    admin
        .assign_policy(&req, account_id.tenant(), user_id, policy)
        .await
        .unwrap();
    let operator_jwt = nats.operator_jwt(operator).await.unwrap();
    let account_jwt = nats.account_jwt(account_id).await.unwrap();
    let user_jwt = nats
        .user_jwt(
            account_id,
            user_id,
            UserSigner::Default,
            &UserJwtOptions::default(),
        )
        .await
        .unwrap()
        .jwt;
    let account = admin.account(account_id).await.unwrap();
    let user = admin.user(account_id.tenant(), user_id).await.unwrap();
    let policies = vec![admin.policy(account_id.tenant(), policy).await.unwrap()];
    Setup {
        nats,
        operator_jwt,
        account_jwt,
        user_jwt,
        account,
        user,
        policies,
    }
}

/// The bytes an Ed25519 signature of a JWT covers: `<header>.<payload>`.
fn signing_input(jwt: &str) -> &[u8] {
    &jwt.as_bytes()[..jwt.rfind('.').unwrap()]
}

fn nats_jwts(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup());
    let now = Utc.timestamp_opt(NOW, 0).unwrap();
    let issuer = s.nats.issuer().clone();
    let signer = rt
        .block_on(issuer.account_signer(&s.account, UserSigner::Default))
        .unwrap();
    let options = UserJwtOptions::default();

    // The bare primitive, on as many bytes as the JWT's signing input.
    let message = signing_input(&s.user_jwt).to_vec();
    let bare = SigningKey::from_bytes(&[7; 32]);
    let bare_public = bare.verifying_key();
    let bare_signature = bare.sign(&message);
    println!(
        "user JWT: {} bytes, signing input {} bytes",
        s.user_jwt.len(),
        message.len()
    );

    let mut group = c.benchmark_group("nats_issue_user_jwt");
    group.bench_function("bare_ed25519_sign", |b| {
        b.iter(|| bare.sign(black_box(&message)));
    });
    group.bench_function("nats_issuer_user_jwt", |b| {
        b.to_async(&rt).iter(|| async {
            issuer
                .user_jwt(
                    black_box(&s.account),
                    &s.user,
                    &s.policies,
                    &signer,
                    &options,
                )
                .await
                .unwrap()
        });
    });
    group.finish();

    let mut trust = NatsTrust::new(&s.operator_jwt, now).unwrap();
    trust.add_account(&s.account_jwt).unwrap();
    trust.verify_user(&s.user_jwt, now).unwrap();
    let mut group = c.benchmark_group("nats_verify_user_jwt");
    group.bench_function("bare_ed25519_verify", |b| {
        b.iter(|| {
            bare_public
                .verify(black_box(&message), &bare_signature)
                .unwrap();
        });
    });
    group.bench_function("nats_trust_verify_user", |b| {
        b.iter(|| trust.verify_user(black_box(&s.user_jwt), now).unwrap());
    });
    group.finish();

    let account_input = signing_input(&s.account_jwt).to_vec();
    let operator_input = signing_input(&s.operator_jwt).to_vec();
    let account_sig = bare.sign(&account_input);
    let operator_sig = bare.sign(&operator_input);
    let mut group = c.benchmark_group("nats_verify_cold_chain");
    group.bench_function("bare_ed25519_verify_x3", |b| {
        b.iter(|| {
            bare_public
                .verify(black_box(&operator_input), &operator_sig)
                .unwrap();
            bare_public
                .verify(black_box(&account_input), &account_sig)
                .unwrap();
            bare_public
                .verify(black_box(&message), &bare_signature)
                .unwrap();
        });
    });
    group.bench_function("verify_user_chain", |b| {
        b.iter(|| {
            verify_user_chain(black_box(&s.operator_jwt), &s.account_jwt, &s.user_jwt, now).unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, nats_jwts);
criterion_main!(benches);
