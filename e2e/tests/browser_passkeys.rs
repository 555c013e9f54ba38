//! A real browser registers a passkey and logs in with it against the
//! `axum_service` example: Debian's Chromium, headless, driven by
//! `playwright-core` (`e2e/browser/passkeys.mjs`) with the DevTools
//! virtual authenticator. The service's relying party is `localhost` and
//! its origin the page's (`http://localhost:<port>`, a secure context).
//!
//! Needs `chromium`, Node.js and `e2e/browser/node_modules`
//! (`scripts/services.sh` installs them): it fails, never skips, without
//! them. In memory by default; with the `postgres` feature on PostgreSQL
//! (`DATABASE_URL`), in a schema of its own.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, in its helpers too"
)]

#[path = "../../examples/axum_service.rs"]
#[allow(dead_code, reason = "the example's main is not run here")]
mod example;

use std::collections::HashMap;
use std::net::SocketAddr;

use secrecy::ExposeSecret;

use security::SecurityServices;
use security::axum::TrustedProxies;
use security::setup::Settings;

fn settings(origin: &str) -> Settings {
    let mut vars: HashMap<&str, String> = HashMap::new();
    vars.insert("WEBAUTHN_RP_ID", "localhost".to_owned());
    vars.insert("WEBAUTHN_RP_ORIGIN", origin.to_owned());
    if cfg!(feature = "postgres") {
        let url = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL names the PostgreSQL server of the tests");
        let master = security::crypto::MasterKey::generate().expect("a master key");
        vars.insert("DATABASE_URL", url);
        vars.insert(
            "DATABASE_SCHEMA",
            format!("e2e_{}", uuid::Uuid::now_v7().simple()),
        );
        vars.insert("DATABASE_POOL_SIZE", "4".to_owned());
        vars.insert("DATABASE_MAX_OVERFLOW", "2".to_owned());
        vars.insert(
            "ENCRYPTION_KEY",
            master.to_base64().expose_secret().to_owned(),
        );
    }
    Settings::from_lookup(|name| vars.get(name).cloned()).expect("valid settings")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_registers_a_passkey_and_logs_in_with_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let port = listener.local_addr().expect("an address").port();
    let origin = format!("http://localhost:{port}");
    let services = SecurityServices::start(settings(&origin))
        .await
        .expect("the setup starts");
    let tenants = example::seed(&services).await.expect("the demo tenants");
    let password = tenants[0]
        .users
        .iter()
        .find(|u| u.username == "maria")
        .and_then(|u| u.password.as_ref())
        .expect("created now")
        .expose_secret()
        .to_owned();
    let router = example::app(&services, &tenants, TrustedProxies::none());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let browser_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/browser");
    let output = tokio::process::Command::new("node")
        .arg("passkeys.mjs")
        .arg(&origin)
        .arg("acme")
        .arg("maria")
        .env("PASSKEY_TEST_PASSWORD", &password)
        .current_dir(browser_dir)
        .output()
        .await
        .expect("node runs (Node.js is installed by scripts/services.sh)");
    server.abort();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser run failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("\"status\":\"authenticated\""), "{stdout}");
}
