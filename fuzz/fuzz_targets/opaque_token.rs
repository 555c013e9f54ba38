//! Opaque refresh tokens and API keys: the prefix, the length and the
//! base64url body are checked before anything is looked up.

#![no_main]

use libfuzzer_sys::fuzz_target;
use security_authn::fuzzing::{parse_api_key, parse_refresh_token};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_refresh_token(text);
        let _ = parse_api_key(text);
    }
});
