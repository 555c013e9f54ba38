//! The stored-event envelope, its metadata, and the [`DomainEvent`] codec.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::ids::{EventId, TenantId};
use crate::{limits, sealed};

/// Identifies one stream: `(tenant_id, aggregate_type, aggregate_id)`.
///
/// Cloning is cheap (the aggregate type is shared).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId {
    /// The tenant the stream belongs to.
    pub tenant_id: TenantId,
    /// The kind of aggregate, e.g. `"user"`.
    pub aggregate_type: Arc<str>,
    /// The aggregate's id.
    pub aggregate_id: Uuid,
}

impl StreamId {
    /// A stream id.
    pub fn new(
        tenant_id: TenantId,
        aggregate_type: impl Into<Arc<str>>,
        aggregate_id: Uuid,
    ) -> Self {
        Self {
            tenant_id,
            aggregate_type: aggregate_type.into(),
            aggregate_id,
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.tenant_id, self.aggregate_type, self.aggregate_id
        )
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({self})")
    }
}

/// Who caused an event: `user:<id>`, `service:<name>`, `system`, or an
/// application-defined string.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor(Arc<str>);

impl Actor {
    /// An actor with an application-defined name.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The library itself (e.g. an automatic lockout).
    pub fn system() -> Self {
        Self(Arc::from("system"))
    }

    /// A user of a tenant.
    pub fn user(id: crate::UserId) -> Self {
        Self(Arc::from(format!("user:{id}")))
    }

    /// A named service.
    pub fn service(name: &str) -> Self {
        Self(Arc::from(format!("service:{name}")))
    }

    /// The actor as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Actor({})", self.0)
    }
}

/// The longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// A caller-chosen key that makes a command or an append happen at most once
/// per tenant.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(Arc<str>);

/// An idempotency key was empty, too long or held control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid idempotency key: it must be 1 to 200 bytes of printable text")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    /// Validates and wraps a key.
    pub fn new(key: impl AsRef<str>) -> Result<Self, InvalidIdempotencyKey> {
        let key = key.as_ref();
        if key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY_LEN
            || key.chars().any(char::is_control)
        {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(Arc::from(key)))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for IdempotencyKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::new(text).map_err(de::Error::custom)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({})", self.0)
    }
}

/// Metadata carried by every event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Who caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// Groups every event caused by one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event or command that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The idempotency key of the append that wrote the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<IdempotencyKey>,
    /// A distributed-tracing id (W3C trace id or similar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<Arc<str>>,
}

/// An event to be appended: everything but the store-assigned stream,
/// version and global position.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique id (UUID v7).
    pub event_id: EventId,
    /// Stable type name, e.g. `"UserCreated"`.
    pub event_type: Arc<str>,
    /// Version of the payload's schema, for upcasting.
    pub schema_version: u32,
    /// When the event happened (from the injected clock).
    pub occurred_at: DateTime<Utc>,
    /// The event body (sealed fields already sealed).
    pub payload: Arc<Value>,
    /// Actor, correlation, causation, idempotency key, trace id.
    pub metadata: Arc<EventMetadata>,
}

/// An event as stored: immutable, with its stream, version and global position.
///
/// Cloning is cheap: the strings, payload and metadata are shared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Unique id (UUID v7).
    pub event_id: EventId,
    /// The stream the event belongs to (it also carries the tenant).
    pub stream_id: StreamId,
    /// Position in its stream; the first event is version 1.
    pub version: u64,
    /// Store-wide position, strictly increasing, starting at 1.
    pub global_position: u64,
    /// Stable type name, e.g. `"UserCreated"`.
    pub event_type: Arc<str>,
    /// Version of the payload's schema.
    pub schema_version: u32,
    /// When the event happened.
    pub occurred_at: DateTime<Utc>,
    /// The event body. Sealed fields stay sealed.
    pub payload: Arc<Value>,
    /// Actor, correlation, causation, idempotency key, trace id.
    pub metadata: Arc<EventMetadata>,
    /// Why the stored row could not be read, if it could not: its payload
    /// or metadata is not JSON of the right shape, or is larger or deeper
    /// than the [`limits`](crate::limits) (rows no append of this library
    /// writes, e.g. inserted by hand). The payload is then `null` and the
    /// metadata empty; [`decode`](Self::decode) fails with
    /// [`EventDecodeError::Unreadable`], so a projection records the event
    /// and goes on instead of failing on it forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<Arc<str>>,
}

