//! The audit trail of decisions: every denied decision, and a sample of the
//! granted ones, as events in the principal's tenant.
//!
//! Checks are synchronous and never wait for I/O, so they hand records to
//! an [`AuditSink`]. The [`AuditLog`] sink queues them (bounded, never
//! blocking) for an [`AuditWriter`] that appends them to the event store,
//! one stream per principal: `(tenant, "authz_audit", user_id)`.
//!
//! Events hold no secret: the permission or subject, the resource's tenant,
//! id and owner, the rule or the reason. Principal and resource attributes
//! are never recorded (they may hold personal data).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures::future::{Either, select};
use security_core::{
    Actor, AppendRequest, DomainEvent, EventId, EventMetadata, EventStore, ExpectedVersion,
    IdGenerator, NewEvent, Permission, StreamId, TenantId, UserId, impl_domain_event,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::decision::{DenyReason, Resource, Rule};
use crate::error::AuthzError;

/// The aggregate type of audit streams.
pub const AUDIT_AGGREGATE_TYPE: &str = "authz_audit";

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditedAction {
    /// A `resource:action` permission check.
    Permission {
        /// The permission.
        permission: Permission,
    },
    /// A publish to a subject.
    Publish {
        /// The subject.
        subject: String,
    },
    /// A subscription to a subject.
    Subscribe {
        /// The subject.
        subject: String,
        /// The queue group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<String>,
    },
}

/// The resource a permission check was about (its attributes are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditedResource {
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<UserId>,
}

impl From<&Resource> for AuditedResource {
    fn from(r: &Resource) -> Self {
        Self {
            tenant_id: r.tenant_id,
            id: r.id.clone(),
            owner: r.owner,
        }
    }
}

/// The longest request path recorded, in bytes (a longer one is cut at a
/// character boundary).
pub const MAX_AUDITED_PATH: usize = 1024;

/// The longest request method recorded, in bytes.
const MAX_AUDITED_METHOD: usize = 32;

/// The HTTP request a decision was made for: its method, its path without
/// the query string (a query string may carry secrets), and the client's
/// address when the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditedRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<std::net::IpAddr>,
}

impl AuditedRequest {
    /// A request record; the method and the path are cut to their
    /// longest recorded sizes, and a query string left in `path` is
    /// dropped.
    pub fn new(method: &str, path: &str, client: Option<std::net::IpAddr>) -> Self {
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        Self {
            method: cut(method, MAX_AUDITED_METHOD).to_owned(),
            path: cut(path, MAX_AUDITED_PATH).to_owned(),
            client,
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Events of the decision audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names, reason = "the domain names these events")]
pub enum AuthzAuditEvent {
    /// A check was denied.
    AccessDenied {
        /// Who asked.
        user_id: UserId,
        /// What.
        action: AuditedAction,
        /// On what (permission checks only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<AuditedResource>,
        /// Why it was denied.
        reason: DenyReason,
        /// The HTTP request, for a check made by the tower layer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<AuditedRequest>,
        /// The global position of the read model that decided.
        read_model_position: u64,
        /// When.
        decided_at: DateTime<Utc>,
    },
    /// A check was allowed (recorded for a sample only).
    AccessGranted {
        /// Who asked.
        user_id: UserId,
        /// What.
        action: AuditedAction,
        /// On what (permission checks only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<AuditedResource>,
        /// The rule that granted it.
        rule: Rule,
        /// The global position of the read model that decided.
        read_model_position: u64,
        /// One grant in this many is recorded.
        sampled_one_in: u64,
        /// When.
        decided_at: DateTime<Utc>,
    },
}

impl_domain_event!(
    AuthzAuditEvent,
    version = 1,
    types = [AccessDenied, AccessGranted]
);

impl AuthzAuditEvent {
    /// The principal the event is about.
    pub fn user_id(&self) -> UserId {
        match self {
            Self::AccessDenied { user_id, .. } | Self::AccessGranted { user_id, .. } => *user_id,
        }
    }

    /// When the decision was made.
    pub fn decided_at(&self) -> DateTime<Utc> {
        match self {
            Self::AccessDenied { decided_at, .. } | Self::AccessGranted { decided_at, .. } => {
                *decided_at
            }
        }
    }
}

/// One decision to record, in the principal's tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The principal's tenant (the stream's tenant).
    pub tenant_id: TenantId,
    /// The event.
    pub event: AuthzAuditEvent,
}

