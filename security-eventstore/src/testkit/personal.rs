//! The personal-data export on a store and its audit index: everything
//! about one user and nothing about anyone else, sealed personal data
//! opened while the user's key exists and marked `shredded` once it is
//! destroyed, sealed credentials never exported.

use std::sync::Arc;

use security_core::audit::AuditIndex;
use security_core::{
    EventStore, ExpectedVersion, KeyOwner, KeyStore, Projection, ProjectionRunner, StreamId, UserId,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{append, at, event_at, tenant};
use crate::audit::export_personal_data;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
const SEED: &str = "session-seed-of-alice";
const TYPED: &str = "alice-typed-at-login";

/// Exports one user before and after crypto-shredding, on `store` with
/// `index` fed by `runner` (over `Scope::All`, from position 0).
pub async fn personal_data_export<P: Projection>(
    store: Arc<dyn EventStore>,
    index: &dyn AuditIndex,
    runner: &mut ProjectionRunner<P>,
    keys: &dyn KeyStore,
) {
    let t = tenant();
    let alice = UserId::from_uuid(Uuid::now_v7());
    let bob = UserId::from_uuid(Uuid::now_v7());
    let owner = KeyOwner::new(t, alice.as_uuid());
    let hash = keys.seal(owner, HASH.as_bytes()).await.expect("seal");
    let seed = keys.seal(owner, SEED.as_bytes()).await.expect("seal");
    let typed = keys.seal(owner, TYPED.as_bytes()).await.expect("seal");
    let bob_hash = keys
        .seal(KeyOwner::new(t, bob.as_uuid()), b"bob-hash")
        .await
        .expect("seal");
    let put = |stream: StreamId, event_type: &'static str, payload: Value, s: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .append(append(
                    &stream,
                    ExpectedVersion::Any,
                    vec![event_at(event_type, payload, at(s))],
                ))
                .await
                .expect("append")
                .last_position
        }
    };
    let user = |id: UserId| StreamId::new(t, "user", id.as_uuid());
    put(
        user(alice),
        "UserCreated",
        json!({"user_id": alice, "username": "alice", "credential": {"type": "password", "hash": hash}}),
        0,
    )
    .await;
    put(
        user(bob),
        "UserCreated",
        json!({"user_id": bob, "username": "bob", "credential": {"type": "password", "hash": bob_hash}}),
        1,
    )
    .await;
    let failed = put(
        StreamId::new(t, "auth_audit", Uuid::now_v7()),
        "AuthenticationAttemptFailed",
        json!({"user_id": alice, "reason": "account_inactive", "username": typed}),
        2,
    )
    .await;
    let session = put(
        StreamId::new(t, "session", Uuid::now_v7()),
        "SessionStarted",
        json!({"user_id": alice, "seed": seed}),
        3,
    )
    .await;
    let denied = put(
        StreamId::new(t, "authz_audit", alice.as_uuid()),
        "AccessDenied",
        json!({"user_id": alice}),
        4,
    )
    .await;
    put(
        StreamId::new(t, "authz_audit", bob.as_uuid()),
        "AccessDenied",
        json!({"user_id": bob}),
        5,
    )
    .await;
    runner.catch_up().await.expect("the index catches up");

    let export = export_personal_data(&*store, index, keys, t, alice, at(10))
        .await
        .expect("export");
    assert_eq!(export.username.as_deref(), Some("alice"));
    let types: Vec<&str> = export
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "UserCreated",
            "AuthenticationAttemptFailed",
            "SessionStarted",
            "AccessDenied"
        ],
        "the user's events and the events about the user, in order"
    );
    assert_eq!(export.events[1].global_position, failed);
    assert_eq!(export.events[2].global_position, session);
    assert_eq!(export.events[3].global_position, denied);
    let text = export.to_json().to_string();
    assert!(!text.contains("bob"), "nothing about another user: {text}");
    assert_eq!(
        export.events[1].payload["username"],
        json!({"sealed": "decrypted", "value": TYPED}),
        "sealed personal data is opened while the key exists"
    );
    assert_eq!(
        export.events[0].payload["credential"]["hash"],
        json!({"sealed": "withheld"}),
        "a credential is never exported"
    );
    assert_eq!(
        export.events[2].payload["seed"],
        json!({"sealed": "withheld"})
    );
    assert!(
        !text.contains(HASH) && !text.contains(SEED),
        "no credential in clear: {text}"
    );
    assert!(
        !format!("{export:?}").contains(TYPED),
        "Debug never shows what was opened"
    );

    keys.shred(owner).await.expect("shred");
    let after = export_personal_data(&*store, index, keys, t, alice, at(20))
        .await
        .expect("export after shredding");
    assert_eq!(after.events.len(), 4, "the history stays");
    assert_eq!(
        after.events[1].payload["username"],
        json!({"sealed": "shredded"}),
        "a destroyed key's fields are marked shredded"
    );
    assert_eq!(
        after.events[0].payload["credential"]["hash"],
        json!({"sealed": "withheld"})
    );
    assert_eq!(after.events[0].payload["credential"]["type"], "password");
    let text = after.to_json().to_string();
    assert!(
        !text.contains(HASH) && !text.contains(SEED) && !text.contains(TYPED),
        "{text}"
    );
    assert!(
        !text.contains("$sealed"),
        "no ciphertext is exported: {text}"
    );
}