/// A stored row as a store keeps it: the envelope's columns, and the
/// payload and metadata as JSON text. [`StoredEvent::from_raw`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct RawEvent<'a> {
    /// Unique id.
    pub event_id: EventId,
    /// Position in its stream.
    pub version: u64,
    /// Store-wide position.
    pub global_position: u64,
    /// Stable type name.
    pub event_type: &'a str,
    /// Version of the payload's schema.
    pub schema_version: u32,
    /// When the event happened.
    pub occurred_at: DateTime<Utc>,
    /// The payload, as stored JSON text.
    pub payload: &'a str,
    /// The metadata, as stored JSON text.
    pub metadata: &'a str,
}

impl StoredEvent {
    /// Reads a stored row under the [`limits`](crate::limits) every append
    /// obeys. Never fails: a row whose payload or metadata cannot be read
    /// becomes an event marked [`unreadable`](Self::unreadable), so one bad
    /// row never stops a reader of the stream.
    pub fn from_raw(raw: RawEvent<'_>, stream_id: StreamId) -> Self {
        let read = || -> Result<(Value, EventMetadata), &'static str> {
            let payload =
                limits::parse_stored_json("payload", raw.payload, limits::MAX_PAYLOAD_BYTES)
                    .map_err(|e| match e {
                        limits::StoredJsonError::Limit(_) => {
                            "the payload is larger or deeper than the limits"
                        }
                        _ => "the payload is not valid JSON",
                    })?;
            let metadata =
                limits::parse_stored_json("metadata", raw.metadata, limits::MAX_PAYLOAD_BYTES)
                    .ok()
                    .and_then(|value| EventMetadata::deserialize(value).ok())
                    .ok_or("the metadata is not valid event metadata")?;
            Ok((payload, metadata))
        };
        let (payload, metadata, unreadable) = match read() {
            Ok((payload, metadata)) => (payload, metadata, None),
            Err(reason) => (
                Value::Null,
                EventMetadata::default(),
                Some(Arc::from(reason)),
            ),
        };
        Self {
            event_id: raw.event_id,
            stream_id,
            version: raw.version,
            global_position: raw.global_position,
            event_type: Arc::from(raw.event_type),
            schema_version: raw.schema_version,
            occurred_at: raw.occurred_at,
            payload: Arc::new(payload),
            metadata: Arc::new(metadata),
            unreadable,
        }
    }

    /// The tenant the event belongs to.
    pub fn tenant_id(&self) -> TenantId {
        self.stream_id.tenant_id
    }

    /// Builds the stored form of a new event.
    pub fn from_new(
        event: NewEvent,
        stream_id: StreamId,
        version: u64,
        global_position: u64,
    ) -> Self {
        Self {
            event_id: event.event_id,
            stream_id,
            version,
            global_position,
            event_type: event.event_type,
            schema_version: event.schema_version,
            occurred_at: event.occurred_at,
            payload: event.payload,
            metadata: event.metadata,
            unreadable: None,
        }
    }

    /// The form of this event that may leave the store: every sealed field
    /// is removed from the payload. See [`PublishedEvent`].
    pub fn to_published(&self) -> PublishedEvent {
        let payload = if sealed::contains_sealed(&self.payload) {
            Arc::new(sealed::strip_sealed(&self.payload))
        } else {
            Arc::clone(&self.payload)
        };
        PublishedEvent {
            event: Self {
                payload,
                ..self.clone()
            },
        }
    }

    /// Decodes the payload into a typed domain event.
    pub fn decode<E: DomainEvent>(&self) -> Result<E, EventDecodeError> {
        if let Some(reason) = &self.unreadable {
            return Err(EventDecodeError::Unreadable {
                event_type: self.event_type.to_string(),
                reason: Arc::clone(reason),
            });
        }
        E::decode(&self.event_type, self.schema_version, &self.payload)
    }
}

