//! The projection of an audit index kept outside the process (PostgreSQL):
//! it classifies events into a batch; the index's checkpoint store writes
//! the batch and the checkpoint in one transaction.

use std::sync::{Arc, Mutex, PoisonError};

use super::classify::{classify, username_of};
use super::query::AuditEntry;
use crate::event::StoredEvent;
use crate::ids::{TenantId, UserId};
use crate::projection::{Projection, ProjectionError};

/// What an [`AuditBuffer`] gathered since the last write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditBatch {
    /// The projection was reset: the index must forget every entry before
    /// it writes these.
    pub reset: bool,
    /// New entries, in position order.
    pub entries: Vec<AuditEntry>,
    /// Usernames learnt from `UserCreated` events.
    pub usernames: Vec<(TenantId, UserId, String)>,
}

impl AuditBatch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        !self.reset && self.entries.is_empty() && self.usernames.is_empty()
    }
}

/// A projection that classifies events into a shared [`AuditBatch`];
/// clones share the batch.
///
/// The runner calls the checkpoint store's `save` after each batch: an
/// index's checkpoint store [`take`](Self::take)s the batch there and
/// writes it with the checkpoint, and [`restore`](Self::restore)s it if
/// the write fails, so that the next save writes it again.
#[derive(Debug, Clone)]
pub struct AuditBuffer {
    name: Arc<str>,
    batch: Arc<Mutex<AuditBatch>>,
}

impl AuditBuffer {
    /// A buffer for the projection named `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            batch: Arc::default(),
        }
    }

    /// Takes what was gathered, leaving the buffer empty.
    pub fn take(&self) -> AuditBatch {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back a batch whose write failed, before anything gathered
    /// since.
    pub fn restore(&self, mut batch: AuditBatch) {
        let mut current = self.lock();
        if current.reset {
            // A reset since the failed write: what it held is forgotten.
            return;
        }
        batch.entries.append(&mut current.entries);
        batch.usernames.append(&mut current.usernames);
        *current = batch;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuditBatch> {
        self.batch.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Projection for AuditBuffer {
    fn name(&self) -> &str {
        &self.name
    }

    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        let entry = classify(event);
        let username = username_of(event);
        if entry.is_none() && username.is_none() {
            return Ok(());
        }
        let mut batch = self.lock();
        if let Some((user, name)) = username {
            batch.usernames.push((event.tenant_id(), user, name));
        }
        if let Some(entry) = entry {
            batch.entries.push(entry);
        }
        Ok(())
    }

    fn reset(&mut self) {
        *self.lock() = AuditBatch {
            reset: true,
            ..AuditBatch::default()
        };
    }
}
