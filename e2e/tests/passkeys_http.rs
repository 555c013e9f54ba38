//! Passkeys through the `axum_service` example over real HTTP, with a
//! software authenticator behind a WebAuthn client: a signed-in user
//! registers a passkey, lists and renames it, logs in without a password,
//! uses it as the second factor after the password, and removes it (its
//! sessions end). Attacks over HTTP: a replayed assertion, a ceremony of
//! one tenant finished under another's URL, a registration finished by
//! another user.
//!
//! In memory by default; with the `postgres` feature on PostgreSQL
//! (`DATABASE_URL`), in a schema of its own.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test fails by panicking, in its helpers too"
)]

#[path = "../../examples/axum_service.rs"]
#[allow(dead_code, reason = "the example's main is not run here")]
mod example;

#[path = "../../tests/support/soft_passkey.rs"]
mod soft_passkey;

use std::collections::HashMap;
use std::net::SocketAddr;

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use security::SecurityServices;
use security::axum::TrustedProxies;
use security::setup::Settings;

use soft_passkey::SoftKey;

/// The page's origin (what the browser would report) and the RP id.
const ORIGIN: &str = "http://localhost:8080";

/// A client of the service; each request claims another address (the
/// service trusts the loopback proxy that this test is), so the login
/// throttle, tested elsewhere, stays out of the way.
struct Http {
    client: reqwest::Client,
    base: String,
    requests: std::sync::atomic::AtomicU32,
}

struct Reply {
    status: StatusCode,
    body: Value,
    text: String,
}

impl Reply {
    fn text_of(&self, name: &str) -> String {
        self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.text))
            .to_owned()
    }

    fn problem(&self, status: StatusCode, kind: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.body["type"],
            format!("urn:security:problem:{kind}"),
            "{}",
            self.text
        );
    }
}

