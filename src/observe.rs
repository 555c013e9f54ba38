//! Observability in one place: every metric the crates record, and
//! [`describe_metrics`], which gives each its help text and unit in the
//! installed recorder (the `# HELP` lines of the Prometheus text).
//!
//! The crates record through the [`metrics`] facade: nothing is recorded
//! until the application installs a recorder (with feature `prometheus`,
//! `metrics_exporter_prometheus::PrometheusBuilder`; see
//! `examples/metrics.rs`). Spans are `tracing` spans: `authn.<operation>`
//! (INFO), `authz.<operation>` (DEBUG) and `security.command` (INFO).
//! `docs/OBSERVABILITY.md` has the table of names, types and labels.

pub use security_authn::observe::{
    LOCKOUTS, LOGIN_DURATION, LOGINS, MFA_VERIFICATIONS, THROTTLES, TOKEN_VALIDATIONS,
};
pub use security_authz::observe::{DECISIONS as AUTHZ_DECISIONS, DENIALS as AUTHZ_DENIALS};
pub use security_core::observe::{COMMANDS, PROJECTION_DEAD_LETTERS, PROJECTION_LAG};
pub use security_eventstore::observe::{
    OUTBOX_FAILURES, OUTBOX_LAG, OUTBOX_PENDING, OUTBOX_PUBLISHED,
};

/// Every metric's name, in the order of `docs/OBSERVABILITY.md`.
pub const METRICS: &[&str] = &[
    LOGINS,
    LOGIN_DURATION,
    THROTTLES,
    LOCKOUTS,
    MFA_VERIFICATIONS,
    TOKEN_VALIDATIONS,
    AUTHZ_DECISIONS,
    AUTHZ_DENIALS,
    COMMANDS,
    PROJECTION_LAG,
    PROJECTION_DEAD_LETTERS,
    OUTBOX_PENDING,
    OUTBOX_LAG,
    OUTBOX_PUBLISHED,
    OUTBOX_FAILURES,
];

/// Describes every metric to the installed recorder (call it once, after
/// installing the recorder).
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

    describe_counter!(
        LOGINS,
        Unit::Count,
        "First-factor login attempts, by method and outcome"
    );
    describe_histogram!(
        LOGIN_DURATION,
        Unit::Seconds,
        "Time a login attempt took, by method"
    );
    describe_counter!(
        THROTTLES,
        Unit::Count,
        "Operations refused by a rate limit, by operation"
    );
    describe_counter!(
        LOCKOUTS,
        Unit::Count,
        "Users locked after too many failed attempts"
    );
    describe_counter!(
        MFA_VERIFICATIONS,
        Unit::Count,
        "Second-factor verifications, by outcome"
    );
    describe_counter!(
        TOKEN_VALIDATIONS,
        Unit::Count,
        "Access-token validations, by outcome"
    );
    describe_counter!(
        AUTHZ_DECISIONS,
        Unit::Count,
        "Authorization decisions, by check and outcome"
    );
    describe_counter!(
        AUTHZ_DENIALS,
        Unit::Count,
        "Authorization denials, by reason"
    );
    describe_counter!(
        COMMANDS,
        Unit::Count,
        "Commands run, by aggregate type and outcome"
    );
    describe_gauge!(
        PROJECTION_LAG,
        Unit::Count,
        "Global positions a projection is behind the store"
    );
    describe_counter!(
        PROJECTION_DEAD_LETTERS,
        Unit::Count,
        "Events a projection skipped"
    );
    describe_gauge!(
        OUTBOX_PENDING,
        Unit::Count,
        "Events in the outbox not yet published"
    );
    describe_gauge!(
        OUTBOX_LAG,
        Unit::Seconds,
        "Age of the oldest unpublished outbox event"
    );
    describe_counter!(
        OUTBOX_PUBLISHED,
        Unit::Count,
        "Events the outbox relay published"
    );
    describe_counter!(
        OUTBOX_FAILURES,
        Unit::Count,
        "Outbox relay runs that failed"
    );
}
