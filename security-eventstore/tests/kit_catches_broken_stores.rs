//! The conformance kit must fail a store that breaks the contract: each
//! deliberately broken store below must make its clause panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::FutureExt;
use security_core::chain::{ChainHash, ChainHead, ChainQuery, ChainRecord};
use security_core::{
    AppendRequest, AppendResult, EventStore, EventStream, ExpectedVersion, GlobalQuery,
    IdempotencyKey, Scope, Snapshot, StoreError, StoredEvent, StreamId, StreamQuery, TenantId,
    Until,
};
use security_eventstore::{MemoryEventStore, testkit};

/// How a store is broken.
#[derive(Debug, Clone, Copy)]
enum Flaw {
    /// Ignores the expected version.
    NoConcurrencyCheck,
    /// Forgets idempotency keys.
    NoIdempotency,
    /// Answers tenant-scoped reads with every tenant's events.
    LeaksTenants,
    /// Ignores `until` bounds.
    NoTemporalReads,
    /// Writes only the first half of a batch.
    HalfBatches,
    /// Drops every third event from global reads.
    SkipsEvents,
    /// Records an idempotency key only some time after the events it names
    /// are visible (not atomically with them).
    KeyRecordedLate,
    /// Returns its snapshot whatever the read's bound.
    SnapshotsIgnoreBounds,
    /// Lets an older snapshot replace a newer one.
    SnapshotsGoBack,
    /// Chains each event to nothing: every event starts a chain of its own.
    UnchainedEvents,
    /// Chains each tenant's events to another tenant's head.
    SharedChain,
    /// Takes events over the limits, writing a trimmed payload instead.
    NoInputLimits,
}

#[derive(Debug)]
struct Broken {
    inner: MemoryEventStore,
    flaw: Flaw,
    /// `KeyRecordedLate`: the keys, written after the events.
    late_keys: Arc<Mutex<HashMap<(TenantId, IdempotencyKey), AppendResult>>>,
    /// `SnapshotsGoBack`: the last snapshot saved, whatever its version.
    kept: Mutex<HashMap<(StreamId, u32), Snapshot>>,
}

impl Broken {
    fn late_key(&self, tenant: TenantId, key: &IdempotencyKey) -> Option<AppendResult> {
        self.late_keys
            .lock()
            .unwrap()
            .get(&(tenant, key.clone()))
            .cloned()
    }
}

#[async_trait]
impl EventStore for Broken {
    async fn append(&self, mut request: AppendRequest) -> Result<AppendResult, StoreError> {
        if let (Flaw::KeyRecordedLate, Some(key)) = (self.flaw, request.idempotency_key.take()) {
            let tenant = request.stream_id.tenant_id;
            if let Some(original) = self.late_key(tenant, &key) {
                return Ok(AppendResult {
                    deduplicated: true,
                    ..original
                });
            }
            let result = self.inner.append(request).await?;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            self.late_keys
                .lock()
                .unwrap()
                .insert((tenant, key), result.clone());
            return Ok(result);
        }
        if let Flaw::NoInputLimits = self.flaw
            && security_core::limits::check_append(&request).is_err()
        {
            for event in &mut request.events {
                event.payload = Arc::new(serde_json::json!({}));
                event.event_type = "Trimmed".into();
                event.metadata = Arc::default();
            }
            request.stream_id.aggregate_type = "trimmed".into();
        }
        match self.flaw {
            Flaw::NoConcurrencyCheck => request.expected = ExpectedVersion::Any,
            Flaw::NoIdempotency => request.idempotency_key = None,
            Flaw::HalfBatches if request.events.len() > 1 => {
                let half = request.events.len() / 2;
                request.events.truncate(half);
            }
            _ => {}
        }
        self.inner.append(request).await
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        mut query: StreamQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if matches!(self.flaw, Flaw::NoTemporalReads) {
            query.until = Until::End;
        }
        self.inner.read_stream(stream_id, query).await
    }

    async fn read_global(
        &self,
        scope: Scope,
        mut query: GlobalQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match self.flaw {
            Flaw::LeaksTenants => self.inner.read_global(Scope::All, query).await,
            Flaw::NoTemporalReads => {
                query.until = Until::End;
                self.inner.read_global(scope, query).await
            }
            Flaw::SkipsEvents => {
                let mut events = self.inner.read_global(scope, query).await?;
                events.retain(|e| e.global_position % 3 != 0);
                Ok(events)
            }
            _ => self.inner.read_global(scope, query).await,
        }
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(stream_id).await
    }

