//! The PostgreSQL store's hash chain: content digests for an append, and
//! reads of the chain and of the recorded heads.
//!
//! The links themselves are computed in the append statement, by
//! `security_chain_append` (migration `0040_hash_chain.sql`), once the log
//! head's lock is held.

use std::sync::Arc;

use security_core::chain::{ChainContent, ChainHash, ChainHead, ChainQuery, ChainRecord};
use security_core::{AppendRequest, EventId, Scope, StoreError, TenantId};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::errors::{Corrupt, db};
use super::store::{PostgresEventStore, from_i64, to_i64};

const READ_CHAIN: &str = "SELECT global_position, event_id, tenant_id, aggregate_type, \
     aggregate_id, version, event_type, schema_version, occurred_at, payload::text, \
     metadata::text, prev_hash, hash FROM security_events \
     WHERE tenant_id = $1 AND global_position > $2 AND global_position <= $3 \
     ORDER BY global_position LIMIT $4";

const HEAD: &str = "SELECT position, hash FROM security_chain_heads WHERE tenant_id = $1";

const HEADS: &str = "SELECT tenant_id, position, hash FROM security_chain_heads ORDER BY tenant_id";

/// The content digest of each event of an append whose first event gets
/// `first_version`, from the JSON texts the append stores.
pub(crate) fn content_digests(
    request: &AppendRequest,
    first_version: u64,
    payloads: &[String],
    metadata: &[String],
) -> Vec<Vec<u8>> {
    let stream = &request.stream_id;
    request
        .events
        .iter()
        .zip(payloads.iter().zip(metadata))
        .zip(first_version..)
        .map(|((event, (payload, metadata)), version)| {
            ChainContent {
                event_id: event.event_id.as_uuid(),
                tenant_id: stream.tenant_id.as_uuid(),
                aggregate_type: &stream.aggregate_type,
                aggregate_id: stream.aggregate_id,
                version,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                occurred_at: event.occurred_at,
                payload,
                metadata,
            }
            .digest()
            .to_vec()
        })
        .collect()
}

/// A stored hash. A value of the wrong length (written around the store)
/// becomes one that no event has, so it fails verification where it is.
fn hash_of(bytes: &[u8]) -> ChainHash {
    ChainHash::from_slice(bytes).unwrap_or(ChainHash::from_bytes([0xff; 32]))
}

fn decode_record(row: &PgRow) -> Result<ChainRecord, StoreError> {
    let schema_version = u32::try_from(row.try_get::<i64, _>(7).map_err(db)?)
        .map_err(|_| StoreError::Backend(Box::new(Corrupt("a schema version out of range"))))?;
    Ok(ChainRecord {
        global_position: from_i64(row.try_get(0).map_err(db)?)?,
        event_id: EventId::from_uuid(row.try_get(1).map_err(db)?),
        tenant_id: TenantId::from_uuid(row.try_get(2).map_err(db)?),
        aggregate_type: Arc::from(row.try_get::<String, _>(3).map_err(db)?),
        aggregate_id: row.try_get::<Uuid, _>(4).map_err(db)?,
        version: from_i64(row.try_get(5).map_err(db)?)?,
        event_type: Arc::from(row.try_get::<String, _>(6).map_err(db)?),
        schema_version,
        occurred_at: row.try_get(8).map_err(db)?,
        payload: Arc::from(row.try_get::<String, _>(9).map_err(db)?),
        metadata: Arc::from(row.try_get::<String, _>(10).map_err(db)?),
        prev_hash: hash_of(&row.try_get::<Vec<u8>, _>(11).map_err(db)?),
        hash: hash_of(&row.try_get::<Vec<u8>, _>(12).map_err(db)?),
    })
}

fn decode_head(row: &PgRow, first: usize) -> Result<ChainHead, StoreError> {
    Ok(ChainHead {
        position: from_i64(row.try_get(first).map_err(db)?)?,
        hash: hash_of(&row.try_get::<Vec<u8>, _>(first + 1).map_err(db)?),
    })
}

impl PostgresEventStore {
    /// The tenant's chain records in the query's range.
    pub(crate) async fn chain_records(
        &self,
        tenant: TenantId,
        query: ChainQuery,
    ) -> Result<Vec<ChainRecord>, StoreError> {
        let mut tx = self.begin(Scope::Tenant(tenant)).await?;
        let rows = sqlx::query(READ_CHAIN)
            .bind(tenant.as_uuid())
            .bind(to_i64(query.after))
            .bind(to_i64(query.until))
            .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(decode_record).collect()
    }

    /// The tenant's recorded head.
    pub(crate) async fn recorded_head(
        &self,
        tenant: TenantId,
    ) -> Result<Option<ChainHead>, StoreError> {
        let mut tx = self.begin(Scope::Tenant(tenant)).await?;
        let row = sqlx::query(HEAD)
            .bind(tenant.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.map(|row| decode_head(&row, 0)).transpose()
    }

    /// Every tenant's recorded head (needs the all-tenants scope).
    pub(crate) async fn recorded_heads(&self) -> Result<Vec<(TenantId, ChainHead)>, StoreError> {
        let mut tx = self.begin(Scope::All).await?;
        let rows = sqlx::query(HEADS).fetch_all(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok((
                    TenantId::from_uuid(row.try_get(0).map_err(db)?),
                    decode_head(row, 1)?,
                ))
            })
            .collect()
    }
}
