//! The OpenID Connect provider of the `axum_service` example over real
//! HTTP: discovery, the sign-in page (CSRF cookie and token), the code
//! flow with PKCE, the ID token checked by PyJWT against the published
//! JWKS, userinfo, refresh, introspection and revocation with
//! `client_secret_basic`; and the attacks: an unregistered redirect URI
//! (an error page, no redirect), a forged sign-in form (no cookie, another
//! browser's token), a reused code (refused, and the first tokens die), a
//! wrong PKCE verifier, the password grant.
//!
//! Needs Python's PyJWT (with `cryptography`): it fails, never skips,
//! without them.

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    reason = "a test fails by panicking, in its helpers too"
)]

#[path = "../../examples/axum_service.rs"]
#[allow(dead_code, reason = "the example's main is not run here")]
mod example;

use std::net::SocketAddr;
use std::process::Command;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use secrecy::ExposeSecret;
use serde_json::Value;

use security::SecurityServices;
use security::authn::oidc::{NewClient, OidcConfig, OidcProvider, RegisteredClient};
use security::axum::TrustedProxies;
use security::core::oauth::{ClientKind, GrantType, OAuthClientSettings, RedirectUri, Scope};
use security::setup::Settings;

const REDIRECT: &str = "http://127.0.0.1:43210/callback";

/// PyJWT verifies an ID token with the JWKS it fetches itself.
fn pyjwt_id_token(jwks_url: &str, token: &str, audience: &str, issuer: &str) -> Value {
    const SCRIPT: &str = r#"
import json, sys
import jwt
client = jwt.PyJWKClient(sys.argv[1])
token = sys.stdin.read().strip()
key = client.get_signing_key_from_jwt(token)
claims = jwt.decode(token, key.key, algorithms=["EdDSA"], audience=sys.argv[2], issuer=sys.argv[3],
                    options={"require": ["exp", "iat", "iss", "aud", "sub", "auth_time"]})
print(json.dumps(claims))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT, jwks_url, audience, issuer])
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
        "PyJWT refused the ID token (pip install 'pyjwt[crypto]'): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("PyJWT prints the claims")
}

fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::now_v7().simple(),
        uuid::Uuid::now_v7().simple()
    );
    let digest = Command::new("python3")
        .args([
            "-c",
            "import sys,hashlib,base64;print(base64.urlsafe_b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).decode().rstrip('='))",
            &verifier,
        ])
        .output()
        .expect("python3 runs");
    let challenge = String::from_utf8(digest.stdout).unwrap().trim().to_owned();
    (verifier, challenge)
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').expect("a closing quote");
    html[start..end].to_owned()
}

fn query_param(location: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

struct Flow {
    http: reqwest::Client,
    root: String,
    client_id: String,
}

impl Flow {
    fn authorize_query(&self, challenge: &str, redirect: &str) -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".to_owned()),
            ("client_id", self.client_id.clone()),
            ("redirect_uri", redirect.to_owned()),
            ("scope", "openid profile".to_owned()),
            ("state", "s-1".to_owned()),
            ("nonce", "n-1".to_owned()),
            ("code_challenge", challenge.to_owned()),
            ("code_challenge_method", "S256".to_owned()),
        ]
    }

    /// The sign-in page: its CSRF cookie and the form's fields.
    async fn page(&self, challenge: &str) -> (String, String) {
        let reply = self
            .http
            .get(format!("{}/oauth/authorize", self.root))
            .query(&self.authorize_query(challenge, REDIRECT))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        let cookie = reply.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
        assert!(
            reply.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let html = reply.text().await.unwrap();
        assert!(html.contains("Shop"));
        (cookie, hidden(&html, "csrf_token"))
    }

    async fn sign_in(
        &self,
        challenge: &str,
        cookie: Option<&str>,
        csrf: &str,
        password: &str,
    ) -> reqwest::Response {
        let mut form = self.authorize_query(challenge, REDIRECT);
        form.push(("csrf_token", csrf.to_owned()));
        form.push(("username", "maria".to_owned()));
        form.push(("password", password.to_owned()));
        let mut request = self
            .http
            .post(format!("{}/oauth/authorize", self.root))
            .form(&form);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    async fn code(&self, challenge: &str, password: &str) -> String {
        let (cookie, csrf) = self.page(challenge).await;
        let reply = self
            .sign_in(challenge, Some(&cookie), &csrf, password)
            .await;
        assert_eq!(reply.status(), StatusCode::SEE_OTHER);
        let location = reply.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(location.starts_with(REDIRECT), "{location}");
        query_param(&location, "code").expect("a code")
    }

    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let reply = self
            .http
            .post(format!("{}/oauth/token", self.root))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = reply.status();
        assert_eq!(reply.headers()["cache-control"], "no-store");
        (status, reply.json().await.unwrap())
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", &self.client_id),
        ])
        .await
    }
}