    async fn idempotent_result(
        &self,
        tenant: TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<AppendResult>, StoreError> {
        match self.flaw {
            Flaw::NoIdempotency => Ok(None),
            Flaw::KeyRecordedLate => Ok(self.late_key(tenant, key)),
            _ => self.inner.idempotent_result(tenant, key).await,
        }
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.head_position().await
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        if let Flaw::SnapshotsGoBack = self.flaw {
            // Whatever is kept is replaced.
            self.kept.lock().unwrap().insert(
                (snapshot.stream_id.clone(), snapshot.schema_version),
                snapshot.clone(),
            );
        }
        self.inner.save_snapshot(snapshot).await
    }

    async fn read_snapshot(
        &self,
        stream_id: &StreamId,
        schema_version: u32,
        until: Until,
    ) -> Result<Option<Snapshot>, StoreError> {
        match self.flaw {
            Flaw::SnapshotsIgnoreBounds => {
                self.inner
                    .read_snapshot(stream_id, schema_version, Until::End)
                    .await
            }
            Flaw::SnapshotsGoBack => Ok(self
                .kept
                .lock()
                .unwrap()
                .get(&(stream_id.clone(), schema_version))
                .filter(|s| s.is_inside(until))
                .cloned()),
            _ => {
                self.inner
                    .read_snapshot(stream_id, schema_version, until)
                    .await
            }
        }
    }

    fn subscribe(&self, scope: Scope, after: u64) -> EventStream {
        match self.flaw {
            Flaw::LeaksTenants => self.inner.subscribe(Scope::All, after),
            _ => self.inner.subscribe(scope, after),
        }
    }

    async fn read_chain(
        &self,
        tenant: TenantId,
        query: ChainQuery,
    ) -> Result<Vec<ChainRecord>, StoreError> {
        match self.flaw {
            Flaw::UnchainedEvents => {
                let mut records = self.inner.read_chain(tenant, query).await?;
                for record in &mut records {
                    record.prev_hash = ChainHash::GENESIS;
                    record.hash = record.computed_hash();
                }
                Ok(records)
            }
            Flaw::SharedChain => {
                // One chain over every tenant's events, in position order.
                let events = self
                    .inner
                    .read_global(Scope::All, GlobalQuery::after(0, usize::MAX))
                    .await?;
                let mut prev = ChainHash::GENESIS;
                let mut records = Vec::new();
                for event in &events {
                    let record = ChainRecord::of_event(event, prev).unwrap();
                    prev = record.hash;
                    if event.tenant_id() == tenant
                        && event.global_position > query.after
                        && event.global_position <= query.until
                        && records.len() < query.limit
                    {
                        records.push(record);
                    }
                }
                Ok(records)
            }
            _ => self.inner.read_chain(tenant, query).await,
        }
    }

    async fn chain_head(&self, tenant: TenantId) -> Result<Option<ChainHead>, StoreError> {
        match self.flaw {
            Flaw::UnchainedEvents | Flaw::SharedChain => Ok(self
                .read_chain(tenant, ChainQuery::after(0, usize::MAX))
                .await?
                .last()
                .map(ChainRecord::as_head)),
            _ => self.inner.chain_head(tenant).await,
        }
    }

    async fn chain_heads(&self) -> Result<Vec<(TenantId, ChainHead)>, StoreError> {
        self.inner.chain_heads().await
    }
}

fn broken(flaw: Flaw) -> Arc<dyn EventStore> {
    Arc::new(Broken {
        inner: MemoryEventStore::new(),
        flaw,
        late_keys: Arc::default(),
        kept: Mutex::default(),
    })
}

async fn must_fail<F: std::future::Future<Output = ()>>(what: &str, clause: F) {
    let outcome = AssertUnwindSafe(clause).catch_unwind().await;
    assert!(outcome.is_err(), "the kit passed a store that {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_clause_catches_its_flaw() {
    must_fail(
        "ignores expected versions",
        testkit::optimistic_concurrency(broken(Flaw::NoConcurrencyCheck)),
    )
    .await;
    must_fail(
        "lets two appenders win",
        testkit::concurrent_appenders(broken(Flaw::NoConcurrencyCheck)),
    )
    .await;
    must_fail(
        "forgets idempotency keys",
        testkit::idempotency(broken(Flaw::NoIdempotency)),
    )
    .await;
    must_fail(
        "leaks tenants",
        testkit::tenant_isolation(broken(Flaw::LeaksTenants)),
    )
    .await;
    must_fail(
        "ignores until bounds",
        testkit::temporal_reads(broken(Flaw::NoTemporalReads)),
    )
    .await;
    must_fail(
        "writes half a batch",
        testkit::atomic_batches(broken(Flaw::HalfBatches)),
    )
    .await;
    must_fail(
        "records idempotency keys after their events",
        testkit::idempotency_under_concurrency(broken(Flaw::KeyRecordedLate)),
    )
    .await;
    must_fail(
        "records idempotency keys after their events (command bus)",
        testkit::idempotent_commands(broken(Flaw::KeyRecordedLate)),
    )
    .await;
    must_fail(
        "returns snapshots outside a read's bound",
        testkit::snapshots(broken(Flaw::SnapshotsIgnoreBounds)),
    )
    .await;
    must_fail(
        "lets an older snapshot replace a newer one",
        testkit::snapshots(broken(Flaw::SnapshotsGoBack)),
    )
    .await;
    must_fail(
        "takes events over the limits",
        testkit::input_limits(broken(Flaw::NoInputLimits)),
    )
    .await;
    must_fail(
        "skips events",
        testkit::ordered_global_stream(broken(Flaw::SkipsEvents)),
    )
    .await;
    must_fail(
        "does not chain its events",
        testkit::hash_chain(broken(Flaw::UnchainedEvents)),
    )
    .await;
    must_fail(
        "chains every tenant together",
        testkit::hash_chain(broken(Flaw::SharedChain)),
    )
    .await;
}
