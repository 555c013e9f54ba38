//! The memory store's hash chain: each tenant's hashes, computed in commit
//! order the first time the chain is read.
//!
//! Nobody can change the memory store's events behind its back (they live
//! in this process, immutable), so a link computed when the chain is first
//! read is the link an append would have computed: same predecessor, same
//! fields. Computing it then keeps appends as cheap as without a chain;
//! the cost is paid once, by the first read (`BENCHMARKS.md` gives both).

use std::collections::HashMap;

use security_core::chain::{ChainHash, ChainHead, ChainQuery, ChainRecord};
use security_core::{StoreError, StoredEvent, TenantId};

/// Each tenant's event hashes, in chain order, as far as computed.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    tenants: HashMap<TenantId, Vec<ChainHash>>,
}

fn encode_failed(e: serde_json::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl Ledger {
    /// Brings the tenant's hashes up to its last event (`indexes` are the
    /// tenant's events in `events`, in order) and returns them.
    pub(crate) fn extend(
        &mut self,
        tenant: TenantId,
        indexes: &[usize],
        events: &[StoredEvent],
    ) -> Result<&[ChainHash], StoreError> {
        let hashes = self.tenants.entry(tenant).or_default();
        for &index in indexes.iter().skip(hashes.len()) {
            let prev = hashes.last().copied().unwrap_or(ChainHash::GENESIS);
            let event = events.get(index).ok_or(StoreError::InvalidRequest(
                "the tenant index is out of range",
            ))?;
            let record = ChainRecord::of_event(event, prev).map_err(encode_failed)?;
            hashes.push(record.hash);
        }
        Ok(hashes)
    }

    /// The tenant's records in `query`'s range.
    pub(crate) fn read(
        &mut self,
        tenant: TenantId,
        indexes: &[usize],
        events: &[StoredEvent],
        query: ChainQuery,
    ) -> Result<Vec<ChainRecord>, StoreError> {
        let hashes = self.extend(tenant, indexes, events)?;
        // Indexes are positions - 1, sorted.
        let after = usize::try_from(query.after).unwrap_or(usize::MAX);
        let start = indexes.partition_point(|&i| i < after);
        let mut records = Vec::new();
        for (offset, &index) in indexes.iter().enumerate().skip(start) {
            if records.len() >= query.limit {
                break;
            }
            let Some(event) = events.get(index) else {
                break;
            };
            if event.global_position > query.until {
                break;
            }
            let prev = offset
                .checked_sub(1)
                .and_then(|i| hashes.get(i))
                .copied()
                .unwrap_or(ChainHash::GENESIS);
            let record = ChainRecord::of_event(event, prev).map_err(encode_failed)?;
            debug_assert_eq!(Some(&record.hash), hashes.get(offset));
            records.push(record);
        }
        Ok(records)
    }

    /// The tenant's head.
    pub(crate) fn head(
        &mut self,
        tenant: TenantId,
        indexes: &[usize],
        events: &[StoredEvent],
    ) -> Result<Option<ChainHead>, StoreError> {
        let hashes = self.extend(tenant, indexes, events)?;
        Ok(match (indexes.last(), hashes.last()) {
            (Some(&index), Some(&hash)) => Some(ChainHead {
                position: index as u64 + 1,
                hash,
            }),
            _ => None,
        })
    }
}
