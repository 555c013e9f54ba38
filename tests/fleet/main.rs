//! The fleet suite: every guarantee of the authentication service with
//! three replicas behind a round-robin balancer over one PostgreSQL and one
//! Redis. Each race runs at least 100 times and its counts are asserted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    missing_docs,
    reason = "test code fails by panicking"
)]

mod common;
mod oidc;
mod outage;
mod passkeys;
mod password_change;
mod races;
#[path = "../support/soft_passkey.rs"]
mod soft_passkey;
