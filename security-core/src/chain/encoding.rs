//! The canonical encoding of a stored event and the two SHA-256 steps that
//! chain it to its tenant's previous event.
//!
//! The byte layout is written down in `docs/AUDIT.md`; a known-answer test
//! below checks it against a digest computed independently from that text.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::event::StoredEvent;
use crate::ids::{EventId, TenantId};

/// The tag that starts every content encoding (followed by one zero byte).
pub const CONTENT_TAG: &[u8] = b"security-chain-v1";

/// A SHA-256 digest in the chain: an event's hash or its predecessor's.
///
/// Written as 64 lowercase hex digits in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainHash([u8; 32]);

impl ChainHash {
    /// The predecessor of a tenant's first event: 32 zero bytes.
    pub const GENESIS: Self = Self([0; 32]);

    /// A hash from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A hash from a slice, if it is 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.as_bytes())
            .ok()?;
        Self::from_slice(&bytes)
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("a chain hash is 64 hex digits"))
    }
}

/// The fields of an event that its content digest covers, borrowed.
///
/// `payload` and `metadata` are the JSON texts exactly as the store keeps
/// them (sealed fields as ciphertext), not a re-serialization.
#[derive(Debug, Clone, Copy)]
pub struct ChainContent<'a> {
    /// The event's id.
    pub event_id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The stream's aggregate type.
    pub aggregate_type: &'a str,
    /// The stream's aggregate id.
    pub aggregate_id: Uuid,
    /// The version in its stream.
    pub version: u64,
    /// The type name.
    pub event_type: &'a str,
    /// The schema version.
    pub schema_version: u32,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The payload's JSON text as stored.
    pub payload: &'a str,
    /// The metadata's JSON text as stored.
    pub metadata: &'a str,
}

impl ChainContent<'_> {
    /// SHA-256 of the canonical encoding (see `docs/AUDIT.md`):
    ///
    /// ```text
    /// "security-chain-v1" 0x00
    /// event_id (16) tenant_id (16)
    /// u64be(len) aggregate_type   aggregate_id (16)   u64be(version)
    /// u64be(len) event_type       u64be(schema_version)
    /// i64be(unix seconds) u32be(nanoseconds)
    /// u64be(len) payload          u64be(len) metadata
    /// ```
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(CONTENT_TAG);
        hasher.update([0]);
        hasher.update(self.event_id.as_bytes());
        hasher.update(self.tenant_id.as_bytes());
        text(&mut hasher, self.aggregate_type);
        hasher.update(self.aggregate_id.as_bytes());
        hasher.update(self.version.to_be_bytes());
        text(&mut hasher, self.event_type);
        hasher.update(u64::from(self.schema_version).to_be_bytes());
        hasher.update(self.occurred_at.timestamp().to_be_bytes());
        hasher.update(self.occurred_at.timestamp_subsec_nanos().to_be_bytes());
        text(&mut hasher, self.payload);
        text(&mut hasher, self.metadata);
        hasher.finalize().into()
    }
}

fn text(hasher: &mut Sha256, value: &str) {
    hasher.update((value.len() as u64).to_be_bytes());
    hasher.update(value.as_bytes());
}

/// An event's chain hash: `SHA-256(prev_hash ‖ u64be(global_position) ‖
/// content_digest)`.
pub fn link(prev_hash: &ChainHash, global_position: u64, content_digest: &[u8; 32]) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.0);
    hasher.update(global_position.to_be_bytes());
    hasher.update(content_digest);
    ChainHash(hasher.finalize().into())
}

/// The JSON texts a store that keeps decoded values hashes: compact
/// `serde_json` output, the same text the PostgreSQL store writes.
pub fn stored_json(event: &StoredEvent) -> Result<(String, String), serde_json::Error> {
    Ok((
        serde_json::to_string(&*event.payload)?,
        serde_json::to_string(&*event.metadata)?,
    ))
}

/// One event as its tenant's chain holds it: every hashed field as stored,
/// and the two hashes. This is also one line of an audit export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRecord {
    /// Store-wide position.
    pub global_position: u64,
    /// The event's id.
    pub event_id: EventId,
    /// The tenant whose chain this is.
    pub tenant_id: TenantId,
    /// The stream's aggregate type.
    pub aggregate_type: Arc<str>,
    /// The stream's aggregate id.
    pub aggregate_id: Uuid,
    /// The version in its stream.
    pub version: u64,
    /// The type name.
    pub event_type: Arc<str>,
    /// The schema version.
    pub schema_version: u32,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The payload's JSON text as stored (sealed fields as ciphertext).
    pub payload: Arc<str>,
    /// The metadata's JSON text as stored.
    pub metadata: Arc<str>,
    /// The hash of the tenant's previous event ([`ChainHash::GENESIS`] for
    /// the first).
    pub prev_hash: ChainHash,
    /// This event's hash.
    pub hash: ChainHash,
}

