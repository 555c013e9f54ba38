//! Passkey assertion verification (`security_authn::passkeys::verify_assertion`:
//! the stored credential read from its JSON at the counter and backup
//! state recorded on the user's stream, the credential id checked, then
//! the library's verification and the counter and flag checks) against
//! bare `webauthn-rs`: `finish_passkey_authentication` with a prebuilt
//! state, and `finish_discoverable_authentication_v2` with a prebuilt
//! `Passkey` (the same library path ours takes). One ES256 assertion of a
//! software authenticator (the `passkey` crate), verified again and again.
//! Target: at most 1.2× the bare verification.
//!
//! `cargo bench -p security-benches --bench passkeys -- --warm-up-time 1 --measurement-time 3`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "benchmark code"
)]

#[path = "../../tests/support/soft_passkey.rs"]
mod soft_passkey;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use security::authn::passkeys::{PasskeyId, RegisteredPasskey, verify_assertion};
use soft_passkey::SoftKey;
use webauthn_rs::prelude::{
    Passkey, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, WebauthnBuilder,
};

const ORIGIN: &str = "https://login.example.com";

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = Url::parse(ORIGIN).unwrap();
    let webauthn = WebauthnBuilder::new("example.com", &origin)
        .unwrap()
        .build()
        .unwrap();
    let key = SoftKey::default();
    let (options, registration) = webauthn
        .start_passkey_registration(Uuid::from_u128(7), "bench", "bench", None)
        .unwrap();
    let created = runtime.block_on(key.create(ORIGIN, &serde_json::to_value(&options).unwrap()));
    let created: RegisterPublicKeyCredential = serde_json::from_str(&created).unwrap();
    let passkey: Passkey = webauthn
        .finish_passkey_registration(&created, &registration)
        .unwrap();

    // Bare: a state that lists the passkey.
    let (options, bare_state) = webauthn
        .start_passkey_authentication(std::slice::from_ref(&passkey))
        .unwrap();
    let bare_assertion =
        runtime.block_on(key.get(ORIGIN, &serde_json::to_value(&options).unwrap()));
    let bare_assertion: PublicKeyCredential = serde_json::from_str(&bare_assertion).unwrap();

    // Ours: a discoverable state and the passkey as the user's stream keeps it.
    let (options, state) = webauthn.start_discoverable_authentication().unwrap();
    let mut options = serde_json::to_value(&options).unwrap();
    options.as_object_mut().unwrap().remove("mediation");
    let assertion = runtime.block_on(key.get(ORIGIN, &options));
    let assertion: PublicKeyCredential = serde_json::from_str(&assertion).unwrap();
    let stored = RegisteredPasskey {
        id: PasskeyId::from_bytes(passkey.cred_id().as_slice()).unwrap(),
        name: "bench".into(),
        credential: serde_json::to_value(&passkey).unwrap(),
        sign_count: 0,
        transports: Vec::new(),
        backup_eligible: false,
        backup_state: false,
        resident: Some(true),
        registered_at: chrono::Utc::now(),
        last_used_at: None,
    };
    verify_assertion(&webauthn, &stored, &assertion, state.clone()).unwrap();

    let mut group = c.benchmark_group("passkey_assertion");
    group.bench_function("bare_finish_passkey_authentication", |b| {
        b.iter(|| {
            webauthn
                .finish_passkey_authentication(black_box(&bare_assertion), &bare_state)
                .unwrap()
        });
    });
    group.bench_function("bare_finish_discoverable_v2", |b| {
        b.iter(|| {
            webauthn
                .finish_discoverable_authentication_v2(
                    black_box(&assertion),
                    state.clone(),
                    &passkey,
                )
                .unwrap()
        });
    });
    group.bench_function("verify_assertion", |b| {
        b.iter(|| {
            verify_assertion(
                &webauthn,
                black_box(&stored),
                black_box(&assertion),
                state.clone(),
            )
            .unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
