//! What authorization tells the operator: a `tracing` span per recorded
//! check of [`AuthorizationService`](crate::AuthorizationService) (level
//! DEBUG, named `authz.<operation>`, with `operation`, `tenant`,
//! `user_id` and `outcome` `allow` or `deny`), and counters through the
//! [`metrics`] facade.
//!
//! A check takes microseconds, so recording one allocates nothing: every
//! label is a static string (and with no recorder installed a counter is
//! a no-op). `docs/OBSERVABILITY.md` lists every name, type and label.

use tracing::Span;

use crate::decision::{Decision, DenyReason};

/// Counter: recorded authorization decisions (those of
/// [`authorize`](crate::AuthorizationService::authorize),
/// [`authorize_batch`](crate::AuthorizationService::authorize_batch),
/// [`authorize_publish`](crate::AuthorizationService::authorize_publish) and
/// [`authorize_subscribe`](crate::AuthorizationService::authorize_subscribe);
/// not the what-if [`decide`](crate::AuthorizationService::decide) nor the
/// listing filter [`authorized`](crate::AuthorizationService::authorized)).
/// Labels: `check` (`permission`, `publish`, `subscribe`), `outcome`
/// (`allow`, `deny`).
pub const DECISIONS: &str = "security_authz_decisions_total";

/// Counter: the denials among [`DECISIONS`], by `reason`
/// (`unknown_principal`, `principal_inactive`, `account_inactive`,
/// `cross_tenant`, `not_granted`, `condition_not_met`, `guard_refused`,
/// `condition_failed`, `subject_denied`, `subject_not_allowed`,
/// `invalid_subject`, `other`).
pub const DENIALS: &str = "security_authz_denials_total";

/// Which kind of check decided.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    Permission,
    Publish,
    Subscribe,
}

/// Counts a recorded decision and sets the current span's `outcome`.
pub(crate) fn decided(check: Check, decision: &Decision) {
    macro_rules! decisions {
        ($check:literal, $outcome:literal) => {
            metrics::counter!(DECISIONS, "check" => $check, "outcome" => $outcome).increment(1)
        };
    }
    macro_rules! denials {
        ($reason:literal) => {
            metrics::counter!(DENIALS, "reason" => $reason).increment(1)
        };
    }
    let allowed = decision.is_allowed();
    match (check, allowed) {
        (Check::Permission, true) => decisions!("permission", "allow"),
        (Check::Permission, false) => decisions!("permission", "deny"),
        (Check::Publish, true) => decisions!("publish", "allow"),
        (Check::Publish, false) => decisions!("publish", "deny"),
        (Check::Subscribe, true) => decisions!("subscribe", "allow"),
        (Check::Subscribe, false) => decisions!("subscribe", "deny"),
    }
    if let Decision::Deny { reason } = decision {
        match reason {
            DenyReason::UnknownPrincipal => denials!("unknown_principal"),
            DenyReason::PrincipalInactive => denials!("principal_inactive"),
            DenyReason::AccountInactive => denials!("account_inactive"),
            DenyReason::CrossTenant => denials!("cross_tenant"),
            DenyReason::NotGranted => denials!("not_granted"),
            DenyReason::ConditionNotMet { .. } => denials!("condition_not_met"),
            DenyReason::GuardRefused { .. } => denials!("guard_refused"),
            DenyReason::ConditionFailed { .. } => denials!("condition_failed"),
            DenyReason::SubjectDenied { .. } => denials!("subject_denied"),
            DenyReason::SubjectNotAllowed => denials!("subject_not_allowed"),
            DenyReason::InvalidSubject => denials!("invalid_subject"),
        }
    }
    record_outcome(allowed);
}

/// Sets the current span's `outcome` (`allow` or `deny`).
pub(crate) fn record_outcome(allowed: bool) {
    let span = Span::current();
    if !span.is_disabled() {
        span.record("outcome", if allowed { "allow" } else { "deny" });
    }
}
