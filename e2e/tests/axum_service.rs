//! The `axum_service` example over real HTTP: the same application, on a
//! real TCP port, driven with an HTTP client through login, TOTP enrolment
//! and MFA with codes from `oathtool`, a backup code and a new set, refresh,
//! a replayed refresh token, logout, a session revoked by its user, an
//! admin lock (423), throttling (429 with `Retry-After`), a denied
//! permission (403), tokens under another tenant's URL, the JWKS checked by
//! PyJWT, and a signed-in password change.
//!
//! In memory by default; with the `postgres` feature on PostgreSQL
//! (`DATABASE_URL`), in a schema of its own. Needs `oathtool` and Python's
//! PyJWT (with `cryptography`): it fails, never skips, without them.

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
use std::process::Command;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use security::SecurityServices;
use security::axum::TrustedProxies;
use security::setup::Settings;

/// A client of the service: every request claims to come from `ip`
/// (the service trusts the loopback proxy that this test is).
struct Http {
    client: reqwest::Client,
    base: String,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Reply {
    fn token(&self, name: &str) -> String {
        self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.text))
            .to_owned()
    }

    /// A problem response of this status and kind.
    fn assert_problem(&self, status: StatusCode, kind: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.headers[CONTENT_TYPE], "application/problem+json",
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status.as_u16(), "{}", self.text);
        assert_eq!(
            self.body["type"],
            format!("urn:security:problem:{kind}"),
            "{}",
            self.text
        );
        assert!(self.body["title"].is_string(), "{}", self.text);
    }
}

impl Http {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        ip: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-forwarded-for", ip)
            .header("user-agent", "e2e-test");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    async fn post(&self, path: &str, ip: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, ip, token, Some(body))
            .await
    }

    async fn get(&self, path: &str, ip: &str, token: Option<&str>) -> Reply {
        self.send(reqwest::Method::GET, path, ip, token, None).await
    }

    async fn login(&self, tenant: &str, ip: &str, username: &str, password: &str) -> Reply {
        self.post(
            &format!("/t/{tenant}/auth/login"),
            ip,
            None,
            json!({ "username": username, "password": password }),
        )
        .await
    }
}

/// The TOTP code of `secret` at `at` (Unix seconds), from `oathtool`.
fn oathtool(secret: &str, at: i64) -> String {
    let when = chrono::DateTime::from_timestamp(at, 0)
        .expect("a valid time")
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let output = Command::new("oathtool")
        .args(["--totp", "-b", "--now", &when, secret])
        .output()
        .expect("oathtool is installed (Debian package oathtool)");
    assert!(output.status.success(), "oathtool failed: {output:?}");
    String::from_utf8(output.stdout)
        .expect("oathtool prints digits")
        .trim()
        .to_owned()
}

/// Verifies `token` with PyJWT against the JWKS at `jwks_url` (fetched by
/// PyJWT itself) and returns the claims PyJWT decoded.
fn pyjwt_verify(jwks_url: &str, token: &str) -> Value {
    const SCRIPT: &str = r#"
import json, sys
import jwt
client = jwt.PyJWKClient(sys.argv[1])
token = sys.stdin.read().strip()
key = client.get_signing_key_from_jwt(token)
claims = jwt.decode(token, key.key, algorithms=["EdDSA"], audience="security", issuer="security")
print(json.dumps(claims))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT, jwks_url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(token.as_bytes())
            .expect("the token is written");
    }
    let output = child.wait_with_output().expect("python3 finishes");
    assert!(
        output.status.success(),
        "PyJWT refused the token (pip install 'pyjwt[crypto]'): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("PyJWT prints the claims")
}

