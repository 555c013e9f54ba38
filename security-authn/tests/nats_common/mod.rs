//! Shared by the NATS tests: a domain fixture (operator, system account,
//! an "Orders" account and its policy, on memory stores and a manual
//! clock) and a harness that starts Debian's `nats-server` in operator
//! mode on a free loopback port and stops it.
//!
//! A test that needs the server FAILS when it is missing: set
//! `NATS_SERVER_BIN` or install the `nats-server` package.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses its own part of the harness"
)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use security_authn::{NatsAdmin, NatsServerConfig, UserCreds, UserJwtOptions, UserSigner};
use security_core::{
    AccountClaims, AccountId, AdminService, ManualClock, NewPolicy, OperatorId, Permissions,
    PolicyId, Repository, Request, ResponsePermission, SubjectPermissions, UserId,
};
use security_crypto::{MemoryKeyStore, UuidV7Ids};
use security_eventstore::MemoryEventStore;
use tokio::sync::mpsc;

/// Everything a NATS test needs, on memory stores.
pub struct Fixture {
    pub clock: Arc<ManualClock>,
    pub keys: Arc<MemoryKeyStore>,
    pub admin: AdminService,
    pub nats: NatsAdmin,
    pub operator: OperatorId,
    pub system: AccountId,
    pub account: AccountId,
    pub orders_policy: PolicyId,
}

pub fn req() -> Request {
    Request::default()
}

/// Now, to the second (the JWT times are seconds; a real server reads
/// them against its own clock, so the manual clock starts at real time).
pub fn real_now() -> DateTime<Utc> {
    Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap()
}

/// Publish `orders.>` but not `orders.delete`; subscribe `orders.>` and
/// the client's inboxes.
pub fn orders_permissions() -> Permissions {
    Permissions {
        publish: SubjectPermissions::from_patterns(["orders.>"], ["orders.delete"]).unwrap(),
        subscribe: SubjectPermissions::from_patterns(
            ["orders.>", "_INBOX.>"],
            Vec::<String>::new(),
        )
        .unwrap(),
        allow_responses: Some(ResponsePermission::default()),
    }
}

impl Fixture {
    pub async fn new() -> Self {
        Self::at(real_now()).await
    }

    pub async fn at(now: DateTime<Utc>) -> Self {
        let clock = Arc::new(ManualClock::new(now));
        let ids = Arc::new(UuidV7Ids);
        let keys = Arc::new(MemoryKeyStore::with_clock_and_ids(
            clock.clone(),
            ids.clone(),
        ));
        let repo = Repository::new(Arc::new(MemoryEventStore::new()), ids);
        let admin = AdminService::new(repo, clock.clone(), keys.clone());
        let nats = NatsAdmin::new(admin.clone());
        let operator = admin
            .create_operator(&req(), "Test Operator")
            .await
            .unwrap();
        let system = nats
            .create_system_account(&req(), operator, "SYS")
            .await
            .unwrap();
        let account = admin
            .create_account(&req(), operator, "Orders", AccountClaims::default())
            .await
            .unwrap();
        let orders_policy = admin
            .create_policy(
                &req(),
                account.tenant(),
                NewPolicy::new("orders")
                    .description("order service")
                    .permissions(orders_permissions()),
            )
            .await
            .unwrap();
        Self {
            clock,
            keys,
            admin,
            nats,
            operator,
            system,
            account,
            orders_policy,
        }
    }

    /// A user of the Orders account with an nkey and these policies.
    pub async fn user(&self, name: &str, policies: &[PolicyId]) -> UserId {
        let (user, _) = self
            .nats
            .create_user(&req(), self.account, name, BTreeMap::new())
            .await
            .unwrap();
        for policy in policies {
            self.admin
                .assign_policy(&req(), self.account.tenant(), user, *policy)
                .await
                .unwrap();
        }
        user
    }

    pub async fn policy(&self, name: &str, permissions: Permissions) -> PolicyId {
        self.admin
            .create_policy(
                &req(),
                self.account.tenant(),
                NewPolicy::new(name).permissions(permissions),
            )
            .await
            .unwrap()
    }

    pub async fn creds(&self, user: UserId) -> UserCreds {
        self.creds_with(user, UserSigner::Default, &UserJwtOptions::default())
            .await
    }

