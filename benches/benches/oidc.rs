//! The OpenID Connect provider's code exchange (`OidcProvider::token` with
//! `authorization_code`: the code taken from the challenge store, PKCE,
//! the grant recorded, a session started, an access token and an ID token
//! signed through the key store, the audit events) against issuing a token
//! pair through `AuthenticationService::refresh` (a session rotated and an
//! access token signed). Target: at most 1.2×.
//!
//! Only the exchange is timed: each iteration's code is made (validated
//! and approved) outside the measurement, interleaved with the reference
//! so that both see the same machine load.
//!
//! `cargo bench -p security-benches --bench oidc -- --warm-up-time 1 --measurement-time 3`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "benchmark code"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use security::authn::oidc::{
    AuthorizationRequest, ClientAuthentication, NewClient, OidcConfig, OidcProvider, TokenRequest,
};
use security::authn::{
    AuthenticationService, AuthnConfig, LoginOutcome, NewPasswordUser, RateLimit,
};
use security::core::oauth::{ClientKind, GrantType, OAuthClientSettings, RedirectUri, Scope};
use security::core::{AccountClaims, ClientInfo, Repository, Request, SessionId, TenantId};
use security::crypto::{
    Argon2Config, Argon2PasswordHasher, MemoryKeyStore, SystemClock, UuidV7Ids,
};
use security::eventstore::MemoryEventStore;

const PASSWORD: &str = "Correct-Horse-Battery-9";
const REDIRECT: &str = "https://app.example.com/callback";

struct Setup {
    provider: OidcProvider,
    tenant: TenantId,
    auth: ClientAuthentication,
    login: SessionId,
    refresh: SecretString,
    client: ClientInfo,
}

async fn setup() -> Setup {
    let repo = Repository::new(
        Arc::new(MemoryEventStore::new()),
        Arc::new(UuidV7Ids::new()),
    );
    let hasher = Arc::new(
        Argon2PasswordHasher::new(Argon2Config {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            ..Argon2Config::OWASP
        })
        .unwrap(),
    );
    let open = RateLimit {
        max: u32::MAX,
        window: Duration::from_secs(1),
    };
    let authn = AuthenticationService::builder(
        repo,
        Arc::new(MemoryKeyStore::new()),
        hasher,
        Arc::new(SystemClock::new()),
    )
    .config(AuthnConfig {
        login_rate: open,
        api_rate: open,
        ..AuthnConfig::default()
    })
    .build()
    .unwrap();
    let admin = authn.admin();
    let operator = admin
        .create_operator(&Request::default(), "ops")
        .await
        .unwrap();
    let account = admin
        .create_account(
            &Request::default(),
            operator,
            "acme",
            AccountClaims::default(),
        )
        .await
        .unwrap();
    authn
        .create_user_with_password(
            &Request::default(),
            account,
            NewPasswordUser::new("alice", SecretString::from(PASSWORD)),
        )
        .await
        .unwrap();
    let client = ClientInfo::new(Some("198.51.100.7".parse().unwrap()), Some("bench"));
    let LoginOutcome::Authenticated(tokens) = authn
        .authenticate(
            account.tenant(),
            "alice",
            &SecretString::from(PASSWORD),
            &client,
        )
        .await
        .unwrap()
    else {
        panic!("expected tokens");
    };
    let provider = OidcProvider::new(authn, OidcConfig::new("https://id.example.com")).unwrap();
    let settings = OAuthClientSettings {
        name: "Shop".into(),
        redirect_uris: vec![RedirectUri::parse(REDIRECT).unwrap()],
        post_logout_redirect_uris: Vec::new(),
        grants: [GrantType::AuthorizationCode, GrantType::RefreshToken]
            .into_iter()
            .collect(),
        scopes: [Scope::openid()].into_iter().collect(),
    };
    let spa = provider
        .register_client(
            account.tenant(),
            NewClient {
                kind: ClientKind::Public,
                settings,
            },
        )
        .await
        .unwrap();
    Setup {
        provider,
        tenant: account.tenant(),
        auth: ClientAuthentication {
            client_id: spa.client_id.to_string(),
            client_secret: None,
        },
        login: tokens.session_id,
        refresh: tokens.refresh_token,
        client,
    }
}

/// A fresh code (validated and approved) and its verifier.
async fn code(s: &Setup, n: u64) -> (String, String) {
    let verifier = format!("bench-verifier-{n:020}-0123456789abcdefghij");
    let challenge = URL_SAFE_NO_PAD.encode(security::crypto::sha256(verifier.as_bytes()));
    let request = AuthorizationRequest {
        response_type: Some("code".into()),
        client_id: Some(s.auth.client_id.clone()),
        redirect_uri: Some(REDIRECT.into()),
        scope: Some("openid".into()),
        nonce: Some("n".into()),
        code_challenge: Some(challenge),
        code_challenge_method: Some("S256".into()),
        ..AuthorizationRequest::default()
    };
    let validated = s
        .provider
        .validate_authorization(s.tenant, &request)
        .await
        .unwrap();
    let location = s.provider.approve(&validated, s.login).await.unwrap();
    let code = location
        .split_once("code=")
        .unwrap()
        .1
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    (code, verifier)
}

fn exchange(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut s = rt.block_on(setup());
    let mut group = c.benchmark_group("oidc_code_exchange");
    group.bench_function("authn_refresh_token_pair", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let pair = rt
                    .block_on(s.provider.authn().refresh(black_box(&s.refresh), &s.client))
                    .unwrap();
                total += start.elapsed();
                s.refresh = pair.refresh_token;
            }
            total
        });
    });
    let mut n = 0;
    group.bench_function("oidc_token_endpoint_code_exchange", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let (code, verifier) = rt.block_on(code(&s, n));
                let request = TokenRequest {
                    grant_type: Some("authorization_code".into()),
                    code: Some(SecretString::from(code)),
                    redirect_uri: Some(REDIRECT.into()),
                    code_verifier: Some(SecretString::from(verifier)),
                    ..TokenRequest::default()
                };
                let start = Instant::now();
                let tokens = rt
                    .block_on(
                        s.provider
                            .token(s.tenant, &s.auth, black_box(&request), &s.client),
                    )
                    .unwrap();
                total += start.elapsed();
                black_box(tokens);
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, exchange);
criterion_main!(benches);
