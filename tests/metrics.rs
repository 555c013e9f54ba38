//! The metrics, scraped in the Prometheus text format, move by exactly what
//! was done: logins by outcome, throttles, lockouts, MFA outcomes, token
//! validations, authorization decisions, projection lag and dead letters;
//! with PostgreSQL, the outbox lag.
//!
//! One recorder is installed for the whole binary; the tests take turns
//! (they share counters) and compare scrapes taken before and after.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[cfg(feature = "postgres")]
#[path = "support/pg.rs"]
mod pg;

use std::sync::{Arc, OnceLock};

use chrono::{Duration, TimeZone, Utc};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::{ExposeSecret, SecretString};
use security::Security;
use security::authn::{AuthenticationService, AuthnConfig, AuthnError, LoginOutcome, TotpSecret};
use security::authz::{Principal, Resource};
use security::core::{
    AccountClaims, AccountId, Actor, ClientInfo, Clock, InMemoryCheckpoints, ManualClock,
    Permission, Projection, ProjectionError, ProjectionRunner, RateLimit, Request, RoleName, Scope,
    StoredEvent, TenantId, UserId,
};
use security::crypto::{Argon2Config, Argon2PasswordHasher};

/// The binary's recorder.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .expect("no other recorder in this binary");
        security::observe::describe_metrics();
        handle
    })
}

/// One test at a time: they share the counters.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A scrape of the Prometheus text.
struct Scrape(String);

impl Scrape {
    fn now() -> Self {
        Self(recorder().render())
    }

    /// The value of the sample of `name` whose labels are exactly `labels`
    /// (0 when there is none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        wanted.sort();
        for line in self.0.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let (metric, mut found) = match series.split_once('{') {
                Some((metric, rest)) => (
                    metric,
                    rest.trim_end_matches('}')
                        .split(',')
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                ),
                None => (series, Vec::new()),
            };
            found.sort();
            if metric == name && found == wanted {
                return value.parse().unwrap();
            }
        }
        0.0
    }
}

impl Scrape {
    /// [`value`](Self::value) of a sample that holds a whole number (a
    /// counter, a count of events).
    #[allow(
        clippy::cast_possible_truncation,
        reason = "the samples compared this way are whole numbers"
    )]
    fn whole(&self, name: &str, labels: &[(&str, &str)]) -> i64 {
        let value = self.value(name, labels);
        assert!(value.fract().abs() < f64::EPSILON, "{name} is not whole");
        value as i64
    }
}

/// How much `name{labels}` moved between two scrapes.
fn moved(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> i64 {
    after.whole(name, labels) - before.whole(name, labels)
}

struct World {
    security: Security,
    clock: Arc<ManualClock>,
    authn: AuthenticationService,
    account: AccountId,
    tenant: TenantId,
}

/// A tenant on the in-memory backends, with cheap password hashing and
/// the lockout after three failures (the username limit is five a minute).
async fn world() -> World {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
    ));
    let cost = Argon2Config {
        memory_kib: 1024,
        iterations: 1,
        ..Argon2Config::OWASP
    };
    let security = Security::builder()
        .clock(clock.clone())
        .password_hasher(Arc::new(Argon2PasswordHasher::new(cost).unwrap()))
        .build()
        .unwrap();
    let mut config = AuthnConfig::default();
    config.lockout.max_failures = 3;
    config.login_rate = RateLimit::per_minute(5);
    let authn = security.authentication().config(config).build().unwrap();
    let request = Request::by(Actor::service("metrics-test"));
    let operator = security
        .admin()
        .create_operator(&request, "Operator")
        .await
        .unwrap();
    let account = security
        .admin()
        .create_account(&request, operator, "Bank", AccountClaims::default())
        .await
        .unwrap();
    World {
        security,
        clock,
        authn,
        account,
        tenant: account.tenant(),
    }
}

impl World {
    async fn user(&self, name: &str, password: &SecretString) -> UserId {
        self.authn
            .create_user_with_password(
                &Request::default(),
                self.account,
                security::prelude::NewPasswordUser::new(name, password.clone()),
            )
            .await
            .unwrap()
    }
}

/// A client; each user logs in from its own address (the address limit
/// is five a minute too).
fn client_at(last: u8) -> ClientInfo {
    ClientInfo::new(
        Some(std::net::IpAddr::from([203, 0, 113, last])),
        Some("metrics-test"),
    )
}

fn client() -> ClientInfo {
    client_at(7)
}

const LOGINS: &str = security::authn::observe::LOGINS;