/// A stored event whose sealed fields have been removed, the only form a
/// [`Publisher`](crate::Publisher) receives.
///
/// It can only be made by [`StoredEvent::to_published`], so nothing sealed
/// can reach a broker by mistake.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct PublishedEvent {
    event: StoredEvent,
}

impl PublishedEvent {
    /// The event, without its sealed fields.
    pub fn event(&self) -> &StoredEvent {
        &self.event
    }
}

impl std::ops::Deref for PublishedEvent {
    type Target = StoredEvent;

    fn deref(&self) -> &StoredEvent {
        &self.event
    }
}

/// A stored payload could not be decoded into a domain event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventDecodeError {
    /// The event type is not one this aggregate knows. A newer writer may
    /// have added it: upgrade the reader.
    #[error("unknown event type {event_type}")]
    UnknownType {
        /// The type found.
        event_type: String,
    },
    /// The schema version is newer than this reader understands.
    #[error(
        "event type {event_type} has schema version {found}, newer than the supported {supported}"
    )]
    UnsupportedVersion {
        /// The type found.
        event_type: String,
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The stored row could not be read at all (see
    /// [`StoredEvent::unreadable`]): no build can decode it. Record it
    /// (a projection's dead letters) and go on.
    #[error("event of type {event_type} is unreadable: {reason}")]
    Unreadable {
        /// The type found.
        event_type: String,
        /// Why.
        reason: Arc<str>,
    },
    /// An upcaster could not bring an older payload up to date: the
    /// stored event is not what that version of the type was.
    #[error("event type {event_type} version {from_version} could not be upcast: {reason}")]
    Upcast {
        /// The type found.
        event_type: String,
        /// The version the upcaster read.
        from_version: u32,
        /// The upcaster's complaint.
        reason: String,
    },
    /// The payload does not match the event type's schema.
    #[error("event type {event_type} has a malformed payload")]
    Malformed {
        /// The type found.
        event_type: String,
        /// The decoder's complaint.
        #[source]
        source: serde_json::Error,
    },
}

/// A payload could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("event could not be encoded")]
pub struct EventEncodeError(#[source] pub serde_json::Error);

/// Brings a stored payload of one event type from one schema version to
/// the next, so that events written by older builds are read by this one.
///
/// Upcasters are registered per event type and version
/// ([`impl_domain_event!`](crate::impl_domain_event)'s `upcasters`, or
/// [`DomainEvent::decode`] written by hand with [`upcast`]) and applied on
/// every read, in a chain: a version-1 payload goes through the 1→2
/// upcaster, then the 2→3 one, up to the version the code writes. A
/// version with no upcaster is read as it is (a change that serde
/// defaults cover needs none).
#[derive(Clone, Copy)]
pub struct Upcaster {
    /// The event type read (its name at `from_version`).
    pub event_type: &'static str,
    /// The schema version read; the result is `from_version + 1`.
    pub from_version: u32,
    /// The type's new name, when the next version renamed it.
    pub renamed_to: Option<&'static str>,
    /// The conversion; an error says why the payload is not what that
    /// version was.
    pub upcast: fn(Value) -> Result<Value, String>,
}

impl fmt::Debug for Upcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upcaster")
            .field("event_type", &self.event_type)
            .field("from_version", &self.from_version)
            .field("renamed_to", &self.renamed_to)
            .finish_non_exhaustive()
    }
}

/// The most upcasters one read goes through (a guard against a chain
/// that loops).
const MAX_UPCASTS: usize = 64;

