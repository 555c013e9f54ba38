//! The in-process OAuth 2.0 / OpenID Connect provider: the code flow with
//! PKCE end to end (ID token checked with `jsonwebtoken` against the
//! tenant's JWKS), refresh, introspection, revocation, client credentials,
//! and the attacks of RFC 9700 performed against it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use security_authn::oidc::{
    AuthorizationRequest, ClientAuthentication, IdTokenClaims, NewClient, OAuthAuditEvent,
    OAuthErrorCode, OidcConfig, OidcProvider, RegisteredClient, TokenRequest, TokenResponse,
    ValidatedAuthorization,
};
use security_authn::{
    AuthenticationService, AuthnError, LoginOutcome, MemoryChallengeStore, NewPasswordUser,
};
use security_core::oauth::{ClientKind, GrantType, OAuthClientSettings, RedirectUri, Scope};
use security_core::{
    AccountClaims, AccountId, ClientInfo, Clock, EventStore, ManualClock, Repository, Request,
    SessionId, StreamId, StreamQuery, TenantId, TokenError,
};
use security_crypto::{Argon2Config, Argon2PasswordHasher, MemoryKeyStore, UuidV7Ids};
use security_eventstore::MemoryEventStore;

const PASSWORD: &str = "Correct-Horse-Battery-9";
const REDIRECT: &str = "https://app.example.com/callback";
const ISSUER_BASE: &str = "https://id.example.com";

fn cheap_hasher() -> Arc<Argon2PasswordHasher> {
    Arc::new(
        Argon2PasswordHasher::new(Argon2Config {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            ..Argon2Config::OWASP
        })
        .unwrap(),
    )
}

fn browser() -> ClientInfo {
    ClientInfo::new(Some("198.51.100.7".parse().unwrap()), Some("tests/1.0"))
}

/// One store, key store, challenge store and clock, and any number of
/// replicas (services with their own caches and validators) over them.
struct Fixture {
    store: Arc<MemoryEventStore>,
    keys: Arc<MemoryKeyStore>,
    challenges: Arc<MemoryChallengeStore>,
    clock: Arc<ManualClock>,
    hasher: Arc<Argon2PasswordHasher>,
    provider: OidcProvider,
    account: AccountId,
}

impl Fixture {
    async fn new() -> Self {
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let clock = Arc::new(ManualClock::new(now));
        let store = Arc::new(MemoryEventStore::new());
        let keys = Arc::new(MemoryKeyStore::with_clock_and_ids(
            clock.clone(),
            Arc::new(UuidV7Ids::new()),
        ));
        let challenges = Arc::new(MemoryChallengeStore::new());
        let hasher = cheap_hasher();
        let authn = Self::service(&store, &keys, &challenges, &clock, &hasher);
        let operator = authn
            .admin()
            .create_operator(&Request::default(), "ops")
            .await
            .unwrap();
        let account = authn
            .admin()
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
        let provider = OidcProvider::new(authn, OidcConfig::new(ISSUER_BASE)).unwrap();
        Self {
            store,
            keys,
            challenges,
            clock,
            hasher,
            provider,
            account,
        }
    }

    fn service(
        store: &Arc<MemoryEventStore>,
        keys: &Arc<MemoryKeyStore>,
        challenges: &Arc<MemoryChallengeStore>,
        clock: &Arc<ManualClock>,
        hasher: &Arc<Argon2PasswordHasher>,
    ) -> AuthenticationService {
        let repo = Repository::new(store.clone(), Arc::new(UuidV7Ids::new()));
        AuthenticationService::builder(repo, keys.clone(), hasher.clone(), clock.clone())
            .challenge_store(challenges.clone())
            .build()
            .unwrap()
    }

    /// Another replica over the same shared state.
    fn replica(&self) -> OidcProvider {
        let authn = Self::service(
            &self.store,
            &self.keys,
            &self.challenges,
            &self.clock,
            &self.hasher,
        );
        OidcProvider::new(authn, OidcConfig::new(ISSUER_BASE)).unwrap()
    }

    fn tenant(&self) -> TenantId {
        self.account.tenant()
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }

    async fn register(&self, kind: ClientKind, grants: &[GrantType]) -> RegisteredClient {
        let settings = OAuthClientSettings {
            name: "Shop".into(),
            redirect_uris: vec![RedirectUri::parse(REDIRECT).unwrap()],
            post_logout_redirect_uris: Vec::new(),
            grants: grants.iter().copied().collect(),
            scopes: ["openid", "profile", "orders:read"]
                .into_iter()
                .map(|s| Scope::parse(s).unwrap())
                .collect(),
        };
        self.provider
            .register_client(self.tenant(), NewClient { kind, settings })
            .await
            .unwrap()
    }

