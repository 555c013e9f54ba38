//! Fernet tokens: decryption with and without a TTL, and of data at rest,
//! on any text.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use security_crypto::FernetKey;

fn key() -> &'static FernetKey {
    static KEY: OnceLock<FernetKey> = OnceLock::new();
    KEY.get_or_init(|| {
        FernetKey::from_base64("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").expect("a key")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let now = Utc.timestamp_opt(1_700_000_000, 0).single().expect("instant");
        let _ = key().decrypt_at(token, now, None);
        let _ = key().decrypt_at(token, now, Some(Duration::from_secs(60)));
        let _ = key().decrypt_stored(token);
    }
});
