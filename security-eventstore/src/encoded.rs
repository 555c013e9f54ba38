//! Events already encoded as a broker's message body, and the publishers
//! the outbox relay can pipeline.
//!
//! The relay's fast path: a stored row becomes an [`EncodedEvent`] without
//! its payload being parsed and serialised again, and a
//! [`PipelinedPublisher`] hands batches to its broker client without
//! waiting for the acknowledgements, so the relay reads the next batches
//! and marks the acknowledged ones meanwhile.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::future::BoxFuture;
use security_core::{EventId, IdempotencyKey, PublishError, PublishedEvent, Publisher, StreamId};
#[cfg(feature = "postgres")]
use {
    chrono::{DateTime, Utc},
    security_core::{EventMetadata, SEALED_TAG, contains_sealed, strip_sealed},
    serde::Serialize,
    serde_json::Value,
};

/// A published event encoded as the JSON body a broker carries, with what
/// a broker needs to route it and label it.
///
/// The body is the JSON of the [`PublishedEvent`] it stands for (what
/// `serde_json::to_vec(&published)` writes): sealed fields are never in
/// it. There are two ways to make one, and both strip them:
/// [`EncodedEvent::from_published`], and the outbox relay's own, which
/// copies the payload's stored JSON text into the body when that text
/// holds no sealed value and strips it (as [`StoredEvent::to_published`]
/// does) when it does.
///
/// [`StoredEvent::to_published`]: security_core::StoredEvent::to_published
#[derive(Clone)]
pub struct EncodedEvent {
    event_id: EventId,
    stream_id: StreamId,
    version: u64,
    global_position: u64,
    event_type: Arc<str>,
    schema_version: u32,
    idempotency_key: Option<IdempotencyKey>,
    body: Vec<u8>,
}

impl fmt::Debug for EncodedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedEvent")
            .field("event_id", &self.event_id)
            .field("stream_id", &self.stream_id)
            .field("version", &self.version)
            .field("global_position", &self.global_position)
            .field("event_type", &self.event_type)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The fields of a [`StoredEvent`](security_core::StoredEvent) that come
/// before its payload, in its serialised order (a test checks the whole
/// body against `serde_json::to_vec` of the published event).
#[cfg(feature = "postgres")]
#[derive(Serialize)]
struct Head<'a> {
    event_id: EventId,
    stream_id: &'a StreamId,
    version: u64,
    global_position: u64,
    event_type: &'a str,
    schema_version: u32,
    occurred_at: &'a DateTime<Utc>,
}

/// A stored row's columns, the payload as the JSON text PostgreSQL keeps.
#[cfg(feature = "postgres")]
pub(crate) struct StoredRow<'a> {
    pub(crate) event_id: EventId,
    pub(crate) stream_id: StreamId,
    pub(crate) version: u64,
    pub(crate) global_position: u64,
    pub(crate) event_type: &'a str,
    pub(crate) schema_version: u32,
    pub(crate) occurred_at: DateTime<Utc>,
    /// Valid JSON: read from a `json` column, which PostgreSQL validates
    /// on the way in.
    pub(crate) payload: &'a str,
    pub(crate) metadata: &'a str,
}

/// Whether JSON text may hold an object key `$sealed`. A key spells the
/// tag either literally or with a `\u` escape (no other JSON escape stands
/// for a letter or `$`), so text with neither holds no sealed value.
#[cfg(feature = "postgres")]
fn may_hold_sealed(json: &str) -> bool {
    json.contains(SEALED_TAG) || json.contains("\\u")
}

impl EncodedEvent {
    /// Encodes a published event (its body is `serde_json::to_vec(event)`).
    pub fn from_published(event: &PublishedEvent) -> Result<Self, serde_json::Error> {
        Ok(Self {
            event_id: event.event_id,
            stream_id: event.stream_id.clone(),
            version: event.version,
            global_position: event.global_position,
            event_type: Arc::clone(&event.event_type),
            schema_version: event.schema_version,
            idempotency_key: event.metadata.idempotency_key.clone(),
            body: serde_json::to_vec(event)?,
        })
    }