/// Runs a stored `(event_type, schema_version, payload)` through the
/// upcasters that apply, in order, and returns the type, version and
/// payload the current code reads (borrowed when nothing applied).
pub fn upcast<'a>(
    upcasters: &[Upcaster],
    event_type: &'a str,
    schema_version: u32,
    payload: &'a Value,
) -> Result<(std::borrow::Cow<'a, str>, u32, std::borrow::Cow<'a, Value>), EventDecodeError> {
    use std::borrow::Cow;
    let mut current: (Cow<'a, str>, u32, Cow<'a, Value>) = (
        Cow::Borrowed(event_type),
        schema_version,
        Cow::Borrowed(payload),
    );
    for _ in 0..MAX_UPCASTS {
        let Some(step) = upcasters
            .iter()
            .find(|u| u.event_type == current.0 && u.from_version == current.1)
        else {
            return Ok(current);
        };
        let payload =
            (step.upcast)(current.2.into_owned()).map_err(|reason| EventDecodeError::Upcast {
                event_type: step.event_type.to_owned(),
                from_version: step.from_version,
                reason,
            })?;
        current = (
            Cow::Borrowed(step.renamed_to.unwrap_or(step.event_type)),
            step.from_version + 1,
            Cow::Owned(payload),
        );
    }
    Err(EventDecodeError::Upcast {
        event_type: event_type.to_owned(),
        from_version: schema_version,
        reason: "the upcasters form a loop".to_owned(),
    })
}

/// A typed domain event: an enum whose variants are the event types.
///
/// The payload stored is the variant's body; the variant's name is the
/// `event_type`. Implement it with [`impl_domain_event!`](crate::impl_domain_event)
/// for a serde enum (with its [`Upcaster`]s for older schema versions), or
/// by hand.
pub trait DomainEvent: fmt::Debug + Clone + Send + Sync + Sized + 'static {
    /// The stable type name of this event.
    fn event_type(&self) -> &'static str;

    /// The schema version written for this event type.
    fn schema_version(&self) -> u32 {
        1
    }

    /// The payload to store.
    fn encode(&self) -> Result<Value, EventEncodeError>;

    /// Rebuilds the event from a stored type, schema version and payload.
    fn decode(
        event_type: &str,
        schema_version: u32,
        payload: &Value,
    ) -> Result<Self, EventDecodeError>;
}

/// Implements [`DomainEvent`] for an externally tagged serde enum whose
/// variant names are the event types, all at one schema version, with an
/// optional list of [`Upcaster`]s (`upcasters = [...]`) applied on every
/// read of an older version.
#[macro_export]
macro_rules! impl_domain_event {
    ($ty:ty, version = $version:expr, types = [$($variant:ident),+ $(,)?]) => {
        $crate::impl_domain_event!($ty, version = $version, types = [$($variant),+], upcasters = []);
    };
    ($ty:ty, version = $version:expr, types = [$($variant:ident),+ $(,)?], upcasters = $upcasters:expr) => {
        impl $crate::DomainEvent for $ty {
            fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant { .. } => stringify!($variant),)+
                }
            }

            fn schema_version(&self) -> u32 {
                $version
            }

            fn encode(&self) -> ::std::result::Result<::serde_json::Value, $crate::EventEncodeError> {
                $crate::encode_variant(self)
            }

            fn decode(
                event_type: &str,
                schema_version: u32,
                payload: &::serde_json::Value,
            ) -> ::std::result::Result<Self, $crate::EventDecodeError> {
                const KNOWN: &[&str] = &[$(stringify!($variant)),+];
                const UPCASTERS: &[$crate::Upcaster] = &$upcasters;
                let (event_type, schema_version, payload) =
                    $crate::upcast(UPCASTERS, event_type, schema_version, payload)?;
                $crate::decode_variant(KNOWN, &event_type, schema_version, $version, &payload)
            }
        }
    };
}

/// Encodes an externally tagged enum value as its variant's body.
pub fn encode_variant<T: Serialize>(value: &T) -> Result<Value, EventEncodeError> {
    match serde_json::to_value(value).map_err(EventEncodeError)? {
        Value::Object(map) if map.len() == 1 => {
            Ok(map.into_iter().next().map_or(Value::Null, |(_, body)| body))
        }
        // A unit variant serializes as its name alone: it has no body.
        Value::String(_) => Ok(Value::Null),
        _ => Err(EventEncodeError(serde::ser::Error::custom(
            "not an externally tagged enum",
        ))),
    }
}

