//! `examples/nats_auth.rs` (compiled here as a module) writes files that a
//! real `nats-server -c` starts from, and whose `user.creds` it admits
//! with the example's policy enforced.
//!
//! FAILS (never skips) when `nats-server` is missing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

mod nats_common;

#[path = "../../examples/nats_auth.rs"]
#[allow(dead_code, reason = "the example's main is not called here")]
mod example;

use std::time::Duration;

use futures::StreamExt as _;
use nats_common::*;

#[tokio::test]
async fn the_example_output_runs_a_nats_server_that_admits_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let written = example::write_files(&dir.path().join("out"), port)
        .await
        .unwrap();
    for file in [
        &written.operator_jwt,
        &written.server_config,
        &written.user_creds,
    ] {
        assert!(file.exists(), "{} missing", file.display());
    }
    let config = std::fs::read_to_string(&written.server_config).unwrap();
    assert!(config.contains("resolver: MEMORY"), "{config}");
    assert!(
        config.contains(&format!("listen: 127.0.0.1:{port}")),
        "{config}"
    );

    let server = NatsServer::start_file(&written.server_config, port);
    let mut c = connect_file(&server.url(), &written.user_creds)
        .await
        .unwrap();
    let mut orders = c.client.subscribe("orders.>").await.unwrap();
    c.client.flush().await.unwrap();
    c.client
        .publish("orders.created", "order 1".into())
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), orders.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.subject.as_str(), "orders.created");
    c.client
        .publish("orders.delete", "order 1".into())
        .await
        .unwrap();
    c.client.flush().await.unwrap();
    expect_server_error(&mut c, "permissions violation for publish").await;
}
