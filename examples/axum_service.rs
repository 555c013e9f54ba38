//! A multi-tenant loans service on axum: the one-call setup, the
//! authentication router, permission-checked routes, rate-limit tiers and
//! problem responses.
//!
//! ```text
//! cargo run --example axum_service --features axum,setup                     # in memory
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres ENCRYPTION_KEY=… \
//!   cargo run --example axum_service --features axum,setup,postgres          # on PostgreSQL
//! ```
//!
//! Configured from the environment (and a `.env` file), as
//! `security::setup` describes, plus `BIND` (default `127.0.0.1:3000`) and
//! `TRUSTED_PROXIES` (the networks of the proxies allowed to tell the
//! client's address; default none).
//!
//! Two banks, `acme` and `globex`, each with an admin, a manager and a
//! customer-service agent, are created on the first start; their passwords
//! are generated and printed once. Every tenant's routes live under
//! `/t/{tenant}` (its name or id):
//!
//! | route | needs | tier |
//! |---|---|---|
//! | `/t/{tenant}/auth/…`, `/t/{tenant}/.well-known/jwks.json` | see `security::axum::AuthRouter` | |
//! | `GET /t/{tenant}/loans` | `loan:read` | `api_read` |
//! | `POST /t/{tenant}/loans/{id}/approve` | `loan:approve` | `api_write` |
//! | `POST /t/{tenant}/admin/users/{user_id}/lock` | `user:update` | `api_admin` |
//! | `POST /t/{tenant}/admin/users/{user_id}/unlock` | `user:update` | `api_admin` |
//! | `/t/{tenant id}/oauth/…`, `/t/{tenant id}/.well-known/openid-configuration` | see `security::axum::OidcRoutes` | |
//!
//! The OpenID Connect provider's issuer is `OIDC_ISSUER_BASE` (default
//! `http://{BIND}`) followed by `/t/{tenant id}`.
//!
//! Passkeys (the router's `/auth/passkeys/…` routes) need a relying party:
//! e.g. `WEBAUTHN_RP_ID=localhost WEBAUTHN_RP_ORIGIN=http://localhost:3000`.
//!
//! The end-to-end tests (`e2e/tests/axum_service.rs`,
//! `e2e/tests/passkeys_http.rs`, and `e2e/tests/browser_passkeys.rs` with
//! Chromium) run this same application over real HTTP.

#![allow(clippy::print_stdout, reason = "an example reports what it does")]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use security::authn::NewPasswordUser;
use security::authn::oidc::{OidcConfig, OidcProvider};
use security::axum::{
    AuthRouter, OidcRoutes, Problem, RateLimitLayer, RequirePermission, RequiredPermission,
    SecurityState, TenantSource, TrustedProxies,
};
use security::core::{
    AccountClaims, AccountId, Actor, IdempotencyKey, Request, RoleName, TenantId, UserId,
};
use security::{ExposeSecret, RateTier, SecretString, SecurityServices};

/// `loan:read`.
#[derive(Debug)]
pub(crate) struct ReadLoans;
impl RequiredPermission for ReadLoans {
    const PERMISSION: &'static str = "loan:read";
}

/// `loan:approve`.
#[derive(Debug)]
pub(crate) struct ApproveLoans;
impl RequiredPermission for ApproveLoans {
    const PERMISSION: &'static str = "loan:approve";
}

/// `user:update` (locking and unlocking users).
#[derive(Debug)]
pub(crate) struct ManageUsers;
impl RequiredPermission for ManageUsers {
    const PERMISSION: &'static str = "user:update";
}

/// A demo user: its name, role, id, and its password when this start
/// created it (`None`: it existed already).
#[derive(Debug)]
pub(crate) struct DemoUser {
    /// The username.
    pub(crate) username: &'static str,
    /// Its role.
    pub(crate) role: &'static str,
    /// Its id.
    pub(crate) id: UserId,
    /// Its password, if created now.
    pub(crate) password: Option<SecretString>,
}

/// A demo bank.
#[derive(Debug)]
pub(crate) struct DemoTenant {
    /// Its name in URLs.
    pub(crate) name: &'static str,
    /// Its id.
    pub(crate) id: TenantId,
    /// Its users.
    pub(crate) users: Vec<DemoUser>,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn request(key: &str) -> Result<Request, Failure> {
    Ok(Request::by(Actor::service("axum-service-demo")).idempotent(IdempotencyKey::new(key)?))
}

/// A random password that meets the default policy.
fn new_password() -> Result<SecretString, Failure> {
    let token = security::crypto::generate_token("Demo")?;
    Ok(SecretString::from(format!("{}-9a", token.expose_secret())))
}

/// Creates the two demo banks and their users, once: every request is
/// idempotent, so a restart on the same database finds them again.
pub(crate) async fn seed(services: &SecurityServices) -> Result<Vec<DemoTenant>, Failure> {
    let admin = services.security().admin();
    let operator = admin
        .create_operator(&request("demo-operator")?, "Demo Operator")
        .await?;
    let mut tenants = Vec::new();
    for (name, title) in [("acme", "Acme Bank"), ("globex", "Globex Bank")] {
        let account: AccountId = admin
            .create_account(
                &request(&format!("demo-account-{name}"))?,
                operator,
                title,
                AccountClaims::default(),
            )
            .await?;
        let mut users = Vec::new();
        for (username, role) in [
            ("admin", "admin"),
            ("maria", "manager"),
            ("carl", "customer_service"),
        ] {
            let key = format!("demo-user-{name}-{username}");
            let existing = admin.user_by_username(account, username).await?;
            let (id, password) = if let Some(user) = existing {
                (user.id.ok_or("a stored user has an id")?, None)
            } else {
                let password = new_password()?;
                let id = services
                    .authn()
                    .create_user_with_password(
                        &request(&key)?,
                        account,
                        NewPasswordUser::new(username, password.clone()),
                    )
                    .await?;
                admin
                    .assign_role(
                        &request(&format!("{key}-role"))?,
                        account.tenant(),
                        id,
                        RoleName::new(role)?,
                    )
                    .await?;
                (id, Some(password))
            };
            users.push(DemoUser {
                username,
                role,
                id,
                password,
            });
        }
        tenants.push(DemoTenant {
            name,
            id: account.tenant(),
            users,
        });
    }
    // The authorizer and the sessions view have seen all of it.
    services.caught_up().await?;
    Ok(tenants)
}

async fn list_loans(claims: RequirePermission<ReadLoans>) -> Json<serde_json::Value> {
    Json(json!({
        "tenant": claims.tenant_id,
        "loans": [
            { "id": "loan-1", "amount": 25_000, "status": "pending" },
            { "id": "loan-2", "amount": 180_000, "status": "pending" },
        ],
    }))
}

async fn approve_loan(
    claims: RequirePermission<ApproveLoans>,
    Path(params): Path<BTreeMap<String, String>>,
) -> Json<serde_json::Value> {
    Json(json!({
        "loan": params.get("id"),
        "status": "approved",
        "approved_by": claims.user_id,
    }))
}

fn target_user(params: &BTreeMap<String, String>) -> Result<UserId, Problem> {
    params
        .get("user_id")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| Problem::not_found("user"))
}

