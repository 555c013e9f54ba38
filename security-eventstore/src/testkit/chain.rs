//! Clause 9 of the store contract: the per-tenant hash chain.

use std::sync::Arc;

use security_core::chain::{
    ChainHash, ChainQuery, ChainRange, ChainRecord, stored_json, verify_chain,
};
use security_core::{EventStore, ExpectedVersion, GlobalQuery, Scope, StreamId, TenantId};
use serde_json::json;

use super::{append, event, stream, tenant};

async fn whole_chain(store: &dyn EventStore, tenant: TenantId) -> Vec<ChainRecord> {
    store
        .read_chain(tenant, ChainQuery::after(0, usize::MAX))
        .await
        .unwrap()
}

/// Clause 9, the hash chain: every event is chained to its tenant's
/// previous one, over its fields exactly as stored (sealed values as
/// stored); concurrent appends of one tenant never fork the chain; each
/// tenant's recorded head is its last event; the chain verifies as a whole
/// and in ranges; other tenants' events are not in it.
pub async fn hash_chain(store: Arc<dyn EventStore>) {
    let clause = "hash chain";
    let (a, b) = (tenant(), tenant());
    assert_eq!(
        store.chain_head(a).await.unwrap(),
        None,
        "{clause}: a tenant without events has no head"
    );
    // Interleaved appends of two tenants, one with a sealed field.
    let a1 = stream(a, "conformance");
    let b1 = stream(b, "conformance");
    let sealed = json!({"secret": {"$sealed": {"kid": "k", "ct": "gAAAAA"}}, "n": 1});
    store
        .append(append(
            &a1,
            ExpectedVersion::NoStream,
            vec![event("Sealed", sealed)],
        ))
        .await
        .unwrap();
    store
        .append(append(&b1, ExpectedVersion::NoStream, super::events(3)))
        .await
        .unwrap();
    store
        .append(append(&a1, ExpectedVersion::Exact(1), super::events(4)))
        .await
        .unwrap();
    // Concurrent appenders of tenant `a`, on streams of their own (few
    // enough that a store per clause stays within a server's connections).
    const TASKS: usize = 4;
    const APPENDS: usize = 20;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let s: StreamId = stream(a, "conformance");
                barrier.wait().await;
                for i in 0..APPENDS {
                    let batch = super::events(1 + i % 3);
                    store
                        .append(append(&s, ExpectedVersion::Any, batch))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("appender");
    }
    store
        .append(append(&b1, ExpectedVersion::Exact(3), super::events(2)))
        .await
        .unwrap();

    for t in [a, b] {
        let events = store
            .read_global(Scope::Tenant(t), GlobalQuery::after(0, usize::MAX))
            .await
            .unwrap();
        let chain = whole_chain(&*store, t).await;
        assert_eq!(
            chain.len(),
            events.len(),
            "{clause}: the chain holds every event of the tenant and no other"
        );
        let mut prev = ChainHash::GENESIS;
        for (record, event) in chain.iter().zip(&events) {
            let (_, metadata) = stored_json(event).unwrap();
            assert!(
                record.global_position == event.global_position
                    && record.event_id == event.event_id
                    && record.tenant_id == t
                    && record.aggregate_type == event.stream_id.aggregate_type
                    && record.aggregate_id == event.stream_id.aggregate_id
                    && record.version == event.version
                    && record.event_type == event.event_type
                    && record.schema_version == event.schema_version
                    && record.occurred_at == event.occurred_at,
                "{clause}: a chain record differs from its event at {}",
                event.global_position
            );
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&record.payload).unwrap(),
                *event.payload,
                "{clause}: the hashed payload is the stored one"
            );
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&record.metadata).unwrap(),
                serde_json::from_str::<serde_json::Value>(&metadata).unwrap(),
                "{clause}: the hashed metadata is the stored one"
            );
            assert_eq!(
                record.prev_hash, prev,
                "{clause}: event {} is not chained to its tenant's previous event",
                record.global_position
            );
            assert!(
                record.is_consistent(),
                "{clause}: event {}'s hash is not the one its fields give",
                record.global_position
            );
            prev = record.hash;
        }
        let head = store.chain_head(t).await.unwrap();
        assert_eq!(
            head,
            chain.last().map(ChainRecord::as_head),
            "{clause}: the recorded head is the tenant's last event"
        );
        let report = verify_chain(&*store, t, ChainRange::ALL).await.unwrap();
        assert!(
            report.is_intact() && report.checked == events.len() as u64,
            "{clause}: the chain verifies: {report:?}"
        );
        let middle = chain[chain.len() / 2].global_position;
        let range = ChainRange {
            after: middle,
            until: chain[chain.len() - 2].global_position,
        };
        let report = verify_chain(&*store, t, range).await.unwrap();
        assert!(
            report.is_intact() && report.checked == (chain.len() - chain.len() / 2 - 2) as u64,
            "{clause}: a range of the chain verifies: {report:?}"
        );
        let again = whole_chain(&*store, t).await;
        assert_eq!(
            again, chain,
            "{clause}: reading the chain twice gives the same"
        );
    }
    let sealed_record = &whole_chain(&*store, a).await[0];
    assert!(
        sealed_record.payload.contains("$sealed") && sealed_record.payload.contains("gAAAAA"),
        "{clause}: sealed fields are hashed as stored"
    );
    let heads = store.chain_heads().await.unwrap();
    for t in [a, b] {
        assert_eq!(
            heads
                .iter()
                .find(|(tenant, _)| *tenant == t)
                .map(|(_, h)| *h),
            store.chain_head(t).await.unwrap(),
            "{clause}: every tenant's head is listed"
        );
    }
}
