//! A `tower` layer that requires a Bearer token, validates it, checks a
//! permission and puts the claims in the request extensions (feature
//! `tower`).

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use secrecy::ExposeSecret;
use security_core::{AccessClaims, Permission, TokenValidator};

use crate::audit::AuditedRequest;
use crate::claims_policy::ClaimsPolicy;
use crate::secure::bearer_token;

/// Finds the client's address of a request in its extensions and headers.
type ClientAddress =
    Arc<dyn Fn(&http::Extensions, &http::HeaderMap) -> Option<IpAddr> + Send + Sync>;

/// The default client address: a [`SocketAddr`] or an [`IpAddr`] the
/// server put in the request's extensions. Forwarded headers are not read
/// (anyone can send them); behind a proxy, configure an extractor that
/// trusts it ([`RequirePermissionLayer::client_address`]).
fn peer_address(extensions: &http::Extensions, _: &http::HeaderMap) -> Option<IpAddr> {
    extensions
        .get::<SocketAddr>()
        .map(SocketAddr::ip)
        .or_else(|| extensions.get::<IpAddr>().copied())
}

/// Requires a valid Bearer token whose holder has a permission.
///
/// - no `Authorization` header, or not `Bearer <token>`: `401` with
///   `WWW-Authenticate: Bearer`;
/// - a token the [`TokenValidator`] refuses: `401` with
///   `WWW-Authenticate: Bearer error="invalid_token"`;
/// - a holder the [`ClaimsPolicy`] denies: `403` with
///   `WWW-Authenticate: Bearer error="insufficient_scope"`;
/// - otherwise the request goes on with the [`AccessClaims`] in its
///   extensions (axum: `Extension<AccessClaims>`).
///
/// Error responses have an empty body and never say why beyond the status.
///
/// A denial is recorded (by a policy that records decisions, such as
/// [`AuthorizationService`](crate::AuthorizationService)) with the
/// request's method, its path without the query string, and the client's
/// address found by the [`client_address`](Self::client_address)
/// extractor.
#[derive(Clone)]
pub struct RequirePermissionLayer {
    validator: Arc<dyn TokenValidator>,
    policy: Arc<dyn ClaimsPolicy>,
    permission: Permission,
    client_address: ClientAddress,
}

impl fmt::Debug for RequirePermissionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequirePermissionLayer")
            .field("permission", &self.permission)
            .finish_non_exhaustive()
    }
}

impl RequirePermissionLayer {
    /// A layer that validates tokens with `validator` and requires
    /// `permission` according to `policy`.
    pub fn new(
        validator: Arc<dyn TokenValidator>,
        policy: Arc<dyn ClaimsPolicy>,
        permission: Permission,
    ) -> Self {
        Self {
            validator,
            policy,
            permission,
            client_address: Arc::new(peer_address),
        }
    }

    /// Sets how the client's address is found (the default reads a
    /// [`SocketAddr`] or [`IpAddr`] extension; an axum server passes
    /// `ConnectInfo<SocketAddr>`'s address or its trusted-proxy client
    /// address).
    pub fn client_address(
        mut self,
        extractor: impl Fn(&http::Extensions, &http::HeaderMap) -> Option<IpAddr>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.client_address = Arc::new(extractor);
        self
    }

    /// What a denial records about a request.
    fn audited<B>(&self, request: &Request<B>) -> AuditedRequest {
        AuditedRequest::new(
            request.method().as_str(),
            request.uri().path(),
            (self.client_address)(request.extensions(), request.headers()),
        )
    }

    /// The Bearer token of a request, if it has one.
    fn token<B>(request: &Request<B>) -> Result<secrecy::SecretString, Refusal> {
        let header = request
            .headers()
            .get(AUTHORIZATION)
            .ok_or(Refusal::NoToken)?;
        let value = header.to_str().map_err(|_| Refusal::NoToken)?;
        bearer_token(value).map_err(|_| Refusal::NoToken)
    }

    async fn check(&self, token: &str, request: AuditedRequest) -> Result<AccessClaims, Refusal> {
        let claims = self
            .validator
            .validate_async(token)
            .await
            .map_err(|_| Refusal::InvalidToken)?;
        if self
            .policy
            .check_request(&claims, &self.permission, &request)
            .is_allowed()
        {
            Ok(claims)
        } else {
            Err(Refusal::Forbidden)
        }
    }
}

impl<S> tower_layer::Layer<S> for RequirePermissionLayer {
    type Service = RequirePermission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePermission {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Refusal {
    NoToken,
    InvalidToken,
    Forbidden,
}

impl Refusal {
    fn response<B: Default>(self) -> Response<B> {
        let (status, challenge) = match self {
            Self::NoToken => (StatusCode::UNAUTHORIZED, "Bearer"),
            Self::InvalidToken => (StatusCode::UNAUTHORIZED, "Bearer error=\"invalid_token\""),
            Self::Forbidden => (StatusCode::FORBIDDEN, "Bearer error=\"insufficient_scope\""),
        };
        let mut response = Response::new(B::default());
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        response
    }
}

/// The service [`RequirePermissionLayer`] wraps around an inner one.
#[derive(Clone)]
pub struct RequirePermission<S> {
    inner: S,
    layer: RequirePermissionLayer,
}

impl<S> fmt::Debug for RequirePermission<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequirePermission")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for RequirePermission<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let token = match RequirePermissionLayer::token(&request) {
            Ok(token) => token,
            Err(refusal) => return Box::pin(async move { Ok(refusal.response()) }),
        };
        // The ready service is the one `poll_ready` was called on: take it
        // and leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let audited = layer.audited(&request);
        Box::pin(async move {
            match layer.check(token.expose_secret(), audited).await {
                Err(refusal) => Ok(refusal.response()),
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    ready.call(request).await
                }
            }
        })
    }
}
