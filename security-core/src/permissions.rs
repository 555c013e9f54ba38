//! Subject permissions (NATS style) and resource limits.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::AccountId;
use crate::subject::{self, SubjectError};

/// A validated subject pattern, optionally bound to a queue group
/// (subscribe permissions only).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPattern", into = "RawPattern")]
pub struct SubjectPattern {
    pattern: String,
    queue_group: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct RawPattern {
    pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queue_group: Option<String>,
}

impl TryFrom<RawPattern> for SubjectPattern {
    type Error = SubjectError;

    fn try_from(raw: RawPattern) -> Result<Self, Self::Error> {
        match raw.queue_group {
            Some(queue) => Self::with_queue(raw.pattern, queue),
            None => Self::new(raw.pattern),
        }
    }
}

impl From<SubjectPattern> for RawPattern {
    fn from(p: SubjectPattern) -> Self {
        Self {
            pattern: p.pattern,
            queue_group: p.queue_group,
        }
    }
}

impl SubjectPattern {
    /// A pattern such as `orders.>` or `users.*.created`.
    pub fn new(pattern: impl Into<String>) -> Result<Self, SubjectError> {
        let pattern = pattern.into();
        subject::validate_pattern(&pattern)?;
        Ok(Self {
            pattern,
            queue_group: None,
        })
    }

    /// A pattern that only applies to subscriptions in `queue`.
    ///
    /// The queue group is a literal name: a `*` or `>` token is refused
    /// ([`SubjectError::WildcardNotAllowed`]), because nats-server would
    /// read it as a pattern over queue names while the in-process check
    /// compares names exactly.
    pub fn with_queue(
        pattern: impl Into<String>,
        queue: impl Into<String>,
    ) -> Result<Self, SubjectError> {
        let pattern = pattern.into();
        let queue = queue.into();
        subject::validate_pattern(&pattern)?;
        subject::validate_queue(&queue)?;
        if queue
            .split('.')
            .any(|t| subject::is_partial_wildcard(t) || subject::is_full_wildcard(t))
        {
            return Err(SubjectError::WildcardNotAllowed);
        }
        Ok(Self {
            pattern,
            queue_group: Some(queue),
        })
    }

    /// The subject pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The queue group, if the pattern is bound to one.
    pub fn queue_group(&self) -> Option<&str> {
        self.queue_group.as_deref()
    }

    /// Whether this pattern matches `subject` (ignoring the queue group).
    pub fn matches(&self, subject: &str) -> bool {
        subject::matches(&self.pattern, subject)
    }

    /// The NATS JWT form: `"subject"` or `"subject queue"`.
    pub fn to_nats_string(&self) -> String {
        match &self.queue_group {
            Some(q) => format!("{} {q}", self.pattern),
            None => self.pattern.clone(),
        }
    }
}

impl fmt::Debug for SubjectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_nats_string())
    }
}

impl fmt::Display for SubjectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_nats_string())
    }
}

/// Allow and deny lists for one direction (publish or subscribe).
///
/// Default deny: a subject must match an `allow` pattern, and no `deny`
/// pattern (deny wins). An empty `allow` list allows nothing in-process;
/// when these lists are written into a NATS user JWT (where no permissions
/// means everything is allowed) the issuer makes the server deny too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectPermissions {
    /// Patterns that are allowed (empty: nothing is allowed).
    #[serde(default)]
    pub allow: Vec<SubjectPattern>,
    /// Patterns that are refused, whatever the allow list says.
    #[serde(default)]
    pub deny: Vec<SubjectPattern>,
}

