//! The personal-data export (GDPR access request): every event about one
//! user, with its sealed fields opened where the keys still exist.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use security_core::audit::{AuditIndex, AuditKind, AuditOutcome, AuditQuery, MAX_AUDIT_PAGE};
use security_core::{
    Actor, EventId, EventStore, GlobalQuery, KeyStore, KeyStoreError, SEALED_TAG, Scope,
    SealedSecret, StoredEvent, StreamId, StreamQuery, TenantId, Until, UserId,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::error::Error;

/// The `format` of a personal-data export.
pub const PERSONAL_EXPORT_FORMAT: &str = "security-personal-data-export";

/// Everything the store holds about one user: the events of the user's
/// own stream and every indexed event about the user (authentication
/// attempts and their audit records, sessions, authorization decisions,
/// administration), in global order.
///
/// Sealed fields are replaced by `{"sealed": "decrypted", "value": TEXT}`
/// (or `"base64"` for bytes that are not UTF-8) when the key that sealed
/// them still exists, by `{"sealed": "shredded"}` when it was destroyed
/// (crypto-shredding), and by `{"sealed": "unreadable"}` when the key
/// store cannot open them for another reason (a key of another tenant, a
/// damaged value).
///
/// Credentials are never exported, even sealed: a sealed value under a
/// credential field (password hashes, TOTP secrets, backup codes, session
/// seeds: [`CREDENTIAL_FIELDS`]) is replaced by `{"sealed": "withheld"}`.
/// What is opened is personal data (a username typed at a failed login,
/// for one): hand the export to the data subject only, over a protected
/// channel. `Debug` shows counts only.
#[derive(Clone, Serialize)]
pub struct PersonalDataExport {
    /// Always [`PERSONAL_EXPORT_FORMAT`].
    pub format: &'static str,
    /// The user's tenant.
    pub tenant_id: TenantId,
    /// The user.
    pub user_id: UserId,
    /// The user's username, if the index knows it.
    pub username: Option<String>,
    /// When the export was made.
    pub exported_at: DateTime<Utc>,
    /// The position the audit index had reached: events after it may be
    /// missing from [`events`](Self::events) (the user's own stream is
    /// read whole).
    pub indexed_up_to: u64,
    /// The events, in global order.
    pub events: Vec<PersonalEvent>,
}

impl fmt::Debug for PersonalDataExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonalDataExport")
            .field("tenant_id", &self.tenant_id)
            .field("user_id", &self.user_id)
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl PersonalDataExport {
    /// The export as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// One event of a [`PersonalDataExport`].
#[derive(Clone, Serialize)]
pub struct PersonalEvent {
    /// Its global position.
    pub global_position: u64,
    /// Its id.
    pub event_id: EventId,
    /// Its stream's aggregate type.
    pub aggregate_type: String,
    /// Its stream's aggregate id.
    pub aggregate_id: Uuid,
    /// Its version in its stream.
    pub version: u64,
    /// Its type.
    pub event_type: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Who caused it.
    pub actor: Option<Actor>,
    /// Its audit kind, if it is classified.
    pub kind: Option<AuditKind>,
    /// Its audit outcome, if it is classified.
    pub outcome: Option<AuditOutcome>,
    /// Its payload, sealed fields opened or marked.
    pub payload: Value,
}

impl fmt::Debug for PersonalEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonalEvent")
            .field("global_position", &self.global_position)
            .field("event_type", &self.event_type)
            .finish_non_exhaustive()
    }
}

