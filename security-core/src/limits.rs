//! The one set of size and shape limits that the write path (commands,
//! appends) and the read path (decoding stored rows) share, so that
//! nothing is ever stored that a reader cannot read back.
//!
//! Commands check their fields in the aggregate's `handle`
//! ([`DomainError::LimitExceeded`](crate::DomainError::LimitExceeded)),
//! before anything is hashed, sealed or appended; the store checks every
//! append again ([`StoreError::LimitExceeded`](crate::StoreError::LimitExceeded))
//! before it writes anything, and reads with the same limits.
//!
//! The field limits compose: the largest command every field allows
//! makes events well inside [`MAX_PAYLOAD_BYTES`] and [`MAX_JSON_DEPTH`],
//! and the published form of an event (its payload one level down in an
//! envelope) stays far inside serde_json's reading limit of 128 levels.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use serde::Serialize;
use serde_json::Value;

use crate::event::NewEvent;
use crate::snapshot::Snapshot;
use crate::store::AppendRequest;

/// The largest event payload, as JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// The deepest nesting of arrays and objects in an event payload or a
/// snapshot state (a scalar is level 0, `{"a": 1}` level 1).
pub const MAX_JSON_DEPTH: usize = 32;
/// The most events in one append.
pub const MAX_EVENTS_PER_APPEND: usize = 10_000;
/// The longest event type or aggregate type, in bytes.
pub const MAX_TYPE_NAME_BYTES: usize = 128;
/// The longest actor or trace id in an event's metadata, in bytes.
pub const MAX_ENVELOPE_TEXT_BYTES: usize = 256;
/// The most entries in a free-form metadata map (users, accounts).
pub const MAX_METADATA_ENTRIES: usize = 64;
/// The longest metadata key, in characters.
pub const MAX_METADATA_KEY_CHARS: usize = 128;
/// The largest metadata map, as JSON text.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// The deepest nesting inside one metadata value.
pub const MAX_METADATA_DEPTH: usize = 16;
/// The longest name (usernames, account, operator, policy and role
/// names, reasons), in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4096;
/// The largest set of permissions (or of account limits), as JSON text.
pub const MAX_PERMISSIONS_BYTES: usize = 64 * 1024;
/// The largest sealed value or credential text (ciphertext, key, hash),
/// in bytes.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;
/// The largest snapshot state, as JSON text.
pub const MAX_SNAPSHOT_BYTES: usize = 16 * 1024 * 1024;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// Bytes (of JSON text, or of UTF-8 text).
    Bytes(usize),
    /// Characters of text.
    Chars(usize),
    /// Levels of nesting of arrays and objects.
    Depth(usize),
    /// Entries of a map or list.
    Entries(usize),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(n) => write!(f, "{n} bytes"),
            Self::Chars(n) => write!(f, "{n} characters"),
            Self::Depth(n) => write!(f, "{n} levels of nesting"),
            Self::Entries(n) => write!(f, "{n} entries"),
        }
    }
}

/// An input is larger or deeper than the store could read back. Nothing
/// was stored. The caller's fault: shrink the input; retrying unchanged
/// fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} exceeds its limit of {limit}")]
pub struct LimitExceeded {
    /// The field (or part of an event) over its limit.
    pub field: &'static str,
    /// The limit.
    pub limit: Limit,
}

impl LimitExceeded {
    /// `field` is over `limit`.
    pub fn new(field: &'static str, limit: Limit) -> Self {
        Self { field, limit }
    }
}

/// Checks a text's length in characters (counting stops past the limit).
pub fn check_chars(field: &'static str, text: &str, max: usize) -> Result<(), LimitExceeded> {
    if text.len() > max && text.chars().nth(max).is_some() {
        return Err(LimitExceeded::new(field, Limit::Chars(max)));
    }
    Ok(())
}

/// Checks a text's length in bytes.
pub fn check_bytes(field: &'static str, text: &str, max: usize) -> Result<(), LimitExceeded> {
    if text.len() > max {
        return Err(LimitExceeded::new(field, Limit::Bytes(max)));
    }
    Ok(())
}

/// The nesting depth of a JSON value, counted without recursion (so a
/// value of any depth is measured safely); counting stops past `max`.
pub fn json_depth(value: &Value, max: usize) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        let level = depth + 1;
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|child| (child, level))),
            Value::Object(map) => stack.extend(map.values().map(|child| (child, level))),
            _ => continue,
        }
        deepest = deepest.max(level);
        if deepest > max {
            return deepest;
        }
    }
    deepest
}

