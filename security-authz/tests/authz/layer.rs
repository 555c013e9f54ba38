//! The tower layer: Bearer token, validation, permission, claims handed on.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use security_authz::{RequirePermissionLayer, TokenRoles};
use security_core::*;
use tower_layer::Layer;
use tower_service::Service;

use crate::common::{World, perm};
use crate::secure::{StaticValidator, claims};

/// Echoes the user id the layer put in the extensions.
#[derive(Clone, Debug)]
struct Echo;

impl Service<Request<String>> for Echo {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<String>) -> Self::Future {
        let user = request
            .extensions()
            .get::<AccessClaims>()
            .map(|c| c.user_id.to_string())
            .unwrap_or_default();
        ready(Ok(Response::new(user)))
    }
}

async fn send(
    service: &mut impl Service<Request<String>, Response = Response<String>, Error = Infallible>,
    auth: Option<&str>,
) -> Response<String> {
    let mut builder = Request::builder().uri("/loans");
    if let Some(auth) = auth {
        builder = builder.header("authorization", auth);
    }
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .unwrap();
    service
        .call(builder.body(String::new()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_layer_requires_a_valid_token_and_the_permission() {
    let mut w = World::new().await;
    let bank = w.account("bank").await;
    let manager = w.user(bank, "manager", &["manager"]).await;
    let cs = w.user(bank, "cs", &["customer_service"]).await;
    w.sync().await;
    let tenant = bank.tenant();
    let validator = StaticValidator::default()
        // The token says admin, but the read model says customer_service: the model wins.
        .with(
            "cs-token",
            claims(tenant, cs, &["admin"], Permissions::default()),
        )
        .with(
            "manager-token",
            claims(tenant, manager, &["manager"], Permissions::default()),
        );
    let validator: Arc<dyn TokenValidator> = Arc::new(validator);
    let layer = RequirePermissionLayer::new(
        validator.clone(),
        Arc::new(w.authz.clone()),
        perm("loan:approve"),
    );
    let mut service = layer.layer(Echo);

    let ok = send(&mut service, Some("Bearer manager-token")).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.body(), &manager.to_string());

    let none = send(&mut service, None).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let basic = send(&mut service, Some("Basic dXNlcjpwYXNz")).await;
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let forged = send(&mut service, Some("Bearer forged")).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        forged.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let forbidden = send(&mut service, Some("Bearer cs-token")).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        forbidden.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\""
    );
    assert!(forbidden.body().is_empty());

    // Without a read model, the token's roles decide.
    let mut by_token =
        RequirePermissionLayer::new(validator, Arc::new(TokenRoles), perm("loan:approve"))
            .layer(Echo);
    assert_eq!(
        send(&mut by_token, Some("Bearer cs-token")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_denial_through_the_layer_records_the_method_path_and_client_address() {
    use security_authz::{AUDIT_AGGREGATE_TYPE, AuditedRequest, AuthzAuditEvent};

    let mut w = World::new().await;
    let bank = w.account("bank").await;
    let cs = w.user(bank, "cs", &["customer_service"]).await;
    w.sync().await;
    let tenant = bank.tenant();
    let validator: Arc<dyn TokenValidator> = Arc::new(StaticValidator::default().with(
        "cs-token",
        claims(tenant, cs, &["customer_service"], Permissions::default()),
    ));
    let mut service =
        RequirePermissionLayer::new(validator, Arc::new(w.authz.clone()), perm("loan:approve"))
            .layer(Echo);

    let peer: std::net::SocketAddr = "203.0.113.7:52114".parse().unwrap();
    let mut request = Request::builder()
        .method("POST")
        .uri("/loans/17/approve?token=leaked-secret&x=1")
        .header("authorization", "Bearer cs-token")
        .body(String::new())
        .unwrap();
    request.extensions_mut().insert(peer);
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .unwrap();
    let response = service.call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    assert_eq!(w.writer.write_pending().await.unwrap(), 1, "one denial");
    let stream = StreamId::new(tenant, AUDIT_AGGREGATE_TYPE, cs.as_uuid());
    let events = w
        .store
        .read_stream(&stream, StreamQuery::all())
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let text = serde_json::to_string(&*events[0].payload).unwrap();
    assert!(
        !text.contains("leaked-secret"),
        "the query string is never recorded: {text}"
    );
    match events[0].decode::<AuthzAuditEvent>().unwrap() {
        AuthzAuditEvent::AccessDenied { request, .. } => assert_eq!(
            request,
            Some(AuditedRequest {
                method: "POST".into(),
                path: "/loans/17/approve".into(),
                client: Some(peer.ip()),
            })
        ),
        other @ AuthzAuditEvent::AccessGranted { .. } => panic!("expected a denial, got {other:?}"),
    }

    // A configured extractor (a trusted proxy's header, say) is used instead.
    let validator: Arc<dyn TokenValidator> = Arc::new(StaticValidator::default().with(
        "cs-token",
        claims(tenant, cs, &["customer_service"], Permissions::default()),
    ));
    let mut behind_proxy =
        RequirePermissionLayer::new(validator, Arc::new(w.authz.clone()), perm("loan:approve"))
            .client_address(|_, headers| {
                headers
                    .get("x-client")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
            })
            .layer(Echo);
    let request = Request::builder()
        .uri("/loans")
        .header("authorization", "Bearer cs-token")
        .header("x-client", "198.51.100.4")
        .body(String::new())
        .unwrap();
    std::future::poll_fn(|cx| behind_proxy.poll_ready(cx))
        .await
        .unwrap();
    assert_eq!(
        behind_proxy.call(request).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    w.writer.write_pending().await.unwrap();
    let events = w
        .store
        .read_stream(&stream, StreamQuery::all())
        .await
        .unwrap();
    match events[1].decode::<AuthzAuditEvent>().unwrap() {
        AuthzAuditEvent::AccessDenied { request, .. } => {
            let request = request.expect("the request is recorded");
            assert_eq!(request.method, "GET");
            assert_eq!(request.path, "/loans");
            assert_eq!(request.client, Some("198.51.100.4".parse().unwrap()));
        }
        other @ AuthzAuditEvent::AccessGranted { .. } => panic!("expected a denial, got {other:?}"),
    }
}