/// Exports everything about `user_id` in `tenant_id`: the user's stream,
/// and the events `index` lists about the user, with sealed fields opened
/// through `keys` (see [`PersonalDataExport`]).
///
/// Errors: the store's ([`Error::Store`]) and the key store's when it
/// fails as a backend ([`Error::Unseal`]); both may be retried.
pub async fn export_personal_data(
    store: &dyn EventStore,
    index: &dyn AuditIndex,
    keys: &dyn KeyStore,
    tenant_id: TenantId,
    user_id: UserId,
    exported_at: DateTime<Utc>,
) -> Result<PersonalDataExport, Error> {
    let mut events: BTreeMap<u64, StoredEvent> = BTreeMap::new();
    let own = StreamId::new(tenant_id, "user", user_id.as_uuid());
    for event in store.read_stream(&own, StreamQuery::all()).await? {
        events.insert(event.global_position, event);
    }
    let mut classified = BTreeMap::new();
    let mut username = None;
    let mut query = AuditQuery::tenant(tenant_id)
        .subject(user_id)
        .limit(MAX_AUDIT_PAGE)
        .with_usernames();
    let indexed_up_to = loop {
        let page = index.query(&query).await?;
        for entry in page.entries {
            if username.is_none() {
                username.clone_from(&entry.username);
            }
            classified.insert(entry.position, (entry.kind, entry.outcome));
        }
        match page.next {
            Some(cursor) => query = query.after(cursor),
            None => break page.indexed_up_to,
        }
    };
    for &position in classified.keys() {
        if events.contains_key(&position) {
            continue;
        }
        let read = GlobalQuery {
            after: position - 1,
            until: Until::Position(position),
            limit: 1,
        };
        let found = store.read_global(Scope::Tenant(tenant_id), read).await?;
        if let Some(event) = found.into_iter().find(|e| e.global_position == position) {
            events.insert(position, event);
        }
    }
    let mut exported = Vec::with_capacity(events.len());
    for event in events.into_values() {
        let (kind, outcome) = classified
            .get(&event.global_position)
            .map_or((None, None), |(k, o)| (Some(*k), Some(*o)));
        exported.push(PersonalEvent {
            global_position: event.global_position,
            event_id: event.event_id,
            aggregate_type: event.stream_id.aggregate_type.to_string(),
            aggregate_id: event.stream_id.aggregate_id,
            version: event.version,
            event_type: event.event_type.to_string(),
            occurred_at: event.occurred_at,
            actor: event.metadata.actor.clone(),
            kind,
            outcome,
            payload: open(keys, &event.payload).await?,
        });
    }
    Ok(PersonalDataExport {
        format: PERSONAL_EXPORT_FORMAT,
        tenant_id,
        user_id,
        username,
        exported_at,
        indexed_up_to,
        events: exported,
    })
}

/// A copy of `value` with every sealed value opened or marked.
async fn open(keys: &dyn KeyStore, value: &Value) -> Result<Value, Error> {
    // Depth-first over an explicit stack: payloads are bounded in depth by
    // the store's limits, but no recursion is needed.
    enum Step<'a> {
        Visit(&'a Value, Option<&'a str>),
        Object(Vec<String>),
        Array(usize),
    }
    let mut steps = vec![Step::Visit(value, None)];
    let mut done: Vec<Value> = Vec::new();
    while let Some(step) = steps.pop() {
        match step {
            Step::Visit(v, field) => match v {
                Value::Object(map) if is_sealed(map) => {
                    if field.is_some_and(|f| CREDENTIAL_FIELDS.contains(&f)) {
                        done.push(json!({"sealed": "withheld"}));
                    } else {
                        done.push(opened(keys, v).await?);
                    }
                }
                Value::Object(map) => {
                    steps.push(Step::Object(map.keys().cloned().collect()));
                    steps.extend(
                        map.iter()
                            .rev()
                            .map(|(name, value)| Step::Visit(value, Some(name.as_str()))),
                    );
                }
                Value::Array(items) => {
                    steps.push(Step::Array(items.len()));
                    steps.extend(items.iter().rev().map(|item| Step::Visit(item, field)));
                }
                other => done.push(other.clone()),
            },
            Step::Object(names) => {
                let values = done.split_off(done.len() - names.len());
                done.push(Value::Object(
                    names.into_iter().zip(values).collect::<Map<_, _>>(),
                ));
            }
            Step::Array(len) => {
                let values = done.split_off(done.len() - len);
                done.push(Value::Array(values));
            }
        }
    }
    Ok(done.pop().unwrap_or(Value::Null))
}

/// The fields whose sealed values are credentials, withheld from a
/// personal-data export: the user's password hashes, TOTP secrets and
/// backup codes, and a session's refresh-token seed.
pub const CREDENTIAL_FIELDS: &[&str] = &[
    "hash",
    "new_hash",
    "secret",
    "pending_secret",
    "codes",
    "backup_codes",
    "seed",
];

fn is_sealed(map: &Map<String, Value>) -> bool {
    map.len() == 1 && map.contains_key(SEALED_TAG)
}

async fn opened(keys: &dyn KeyStore, value: &Value) -> Result<Value, Error> {
    let Ok(sealed) = serde_json::from_value::<SealedSecret>(value.clone()) else {
        return Ok(json!({"sealed": "unreadable"}));
    };
    match keys.unseal(&sealed).await {
        Ok(plain) => {
            let bytes = plain.expose_secret();
            Ok(match std::str::from_utf8(bytes) {
                Ok(text) => json!({"sealed": "decrypted", "value": text}),
                Err(_) => json!({
                    "sealed": "decrypted",
                    "base64": base64::engine::general_purpose::STANDARD.encode(bytes),
                }),
            })
        }
        Err(KeyStoreError::Destroyed(_)) => Ok(json!({"sealed": "shredded"})),
        Err(KeyStoreError::Backend(source)) => Err(Error::Unseal(KeyStoreError::Backend(source))),
        Err(_) => Ok(json!({"sealed": "unreadable"})),
    }
}
