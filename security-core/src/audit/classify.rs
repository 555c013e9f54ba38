//! What each event the library writes means to an auditor: its kind, its
//! outcome, the user it is about.
//!
//! The table (aggregate type, event type → kind, outcome) is the
//! documented classification of `docs/AUDIT.md`. Events of other
//! aggregate types (an application's own) and event types this build does
//! not know are not indexed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::query::AuditEntry;
use crate::event::StoredEvent;
use crate::ids::UserId;

/// What an audited event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// Logins, second factors, sessions, refresh tokens, token revocations.
    Authentication,
    /// Authorization decisions (every denial, sampled grants).
    Authorization,
    /// Changes to operators, accounts, users, roles, policies and
    /// credentials.
    Admin,
    /// Signing and data keys: creation, rotation, revocation, destruction,
    /// and the chain anchors they sign.
    KeyManagement,
}

impl AuditKind {
    /// Every kind.
    pub const ALL: [Self; 4] = [
        Self::Authentication,
        Self::Authorization,
        Self::Admin,
        Self::KeyManagement,
    ];

    /// The kind's stable name (`authentication`, `authorization`, `admin`,
    /// `key_management`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Authorization => "authorization",
            Self::Admin => "admin",
            Self::KeyManagement => "key_management",
        }
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// It happened.
    Success,
    /// An authentication step succeeded and another one is asked for (a
    /// second factor, a password change).
    Challenged,
    /// An attempt failed (wrong credential, locked user, reused refresh
    /// token).
    Failure,
    /// An authorization check said no.
    Denied,
}

impl AuditOutcome {
    /// Every outcome.
    pub const ALL: [Self; 4] = [Self::Success, Self::Challenged, Self::Failure, Self::Denied];

    /// The outcome's stable name (`success`, `challenged`, `failure`,
    /// `denied`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Challenged => "challenged",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// A kind or outcome name that is not one of the stable names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit {what}")]
pub struct UnknownAuditName {
    what: &'static str,
}

impl FromStr for AuditKind {
    type Err = UnknownAuditName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or(UnknownAuditName { what: "kind" })
    }
}

impl FromStr for AuditOutcome {
    type Err = UnknownAuditName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == text)
            .ok_or(UnknownAuditName { what: "outcome" })
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The classification: for each aggregate type, event types and their
/// kind and outcome (the table of `docs/AUDIT.md`).
const CLASSIFICATION: &[(&str, &[&str], AuditKind, AuditOutcome)] = {
    use AuditKind::{Admin, Authentication, Authorization, KeyManagement};
    use AuditOutcome::{Challenged, Denied, Failure, Success};
    &[
        (
            "user",
            &[
                "UserAuthenticated",
                "MfaVerified",
                "BackupCodeUsed",
                "SessionsRevoked",
            ],
            Authentication,
            Success,
        ),
        (
            "user",
            &["AuthenticationFailed", "MfaFailed"],
            Authentication,
            Failure,
        ),
        (
            "user",
            &[
                "UserCreated",
                "PolicyAssigned",
                "PolicyRemoved",
                "CredentialsUpdated",
                "UserLocked",
                "UserUnlocked",
                "UserExpired",
                "RoleAssigned",
                "RoleRemoved",
                "MfaEnrollmentStarted",
                "MfaEnrollmentConfirmed",
                "MfaDisabled",
                "BackupCodesGenerated",
                "PasswordExpired",
                "PasswordRehashed",
            ],
            Admin,
            Success,
        ),
        (
            "auth_audit",
            &["AuthenticationAttemptFailed"],
            Authentication,
            Failure,
        ),
        (
            "auth_audit",
            &["MfaChallenged", "PasswordChangeRequired"],
            Authentication,
            Challenged,
        ),
        (
            "session",
            &["SessionStarted", "SessionRotated", "SessionRevoked"],
            Authentication,
            Success,
        ),
        (
            "session",
            &["RefreshTokenReuseDetected"],
            Authentication,
            Failure,
        ),
        (
            "access_token_revocation",
            &["AccessTokenRevoked"],
            Authentication,
            Success,
        ),
        ("authz_audit", &["AccessDenied"], Authorization, Denied),
        ("authz_audit", &["AccessGranted"], Authorization, Success),
        (
            "account",
            &[
                "AccountCreated",
                "AccountLimitsUpdated",
                "AccountSuspended",
                "AccountReactivated",
                "AccountExpired",
                "DefaultPermissionsUpdated",
                "UserAdded",
            ],
            Admin,
            Success,
        ),
        (
            "account",
            &["AccountSigningKeyAdded", "AccountSigningKeyRevoked"],
            KeyManagement,
            Success,
        ),
        (
            "operator",
            &["OperatorCreated", "SystemAccountSet"],
            Admin,
            Success,
        ),
        (
            "operator",
            &["SigningKeyRotated", "SigningKeyRevoked"],
            KeyManagement,
            Success,
        ),
        (
            "role",
            &["RoleDefined", "RolePermissionsUpdated", "RoleRetired"],
            Admin,
            Success,
        ),
        (
            "policy",
            &["PolicyCreated", "PermissionsUpdated", "LimitsUpdated"],
            Admin,
            Success,
        ),
        ("user_id_claim", &["UserIdClaimed"], Admin, Success),
        (
            "tenant_keyring",
            &["TenantKeyActivated", "TenantKeyRetired"],
            KeyManagement,
            Success,
        ),
        (
            "key",
            &[
                "KeyCreated",
                "KeyRotated",
                "KeyRevoked",
                "KeyDestroyed",
                "KeyRewrapped",
                "KeyAnchored",
            ],
            KeyManagement,
            Success,
        ),
        ("chain_anchor", &["ChainAnchored"], KeyManagement, Success),
    ]
};