impl Http {
    fn next_ip(&self) -> String {
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("198.51.{}.{}", 100 + (n >> 8) % 100, n & 255)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-forwarded-for", self.next_ip())
            .header("user-agent", "e2e-passkeys");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// A passwordless login with `key` in `tenant`'s URL space.
    async fn passkey_login(&self, tenant: &str, key: &SoftKey) -> (Reply, Value) {
        let start = self
            .post(
                &format!("/t/{tenant}/auth/passkeys/login/start"),
                None,
                json!({}),
            )
            .await;
        assert_eq!(start.status, StatusCode::OK, "{}", start.text);
        let assertion = key.get(ORIGIN, &start.body["options"]).await;
        let body = json!({
            "passkey_challenge": start.text_of("passkey_challenge"),
            "credential": serde_json::from_str::<Value>(&assertion).unwrap(),
        });
        let finish = self
            .post(
                &format!("/t/{tenant}/auth/passkeys/login/finish"),
                None,
                body.clone(),
            )
            .await;
        (finish, body)
    }
}

fn settings() -> Settings {
    let mut vars: HashMap<&str, String> = HashMap::new();
    vars.insert("WEBAUTHN_RP_ID", "localhost".to_owned());
    vars.insert("WEBAUTHN_RP_ORIGIN", ORIGIN.to_owned());
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
async fn passkeys_over_http() {
    let services = SecurityServices::start(settings())
        .await
        .expect("the setup starts");
    let tenants = example::seed(&services).await.expect("the demo tenants");
    let proxies: TrustedProxies = "127.0.0.1".parse().expect("a network");
    let router = example::app(&services, &tenants, proxies);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let address = listener.local_addr().expect("an address");
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let http = Http {
        client: reqwest::Client::new(),
        base: format!("http://{address}"),
        requests: std::sync::atomic::AtomicU32::new(0),
    };
    let acme = &tenants[0];
    let user = |name: &str| {
        acme.users
            .iter()
            .find(|u| u.username == name)
            .expect("a demo user")
    };
    let password = |name: &str| {
        user(name)
            .password
            .as_ref()
            .expect("created now")
            .expose_secret()
            .to_owned()
    };
    let login = |name: &'static str| {
        let password = password(name);
        let http = &http;
        async move {
            http.post(
                "/t/acme/auth/login",
                None,
                json!({ "username": name, "password": password }),
            )
            .await
        }
    };

    // --- maria registers a passkey ------------------------------------------
    let maria = login("maria").await;
    assert_eq!(maria.body["status"], "authenticated", "{}", maria.text);
    let maria_access = maria.text_of("access_token");
    let start = http
        .post(
            "/t/acme/auth/passkeys/register/start",
            Some(&maria_access),
            json!({}),
        )
        .await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    assert_eq!(
        start.body["options"]["publicKey"]["authenticatorSelection"]["residentKey"],
        "required"
    );
    let key = SoftKey::default();
    let created = key.create(ORIGIN, &start.body["options"]).await;
    let finish_body = json!({
        "passkey_challenge": start.text_of("passkey_challenge"),
        "credential": serde_json::from_str::<Value>(&created).unwrap(),
        "name": "Maria's laptop",
    });
    // Another user cannot finish maria's ceremony.
    let carl = login("carl").await;
    let stolen = http
        .post(
            "/t/acme/auth/passkeys/register/finish",
            Some(&carl.text_of("access_token")),
            finish_body.clone(),
        )
        .await;
    stolen.problem(StatusCode::UNAUTHORIZED, "invalid-challenge");
    // A fresh ceremony for maria, answered and finished by her.
    let start = http
        .post(
            "/t/acme/auth/passkeys/register/start",
            Some(&maria_access),
            json!({ "discoverable": true }),
        )
        .await;
    let created = key.create(ORIGIN, &start.body["options"]).await;
    let registered = http
        .post(
            "/t/acme/auth/passkeys/register/finish",
            Some(&maria_access),
            json!({
                "passkey_challenge": start.text_of("passkey_challenge"),
                "credential": serde_json::from_str::<Value>(&created).unwrap(),
                "name": "Maria's laptop",
            }),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text
    );
    let passkey_id = registered.text_of("id");
    let listed = http
        .send(
            reqwest::Method::GET,
            "/t/acme/auth/passkeys",
            Some(&maria_access),
            None,
        )
        .await;
    assert_eq!(listed.body["passkeys"][0]["name"], "Maria's laptop");
    let renamed = http
        .send(
            reqwest::Method::PATCH,
            &format!("/t/acme/auth/passkeys/{passkey_id}"),
            Some(&maria_access),
            Some(json!({ "name": "Laptop" })),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::NO_CONTENT, "{}", renamed.text);

    // --- passwordless login; a replay is refused ------------------------------
    let (logged_in, replay) = http.passkey_login("acme", &key).await;
    assert_eq!(
        logged_in.body["status"], "authenticated",
        "{}",
        logged_in.text
    );
    assert_eq!(logged_in.body["user_id"], user("maria").id.to_string());
    let passkey_refresh = logged_in.text_of("refresh_token");
    let replayed = http
        .post("/t/acme/auth/passkeys/login/finish", None, replay)
        .await;
    replayed.problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
    // A ceremony of globex finds no acme user.
    let (elsewhere, _) = http.passkey_login("globex", &key).await;
    elsewhere.problem(StatusCode::UNAUTHORIZED, "invalid-credentials");

    // --- the password now needs the passkey as second factor -----------------
    let second = login("maria").await;
    assert_eq!(second.body["status"], "mfa_required", "{}", second.text);
    let assertion = key.get(ORIGIN, &second.body["passkey_options"]).await;
    let mfa = http
        .post(
            "/t/acme/auth/mfa/passkey",
            None,
            json!({
                "mfa_challenge": second.text_of("mfa_challenge"),
                "credential": serde_json::from_str::<Value>(&assertion).unwrap(),
            }),
        )
        .await;
    assert_eq!(mfa.body["status"], "authenticated", "{}", mfa.text);

    // --- removing the passkey ends its sessions -------------------------------
    let removed = http
        .send(
            reqwest::Method::DELETE,
            &format!("/t/acme/auth/passkeys/{passkey_id}"),
            Some(&mfa.text_of("access_token")),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    let refreshed = http
        .post(
            "/t/acme/auth/refresh",
            None,
            json!({ "refresh_token": passkey_refresh }),
        )
        .await;
    refreshed.problem(StatusCode::UNAUTHORIZED, "invalid-grant");
    let (after, _) = http.passkey_login("acme", &key).await;
    after.problem(StatusCode::UNAUTHORIZED, "invalid-credentials");

    server.abort();
}