impl SubjectPermissions {
    /// Builds lists from pattern strings, validating each.
    pub fn from_patterns<A, D>(allow: A, deny: D) -> Result<Self, SubjectError>
    where
        A: IntoIterator,
        A::Item: Into<String>,
        D: IntoIterator,
        D::Item: Into<String>,
    {
        Ok(Self {
            allow: allow
                .into_iter()
                .map(SubjectPattern::new)
                .collect::<Result<_, _>>()?,
            deny: deny
                .into_iter()
                .map(SubjectPattern::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether both lists are empty.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// How a client may answer requests (`allow_responses`, NATS `resp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsePermission {
    /// How many replies per request (negative: unlimited).
    pub max_messages: i64,
    /// How long after the request, in milliseconds (negative: unlimited).
    pub ttl_ms: i64,
}

impl Default for ResponsePermission {
    /// One reply within two minutes, the NATS default.
    fn default() -> Self {
        Self {
            max_messages: 1,
            ttl_ms: 120_000,
        }
    }
}

/// Publish and subscribe permissions, plus the right to answer requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Subjects the holder may publish to.
    #[serde(default)]
    pub publish: SubjectPermissions,
    /// Subjects the holder may subscribe to.
    #[serde(default)]
    pub subscribe: SubjectPermissions,
    /// `Some` if the holder may reply to requests it receives, with limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_responses: Option<ResponsePermission>,
}

impl Permissions {
    /// Whether no list is set and responses are not allowed.
    pub fn is_empty(&self) -> bool {
        self.publish.is_empty() && self.subscribe.is_empty() && self.allow_responses.is_none()
    }

    /// Whether these permissions grant at least everything `other` grants,
    /// judged from the lists alone: every allow pattern of `other` is
    /// here, every deny pattern here is in `other`, and reply rights are
    /// no smaller. `false` means "possibly narrower" (a change that is not
    /// a plain widening), never "certainly narrower".
    pub fn covers(&self, other: &Self) -> bool {
        self.publish.covers(&other.publish)
            && self.subscribe.covers(&other.subscribe)
            && match (self.allow_responses, other.allow_responses) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(mine), Some(theirs)) => mine.covers(theirs),
            }
    }
}

impl SubjectPermissions {
    /// See [`Permissions::covers`].
    fn covers(&self, other: &Self) -> bool {
        other.allow.iter().all(|p| self.allow.contains(p))
            && self.deny.iter().all(|p| other.deny.contains(p))
    }
}

impl ResponsePermission {
    /// Whether this allows at least as many replies for at least as long.
    fn covers(self, other: Self) -> bool {
        let at_least = |mine: i64, theirs: i64| mine < 0 || (theirs >= 0 && mine >= theirs);
        at_least(self.max_messages, other.max_messages) && at_least(self.ttl_ms, other.ttl_ms)
    }
}

impl ResourceLimits {
    /// Whether these limits are at least as loose as `other`'s in every
    /// respect (`None` being no limit, a later `expires_at` looser).
    pub fn covers(&self, other: &Self) -> bool {
        fn looser<T: Ord>(mine: Option<T>, theirs: Option<T>) -> bool {
            match (mine, theirs) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(mine), Some(theirs)) => mine >= theirs,
            }
        }
        looser(self.max_payload_size, other.max_payload_size)
            && looser(self.max_subscriptions, other.max_subscriptions)
            && looser(
                self.data_rate.map(|r| r.bytes_per_second),
                other.data_rate.map(|r| r.bytes_per_second),
            )
            && looser(self.expires_at, other.expires_at)
    }
}

/// A data-rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRate {
    /// Bytes allowed per second.
    pub bytes_per_second: u64,
}

/// Resource limits of a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Largest message payload, in bytes (`None`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload_size: Option<u64>,
    /// Most subscriptions at once (`None`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_subscriptions: Option<u32>,
    /// Data-rate limit (`None`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_rate: Option<DataRate>,
    /// When the policy stops granting anything (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Whether an export or import carries a stream of messages or a service
/// (request/reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// A stream of messages.
    Stream,
    /// Request/reply.
    Service,
}

/// Subjects an account makes available to other accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// The exported subjects.
    pub subject: SubjectPattern,
    /// Stream or service.
    pub kind: ExportKind,
}

/// Subjects an account takes from another account's exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    /// The imported subjects.
    pub subject: SubjectPattern,
    /// The exporting account.
    pub account: AccountId,
    /// Stream or service.
    pub kind: ExportKind,
}