/// The kind and outcome of an event type of an aggregate type, or `None`
/// for events that are not indexed.
fn kind_and_outcome(aggregate_type: &str, event_type: &str) -> Option<(AuditKind, AuditOutcome)> {
    CLASSIFICATION
        .iter()
        .find(|(aggregate, types, _, _)| {
            *aggregate == aggregate_type && types.contains(&event_type)
        })
        .map(|&(_, _, kind, outcome)| (kind, outcome))
}

/// The user an event is about: the payload's `user_id`, or the stream's
/// aggregate id for a user's own stream.
fn subject_of(event: &StoredEvent) -> Option<UserId> {
    let from_payload = event
        .payload
        .get("user_id")
        .and_then(|v| v.as_str())
        .and_then(|text| Uuid::parse_str(text).ok())
        .map(UserId::from_uuid);
    from_payload.or_else(|| {
        (&*event.stream_id.aggregate_type == "user")
            .then(|| UserId::from_uuid(event.stream_id.aggregate_id))
    })
}

/// The audit entry of an event, or `None` when the event is not one the
/// classification knows (or could not be read).
pub fn classify(event: &StoredEvent) -> Option<AuditEntry> {
    if event.unreadable.is_some() {
        return None;
    }
    let (kind, outcome) = kind_and_outcome(&event.stream_id.aggregate_type, &event.event_type)?;
    Some(AuditEntry {
        position: event.global_position,
        event_id: event.event_id,
        tenant_id: event.stream_id.tenant_id,
        occurred_at: event.occurred_at,
        kind,
        outcome,
        event_type: event.event_type.clone(),
        aggregate_type: event.stream_id.aggregate_type.clone(),
        aggregate_id: event.stream_id.aggregate_id,
        subject: subject_of(event),
        actor: event.metadata.actor.clone(),
        username: None,
    })
}

/// The username a `UserCreated` event gives its user, for resolving
/// subjects to names.
pub fn username_of(event: &StoredEvent) -> Option<(UserId, String)> {
    if &*event.stream_id.aggregate_type != "user" || &*event.event_type != "UserCreated" {
        return None;
    }
    let username = event.payload.get("username")?.as_str()?;
    Some((
        UserId::from_uuid(event.stream_id.aggregate_id),
        username.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in AuditKind::ALL {
            assert_eq!(kind.as_str().parse::<AuditKind>().unwrap(), kind);
        }
        for outcome in AuditOutcome::ALL {
            assert_eq!(outcome.as_str().parse::<AuditOutcome>().unwrap(), outcome);
        }
        assert!("other".parse::<AuditKind>().is_err());
        assert!("other".parse::<AuditOutcome>().is_err());
    }

    #[test]
    fn every_event_type_of_the_core_aggregates_is_classified() {
        let user_types = [
            "UserCreated",
            "PolicyAssigned",
            "PolicyRemoved",
            "CredentialsUpdated",
            "UserLocked",
            "UserUnlocked",
            "UserExpired",
            "RoleAssigned",
            "RoleRemoved",
            "MfaEnrollmentStarted",
            "MfaEnrollmentConfirmed",
            "MfaDisabled",
            "BackupCodesGenerated",
            "MfaVerified",
            "BackupCodeUsed",
            "MfaFailed",
            "UserAuthenticated",
            "AuthenticationFailed",
            "PasswordExpired",
            "SessionsRevoked",
            "PasswordRehashed",
        ];
        for event_type in user_types {
            assert!(
                kind_and_outcome("user", event_type).is_some(),
                "{event_type}"
            );
        }
        assert_eq!(
            kind_and_outcome("authz_audit", "AccessDenied"),
            Some((AuditKind::Authorization, AuditOutcome::Denied))
        );
        assert_eq!(kind_and_outcome("orders", "OrderPlaced"), None);
    }
}
