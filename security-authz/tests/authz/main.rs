//! Integration tests of security-authz (one binary).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail their test by panicking"
)]

mod common;
mod history;
#[cfg(feature = "tower")]
mod layer;
mod matrix;
mod rbac_model;
mod secure;
mod service;
mod subjects;
mod tenancy;