    /// Encodes a stored row as [`from_published`](Self::from_published)
    /// encodes its published form, without parsing a payload that holds no
    /// sealed value: its stored text goes into the body as it is (the store
    /// wrote it with `serde_json`, so the bytes are the same).
    ///
    /// Hand-written splicing rather than a `serde_json::value::RawValue`:
    /// building one validates the text again, which PostgreSQL's `json`
    /// type already did, and that parse is the cost this path exists to
    /// avoid.
    #[cfg(feature = "postgres")]
    pub(crate) fn from_stored(row: &StoredRow<'_>) -> Result<Self, serde_json::Error> {
        let metadata: EventMetadata = serde_json::from_str(row.metadata)?;
        let mut body = Vec::with_capacity(row.payload.len() + row.metadata.len() + 320);
        serde_json::to_writer(
            &mut body,
            &Head {
                event_id: row.event_id,
                stream_id: &row.stream_id,
                version: row.version,
                global_position: row.global_position,
                event_type: row.event_type,
                schema_version: row.schema_version,
                occurred_at: &row.occurred_at,
            },
        )?;
        // `Head` serialises as an object: replace its closing brace.
        body.pop();
        body.extend_from_slice(b",\"payload\":");
        if may_hold_sealed(row.payload) {
            let payload: Value = serde_json::from_str(row.payload)?;
            if contains_sealed(&payload) {
                serde_json::to_writer(&mut body, &strip_sealed(&payload))?;
            } else {
                body.extend_from_slice(row.payload.as_bytes());
            }
        } else {
            body.extend_from_slice(row.payload.as_bytes());
        }
        body.extend_from_slice(b",\"metadata\":");
        serde_json::to_writer(&mut body, &metadata)?;
        body.push(b'}');
        Ok(Self {
            event_id: row.event_id,
            stream_id: row.stream_id.clone(),
            version: row.version,
            global_position: row.global_position,
            event_type: Arc::from(row.event_type),
            schema_version: row.schema_version,
            idempotency_key: metadata.idempotency_key,
            body,
        })
    }

    /// The event's id: the consumers' dedupe key.
    pub fn event_id(&self) -> EventId {
        self.event_id
    }

    /// The stream the event belongs to (it carries the tenant).
    pub fn stream_id(&self) -> &StreamId {
        &self.stream_id
    }

    /// The event's version in its stream.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The event's position in the store's global order.
    pub fn global_position(&self) -> u64 {
        self.global_position
    }

    /// The event type, e.g. `UserCreated`.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The payload's schema version.
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    /// The idempotency key of the append that wrote the event, if any.
    pub fn idempotency_key(&self) -> Option<&IdempotencyKey> {
        self.idempotency_key.as_ref()
    }

    /// The message body: the published event as JSON, no sealed field.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// The broker's answer to one [`PipelinedPublisher::send`]: completes once
/// the broker acknowledged every event handed over, or with an error once
/// none of them is in flight any more (some may have arrived).
#[must_use = "a delivery tells whether the broker acknowledged the events"]
pub struct Delivery {
    outcome: BoxFuture<'static, Result<(), PublishError>>,
}

impl Delivery {
    /// A delivery that completes with `outcome`.
    pub fn new(outcome: impl Future<Output = Result<(), PublishError>> + Send + 'static) -> Self {
        Self {
            outcome: Box::pin(outcome),
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery").finish_non_exhaustive()
    }
}

impl Future for Delivery {
    type Output = Result<(), PublishError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.outcome.as_mut().poll(cx)
    }
}

/// A [`Publisher`] the outbox relay can pipeline: it takes events already
/// encoded and hands them to its broker client without waiting for the
/// broker, so several batches are in flight while the relay reads the next
/// ones and marks the acknowledged ones done.
///
/// Contract, on top of [`Publisher`]'s: events go to the broker in the
/// order of the `send` calls and, within one call, in the order given (so
/// a stream's events stay in version order); the body is sent as it is,
/// keyed so that a stream's events keep their order at the broker. The
/// relay calls `send` again only after the previous call returned, marks a
/// batch done only once its [`Delivery`] and every earlier one succeeded,
/// and, after a failure, sends nothing more until every delivery still
/// outstanding has completed.
///
/// `KafkaPublisher` implements it; `OutboxRelay::pipelined` uses it.
#[async_trait]
pub trait PipelinedPublisher: Publisher {
    /// Hands `events` to the broker client, in order, behind everything
    /// earlier calls handed over, and returns their [`Delivery`].
    ///
    /// An error means that none of `events` is in flight.
    async fn send(&self, events: &[EncodedEvent]) -> Result<Delivery, PublishError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_delivery_completes_with_its_outcome() {
        assert!(Delivery::new(async { Ok(()) }).await.is_ok());
        let failed = Delivery::new(async { Err(PublishError::Unavailable("broker down".into())) });
        assert!(format!("{failed:?}").starts_with("Delivery"));
        assert!(failed.await.is_err());
    }

