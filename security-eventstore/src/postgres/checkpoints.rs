//! Projection checkpoints and dead letters in PostgreSQL, so read models
//! resume after a restart and the events they skipped stay on record.

use async_trait::async_trait;
use security_core::{CheckpointStore, DeadLetter, EventId, Scope, StoreError, TenantId};
use sqlx::Row;
use uuid::Uuid;

use super::errors::db;
use super::store::{PostgresEventStore, from_i64, to_i64};

const LOAD: &str = "SELECT position FROM security_projection_checkpoints \
     WHERE scope = $1 AND tenant_id = $2 AND projection = $3";

const SAVE: &str = "INSERT INTO security_projection_checkpoints \
     (scope, tenant_id, projection, position) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (scope, tenant_id, projection) DO UPDATE SET position = EXCLUDED.position";

const RECORD_DEAD_LETTER: &str = "INSERT INTO security_projection_dead_letters \
     (scope, tenant_id, projection, global_position, event_id, event_tenant_id, event_type, \
      reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (scope, tenant_id, projection, global_position) DO NOTHING";

const DEAD_LETTERS: &str = "SELECT global_position, event_id, event_tenant_id, event_type, \
     reason FROM security_projection_dead_letters \
     WHERE scope = $1 AND tenant_id = $2 AND projection = $3 ORDER BY global_position";

/// Where projections fed from a [`PostgresEventStore`] keep their
/// checkpoints and dead letters: in the same database, under the same
/// row-level security.
///
/// A checkpoint store serves one scope: a tenant's projections see (and
/// overwrite) only that tenant's checkpoints; `Scope::All` projections
/// (the application's own) keep theirs apart from every tenant's.
#[derive(Debug, Clone)]
pub struct PostgresCheckpointStore {
    store: PostgresEventStore,
    scope: Scope,
}

impl PostgresCheckpointStore {
    /// Checkpoints of projections over `scope`, in the store's database.
    pub fn new(store: &PostgresEventStore, scope: Scope) -> Self {
        Self {
            store: store.clone(),
            scope,
        }
    }

    fn key(&self) -> (&'static str, TenantId) {
        match self.scope {
            Scope::Tenant(tenant) => ("tenant", tenant),
            Scope::All => ("all", TenantId::SYSTEM),
        }
    }
}

#[async_trait]
impl CheckpointStore for PostgresCheckpointStore {
    async fn load(&self, projection: &str) -> Result<Option<u64>, StoreError> {
        let (scope, tenant) = self.key();
        let mut tx = self.store.begin(self.scope).await?;
        let position = sqlx::query_scalar::<_, i64>(LOAD)
            .bind(scope)
            .bind(tenant.as_uuid())
            .bind(projection)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        position.map(from_i64).transpose()
    }

    async fn record_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        check_name(&letter.projection)?;
        // Text columns cannot hold NUL: the texts are kept without it.
        let reason = letter.reason.replace('\0', "\u{fffd}");
        let event_type = letter.event_type.replace('\0', "\u{fffd}");
        let (scope, tenant) = self.key();
        let mut tx = self.store.begin(self.scope).await?;
        sqlx::query(RECORD_DEAD_LETTER)
            .bind(scope)
            .bind(tenant.as_uuid())
            .bind(&letter.projection)
            .bind(to_i64(letter.global_position))
            .bind(letter.event_id.as_uuid())
            .bind(letter.tenant_id.as_uuid())
            .bind(event_type)
            .bind(reason)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetter>, StoreError> {
        let (scope, tenant) = self.key();
        let mut tx = self.store.begin(self.scope).await?;
        let rows = sqlx::query(DEAD_LETTERS)
            .bind(scope)
            .bind(tenant.as_uuid())
            .bind(projection)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(DeadLetter {
                    projection: projection.to_owned(),
                    global_position: from_i64(row.try_get(0).map_err(db)?)?,
                    event_id: EventId::from_uuid(row.try_get::<Uuid, _>(1).map_err(db)?),
                    tenant_id: TenantId::from_uuid(row.try_get::<Uuid, _>(2).map_err(db)?),
                    event_type: row.try_get(3).map_err(db)?,
                    reason: row.try_get(4).map_err(db)?,
                })
            })
            .collect()
    }

    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        check_name(projection)?;
        let (scope, tenant) = self.key();
        let mut tx = self.store.begin(self.scope).await?;
        sqlx::query(SAVE)
            .bind(scope)
            .bind(tenant.as_uuid())
            .bind(projection)
            .bind(to_i64(position))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }
}

fn check_name(projection: &str) -> Result<(), StoreError> {
    if projection.contains('\0') {
        return Err(StoreError::InvalidRequest(
            "a projection name holds a NUL character",
        ));
    }
    Ok(())
}
