//! Projection checkpoints in PostgreSQL, so read models resume after a
//! restart.

use async_trait::async_trait;
use security_core::{CheckpointStore, Scope, StoreError, TenantId};

use super::errors::db;
use super::store::{PostgresEventStore, from_i64, to_i64};

const LOAD: &str = "SELECT position FROM security_projection_checkpoints \
     WHERE scope = $1 AND tenant_id = $2 AND projection = $3";

const SAVE: &str = "INSERT INTO security_projection_checkpoints \
     (scope, tenant_id, projection, position) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (scope, tenant_id, projection) DO UPDATE SET position = EXCLUDED.position";

/// Where projections fed from a [`PostgresEventStore`] keep their
/// checkpoints: in the same database, under the same row-level security.
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

    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        if projection.contains('\0') {
            return Err(StoreError::InvalidRequest(
                "a projection name holds a NUL character",
            ));
        }
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
