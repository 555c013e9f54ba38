//! The layer on one replica and tokens of another; a database outage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use security::authn::LoginOutcome;
use security::authz::{RequirePermissionLayer, TokenRoles};
use security::core::{AccountClaims, Permission, Request, RoleName, TokenError, TokenValidator};

use crate::common::{Fleet, PASSWORD, Proxy, Time, client, open_config, secret};

/// The application behind the layer: always 200.
#[derive(Clone)]
struct Ok200;

impl tower_service::Service<http::Request<String>> for Ok200 {
    type Response = http::Response<String>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<String>) -> Self::Future {
        std::future::ready(Ok(http::Response::new("ok".to_owned())))
    }
}

async fn status(service: &mut security::authz::RequirePermission<Ok200>, token: &str) -> u16 {
    use tower_service::Service as _;
    let request = http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    service.call(request).await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_layer_on_one_replica_accepts_tokens_of_another_and_refuses_a_revoked_key() {
    let fleet = Fleet::new(open_config(), Time::Real).await;
    let admin = fleet.replica(0).admin();
    let operator = admin
        .create_operator(&Request::default(), "ops-layer")
        .await
        .unwrap();
    let layer = RequirePermissionLayer::new(
        fleet.replica(1).validator() as Arc<dyn TokenValidator>,
        Arc::new(TokenRoles),
        Permission::parse("report:view").unwrap(),
    );
    let mut service = tower_layer::Layer::layer(&layer, Ok200);
    let mut delays = Vec::new();
    for round in 0..100_u32 {
        // A new tenant: its signing key is made on replica A by this login.
        let account = admin
            .create_account(
                &Request::default(),
                operator,
                &format!("t-{round}"),
                AccountClaims::default(),
            )
            .await
            .unwrap();
        let user = fleet.user_in(account, "auditor").await;
        admin
            .assign_role(
                &Request::default(),
                account.tenant(),
                user,
                RoleName::new("auditor").unwrap(),
            )
            .await
            .unwrap();
        let LoginOutcome::Authenticated(tokens) = fleet
            .replica(0)
            .authenticate(
                account.tenant(),
                "auditor",
                &secret(PASSWORD),
                &client(round),
            )
            .await
            .unwrap()
        else {
            panic!("expected tokens")
        };
        let token = tokens.access_token.expose_secret().to_owned();
        // Replica B's layer accepts it at once.
        assert_eq!(status(&mut service, &token).await, 200, "round {round}");
        // A rotates the tenant's key and revokes the old one; B refuses
        // the old key's tokens within a second.
        let next = fleet
            .replica(0)
            .rotate_signing_key(account.tenant())
            .await
            .unwrap();
        let header_kid = token_kid(&token);
        assert_ne!(next.to_string(), header_kid, "round {round}");
        fleet
            .replica(0)
            .revoke_signing_key(account.tenant(), header_kid.parse().unwrap())
            .await
            .unwrap();
        let start = Instant::now();
        while status(&mut service, &token).await != 401 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "round {round}: never refused"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        delays.push(start.elapsed());
        assert_eq!(
            fleet
                .replica(2)
                .validator()
                .validate_async(&token)
                .await
                .unwrap_err(),
            TokenError::RevokedKey
        );
    }
    let p99 = crate::common::percentile(delays, 99);
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?}");
    fleet.cleanup().await;
}

fn token_kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    value["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_revocation_projection_recovers_after_a_database_outage() {
    let proxy = Proxy::start().await;
    let fleet = Fleet::with_ports(open_config(), Time::Real, &[None, None, Some(proxy.port)]).await;
    let tenant = fleet.tenant();
    let c = fleet.replica(2);
    for round in 0..3_u32 {
        let name = format!("locked-{round}");
        let user = fleet.user(&name).await;
        let tokens = fleet
            .replica(0)
            .authenticate(tenant, &name, &secret(PASSWORD), &client(round))
            .await
            .unwrap()
            .into_tokens()
            .unwrap();
        let token = tokens.access_token.expose_secret().to_owned();
        c.validate_access_token(&token).await.unwrap();
        let restarts = c.revocation_health().await.restarts;
        // PostgreSQL goes away for C; meanwhile A locks the user.
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(2)).await;
        fleet
            .replica(0)
            .admin()
            .lock_user(&Request::default(), tenant, user, "outage test")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(c.validator().validate(&token).is_ok(), "C cannot know yet");
        proxy.restore();
        // C's projection resumes by itself and refuses the token.
        let start = Instant::now();
        while c.validator().validate(&token).is_ok() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "round {round}: C still accepts a locked user's token: {:?}",
                c.revocation_health().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let health = c.revocation_health().await;
        assert!(health.restarts > restarts, "round {round}: {health:?}");
        let start = Instant::now();
        while !c.revocation_health().await.live {
            assert!(start.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    fleet.cleanup().await;
}
