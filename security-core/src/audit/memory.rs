//! The audit index in memory: its own projection, and an [`AuditIndex`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;

use super::classify::{AuditKind, classify, username_of};
use super::query::{AuditCursor, AuditEntry, AuditIndex, AuditOrder, AuditPage, AuditQuery};
use crate::event::{Actor, StoredEvent};
use crate::ids::{TenantId, UserId};
use crate::projection::{Projection, ProjectionError};
use crate::store::StoreError;

/// One tenant's entries and the positions of each subject, actor and kind.
#[derive(Debug, Default)]
struct TenantIndex {
    entries: BTreeMap<u64, AuditEntry>,
    by_subject: HashMap<UserId, BTreeSet<u64>>,
    by_actor: HashMap<Actor, BTreeSet<u64>>,
    by_kind: HashMap<AuditKind, BTreeSet<u64>>,
    usernames: HashMap<UserId, String>,
}

#[derive(Debug, Default)]
struct State {
    tenants: HashMap<TenantId, TenantIndex>,
    position: u64,
}

/// The audit index in memory, for tests and single-process services.
///
/// It is its own projection: run it with a
/// [`ProjectionRunner`](crate::ProjectionRunner) over [`Scope::All`](crate::Scope::All)
/// (from position 0 at each start: the state is lost with the process).
/// Clones share the index, so keep one to query while the runner owns
/// another. A query reads the positions of its most selective filter
/// (subject, then actor, then kind) and checks the others entry by entry.
#[derive(Debug, Clone, Default)]
pub struct MemoryAuditIndex {
    state: Arc<RwLock<State>>,
}

/// The projection name of the memory index.
const NAME: &str = "audit_index";

impl MemoryAuditIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry as if an event had been applied (bulk loading for
    /// benchmarks and tests; positions must only grow).
    pub fn insert(&self, entry: AuditEntry) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.position = state.position.max(entry.position);
        insert(&mut state, entry);
    }

    /// Records a subject's username, as a `UserCreated` event would.
    pub fn insert_username(&self, tenant: TenantId, user: UserId, username: String) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state
            .tenants
            .entry(tenant)
            .or_default()
            .usernames
            .insert(user, username);
    }
}

fn insert(state: &mut State, entry: AuditEntry) {
    let tenant = state.tenants.entry(entry.tenant_id).or_default();
    let position = entry.position;
    if let Some(subject) = entry.subject {
        tenant
            .by_subject
            .entry(subject)
            .or_default()
            .insert(position);
    }
    if let Some(actor) = &entry.actor {
        tenant
            .by_actor
            .entry(actor.clone())
            .or_default()
            .insert(position);
    }
    tenant
        .by_kind
        .entry(entry.kind)
        .or_default()
        .insert(position);
    tenant.entries.insert(position, entry);
}

impl Projection for MemoryAuditIndex {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        let entry = classify(event);
        let username = username_of(event);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((user, name)) = username {
            state
                .tenants
                .entry(event.tenant_id())
                .or_default()
                .usernames
                .insert(user, name);
        }
        if let Some(entry) = entry {
            insert(&mut state, entry);
        }
        state.position = state.position.max(event.global_position);
        Ok(())
    }

    fn reset(&mut self) {
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = State::default();
    }
}

/// The positions after the cursor, in the query's order.
fn positions<'a>(
    set: impl DoubleEndedIterator<Item = u64> + 'a,
    order: AuditOrder,
) -> Box<dyn Iterator<Item = u64> + 'a> {
    match order {
        AuditOrder::OldestFirst => Box::new(set),
        AuditOrder::NewestFirst => Box::new(set.rev()),
    }
}

fn range(after: Option<AuditCursor>, order: AuditOrder) -> (Bound<u64>, Bound<u64>) {
    match (after, order) {
        (None, _) => (Bound::Unbounded, Bound::Unbounded),
        (Some(c), AuditOrder::OldestFirst) => (Bound::Excluded(c.0), Bound::Unbounded),
        (Some(c), AuditOrder::NewestFirst) => (Bound::Unbounded, Bound::Excluded(c.0)),
    }
}

#[async_trait]
impl AuditIndex for MemoryAuditIndex {
    async fn query(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        query.validate()?;
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut page = AuditPage {
            entries: Vec::new(),
            next: None,
            indexed_up_to: state.position,
        };
        let Some(tenant) = state.tenants.get(&query.tenant_id) else {
            return Ok(page);
        };
        let bounds = range(query.after, query.order);
        let empty = BTreeSet::new();
        let candidates: Box<dyn Iterator<Item = u64> + '_> = if let Some(subject) = query.subject {
            let set = tenant.by_subject.get(&subject).unwrap_or(&empty);
            positions(set.range(bounds).copied(), query.order)
        } else if let Some(actor) = &query.actor {
            let set = tenant.by_actor.get(actor).unwrap_or(&empty);
            positions(set.range(bounds).copied(), query.order)
        } else if let Some(kind) = query.kind {
            let set = tenant.by_kind.get(&kind).unwrap_or(&empty);
            positions(set.range(bounds).copied(), query.order)
        } else {
            positions(tenant.entries.range(bounds).map(|(p, _)| *p), query.order)
        };
        let mut matching = candidates
            .filter_map(|p| tenant.entries.get(&p))
            .filter(|entry| query.matches(entry));
        for entry in matching.by_ref().take(query.limit) {
            let mut entry = entry.clone();
            if query.resolve_usernames {
                entry.username = entry
                    .subject
                    .and_then(|s| tenant.usernames.get(&s).cloned());
            }
            page.entries.push(entry);
        }
        if matching.next().is_some() {
            page.next = page.entries.last().map(|e| AuditCursor(e.position));
        }
        Ok(page)
    }
}