/// Limits of an account (tenant). `None` means no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// Most users in the account; enforced when a user is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_users: Option<u32>,
    /// Most client connections at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Most subscriptions at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_subscriptions: Option<u32>,
    /// Largest message payload, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload_size: Option<u64>,
    /// Data-rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_data_rate: Option<DataRate>,
    /// Subjects the account may export.
    #[serde(default)]
    pub allowed_exports: Vec<Export>,
    /// Subjects the account may import.
    #[serde(default)]
    pub allowed_imports: Vec<Import>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_is_a_sound_widening_check() {
        let perms = |allow: &[&str], deny: &[&str]| Permissions {
            subscribe: SubjectPermissions::from_patterns(
                allow.iter().copied(),
                deny.iter().copied(),
            )
            .unwrap(),
            ..Permissions::default()
        };
        let base = perms(&["orders.>", "payments.>"], &["payments.cards"]);
        assert!(base.covers(&base));
        assert!(perms(&["orders.>", "payments.>", "x"], &[]).covers(&base));
        assert!(!perms(&["orders.>"], &["payments.cards"]).covers(&base));
        assert!(!perms(&["orders.>", "payments.>"], &["payments.cards", "orders.x"]).covers(&base));
        let mut replies = base.clone();
        replies.allow_responses = Some(ResponsePermission::default());
        assert!(replies.covers(&base));
        assert!(!base.covers(&replies));
        let mut more = replies.clone();
        more.allow_responses = Some(ResponsePermission {
            max_messages: -1,
            ttl_ms: 120_000,
        });
        assert!(more.covers(&replies) && !replies.covers(&more));

        let limits = ResourceLimits {
            max_subscriptions: Some(10),
            ..ResourceLimits::default()
        };
        assert!(ResourceLimits::default().covers(&limits));
        assert!(!limits.covers(&ResourceLimits::default()));
        let later = ResourceLimits {
            expires_at: Some(chrono::DateTime::UNIX_EPOCH + chrono::Duration::days(2)),
            ..limits.clone()
        };
        let earlier = ResourceLimits {
            expires_at: Some(chrono::DateTime::UNIX_EPOCH + chrono::Duration::days(1)),
            ..limits.clone()
        };
        assert!(later.covers(&earlier) && !earlier.covers(&later));
    }

    #[test]
    fn patterns_are_validated_on_the_way_in_including_serde() {
        assert!(SubjectPattern::new("orders.>").is_ok());
        assert_eq!(
            SubjectPattern::new("orders.>.x"),
            Err(SubjectError::FullWildcardNotLast)
        );
        assert!(SubjectPattern::with_queue("jobs.*", "workers").is_ok());
        assert!(SubjectPattern::with_queue("jobs.*", "").is_err());
        // Queue groups are literal names (nats-server would read a
        // wildcard token as a pattern over queue names).
        for queue in ["*", ">", "workers.*", "a.>", "*.b"] {
            assert_eq!(
                SubjectPattern::with_queue("jobs.*", queue),
                Err(SubjectError::WildcardNotAllowed),
                "{queue}"
            );
        }
        assert!(SubjectPattern::with_queue("jobs.*", "v1*").is_ok());
        let bad = serde_json::json!({"pattern": "a..b"});
        assert!(serde_json::from_value::<SubjectPattern>(bad).is_err());
        let good = SubjectPattern::with_queue("jobs.*", "w").unwrap();
        let json = serde_json::to_value(&good).unwrap();
        assert_eq!(
            serde_json::from_value::<SubjectPattern>(json).unwrap(),
            good
        );
        assert_eq!(good.to_nats_string(), "jobs.* w");
    }

    #[test]
    fn permission_lists_from_strings() {
        let p = SubjectPermissions::from_patterns(["orders.>"], ["orders.delete"]).unwrap();
        assert_eq!(p.allow.len(), 1);
        assert!(p.deny[0].matches("orders.delete"));
        assert!(SubjectPermissions::from_patterns(["ok", "bad..x"], Vec::<String>::new()).is_err());
    }
}
