//! Stored-event decoding: a row's text columns (as a store reads them)
//! become a `StoredEvent` under the read path's limits, then a typed event
//! of each aggregate. Nothing may panic, however deep or malformed.
//!
//! Input: the schema version (4 bytes), then the event type, the payload
//! and the metadata texts separated by `\n\x00\n`.

#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use security_authn::SessionEvent;
use security_core::{
    AccountEvent, EventId, OperatorEvent, PolicyEvent, RawEvent, RoleEvent, StoredEvent, StreamId,
    TenantId, UserEvent, limits,
};

fuzz_target!(|data: &[u8]| {
    let Some((version, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut parts = text.splitn(3, "\n\u{0}\n");
    let (event_type, payload, metadata) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let _ = limits::json_text_depth(payload, limits::MAX_JSON_DEPTH);
    let raw = RawEvent {
        event_id: EventId::from_uuid(uuid::Uuid::nil()),
        version: 1,
        global_position: 1,
        event_type,
        schema_version: u32::from_le_bytes(*version),
        occurred_at: Utc.timestamp_opt(1_700_000_000, 0).single().expect("instant"),
        payload,
        metadata,
    };
    let event = StoredEvent::from_raw(raw, StreamId::new(TenantId::SYSTEM, "fuzz", uuid::Uuid::nil()));
    let _ = event.decode::<UserEvent>();
    let _ = event.decode::<AccountEvent>();
    let _ = event.decode::<OperatorEvent>();
    let _ = event.decode::<PolicyEvent>();
    let _ = event.decode::<RoleEvent>();
    let _ = event.decode::<SessionEvent>();
    let _ = event.to_published();
});
