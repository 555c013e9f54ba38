//! Subject permissions compiled into token tries.
//!
//! [`security_core::Permissions::can_publish`] is the reference: a loop over
//! every pattern, each match re-validating both strings. Here the patterns
//! of one or many permission sets are merged into one trie per direction
//! and list (publish/subscribe × allow/deny), keyed by subject token, so a
//! check walks the subject's tokens once, whatever the number of patterns.
//! The grammar and the semantics stay those of [`security_core::subject`]
//! (the tests compare both on random input and on the NATS vectors).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use security_core::subject;
use security_core::{
    Permissions, PolicyId, ResponsePermission, SubjectPattern, SubjectPermissions,
};
use serde::{Deserialize, Serialize};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Where a subject pattern came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum PatternSource {
    /// A policy the user holds.
    Policy(PolicyId),
    /// The default permissions of the user's account.
    AccountDefaults,
    /// Permissions given directly (e.g. the claims of a token).
    Given,
}

/// A pattern that decided a subject check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedPattern {
    /// The pattern, e.g. `orders.>`.
    pub pattern: Arc<str>,
    /// Its queue group, if it is bound to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_group: Option<Arc<str>>,
    /// Where it came from.
    pub source: PatternSource,
}

impl fmt::Display for MatchedPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.queue_group {
            Some(q) => write!(f, "{} {q}", self.pattern),
            None => f.write_str(&self.pattern),
        }
    }
}

/// The outcome of a publish or subscribe check, with the pattern that
/// decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SubjectDecision {
    /// An allow pattern covers the subject and no deny pattern does.
    Allowed {
        /// The allow pattern.
        pattern: MatchedPattern,
    },
    /// A deny pattern covers the subject (deny wins).
    Denied {
        /// The deny pattern.
        pattern: MatchedPattern,
    },
    /// No allow pattern covers the subject (default deny).
    NotAllowed,
    /// The subject or queue group breaks the NATS grammar.
    Invalid,
}

impl SubjectDecision {
    /// Whether the check allows the operation.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// Patterns ending at a node, with and without a queue group.
#[derive(Debug, Clone, Default)]
struct Terminal {
    /// A pattern without a queue group (covers every queue).
    any_queue: Option<u32>,
    /// Patterns bound to a queue group.
    queues: Vec<(Box<str>, u32)>,
}

impl Terminal {
    fn accepts(&self, queue: Option<&str>) -> Option<u32> {
        if self.any_queue.is_some() {
            return self.any_queue;
        }
        let queue = queue?;
        self.queues
            .iter()
            .find(|(q, _)| &**q == queue)
            .map(|(_, p)| *p)
    }

