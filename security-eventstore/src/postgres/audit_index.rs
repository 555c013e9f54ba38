//! The audit index in PostgreSQL (`security_audit_index`, migration 0070):
//! a projection over every tenant writes the rows, queries read one
//! tenant's rows through its indexes.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use security_core::audit::{
    AuditBatch, AuditBuffer, AuditCursor, AuditEntry, AuditIndex, AuditOrder, AuditPage, AuditQuery,
};
use security_core::{
    Actor, CheckpointStore, DeadLetter, EventId, EventStore, ProjectionRunner, Scope, StoreError,
    TenantId, UserId,
};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::checkpoints::PostgresCheckpointStore;
use super::errors::db;
use super::store::{PostgresEventStore, from_i64, to_i64};

/// The projection name the index keeps its checkpoint under.
const AUDIT_INDEX_PROJECTION: &str = PostgresAuditIndex::PROJECTION;

const INSERT_ENTRIES: &str = "INSERT INTO security_audit_index \
     (tenant_id, global_position, event_id, occurred_at, kind, outcome, event_type, \
      aggregate_type, aggregate_id, subject_id, actor) \
     SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::uuid[], $4::timestamptz[], $5::text[], \
      $6::text[], $7::text[], $8::text[], $9::uuid[], $10::uuid[], $11::text[]) \
     ON CONFLICT (tenant_id, global_position) DO NOTHING";

const UPSERT_USERNAMES: &str = "INSERT INTO security_audit_usernames (tenant_id, user_id, username) \
     SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) \
     ON CONFLICT (tenant_id, user_id) DO UPDATE SET username = EXCLUDED.username";

const SAVE_CHECKPOINT: &str = "INSERT INTO security_projection_checkpoints \
     (scope, tenant_id, projection, position) VALUES ('all', $1, $2, $3) \
     ON CONFLICT (scope, tenant_id, projection) DO UPDATE SET position = EXCLUDED.position";

/// The audit index in PostgreSQL.
///
/// It is kept by a [`ProjectionRunner`] over [`Scope::All`] whose
/// projection is an [`AuditBuffer`] and whose checkpoint store is this
/// index ([`runner`](Self::runner) builds it): after each batch the
/// runner's checkpoint save writes the batch's rows and the checkpoint in
/// one transaction, so the index is exactly the classified events up to
/// its checkpoint, across crashes and restarts. A failed write is retried
/// with the next save; a rebuild deletes every row first.
///
/// Queries run in a transaction scoped to the query's tenant (row-level
/// security) and use the indexes on (tenant, subject, position), (tenant,
/// actor, position), (tenant, kind, position) and (tenant, occurred_at).
#[derive(Debug, Clone)]
pub struct PostgresAuditIndex {
    store: PostgresEventStore,
    buffer: AuditBuffer,
    checkpoints: PostgresCheckpointStore,
}

impl PostgresAuditIndex {
    /// The name of the index's projection (its checkpoint and dead letters
    /// are kept under it).
    pub const PROJECTION: &'static str = "audit_index";

    /// The index in the store's database.
    pub fn new(store: &PostgresEventStore) -> Self {
        Self {
            store: store.clone(),
            buffer: AuditBuffer::new(AUDIT_INDEX_PROJECTION),
            checkpoints: PostgresCheckpointStore::new(store, Scope::All),
        }
    }

    /// The projection that feeds the index (run it with this index as the
    /// checkpoint store).
    pub fn projection(&self) -> AuditBuffer {
        self.buffer.clone()
    }

    /// A runner that keeps the index up to date from the store's global
    /// stream: [`catch_up`](ProjectionRunner::catch_up) it, or
    /// [`run_supervised`](ProjectionRunner::run_supervised) it in a task.
    pub fn runner(&self) -> ProjectionRunner<AuditBuffer> {
        let store: Arc<dyn EventStore> = Arc::new(self.store.clone());
        ProjectionRunner::deferred(store, Arc::new(self.clone()), self.projection(), Scope::All)
    }