#[tokio::test]
async fn logins_lockouts_and_throttles_are_counted_by_outcome() {
    let _turn = TURN.lock().await;
    let w = world().await;
    let right = SecretString::from("Correct-Horse-Battery-9");
    let wrong = SecretString::from("Wrong-Horse-Battery-0");
    w.user("alice", &right).await;
    w.user("bob", &right).await;
    let before = Scrape::now();

    // alice: one good login.
    let outcome = w
        .authn
        .authenticate(w.tenant, "alice", &right, &client_at(1))
        .await
        .unwrap();
    assert!(matches!(outcome, LoginOutcome::Authenticated(_)));
    // bob: three wrong passwords (the third locks him), then the right
    // one twice (refused: locked), then a sixth attempt within the minute
    // (throttled: five a minute).
    for _ in 0..3 {
        let error = w
            .authn
            .authenticate(w.tenant, "bob", &wrong, &client_at(2))
            .await
            .unwrap_err();
        assert!(matches!(error, AuthnError::InvalidCredentials), "{error:?}");
    }
    for _ in 0..2 {
        let error = w
            .authn
            .authenticate(w.tenant, "bob", &right, &client_at(2))
            .await
            .unwrap_err();
        assert!(matches!(error, AuthnError::UserLocked { .. }), "{error:?}");
    }
    let error = w
        .authn
        .authenticate(w.tenant, "bob", &right, &client_at(2))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthnError::Throttled { .. }), "{error:?}");
    // An unknown username: the same answer as a wrong password.
    let error = w
        .authn
        .authenticate(w.tenant, "nobody", &wrong, &client_at(3))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthnError::InvalidCredentials), "{error:?}");

    let after = Scrape::now();
    let logins = |outcome| {
        moved(
            &before,
            &after,
            LOGINS,
            &[("method", "password"), ("outcome", outcome)],
        )
    };
    assert_eq!(logins("authenticated"), 1);
    assert_eq!(logins("invalid_credentials"), 4);
    assert_eq!(logins("locked"), 2);
    assert_eq!(logins("throttled"), 1);
    assert_eq!(
        moved(&before, &after, security::authn::observe::LOCKOUTS, &[]),
        1
    );
    assert_eq!(
        moved(
            &before,
            &after,
            security::authn::observe::THROTTLES,
            &[("operation", "authenticate")]
        ),
        1
    );
    // Every attempt has a duration sample.
    assert_eq!(
        moved(
            &before,
            &after,
            "security_login_duration_seconds_count",
            &[("method", "password")]
        ),
        8
    );
    // No label names a user or a tenant.
    assert!(!after.0.contains("alice") && !after.0.contains("nobody"));
    assert!(!after.0.contains(&w.tenant.to_string()));
}

#[tokio::test]
async fn mfa_outcomes_and_token_validations_are_counted() {
    let _turn = TURN.lock().await;
    let w = world().await;
    let password = SecretString::from("Correct-Horse-Battery-9");
    let carol = w.user("carol", &password).await;
    let enrollment = w
        .authn
        .start_totp_enrollment(w.tenant, carol)
        .await
        .unwrap();
    let totp = TotpSecret::from_base32(enrollment.secret_base32.expose_secret()).unwrap();
    let code = |at| w.authn.config().totp.code_at(&totp, at).unwrap();
    w.authn
        .confirm_totp_enrollment(w.tenant, carol, &code(w.clock.now()))
        .await
        .unwrap();
    w.clock.advance(Duration::seconds(30));
    let before = Scrape::now();

    let LoginOutcome::MfaRequired(challenge) = w
        .authn
        .authenticate(w.tenant, "carol", &password, &client())
        .await
        .unwrap()
    else {
        panic!("MFA is on")
    };
    let error = w
        .authn
        .verify_mfa(
            &challenge.challenge,
            &SecretString::from("000000x"),
            &client(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, AuthnError::InvalidMfaCode), "{error:?}");
    let tokens = w
        .authn
        .verify_mfa(&challenge.challenge, &code(w.clock.now()), &client())
        .await
        .unwrap()
        .into_tokens()
        .unwrap();
    let token = tokens.access_token.expose_secret();
    w.authn.validate_access_token(token).await.unwrap();
    w.authn.validate_access_token(token).await.unwrap();
    // One character of the signature changed (not the last one, whose
    // low bits base64url does not use).
    let mut forged = token.to_owned().into_bytes();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    w.authn.validate_access_token(&forged).await.unwrap_err();
    w.authn
        .validator()
        .validate_as::<serde_json::Value>("not.a.token")
        .unwrap_err();
    w.clock.advance(Duration::hours(2));
    let expired = w.authn.validate_access_token(token).await.unwrap_err();
    assert_eq!(expired, security::core::TokenError::Expired);

    let after = Scrape::now();
    let mfa = |outcome| {
        moved(
            &before,
            &after,
            security::authn::observe::MFA_VERIFICATIONS,
            &[("outcome", outcome)],
        )
    };
    assert_eq!(mfa("invalid_code"), 1);
    assert_eq!(mfa("authenticated"), 1);
    assert_eq!(
        moved(
            &before,
            &after,
            LOGINS,
            &[("method", "password"), ("outcome", "mfa_required")]
        ),
        1
    );
    let validations = |outcome| {
        moved(
            &before,
            &after,
            security::authn::observe::TOKEN_VALIDATIONS,
            &[("outcome", outcome)],
        )
    };
    assert_eq!(validations("valid"), 2);
    assert_eq!(validations("signature") + validations("malformed"), 2);
    assert_eq!(validations("expired"), 1);
}

