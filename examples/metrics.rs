//! Metrics in the Prometheus text format, with everything in memory.
//!
//! Installs the Prometheus recorder, then logs in (a good password, wrong
//! ones until the user is locked, the locked user, an unknown username),
//! validates tokens (a good one, a forged one), asks authorization
//! questions (granted and denied), runs a projection; and prints what a
//! Prometheus server would scrape. With `--serve ADDR` it then serves the
//! text on `http://ADDR/metrics` until Ctrl-C.
//!
//! ```sh
//! cargo run --example metrics --features prometheus
//! cargo run --example metrics --features prometheus -- --serve 127.0.0.1:9184
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::error::Error;
use std::sync::Arc;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::{ExposeSecret, SecretString};
use security::Security;
use security::authn::{AuthnConfig, LoginOutcome};
use security::authz::{Principal, Resource};
use security::core::{
    AccountClaims, Actor, ClientInfo, InMemoryCheckpoints, Permission, ProjectionRunner, Request,
    RoleName, Scope,
};
use security::crypto::{Argon2Config, Argon2PasswordHasher};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let serve = match std::env::args().nth(1).as_deref() {
        Some("--serve") => Some(std::env::args().nth(2).ok_or("--serve needs an address")?),
        Some(other) => return Err(format!("unknown argument {other}").into()),
        None => None,
    };

    // The recorder first: metrics recorded before it is installed are lost.
    // Login durations as a histogram with buckets (summaries otherwise).
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(security::observe::LOGIN_DURATION.to_owned()),
            &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
        )?
        .install_recorder()?;
    security::observe::describe_metrics();

    work().await?;

    print!("{}", prometheus.render());
    if let Some(address) = serve {
        serve_metrics(&address, prometheus).await?;
    }
    Ok(())
}

/// Logins, token validations and authorization decisions on a tenant in
/// memory.
async fn work() -> Result<(), Box<dyn Error>> {
    // Cheap hashing for a demonstration (production uses the OWASP default).
    let cost = Argon2Config {
        memory_kib: 4096,
        iterations: 1,
        ..Argon2Config::OWASP
    };
    let security = Security::builder()
        .password_hasher(Arc::new(Argon2PasswordHasher::new(cost)?))
        .build()?;
    // Three wrong passwords in a row lock a user (five by default, which
    // is also the per-username rate limit: the lock would not show).
    let mut config = AuthnConfig::default();
    config.lockout.max_failures = 3;
    let authn = security.authentication().config(config).build()?;
    let admin = security.admin();
    let request = Request::by(Actor::service("metrics-example"));
    let operator = admin.create_operator(&request, "Operator").await?;
    let account = admin
        .create_account(&request, operator, "Bank", AccountClaims::default())
        .await?;
    let tenant = account.tenant();
    let password = SecretString::from("Correct-Horse-Battery-9");
    let mut users = Vec::new();
    for name in ["alice", "bob"] {
        let user = authn
            .create_user_with_password(
                &Request::default(),
                account,
                security::prelude::NewPasswordUser::new(name, password.clone()),
            )
            .await?;
        users.push(user);
    }
    admin
        .assign_role(&request, tenant, users[0], RoleName::new("officer")?)
        .await?;

    // Logins: alice gets in; bob's guesser locks him (three wrong
    // passwords), after which even the right one is refused; an unknown
    // username is refused like a wrong password.
    let alice = ClientInfo::new(Some("203.0.113.1".parse()?), Some("metrics-example"));
    let guesser = ClientInfo::new(Some("198.51.100.66".parse()?), Some("curl/8"));
    let LoginOutcome::Authenticated(tokens) = authn
        .authenticate(tenant, "alice", &password, &alice)
        .await?
    else {
        return Err("alice has no MFA".into());
    };
    let wrong = SecretString::from("Wrong-Horse-Battery-0");
    for _ in 0..3 {
        let refused = authn.authenticate(tenant, "bob", &wrong, &guesser).await;
        println!("# bob, wrong password: {:?}", refused.err());
    }
    let locked = authn.authenticate(tenant, "bob", &password, &alice).await;
    println!("# bob, right password while locked: {:?}", locked.err());
    let unknown = authn.authenticate(tenant, "mallory", &wrong, &alice).await;
    println!("# unknown username: {:?}", unknown.err());

    // Token validations: the real token, and one with a forged payload.
    let token = tokens.access_token.expose_secret();
    authn.validate_access_token(token).await?;
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.eyJzdWIiOiJhZG1pbiJ9.{}", parts[0], parts[2]);
    let refused = authn.validate_access_token(&forged).await;
    println!("# forged token: {:?}", refused.err());

    // Authorization: a read model fed from the store (its lag is a gauge),
    // then one granted and one denied permission, one denied publish.
    let (authz, projection) = security.authorization().build();
    let mut runner = ProjectionRunner::new(
        Arc::clone(security.store()),
        Arc::new(InMemoryCheckpoints::new()),
        projection,
        Scope::All,
    )
    .await?;
    runner.catch_up().await?;
    let principal = Principal::new(tenant, users[0]);
    let here = Resource::in_tenant(tenant);
    for permission in ["transaction:approve", "user:delete"] {
        let permission: Permission = permission.parse()?;
        let decision = authz.authorize(&principal, &permission, &here);
        println!("# alice {permission}: {decision}");
    }
    let decision = authz.authorize_publish(&principal, "orders.created");
    println!("# alice publish orders.created: {decision}\n");
    Ok(())
}

/// Serves the text on `/metrics` (a bare HTTP/1.1 responder: enough for a
/// Prometheus scrape or curl) until the process is stopped.
async fn serve_metrics(address: &str, prometheus: PrometheusHandle) -> Result<(), Box<dyn Error>> {
    #![allow(
        clippy::infinite_loop,
        reason = "it serves until the process is stopped"
    )]
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind(address).await?;
    println!(
        "# serving http://{}/metrics (Ctrl-C stops)",
        listener.local_addr()?
    );
    loop {
        let (mut stream, _) = listener.accept().await?;
        let mut request = [0_u8; 1024];
        let read = stream.read(&mut request).await?;
        let wanted = request[..read].starts_with(b"GET /metrics ");
        let (status, body) = if wanted {
            ("200 OK", prometheus.render())
        } else {
            ("404 Not Found", String::new())
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await?;
    }
}