async fn lock_user(
    State(state): State<AppState>,
    claims: RequirePermission<ManageUsers>,
    Path(params): Path<BTreeMap<String, String>>,
) -> Result<Response, Problem> {
    let user = target_user(&params)?;
    let request = Request::by(Actor::user(claims.user_id));
    state
        .admin
        .lock_user(
            &request,
            claims.tenant_id,
            user,
            "locked by an administrator",
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn unlock_user(
    State(state): State<AppState>,
    claims: RequirePermission<ManageUsers>,
    Path(params): Path<BTreeMap<String, String>>,
) -> Result<Response, Problem> {
    let user = target_user(&params)?;
    let request = Request::by(Actor::user(claims.user_id));
    state
        .admin
        .unlock_user(&request, claims.tenant_id, user)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The application's state: the security part and its own.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    security: SecurityState,
    admin: security::core::AdminService,
}

impl axum::extract::FromRef<AppState> for SecurityState {
    fn from_ref(state: &AppState) -> Self {
        state.security.clone()
    }
}

/// The security state of the routes: tenants by name or id.
fn security_state(
    services: &SecurityServices,
    tenants: &[DemoTenant],
    proxies: TrustedProxies,
) -> SecurityState {
    let mut names = TenantSource::path();
    for tenant in tenants {
        names = names.name(tenant.name, tenant.id);
    }
    SecurityState::builder_for(services)
        .trusted_proxies(proxies)
        .tenants(names)
        .build()
}

/// The OpenID Connect provider's routes of every tenant, for the issuer
/// base `issuer_base` (the service's public URL).
pub(crate) fn oidc(
    services: &SecurityServices,
    tenants: &[DemoTenant],
    proxies: TrustedProxies,
    issuer_base: &str,
) -> Result<Router, Failure> {
    let security = security_state(services, tenants, proxies);
    let provider = OidcProvider::new(services.authn().clone(), OidcConfig::new(issuer_base))?;
    Ok(Router::new().nest(
        security::axum::TENANT_PREFIX,
        OidcRoutes::new(&security, provider).with_state(security),
    ))
}

/// The whole application: the authentication routes of every tenant and
/// the loans routes, over `services`.
pub(crate) fn app(
    services: &SecurityServices,
    tenants: &[DemoTenant],
    proxies: TrustedProxies,
) -> Router {
    let security = security_state(services, tenants, proxies);
    let state = AppState {
        security: security.clone(),
        admin: services.security().admin().clone(),
    };
    let tier = |t| RateLimitLayer::new(security.clone(), t);
    let loans = Router::new()
        .route("/loans", get(list_loans).layer(tier(RateTier::Read)))
        .route(
            "/loans/{id}/approve",
            post(approve_loan).layer(tier(RateTier::Write)),
        )
        .route(
            "/admin/users/{user_id}/lock",
            post(lock_user).layer(tier(RateTier::Admin)),
        )
        .route(
            "/admin/users/{user_id}/unlock",
            post(unlock_user).layer(tier(RateTier::Admin)),
        )
        .with_state(state);
    Router::new()
        .nest(security::axum::TENANT_PREFIX, loans)
        .merge(AuthRouter::new(security).into_router())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let services = SecurityServices::from_env().await?;
    let tenants = seed(&services).await?;
    let proxies = TrustedProxies::from_env()?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let address = listener.local_addr()?;
    println!("serving on http://{address}");
    for tenant in &tenants {
        println!(
            "tenant {} ({}): http://{address}/t/{}/auth/login",
            tenant.name, tenant.id, tenant.name
        );
        for user in &tenant.users {
            let password = user
                .password
                .as_ref()
                .map_or("(set at the first start)", |p| p.expose_secret());
            println!(
                "  {:<6} {:<17} {} {password}",
                user.username, user.role, user.id
            );
        }
    }
    let issuer_base =
        std::env::var("OIDC_ISSUER_BASE").unwrap_or_else(|_| format!("http://{address}"));
    let router = app(&services, &tenants, proxies.clone()).merge(oidc(
        &services,
        &tenants,
        proxies,
        &issuer_base,
    )?);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(security::setup::shutdown_signal())
    .await?;
    services.shutdown().await;
    Ok(())
}