impl AuditRecord {
    /// The stream the record goes to.
    pub fn stream_id(&self) -> StreamId {
        StreamId::new(
            self.tenant_id,
            AUDIT_AGGREGATE_TYPE,
            self.event.user_id().as_uuid(),
        )
    }
}

/// Takes decision records. Called on the check path: must not block.
pub trait AuditSink: fmt::Debug + Send + Sync {
    /// Takes one record.
    fn record(&self, record: AuditRecord);
}

/// Which granted decisions are recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GrantSampling {
    /// None (denied decisions are always recorded).
    #[default]
    None,
    /// One in every `n` grants (counted per service; deterministic, so no
    /// randomness is needed). `OneIn(1)` records every grant.
    OneIn(u64),
}

/// A bounded queue of audit records, the sink side of an [`AuditWriter`].
///
/// When the queue is full, records are dropped and counted
/// ([`dropped`](Self::dropped)), and an error is logged: a check never waits
/// for the audit trail. Size the queue for bursts and watch the count.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<AuditRecord>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    /// A queue of `capacity` records and the writer that drains it into
    /// `store` (event ids from `ids`).
    pub fn new(
        capacity: usize,
        store: Arc<dyn EventStore>,
        ids: Arc<dyn IdGenerator>,
    ) -> (Self, AuditWriter) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        (
            Self {
                tx,
                dropped: Arc::clone(&dropped),
            },
            AuditWriter {
                rx,
                store,
                ids,
                dropped,
            },
        )
    }

    /// How many records were dropped because the queue was full or the
    /// writer was gone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl AuditSink for AuditLog {
    fn record(&self, record: AuditRecord) {
        if self.tx.try_send(record).is_err() {
            let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(
                dropped_total = total,
                "authorization audit queue full or closed: decision record dropped"
            );
        }
    }
}

/// Appends queued audit records to the event store.
#[derive(Debug)]
pub struct AuditWriter {
    rx: mpsc::Receiver<AuditRecord>,
    store: Arc<dyn EventStore>,
    ids: Arc<dyn IdGenerator>,
    dropped: Arc<AtomicU64>,
}

/// The most records appended per call to the store.
const WRITE_BATCH: usize = 256;

impl AuditWriter {
    /// Appends every record queued so far; returns how many.
    pub async fn write_pending(&mut self) -> Result<usize, AuthzError> {
        let mut written = 0;
        loop {
            let mut batch = Vec::new();
            while batch.len() < WRITE_BATCH {
                match self.rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return Ok(written);
            }
            written += batch.len();
            self.append(batch).await?;
        }
    }

    /// Appends records as they come until `shutdown` completes (then writes
    /// what is left) or every sink is dropped.
    pub async fn run_until<F>(mut self, shutdown: F) -> Result<(), AuthzError>
    where
        F: Future<Output = ()> + Send,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let mut batch = Vec::new();
            let received = {
                // `recv_many` is cancel safe: nothing is lost if shutdown wins.
                let receive = std::pin::pin!(self.rx.recv_many(&mut batch, WRITE_BATCH));
                match select(shutdown.as_mut(), receive).await {
                    Either::Left(((), _)) => None,
                    Either::Right((received, _)) => Some(received),
                }
            };
            match received {
                None => {
                    self.write_pending().await?;
                    return Ok(());
                }
                Some(0) => return Ok(()),
                Some(_) => self.append(batch).await?,
            }
        }
    }

    /// How many records the sinks dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    async fn append(&self, batch: Vec<AuditRecord>) -> Result<(), AuthzError> {
        // One append per stream, in the order the records came.
        let mut streams: BTreeMap<StreamId, Vec<NewEvent>> = BTreeMap::new();
        for record in batch {
            let stream_id = record.stream_id();
            let metadata = EventMetadata {
                actor: Some(Actor::user(record.event.user_id())),
                ..EventMetadata::default()
            };
            let event = NewEvent {
                event_id: EventId::from_uuid(self.ids.new_id()),
                event_type: Arc::from(record.event.event_type()),
                schema_version: record.event.schema_version(),
                occurred_at: record.event.decided_at(),
                payload: Arc::new(record.event.encode()?),
                metadata: Arc::new(metadata),
            };
            streams.entry(stream_id).or_default().push(event);
        }
        for (stream_id, events) in streams {
            let request = AppendRequest {
                stream_id,
                expected: ExpectedVersion::Any,
                events,
                idempotency_key: None,
            };
            self.store.append(request).await?;
        }
        Ok(())
    }
}