/// The settings of this run: memory, or a fresh PostgreSQL schema.
fn settings() -> Settings {
    let mut vars: HashMap<&str, String> = HashMap::new();
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
async fn the_example_service_over_http() {
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
    };
    let acme = &tenants[0];
    let password = |name: &str| {
        acme.users
            .iter()
            .find(|u| u.username == name)
            .and_then(|u| u.password.as_ref())
            .expect("created now")
            .expose_secret()
            .to_owned()
    };
    let user_id = |name: &str| {
        acme.users
            .iter()
            .find(|u| u.username == name)
            .expect("a demo user")
            .id
            .to_string()
    };

    // --- a manager logs in and uses the API --------------------------------
    let maria = http
        .login("acme", "198.51.100.1", "maria", &password("maria"))
        .await;
    assert_eq!(maria.status, StatusCode::OK, "{}", maria.text);
    assert_eq!(maria.body["status"], "authenticated");
    assert_eq!(maria.headers["cache-control"], "no-store");
    let maria_first_access = maria.token("access_token");
    let maria_first_refresh = maria.token("refresh_token");
    let loans = http
        .get("/t/acme/loans", "198.51.100.1", Some(&maria_first_access))
        .await;
    assert_eq!(loans.status, StatusCode::OK, "{}", loans.text);
    let approved = http
        .post(
            "/t/acme/loans/loan-1/approve",
            "198.51.100.1",
            Some(&maria_first_access),
            json!({}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    assert_eq!(approved.body["approved_by"], user_id("maria"));

    // --- 403 with a problem body for an agent ------------------------------
    let carl = http
        .login("acme", "198.51.100.2", "carl", &password("carl"))
        .await;
    assert_eq!(carl.status, StatusCode::OK, "{}", carl.text);
    let carl_access = carl.token("access_token");
    let denied = http
        .post(
            "/t/acme/loans/loan-1/approve",
            "198.51.100.2",
            Some(&carl_access),
            json!({}),
        )
        .await;
    denied.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(denied.body["permission"], "loan:approve");
    assert_eq!(
        denied.headers[WWW_AUTHENTICATE],
        "Bearer error=\"insufficient_scope\""
    );

    // --- no token, a forged token, a token under another tenant's URL -----
    let anonymous = http.get("/t/acme/loans", "198.51.100.3", None).await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(anonymous.headers[WWW_AUTHENTICATE], "Bearer");
    let forged = format!("{}x", &maria_first_access[..maria_first_access.len() - 1]);
    let refused = http
        .get("/t/acme/loans", "198.51.100.3", Some(&forged))
        .await;
    refused.assert_problem(StatusCode::UNAUTHORIZED, "invalid-token");
    assert_eq!(
        refused.headers[WWW_AUTHENTICATE],
        "Bearer error=\"invalid_token\""
    );
    let elsewhere = http
        .get("/t/globex/loans", "198.51.100.1", Some(&maria_first_access))
        .await;
    elsewhere.assert_problem(StatusCode::UNAUTHORIZED, "invalid-token");

    // --- TOTP enrolment with oathtool, then a login with MFA ---------------
    let enrol = http
        .post(
            "/t/acme/auth/mfa/totp",
            "198.51.100.1",
            Some(&maria_first_access),
            json!({}),
        )
        .await;
    assert_eq!(enrol.status, StatusCode::OK, "{}", enrol.text);
    let secret = enrol.token("secret");
    assert!(enrol.token("otpauth_uri").starts_with("otpauth://totp/"));
    assert!(enrol.token("qr_svg").contains("<svg"));
    let t0 = chrono::Utc::now().timestamp();
    let confirmed = http
        .post(
            "/t/acme/auth/mfa/totp/confirm",
            "198.51.100.1",
            Some(&maria_first_access),
            json!({ "code": oathtool(&secret, t0) }),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text);
    assert_eq!(
        confirmed.body["backup_codes"].as_array().map(Vec::len),
        Some(10)
    );

    let challenged = http
        .login("acme", "198.51.100.4", "maria", &password("maria"))
        .await;
    assert_eq!(challenged.status, StatusCode::OK, "{}", challenged.text);
    assert_eq!(
        challenged.body["status"], "mfa_required",
        "{}",
        challenged.text
    );
    assert!(challenged.body.get("access_token").is_none());
    let challenge = challenged.token("mfa_challenge");
    // The enrolment used the code of t0's step; each step works once, so
    // the login takes the next step's code (within the allowed skew).
    let wrong = http
        .post(
            "/t/acme/auth/mfa",
            "198.51.100.4",
            None,
            json!({ "mfa_challenge": challenge, "code": oathtool(&secret, t0) }),
        )
        .await;
    wrong.assert_problem(StatusCode::UNAUTHORIZED, "invalid-mfa-code");
    let second = http
        .post(
            "/t/acme/auth/mfa",
            "198.51.100.4",
            None,
            json!({ "mfa_challenge": challenge, "code": oathtool(&secret, t0 + 30) }),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_eq!(second.body["status"], "authenticated");
    let maria_access = second.token("access_token");
    let maria_refresh = second.token("refresh_token");
    let maria_session = second.token("session_id");

    // --- the caller's sessions ---------------------------------------------
    let sessions = http
        .get("/t/acme/auth/sessions", "198.51.100.4", Some(&maria_access))
        .await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.text);
    assert_eq!(sessions.body["current"], maria_session);
    let listed: Vec<&str> = sessions.body["sessions"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|s| s["session_id"].as_str())
        .collect();
    assert!(
        listed.contains(&maria_session.as_str()),
        "{}",
        sessions.text
    );
    assert!(
        listed.contains(&maria.token("session_id").as_str()),
        "{}",
        sessions.text
    );

    // --- refresh, then a replayed refresh token ----------------------------
    let refreshed = http
        .post(
            "/t/acme/auth/refresh",
            "198.51.100.4",
            None,
            json!({ "refresh_token": maria_refresh }),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
    let newer_refresh = refreshed.token("refresh_token");
    let newer_access = refreshed.token("access_token");
    assert_ne!(newer_refresh, maria_refresh);
    let replayed = http
        .post(
            "/t/acme/auth/refresh",
            "198.51.100.4",
            None,
            json!({ "refresh_token": maria_refresh }),
        )
        .await;
    replayed.assert_problem(StatusCode::UNAUTHORIZED, "invalid-grant");
    // The whole family is revoked: the newest refresh and access tokens too.
    let after_reuse = http
        .post(
            "/t/acme/auth/refresh",
            "198.51.100.4",
            None,
            json!({ "refresh_token": newer_refresh }),
        )
        .await;
    after_reuse.assert_problem(StatusCode::UNAUTHORIZED, "invalid-grant");
    let revoked_access = http
        .get("/t/acme/loans", "198.51.100.4", Some(&newer_access))
        .await;
    revoked_access.assert_problem(StatusCode::UNAUTHORIZED, "invalid-token");
    // A refresh token presented under another tenant's URL is refused.
    let other_tenant = http
        .post(
            "/t/globex/auth/refresh",
            "198.51.100.1",
            None,
            json!({ "refresh_token": maria_first_refresh }),
        )
        .await;
    other_tenant.assert_problem(StatusCode::UNAUTHORIZED, "invalid-grant");

    // --- logout ------------------------------------------------------------
    let logout = http
        .post(
            "/t/acme/auth/logout",
            "198.51.100.1",
            None,
            json!({ "refresh_token": maria_first_refresh }),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.text);
    let logged_out = http
        .get("/t/acme/loans", "198.51.100.1", Some(&maria_first_access))
        .await;
    logged_out.assert_problem(StatusCode::UNAUTHORIZED, "invalid-token");
    let dead_refresh = http
        .post(
            "/t/acme/auth/refresh",
            "198.51.100.1",
            None,
            json!({ "refresh_token": maria_first_refresh }),
        )
        .await;
    dead_refresh.assert_problem(StatusCode::UNAUTHORIZED, "invalid-grant");

    // --- a session revoked by its user -------------------------------------
    let carl_session = carl.token("session_id");
    let revoke = http
        .send(
            reqwest::Method::DELETE,
            &format!("/t/acme/auth/sessions/{carl_session}"),
            "198.51.100.2",
            Some(&carl_access),
            None,
        )
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT, "{}", revoke.text);
    let after_revoke = http
        .get("/t/acme/loans", "198.51.100.2", Some(&carl_access))
        .await;
    after_revoke.assert_problem(StatusCode::UNAUTHORIZED, "invalid-token");

    // --- an admin locks a user: 423 ----------------------------------------
    let admin = http
        .login("acme", "198.51.100.5", "admin", &password("admin"))
        .await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text);
    let admin_access = admin.token("access_token");
    let lock = http
        .post(
            &format!("/t/acme/admin/users/{}/lock", user_id("carl")),
            "198.51.100.5",
            Some(&admin_access),
            json!({}),
        )
        .await;
    assert_eq!(lock.status, StatusCode::NO_CONTENT, "{}", lock.text);
    let locked = http
        .login("acme", "198.51.100.6", "carl", &password("carl"))
        .await;
    locked.assert_problem(StatusCode::LOCKED, "locked");
    assert!(!locked.text.contains(&password("carl")));
    // An agent may not lock anyone.
    let carl_again = http
        .post(
            &format!("/t/acme/admin/users/{}/unlock", user_id("carl")),
            "198.51.100.5",
            Some(&admin_access),
            json!({}),
        )
        .await;
    assert_eq!(
        carl_again.status,
        StatusCode::NO_CONTENT,
        "{}",
        carl_again.text
    );

    // --- a backup code, then a new set -----------------------------------
    let first_codes: Vec<String> = confirmed.body["backup_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    let challenged = http
        .login("acme", "198.51.100.10", "maria", &password("maria"))
        .await;
    assert_eq!(
        challenged.body["status"], "mfa_required",
        "{}",
        challenged.text
    );
    let with_backup = http
        .post(
            "/t/acme/auth/mfa",
            "198.51.100.10",
            None,
            json!({ "mfa_challenge": challenged.token("mfa_challenge"), "code": first_codes[0] }),
        )
        .await;
    assert_eq!(with_backup.status, StatusCode::OK, "{}", with_backup.text);
    let regenerated = http
        .post(
            "/t/acme/auth/mfa/backup-codes",
            "198.51.100.10",
            Some(&with_backup.token("access_token")),
            json!({}),
        )
        .await;
    assert_eq!(regenerated.status, StatusCode::OK, "{}", regenerated.text);
    let new_codes = regenerated.body["backup_codes"].as_array().expect("codes");
    assert_eq!(new_codes.len(), 10);
    assert!(
        new_codes
            .iter()
            .all(|c| !first_codes.contains(&c.as_str().expect("a code").to_owned()))
    );

    // --- 429 with Retry-After ----------------------------------------------
    // The service's login tier (5/minute per IP and per username), audited.
    for attempt in 0..5 {
        let wrong = http
            .login("acme", "198.51.100.7", "mallory", "Not-the-password-1")
            .await;
        wrong.assert_problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
        assert!(
            !wrong.text.contains("Not-the-password-1"),
            "attempt {attempt}"
        );
        assert!(!wrong.text.contains("mallory"), "attempt {attempt}");
    }
    let throttled = http
        .login("acme", "198.51.100.7", "mallory", "Not-the-password-1")
        .await;
    throttled.assert_problem(StatusCode::TOO_MANY_REQUESTS, "throttled");
    let retry_after: u64 = throttled.headers[RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // A route-level tier (`auth` on the forced password change), per IP.
    for _ in 0..5 {
        let junk = http
            .post(
                "/t/acme/auth/password/complete",
                "198.51.100.8",
                None,
                json!({ "password_change_ticket": "sec_pwc_junk", "new_password": "x" }),
            )
            .await;
        junk.assert_problem(StatusCode::UNAUTHORIZED, "invalid-challenge");
    }
    let tier = http
        .post(
            "/t/acme/auth/password/complete",
            "198.51.100.8",
            None,
            json!({ "password_change_ticket": "sec_pwc_junk", "new_password": "x" }),
        )
        .await;
    tier.assert_problem(StatusCode::TOO_MANY_REQUESTS, "throttled");
    assert!(tier.headers.contains_key(RETRY_AFTER));
    // Another client is not affected.
    let other_client = http
        .post(
            "/t/acme/auth/password/complete",
            "198.51.100.9",
            None,
            json!({ "password_change_ticket": "sec_pwc_junk", "new_password": "x" }),
        )
        .await;
    other_client.assert_problem(StatusCode::UNAUTHORIZED, "invalid-challenge");

    // --- the JWKS, checked by an independent JWT library -------------------
    let jwks_url = format!("{}/t/acme/.well-known/jwks.json", http.base);
    let jwks = http
        .get("/t/acme/.well-known/jwks.json", "198.51.100.5", None)
        .await;
    assert_eq!(jwks.status, StatusCode::OK, "{}", jwks.text);
    let keys = jwks.body["keys"].as_array().expect("keys");
    assert!(!keys.is_empty(), "{}", jwks.text);
    assert!(
        keys.iter()
            .all(|k| k["kty"] == "OKP" && k["crv"] == "Ed25519")
    );
    assert!(
        !jwks.text.contains("\"d\""),
        "no private key: {}",
        jwks.text
    );
    let claims = pyjwt_verify(&jwks_url, &admin_access);
    assert_eq!(claims["sub"], user_id("admin"));
    assert_eq!(claims["tenant_id"], acme.id.to_string());
    // The other tenant's keys do not verify this tenant's tokens.
    let globex_jwks = http
        .get("/t/globex/.well-known/jwks.json", "198.51.100.5", None)
        .await;
    assert_eq!(globex_jwks.status, StatusCode::OK);
    let globex_kids: Vec<&Value> = globex_jwks.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert!(keys.iter().all(|k| !globex_kids.contains(&&k["kid"])));

    // --- a signed-in password change ends every session ------------------
    let weak = http
        .post(
            "/t/acme/auth/password",
            "198.51.100.12",
            Some(&admin_access),
            json!({ "current_password": password("admin"), "new_password": "short" }),
        )
        .await;
    weak.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "password-policy");
    assert!(
        weak.body["violations"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );
    assert!(!weak.text.contains("short\""), "{}", weak.text);
    let changed = http
        .post(
            "/t/acme/auth/password",
            "198.51.100.12",
            Some(&admin_access),
            json!({ "current_password": password("admin"), "new_password": "Brand-New-Passw0rd!" }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);
    let after_change = http
        .get("/t/acme/loans", "198.51.100.12", Some(&admin_access))
        .await;
    after_change.assert_problem(StatusCode::UNAUTHORIZED, "invalid-token");
    let old_password = http
        .login("acme", "198.51.100.12", "admin", &password("admin"))
        .await;
    old_password.assert_problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
    let new_password = http
        .login("acme", "198.51.100.12", "admin", "Brand-New-Passw0rd!")
        .await;
    assert_eq!(new_password.status, StatusCode::OK, "{}", new_password.text);

    server.abort();
    services.shutdown().await;
}
