//! Bounded input at the edge, through the admin API: a user with the
//! largest legal metadata is stored and read back whole; the 200-deep
//! metadata attack is refused with a typed error naming the field and the
//! limit, before anything is stored (not even the account's roster entry).
//! Shared by the memory and PostgreSQL tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use security_core::limits::{
    Limit, LimitExceeded, MAX_METADATA_BYTES, MAX_METADATA_DEPTH, MAX_METADATA_ENTRIES,
    MAX_METADATA_KEY_CHARS,
};
use security_core::{
    AccountClaims, Actor, AdminService, Credential, DomainError, EventStore, GlobalQuery, KeyId,
    ManualClock, NewUser, Repository, Request, Scope, SealedSecret, StoredEvent, User, UserEvent,
};
use security_crypto::{MemoryKeyStore, UuidV7Ids};
use serde_json::{Value, json};
use uuid::Uuid;

fn nested(levels: usize) -> Value {
    let mut value = json!("leaf");
    for _ in 0..levels {
        value = json!({ "k": value });
    }
    value
}

/// The largest metadata every limit allows at once: the most entries, a
/// key as long as allowed, one value as deep as allowed, and exactly as
/// many bytes as allowed.
fn worst_legal_metadata() -> BTreeMap<String, Value> {
    let mut metadata: BTreeMap<String, Value> = (0..MAX_METADATA_ENTRIES - 1)
        .map(|i| (format!("k{i:02}"), json!("")))
        .collect();
    metadata.insert("é".repeat(MAX_METADATA_KEY_CHARS), json!(true));
    metadata.insert("k00".to_owned(), nested(MAX_METADATA_DEPTH));
    let size = |m: &BTreeMap<String, Value>| serde_json::to_string(m).unwrap().len();
    let room = MAX_METADATA_BYTES - size(&metadata);
    metadata.insert("k01".to_owned(), json!("x".repeat(room)));
    assert_eq!(size(&metadata), MAX_METADATA_BYTES);
    assert_eq!(metadata.len(), MAX_METADATA_ENTRIES);
    metadata
}

fn new_user(username: &str, metadata: BTreeMap<String, Value>) -> NewUser {
    NewUser {
        username: username.into(),
        credential: Credential::Password {
            hash: SealedSecret::new(KeyId::from_uuid(Uuid::now_v7()), "ct".into()),
        },
        metadata,
        must_change_password: false,
    }
}

pub(crate) async fn worst_legal_input_is_stored_and_the_attack_refused(store: Arc<dyn EventStore>) {
    let admin = AdminService::new(
        Repository::new(Arc::clone(&store), Arc::new(UuidV7Ids)),
        Arc::new(ManualClock::new(
            Utc.timestamp_opt(1_700_000_000, 0).single().unwrap(),
        )),
        Arc::new(MemoryKeyStore::new()),
    );
    let by = Request::by(Actor::service("limits"));
    let operator = admin.create_operator(&by, "operator").await.unwrap();
    let account = admin
        .create_account(&by, operator, "bank", AccountClaims::default())
        .await
        .unwrap();
    let tenant = account.tenant();

    // The worst legal input: stored, read back whole, decoded by readers.
    let metadata = worst_legal_metadata();
    let user_id = admin
        .create_user(&by, account, new_user("worst", metadata.clone()))
        .await
        .unwrap();
    let user = admin.user(tenant, user_id).await.unwrap();
    assert_eq!(user.metadata, metadata, "the metadata comes back whole");
    let events: Vec<StoredEvent> = store
        .read_global(Scope::Tenant(tenant), GlobalQuery::after(0, 100))
        .await
        .unwrap();
    let created = events
        .iter()
        .find(|e| &*e.event_type == "UserCreated")
        .unwrap();
    match created.decode::<UserEvent>().unwrap() {
        UserEvent::UserCreated { metadata: read, .. } => assert_eq!(read, metadata),
        other => panic!("{other:?}"),
    }
    let head = store.head_position().await.unwrap();

    // The attack: metadata nested 200 levels. Refused by the user's rules,
    // naming the field and the limit, before the roster takes the name.
    let attack = BTreeMap::from([("profile".to_owned(), nested(200))]);
    let err = admin
        .create_user(&by, account, new_user("attacker", attack))
        .await
        .unwrap_err();
    assert_eq!(
        err.rejection(),
        Some(&DomainError::LimitExceeded(LimitExceeded {
            field: "metadata",
            limit: Limit::Depth(MAX_METADATA_DEPTH),
        })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("metadata exceeds its limit of {MAX_METADATA_DEPTH} levels of nesting")
    );
    // One level past, one entry past, one byte past: refused the same way.
    let mut too_many = metadata.clone();
    too_many.insert("extra".into(), json!(1));
    let mut too_big = metadata.clone();
    too_big.insert("k02".to_owned(), json!("x"));
    for (what, bad, limit) in [
        (
            "too deep",
            BTreeMap::from([("k".to_owned(), nested(MAX_METADATA_DEPTH + 1))]),
            Limit::Depth(MAX_METADATA_DEPTH),
        ),
        (
            "too many entries",
            too_many,
            Limit::Entries(MAX_METADATA_ENTRIES),
        ),
        ("too many bytes", too_big, Limit::Bytes(MAX_METADATA_BYTES)),
    ] {
        let err = admin
            .create_user(&by, account, new_user(&what.replace(' ', "-"), bad))
            .await
            .unwrap_err();
        assert!(
            matches!(err.rejection(), Some(DomainError::LimitExceeded(e)) if e.limit == limit),
            "{what}: {err:?}"
        );
    }
    assert_eq!(
        store.head_position().await.unwrap(),
        head,
        "nothing was stored for a refused user"
    );
    let roster = admin.account(account).await.unwrap();
    assert_eq!(roster.users.len(), 1, "no roster entry for a refused user");
    assert!(
        admin
            .user_by_username(account, "attacker")
            .await
            .unwrap()
            .is_none()
    );
    // The store refuses what slips past a command too.
    let stream = Repository::stream_id::<User>(tenant, Uuid::now_v7());
    let deep_event = security_core::NewEvent {
        event_id: security_core::EventId::from_uuid(Uuid::now_v7()),
        event_type: Arc::from("UserCreated"),
        schema_version: 1,
        occurred_at: Utc.timestamp_opt(1_700_000_000, 0).single().unwrap(),
        payload: Arc::new(json!({ "metadata": nested(200) })),
        metadata: Arc::default(),
    };
    let refused = store
        .append(security_core::AppendRequest {
            stream_id: stream,
            expected: security_core::ExpectedVersion::NoStream,
            events: vec![deep_event],
            idempotency_key: None,
        })
        .await;
    assert!(
        matches!(refused, Err(security_core::StoreError::LimitExceeded(_))),
        "{refused:?}"
    );
    assert_eq!(store.head_position().await.unwrap(), head);
}
