//! The services' `tracing` spans carry operation, tenant, user id and
//! outcome, and no password, token, code or username typed by a caller:
//! a subscriber of the test's own records every span and event.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use security::Security;
use security::authn::{AuthnConfig, AuthnError, LoginOutcome};
use security::authz::{Principal, Resource};
use security::core::{
    AccountClaims, Actor, ClientInfo, InMemoryCheckpoints, ManualClock, Permission,
    ProjectionRunner, Request, RoleName, Scope,
};
use security::crypto::{Argon2Config, Argon2PasswordHasher};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_core::span::Current;

/// A span as the subscriber saw it: its name and every field it was given.
#[derive(Debug, Clone)]
struct SeenSpan {
    name: &'static str,
    metadata: &'static Metadata<'static>,
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Seen {
    spans: Vec<SeenSpan>,
    events: Vec<BTreeMap<String, String>>,
    /// The spans entered on this (single) thread, innermost last.
    stack: Vec<Id>,
}

/// Records everything; the test runs on one thread (a current-thread
/// runtime), so one stack of entered spans is enough.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Seen>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Recorder {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The spans named `name`, in order.
    fn spans(&self, name: &str) -> Vec<SeenSpan> {
        self.seen()
            .spans
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// Every field value of every span and event.
    fn all_values(&self) -> Vec<String> {
        let seen = self.seen();
        seen.spans
            .iter()
            .flat_map(|s| s.fields.values())
            .chain(seen.events.iter().flat_map(BTreeMap::values))
            .cloned()
            .collect()
    }
}

impl Subscriber for Recorder {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let mut fields = BTreeMap::new();
        attributes.record(&mut Fields(&mut fields));
        let mut seen = self.seen();
        seen.spans.push(SeenSpan {
            name: attributes.metadata().name(),
            metadata: attributes.metadata(),
            fields,
        });
        Id::from_u64(seen.spans.len() as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut seen = self.seen();
        let index = usize::try_from(span.into_u64() - 1).unwrap();
        values.record(&mut Fields(&mut seen.spans[index].fields));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.seen().events.push(fields);
    }

    fn enter(&self, span: &Id) {
        self.seen().stack.push(span.clone());
    }

    fn exit(&self, span: &Id) {
        let mut seen = self.seen();
        if let Some(at) = seen.stack.iter().rposition(|s| s == span) {
            seen.stack.remove(at);
        }
    }

    fn current_span(&self) -> Current {
        let seen = self.seen();
        match seen.stack.last() {
            Some(id) => {
                let index = usize::try_from(id.into_u64() - 1).unwrap();
                Current::new(id.clone(), seen.spans[index].metadata)
            }
            None => Current::none(),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn spans_carry_tenant_user_operation_and_outcome_and_no_secret() {
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());

    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
    ));
    let cost = Argon2Config {
        memory_kib: 1024,
        iterations: 1,
        ..Argon2Config::OWASP
    };
    let security = Security::builder()
        .clock(clock)
        .password_hasher(Arc::new(Argon2PasswordHasher::new(cost).unwrap()))
        .build()
        .unwrap();
    let authn = security
        .authentication()
        .config(AuthnConfig::default())
        .build()
        .unwrap();
    let request = Request::by(Actor::service("spans-test"));
    let admin = security.admin();
    let operator = admin.create_operator(&request, "Operator").await.unwrap();
    let account = admin
        .create_account(&request, operator, "Bank", AccountClaims::default())
        .await
        .unwrap();
    let tenant = account.tenant();
    let password = SecretString::from("Correct-Horse-Battery-9");
    let alice = authn
        .create_user_with_password(
            &Request::default(),
            account,
            security::prelude::NewPasswordUser::new("alice", password.clone()),
        )
        .await
        .unwrap();
    admin
        .assign_role(&request, tenant, alice, RoleName::new("officer").unwrap())
        .await
        .unwrap();
    let client = ClientInfo::new(Some("203.0.113.7".parse().unwrap()), Some("spans-test"));

