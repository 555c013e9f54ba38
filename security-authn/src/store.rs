//! How the service reads and writes the streams that every login touches.
//!
//! A user's stream grows with every login (`UserAuthenticated`), and an
//! account's with every user (`UserAdded`). Replaying them whole on every
//! login would make a login cost grow with the user's history and the
//! tenant's size. So the service keeps the aggregates it has rebuilt, and
//! each load only reads the events appended since (from any process); user
//! commands are then appended with the version that catch-up reached, so
//! optimistic concurrency still holds exactly as in the
//! [`Repository`](security_core::Repository), which remains the path for
//! everything else. What is appended is published through the repository's
//! publisher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use security_core::{
    Aggregate, AppendRequest, AppendResult, CommandContext, DomainEvent, EventStore,
    ExpectedVersion, IdGenerator, Loaded, NewEvent, Publisher, Repository, StoreError, StoredEvent,
    StreamId, StreamQuery, TenantId, Until,
};

use crate::error::AuthnError;

/// Appends events and publishes what it appended.
#[derive(Debug, Clone)]
pub(crate) struct EventWriter {
    pub(crate) store: Arc<dyn EventStore>,
    ids: Arc<dyn IdGenerator>,
    publisher: Option<Arc<dyn Publisher>>,
    pub(crate) max_retries: u32,
}

impl EventWriter {
    pub(crate) fn new(repo: &Repository) -> Self {
        Self {
            store: Arc::clone(repo.store()),
            ids: Arc::clone(repo.ids()),
            publisher: repo.publisher().cloned(),
            max_retries: repo.max_retries(),
        }
    }

    pub(crate) fn encode<E: DomainEvent>(
        &self,
        events: &[E],
        ctx: &CommandContext,
    ) -> Result<Vec<NewEvent>, AuthnError> {
        Ok(security_core::new_events(events, ctx, &*self.ids)?)
    }

    /// Appends; a version conflict comes back as `Ok(None)`.
    pub(crate) async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        ctx: &CommandContext,
    ) -> Result<Option<AppendResult>, AuthnError> {
        let request = AppendRequest {
            stream_id: stream_id.clone(),
            expected,
            events,
            idempotency_key: ctx.idempotency_key.clone(),
        };
        match self.store.append(request).await {
            Ok(result) => {
                self.publish(stream_id, &result).await?;
                Ok(Some(result))
            }
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn publish(&self, stream_id: &StreamId, result: &AppendResult) -> Result<(), AuthnError> {
        let Some(publisher) = &self.publisher else {
            return Ok(());
        };
        let query = StreamQuery {
            from_version: result.first_version,
            until: Until::Version(result.last_version),
            limit: usize::MAX,
        };
        let stored = self.store.read_stream(stream_id, query).await?;
        let published: Vec<_> = stored.iter().map(StoredEvent::to_published).collect();
        if let Err(error) = publisher.publish(&published).await {
            // Stored is what counts; publishing again is safe (dedupe on id).
            tracing::warn!(%error, "events stored but not published");
        }
        Ok(())
    }
}

/// The most aggregates kept; past it, half are dropped.
const CACHE_CAPACITY: usize = 10_000;

/// Aggregates rebuilt before, caught up on each load.
pub(crate) struct StreamCache<A> {
    map: Mutex<HashMap<(TenantId, Uuid), Loaded<A>>>,
}

impl<A> Default for StreamCache<A> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<A> std::fmt::Debug for StreamCache<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCache").finish_non_exhaustive()
    }
}

impl<A: Aggregate> StreamCache<A> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TenantId, Uuid), Loaded<A>>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn put(&self, tenant: TenantId, id: Uuid, loaded: Loaded<A>) {
        let mut map = self.lock();
        if map.len() >= CACHE_CAPACITY && !map.contains_key(&(tenant, id)) {
            let drop: Vec<_> = map.keys().step_by(2).copied().collect();
            for key in drop {
                map.remove(&key);
            }
        }
        match map.get(&(tenant, id)) {
            // Never go back to an older version (a slower concurrent load).
            Some(current) if current.version > loaded.version => {}
            _ => {
                map.insert((tenant, id), loaded);
            }
        }
    }

    /// The aggregate as of the newest event in the store.
    pub(crate) async fn load(
        &self,
        store: &dyn EventStore,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Loaded<A>, AuthnError> {
        let cached = self.lock().get(&(tenant, id)).cloned();
        let Loaded {
            mut state,
            mut version,
        } = cached.unwrap_or_else(|| Loaded {
            state: A::default(),
            version: 0,
        });
        let stream_id = StreamId::new(tenant, A::TYPE, id);
        let query = StreamQuery {
            from_version: version + 1,
            until: Until::End,
            limit: usize::MAX,
        };
        let events = store.read_stream(&stream_id, query).await?;
        if events.is_empty() {
            return Ok(Loaded { state, version });
        }
        for stored in &events {
            if stored.version != version + 1 {
                return Err(AuthnError::Store(Box::new(StoreError::Conflict {
                    stream_id: stream_id.clone(),
                    expected: ExpectedVersion::Exact(version),
                    actual: stored.version,
                })));
            }
            let event: A::Event = stored
                .decode()
                .map_err(|e| AuthnError::Store(Box::new(e)))?;
            state.apply(&event);
            version = stored.version;
        }
        let loaded = Loaded { state, version };
        self.put(tenant, id, loaded.clone());
        Ok(loaded)
    }
}
