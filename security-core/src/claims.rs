//! Access-token claims and the [`TokenValidator`] port.
//!
//! `security-authn` issues and validates access tokens (RFC 7519 JWTs);
//! `security-authz` consumes the validated [`AccessClaims`]. Both meet here
//! so that neither depends on the other.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{SessionId, TenantId, UserId};
use crate::permissions::{Permissions, SubjectPermissions};
use crate::role::RoleName;
use crate::subject;

/// The `aud` claim: one audience or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience (serialized as a string).
    One(String),
    /// Several audiences (serialized as an array).
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` is among the audiences.
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Self::One(a) => a == aud,
            Self::Many(list) => list.iter().any(|a| a == aud),
        }
    }
}

/// The claims of a validated access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Audience.
    pub aud: Audience,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Not before (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Token id, the handle for revocation.
    pub jti: String,
    /// The user's tenant.
    pub tenant_id: TenantId,
    /// The user.
    pub user_id: UserId,
    /// The session (refresh-token family) the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// The user's roles when the token was issued.
    #[serde(default)]
    pub roles: Vec<RoleName>,
    /// The user's subject permissions (its policies plus its account's
    /// defaults) when the token was issued.
    #[serde(default, skip_serializing_if = "Permissions::is_empty")]
    pub permissions: Permissions,
}

impl AccessClaims {
    /// Whether the token's holder may publish to `subject`.
    pub fn can_publish(&self, subject: &str) -> bool {
        self.permissions.can_publish(subject)
    }

    /// Whether the token's holder may subscribe to `subject` (optionally
    /// in a queue group).
    pub fn can_subscribe(&self, subject: &str, queue: Option<&str>) -> bool {
        self.permissions.can_subscribe(subject, queue)
    }

    /// Whether the token's holder has a role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.as_str() == role)
    }
}

impl Permissions {
    /// Whether a message may be published to the literal `subject`.
    ///
    /// Default deny: the subject must match an allow pattern, and no deny
    /// pattern (deny wins). An invalid or wildcard subject is refused.
    ///
    /// This is the reference implementation: a loop over the patterns.
    /// `security-authz` compiles permissions into a trie for speed and is
    /// tested against this one.
    pub fn can_publish(&self, subject: &str) -> bool {
        subject::is_valid_literal(subject) && publish_allowed(&self.publish, subject)
    }

    /// Whether a subscription to `subject` (which may hold wildcards) in
    /// `queue` may be made.
    ///
    /// Default deny: every subject the subscription can receive must be
    /// covered by one allow pattern (whose queue group, if it names one,
    /// equals `queue`); a subscription wholly inside a deny pattern is
    /// refused. One that only overlaps a deny pattern is accepted, as in
    /// nats-server, and the denied messages must be filtered at delivery.
    pub fn can_subscribe(&self, subject: &str, queue: Option<&str>) -> bool {
        if !subject::is_valid_pattern(subject)
            || queue.is_some_and(|q| subject::validate_queue(q).is_err())
        {
            return false;
        }
        let allowed = self.subscribe.allow.iter().any(|p| {
            subject::is_subset(subject, p.pattern())
                && p.queue_group().is_none_or(|q| Some(q) == queue)
        });
        let denied = self.subscribe.deny.iter().any(|p| {
            subject::is_subset(subject, p.pattern())
                && p.queue_group().is_none_or(|q| Some(q) == queue)
        });
        allowed && !denied
    }
}

fn publish_allowed(list: &SubjectPermissions, subject: &str) -> bool {
    list.allow.iter().any(|p| p.matches(subject)) && !list.deny.iter().any(|p| p.matches(subject))
}

/// Why a token was refused. The message never includes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a well-formed token (segments, encoding, JSON, size).
    #[error("token is malformed")]
    Malformed,
    /// Larger than the validator accepts.
    #[error("token is too large")]
    TooLarge,
    /// The header names an algorithm the validator does not accept for the key.
    #[error("token algorithm is not accepted")]
    Algorithm,
    /// The header is missing `kid`, or names a key the validator does not know.
    #[error("token signing key is unknown")]
    UnknownKey,
    /// The signing key was revoked.
    #[error("token signing key is revoked")]
    RevokedKey,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    Signature,
    /// Past its expiry.
    #[error("token has expired")]
    Expired,
    /// Before its `nbf`, or issued in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// A claim the validator requires is missing or of the wrong type.
    #[error("token is missing a required claim")]
    MissingClaim,
    /// Wrong `iss`.
    #[error("token issuer is not accepted")]
    Issuer,
    /// Wrong `aud`.
    #[error("token audience is not accepted")]
    Audience,
    /// The header's `typ` or `crit` is not accepted.
    #[error("token header is not accepted")]
    Header,
    /// The token (its `jti`) or its session was revoked.
    #[error("token was revoked")]
    Revoked,
}

/// Validates access tokens in-process.
///
/// [`validate`](Self::validate) uses only what the validator holds;
/// [`validate_async`](Self::validate_async), which request paths (the
/// `tower` layer, secure publishing) call, may also fetch what it lacks
/// (a signing key another replica created, from a shared key store) before
/// deciding. A validator that needs nothing from outside implements only
/// `validate`.
#[async_trait::async_trait]
pub trait TokenValidator: fmt::Debug + Send + Sync {
    /// The claims of a valid token, or why it is refused.
    fn validate(&self, token: &str) -> Result<AccessClaims, TokenError>;

    /// Like [`validate`](Self::validate), fetching an unknown signing key
    /// first where the validator can (default: `validate`).
    async fn validate_async(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.validate(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::SubjectPattern;

    fn perms() -> Permissions {
        Permissions {
            publish: SubjectPermissions::from_patterns(
                ["orders.>", "workflow.commands.*"],
                ["orders.delete"],
            )
            .unwrap(),
            subscribe: SubjectPermissions {
                allow: vec![
                    SubjectPattern::new("orders.>").unwrap(),
                    SubjectPattern::with_queue("jobs.*", "workers").unwrap(),
                ],
                deny: vec![SubjectPattern::new("orders.secret.>").unwrap()],
            },
            allow_responses: None,
        }
    }

    #[test]
    fn publish_is_default_deny_and_deny_wins() {
        let p = perms();
        assert!(p.can_publish("orders.created"));
        assert!(p.can_publish("workflow.commands.create"));
        assert!(!p.can_publish("orders.delete"));
        assert!(!p.can_publish("billing.created"));
        assert!(!p.can_publish("orders.*"));
        assert!(!p.can_publish("orders..x"));
        assert!(!Permissions::default().can_publish("anything"));
    }

    #[test]
    fn subscribe_checks_subsets_and_queues() {
        let p = perms();
        assert!(p.can_subscribe("orders.>", None));
        assert!(p.can_subscribe("orders.*", None));
        assert!(!p.can_subscribe(">", None));
        assert!(p.can_subscribe("jobs.a", Some("workers")));
        assert!(!p.can_subscribe("jobs.a", None));
        assert!(!p.can_subscribe("jobs.a", Some("others")));
        assert!(!p.can_subscribe("orders.secret.plans", None));
        // overlapping a deny entry is accepted; delivery filters it
        assert!(p.can_subscribe("orders.>", None));
    }
}
