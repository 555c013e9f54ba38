//! Two replicas built by the one-call setup from the same environment, as
//! two pods of one deployment: what a guarantee depends on is shared, in
//! PostgreSQL alone and with Redis. An MFA challenge started on one replica
//! completes on the other, and throttling counts the attempts made on
//! both.
//!
//! Needs PostgreSQL (`DATABASE_URL`) and Redis (`REDIS_URL`, default
//! `redis://127.0.0.1:6379`); fails, never skips, without them.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, in its helpers too"
)]

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretString};

use security::SecurityServices;
use security::authn::{AuthnError, LoginOutcome, NewPasswordUser};
use security::core::{AccountClaims, ClientInfo, Request, TenantId};
use security::setup::{Backend, Backends, Settings};

const PASSWORD: &str = "Correct-Horse-Battery-9";

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn settings(vars: &HashMap<&'static str, String>) -> Settings {
    Settings::from_lookup(|name| vars.get(name).cloned()).expect("valid settings")
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL names the Redis server of the tests")
}

/// The environment of one deployment over a fresh schema.
fn deployment(name: &str) -> HashMap<&'static str, String> {
    let url = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL names the PostgreSQL server of the tests");
    let master = security::crypto::MasterKey::generate().expect("a master key");
    let mut vars = HashMap::new();
    vars.insert("DATABASE_URL", url);
    vars.insert(
        "DATABASE_SCHEMA",
        format!("e2e_{name}_{}", uuid::Uuid::now_v7().simple()),
    );
    vars.insert("DATABASE_POOL_SIZE", "4".to_owned());
    vars.insert("DATABASE_MAX_OVERFLOW", "2".to_owned());
    vars.insert(
        "ENCRYPTION_KEY",
        master.to_base64().expose_secret().to_owned(),
    );
    vars.insert("AUTH_RATE_LIMIT", "5/minute".to_owned());
    vars
}

/// A tenant and a user with TOTP enrolled; returns the user's backup
/// codes (each completes one MFA step, whatever the time).
async fn user_with_mfa(services: &SecurityServices) -> (TenantId, Vec<SecretString>) {
    let admin = services.authn().admin();
    let operator = admin
        .create_operator(&Request::default(), "ops")
        .await
        .expect("an operator");
    let account = admin
        .create_account(
            &Request::default(),
            operator,
            "bank",
            AccountClaims::default(),
        )
        .await
        .expect("an account");
    let tenant = account.tenant();
    let authn = services.authn();
    let user = authn
        .create_user_with_password(
            &Request::default(),
            account,
            NewPasswordUser::new("alice", secret(PASSWORD)),
        )
        .await
        .expect("a user");
    let enrollment = authn
        .start_totp_enrollment(tenant, user)
        .await
        .expect("TOTP enrolment starts");
    let totp = security::authn::TotpSecret::from_base32(enrollment.secret_base32.expose_secret())
        .expect("a TOTP secret");
    let code = authn
        .config()
        .totp
        .code_at(&totp, chrono::Utc::now())
        .expect("a code");
    let codes = authn
        .confirm_totp_enrollment(tenant, user, &code)
        .await
        .expect("TOTP enrolment confirmed");
    (tenant, codes.codes().to_vec())
}

/// MFA challenges started on one replica complete on the other; the MFA
/// limit (3 a minute) counts the steps made on both.
async fn mfa_across(a: &SecurityServices, b: &SecurityServices) {
    let (tenant, codes) = user_with_mfa(a).await;
    let client = ClientInfo::new(Some("192.0.2.10".parse().expect("an IP")), Some("e2e"));
    for (round, code) in codes.iter().take(4).enumerate() {
        let (start, finish) = if round % 2 == 0 { (a, b) } else { (b, a) };
        let LoginOutcome::MfaRequired(challenge) = start
            .authn()
            .authenticate(tenant, "alice", &secret(PASSWORD), &client)
            .await
            .expect("the password is right")
        else {
            panic!("round {round}: expected an MFA challenge");
        };
        let outcome = finish
            .authn()
            .verify_mfa(&challenge.challenge, code, &client)
            .await;
        if round < 3 {
            assert!(
                matches!(outcome, Ok(LoginOutcome::Authenticated(_))),
                "round {round}: the other replica refused: {outcome:?}"
            );
        } else {
            assert!(
                matches!(outcome, Err(AuthnError::Throttled { .. })),
                "round {round}: the fourth MFA step in a minute, over both replicas: {outcome:?}"
            );
        }
    }
}