/// The nesting depth of JSON text, from its brackets alone (outside
/// strings), so that text too deep to parse is refused before parsing;
/// counting stops past `max`. Assumes nothing about the text's validity.
pub fn json_text_depth(text: &str, max: usize) -> usize {
    let (mut depth, mut deepest) = (0_usize, 0_usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > max {
                    return deepest;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Counts the bytes a writer is given, failing once there are too many.
struct Counter {
    written: usize,
    max: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        if self.written > self.max {
            return Err(io::Error::other("limit exceeded"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The length of a value's JSON text, if at most `max` (serialising stops
/// once past it; a value that cannot be serialised counts as too long).
pub fn json_len(value: &impl Serialize, max: usize) -> Option<usize> {
    let mut counter = Counter { written: 0, max };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.written)
}

/// Checks a value's JSON size and nesting.
pub fn check_json(
    field: &'static str,
    value: &Value,
    max_bytes: usize,
    max_depth: usize,
) -> Result<(), LimitExceeded> {
    if json_depth(value, max_depth) > max_depth {
        return Err(LimitExceeded::new(field, Limit::Depth(max_depth)));
    }
    if json_len(value, max_bytes).is_none() {
        return Err(LimitExceeded::new(field, Limit::Bytes(max_bytes)));
    }
    Ok(())
}

/// Checks a serialisable field's JSON size.
pub fn check_json_size(
    field: &'static str,
    value: &impl Serialize,
    max_bytes: usize,
) -> Result<(), LimitExceeded> {
    match json_len(value, max_bytes) {
        Some(_) => Ok(()),
        None => Err(LimitExceeded::new(field, Limit::Bytes(max_bytes))),
    }
}

/// Checks a free-form metadata map: entries, key lengths, nesting, size.
pub fn check_metadata(
    field: &'static str,
    metadata: &BTreeMap<String, Value>,
) -> Result<(), LimitExceeded> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(LimitExceeded::new(
            field,
            Limit::Entries(MAX_METADATA_ENTRIES),
        ));
    }
    for (key, value) in metadata {
        check_chars(field, key, MAX_METADATA_KEY_CHARS)?;
        if json_depth(value, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH {
            return Err(LimitExceeded::new(field, Limit::Depth(MAX_METADATA_DEPTH)));
        }
    }
    check_json_size(field, metadata, MAX_METADATA_BYTES)
}

/// Checks a description: at most [`MAX_DESCRIPTION_CHARS`] characters.
pub fn check_description(field: &'static str, text: &str) -> Result<(), LimitExceeded> {
    check_chars(field, text, MAX_DESCRIPTION_CHARS)
}

/// Checks a set of permissions or limits: at most
/// [`MAX_PERMISSIONS_BYTES`] as JSON.
pub fn check_permissions(field: &'static str, value: &impl Serialize) -> Result<(), LimitExceeded> {
    check_json_size(field, value, MAX_PERMISSIONS_BYTES)
}

/// Checks a sealed value, a key or a credential: at most
/// [`MAX_SECRET_BYTES`] as JSON.
pub fn check_secret(field: &'static str, value: &impl Serialize) -> Result<(), LimitExceeded> {
    check_json_size(field, value, MAX_SECRET_BYTES)
}

/// Checks an event to append (the store's check of every append).
pub fn check_new_event(event: &NewEvent) -> Result<(), LimitExceeded> {
    check_bytes("event type", &event.event_type, MAX_TYPE_NAME_BYTES)?;
    check_json("payload", &event.payload, MAX_PAYLOAD_BYTES, MAX_JSON_DEPTH)?;
    if let Some(actor) = &event.metadata.actor {
        check_bytes("actor", actor.as_str(), MAX_ENVELOPE_TEXT_BYTES)?;
    }
    if let Some(trace_id) = &event.metadata.trace_id {
        check_bytes("trace id", trace_id, MAX_ENVELOPE_TEXT_BYTES)?;
    }
    Ok(())
}

/// Checks a snapshot's state: within [`MAX_SNAPSHOT_BYTES`] and
/// [`MAX_JSON_DEPTH`].
pub fn check_snapshot(snapshot: &Snapshot) -> Result<(), LimitExceeded> {
    check_json(
        "snapshot state",
        &snapshot.state,
        MAX_SNAPSHOT_BYTES,
        MAX_JSON_DEPTH,
    )
}

/// Checks an append request as every store does before writing: the
/// number of events, the aggregate type, and each event.
pub fn check_append(request: &AppendRequest) -> Result<(), LimitExceeded> {
    if request.events.len() > MAX_EVENTS_PER_APPEND {
        return Err(LimitExceeded::new(
            "events",
            Limit::Entries(MAX_EVENTS_PER_APPEND),
        ));
    }
    check_bytes(
        "aggregate type",
        &request.stream_id.aggregate_type,
        MAX_TYPE_NAME_BYTES,
    )?;
    for event in &request.events {
        check_new_event(event)?;
    }
    Ok(())
}

/// Parses stored JSON text under the read path's limits: text larger or
/// deeper than any append may write is refused before it is parsed.
pub fn parse_stored_json(
    field: &'static str,
    text: &str,
    max_bytes: usize,
) -> Result<Value, StoredJsonError> {
    if text.len() > max_bytes {
        return Err(StoredJsonError::Limit(LimitExceeded::new(
            field,
            Limit::Bytes(max_bytes),
        )));
    }
    if json_text_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH {
        return Err(StoredJsonError::Limit(LimitExceeded::new(
            field,
            Limit::Depth(MAX_JSON_DEPTH),
        )));
    }
    serde_json::from_str(text).map_err(StoredJsonError::Json)
}

/// Stored JSON text could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoredJsonError {
    /// It is larger or deeper than the store's limits.
    #[error(transparent)]
    Limit(LimitExceeded),
    /// It is not JSON.
    #[error("stored text is not valid JSON")]
    Json(#[source] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        let mut value = json!(1);
        for i in 0..levels {
            value = if i % 2 == 0 {
                json!([value])
            } else {
                json!({"k": value})
            };
        }
        value
    }

    #[test]
    fn depth_is_measured_on_values_and_on_text_alike() {
        for levels in [0, 1, 2, 31, 32, 33, 200] {
            let value = nested(levels);
            let text = value.to_string();
            assert_eq!(json_depth(&value, 1_000), levels);
            assert_eq!(json_text_depth(&text, 1_000), levels);
        }
        assert_eq!(
            json_depth(&nested(200), 32),
            33,
            "counting stops past the limit"
        );
        assert_eq!(
            json_text_depth(r#"{"a": "[[[[\"]]"}"#, 10),
            1,
            "brackets in strings do not count"
        );
        assert_eq!(json_text_depth(&"[".repeat(100_000), 32), 33);
    }

    #[test]
    fn sizes_are_counted_without_serialising_past_the_limit() {
        let value = json!({"text": "x".repeat(100)});
        let exact = value.to_string().len();
        assert_eq!(json_len(&value, exact), Some(exact));
        assert_eq!(json_len(&value, exact - 1), None);
        assert!(check_json("payload", &value, exact, 1).is_ok());
        let err = check_json("payload", &value, exact - 1, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("payload exceeds its limit of {} bytes", exact - 1)
        );
        assert_eq!(
            check_json("payload", &nested(3), 1_000, 2)
                .unwrap_err()
                .limit,
            Limit::Depth(2)
        );
    }

    #[test]
    fn metadata_is_bounded_in_entries_keys_depth_and_size() {
        let ok: BTreeMap<String, Value> = (0..MAX_METADATA_ENTRIES)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        assert!(check_metadata("metadata", &ok).is_ok());
        let mut many = ok.clone();
        many.insert("one-more".into(), json!(0));
        assert_eq!(
            check_metadata("metadata", &many).unwrap_err().limit,
            Limit::Entries(MAX_METADATA_ENTRIES)
        );
        let deep = BTreeMap::from([("k".to_owned(), nested(MAX_METADATA_DEPTH + 1))]);
        assert_eq!(
            check_metadata("metadata", &deep).unwrap_err().limit,
            Limit::Depth(MAX_METADATA_DEPTH)
        );
        let long_key = BTreeMap::from([("é".repeat(MAX_METADATA_KEY_CHARS + 1), json!(1))]);
        assert!(check_metadata("metadata", &long_key).is_err());
        let big = BTreeMap::from([("k".to_owned(), json!("x".repeat(MAX_METADATA_BYTES)))]);
        assert_eq!(
            check_metadata("metadata", &big).unwrap_err().limit,
            Limit::Bytes(MAX_METADATA_BYTES)
        );
    }

    #[test]
    fn stored_text_is_refused_before_parsing_when_too_deep_or_large() {
        let deep = nested(200).to_string();
        assert!(matches!(
            parse_stored_json("payload", &deep, MAX_PAYLOAD_BYTES),
            Err(StoredJsonError::Limit(LimitExceeded {
                limit: Limit::Depth(32),
                ..
            }))
        ));
        assert!(matches!(
            parse_stored_json("payload", "[1, 2]", 3),
            Err(StoredJsonError::Limit(LimitExceeded {
                limit: Limit::Bytes(3),
                ..
            }))
        ));
        assert!(matches!(
            parse_stored_json("payload", "{", 10),
            Err(StoredJsonError::Json(_))
        ));
        assert_eq!(
            parse_stored_json("payload", &nested(32).to_string(), MAX_PAYLOAD_BYTES).unwrap(),
            nested(32)
        );
    }

    #[test]
    fn characters_are_counted_not_bytes() {
        assert!(check_chars("name", &"é".repeat(256), 256).is_ok());
        assert!(check_chars("name", &"é".repeat(257), 256).is_err());
    }
}
