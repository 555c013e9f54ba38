//! security-crypto: each wrapper beside the raw primitive crate
//! call it wraps, on the same input. Target: wrapper overhead under 10 %.
//!
//! - Fernet encrypt + decrypt (with a TTL check) of 1 KiB: `FernetKey` and
//!   `FernetKeyRing` vs `fernet::Fernet::{encrypt_at_time, decrypt_at_time}`.
//! - HMAC-SHA256 verification of a 64-byte message: `HmacKey::verify` vs
//!   `hmac::Hmac::<Sha256>` + `verify_slice`.
//! - argon2id verification at the default (OWASP) parameters:
//!   `Argon2PasswordHasher::verify` vs `argon2::Argon2::verify_password`.
//! - Ed25519 sign and strict verify of 256 bytes: `Ed25519KeyPair` /
//!   `Ed25519PublicKey` vs `ed25519_dalek::{SigningKey, VerifyingKey}`.
//! - For information, the same operations through `MemoryKeyStore` (a
//!   lock and a map lookup more) and `EnvelopeKeyStore` (which decrypts the
//!   key record on every call, by design).
//!
//! `cargo bench -p security-benches --bench crypto -- --warm-up-time 1 --measurement-time 3`

//! Criterion reports absolute times. Because the machine is shared and its
//! load moves during a run, the overhead itself is measured afterwards
//! (only under `cargo bench`) as a *paired* ratio: raw and wrapper run in
//! alternating chunks, the order swapped every round, and the median of
//! the per-round ratios wrapper/raw is printed. Load changes hit both sides
//! of a round alike and cancel in the ratio.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    missing_docs,
    reason = "benchmark code"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group};
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use security::core::{
    KeyOwner, KeyPurpose, KeySpec, KeyStore, ManualClock, PasswordHasher, TenantId,
};
use security::crypto::{
    Argon2PasswordHasher, Ed25519KeyPair, EnvelopeKeyStore, FernetKey, FernetKeyRing, HmacKey,
    MasterKey, MemoryKeyRecordStore, MemoryKeyStore, SymmetricKey, UuidV7Ids,
};
use sha2::Sha256;
use uuid::Uuid;

const NOW: i64 = 1_700_000_000;

fn fernet_1kib(c: &mut Criterion) {
    let data = vec![0x5a_u8; 1024];
    let key = SymmetricKey::generate().unwrap();
    let raw = fernet::Fernet::new(key.to_base64().expose_secret()).unwrap();
    let wrapper = FernetKey::from_key(&key).unwrap();
    let clock = Arc::new(ManualClock::new(Utc.timestamp_opt(NOW, 0).unwrap()));
    let ring = FernetKeyRing::new(vec![FernetKey::from_key(&key).unwrap()], clock).unwrap();
    let now = Utc.timestamp_opt(NOW, 0).unwrap();
    let ttl = Duration::from_secs(60);

    let mut group = c.benchmark_group("fernet_1kib_encrypt_decrypt");
    group.bench_function("raw_fernet_crate", |b| {
        b.iter(|| {
            let token = raw.encrypt_at_time(black_box(&data), NOW as u64);
            raw.decrypt_at_time(&token, Some(60), NOW as u64).unwrap()
        });
    });
    group.bench_function("security_crypto_fernet_key", |b| {
        b.iter(|| {
            let token = wrapper.encrypt_at(black_box(&data), now).unwrap();
            wrapper.decrypt_at(&token, now, Some(ttl)).unwrap()
        });
    });
    group.bench_function("security_crypto_key_ring", |b| {
        b.iter(|| {
            let token = ring.encrypt(black_box(&data)).unwrap();
            ring.decrypt_with_ttl(&token, ttl).unwrap()
        });
    });
    group.finish();
}

fn hmac_verify(c: &mut Criterion) {
    let message = [0x42_u8; 64];
    let key = SymmetricKey::generate().unwrap();
    let wrapper = HmacKey::from_key(key.duplicate());
    let tag = wrapper.sign(&message);

    let mut group = c.benchmark_group("hmac_sha256_verify_64b");
    group.bench_function("raw_hmac_crate", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret()).unwrap();
            mac.update(black_box(&message));
            mac.verify_slice(black_box(&tag)).is_ok()
        });
    });
    group.bench_function("security_crypto_hmac_key", |b| {
        b.iter(|| wrapper.verify(black_box(&message), black_box(&tag)));
    });
    group.finish();
}

