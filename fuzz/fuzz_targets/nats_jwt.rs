//! NATS JWTs: the generic decoder and the operator, account and user ones,
//! on any text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use security_authn::{
    AccountNats, OperatorNats, UserNats, decode_account_jwt, decode_jwt, decode_operator_jwt,
    decode_user_jwt,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = decode_jwt::<OperatorNats>(token);
        let _ = decode_jwt::<AccountNats>(token);
        let _ = decode_jwt::<UserNats>(token);
        let _ = decode_operator_jwt(token);
        let _ = decode_account_jwt(token);
        let _ = decode_user_jwt(token);
    }
});