    async fn write(&self, batch: &AuditBatch, position: u64) -> Result<(), StoreError> {
        let mut tx = self.store.begin(Scope::All).await?;
        if batch.reset {
            sqlx::query("DELETE FROM security_audit_index")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query("DELETE FROM security_audit_usernames")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        if !batch.entries.is_empty() {
            let e = &batch.entries;
            sqlx::query(INSERT_ENTRIES)
                .bind(e.iter().map(|e| e.tenant_id.as_uuid()).collect::<Vec<_>>())
                .bind(e.iter().map(|e| to_i64(e.position)).collect::<Vec<_>>())
                .bind(e.iter().map(|e| e.event_id.as_uuid()).collect::<Vec<_>>())
                .bind(e.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
                .bind(e.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
                .bind(e.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>())
                .bind(e.iter().map(|e| text(&e.event_type)).collect::<Vec<_>>())
                .bind(
                    e.iter()
                        .map(|e| text(&e.aggregate_type))
                        .collect::<Vec<_>>(),
                )
                .bind(e.iter().map(|e| e.aggregate_id).collect::<Vec<_>>())
                .bind(
                    e.iter()
                        .map(|e| e.subject.map(|s| s.as_uuid()))
                        .collect::<Vec<_>>(),
                )
                .bind(
                    e.iter()
                        .map(|e| e.actor.as_ref().map(|a| text(a.as_str())))
                        .collect::<Vec<_>>(),
                )
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        if !batch.usernames.is_empty() {
            let u = &batch.usernames;
            sqlx::query(UPSERT_USERNAMES)
                .bind(u.iter().map(|(t, _, _)| t.as_uuid()).collect::<Vec<_>>())
                .bind(u.iter().map(|(_, id, _)| id.as_uuid()).collect::<Vec<_>>())
                .bind(u.iter().map(|(_, _, name)| text(name)).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        sqlx::query(SAVE_CHECKPOINT)
            .bind(TenantId::SYSTEM.as_uuid())
            .bind(AUDIT_INDEX_PROJECTION)
            .bind(to_i64(position))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }
}

/// Text columns cannot hold NUL: such characters are replaced.
fn text(value: &str) -> String {
    value.replace('\0', "\u{fffd}")
}

/// The index is its own checkpoint store: a save writes the projection's
/// batch with the checkpoint. Dead letters go to the store's dead-letter
/// table.
#[async_trait]
impl CheckpointStore for PostgresAuditIndex {
    async fn load(&self, projection: &str) -> Result<Option<u64>, StoreError> {
        self.checkpoints.load(projection).await
    }

    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        if projection != AUDIT_INDEX_PROJECTION {
            return Err(StoreError::InvalidRequest(
                "the audit index keeps the checkpoint of its own projection only",
            ));
        }
        let batch = self.buffer.take();
        let written = self.write(&batch, position).await;
        if written.is_err() {
            self.buffer.restore(batch);
        }
        written
    }

    async fn record_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        self.checkpoints.record_dead_letter(letter).await
    }

    async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetter>, StoreError> {
        self.checkpoints.dead_letters(projection).await
    }
}

#[async_trait]
impl AuditIndex for PostgresAuditIndex {
    async fn query(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        query.validate()?;
        // Read first: every entry up to it is in the rows read after.
        let indexed_up_to = self
            .checkpoints
            .load(AUDIT_INDEX_PROJECTION)
            .await?
            .unwrap_or(0);
        let mut sql: QueryBuilder<'_, Postgres> = QueryBuilder::new(
            "SELECT i.global_position, i.event_id, i.occurred_at, i.kind, i.outcome, \
             i.event_type, i.aggregate_type, i.aggregate_id, i.subject_id, i.actor, ",
        );
        if query.resolve_usernames {
            sql.push(
                "u.username FROM security_audit_index i LEFT JOIN security_audit_usernames u \
                 ON u.tenant_id = i.tenant_id AND u.user_id = i.subject_id",
            );
        } else {
            sql.push("NULL::text FROM security_audit_index i");
        }
        sql.push(" WHERE i.tenant_id = ")
            .push_bind(query.tenant_id.as_uuid());
        if let Some(subject) = query.subject {
            sql.push(" AND i.subject_id = ")
                .push_bind(subject.as_uuid());
        }
        if let Some(actor) = &query.actor {
            sql.push(" AND i.actor = ").push_bind(text(actor.as_str()));
        }
        if let Some(kind) = query.kind {
            sql.push(" AND i.kind = ").push_bind(kind.as_str());
        }
        if let Some(outcome) = query.outcome {
            sql.push(" AND i.outcome = ").push_bind(outcome.as_str());
        }
        if let Some(from) = query.from {
            sql.push(" AND i.occurred_at >= ").push_bind(from);
        }
        if let Some(until) = query.until {
            sql.push(" AND i.occurred_at < ").push_bind(until);
        }
        let descending = query.order == AuditOrder::NewestFirst;
        if let Some(after) = query.after {
            sql.push(if descending {
                " AND i.global_position < "
            } else {
                " AND i.global_position > "
            })
            .push_bind(to_i64(after.position()));
        }
        sql.push(if descending {
            " ORDER BY i.global_position DESC LIMIT "
        } else {
            " ORDER BY i.global_position ASC LIMIT "
        })
        .push_bind(i64::try_from(query.limit + 1).unwrap_or(i64::MAX));

        let mut tx = self.store.begin(Scope::Tenant(query.tenant_id)).await?;
        let rows = sql.build().fetch_all(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;

        let mut entries = rows
            .iter()
            .map(|row| entry(query.tenant_id, row))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if entries.len() > query.limit {
            entries.truncate(query.limit);
            entries.last().map(|e| AuditCursor(e.position))
        } else {
            None
        };
        Ok(AuditPage {
            entries,
            next,
            indexed_up_to,
        })
    }
}

fn entry(tenant_id: TenantId, row: &sqlx::postgres::PgRow) -> Result<AuditEntry, StoreError> {
    let bad = |_| StoreError::InvalidRequest("the audit index holds a row it cannot read");
    let kind: String = row.try_get(3).map_err(db)?;
    let outcome: String = row.try_get(4).map_err(db)?;
    let event_type: String = row.try_get(5).map_err(db)?;
    let aggregate_type: String = row.try_get(6).map_err(db)?;
    Ok(AuditEntry {
        position: from_i64(row.try_get(0).map_err(db)?)?,
        event_id: EventId::from_uuid(row.try_get::<Uuid, _>(1).map_err(db)?),
        tenant_id,
        occurred_at: row.try_get::<DateTime<Utc>, _>(2).map_err(db)?,
        kind: kind.parse().map_err(bad)?,
        outcome: outcome.parse().map_err(bad)?,
        event_type: Arc::from(event_type),
        aggregate_type: Arc::from(aggregate_type),
        aggregate_id: row.try_get::<Uuid, _>(7).map_err(db)?,
        subject: row
            .try_get::<Option<Uuid>, _>(8)
            .map_err(db)?
            .map(UserId::from_uuid),
        actor: row
            .try_get::<Option<String>, _>(9)
            .map_err(db)?
            .map(Actor::new),
        username: row.try_get::<Option<String>, _>(10).map_err(db)?,
    })
}