fn argon2id_default(c: &mut Criterion) {
    let password = SecretString::from("correct horse battery staple");
    let raw = argon2::Argon2::default();
    let phc = raw
        .hash_password(
            password.expose_secret().as_bytes(),
            &SaltString::encode_b64(b"0123456789abcdef").unwrap(),
        )
        .unwrap()
        .to_string();
    let wrapper = Argon2PasswordHasher::owasp().unwrap();
    let stored = SecretString::from(phc.clone());
    assert!(
        phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "the defaults are the OWASP ones"
    );

    let mut group = c.benchmark_group("argon2id_verify_owasp_default");
    group.sample_size(10);
    group.bench_function("raw_argon2_crate", |b| {
        b.iter(|| {
            let parsed = PasswordHash::new(black_box(&phc)).unwrap();
            raw.verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok()
        });
    });
    group.bench_function("security_crypto_argon2_hasher", |b| {
        b.iter(|| {
            wrapper
                .verify(black_box(&password), black_box(&stored))
                .unwrap()
        });
    });
    group.finish();
}

fn ed25519(c: &mut Criterion) {
    let message = [0x17_u8; 256];
    let seed = [7_u8; 32];
    let raw = SigningKey::from_bytes(&seed);
    let raw_public = raw.verifying_key();
    let wrapper = Ed25519KeyPair::from_seed(&seed);
    let wrapper_public = wrapper.public_key();
    let signature = raw.sign(&message);
    let signature_bytes = signature.to_bytes();

    let mut group = c.benchmark_group("ed25519_sign_256b");
    group.bench_function("raw_ed25519_dalek", |b| {
        b.iter(|| raw.sign(black_box(&message)));
    });
    group.bench_function("security_crypto_key_pair", |b| {
        b.iter(|| wrapper.sign(black_box(&message)));
    });
    group.finish();

    let mut group = c.benchmark_group("ed25519_verify_strict_256b");
    group.bench_function("raw_ed25519_dalek", |b| {
        b.iter(|| {
            let signature =
                ed25519_dalek::Signature::from_slice(black_box(&signature_bytes)).unwrap();
            raw_public
                .verify_strict(black_box(&message), &signature)
                .is_ok()
        });
    });
    group.bench_function("security_crypto_public_key", |b| {
        b.iter(|| wrapper_public.verify(black_box(&message), black_box(&signature_bytes)));
    });
    group.finish();
}

fn key_stores(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let clock = Arc::new(ManualClock::new(Utc.timestamp_opt(NOW, 0).unwrap()));
    let memory = MemoryKeyStore::with_clock_and_ids(clock.clone(), Arc::new(UuidV7Ids));
    let envelope = EnvelopeKeyStore::new(
        MemoryKeyRecordStore::new(),
        MasterKey::generate().unwrap(),
        clock,
        Arc::new(UuidV7Ids),
    )
    .unwrap();
    let owner = KeyOwner::new(TenantId::from_uuid(Uuid::from_u128(1)), Uuid::from_u128(2));
    let message = [0x17_u8; 256];
    let data = vec![0x5a_u8; 1024];
    let memory_key = rt
        .block_on(memory.create_key(KeySpec::new(owner, KeyPurpose::TokenSigning)))
        .unwrap();
    let envelope_key = rt
        .block_on(envelope.create_key(KeySpec::new(owner, KeyPurpose::TokenSigning)))
        .unwrap();

    let mut group = c.benchmark_group("key_store_ed25519_sign_256b");
    group.bench_function("memory_key_store", |b| {
        b.to_async(&rt).iter(|| async {
            memory
                .sign(memory_key.key_id, black_box(&message))
                .await
                .unwrap()
        });
    });
    group.bench_function("envelope_key_store", |b| {
        b.to_async(&rt).iter(|| async {
            envelope
                .sign(envelope_key.key_id, black_box(&message))
                .await
                .unwrap()
        });
    });
    group.finish();

    let mut group = c.benchmark_group("key_store_seal_unseal_1kib");
    group.bench_function("memory_key_store", |b| {
        b.to_async(&rt).iter(|| async {
            let sealed = memory.seal(owner, black_box(&data)).await.unwrap();
            memory.unseal(&sealed).await.unwrap()
        });
    });
    group.bench_function("envelope_key_store", |b| {
        b.to_async(&rt).iter(|| async {
            let sealed = envelope.seal(owner, black_box(&data)).await.unwrap();
            envelope.unseal(&sealed).await.unwrap()
        });
    });
    group.finish();
}