    /// The relay's encoding of stored rows.
    #[cfg(feature = "postgres")]
    mod stored_rows {
        use super::super::*;
        use security_core::{Actor, KeyId, SealedSecret, StoredEvent, TenantId};
        use serde_json::json;
        use uuid::Uuid;

        fn stored(payload: Value, metadata: EventMetadata) -> StoredEvent {
            StoredEvent {
                event_id: EventId::from_uuid(Uuid::now_v7()),
                stream_id: StreamId::new(
                    TenantId::from_uuid(Uuid::now_v7()),
                    "user \"quoted\" \u{e9}",
                    Uuid::now_v7(),
                ),
                version: 7,
                global_position: 1_234_567,
                event_type: Arc::from("UserCreated"),
                schema_version: 3,
                occurred_at: DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
                payload: Arc::new(payload),
                metadata: Arc::new(metadata),
                unreadable: None,
            }
        }

        /// Encodes `event` the way the relay does, from its stored text.
        fn from_row(event: &StoredEvent) -> EncodedEvent {
            let payload = serde_json::to_string(&*event.payload).unwrap();
            let metadata = serde_json::to_string(&*event.metadata).unwrap();
            EncodedEvent::from_stored(&StoredRow {
                event_id: event.event_id,
                stream_id: event.stream_id.clone(),
                version: event.version,
                global_position: event.global_position,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                occurred_at: event.occurred_at,
                payload: &payload,
                metadata: &metadata,
            })
            .unwrap()
        }

        fn sealed(ciphertext: &str) -> Value {
            serde_json::to_value(SealedSecret::new(
                KeyId::from_uuid(Uuid::now_v7()),
                ciphertext.into(),
            ))
            .unwrap()
        }

        fn full_metadata() -> EventMetadata {
            EventMetadata {
                actor: Some(Actor::new("user:0190c7a4-6f7e-7d55-a000-000000000003")),
                correlation_id: Some(Uuid::now_v7()),
                causation_id: Some(Uuid::now_v7()),
                idempotency_key: Some(IdempotencyKey::new("create-alice").unwrap()),
                trace_id: Some(Arc::from("4bf92f3577b34da6a3ce929d0e0e4736")),
            }
        }

