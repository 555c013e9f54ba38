//! The OpenID Connect provider over three PostgreSQL-backed replicas: a
//! code issued on one replica is redeemed on another, exactly once when two
//! replicas race for it, and presenting it again on a third revokes what
//! it gave on every replica.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use security::authn::oidc::{
    AuthorizationRequest, ClientAuthentication, NewClient, OAUTH_GRANT, OidcConfig, OidcProvider,
    TokenRequest, TokenResponse,
};
use security::authn::{AuthnError, LoginOutcome};
use security::core::oauth::{ClientKind, GrantType, OAuthClientSettings, RedirectUri, Scope};
use security::core::{EventStore, StreamId, StreamQuery, TokenError};

use crate::common::{Fleet, PASSWORD, Time, client, open_config, secret};

/// Races per run.
const ROUNDS: usize = 100;
const REDIRECT: &str = "https://app.example.com/callback";

fn pkce(round: usize) -> (String, String) {
    let verifier = format!("verifier-{round:04}-{}", uuid::Uuid::now_v7().simple());
    let challenge = URL_SAFE_NO_PAD.encode(security::crypto::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn codes_are_redeemed_once_across_replicas_and_reuse_revokes_everywhere() {
    let fleet = Fleet::postgres_only(open_config(), Time::Real).await;
    fleet.user("alice").await;
    let providers: Vec<OidcProvider> = fleet
        .replicas
        .iter()
        .map(|authn| {
            OidcProvider::new(authn.clone(), OidcConfig::new("https://id.example.com")).unwrap()
        })
        .collect();
    let settings = OAuthClientSettings {
        name: "Shop".into(),
        redirect_uris: vec![RedirectUri::parse(REDIRECT).unwrap()],
        post_logout_redirect_uris: Vec::new(),
        grants: [GrantType::AuthorizationCode, GrantType::RefreshToken]
            .into_iter()
            .collect(),
        scopes: [Scope::openid()].into_iter().collect(),
    };
    let spa = providers[0]
        .register_client(
            fleet.tenant(),
            NewClient {
                kind: ClientKind::Public,
                settings,
            },
        )
        .await
        .unwrap();
    let auth = ClientAuthentication {
        client_id: spa.client_id.to_string(),
        client_secret: None,
    };
    let LoginOutcome::Authenticated(login) = fleet
        .replica(0)
        .authenticate(fleet.tenant(), "alice", &secret(PASSWORD), &client(1))
        .await
        .unwrap()
    else {
        panic!("expected tokens");
    };
    let exchange = |provider: &OidcProvider, code: &str, verifier: &str| {
        let provider = provider.clone();
        let auth = auth.clone();
        let request = TokenRequest {
            grant_type: Some("authorization_code".into()),
            code: Some(SecretString::from(code.to_owned())),
            redirect_uri: Some(REDIRECT.into()),
            code_verifier: Some(SecretString::from(verifier.to_owned())),
            ..TokenRequest::default()
        };
        let tenant = fleet.tenant();
        async move { provider.token(tenant, &auth, &request, &client(2)).await }
    };
    let (mut last, mut once) = (None, 0);
    for round in 0..ROUNDS {
        let (verifier, challenge) = pkce(round);
        let request = AuthorizationRequest {
            response_type: Some("code".into()),
            client_id: Some(spa.client_id.to_string()),
            redirect_uri: Some(REDIRECT.into()),
            scope: Some("openid".into()),
            code_challenge: Some(challenge),
            code_challenge_method: Some("S256".into()),
            ..AuthorizationRequest::default()
        };
        let issuer = &providers[round % 3];
        let validated = issuer
            .validate_authorization(fleet.tenant(), &request)
            .await
            .unwrap();
        let location = issuer.approve(&validated, login.session_id).await.unwrap();
        let code = url_code(&location);
        // Two other replicas race for the code.
        let (a, b) = tokio::join!(
            exchange(&providers[(round + 1) % 3], &code, &verifier),
            exchange(&providers[(round + 2) % 3], &code, &verifier),
        );
        // Never two sets of tokens. One, unless the loser's reuse check
        // found the grant first: then the reuse revokes the winner's
        // session (whichever wrote first), and both end refused.
        let winners = usize::from(a.is_ok()) + usize::from(b.is_ok());
        assert!(winners <= 1, "round {round}: {a:?} / {b:?}");
        for loser in [a.as_ref().err(), b.as_ref().err()].into_iter().flatten() {
            assert!(
                matches!(loser, AuthnError::OAuth(_)),
                "round {round}: {loser:?}"
            );
        }
        if let Some(tokens) = a.ok().or(b.ok()) {
            let grant = StreamId::new(
                fleet.tenant(),
                OAUTH_GRANT,
                tokens.session_id.unwrap().as_uuid(),
            );
            let reused = fleet.stores[0]
                .read_stream(&grant, StreamQuery::all())
                .await
                .unwrap()
                .iter()
                .any(|e| &*e.event_type == "OAuthCodeReused");
            let result = fleet
                .replica(round)
                .validate_access_token(tokens.access_token.expose_secret())
                .await;
            if reused {
                revoked_everywhere(&fleet, &tokens).await;
            } else {
                assert!(result.is_ok(), "round {round}: {result:?}");
                once += 1;
                last = Some((round, code, verifier, tokens));
            }
        }
    }
    // Most races have a winner whose tokens stand.
    assert!(once > ROUNDS / 2, "{once} of {ROUNDS}");
    let (round, code, verifier, tokens) = last.unwrap();
    // Presented again on the replica that issued it: refused, and every
    // replica refuses the tokens it gave (within the projection's lag).
    let again = exchange(&providers[round % 3], &code, &verifier).await;
    assert!(matches!(again, Err(AuthnError::OAuth(_))), "{again:?}");
    revoked_everywhere(&fleet, &tokens).await;
    fleet.cleanup().await;
}

/// Every replica refuses the access token (within the projection's lag).
async fn revoked_everywhere(fleet: &Fleet, tokens: &TokenResponse) {
    for replica in &fleet.replicas {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let result = replica
                .validate_access_token(tokens.access_token.expose_secret())
                .await;
            if matches!(result, Err(TokenError::Revoked)) {
                break;
            }
            assert!(Instant::now() < deadline, "still accepted: {result:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn url_code(location: &str) -> String {
    let query = location.split_once('?').unwrap().1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("code="))
        .unwrap()
        .to_owned()
}