async fn register(
    provider: &OidcProvider,
    tenant: security::core::TenantId,
    kind: ClientKind,
    grants: &[GrantType],
) -> RegisteredClient {
    let settings = OAuthClientSettings {
        name: "Shop".into(),
        redirect_uris: vec![RedirectUri::parse(REDIRECT).unwrap()],
        post_logout_redirect_uris: Vec::new(),
        grants: grants.iter().copied().collect(),
        scopes: [Scope::openid(), Scope::parse("profile").unwrap()]
            .into_iter()
            .collect(),
    };
    provider
        .register_client(tenant, NewClient { kind, settings })
        .await
        .unwrap()
}

/// The example service with its OpenID Connect routes on a port.
struct Running {
    services: SecurityServices,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    base: String,
    tenant: security::core::TenantId,
    password: String,
}

async fn start() -> Running {
    let settings = Settings::from_lookup(|_| None).expect("valid settings");
    let services = SecurityServices::start(settings)
        .await
        .expect("the setup starts");
    let tenants = example::seed(&services).await.expect("the demo tenants");
    let proxies: TrustedProxies = "127.0.0.1".parse().expect("a network");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let base = format!("http://{address}");
    let router = example::app(&services, &tenants, proxies.clone())
        .merge(example::oidc(&services, &tenants, proxies, &base).unwrap());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let acme = &tenants[0];
    let password = acme
        .users
        .iter()
        .find(|u| u.username == "maria")
        .and_then(|u| u.password.as_ref())
        .expect("created now")
        .expose_secret()
        .to_owned();
    Running {
        tenant: acme.id,
        services,
        server,
        base,
        password,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_over_http() {
    let Running {
        services,
        server,
        base,
        tenant,
        password,
    } = start().await;
    let acme_id = tenant;
    let provider = OidcProvider::new(services.authn().clone(), OidcConfig::new(&base)).unwrap();
    let spa = register(
        &provider,
        acme_id,
        ClientKind::Public,
        &[GrantType::AuthorizationCode, GrantType::RefreshToken],
    )
    .await;
    let api = register(
        &provider,
        acme_id,
        ClientKind::Confidential,
        &[GrantType::ClientCredentials],
    )
    .await;
    let root = format!("{base}/t/{acme_id}");
    let flow = Flow {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        root: root.clone(),
        client_id: spa.client_id.to_string(),
    };

    // Discovery names this issuer and exactly these capabilities.
    let discovery: Value = flow
        .http
        .get(format!("{root}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], root);
    assert_eq!(discovery["token_endpoint"], format!("{root}/oauth/token"));
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // An unregistered redirect URI: an error page, never a redirect.
    let (verifier, challenge) = pkce();
    let reply = flow
        .http
        .get(format!("{root}/oauth/authorize"))
        .query(&flow.authorize_query(&challenge, "https://evil.example/callback"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    assert!(reply.headers().get(LOCATION).is_none());
    assert!(
        reply.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    // A forged form: no cookie, or another browser's cookie.
    let (cookie, csrf) = flow.page(&challenge).await;
    let reply = flow.sign_in(&challenge, None, &csrf, &password).await;
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    let (other_cookie, _) = flow.page(&challenge).await;
    let reply = flow
        .sign_in(&challenge, Some(&other_cookie), &csrf, &password)
        .await;
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    // A wrong password shows the page again.
    let reply = flow
        .sign_in(&challenge, Some(&cookie), &csrf, "wrong-Password-1")
        .await;
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    assert!(
        reply
            .text()
            .await
            .unwrap()
            .contains("Wrong username or password")
    );

    // The code flow.
    let reply = flow
        .sign_in(&challenge, Some(&cookie), &csrf, &password)
        .await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    let location = reply.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(query_param(&location, "state").as_deref(), Some("s-1"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(root.as_str())
    );
    let code = query_param(&location, "code").unwrap();
    let (status, tokens) = flow.exchange(&code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id = pyjwt_id_token(
        &format!("{root}/.well-known/jwks.json"),
        tokens["id_token"].as_str().unwrap(),
        &spa.client_id.to_string(),
        &root,
    );
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let info: Value = flow
        .http
        .get(format!("{root}/oauth/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], id["sub"]);
    assert_eq!(info["preferred_username"], "maria");

    // The code again: refused, and what it gave dies.
    let (status, error) = flow.exchange(&code, &verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_grant");
    let reply = flow
        .http
        .get(format!("{root}/oauth/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);

    // A wrong verifier gets nothing.
    let (verifier, challenge) = pkce();
    let code = flow.code(&challenge, &password).await;
    let (wrong, _) = pkce();
    let (status, error) = flow.exchange(&code, &wrong).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Refresh, introspection (Basic), revocation.
    let code = flow.code(&challenge, &password).await;
    let (status, tokens) = flow.exchange(&code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, refreshed) = flow
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &flow.client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let secret = api
        .client_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    let introspect = |token: String| {
        let http = flow.http.clone();
        let url = format!("{root}/oauth/introspect");
        let (id, secret) = (api.client_id.to_string(), secret.clone());
        async move {
            let reply = http
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), StatusCode::OK);
            reply.json::<Value>().await.unwrap()
        }
    };
    let seen = introspect(refresh.clone()).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["client_id"], flow.client_id);
    let seen = introspect(refreshed["access_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(seen["active"], true, "{seen}");
    let reply = flow
        .http
        .post(format!("{root}/oauth/revoke"))
        .form(&[
            ("token", refresh.as_str()),
            ("client_id", flow.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(introspect(refresh).await["active"], false);
    // A wrong secret is invalid_client, with a Basic challenge.
    let reply = flow
        .http
        .post(format!("{root}/oauth/introspect"))
        .basic_auth(api.client_id.to_string(), Some("sec_cs_wrong"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    assert!(reply.headers().contains_key("www-authenticate"));

    // RP-initiated logout: an unregistered post-logout URI is an error
    // page; the hint alone ends the session.
    let code = flow.code(&challenge, &password).await;
    let (status, tokens) = flow.exchange(&code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let hint = tokens["id_token"].as_str().unwrap().to_owned();
    let reply = flow
        .http
        .get(format!("{root}/oauth/logout"))
        .query(&[
            ("id_token_hint", hint.as_str()),
            ("post_logout_redirect_uri", "https://evil.example/bye"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    assert!(reply.headers().get(LOCATION).is_none());
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let userinfo = |access: String| {
        let http = flow.http.clone();
        let url = format!("{root}/oauth/userinfo");
        async move {
            http.get(url)
                .bearer_auth(access)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(userinfo(access.clone()).await, StatusCode::OK);
    let reply = flow
        .http
        .get(format!("{root}/oauth/logout"))
        .query(&[("id_token_hint", hint.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(userinfo(access).await, StatusCode::UNAUTHORIZED);

    // No password grant.
    let (status, error) = flow
        .token(&[
            ("grant_type", "password"),
            ("username", "maria"),
            ("password", &password),
            ("client_id", &flow.client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "unsupported_grant_type");

    server.abort();
    services.shutdown().await;
}

/// Python's `authlib` as the client: discovery, the authorization URL with
/// PKCE and a nonce, the sign-in page driven over HTTP, the code exchange
/// (state checked by authlib), the ID token verified with authlib's JOSE
/// against the published JWKS, userinfo, refresh, introspection with
/// `client_secret_basic`, revocation.
const AUTHLIB_FLOW: &str = r#"
import html, json, os, re, sys
from urllib.parse import urlparse, parse_qs
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt

issuer, client_id, redirect_uri, username, password, api_id, api_secret = sys.argv[1:8]
meta = requests.get(issuer + "/.well-known/openid-configuration").json()
assert meta["issuer"] == issuer, meta
client = OAuth2Session(client_id, redirect_uri=redirect_uri, scope="openid profile",
                       code_challenge_method="S256", token_endpoint_auth_method="none")
verifier = generate_token(64)
nonce = generate_token(24)
url, state = client.create_authorization_url(meta["authorization_endpoint"],
                                             code_verifier=verifier, nonce=nonce)
page = requests.get(url, allow_redirects=False)
assert page.status_code == 200, page.text
cookie = page.headers["set-cookie"].split(";")[0]
fields = {k: html.unescape(v) for k, v in
          re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)}
fields.update(username=username, password=password)
answer = requests.post(meta["authorization_endpoint"], data=fields,
                       headers={"Cookie": cookie}, allow_redirects=False)
assert answer.status_code == 303, answer.text
location = answer.headers["location"]
query = parse_qs(urlparse(location).query)
assert query["iss"] == [issuer], query
token = client.fetch_token(meta["token_endpoint"], authorization_response=location,
                           code_verifier=verifier)
jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"]).json())
claims = jwt.decode(token["id_token"], jwks, claims_options={
    "iss": {"essential": True, "value": issuer},
    "aud": {"essential": True, "value": client_id},
    "nonce": {"essential": True, "value": nonce},
    "auth_time": {"essential": True},
})
claims.validate()
info = client.get(meta["userinfo_endpoint"]).json()
refreshed = client.refresh_token(meta["token_endpoint"])
api = OAuth2Session(api_id, api_secret, token_endpoint_auth_method="client_secret_basic")
live = api.introspect_token(meta["introspection_endpoint"], token=refreshed["refresh_token"]).json()
revoked = client.revoke_token(meta["revocation_endpoint"], token=refreshed["refresh_token"])
dead = api.introspect_token(meta["introspection_endpoint"], token=refreshed["refresh_token"]).json()
print(json.dumps({"sub": claims["sub"], "amr": claims["amr"], "userinfo": info,
                  "refreshed": "access_token" in refreshed and "id_token" in refreshed,
                  "live": live, "revoked": revoked.status_code, "dead": dead}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_completes_the_code_flow() {
    let Running {
        services,
        server,
        base,
        tenant,
        password,
    } = start().await;
    let provider = OidcProvider::new(services.authn().clone(), OidcConfig::new(&base)).unwrap();
    let spa = register(
        &provider,
        tenant,
        ClientKind::Public,
        &[GrantType::AuthorizationCode, GrantType::RefreshToken],
    )
    .await;
    let api = register(
        &provider,
        tenant,
        ClientKind::Confidential,
        &[GrantType::ClientCredentials],
    )
    .await;
    let issuer = format!("{base}/t/{tenant}");
    let (client_id, api_id) = (spa.client_id.to_string(), api.client_id.to_string());
    let api_secret = api
        .client_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([
                "-c",
                AUTHLIB_FLOW,
                &issuer,
                &client_id,
                REDIRECT,
                "maria",
                &password,
                &api_id,
                &api_secret,
            ])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "authlib failed (pip install authlib 'pyjwt[crypto]'): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    assert_eq!(result["amr"], serde_json::json!(["pwd"]));
    assert_eq!(result["userinfo"]["sub"], result["sub"]);
    assert_eq!(result["userinfo"]["preferred_username"], "maria");
    assert_eq!(result["refreshed"], true);
    assert_eq!(result["live"]["active"], true, "{result}");
    assert_eq!(result["revoked"], 200);
    assert_eq!(result["dead"]["active"], false, "{result}");
    server.abort();
    services.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_openid_client_completes_the_code_flow() {
    let Running {
        services,
        server,
        base,
        tenant,
        password,
    } = start().await;
    let provider = OidcProvider::new(services.authn().clone(), OidcConfig::new(&base)).unwrap();
    let spa = register(
        &provider,
        tenant,
        ClientKind::Public,
        &[GrantType::AuthorizationCode, GrantType::RefreshToken],
    )
    .await;
    let api = register(
        &provider,
        tenant,
        ClientKind::Confidential,
        &[GrantType::ClientCredentials],
    )
    .await;
    let issuer = format!("{base}/t/{tenant}");
    let (client_id, api_id) = (spa.client_id.to_string(), api.client_id.to_string());
    let api_secret = api
        .client_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/node/oidc_client.mjs");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args([
                script,
                &issuer,
                &client_id,
                REDIRECT,
                "maria",
                &password,
                &api_id,
                &api_secret,
            ])
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "openid-client failed (npm ci in e2e/node): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    assert_eq!(result["amr"], serde_json::json!(["pwd"]));
    assert_eq!(result["userinfo"]["sub"], result["sub"]);
    assert_eq!(result["refreshed"], true);
    assert_eq!(result["live"], true, "{result}");
    assert_eq!(result["dead"], false, "{result}");
    server.abort();
    services.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_on_the_page() {
    let Running {
        services,
        server,
        base,
        tenant,
        password,
    } = start().await;
    // The client's redirect URI, served here: the browser lands on it.
    let callback = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect = format!("http://{}/callback", callback.local_addr().unwrap());
    let client_app = axum::Router::new().route(
        "/callback",
        axum::routing::get(|| async { "back at the client" }),
    );
    let client_server = tokio::spawn(async move { axum::serve(callback, client_app).await });
    let provider = OidcProvider::new(services.authn().clone(), OidcConfig::new(&base)).unwrap();
    let settings = OAuthClientSettings {
        name: "Shop".into(),
        redirect_uris: vec![RedirectUri::parse(&redirect).unwrap()],
        post_logout_redirect_uris: Vec::new(),
        grants: [GrantType::AuthorizationCode].into_iter().collect(),
        scopes: [Scope::openid()].into_iter().collect(),
    };
    let spa = provider
        .register_client(
            tenant,
            NewClient {
                kind: ClientKind::Public,
                settings,
            },
        )
        .await
        .unwrap();
    let root = format!("{base}/t/{tenant}");
    let flow = Flow {
        http: reqwest::Client::new(),
        root: root.clone(),
        client_id: spa.client_id.to_string(),
    };
    let (verifier, challenge) = pkce();
    let mut query = flow.authorize_query(&challenge, &redirect);
    for (name, value) in &mut query {
        if *name == "scope" {
            *value = "openid".to_owned();
        }
    }
    let authorize = reqwest::Url::parse_with_params(&format!("{root}/oauth/authorize"), query)
        .unwrap()
        .to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/oidc_sign_in.mjs");
    let prefix = redirect.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args([script, &authorize, "maria", &password, &prefix])
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "Chromium did not sign in (npm ci in e2e/browser; Debian's chromium): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    let landed = result["landed"].as_str().expect("the browser came back");
    assert_eq!(query_param(landed, "state").as_deref(), Some("s-1"));
    assert_eq!(query_param(landed, "iss").as_deref(), Some(root.as_str()));
    let code = query_param(landed, "code").unwrap();
    let (status, tokens) = flow
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect),
            ("code_verifier", &verifier),
            ("client_id", &flow.client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["id_token"].is_string());
    client_server.abort();
    server.abort();
    services.shutdown().await;
}
