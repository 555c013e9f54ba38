//! security-crypto's encrypted key records, persisted in PostgreSQL.

use async_trait::async_trait;
use security_core::{KeyId, KeyOwner, Scope, StoreError};
use security_crypto::{KeyRecord, KeyRecordStore, KeyRecordStoreError};
use sqlx::{Postgres, Transaction};

use super::errors::is_unique_violation;
use super::store::{PostgresEventStore, to_i64};

const INSERT: &str = "INSERT INTO security_key_records \
     (key_id, tenant_id, owner_id, created_at, master_key_id, revision, record) \
     VALUES ($1, $2, $3, $4, $5, $6, $7::json)";

const GET: &str = "SELECT record::text FROM security_key_records WHERE key_id = $1";

const BY_OWNER: &str = "SELECT record::text FROM security_key_records \
     WHERE tenant_id = $1 AND owner_id = $2 ORDER BY created_at, key_id";

const BY_MASTER: &str = "SELECT record::text FROM security_key_records \
     WHERE master_key_id = $1 ORDER BY created_at, key_id LIMIT $2";

/// Compare-and-swap on the revision.
const UPDATE: &str = "UPDATE security_key_records \
     SET master_key_id = $2, revision = $3, record = $4::json \
     WHERE key_id = $1 AND revision = $5";

const EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM security_key_records WHERE key_id = $1)";

/// Where an [`EnvelopeKeyStore`](security_crypto::EnvelopeKeyStore) keeps
/// its key records: in the event store's database, under row-level
/// security.
///
/// Each record is kept whole, as the JSON the key store wrote (private
/// material encrypted, every field covered by the record's MAC), beside the
/// columns the queries need. Writes run as the record's tenant; reads by
/// key id and the master-key rotation's work list use the owner role's
/// all-tenants mode (see [`PostgresEventStore`]). Records are never
/// deleted.
#[derive(Debug, Clone)]
pub struct PostgresKeyRecordStore {
    store: PostgresEventStore,
}

impl PostgresKeyRecordStore {
    /// Key records in the store's database (its migrations create the
    /// table).
    pub fn new(store: &PostgresEventStore) -> Self {
        Self {
            store: store.clone(),
        }
    }

    async fn begin(
        &self,
        scope: Scope,
    ) -> Result<Transaction<'static, Postgres>, KeyRecordStoreError> {
        self.store.begin(scope).await.map_err(backend)
    }
}

fn backend(error: StoreError) -> KeyRecordStoreError {
    KeyRecordStoreError::Backend(Box::new(error))
}

fn driver(error: sqlx::Error) -> KeyRecordStoreError {
    backend(super::errors::db(error))
}

fn encode(record: &KeyRecord) -> Result<String, KeyRecordStoreError> {
    serde_json::to_string(record).map_err(|e| KeyRecordStoreError::Backend(Box::new(e)))
}

fn decode(text: &str) -> Result<KeyRecord, KeyRecordStoreError> {
    serde_json::from_str(text).map_err(|e| KeyRecordStoreError::Backend(Box::new(e)))
}

async fn insert_in(
    tx: &mut Transaction<'static, Postgres>,
    record: &KeyRecord,
) -> Result<(), KeyRecordStoreError> {
    let owner = record.owner();
    let inserted = sqlx::query(INSERT)
        .bind(record.key_id().as_uuid())
        .bind(owner.tenant_id.as_uuid())
        .bind(owner.owner_id)
        .bind(record.info.created_at)
        .bind(&record.master_key_id)
        .bind(to_i64(record.revision))
        .bind(encode(record)?)
        .execute(&mut **tx)
        .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e, "security_key_records_pkey") => {
            Err(KeyRecordStoreError::AlreadyExists(record.key_id()))
        }
        Err(e) => Err(driver(e)),
    }
}

async fn update_in(
    tx: &mut Transaction<'static, Postgres>,
    record: &KeyRecord,
    expected_revision: u64,
) -> Result<(), KeyRecordStoreError> {
    let key_id = record.key_id();
    let updated = sqlx::query(UPDATE)
        .bind(key_id.as_uuid())
        .bind(&record.master_key_id)
        .bind(to_i64(record.revision))
        .bind(encode(record)?)
        .bind(to_i64(expected_revision))
        .execute(&mut **tx)
        .await
        .map_err(driver)?;
    if updated.rows_affected() == 1 {
        return Ok(());
    }
    let exists = sqlx::query_scalar::<_, bool>(EXISTS)
        .bind(key_id.as_uuid())
        .fetch_one(&mut **tx)
        .await
        .map_err(driver)?;
    Err(if exists {
        KeyRecordStoreError::Conflict(key_id)
    } else {
        KeyRecordStoreError::NotFound(key_id)
    })
}

#[async_trait]
impl KeyRecordStore for PostgresKeyRecordStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), KeyRecordStoreError> {
        let mut tx = self.begin(Scope::Tenant(record.owner().tenant_id)).await?;
        insert_in(&mut tx, record).await?;
        tx.commit().await.map_err(driver)
    }

    async fn get(&self, key_id: KeyId) -> Result<Option<KeyRecord>, KeyRecordStoreError> {
        let mut tx = self.begin(Scope::All).await?;
        let text = sqlx::query_scalar::<_, String>(GET)
            .bind(key_id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(driver)?;
        tx.commit().await.map_err(driver)?;
        text.as_deref().map(decode).transpose()
    }

    async fn list_by_owner(&self, owner: KeyOwner) -> Result<Vec<KeyRecord>, KeyRecordStoreError> {
        let mut tx = self.begin(Scope::Tenant(owner.tenant_id)).await?;
        let texts = sqlx::query_scalar::<_, String>(BY_OWNER)
            .bind(owner.tenant_id.as_uuid())
            .bind(owner.owner_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(driver)?;
        tx.commit().await.map_err(driver)?;
        texts.iter().map(|t| decode(t)).collect()
    }

    async fn update(
        &self,
        record: &KeyRecord,
        expected_revision: u64,
    ) -> Result<(), KeyRecordStoreError> {
        let mut tx = self.begin(Scope::Tenant(record.owner().tenant_id)).await?;
        update_in(&mut tx, record, expected_revision).await?;
        tx.commit().await.map_err(driver)
    }

    async fn insert_successor(
        &self,
        rotated: &KeyRecord,
        expected_revision: u64,
        successor: &KeyRecord,
    ) -> Result<(), KeyRecordStoreError> {
        let tenant = rotated.owner().tenant_id;
        if successor.owner().tenant_id != tenant {
            return Err(KeyRecordStoreError::Backend(Box::new(
                super::errors::Corrupt("a successor in another tenant"),
            )));
        }
        // Both or neither: one transaction.
        let mut tx = self.begin(Scope::Tenant(tenant)).await?;
        update_in(&mut tx, rotated, expected_revision).await?;
        insert_in(&mut tx, successor).await?;
        tx.commit().await.map_err(driver)
    }

    async fn list_by_master_key(
        &self,
        master_key_id: &str,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, KeyRecordStoreError> {
        let mut tx = self.begin(Scope::All).await?;
        let texts = sqlx::query_scalar::<_, String>(BY_MASTER)
            .bind(master_key_id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(driver)?;
        tx.commit().await.map_err(driver)?;
        texts.iter().map(|t| decode(t)).collect()
    }
}