/// Decodes an externally tagged enum from a variant name and its body,
/// without copying the body.
pub fn decode_variant<T: DeserializeOwned>(
    known: &[&str],
    event_type: &str,
    schema_version: u32,
    supported: u32,
    payload: &Value,
) -> Result<T, EventDecodeError> {
    if !known.contains(&event_type) {
        return Err(EventDecodeError::UnknownType {
            event_type: event_type.to_owned(),
        });
    }
    if schema_version > supported {
        return Err(EventDecodeError::UnsupportedVersion {
            event_type: event_type.to_owned(),
            found: schema_version,
            supported,
        });
    }
    T::deserialize(VariantDeserializer {
        tag: event_type,
        body: payload,
    })
    .map_err(|source| EventDecodeError::Malformed {
        event_type: event_type.to_owned(),
        source,
    })
}

/// A deserializer that presents `(tag, body)` as an externally tagged enum.
struct VariantDeserializer<'a> {
    tag: &'a str,
    body: &'a Value,
}

impl<'de> de::Deserializer<'de> for VariantDeserializer<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(self)
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

impl<'de> de::EnumAccess<'de> for VariantDeserializer<'de> {
    type Error = serde_json::Error;
    type Variant = BodyAccess<'de>;

    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Self::Error> {
        let tag = de::value::BorrowedStrDeserializer::<'de, serde_json::Error>::new(self.tag);
        Ok((seed.deserialize(tag)?, BodyAccess(self.body)))
    }
}

/// How the body of a variant is read.
struct BodyAccess<'a>(&'a Value);

impl<'de> de::VariantAccess<'de> for BodyAccess<'de> {
    type Error = serde_json::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        match self.0 {
            Value::Null => Ok(()),
            Value::Object(map) if map.is_empty() => Ok(()),
            _ => Err(de::Error::invalid_type(
                de::Unexpected::Other("event body"),
                &"no body",
            )),
        }
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: de::Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_tuple(self.0, len, visitor)
    }

    fn struct_variant<V: de::Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_struct(self.0, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Sample {
        Created { name: String, n: u32 },
        Renamed(String),
        Touched,
    }

    impl_domain_event!(Sample, version = 2, types = [Created, Renamed, Touched]);

    #[test]
    fn variants_round_trip_through_type_and_body() {
        for event in [
            Sample::Created {
                name: "a".into(),
                n: 3,
            },
            Sample::Renamed("b".into()),
            Sample::Touched,
        ] {
            let body = event.encode().unwrap();
            let back = Sample::decode(event.event_type(), 2, &body).unwrap();
            assert_eq!(back, event);
        }
        let body = Sample::Created {
            name: "x".into(),
            n: 1,
        }
        .encode()
        .unwrap();
        assert_eq!(body, serde_json::json!({"name": "x", "n": 1}));
    }

    #[test]
    fn unknown_types_newer_versions_and_bad_bodies_are_typed_errors() {
        let body = serde_json::json!({"name": "x", "n": 1});
        assert!(matches!(
            Sample::decode("Deleted", 1, &body),
            Err(EventDecodeError::UnknownType { .. })
        ));
        assert!(matches!(
            Sample::decode("Created", 3, &body),
            Err(EventDecodeError::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            })
        ));
        let bad = serde_json::json!({"name": 5});
        assert!(matches!(
            Sample::decode("Created", 1, &bad),
            Err(EventDecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn idempotency_keys_are_validated() {
        assert!(IdempotencyKey::new("order-17").is_ok());
        assert!(IdempotencyKey::new("").is_err());
        assert!(IdempotencyKey::new("a\nb").is_err());
        assert!(IdempotencyKey::new("x".repeat(201)).is_err());
        assert!(serde_json::from_str::<IdempotencyKey>("\"\"").is_err());
    }
}
