//! The [`Aggregate`] trait and the [`CommandContext`] every command runs in.

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::{Actor, DomainEvent, EventMetadata, IdempotencyKey};
use crate::ids::TenantId;
use crate::snapshot::SnapshotCodec;

/// An event-sourced aggregate: pure and synchronous.
///
/// `handle` decides, from the current state and a command, which events
/// happen (or refuses with an error); `apply` folds one event into the
/// state. `handle` never changes state and `apply` never fails: events are
/// facts. Rebuilding an aggregate is applying its stream in order to
/// `Self::default()`.
pub trait Aggregate: Default + Clone + Debug + Send + Sync + 'static {
    /// The aggregate type, part of every stream id (e.g. `"user"`).
    const TYPE: &'static str;
    /// The commands this aggregate handles.
    type Command: Debug + Send + Sync;
    /// The events this aggregate emits and applies.
    type Event: DomainEvent;
    /// Why a command was refused.
    type Error: std::error::Error + Send + Sync + 'static;

    /// How the state is kept in [`Snapshot`](crate::Snapshot)s, for an
    /// aggregate whose stream grows long (`None`: it is always replayed).
    /// Loading from a snapshot must give exactly what a full replay gives,
    /// so the state must encode losslessly; see
    /// [`SnapshotCodec::schema_version`] for when to bump the version.
    const SNAPSHOT: Option<SnapshotCodec<Self>> = None;

    /// Decides the events that a command causes, or refuses it.
    fn handle(
        &self,
        command: &Self::Command,
        ctx: &CommandContext,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state.
    fn apply(&mut self, event: &Self::Event);
}

/// Everything a command needs from the outside world: the tenant, the
/// time, who is asking, and the ids that tie events together.
///
/// The core never reads a clock: `now` is the injected clock's reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// The tenant the command acts in.
    pub tenant_id: TenantId,
    /// The current time, from the injected [`Clock`](crate::Clock).
    pub now: DateTime<Utc>,
    /// Who is asking.
    pub actor: Option<Actor>,
    /// Groups every event caused by one request.
    pub correlation_id: Option<Uuid>,
    /// The event or command that caused this one.
    pub causation_id: Option<Uuid>,
    /// Makes the command happen at most once in the tenant.
    pub idempotency_key: Option<IdempotencyKey>,
    /// A distributed-tracing id.
    pub trace_id: Option<Arc<str>>,
}

impl CommandContext {
    /// A context for `tenant_id` at time `now`.
    pub fn new(tenant_id: TenantId, now: DateTime<Utc>) -> Self {
        Self {
            tenant_id,
            now,
            actor: None,
            correlation_id: None,
            causation_id: None,
            idempotency_key: None,
            trace_id: None,
        }
    }

    /// Sets who is asking.
    pub fn with_actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Sets the trace id.
    pub fn with_trace_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.trace_id = Some(id.into());
        self
    }

    /// The metadata every event of this command carries.
    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            actor: self.actor.clone(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            idempotency_key: self.idempotency_key.clone(),
            trace_id: self.trace_id.clone(),
        }
    }
}
