//! `.creds` files: the JWT and seed between their markers, the seed checked
//! against the JWT's subject.

#![no_main]

use libfuzzer_sys::fuzz_target;
use security_authn::UserCreds;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = UserCreds::parse(text);
    }
});