    pub async fn creds_with(
        &self,
        user: UserId,
        signer: UserSigner,
        options: &UserJwtOptions,
    ) -> UserCreds {
        self.nats
            .user_creds(self.account, user, signer, options)
            .await
            .unwrap()
    }

    /// The server configuration as of now: operator, system account and
    /// the Orders account.
    pub async fn config(&self) -> NatsServerConfig {
        self.nats
            .server_config(self.operator, &[self.account])
            .await
            .unwrap()
    }

    pub fn advance(&self, seconds: i64) {
        self.clock.advance(chrono::Duration::seconds(seconds));
    }
}

// ----- the server -----------------------------------------------------------

/// The `nats-server` binary: `NATS_SERVER_BIN`, Debian's
/// `/usr/sbin/nats-server`, or `nats-server` on the PATH.
pub fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let debian = PathBuf::from("/usr/sbin/nats-server");
    if debian.exists() {
        return debian;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nats-server"))
            .find(|p| p.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "nats-server is not installed: install Debian's `nats-server` package \
             (apt-get install nats-server) or set NATS_SERVER_BIN; these tests need it"
        )
    })
}

/// A free loopback port (never 4222, which belongs to the shared server).
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if port != 4222 {
            return port;
        }
    }
}

/// A `nats-server` started in operator mode; stopped on drop.
pub struct NatsServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server with this configuration on a free port and waits
    /// until it accepts connections.
    pub fn start(config: &NatsServerConfig) -> Self {
        let port = free_port();
        let text = config
            .clone()
            .listen(format!("127.0.0.1:{port}"))
            .render()
            .unwrap();
        Self::start_text(&text, port)
    }

    /// Starts a server from a configuration file as it is (which must make
    /// it listen on 127.0.0.1:`port`).
    pub fn start_file(config_file: &Path, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::spawn(config_file, port, dir)
    }

    fn start_text(text: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.conf");
        std::fs::write(&file, text).unwrap();
        Self::spawn(&file, port, dir)
    }

    fn spawn(config_file: &Path, port: u16, dir: tempfile::TempDir) -> Self {
        let log = dir.path().join("server.log");
        let child = Command::new(server_binary())
            .arg("-c")
            .arg(config_file)
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server could not be started");
        let mut server = Self { child, port, dir };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut err) = self.child.stderr.take() {
                    use std::io::Read as _;
                    let _ = err.read_to_string(&mut stderr);
                }
                panic!(
                    "nats-server exited ({status}) before accepting connections:\n{stderr}\n{}",
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {addr} within 10 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Writes `creds` to a file of this server's scratch directory.
    pub fn creds_file(&self, name: &str, creds: &UserCreds) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.creds"));
        creds.write_file(&path).unwrap();
        path
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- the client ------------------------------------------------------------

/// A client connected with a `.creds` file, and the events (server errors
/// such as permissions violations) its connection reports.
pub struct Client {
    pub client: async_nats::Client,
    pub events: mpsc::UnboundedReceiver<async_nats::Event>,
}

/// Connects with a `.creds` file through `ConnectOptions::with_credentials_file`.
pub async fn connect(
    server: &NatsServer,
    name: &str,
    creds: &UserCreds,
) -> Result<Client, async_nats::ConnectError> {
    let path = server.creds_file(name, creds);
    connect_file(&server.url(), &path).await
}

pub async fn connect_file(url: &str, path: &Path) -> Result<Client, async_nats::ConnectError> {
    let (tx, events) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_credentials_file(path)
        .await
        .unwrap()
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(Some(1))
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event);
            }
        })
        .connect(url)
        .await?;
    Ok(Client { client, events })
}

/// Waits for a server error whose text contains `needle`
/// (case-insensitively); panics after 5 s.
pub async fn expect_server_error(client: &mut Client, needle: &str) -> String {
    let needle = needle.to_lowercase();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let event = tokio::time::timeout_at(deadline, client.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no server error containing {needle:?} within 5 s"))
            .expect("event channel closed");
        if let async_nats::Event::ServerError(error) = event {
            let text = error.to_string();
            if text.to_lowercase().contains(&needle) {
                return text;
            }
        }
    }
}

/// Asserts the connection was refused with an authorization violation.
pub fn assert_refused(result: Result<Client, async_nats::ConnectError>) {
    match result {
        Ok(_) => panic!("the server accepted a connection it must refuse"),
        Err(e) => assert_eq!(
            e.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
            "refused for another reason: {e}"
        ),
    }
}