    fn add(&mut self, queue: Option<&str>, pattern: u32) {
        match queue {
            None => {
                self.any_queue.get_or_insert(pattern);
            }
            Some(q) => {
                if !self.queues.iter().any(|(have, _)| &**have == q) {
                    self.queues.push((q.into(), pattern));
                }
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    literals: FastMap<Box<str>, u32>,
    /// The child reached through a `*` token.
    star: Option<u32>,
    /// Patterns ending in `>` at this node (cover one or more further tokens).
    full: Terminal,
    /// Patterns ending exactly at this node.
    end: Terminal,
}

/// One list (allow or deny) of one direction, as a token trie.
#[derive(Debug, Clone)]
struct Trie {
    nodes: Vec<Node>,
    patterns: Vec<MatchedPattern>,
}

impl Default for Trie {
    fn default() -> Self {
        Self {
            nodes: vec![Node::default()],
            patterns: Vec::new(),
        }
    }
}

impl Trie {
    fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    fn insert(&mut self, pattern: &SubjectPattern, use_queue: bool, source: PatternSource) {
        let queue = if use_queue {
            pattern.queue_group()
        } else {
            None
        };
        let id = u32::try_from(self.patterns.len()).unwrap_or(u32::MAX);
        let mut node = 0_usize;
        let mut tokens = pattern.pattern().split('.').peekable();
        while let Some(token) = tokens.next() {
            if subject::is_full_wildcard(token) && tokens.peek().is_none() {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.full.add(queue, id);
                }
                self.push_pattern(pattern, queue, source);
                return;
            }
            node = self.child(node, token);
        }
        if let Some(n) = self.nodes.get_mut(node) {
            n.end.add(queue, id);
        }
        self.push_pattern(pattern, queue, source);
    }

    fn push_pattern(
        &mut self,
        pattern: &SubjectPattern,
        queue: Option<&str>,
        source: PatternSource,
    ) {
        self.patterns.push(MatchedPattern {
            pattern: pattern.pattern().into(),
            queue_group: queue.map(Arc::from),
            source,
        });
    }

    fn child(&mut self, node: usize, token: &str) -> usize {
        let next = self.nodes.len();
        let Some(n) = self.nodes.get_mut(node) else {
            return node;
        };
        let slot = if subject::is_partial_wildcard(token) {
            *n.star
                .get_or_insert(u32::try_from(next).unwrap_or(u32::MAX))
        } else {
            *n.literals
                .entry(token.into())
                .or_insert(u32::try_from(next).unwrap_or(u32::MAX))
        };
        let slot = slot as usize;
        if slot == next {
            self.nodes.push(Node::default());
        }
        slot
    }

    /// The first pattern that covers every subject `subject` can name (for a
    /// literal subject: that matches it), honouring queue groups.
    fn find(&self, subject: &str, queue: Option<&str>) -> Option<&MatchedPattern> {
        if self.is_empty() {
            return None;
        }
        self.walk(0, Some(subject), queue)
            .and_then(|id| self.patterns.get(id as usize))
    }

    fn walk(&self, node: u32, rest: Option<&str>, queue: Option<&str>) -> Option<u32> {
        let n = self.nodes.get(node as usize)?;
        let Some(rest) = rest else {
            return n.end.accepts(queue);
        };
        // `>` covers one or more further tokens, whatever they are.
        if let Some(p) = n.full.accepts(queue) {
            return Some(p);
        }
        let (token, tail) = match rest.split_once('.') {
            Some((token, tail)) => (token, Some(tail)),
            None => (rest, None),
        };
        // Only a `>` pattern covers a `>` subject token (handled above).
        if subject::is_full_wildcard(token) {
            return None;
        }
        if let Some(star) = n.star
            && let Some(p) = self.walk(star, tail, queue)
        {
            return Some(p);
        }
        // A `*` subject token is only covered by `*` or `>` patterns.
        if subject::is_partial_wildcard(token) {
            return None;
        }
        let child = *n.literals.get(token)?;
        self.walk(child, tail, queue)
    }
}

/// Allow and deny tries of one direction.
#[derive(Debug, Clone, Default)]
struct Direction {
    allow: Trie,
    deny: Trie,
}

impl Direction {
    fn add(&mut self, list: &SubjectPermissions, use_queue: bool, source: PatternSource) {
        for p in &list.allow {
            self.allow.insert(p, use_queue, source);
        }
        for p in &list.deny {
            self.deny.insert(p, use_queue, source);
        }
    }

    fn parts(&self, subject: &str, queue: Option<&str>) -> Parts<'_> {
        let deny = self.deny.find(subject, queue);
        // Deny wins: no need to look for an allow pattern.
        let allow = if deny.is_some() {
            None
        } else {
            self.allow.find(subject, queue)
        };
        Parts { allow, deny }
    }
}

/// What one compiled set says about a subject, before combining.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Parts<'a> {
    pub(crate) allow: Option<&'a MatchedPattern>,
    pub(crate) deny: Option<&'a MatchedPattern>,
}

impl Parts<'_> {
    pub(crate) fn decision(self) -> SubjectDecision {
        match (self.deny, self.allow) {
            (Some(d), _) => SubjectDecision::Denied { pattern: d.clone() },
            (None, Some(a)) => SubjectDecision::Allowed { pattern: a.clone() },
            (None, None) => SubjectDecision::NotAllowed,
        }
    }

    pub(crate) fn is_allowed(self) -> bool {
        self.deny.is_none() && self.allow.is_some()
    }
}

/// Subject permissions (publish and subscribe, allow and deny, queue groups,
/// `allow_responses`) compiled for fast checks.
///
/// Compiled from one [`Permissions`] or from the union of several (a user's
/// policies plus its account's defaults). Semantics are those of
/// [`Permissions::can_publish`] and [`Permissions::can_subscribe`]: default
/// deny (a subject must be covered by an allow pattern), and deny wins over
/// allow from any source.
///
/// ```
/// use security_authz::CompiledPermissions;
/// use security_core::{Permissions, SubjectPermissions};
///
/// let permissions = Permissions {
///     publish: SubjectPermissions::from_patterns(["workflow.commands.*"], ["workflow.commands.drop"]).unwrap(),
///     ..Permissions::default()
/// };
/// let compiled = CompiledPermissions::compile(&permissions);
/// assert!(compiled.can_publish("workflow.commands.create"));
/// assert!(!compiled.can_publish("workflow.commands.drop"));
/// assert!(!compiled.can_publish("billing.charge"));
/// ```
#[derive(Clone, Default)]
pub struct CompiledPermissions {
    publish: Direction,
    subscribe: Direction,
    allow_responses: Option<ResponsePermission>,
}