/// The median over `rounds` of (time of `chunk` wrapper calls) / (time of
/// `chunk` raw calls), with the two run back to back in alternating order.
fn paired_ratio(
    name: &str,
    rounds: usize,
    chunk: u32,
    mut raw: impl FnMut(),
    mut wrapper: impl FnMut(),
) {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..chunk {
            f();
        }
        start.elapsed().as_nanos() as f64 / f64::from(chunk)
    };
    // Warm both up.
    time(&mut raw);
    time(&mut wrapper);
    let mut ratios = Vec::with_capacity(rounds);
    let (mut raw_ns, mut wrapper_ns) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds {
        let (r, w) = if round % 2 == 0 {
            let r = time(&mut raw);
            (r, time(&mut wrapper))
        } else {
            let w = time(&mut wrapper);
            (time(&mut raw), w)
        };
        ratios.push(w / r);
        raw_ns.push(r);
        wrapper_ns.push(w);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = median(&mut ratios);
    println!(
        "paired overhead {name}: wrapper/raw = {ratio:.3} ({:+.1} %), raw {:.0} ns, wrapper {:.0} ns (medians of {rounds} rounds of {chunk})",
        (ratio - 1.0) * 100.0,
        median(&mut raw_ns),
        median(&mut wrapper_ns),
    );
}

fn paired_overheads() {
    let now = Utc.timestamp_opt(NOW, 0).unwrap();
    let data = vec![0x5a_u8; 1024];
    let key = SymmetricKey::generate().unwrap();
    let raw_fernet = fernet::Fernet::new(key.to_base64().expose_secret()).unwrap();
    let fernet_key = FernetKey::from_key(&key).unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let ring = FernetKeyRing::new(vec![FernetKey::from_key(&key).unwrap()], clock).unwrap();
    let ttl = Duration::from_secs(60);
    let raw_fernet_call = || {
        let token = raw_fernet.encrypt_at_time(black_box(&data), NOW as u64);
        black_box(
            raw_fernet
                .decrypt_at_time(&token, Some(60), NOW as u64)
                .unwrap(),
        );
    };
    paired_ratio(
        "fernet_1kib_encrypt_decrypt/fernet_key",
        201,
        200,
        raw_fernet_call,
        || {
            let token = fernet_key.encrypt_at(black_box(&data), now).unwrap();
            black_box(fernet_key.decrypt_at(&token, now, Some(ttl)).unwrap());
        },
    );
    paired_ratio(
        "fernet_1kib_encrypt_decrypt/key_ring",
        201,
        200,
        raw_fernet_call,
        || {
            let token = ring.encrypt(black_box(&data)).unwrap();
            black_box(ring.decrypt_with_ttl(&token, ttl).unwrap());
        },
    );

    let message = [0x42_u8; 64];
    let hmac_key = HmacKey::from_key(key.duplicate());
    let tag = hmac_key.sign(&message);
    paired_ratio(
        "hmac_sha256_verify_64b",
        201,
        2000,
        || {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret()).unwrap();
            mac.update(black_box(&message));
            black_box(mac.verify_slice(black_box(&tag)).is_ok());
        },
        || {
            black_box(hmac_key.verify(black_box(&message), black_box(&tag)));
        },
    );

    let password = SecretString::from("correct horse battery staple");
    let raw_argon2 = argon2::Argon2::default();
    let phc = raw_argon2
        .hash_password(
            password.expose_secret().as_bytes(),
            &SaltString::encode_b64(b"0123456789abcdef").unwrap(),
        )
        .unwrap()
        .to_string();
    let stored = SecretString::from(phc.clone());
    let hasher = Argon2PasswordHasher::owasp().unwrap();
    paired_ratio(
        "argon2id_verify_owasp_default",
        31,
        2,
        || {
            let parsed = PasswordHash::new(black_box(&phc)).unwrap();
            black_box(
                raw_argon2
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok(),
            );
        },
        || {
            black_box(
                hasher
                    .verify(black_box(&password), black_box(&stored))
                    .unwrap(),
            );
        },
    );

    let message = [0x17_u8; 256];
    let raw_key = SigningKey::from_bytes(&[7_u8; 32]);
    let pair = Ed25519KeyPair::from_seed(&[7_u8; 32]);
    paired_ratio(
        "ed25519_sign_256b",
        201,
        50,
        || {
            black_box(raw_key.sign(black_box(&message)));
        },
        || {
            black_box(pair.sign(black_box(&message)));
        },
    );
    let signature = raw_key.sign(&message).to_bytes();
    let raw_public = raw_key.verifying_key();
    let public = pair.public_key();
    paired_ratio(
        "ed25519_verify_strict_256b",
        201,
        50,
        || {
            let sig = ed25519_dalek::Signature::from_slice(black_box(&signature)).unwrap();
            black_box(raw_public.verify_strict(black_box(&message), &sig).is_ok());
        },
        || {
            black_box(public.verify(black_box(&message), black_box(&signature)));
        },
    );
}

criterion_group!(
    benches,
    fernet_1kib,
    hmac_verify,
    argon2id_default,
    ed25519,
    key_stores
);

fn main() {
    benches();
    // Only when benchmarking, not when `cargo test --benches` runs each once.
    if std::env::args().any(|arg| arg == "--bench") {
        paired_overheads();
    }
    Criterion::default().configure_from_args().final_summary();
}
