//! Integration tests of security-crypto (one binary, one module per area).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: failing loudly is the point"
)]

mod fernet_vectors;
mod keystores;
mod properties;
mod redaction;
mod service;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use security_core::{ManualClock, SequentialIds};

/// A manual clock at a fixed instant.
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
    ))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut text, b| {
        use std::fmt::Write as _;
        let _ = write!(text, "{b:02x}");
        text
    })
}

/// Deterministic ids.
pub fn ids() -> Arc<SequentialIds> {
    Arc::new(SequentialIds::new())
}