    async fn spa(&self) -> RegisteredClient {
        self.register(
            ClientKind::Public,
            &[GrantType::AuthorizationCode, GrantType::RefreshToken],
        )
        .await
    }

    /// Signs alice in through the library's own login.
    async fn login(&self) -> SessionId {
        match self
            .provider
            .authn()
            .authenticate(
                self.tenant(),
                "alice",
                &SecretString::from(PASSWORD),
                &browser(),
            )
            .await
            .unwrap()
        {
            LoginOutcome::Authenticated(tokens) => tokens.session_id,
            other => panic!("expected tokens, got {other:?}"),
        }
    }

    async fn audit(&self) -> Vec<OAuthAuditEvent> {
        let id = security_authn::oidc::oauth_audit_stream_id(self.tenant());
        self.store
            .read_stream(
                &StreamId::new(self.tenant(), security_authn::oidc::OAUTH_AUDIT, id),
                StreamQuery::all(),
            )
            .await
            .unwrap()
            .iter()
            .map(|e| e.decode().unwrap())
            .collect()
    }
}

/// A change made to an authorization request.
type Change = Box<dyn Fn(&mut AuthorizationRequest)>;

/// A PKCE verifier and its `S256` challenge.
fn pkce() -> (String, String) {
    let verifier = format!("v-{}", uuid::Uuid::now_v7().simple()) + "0123456789abcdefghij";
    let challenge = URL_SAFE_NO_PAD.encode(security_crypto::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

fn request(client: &RegisteredClient, challenge: &str) -> AuthorizationRequest {
    AuthorizationRequest {
        response_type: Some("code".into()),
        client_id: Some(client.client_id.to_string()),
        redirect_uri: Some(REDIRECT.into()),
        scope: Some("openid profile".into()),
        state: Some("st-123".into()),
        nonce: Some("n-456".into()),
        code_challenge: Some(challenge.into()),
        code_challenge_method: Some("S256".into()),
        ..AuthorizationRequest::default()
    }
}

fn query(location: &str) -> Vec<(String, String)> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(location: &str, name: &str) -> Option<String> {
    query(location)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn public_auth(client: &RegisteredClient) -> ClientAuthentication {
    ClientAuthentication {
        client_id: client.client_id.to_string(),
        client_secret: None,
    }
}

fn secret_auth(client: &RegisteredClient) -> ClientAuthentication {
    ClientAuthentication {
        client_id: client.client_id.to_string(),
        client_secret: client.client_secret.clone(),
    }
}

fn code_request(code: &str, verifier: &str) -> TokenRequest {
    TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: Some(SecretString::from(code.to_owned())),
        redirect_uri: Some(REDIRECT.into()),
        code_verifier: Some(SecretString::from(verifier.to_owned())),
        ..TokenRequest::default()
    }
}

fn oauth_code(result: Result<impl std::fmt::Debug, AuthnError>) -> OAuthErrorCode {
    match result {
        Err(AuthnError::OAuth(error)) => error.code,
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

/// Validates, signs in and approves: the code and the redirect.
async fn authorize(
    f: &Fixture,
    provider: &OidcProvider,
    client: &RegisteredClient,
    challenge: &str,
) -> (String, String) {
    let validated = provider
        .validate_authorization(f.tenant(), &request(client, challenge))
        .await
        .unwrap();
    let session = f.login().await;
    let location = provider.approve(&validated, session).await.unwrap();
    (param(&location, "code").unwrap(), location)
}

/// Verifies an ID token independently: `jsonwebtoken` with the tenant's
/// published JWKS, the issuer and the client as audience.
async fn verify_id_token(f: &Fixture, id_token: &str, client: &RegisteredClient) -> IdTokenClaims {
    let jwks = f.provider.authn().jwks(f.tenant()).await.unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(serde_json::to_value(&jwks).unwrap()).unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&[client.client_id.to_string()]);
    validation.set_issuer(&[f.provider.issuer(f.tenant())]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<IdTokenClaims>(id_token, &key, &validation)
        .unwrap()
        .claims
}

async fn exchange(
    provider: &OidcProvider,
    f: &Fixture,
    client: &RegisteredClient,
    code: &str,
    verifier: &str,
) -> Result<TokenResponse, AuthnError> {
    provider
        .token(
            f.tenant(),
            &public_auth(client),
            &code_request(code, verifier),
            &browser(),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_with_pkce_gives_verifiable_tokens_that_refresh_and_revoke() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    let (verifier, challenge) = pkce();
    let (code, location) = authorize(&f, &f.provider, &spa, &challenge).await;
    assert!(location.starts_with(REDIRECT));
    assert_eq!(param(&location, "state").as_deref(), Some("st-123"));
    assert_eq!(param(&location, "iss"), Some(f.provider.issuer(f.tenant())));

    let tokens = exchange(&f.provider, &f, &spa, &code, &verifier)
        .await
        .unwrap();
    assert_eq!(tokens.scope, "openid profile");
    let id = verify_id_token(&f, tokens.id_token.as_deref().unwrap(), &spa).await;
    assert_eq!(id.nonce.as_deref(), Some("n-456"));
    assert_eq!(id.amr, vec!["pwd".to_owned()]);
    assert_eq!(id.azp, spa.client_id.to_string());
    assert!(id.auth_time <= id.iat);
    let claims = f
        .provider
        .authn()
        .validate_access_token(tokens.access_token.expose_secret())
        .await
        .unwrap();
    assert_eq!(claims.sub, id.sub);
    assert_eq!(Some(claims.session_id.unwrap()), tokens.session_id);

    // An ID token is not an access token.
    let refused = f
        .provider
        .authn()
        .validate_access_token(tokens.id_token.as_deref().unwrap())
        .await;
    assert!(refused.is_err());

    let info = f
        .provider
        .userinfo(f.tenant(), tokens.access_token.expose_secret())
        .await
        .unwrap();
    assert_eq!(info["sub"], id.sub);
    assert_eq!(info["preferred_username"], "alice");

    // A resource server introspects.
    let api = f
        .register(ClientKind::Confidential, &[GrantType::ClientCredentials])
        .await;
    let seen = f
        .provider
        .introspect(f.tenant(), &secret_auth(&api), &tokens.access_token)
        .await
        .unwrap();
    assert!(seen.active);
    assert_eq!(seen.scope.as_deref(), Some("openid profile"));
    assert_eq!(seen.client_id, Some(spa.client_id.to_string()));

    // Refresh rotates; the old refresh token is then reuse and kills the family.
    let first_refresh = tokens.refresh_token.clone().unwrap();
    let refresh = TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: Some(first_refresh.clone()),
        ..TokenRequest::default()
    };
    let refreshed = f
        .provider
        .token(f.tenant(), &public_auth(&spa), &refresh, &browser())
        .await
        .unwrap();
    let again = verify_id_token(&f, refreshed.id_token.as_deref().unwrap(), &spa).await;
    assert_eq!(again.auth_time, id.auth_time);
    assert_eq!(again.nonce, None);
    let reused = f
        .provider
        .token(f.tenant(), &public_auth(&spa), &refresh, &browser())
        .await;
    assert_eq!(oauth_code(reused), OAuthErrorCode::InvalidGrant);
    let next = TokenRequest {
        refresh_token: refreshed.refresh_token.clone(),
        ..refresh.clone()
    };
    let dead = f
        .provider
        .token(f.tenant(), &public_auth(&spa), &next, &browser())
        .await;
    assert_eq!(oauth_code(dead), OAuthErrorCode::InvalidGrant);
    let seen = f
        .provider
        .introspect(
            f.tenant(),
            &secret_auth(&api),
            refreshed.refresh_token.as_ref().unwrap(),
        )
        .await
        .unwrap();
    assert!(!seen.active);

    let types: Vec<String> = f
        .audit()
        .await
        .iter()
        .map(|e| {
            format!("{e:?}")
                .split([' ', '{'])
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    for expected in [
        "AuthorizationCodeIssued",
        "AuthorizationCodeRedeemed",
        "TokensIssued",
        "TokenIntrospected",
        "TokenRequestRefused",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_ends_the_session_of_a_refresh_token() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    let (verifier, challenge) = pkce();
    let (code, _) = authorize(&f, &f.provider, &spa, &challenge).await;
    let tokens = exchange(&f.provider, &f, &spa, &code, &verifier)
        .await
        .unwrap();
    // Another client cannot revoke it: nothing happens.
    let other = f.spa().await;
    f.provider
        .revoke(
            f.tenant(),
            &public_auth(&other),
            tokens.refresh_token.as_ref().unwrap(),
        )
        .await
        .unwrap();
    assert!(
        f.provider
            .authn()
            .validate_access_token(tokens.access_token.expose_secret())
            .await
            .is_ok()
    );
    f.provider
        .revoke(
            f.tenant(),
            &public_auth(&spa),
            tokens.refresh_token.as_ref().unwrap(),
        )
        .await
        .unwrap();
    let refused = f
        .provider
        .authn()
        .validate_access_token(tokens.access_token.expose_secret())
        .await;
    assert!(matches!(refused, Err(TokenError::Revoked)), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_code_is_refused_and_revokes_what_it_gave() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    let (verifier, challenge) = pkce();
    let (code, _) = authorize(&f, &f.provider, &spa, &challenge).await;
    let first = exchange(&f.provider, &f, &spa, &code, &verifier)
        .await
        .unwrap();
    let second = exchange(&f.provider, &f, &spa, &code, &verifier).await;
    assert_eq!(oauth_code(second), OAuthErrorCode::InvalidGrant);
    let refused = f
        .provider
        .authn()
        .validate_access_token(first.access_token.expose_secret())
        .await;
    assert!(matches!(refused, Err(TokenError::Revoked)), "{refused:?}");
    let refresh = TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: first.refresh_token.clone(),
        ..TokenRequest::default()
    };
    let refused = f
        .provider
        .token(f.tenant(), &public_auth(&spa), &refresh, &browser())
        .await;
    assert_eq!(oauth_code(refused), OAuthErrorCode::InvalidGrant);
    assert!(
        f.audit()
            .await
            .iter()
            .any(|e| matches!(e, OAuthAuditEvent::AuthorizationCodeReused { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_redeemed_on_another_replica_and_its_reuse_revokes_everywhere() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    let other = f.replica();
    let (verifier, challenge) = pkce();
    let (code, _) = authorize(&f, &f.provider, &spa, &challenge).await;
    // Issued on one replica, redeemed on the other.
    let tokens = exchange(&other, &f, &spa, &code, &verifier).await.unwrap();
    assert!(
        other
            .authn()
            .validate_access_token(tokens.access_token.expose_secret())
            .await
            .is_ok()
    );
    // Presented again on the first replica: refused, and the second
    // replica refuses the tokens too once it has followed the store.
    let again = exchange(&f.provider, &f, &spa, &code, &verifier).await;
    assert_eq!(oauth_code(again), OAuthErrorCode::InvalidGrant);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let result = other
            .authn()
            .validate_access_token(tokens.access_token.expose_secret())
            .await;
        if matches!(result, Err(TokenError::Revoked)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still valid: {result:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_on_two_replicas_give_tokens_once() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    let other = f.replica();
    let (verifier, challenge) = pkce();
    let (code, _) = authorize(&f, &f.provider, &spa, &challenge).await;
    let (a, b) = tokio::join!(
        exchange(&f.provider, &f, &spa, &code, &verifier),
        exchange(&other, &f, &spa, &code, &verifier),
    );
    // Never two sets of tokens; a winner's tokens stand unless the loser
    // marked the code reused, and then they are refused.
    assert!(usize::from(a.is_ok()) + usize::from(b.is_ok()) <= 1);
    if let Some(tokens) = a.ok().or(b.ok()) {
        let grant = StreamId::new(
            f.tenant(),
            security_authn::oidc::OAUTH_GRANT,
            tokens.session_id.unwrap().as_uuid(),
        );
        let reused = f
            .store
            .read_stream(&grant, StreamQuery::all())
            .await
            .unwrap()
            .iter()
            .any(|e| &*e.event_type == "OAuthCodeReused");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let result = f
                .provider
                .authn()
                .validate_access_token(tokens.access_token.expose_secret())
                .await;
            if !reused {
                assert!(result.is_ok(), "{result:?}");
                break;
            }
            if matches!(result, Err(TokenError::Revoked)) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{result:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_pkce_verifier_gets_nothing_and_burns_the_code() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    let (verifier, challenge) = pkce();
    let (code, _) = authorize(&f, &f.provider, &spa, &challenge).await;
    let (wrong, _) = pkce();
    let refused = exchange(&f.provider, &f, &spa, &code, &wrong).await;
    assert_eq!(oauth_code(refused), OAuthErrorCode::InvalidGrant);
    // The right verifier afterwards finds the code spent.
    let late = exchange(&f.provider, &f, &spa, &code, &verifier).await;
    assert_eq!(oauth_code(late), OAuthErrorCode::InvalidGrant);

    let (code, _) = authorize(&f, &f.provider, &spa, &challenge).await;
    let missing = TokenRequest {
        code_verifier: None,
        ..code_request(&code, &verifier)
    };
    let refused = f
        .provider
        .token(f.tenant(), &public_auth(&spa), &missing, &browser())
        .await;
    assert_eq!(oauth_code(refused), OAuthErrorCode::InvalidRequest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_of_another_client_or_redirect_uri_is_refused() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    let thief = f
        .register(
            ClientKind::Confidential,
            &[GrantType::AuthorizationCode, GrantType::RefreshToken],
        )
        .await;
    let (verifier, challenge) = pkce();
    let (code, _) = authorize(&f, &f.provider, &spa, &challenge).await;
    let refused = f
        .provider
        .token(
            f.tenant(),
            &secret_auth(&thief),
            &code_request(&code, &verifier),
            &browser(),
        )
        .await;
    assert_eq!(oauth_code(refused), OAuthErrorCode::InvalidGrant);

    let (code, _) = authorize(&f, &f.provider, &spa, &challenge).await;
    let elsewhere = TokenRequest {
        redirect_uri: Some("https://app.example.com/callback/".into()),
        ..code_request(&code, &verifier)
    };
    let refused = f
        .provider
        .token(f.tenant(), &public_auth(&spa), &elsewhere, &browser())
        .await;
    assert_eq!(oauth_code(refused), OAuthErrorCode::InvalidGrant);

    // Expired codes too.
    let (code, _) = authorize(&f, &f.provider, &spa, &challenge).await;
    f.advance(61);
    let late = exchange(&f.provider, &f, &spa, &code, &verifier).await;
    assert_eq!(oauth_code(late), OAuthErrorCode::InvalidGrant);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_redirect_uris_and_unknown_clients_are_never_redirected_to() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    let (_, challenge) = pkce();
    for uri in [
        "https://evil.example/callback",
        "https://app.example.com/callback/../evil",
        "https://app.example.com/callback?next=https://evil.example",
        "https://app.example.com/callbackx",
        "https://app.example.com.evil.example/callback",
    ] {
        let mut attempt = request(&spa, &challenge);
        attempt.redirect_uri = Some(uri.into());
        match f
            .provider
            .validate_authorization(f.tenant(), &attempt)
            .await
        {
            Err(AuthnError::OAuth(error)) => assert_eq!(error.redirect_to, None, "{uri}"),
            other => panic!("{uri}: {other:?}"),
        }
    }
    let mut attempt = request(&spa, &challenge);
    attempt.redirect_uri = None;
    assert!(matches!(
        f.provider.validate_authorization(f.tenant(), &attempt).await,
        Err(AuthnError::OAuth(e)) if e.redirect_to.is_none()
    ));
    // An unknown client with an attacker's redirect URI: an error page.
    let mut attempt = request(&spa, &challenge);
    attempt.client_id = Some(uuid::Uuid::now_v7().to_string());
    attempt.redirect_uri = Some("https://evil.example/callback".into());
    assert!(matches!(
        f.provider.validate_authorization(f.tenant(), &attempt).await,
        Err(AuthnError::OAuth(e)) if e.redirect_to.is_none()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_errors_go_to_the_redirect_uri_with_state_and_iss() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    let (_, challenge) = pkce();
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|r| r.code_challenge = None), "invalid_request"),
        (
            Box::new(|r| r.code_challenge_method = Some("plain".into())),
            "invalid_request",
        ),
        (
            Box::new(|r| r.code_challenge_method = None),
            "invalid_request",
        ),
        (
            Box::new(|r| r.response_type = Some("token".into())),
            "unsupported_response_type",
        ),
        (
            Box::new(|r| r.response_type = Some("code id_token".into())),
            "unsupported_response_type",
        ),
        (
            // An unsigned request object (`alg: none`).
            Box::new(|r| {
                r.request = Some(format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
                    URL_SAFE_NO_PAD.encode(br#"{"redirect_uri":"https://evil.example"}"#)
                ));
            }),
            "invalid_request",
        ),
        (
            Box::new(|r| r.request_uri = Some("https://evil.example/req".into())),
            "invalid_request",
        ),
        (
            Box::new(|r| r.scope = Some("openid admin".into())),
            "invalid_scope",
        ),
        (
            Box::new(|r| r.prompt = Some("consent".into())),
            "invalid_request",
        ),
        (
            Box::new(|r| r.max_age = Some("-1".into())),
            "invalid_request",
        ),
        (
            Box::new(|r| r.response_mode = Some("fragment".into())),
            "invalid_request",
        ),
    ];
    for (i, (change, error)) in cases.iter().enumerate() {
        let mut attempt = request(&spa, &challenge);
        change(&mut attempt);
        let refused = f
            .provider
            .validate_authorization(f.tenant(), &attempt)
            .await;
        let Err(AuthnError::OAuth(refused)) = refused else {
            panic!("case {i}: {refused:?}");
        };
        let location = refused.redirect_to.unwrap();
        assert!(location.starts_with(REDIRECT), "case {i}");
        assert_eq!(
            param(&location, "error").as_deref(),
            Some(*error),
            "case {i}"
        );
        assert_eq!(
            param(&location, "state").as_deref(),
            Some("st-123"),
            "case {i}"
        );
        assert_eq!(
            param(&location, "iss"),
            Some(f.provider.issuer(f.tenant())),
            "case {i}"
        );
        assert_eq!(param(&location, "code"), None, "case {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_password_and_unknown_grants_are_refused() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    for grant in [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "",
    ] {
        let attempt = TokenRequest {
            grant_type: Some(grant.into()),
            ..TokenRequest::default()
        };
        let refused = f
            .provider
            .token(f.tenant(), &public_auth(&spa), &attempt, &browser())
            .await;
        assert_eq!(
            oauth_code(refused),
            OAuthErrorCode::UnsupportedGrantType,
            "{grant}"
        );
    }
    // A public client may not use client credentials.
    let attempt = TokenRequest {
        grant_type: Some("client_credentials".into()),
        ..TokenRequest::default()
    };
    let refused = f
        .provider
        .token(f.tenant(), &public_auth(&spa), &attempt, &browser())
        .await;
    assert_eq!(oauth_code(refused), OAuthErrorCode::UnauthorizedClient);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_clients_authenticate_with_their_current_secret() {
    let f = Fixture::new().await;
    let api = f
        .register(ClientKind::Confidential, &[GrantType::ClientCredentials])
        .await;
    assert!(format!("{api:?}").contains("REDACTED"));
    let secret = api.client_secret.clone().unwrap();
    let grant = TokenRequest {
        grant_type: Some("client_credentials".into()),
        scope: Some("orders:read".into()),
        ..TokenRequest::default()
    };
    let issued = f
        .provider
        .token(f.tenant(), &secret_auth(&api), &grant, &browser())
        .await
        .unwrap();
    assert_eq!(issued.scope, "orders:read");
    assert!(issued.id_token.is_none() && issued.refresh_token.is_none());
    let claims = f
        .provider
        .authn()
        .validate_access_token(issued.access_token.expose_secret())
        .await
        .unwrap();
    assert_eq!(claims.sub, api.client_id.to_string());
    assert!(claims.roles.is_empty() && claims.session_id.is_none());

    // No secret, a wrong one, another client's: invalid_client.
    for auth in [
        public_auth(&api),
        ClientAuthentication {
            client_id: api.client_id.to_string(),
            client_secret: Some(SecretString::from("sec_cs_wrong".to_owned())),
        },
        ClientAuthentication {
            client_id: api.client_id.to_string(),
            client_secret: Some(SecretString::from("x".repeat(100_000))),
        },
    ] {
        let refused = f
            .provider
            .token(f.tenant(), &auth, &grant, &browser())
            .await;
        assert_eq!(oauth_code(refused), OAuthErrorCode::InvalidClient);
    }
    // Scopes beyond the client's are refused.
    let greedy = TokenRequest {
        scope: Some("orders:write".into()),
        ..grant.clone()
    };
    let refused = f
        .provider
        .token(f.tenant(), &secret_auth(&api), &greedy, &browser())
        .await;
    assert_eq!(oauth_code(refused), OAuthErrorCode::InvalidScope);

    // Rotation: the old secret stops working, the new one works.
    let rotated = f
        .provider
        .rotate_client_secret(f.tenant(), api.client_id)
        .await
        .unwrap();
    let old = f
        .provider
        .token(f.tenant(), &secret_auth(&api), &grant, &browser())
        .await;
    assert_eq!(oauth_code(old), OAuthErrorCode::InvalidClient);
    let new = ClientAuthentication {
        client_id: api.client_id.to_string(),
        client_secret: Some(rotated),
    };
    assert!(
        f.provider
            .token(f.tenant(), &new, &grant, &browser())
            .await
            .is_ok()
    );

    // A disabled client gets nothing.
    f.provider
        .disable_client(f.tenant(), api.client_id, "retired")
        .await
        .unwrap();
    let refused = f.provider.token(f.tenant(), &new, &grant, &browser()).await;
    assert_eq!(oauth_code(refused), OAuthErrorCode::InvalidClient);

    // The stored events hold no secret.
    let events = f
        .store
        .read_stream(
            &StreamId::new(f.tenant(), "oauth_client", api.client_id.as_uuid()),
            StreamQuery::all(),
        )
        .await
        .unwrap();
    let text = format!("{events:?}");
    assert!(!text.contains(secret.expose_secret()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_login_and_max_age_need_a_fresh_sign_in() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    let (verifier, challenge) = pkce();
    let old_session = f.login().await;
    f.advance(120);
    let mut attempt = request(&spa, &challenge);
    attempt.prompt = Some("login".into());
    let validated: ValidatedAuthorization = f
        .provider
        .validate_authorization(f.tenant(), &attempt)
        .await
        .unwrap();
    let refused = f.provider.approve(&validated, old_session).await;
    let Err(AuthnError::OAuth(error)) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(error.code, OAuthErrorCode::LoginRequired);
    let location = error.redirect_to.unwrap();
    assert_eq!(param(&location, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&location, "state").as_deref(), Some("st-123"));
    let fresh = f.login().await;
    let location = f.provider.approve(&validated, fresh).await.unwrap();
    let code = param(&location, "code").unwrap();
    assert!(
        exchange(&f.provider, &f, &spa, &code, &verifier)
            .await
            .is_ok()
    );

    let mut attempt = request(&spa, &challenge);
    attempt.max_age = Some("60".into());
    let validated = f
        .provider
        .validate_authorization(f.tenant(), &attempt)
        .await
        .unwrap();
    let refused = f.provider.approve(&validated, old_session).await;
    assert_eq!(oauth_code(refused), OAuthErrorCode::LoginRequired);

    // A revoked sign-in approves nothing.
    f.provider
        .authn()
        .revoke_session(f.tenant(), fresh, "logout")
        .await
        .unwrap();
    let validated = f
        .provider
        .validate_authorization(f.tenant(), &request(&spa, &challenge))
        .await
        .unwrap();
    let refused = f.provider.approve(&validated, fresh).await;
    assert_eq!(oauth_code(refused), OAuthErrorCode::LoginRequired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_describes_what_is_supported() {
    let f = Fixture::new().await;
    let doc = f.provider.discovery(f.tenant());
    let issuer = f.provider.issuer(f.tenant());
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["request_parameter_supported"], false);
    let scopes: BTreeSet<String> = serde_json::from_value(doc["scopes_supported"].clone()).unwrap();
    assert!(scopes.contains("openid"));
    let _ = f.clock.now();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_tokens_fit_one_browser_and_one_request() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    let (_, challenge) = pkce();
    let original = request(&spa, &challenge);
    let browser = f.provider.new_csrf_cookie().unwrap();
    let token = f
        .provider
        .csrf_token(f.tenant(), &browser, &original)
        .await
        .unwrap();
    let check =
        |browser: Option<SecretString>, token: Option<String>, req: AuthorizationRequest| {
            let provider = f.provider.clone();
            let tenant = f.tenant();
            async move {
                provider
                    .check_csrf(tenant, browser.as_ref(), token.as_deref(), &req)
                    .await
                    .unwrap()
            }
        };
    assert!(check(Some(browser.clone()), Some(token.clone()), original.clone()).await);
    // Another browser (the attacker's cookie), no cookie, no token.
    let other = f.provider.new_csrf_cookie().unwrap();
    assert!(!check(Some(other), Some(token.clone()), original.clone()).await);
    assert!(!check(None, Some(token.clone()), original.clone()).await);
    assert!(!check(Some(browser.clone()), None, original.clone()).await);
    // The token of one request does not fit another (a changed redirect,
    // scope or state).
    let mut changed = original.clone();
    changed.state = Some("other".into());
    assert!(!check(Some(browser.clone()), Some(token.clone()), changed).await);
    // Junk.
    for junk in ["", ".", "x.y", &format!("{token}x"), &"a".repeat(10_000)] {
        assert!(
            !check(
                Some(browser.clone()),
                Some(junk.to_owned()),
                original.clone()
            )
            .await
        );
    }
    // Another tenant's provider cannot use it either.
    let stranger = TenantId::from_uuid(uuid::Uuid::now_v7());
    assert!(
        !f.provider
            .check_csrf(stranger, Some(&browser), Some(&token), &original)
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp_initiated_logout_ends_the_session_and_redirects_only_where_registered() {
    let f = Fixture::new().await;
    let settings = OAuthClientSettings {
        name: "Shop".into(),
        redirect_uris: vec![RedirectUri::parse(REDIRECT).unwrap()],
        post_logout_redirect_uris: vec![RedirectUri::parse("https://app.example.com/bye").unwrap()],
        grants: [GrantType::AuthorizationCode].into_iter().collect(),
        scopes: [Scope::openid()].into_iter().collect(),
    };
    let spa = f
        .provider
        .register_client(
            f.tenant(),
            NewClient {
                kind: ClientKind::Public,
                settings,
            },
        )
        .await
        .unwrap();
    let (verifier, challenge) = pkce();
    let mut attempt = request(&spa, &challenge);
    attempt.scope = Some("openid".into());
    let validated = f
        .provider
        .validate_authorization(f.tenant(), &attempt)
        .await
        .unwrap();
    let location = f
        .provider
        .approve(&validated, f.login().await)
        .await
        .unwrap();
    let code = param(&location, "code").unwrap();
    let tokens = exchange(&f.provider, &f, &spa, &code, &verifier)
        .await
        .unwrap();
    let hint = tokens.id_token.clone().unwrap();

    // A forged hint (payload changed, signature kept), an unregistered
    // redirect, a missing hint: refused, nothing ended.
    let (head, rest) = hint.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged_claims = serde_json::json!({"iss": f.provider.issuer(f.tenant()), "sub": "x",
        "aud": spa.client_id.to_string(), "exp": 0, "iat": 0, "auth_time": 0, "acr": "",
        "amr": [], "azp": "", "sid": tokens.session_id.unwrap().to_string()});
    let forged = format!(
        "{head}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(forged_claims.to_string())
    );
    for bad in [
        security_authn::oidc::LogoutRequest {
            id_token_hint: Some(forged),
            ..Default::default()
        },
        security_authn::oidc::LogoutRequest {
            id_token_hint: Some(hint.clone()),
            post_logout_redirect_uri: Some("https://evil.example/bye".into()),
            ..Default::default()
        },
        security_authn::oidc::LogoutRequest::default(),
    ] {
        let refused = f.provider.end_session(f.tenant(), &bad).await;
        assert!(
            matches!(refused, Err(AuthnError::OAuth(ref e)) if e.redirect_to.is_none()),
            "{refused:?}"
        );
    }
    assert!(
        f.provider
            .authn()
            .validate_access_token(tokens.access_token.expose_secret())
            .await
            .is_ok()
    );
    let location = f
        .provider
        .end_session(
            f.tenant(),
            &security_authn::oidc::LogoutRequest {
                id_token_hint: Some(hint),
                post_logout_redirect_uri: Some("https://app.example.com/bye".into()),
                state: Some("bye-1".into()),
                client_id: Some(spa.client_id.to_string()),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(location.starts_with("https://app.example.com/bye?"));
    assert_eq!(param(&location, "state").as_deref(), Some("bye-1"));
    let refused = f
        .provider
        .authn()
        .validate_access_token(tokens.access_token.expose_secret())
        .await;
    assert!(matches!(refused, Err(TokenError::Revoked)), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_with_mfa_shows_in_amr_and_acr() {
    let f = Fixture::new().await;
    let spa = f.spa().await;
    let authn = f.provider.authn().clone();
    let user = authn
        .admin()
        .user_by_username(f.account, "alice")
        .await
        .unwrap()
        .and_then(|u| u.id)
        .unwrap();
    let enrollment = authn.start_totp_enrollment(f.tenant(), user).await.unwrap();
    let totp =
        security_authn::TotpSecret::from_base32(enrollment.secret_base32.expose_secret()).unwrap();
    let code = authn.config().totp.code_at(&totp, f.clock.now()).unwrap();
    authn
        .confirm_totp_enrollment(f.tenant(), user, &code)
        .await
        .unwrap();
    f.advance(30);
    let LoginOutcome::MfaRequired(challenge) = authn
        .authenticate(
            f.tenant(),
            "alice",
            &SecretString::from(PASSWORD),
            &browser(),
        )
        .await
        .unwrap()
    else {
        panic!("expected an MFA challenge");
    };
    let code = authn.config().totp.code_at(&totp, f.clock.now()).unwrap();
    let LoginOutcome::Authenticated(tokens) = authn
        .verify_mfa(&challenge.challenge, &code, &browser())
        .await
        .unwrap()
    else {
        panic!("expected tokens");
    };
    let (verifier, pkce_challenge) = pkce();
    let validated = f
        .provider
        .validate_authorization(f.tenant(), &request(&spa, &pkce_challenge))
        .await
        .unwrap();
    let location = f
        .provider
        .approve(&validated, tokens.session_id)
        .await
        .unwrap();
    let code = param(&location, "code").unwrap();
    let issued = exchange(&f.provider, &f, &spa, &code, &verifier)
        .await
        .unwrap();
    let id = verify_id_token(&f, issued.id_token.as_deref().unwrap(), &spa).await;
    assert_eq!(id.amr, vec!["pwd", "otp", "mfa"]);
    assert_eq!(id.acr, security_authn::oidc::ACR_MULTI_FACTOR);
}
