//! Integration tests of authentication: one binary, one module
//! per area.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

mod common;
mod identity;
mod jwt_vectors;
mod login;
mod mfa;
#[cfg(feature = "passkeys")]
mod passkeys;
mod secrets;
mod session;
mod sessions;
mod sessions_view;
#[path = "../../../tests/support/soft_passkey.rs"]
mod soft_passkey;
mod throttling;
mod tokens;
mod totp_vectors;
