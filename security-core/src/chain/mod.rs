//! The tamper-evident hash chain of each tenant's events.
//!
//! Every stored event carries the hash of its tenant's previous event and
//! its own hash: `SHA-256(prev_hash ‖ u64be(global_position) ‖
//! SHA-256(canonical encoding of the envelope))`. The encoding covers the
//! event id, tenant, stream, version, type, schema version, time, and the
//! payload and metadata exactly as stored (sealed fields as ciphertext, so
//! crypto-shredding a subject keeps its chain verifiable). Chains are per
//! tenant, so one tenant's export verifies on its own. `docs/AUDIT.md`
//! gives the byte layout for independent verifiers.
//!
//! Stores keep the chain ([`EventStore::read_chain`],
//! [`EventStore::chain_head`]); [`verify_chain`]
//! walks it and names the first break ([`ChainBreak`]). Anchors
//! ([`Anchor`]) are the operator's signatures over chain heads, recorded by
//! the [`AnchorLog`] aggregate, so that a history rewritten as a whole
//! (hashes recomputed) is still found out.

mod anchor;
mod encoding;
mod verify;

pub use anchor::{
    ANCHOR_TAG, Anchor, AnchorCommand, AnchorEvent, AnchorLog, AnchorStatement, MAX_SIGNATURE_LEN,
};
pub use encoding::{
    CONTENT_TAG, ChainContent, ChainHash, ChainHead, ChainQuery, ChainRecord, link, stored_json,
};
pub use verify::{BreakKind, ChainBreak, ChainReport, ChainVerifier};

use crate::ids::TenantId;
use crate::store::{EventStore, StoreError};

/// Records read per step by [`verify_chain`].
pub const VERIFY_PAGE: usize = 2_000;

/// Which part of a tenant's chain [`verify_chain`] walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainRange {
    /// Start after this global position (0: from the tenant's first event,
    /// whose predecessor must be [`ChainHash::GENESIS`]; otherwise the
    /// first record's predecessor is taken as it is).
    pub after: u64,
    /// Stop at this global position (`u64::MAX`: at the recorded head,
    /// which is then checked too).
    pub until: u64,
}

impl ChainRange {
    /// The whole chain, checked against the recorded head.
    pub const ALL: Self = Self {
        after: 0,
        until: u64::MAX,
    };
}

/// Walks a tenant's chain (or a range of it) in the store and reports the
/// first break.
///
/// The walk reads the recorded head first and stops at it, so events
/// appended meanwhile are not mistaken for damage. When the range reaches
/// the head, the chain must end exactly there, and the first event after
/// it (if one was committed meanwhile) must be chained to it and recorded
/// by the store: an event written around the store is found either way.
pub async fn verify_chain(
    store: &dyn EventStore,
    tenant: TenantId,
    range: ChainRange,
) -> Result<ChainReport, StoreError> {
    let head = store.chain_head(tenant).await?;
    let to_head = range.until == u64::MAX;
    let until = match head {
        Some(head) if to_head => head.position,
        _ => range.until,
    };
    let mut verifier = if range.after == 0 {
        ChainVerifier::from_genesis()
    } else {
        ChainVerifier::resume(None)
    };
    if to_head {
        verifier = verifier.expecting_head(head);
    }
    let mut after = range.after;
    loop {
        let page = store
            .read_chain(
                tenant,
                ChainQuery {
                    after,
                    until,
                    limit: VERIFY_PAGE,
                },
            )
            .await?;
        for record in &page {
            verifier.push(record, record.global_position);
        }
        match page.last() {
            Some(last) if page.len() == VERIFY_PAGE && verifier.first_break().is_none() => {
                after = last.global_position;
            }
            _ => break,
        }
    }
    let mut report = verifier.finish();
    if to_head
        && head.is_none()
        && let Some(last) = report.last
    {
        // Events without a recorded head: the head was removed.
        report.first_break = Some(ChainBreak {
            position: last.position,
            locator: 0,
            kind: BreakKind::HeadMismatch,
        });
    }
    if to_head && report.is_intact() {
        let beyond = head.map_or(0, |h| h.position);
        if let Some(next) = store
            .read_chain(tenant, ChainQuery::after(beyond, 1))
            .await?
            .first()
        {
            let now = store.chain_head(tenant).await?;
            let kind = if now.is_none_or(|h| h.position < next.global_position)
                || next.prev_hash != head.map_or(ChainHash::GENESIS, |h| h.hash)
            {
                Some(BreakKind::Inserted)
            } else if !next.is_consistent() {
                Some(BreakKind::Altered)
            } else {
                None
            };
            report.first_break = kind.map(|kind| ChainBreak {
                position: next.global_position,
                locator: next.global_position,
                kind,
            });
        }
    }
    Ok(report)
}