/// Five attempts per minute per IP and username, counted over both
/// replicas: alternating between them, the sixth and later are throttled
/// on either.
async fn throttled_across(a: &SecurityServices, b: &SecurityServices) {
    let tenant = TenantId::from_uuid(uuid::Uuid::now_v7());
    let client = ClientInfo::new(Some("198.51.100.7".parse().expect("an IP")), Some("e2e"));
    for attempt in 0..8 {
        let replica = if attempt % 2 == 0 { a } else { b };
        let result = replica
            .authn()
            .authenticate(tenant, "nobody", &secret("Wrong-Guess-123!"), &client)
            .await;
        if attempt < 5 {
            assert!(
                matches!(result, Err(AuthnError::InvalidCredentials)),
                "attempt {attempt}: {result:?}"
            );
        } else {
            assert!(
                matches!(result, Err(AuthnError::Throttled { .. })),
                "attempt {attempt}: throttled over both replicas, got {result:?}"
            );
        }
    }
}

async fn drop_schema(vars: &HashMap<&'static str, String>, services: SecurityServices) {
    use security::eventstore::sqlx::{self, Connection as _};
    services.shutdown().await;
    let mut connection = sqlx::PgConnection::connect(&vars["DATABASE_URL"])
        .await
        .expect("PostgreSQL answers");
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
        vars["DATABASE_SCHEMA"]
    ))
    .execute(&mut connection)
    .await
    .expect("the schema is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_over_postgresql_share_challenges_and_limits() {
    let vars = deployment("shared_pg");
    let a = SecurityServices::start(settings(&vars))
        .await
        .expect("replica A starts");
    let b = SecurityServices::start(settings(&vars))
        .await
        .expect("replica B starts");
    let everything_in_postgres = Backends {
        rate_limits: Backend::Postgres,
        attempts: Backend::Postgres,
        challenges: Backend::Postgres,
    };
    assert_eq!(a.backends(), everything_in_postgres);
    assert_eq!(b.backends(), everything_in_postgres);
    mfa_across(&a, &b).await;
    throttled_across(&a, &b).await;
    let health = a.health().await;
    assert!(health.is_healthy(), "{health:?}");
    b.shutdown().await;
    drop_schema(&vars, a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_redis_count_in_redis() {
    let mut vars = deployment("shared_redis");
    let prefix = format!("{}:", vars["DATABASE_SCHEMA"]);
    vars.insert("REDIS_URL", redis_url());
    vars.insert("REDIS_KEY_PREFIX", prefix.clone());
    let a = SecurityServices::start(settings(&vars))
        .await
        .expect("replica A starts (Redis must be running: scripts/services.sh)");
    let b = SecurityServices::start(settings(&vars))
        .await
        .expect("replica B starts");
    let expected = Backends {
        rate_limits: Backend::Redis,
        attempts: Backend::Redis,
        challenges: Backend::Postgres,
    };
    assert_eq!(a.backends(), expected);
    assert_eq!(b.backends(), expected);
    mfa_across(&a, &b).await;
    throttled_across(&a, &b).await;

    // The counts are in Redis, under this deployment's prefix.
    let client = redis::Client::open(redis_url()).expect("a Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .expect("KEYS");
    assert!(
        keys.iter().any(|k| k.contains("login")),
        "no login counter under {prefix}: {keys:?}"
    );
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut connection)
        .await
        .expect("DEL");
    b.shutdown().await;
    drop_schema(&vars, a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_mode_keeps_everything_in_memory_and_a_bad_redis_url_is_named() {
    let services = SecurityServices::start(settings(&HashMap::new()))
        .await
        .expect("the memory setup starts");
    assert_eq!(
        services.backends(),
        Backends {
            rate_limits: Backend::Memory,
            attempts: Backend::Memory,
            challenges: Backend::Memory,
        }
    );
    services.shutdown().await;

    let mut vars = HashMap::new();
    vars.insert("REDIS_URL", "redis://cache:not-a-port/0".to_owned());
    let error = SecurityServices::start(settings(&vars))
        .await
        .expect_err("a REDIS_URL the client refuses");
    assert_eq!(error.variable(), Some("REDIS_URL"), "{error}");
    assert!(!error.to_string().contains("not-a-port"), "{error}");
}