impl fmt::Debug for CompiledPermissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPermissions")
            .field("publish_allow", &self.publish.allow.patterns.len())
            .field("publish_deny", &self.publish.deny.patterns.len())
            .field("subscribe_allow", &self.subscribe.allow.patterns.len())
            .field("subscribe_deny", &self.subscribe.deny.patterns.len())
            .field("allow_responses", &self.allow_responses)
            .finish()
    }
}

impl CompiledPermissions {
    /// Compiles one set of permissions.
    pub fn compile(permissions: &Permissions) -> Self {
        Self::union([(PatternSource::Given, permissions)])
    }

    /// Compiles the union of several sets: a subject is allowed when some
    /// set allows it and no set denies it. `allow_responses` is the most
    /// generous of the sets that allow responses.
    pub fn union<'a, I>(sources: I) -> Self
    where
        I: IntoIterator<Item = (PatternSource, &'a Permissions)>,
    {
        let mut compiled = Self::default();
        for (source, permissions) in sources {
            compiled.add(source, permissions);
        }
        compiled
    }

    /// Adds one more set to the union.
    pub fn add(&mut self, source: PatternSource, permissions: &Permissions) {
        // Publish permissions ignore queue groups, as the reference does.
        self.publish.add(&permissions.publish, false, source);
        self.subscribe.add(&permissions.subscribe, true, source);
        self.allow_responses = merge_responses(self.allow_responses, permissions.allow_responses);
    }

    /// Whether no pattern was compiled and responses are not allowed.
    pub fn is_empty(&self) -> bool {
        self.publish.allow.is_empty()
            && self.publish.deny.is_empty()
            && self.subscribe.allow.is_empty()
            && self.subscribe.deny.is_empty()
            && self.allow_responses.is_none()
    }

    /// Whether a message may be published to the literal `subject`.
    pub fn can_publish(&self, subject: &str) -> bool {
        subject::is_valid_literal(subject) && self.publish_parts(subject).is_allowed()
    }

    /// Whether a subscription to `subject` (wildcards allowed) in `queue`
    /// may be made. A subscription that only overlaps a deny pattern is
    /// accepted, as in nats-server; the denied messages must be filtered at
    /// delivery with [`can_receive`](Self::can_receive).
    pub fn can_subscribe(&self, subject: &str, queue: Option<&str>) -> bool {
        valid_subscription(subject, queue) && self.subscribe_parts(subject, queue).is_allowed()
    }

    /// Whether a message on the literal `subject` may be delivered to a
    /// subscription in `queue` (the delivery-time filter for wildcard
    /// subscriptions that overlap a deny pattern).
    pub fn can_receive(&self, subject: &str, queue: Option<&str>) -> bool {
        subject::is_valid_literal(subject) && self.can_subscribe(subject, queue)
    }

    /// The publish check, with the pattern that decided it.
    pub fn check_publish(&self, subject: &str) -> SubjectDecision {
        if !subject::is_valid_literal(subject) {
            return SubjectDecision::Invalid;
        }
        self.publish_parts(subject).decision()
    }

    /// The subscribe check, with the pattern that decided it.
    pub fn check_subscribe(&self, subject: &str, queue: Option<&str>) -> SubjectDecision {
        if !valid_subscription(subject, queue) {
            return SubjectDecision::Invalid;
        }
        self.subscribe_parts(subject, queue).decision()
    }

    /// How the holder may answer requests (`None`: it may not).
    pub fn allow_responses(&self) -> Option<ResponsePermission> {
        self.allow_responses
    }

    pub(crate) fn publish_parts(&self, subject: &str) -> Parts<'_> {
        self.publish.parts(subject, None)
    }

    pub(crate) fn subscribe_parts(&self, subject: &str, queue: Option<&str>) -> Parts<'_> {
        self.subscribe.parts(subject, queue)
    }
}

pub(crate) fn valid_subscription(subject: &str, queue: Option<&str>) -> bool {
    subject::is_valid_pattern(subject) && queue.is_none_or(|q| subject::validate_queue(q).is_ok())
}

