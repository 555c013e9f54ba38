//! Access tokens: `JwtValidator::validate_as` with HS256 and EdDSA keys
//! configured, on any text. It must refuse or accept, never panic.

#![no_main]

use std::sync::{Arc, OnceLock};

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use security_authn::JwtValidator;
use security_core::{AccessClaims, ManualClock};

fn validator() -> &'static JwtValidator {
    static VALIDATOR: OnceLock<JwtValidator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let clock = Arc::new(ManualClock::new(
            Utc.timestamp_opt(1_700_000_000, 0).single().expect("instant"),
        ));
        let validator = JwtValidator::builder(clock).build();
        validator
            .add_hs256_key("hs", &[7_u8; 32])
            .expect("an HS256 key");
        validator
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = validator().validate_as::<AccessClaims>(token);
        let _ = validator().validate_as::<serde_json::Value>(token);
    }
});