        #[test]
        fn the_spliced_body_is_the_published_json_byte_for_byte() {
            let payloads = [
                json!({}),
                json!({"name": "alice", "n": 1.5, "list": [1, "two", null], "nested": {"a": true}}),
                json!("a bare string with \"quotes\" and \\ and \u{1F600}"),
                json!({"price": "$5", "sealed": "$sealed as a value, not a key"}),
                json!({"escaped": "\u{0001}\u{001f}"}),
            ];
            for payload in payloads {
                for metadata in [EventMetadata::default(), full_metadata()] {
                    let event = stored(payload.clone(), metadata);
                    let published = event.to_published();
                    let encoded = from_row(&event);
                    assert_eq!(
                        String::from_utf8(encoded.body().to_vec()).unwrap(),
                        serde_json::to_string(&published).unwrap()
                    );
                    assert_eq!(
                        encoded.body(),
                        EncodedEvent::from_published(&published).unwrap().body()
                    );
                    assert_eq!(encoded.event_id(), event.event_id);
                    assert_eq!(encoded.stream_id(), &event.stream_id);
                    assert_eq!(encoded.version(), 7);
                    assert_eq!(encoded.global_position(), 1_234_567);
                    assert_eq!(encoded.event_type(), "UserCreated");
                    assert_eq!(encoded.schema_version(), 3);
                    assert_eq!(
                        encoded.idempotency_key(),
                        event.metadata.idempotency_key.as_ref()
                    );
                }
            }
        }

        #[test]
        fn sealed_values_never_reach_the_body() {
            let payloads = [
                json!({"name": "alice", "password": sealed("ciphertext-one")}),
                json!({"deep": {"deeper": [1, sealed("ciphertext-two"), {"x": sealed("ciphertext-three")}]}}),
                // An object with more than the tag is not a sealed value: kept.
                json!({"note": {"$sealed": {"kid": "k", "ct": "c"}, "other": 1}, "s": sealed("ciphertext-four")}),
            ];
            for payload in payloads {
                let event = stored(payload, full_metadata());
                let encoded = from_row(&event);
                let body = std::str::from_utf8(encoded.body()).unwrap();
                assert!(!body.contains("ciphertext-"), "{body}");
                assert_eq!(body, serde_json::to_string(&event.to_published()).unwrap());
                let decoded: StoredEvent = serde_json::from_slice(encoded.body()).unwrap();
                assert_eq!(decoded, *event.to_published());
            }
        }

        #[test]
        fn a_sealed_value_spelled_with_escapes_is_stripped_too() {
            // `\u0024` is `$`, `\u0073` is `s`: the same key, escaped. The store
            // never writes it this way, but the text is what the column holds.
            let kid = Uuid::now_v7();
            for key in [r#""\u0024sealed""#, r#""$\u0073ealed""#] {
                let payload = format!(
                    r#"{{"name":"alice","secret":{{{key}:{{"kid":"{kid}","ct":"escaped-ciphertext"}}}}}}"#
                );
                let event = stored(json!({}), EventMetadata::default());
                let encoded = EncodedEvent::from_stored(&StoredRow {
                    event_id: event.event_id,
                    stream_id: event.stream_id.clone(),
                    version: 1,
                    global_position: 1,
                    event_type: "UserCreated",
                    schema_version: 1,
                    occurred_at: event.occurred_at,
                    payload: &payload,
                    metadata: "{}",
                })
                .unwrap();
                let body = std::str::from_utf8(encoded.body()).unwrap();
                assert!(!body.contains("escaped-ciphertext"), "{body}");
                let decoded: StoredEvent = serde_json::from_str(body).unwrap();
                assert_eq!(*decoded.payload, json!({"name": "alice"}));
            }
        }

        #[test]
        fn the_pre_check_only_lets_text_without_the_tag_through() {
            assert!(!may_hold_sealed(r#"{"name":"alice","price":"$5"}"#));
            assert!(may_hold_sealed(r#"{"x":{"$sealed":{}}}"#));
            assert!(may_hold_sealed(r#"{"x":{"\u0024sealed":{}}}"#));
            assert!(may_hold_sealed(r#"{"x":"\u00e9"}"#));
        }

        #[test]
        fn malformed_metadata_is_an_error_not_a_body() {
            let event = stored(json!({}), EventMetadata::default());
            let result = EncodedEvent::from_stored(&StoredRow {
                event_id: event.event_id,
                stream_id: event.stream_id.clone(),
                version: 1,
                global_position: 1,
                event_type: "UserCreated",
                schema_version: 1,
                occurred_at: event.occurred_at,
                payload: "{}",
                metadata: r#"{"correlation_id": 5}"#,
            });
            assert!(result.is_err());
        }
    }
}
