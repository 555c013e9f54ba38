//! Two replicas of the `axum_service` example over one PostgreSQL, each
//! on its own port, as a round-robin balancer would use them: a login on
//! one replica works on the other (tokens, sessions list, refresh), and a
//! revocation made on one (logout, refresh-token reuse, an admin lock)
//! reaches the other through the store.
//!
//! Needs PostgreSQL (`DATABASE_URL`); fails, never skips, without it.

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
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use security::SecurityServices;
use security::axum::TrustedProxies;
use security::setup::Settings;

/// How long a change made on one replica may take to show on the other.
const PROPAGATION: Duration = Duration::from_secs(10);

fn settings(vars: &HashMap<&'static str, String>) -> Settings {
    Settings::from_lookup(|name| vars.get(name).cloned()).expect("valid settings")
}

async fn serve(services: &SecurityServices, tenants: &[example::DemoTenant]) -> String {
    let router = example::app(
        services,
        tenants,
        "127.0.0.1".parse::<TrustedProxies>().expect("a network"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    format!("http://{address}")
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    ip: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url).header("x-forwarded-for", ip);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the replica answers");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Repeats a GET until it answers `expected`, for at most [`PROPAGATION`].
async fn eventually(
    client: &reqwest::Client,
    url: &str,
    ip: &str,
    token: &str,
    expected: StatusCode,
) {
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    loop {
        let (status, body) = call(
            client,
            reqwest::Method::GET,
            url.to_owned(),
            ip,
            Some(token),
            None,
        )
        .await;
        if status == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url}: still {status} {body} after {PROPAGATION:?}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_logins_and_revocations() {
    let url = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL names the PostgreSQL server of the tests");
    let master = security::crypto::MasterKey::generate().expect("a master key");
    let mut vars = HashMap::new();
    vars.insert("DATABASE_URL", url);
    vars.insert(
        "DATABASE_SCHEMA",
        format!("e2e_replicas_{}", uuid::Uuid::now_v7().simple()),
    );
    vars.insert("DATABASE_POOL_SIZE", "4".to_owned());
    vars.insert("DATABASE_MAX_OVERFLOW", "2".to_owned());
    vars.insert(
        "ENCRYPTION_KEY",
        master.to_base64().expose_secret().to_owned(),
    );

    // B starts first, on an empty store, and follows what A writes.
    let b = SecurityServices::start(settings(&vars))
        .await
        .expect("replica B starts");
    let a = SecurityServices::start(settings(&vars))
        .await
        .expect("replica A starts");
    let tenants = example::seed(&a).await.expect("the demo tenants");
    let base_a = serve(&a, &tenants).await;
    let base_b = serve(&b, &tenants).await;
    let client = reqwest::Client::new();
    let password = |name: &str| {
        tenants[0]
            .users
            .iter()
            .find(|u| u.username == name)
            .and_then(|u| u.password.as_ref())
            .expect("created now")
            .expose_secret()
            .to_owned()
    };
    let post = reqwest::Method::POST;

    // A login on A; its access token works on B (B looks the tenant's
    // signing key up in the shared key store, and its authorizer learns
    // the roles from the store).
    let (status, login) = call(
        &client,
        post.clone(),
        format!("{base_a}/t/acme/auth/login"),
        "198.51.100.20",
        None,
        Some(json!({ "username": "maria", "password": password("maria") })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let access = login["access_token"].as_str().expect("a token").to_owned();
    let refresh = login["refresh_token"].as_str().expect("a token").to_owned();
    let session = login["session_id"].as_str().expect("a session").to_owned();
    eventually(
        &client,
        &format!("{base_b}/t/acme/loans"),
        "198.51.100.20",
        &access,
        StatusCode::OK,
    )
    .await;

    // B lists the session A opened.
    let (status, sessions) = call(
        &client,
        reqwest::Method::GET,
        format!("{base_b}/t/acme/auth/sessions"),
        "198.51.100.20",
        Some(&access),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{sessions}");
    assert!(
        sessions["sessions"].to_string().contains(&session),
        "{sessions}"
    );

    // B refreshes A's token; replaying the old one on A revokes the
    // family, and B refuses the newest access token.
    let (status, refreshed) = call(
        &client,
        post.clone(),
        format!("{base_b}/t/acme/auth/refresh"),
        "198.51.100.20",
        None,
        Some(json!({ "refresh_token": refresh })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let newer_access = refreshed["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    eventually(
        &client,
        &format!("{base_b}/t/acme/loans"),
        "198.51.100.20",
        &newer_access,
        StatusCode::OK,
    )
    .await;
    let (status, replayed) = call(
        &client,
        post.clone(),
        format!("{base_a}/t/acme/auth/refresh"),
        "198.51.100.20",
        None,
        Some(json!({ "refresh_token": refresh })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{replayed}");
    eventually(
        &client,
        &format!("{base_b}/t/acme/loans"),
        "198.51.100.20",
        &newer_access,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // An admin on A locks an agent; B refuses the agent's token.
    let (status, carl) = call(
        &client,
        post.clone(),
        format!("{base_b}/t/acme/auth/login"),
        "198.51.100.21",
        None,
        Some(json!({ "username": "carl", "password": password("carl") })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{carl}");
    let carl_access = carl["access_token"].as_str().expect("a token").to_owned();
    let carl_id = carl["user_id"].as_str().expect("an id").to_owned();
    eventually(
        &client,
        &format!("{base_b}/t/acme/loans"),
        "198.51.100.21",
        &carl_access,
        StatusCode::OK,
    )
    .await;
    let (status, admin) = call(
        &client,
        post.clone(),
        format!("{base_a}/t/acme/auth/login"),
        "198.51.100.22",
        None,
        Some(json!({ "username": "admin", "password": password("admin") })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{admin}");
    let admin_access = admin["access_token"].as_str().expect("a token").to_owned();
    let (status, locked) = call(
        &client,
        post.clone(),
        format!("{base_a}/t/acme/admin/users/{carl_id}/lock"),
        "198.51.100.22",
        Some(&admin_access),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{locked}");
    eventually(
        &client,
        &format!("{base_b}/t/acme/loans"),
        "198.51.100.21",
        &carl_access,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let (status, refused) = call(
        &client,
        post.clone(),
        format!("{base_b}/t/acme/auth/login"),
        "198.51.100.23",
        None,
        Some(json!({ "username": "carl", "password": password("carl") })),
    )
    .await;
    assert_eq!(status, StatusCode::LOCKED, "{refused}");

    // A logout on B; A refuses the session's access token.
    let (status, second) = call(
        &client,
        post.clone(),
        format!("{base_a}/t/acme/auth/login"),
        "198.51.100.24",
        None,
        Some(json!({ "username": "admin", "password": password("admin") })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second_access = second["access_token"].as_str().expect("a token").to_owned();
    let second_refresh = second["refresh_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let (status, _) = call(
        &client,
        post,
        format!("{base_b}/t/acme/auth/logout"),
        "198.51.100.24",
        None,
        Some(json!({ "refresh_token": second_refresh })),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    eventually(
        &client,
        &format!("{base_a}/t/acme/loans"),
        "198.51.100.24",
        &second_access,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    a.shutdown().await;
    b.shutdown().await;
}