/// The more generous of two response permissions (negative: unlimited).
pub(crate) fn merge_responses(
    a: Option<ResponsePermission>,
    b: Option<ResponsePermission>,
) -> Option<ResponsePermission> {
    fn more(x: i64, y: i64) -> i64 {
        if x < 0 || y < 0 { -1 } else { x.max(y) }
    }
    match (a, b) {
        (Some(a), Some(b)) => Some(ResponsePermission {
            max_messages: more(a.max_messages, b.max_messages),
            ttl_ms: more(a.ttl_ms, b.ttl_ms),
        }),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(pub_allow: &[&str], pub_deny: &[&str], sub: SubjectPermissions) -> Permissions {
        Permissions {
            publish: SubjectPermissions::from_patterns(
                pub_allow.iter().copied(),
                pub_deny.iter().copied(),
            )
            .unwrap(),
            subscribe: sub,
            allow_responses: None,
        }
    }

    #[test]
    fn publish_default_deny_deny_wins_and_invalid_subjects() {
        let c = CompiledPermissions::compile(&perms(
            &["orders.>", "workflow.commands.*"],
            &["orders.delete"],
            SubjectPermissions::default(),
        ));
        assert!(c.can_publish("orders.created"));
        assert!(c.can_publish("orders.a.b.c"));
        assert!(c.can_publish("workflow.commands.create"));
        assert!(!c.can_publish("workflow.commands.create.x"));
        assert!(!c.can_publish("orders"));
        assert!(!c.can_publish("orders.delete"));
        assert!(!c.can_publish("billing.created"));
        assert!(!c.can_publish("orders.*"));
        assert!(!c.can_publish("orders..x"));
        assert_eq!(c.check_publish("orders.*"), SubjectDecision::Invalid);
        match c.check_publish("orders.delete") {
            SubjectDecision::Denied { pattern } => assert_eq!(&*pattern.pattern, "orders.delete"),
            other => panic!("{other:?}"),
        }
        assert!(!CompiledPermissions::default().can_publish("anything"));
    }

    #[test]
    fn subscribe_subsets_queues_and_overlaps() {
        let sub = SubjectPermissions {
            allow: vec![
                SubjectPattern::new("orders.>").unwrap(),
                SubjectPattern::with_queue("jobs.*", "workers").unwrap(),
            ],
            deny: vec![SubjectPattern::new("orders.secret.>").unwrap()],
        };
        let c = CompiledPermissions::compile(&perms(&[], &[], sub));
        assert!(c.can_subscribe("orders.>", None));
        assert!(c.can_subscribe("orders.*", None));
        assert!(!c.can_subscribe(">", None));
        assert!(c.can_subscribe("jobs.a", Some("workers")));
        assert!(!c.can_subscribe("jobs.a", None));
        assert!(!c.can_subscribe("jobs.a", Some("others")));
        assert!(!c.can_subscribe("orders.secret.plans", None));
        assert!(!c.can_subscribe("orders.x", Some("bad queue")));
        // overlapping a deny entry is accepted; delivery filters it
        assert!(c.can_subscribe("orders.>", None));
        assert!(!c.can_receive("orders.secret.plans", None));
        assert!(c.can_receive("orders.public", None));
    }

    #[test]
    fn union_merges_sources_and_reports_them() {
        let policy = PolicyId::from_uuid(uuid::Uuid::from_u128(5));
        let a = perms(&["a.>"], &[], SubjectPermissions::default());
        let mut b = perms(&["b.*"], &["a.secret"], SubjectPermissions::default());
        b.allow_responses = Some(ResponsePermission {
            max_messages: 3,
            ttl_ms: 1000,
        });
        let c = CompiledPermissions::union([
            (PatternSource::AccountDefaults, &a),
            (PatternSource::Policy(policy), &b),
        ]);
        assert!(c.can_publish("a.x"));
        assert!(c.can_publish("b.x"));
        assert!(!c.can_publish("a.secret"));
        match c.check_publish("a.secret") {
            SubjectDecision::Denied { pattern } => {
                assert_eq!(pattern.source, PatternSource::Policy(policy));
            }
            other => panic!("{other:?}"),
        }
        match c.check_publish("a.y") {
            SubjectDecision::Allowed { pattern } => {
                assert_eq!(pattern.source, PatternSource::AccountDefaults);
                assert_eq!(pattern.to_string(), "a.>");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.allow_responses(),
            Some(ResponsePermission {
                max_messages: 3,
                ttl_ms: 1000
            })
        );
    }

    #[test]
    fn responses_merge_to_the_most_generous() {
        let one = ResponsePermission {
            max_messages: 1,
            ttl_ms: 5,
        };
        let unl = ResponsePermission {
            max_messages: -1,
            ttl_ms: 2,
        };
        assert_eq!(
            merge_responses(Some(one), Some(unl)),
            Some(ResponsePermission {
                max_messages: -1,
                ttl_ms: 5
            })
        );
        assert_eq!(merge_responses(None, Some(one)), Some(one));
        assert_eq!(merge_responses(None, None), None);
    }
}
