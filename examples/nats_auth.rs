//! NATS decentralized auth, end to end: creates an operator (with its
//! system account), an account, a policy and a user, and writes into a
//! folder what a stock `nats-server` in operator mode needs:
//!
//! - `operator.jwt`: the operator JWT, the root of trust;
//! - `nats-server.conf`: the operator, the system account and a MEMORY
//!   resolver preloaded with the account JWTs;
//! - `user.creds`: the user's JWT and nkey seed (a secret: mode 0600).
//!
//! Then it prints how to start the server and use the credentials.
//!
//! ```text
//! cargo run --example nats_auth -- [FOLDER] [PORT]     # defaults: ./nats-auth 4333
//! nats-server -c FOLDER/nats-server.conf
//! ```
//!
//! The user may publish to `orders.>` except `orders.delete` and subscribe
//! to `orders.>`: the server enforces it. The keys live in a memory key
//! store and die with this process; the files written stay valid (a real
//! deployment keeps its keys in an `EnvelopeKeyStore` and its events in a
//! durable store, and reissues JWTs from them).

#![allow(clippy::print_stdout, reason = "an example reports to its user")]

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use security_authn::{NatsAdmin, UserJwtOptions, UserSigner};
use security_core::{
    AccountClaims, AdminService, NewPolicy, Permissions, Repository, Request, ResponsePermission,
    SubjectPermissions,
};
use security_crypto::{MemoryKeyStore, SystemClock, UuidV7Ids};
use security_eventstore::MemoryEventStore;

/// The files the example wrote.
#[derive(Debug)]
pub(crate) struct Written {
    /// The operator JWT.
    pub(crate) operator_jwt: PathBuf,
    /// The server configuration.
    pub(crate) server_config: PathBuf,
    /// The user's credentials.
    pub(crate) user_creds: PathBuf,
    /// The port the configuration listens on (127.0.0.1).
    pub(crate) port: u16,
}

/// Creates the operator, account, policy and user, and writes the files
/// into `folder` (created if missing) for a server on 127.0.0.1:`port`.
pub(crate) async fn write_files(folder: &Path, port: u16) -> Result<Written, Box<dyn Error>> {
    let clock = Arc::new(SystemClock);
    let ids = Arc::new(UuidV7Ids);
    let keys = Arc::new(MemoryKeyStore::with_clock_and_ids(
        clock.clone(),
        ids.clone(),
    ));
    let repo = Repository::new(Arc::new(MemoryEventStore::new()), ids);
    let admin = AdminService::new(repo, clock, keys);
    let nats = NatsAdmin::new(admin.clone());
    let request = Request::default();

    // The operator and its system account (the server needs both).
    let operator = admin.create_operator(&request, "Demo Operator").await?;
    nats.create_system_account(&request, operator, "SYS")
        .await?;

    // A tenant: every user may use its inbox for replies.
    let claims = AccountClaims {
        default_permissions: Permissions {
            subscribe: SubjectPermissions::from_patterns(["_INBOX.>"], Vec::<String>::new())?,
            ..Permissions::default()
        },
        ..AccountClaims::default()
    };
    let account = admin
        .create_account(&request, operator, "Orders", claims)
        .await?;

    // A policy, and a user holding it.
    let permissions = Permissions {
        publish: SubjectPermissions::from_patterns(["orders.>"], ["orders.delete"])?,
        subscribe: SubjectPermissions::from_patterns(["orders.>"], Vec::<String>::new())?,
        allow_responses: Some(ResponsePermission::default()),
    };
    let policy = admin
        .create_policy(
            &request,
            account.tenant(),
            NewPolicy::new("order-service")
                .description("publishes and reads orders, never deletes them")
                .permissions(permissions),
        )
        .await?;
    let (user, _) = nats
        .create_user(&request, account, "order-service", BTreeMap::new())
        .await?;
    admin
        .assign_policy(&request, account.tenant(), user, policy)
        .await?;

    // The files.
    std::fs::create_dir_all(folder)?;
    let folder = folder.canonicalize()?;
    let operator_jwt = folder.join("operator.jwt");
    std::fs::write(&operator_jwt, nats.operator_jwt(operator).await? + "\n")?;

    let mut config = nats
        .server_config(operator, &[account])
        .await?
        .listen(format!("127.0.0.1:{port}"));
    // Point the server at the file just written when its path can be
    // quoted safely; otherwise the JWT stays inline.
    if let Some(path) = operator_jwt.to_str() {
        let by_path = config.clone().operator_path(path);
        if by_path.check().is_ok() {
            config = by_path;
        }
    }
    let server_config = folder.join("nats-server.conf");
    std::fs::write(&server_config, config.render()?)?;

    let creds = nats
        .user_creds(
            account,
            user,
            UserSigner::Default,
            &UserJwtOptions::default(),
        )
        .await?;
    let user_creds = folder.join("user.creds");
    creds.write_file(&user_creds)?;

    Ok(Written {
        operator_jwt,
        server_config,
        user_creds,
        port,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let folder = PathBuf::from(args.next().unwrap_or_else(|| "nats-auth".to_owned()));
    let port = match args.next() {
        Some(port) => port.parse()?,
        None => 4333,
    };
    let written = write_files(&folder, port).await?;
    let creds = written.user_creds.display();
    let url = format!("nats://127.0.0.1:{}", written.port);
    println!("Wrote:");
    println!("  {}", written.operator_jwt.display());
    println!("  {}", written.server_config.display());
    println!("  {creds}   (secret: holds the user's nkey seed)");
    println!();
    println!("Start the server:");
    println!("  nats-server -c {}", written.server_config.display());
    println!();
    println!("Then, with the nats CLI:");
    println!("  nats --server {url} --creds {creds} sub 'orders.>'");
    println!("  nats --server {url} --creds {creds} pub orders.created 'order 1'");
    println!("  nats --server {url} --creds {creds} pub orders.delete 'order 1'   # refused");
    Ok(())
}
