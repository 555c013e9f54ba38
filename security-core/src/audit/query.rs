//! The query side of the audit index: what is asked, what comes back, and
//! the [`AuditIndex`] port that answers.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::classify::{AuditKind, AuditOutcome};
use crate::event::Actor;
use crate::ids::{EventId, TenantId, UserId};
use crate::store::StoreError;

/// The most entries one page holds.
pub const MAX_AUDIT_PAGE: usize = 1000;

/// One indexed event: what happened, to whom, by whom, when, and where to
/// read the whole event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The event's global position (the order and the cursor).
    pub position: u64,
    /// The event's id.
    pub event_id: EventId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// What it is about.
    pub kind: AuditKind,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Its event type, e.g. `"AuthenticationFailed"`.
    pub event_type: Arc<str>,
    /// Its stream's aggregate type.
    pub aggregate_type: Arc<str>,
    /// Its stream's aggregate id.
    pub aggregate_id: Uuid,
    /// The user it is about, if any.
    pub subject: Option<UserId>,
    /// Who caused it (`system` for the library's automatic actions).
    pub actor: Option<Actor>,
    /// The subject's username: filled only when the query asked for it
    /// ([`AuditQuery::resolve_usernames`]) and the index knows the user.
    pub username: Option<String>,
}

/// Which way a page runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditOrder {
    /// Oldest first (ascending global position).
    #[default]
    OldestFirst,
    /// Newest first (descending global position).
    NewestFirst,
}

/// Where the previous page stopped: the global position of its last
/// entry. Stable: entries never move, and new ones only come after the
/// head, so paging on never skips or repeats an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuditCursor(pub u64);

impl AuditCursor {
    /// The position the previous page stopped at.
    pub fn position(self) -> u64 {
        self.0
    }
}

/// One tenant's audit entries, filtered, one page at a time.
///
/// Every filter that is set must match (`None`: any). The time range is
/// `[from, until)` on the events' `occurred_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// The tenant (required: no query crosses tenants).
    pub tenant_id: TenantId,
    /// Only events about this user.
    pub subject: Option<UserId>,
    /// Only events caused by this actor.
    pub actor: Option<Actor>,
    /// Only events of this kind.
    pub kind: Option<AuditKind>,
    /// Only events with this outcome.
    pub outcome: Option<AuditOutcome>,
    /// Only events that occurred at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only events that occurred before this time.
    pub until: Option<DateTime<Utc>>,
    /// The page's direction.
    pub order: AuditOrder,
    /// Continue after this cursor (the previous page's
    /// [`next`](AuditPage::next)).
    pub after: Option<AuditCursor>,
    /// At most this many entries (1 to [`MAX_AUDIT_PAGE`]).
    pub limit: usize,
    /// Fill in [`AuditEntry::username`]. Set it only for a reader allowed
    /// to see usernames (for example one holding a `user:read`
    /// permission): the index does not check who asks.
    pub resolve_usernames: bool,
}

impl AuditQuery {
    /// Every entry of a tenant, oldest first, 100 per page, no usernames.
    pub fn tenant(tenant_id: TenantId) -> Self {
        Self {
            tenant_id,
            subject: None,
            actor: None,
            kind: None,
            outcome: None,
            from: None,
            until: None,
            order: AuditOrder::OldestFirst,
            after: None,
            limit: 100,
            resolve_usernames: false,
        }
    }

    /// Only events about `user`.
    pub fn subject(mut self, user: UserId) -> Self {
        self.subject = Some(user);
        self
    }

    /// Only events caused by `actor`.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Only events of `kind`.
    pub fn kind(mut self, kind: AuditKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only events with `outcome`.
    pub fn outcome(mut self, outcome: AuditOutcome) -> Self {
        self.outcome = Some(outcome);
        self
    }

    /// Only events that occurred in `[from, until)`.
    pub fn between(mut self, from: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self.until = Some(until);
        self
    }

    /// Newest first.
    pub fn newest_first(mut self) -> Self {
        self.order = AuditOrder::NewestFirst;
        self
    }

    /// Continues after a cursor.
    pub fn after(mut self, cursor: AuditCursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// At most `limit` entries per page.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Fills in usernames (see [`resolve_usernames`](Self::resolve_usernames)).
    pub fn with_usernames(mut self) -> Self {
        self.resolve_usernames = true;
        self
    }

    /// Checks the query's shape: a page size of 1 to [`MAX_AUDIT_PAGE`],
    /// a time range that does not end before it starts.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.limit == 0 || self.limit > MAX_AUDIT_PAGE {
            return Err(StoreError::InvalidRequest(
                "an audit query's limit must be 1 to 1000",
            ));
        }
        if let (Some(from), Some(until)) = (self.from, self.until)
            && until < from
        {
            return Err(StoreError::InvalidRequest(
                "an audit query's time range ends before it starts",
            ));
        }
        Ok(())
    }

    /// Whether an entry of the query's tenant passes every filter but the
    /// cursor.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        entry.tenant_id == self.tenant_id
            && self.subject.is_none_or(|s| entry.subject == Some(s))
            && self
                .actor
                .as_ref()
                .is_none_or(|a| entry.actor.as_ref() == Some(a))
            && self.kind.is_none_or(|k| entry.kind == k)
            && self.outcome.is_none_or(|o| entry.outcome == o)
            && self.from.is_none_or(|from| entry.occurred_at >= from)
            && self.until.is_none_or(|until| entry.occurred_at < until)
    }
}

/// One page of entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The entries, in the query's order.
    pub entries: Vec<AuditEntry>,
    /// The cursor of the next page (`None`: this was the last one).
    pub next: Option<AuditCursor>,
    /// The global position the index has applied up to: events after it
    /// are not in any page yet.
    pub indexed_up_to: u64,
}

/// Answers audit queries from an index kept by a projection of the store.
#[async_trait]
pub trait AuditIndex: Send + Sync {
    /// One page of the entries matching `query`. Refuses a malformed query
    /// ([`StoreError::InvalidRequest`], see [`AuditQuery::validate`]).
    async fn query(&self, query: &AuditQuery) -> Result<AuditPage, StoreError>;
}
