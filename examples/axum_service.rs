//! An axum service whose routes require a Bearer token and a permission,
//! through `security_authz::RequirePermissionLayer` (feature `tower`).
//!
//! ```text
//! cargo run --example axum_service --features tower            # self-test, then exit
//! cargo run --example axum_service --features tower -- serve   # keep serving
//! ```
//!
//! The authorizer is the live read model of a memory event store holding
//! one bank with a manager and a customer-service agent. Tokens are checked
//! by a `TokenValidator`; this example uses a fixed table of demo tokens so
//! that it runs alone (a real service uses the JWT validator of
//! `security-authn`). Without `serve`, it answers a few requests from
//! itself over TCP, checks the status codes, and exits (non-zero on a
//! mismatch), so CI can run it.

#![allow(clippy::print_stdout, reason = "an example reports what it does")]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Extension, Path};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use security_authz::{AuthorizationService, RequirePermissionLayer};
use security_core::{
    AccessClaims, Account, AccountClaims, AccountCommand, AccountId, Audience, Clock,
    CommandContext, Credential, InMemoryCheckpoints, OperatorId, Permissions, ProjectionRunner,
    Repository, RoleName, Scope, SequentialIds, TenantId, TokenError, TokenValidator, User,
    UserCommand, UserId,
};
use security_eventstore::MemoryEventStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

/// The wall clock.
#[derive(Debug)]
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Demo tokens. A real service validates signed JWTs (security-authn).
#[derive(Debug)]
struct DemoTokens(HashMap<&'static str, AccessClaims>);

impl TokenValidator for DemoTokens {
    fn validate(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.0.get(token).cloned().ok_or(TokenError::Signature)
    }
}

fn claims(tenant: TenantId, user: UserId) -> AccessClaims {
    let now = Utc::now().timestamp();
    AccessClaims {
        iss: "example".into(),
        sub: user.to_string(),
        aud: Audience::One("loans".into()),
        exp: now + 3600,
        nbf: None,
        iat: now,
        jti: Uuid::now_v7().to_string(),
        tenant_id: tenant,
        user_id: user,
        session_id: None,
        // Ignored by the live authorizer: the read model's roles count.
        roles: Vec::new(),
        permissions: Permissions::default(),
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// One bank, a manager and a customer-service agent; the authorizer caught up.
async fn bank() -> Result<(AuthorizationService, DemoTokens), Failure> {
    let store = Arc::new(MemoryEventStore::new());
    let repo = Repository::new(store.clone(), Arc::new(SequentialIds::new()));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (authz, projection) = AuthorizationService::builder(clock.clone()).build();
    let mut runner = ProjectionRunner::new(
        store,
        Arc::new(InMemoryCheckpoints::new()),
        projection,
        Scope::All,
    )
    .await?;

    let account = AccountId::from_uuid(Uuid::now_v7());
    let tenant = account.tenant();
    let ctx = CommandContext::new(tenant, clock.now());
    let create = AccountCommand::CreateAccount {
        account_id: account,
        name: "Example Bank".into(),
        operator_id: OperatorId::from_uuid(Uuid::now_v7()),
        claims: AccountClaims::default(),
    };
    repo.execute::<Account>(account, &create, &ctx).await?;
    let mut tokens = HashMap::new();
    for (name, role, token) in [
        ("maria", "manager", "manager-token"),
        ("carl", "customer_service", "agent-token"),
    ] {
        let user_id = UserId::from_uuid(Uuid::now_v7());
        let roster = AccountCommand::AddUser {
            user_id,
            username: name.into(),
        };
        repo.execute::<Account>(account, &roster, &ctx).await?;
        let create = UserCommand::CreateUser {
            user_id,
            account_id: account,
            username: name.into(),
            credentials: Credential::Token {
                token_hash: "demo".into(),
                expires_at: None,
            },
            metadata: BTreeMap::default(),
            must_change_password: false,
        };
        repo.execute::<User>(user_id, &create, &ctx).await?;
        repo.execute::<User>(
            user_id,
            &UserCommand::AssignRole {
                role: RoleName::new(role)?,
            },
            &ctx,
        )
        .await?;
        tokens.insert(token, claims(tenant, user_id));
    }
    runner.catch_up().await?;
    Ok((authz, DemoTokens(tokens)))
}

async fn list_loans(Extension(claims): Extension<AccessClaims>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "tenant": claims.tenant_id, "loans": ["loan-1", "loan-2"] }))
}

async fn approve_loan(
    Path(id): Path<String>,
    Extension(claims): Extension<AccessClaims>,
) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "loan": id, "approved_by": claims.user_id }))
}

fn app(authz: &AuthorizationService, tokens: DemoTokens) -> Result<Router, Failure> {
    let validator: Arc<dyn TokenValidator> = Arc::new(tokens);
    let policy = Arc::new(authz.clone());
    let require = |permission: &str| -> Result<RequirePermissionLayer, Failure> {
        Ok(RequirePermissionLayer::new(
            validator.clone(),
            policy.clone(),
            permission.parse()?,
        ))
    };
    Ok(Router::new()
        .route("/loans", get(list_loans).route_layer(require("loan:read")?))
        .route(
            "/loans/{id}/approve",
            post(approve_loan).route_layer(require("loan:approve")?),
        ))
}

/// Sends one HTTP/1.1 request and returns the status code.
async fn status_of(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<u16, Failure> {
    let mut stream = TcpStream::connect(addr).await?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text.split_whitespace().nth(1).ok_or("no status line")?;
    Ok(status.parse()?)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let serve = std::env::args().nth(1).is_some_and(|a| a == "serve");
    let (authz, tokens) = bank().await?;
    let app = app(&authz, tokens)?;
    let listener = TcpListener::bind(if serve {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    })
    .await?;
    let addr = listener.local_addr()?;
    if serve {
        println!("serving on http://{addr} (tokens: manager-token, agent-token)");
        axum::serve(listener, app).await?;
        return Ok(());
    }
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let checks = [
        ("GET", "/loans", Some("agent-token"), 200),
        ("POST", "/loans/loan-1/approve", Some("manager-token"), 200),
        ("POST", "/loans/loan-1/approve", Some("agent-token"), 403),
        ("GET", "/loans", Some("forged-token"), 401),
        ("GET", "/loans", None, 401),
    ];
    let mut failed = 0;
    for (method, path, token, expected) in checks {
        let status = status_of(addr, method, path, token).await?;
        let verdict = if status == expected { "ok" } else { "MISMATCH" };
        println!(
            "{method} {path} as {}: {status} (expected {expected}) {verdict}",
            token.unwrap_or("nobody")
        );
        failed += usize::from(status != expected);
    }
    server.abort();
    if failed > 0 {
        return Err(format!("{failed} self-test request(s) got an unexpected status").into());
    }
    println!("self-test passed");
    Ok(())
}