/// Records the lag gauge each time it applies an event; refuses events of
/// one type (dead letters).
struct Watching {
    seen: Vec<i64>,
}

impl Projection for Watching {
    fn name(&self) -> &'static str {
        "metrics-test-watching"
    }

    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        self.seen.push(Scrape::now().whole(
            security::core::observe::PROJECTION_LAG,
            &[("projection", "metrics-test-watching")],
        ));
        if &*event.event_type == "PolicyCreated" {
            return Err(ProjectionError::Failed {
                projection: self.name().to_owned(),
                reason: "refused by the test".to_owned(),
            });
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.seen.clear();
    }
}

#[tokio::test]
async fn authorization_decisions_and_projection_lag_are_measured() {
    let _turn = TURN.lock().await;
    let w = world().await;
    let request = Request::by(Actor::service("metrics-test"));
    let password = SecretString::from("Correct-Horse-Battery-9");
    let dave = w.user("dave", &password).await;
    w.security
        .admin()
        .assign_role(&request, w.tenant, dave, RoleName::new("officer").unwrap())
        .await
        .unwrap();
    w.security
        .admin()
        .create_policy(
            &request,
            w.tenant,
            security::core::NewPolicy::new("orders").description("orders"),
        )
        .await
        .unwrap();
    let head = w.security.store().head_position().await.unwrap();
    let before = Scrape::now();

    // The lag as the projection runs: the head minus what is applied.
    let mut runner = ProjectionRunner::new(
        Arc::clone(w.security.store()),
        Arc::new(InMemoryCheckpoints::new()),
        Watching { seen: Vec::new() },
        Scope::All,
    )
    .await
    .unwrap()
    .with_batch_size(1);
    runner.catch_up().await.unwrap();
    let head = i64::try_from(head).unwrap();
    let expected: Vec<i64> = (0..head).map(|applied| head - applied).collect();
    assert_eq!(runner.projection().seen, expected);
    let after_catch_up = Scrape::now();
    assert_eq!(
        after_catch_up.whole(
            security::core::observe::PROJECTION_LAG,
            &[("projection", "metrics-test-watching")]
        ),
        0
    );
    assert_eq!(
        moved(
            &before,
            &after_catch_up,
            security::core::observe::PROJECTION_DEAD_LETTERS,
            &[("projection", "metrics-test-watching")]
        ),
        1
    );

    // Authorization decisions by check and outcome; denials by reason.
    let (authz, projection) = w.security.authorization().build();
    let mut runner = ProjectionRunner::new(
        Arc::clone(w.security.store()),
        Arc::new(InMemoryCheckpoints::new()),
        projection,
        Scope::All,
    )
    .await
    .unwrap();
    runner.catch_up().await.unwrap();
    let before = Scrape::now();
    let principal = Principal::new(w.tenant, dave);
    let here = Resource::in_tenant(w.tenant);
    let approve: Permission = "transaction:approve".parse().unwrap();
    let delete: Permission = "user:delete".parse().unwrap();
    assert!(authz.authorize(&principal, &approve, &here).is_allowed());
    assert!(!authz.authorize(&principal, &delete, &here).is_allowed());
    let batch = authz.authorize_batch(&principal, [(&approve, &here), (&delete, &here)]);
    assert_eq!(batch.len(), 2);
    assert!(
        !authz
            .authorize_publish(&principal, "orders.created")
            .is_allowed()
    );
    // What-if questions are not decisions.
    let _ = authz.decide(&principal, &delete, &here);
    let after = Scrape::now();
    let decisions = |check, outcome| {
        moved(
            &before,
            &after,
            security::authz::observe::DECISIONS,
            &[("check", check), ("outcome", outcome)],
        )
    };
    assert_eq!(decisions("permission", "allow"), 2);
    assert_eq!(decisions("permission", "deny"), 2);
    assert_eq!(decisions("publish", "deny"), 1);
    assert_eq!(decisions("subscribe", "deny"), 0);
    let denials = |reason| {
        moved(
            &before,
            &after,
            security::authz::observe::DENIALS,
            &[("reason", reason)],
        )
    };
    assert_eq!(denials("not_granted"), 2);
    assert_eq!(denials("subject_not_allowed"), 1);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_outbox_relay_reports_its_lag() {
    use security::eventstore::observe::{
        OUTBOX_FAILURES, OUTBOX_LAG, OUTBOX_PENDING, OUTBOX_PUBLISHED,
    };
    use security::eventstore::{MemoryPublisher, OutboxRelay, PostgresEventStore, RelayConfig};

    let _turn = TURN.lock().await;
    let schema = pg::Schema::new().await;
    let store = PostgresEventStore::from_pool(
        schema
            .pool(pg::Schema::port(), std::time::Duration::from_secs(10))
            .await,
    );
    store.migrate().await.unwrap();
    // Events stamped a minute ago by the application's clock.
    let clock = Arc::new(ManualClock::new(Utc::now() - Duration::minutes(1)));
    let security = Security::builder()
        .event_store(Arc::new(store.clone()))
        .clock(clock)
        .build()
        .unwrap();
    let request = Request::by(Actor::service("metrics-test"));
    let operator = security
        .admin()
        .create_operator(&request, "Operator")
        .await
        .unwrap();
    security
        .admin()
        .create_account(&request, operator, "Bank", AccountClaims::default())
        .await
        .unwrap();
    let publisher = MemoryPublisher::new();
    let relay = OutboxRelay::new(&store, Arc::new(publisher.clone())).with_config(RelayConfig {
        poll_interval: std::time::Duration::from_millis(20),
        min_backoff: std::time::Duration::from_millis(20),
        max_backoff: std::time::Duration::from_millis(20),
        ..RelayConfig::default()
    });
    let lag = relay.lag().await.unwrap();
    assert!(lag.pending >= 2, "{lag:?}");
    let age = lag.oldest_age.unwrap();
    assert!(age >= std::time::Duration::from_secs(55), "{age:?}");
    let pending = i64::try_from(lag.pending).unwrap();

    // The broker is down: the lag is measured, the failures counted.
    let before = Scrape::now();
    publisher.fail_next(u32::MAX);
    relay_until(&relay, || {
        moved(&before, &Scrape::now(), OUTBOX_FAILURES, &[]) >= 1
    })
    .await;
    let down = Scrape::now();
    assert_eq!(down.whole(OUTBOX_PENDING, &[]), pending);
    assert!(down.value(OUTBOX_LAG, &[]) >= 55.0);
    assert!(moved(&before, &down, OUTBOX_FAILURES, &[]) >= 1);
    assert_eq!(moved(&before, &down, OUTBOX_PUBLISHED, &[]), 0);

    // It is back: everything is published and the lag falls to zero.
    publisher.fail_next(0);
    relay_until(&relay, || {
        let now = Scrape::now();
        moved(&down, &now, OUTBOX_PUBLISHED, &[]) == pending && now.whole(OUTBOX_PENDING, &[]) == 0
    })
    .await;
    let up = Scrape::now();
    assert_eq!(moved(&down, &up, OUTBOX_PUBLISHED, &[]), pending);
    assert_eq!(up.whole(OUTBOX_PENDING, &[]), 0);
    assert!(up.value(OUTBOX_LAG, &[]) < f64::EPSILON);
    schema.drop().await;
}

#[test]
fn every_metric_is_documented_and_described() {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/OBSERVABILITY.md"
    ))
    .unwrap();
    for name in security::observe::METRICS {
        assert!(name.starts_with("security_"), "{name}");
        assert!(
            docs.lines()
                .any(|l| l.starts_with(&format!("| `{name}` |"))),
            "{name} has no row in docs/OBSERVABILITY.md"
        );
    }
    let rows = docs
        .lines()
        .filter(|l| l.starts_with("| `security_"))
        .count();
    assert_eq!(rows, security::observe::METRICS.len());
    // Described once the recorder is installed: the help text is scraped
    // with the first sample.
    let _ = recorder();
    metrics::counter!(security::observe::LOCKOUTS).increment(0);
    assert!(
        Scrape::now()
            .0
            .contains("# HELP security_lockouts_total Users locked")
    );
}

/// Runs the relay until `done` holds (checked every 10 ms), failing the
/// test after 60 s.
#[cfg(feature = "postgres")]
async fn relay_until(relay: &security::eventstore::OutboxRelay, done: impl Fn() -> bool + Sync) {
    let until = async {
        while !done() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), relay.run_until(until))
        .await
        .expect("the relay did what was awaited within a minute");
}