impl ChainRecord {
    /// The fields the content digest covers.
    pub fn content(&self) -> ChainContent<'_> {
        ChainContent {
            event_id: self.event_id.as_uuid(),
            tenant_id: self.tenant_id.as_uuid(),
            aggregate_type: &self.aggregate_type,
            aggregate_id: self.aggregate_id,
            version: self.version,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            occurred_at: self.occurred_at,
            payload: &self.payload,
            metadata: &self.metadata,
        }
    }

    /// The hash this record's fields give with its stored `prev_hash`.
    pub fn computed_hash(&self) -> ChainHash {
        link(
            &self.prev_hash,
            self.global_position,
            &self.content().digest(),
        )
    }

    /// Whether the stored hash matches the fields and the stored `prev_hash`.
    pub fn is_consistent(&self) -> bool {
        self.computed_hash() == self.hash
    }

    /// The record of a stored event, chained after `prev_hash`, for stores
    /// that keep decoded values (see [`stored_json`]).
    pub fn of_event(event: &StoredEvent, prev_hash: ChainHash) -> Result<Self, serde_json::Error> {
        let (payload, metadata) = stored_json(event)?;
        let mut record = Self {
            global_position: event.global_position,
            event_id: event.event_id,
            tenant_id: event.tenant_id(),
            aggregate_type: Arc::clone(&event.stream_id.aggregate_type),
            aggregate_id: event.stream_id.aggregate_id,
            version: event.version,
            event_type: Arc::clone(&event.event_type),
            schema_version: event.schema_version,
            occurred_at: event.occurred_at,
            payload: Arc::from(payload),
            metadata: Arc::from(metadata),
            prev_hash,
            hash: ChainHash::GENESIS,
        };
        record.hash = record.computed_hash();
        Ok(record)
    }

    /// The head this record makes when it is its tenant's last event.
    pub fn as_head(&self) -> ChainHead {
        ChainHead {
            position: self.global_position,
            hash: self.hash,
        }
    }
}

/// The last event of a tenant's chain, as the store records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChainHead {
    /// Its global position.
    pub position: u64,
    /// Its hash.
    pub hash: ChainHash,
}

/// A read of one tenant's chain, in global-position order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainQuery {
    /// Records after this position (0: from the start).
    pub after: u64,
    /// Up to and including this position.
    pub until: u64,
    /// At most this many records.
    pub limit: usize,
}

impl ChainQuery {
    /// Up to `limit` records after `after`.
    pub fn after(after: u64, limit: usize) -> Self {
        Self {
            after,
            until: u64::MAX,
            limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn vector_record() -> ChainRecord {
        let mut record = ChainRecord {
            global_position: 7,
            event_id: EventId::from_uuid(Uuid::from_u128(
                0x0190_c7a4_6f7e_7d55_a000_0000_0000_0001,
            )),
            tenant_id: TenantId::from_uuid(Uuid::from_u128(
                0x0190_c7a4_6f7e_7d55_a000_0000_0000_00aa,
            )),
            aggregate_type: Arc::from("user"),
            aggregate_id: Uuid::from_u128(0x0190_c7a4_6f7e_7d55_a000_0000_0000_0002),
            version: 3,
            event_type: Arc::from("UserLocked"),
            schema_version: 1,
            occurred_at: Utc
                .timestamp_opt(1_767_225_600, 123_456_000)
                .single()
                .unwrap_or_default(),
            payload: Arc::from(
                r#"{"reason":"too many failures","secret":{"$sealed":{"ct":"gAAAA","kid":"k1"}}}"#,
            ),
            metadata: Arc::from(r#"{"actor":"system"}"#),
            prev_hash: ChainHash::from_hex(
                "1111111111111111111111111111111111111111111111111111111111111111",
            )
            .unwrap_or(ChainHash::GENESIS),
            hash: ChainHash::GENESIS,
        };
        record.hash = record.computed_hash();
        record
    }

    /// The digests below were computed from the byte layout in
    /// `docs/AUDIT.md` by an independent program (Python's `hashlib`),
    /// not by this code.
    #[test]
    fn known_answer_vector() {
        let record = vector_record();
        assert_eq!(
            data_encoding::HEXLOWER.encode(&record.content().digest()),
            KAT_CONTENT
        );
        assert_eq!(record.hash.to_hex(), KAT_HASH);
    }

    const KAT_CONTENT: &str = "3dc342160a956dd0b8e88cd031654d27ecc609183aa33a430877a5e42d71e156";
    const KAT_HASH: &str = "5b2541d8b7dcbd08653cb608ed869bd3a872f127e5c3be5faef5c17338bce541";

    #[test]
    fn every_field_changes_the_hash() {
        let base = vector_record();
        let mut variants = Vec::new();
        let mut r = base.clone();
        r.global_position += 1;
        variants.push(r);
        let mut r = base.clone();
        r.version += 1;
        variants.push(r);
        let mut r = base.clone();
        r.schema_version += 1;
        variants.push(r);
        let mut r = base.clone();
        r.occurred_at += chrono::Duration::microseconds(1);
        variants.push(r);
        let mut r = base.clone();
        r.payload = Arc::from(r#"{"reason":"too many failures!"}"#);
        variants.push(r);
        let mut r = base.clone();
        r.metadata = Arc::from("{}");
        variants.push(r);
        let mut r = base.clone();
        r.event_type = Arc::from("UserUnlocked");
        variants.push(r);
        let mut r = base.clone();
        r.aggregate_type = Arc::from("users");
        variants.push(r);
        let mut r = base.clone();
        r.prev_hash = ChainHash::GENESIS;
        variants.push(r);
        let mut r = base.clone();
        r.tenant_id = TenantId::SYSTEM;
        variants.push(r);
        for variant in variants {
            assert_ne!(variant.computed_hash(), base.hash, "{variant:?}");
        }
        assert!(base.is_consistent());
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        // Moving a character from one text field to the next changes the hash.
        let base = vector_record();
        let mut moved = base.clone();
        moved.aggregate_type = Arc::from("use");
        moved.event_type = Arc::from("rUserLocked");
        assert_ne!(moved.computed_hash(), base.hash);
    }

    #[test]
    fn hashes_round_trip_as_hex() {
        let hash = vector_record().hash;
        let json = serde_json::to_string(&hash).unwrap_or_default();
        assert_eq!(json.len(), 66);
        assert_eq!(serde_json::from_str::<ChainHash>(&json).ok(), Some(hash));
        assert!(serde_json::from_str::<ChainHash>("\"abc\"").is_err());
        assert!(ChainHash::from_hex(&"g".repeat(64)).is_none());
    }
}