    // A good login, a refresh, a validation.
    let LoginOutcome::Authenticated(tokens) = authn
        .authenticate(tenant, "alice", &password, &client)
        .await
        .unwrap()
    else {
        panic!("no MFA here")
    };
    let refreshed = authn.refresh(&tokens.refresh_token, &client).await.unwrap();
    authn
        .validate_access_token(refreshed.access_token.expose_secret())
        .await
        .unwrap();
    // An unknown caller's username and password.
    let typed_name = "mallory-typed-this-name";
    let typed_password = SecretString::from("Hunter2-Typed-Secret!");
    let error = authn
        .authenticate(tenant, typed_name, &typed_password, &client)
        .await
        .unwrap_err();
    assert!(matches!(error, AuthnError::InvalidCredentials));
    // An authorization check.
    let (authz, projection) = security.authorization().build();
    let mut runner = ProjectionRunner::new(
        Arc::clone(security.store()),
        Arc::new(InMemoryCheckpoints::new()),
        projection,
        Scope::All,
    )
    .await
    .unwrap();
    runner.catch_up().await.unwrap();
    let approve: Permission = "transaction:approve".parse().unwrap();
    assert!(
        authz
            .authorize(
                &Principal::new(tenant, alice),
                &approve,
                &Resource::in_tenant(tenant)
            )
            .is_allowed()
    );

    let field = |span: &SeenSpan, name: &str| span.fields.get(name).cloned();
    let logins = recorder.spans("authn.authenticate");
    assert_eq!(logins.len(), 2, "{logins:?}");
    let good = &logins[0];
    assert_eq!(field(good, "operation").as_deref(), Some("authenticate"));
    assert_eq!(field(good, "tenant"), Some(tenant.to_string()));
    assert_eq!(field(good, "user_id"), Some(alice.to_string()));
    assert_eq!(field(good, "outcome").as_deref(), Some("authenticated"));
    let unknown = &logins[1];
    assert_eq!(field(unknown, "tenant"), Some(tenant.to_string()));
    assert_eq!(
        field(unknown, "user_id"),
        None,
        "an unknown username names no user"
    );
    assert_eq!(
        field(unknown, "outcome").as_deref(),
        Some("invalid_credentials")
    );

    let refresh = recorder.spans("authn.refresh");
    assert_eq!(refresh.len(), 1);
    assert_eq!(field(&refresh[0], "tenant"), Some(tenant.to_string()));
    assert_eq!(field(&refresh[0], "user_id"), Some(alice.to_string()));
    assert_eq!(field(&refresh[0], "outcome").as_deref(), Some("ok"));

    let validation = recorder.spans("authn.validate_access_token");
    assert_eq!(validation.len(), 1);
    assert_eq!(field(&validation[0], "user_id"), Some(alice.to_string()));
    assert_eq!(field(&validation[0], "outcome").as_deref(), Some("valid"));

    let check = recorder.spans("authz.authorize");
    assert_eq!(check.len(), 1);
    assert_eq!(field(&check[0], "tenant"), Some(tenant.to_string()));
    assert_eq!(field(&check[0], "user_id"), Some(alice.to_string()));
    assert_eq!(
        field(&check[0], "permission").as_deref(),
        Some("transaction:approve")
    );
    assert_eq!(field(&check[0], "outcome").as_deref(), Some("allow"));

    // The admin and service commands, each with its aggregate and outcome.
    let commands = recorder.spans("security.command");
    assert!(
        commands.iter().any(|c| {
            field(c, "aggregate").as_deref() == Some("account")
                && field(c, "tenant") == Some(tenant.to_string())
                && field(c, "outcome").as_deref() == Some("ok")
        }),
        "{commands:?}"
    );
    assert!(
        commands
            .iter()
            .all(|c| field(c, "outcome").is_some() && field(c, "aggregate").is_some())
    );

    // Nothing secret anywhere, in spans or events.
    let secrets = [
        password.expose_secret(),
        typed_password.expose_secret(),
        typed_name,
        tokens.access_token.expose_secret(),
        tokens.refresh_token.expose_secret(),
        refreshed.access_token.expose_secret(),
        refreshed.refresh_token.expose_secret(),
    ];
    for value in recorder.all_values() {
        for secret in secrets {
            assert!(!value.contains(secret), "a field holds a secret: {value}");
        }
    }
}
