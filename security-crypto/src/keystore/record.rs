//! Persistence of encrypted key records: the port an
//! [`EnvelopeKeyStore`](crate::EnvelopeKeyStore) stores through.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use security_core::{KeyId, KeyInfo, KeyOwner};
use serde::{Deserialize, Serialize};

/// A key as it is stored: metadata in clear, private material encrypted,
/// the whole authenticated.
///
/// Everything here is safe to store in an ordinary database: the private
/// material is encrypted under a data key that is itself encrypted under
/// the master key, and `mac` (HMAC-SHA256 under a key derived from the
/// master key) covers every other field, so a record altered outside the
/// key store (say, a revoked key set back to active, or made exportable)
/// is refused. All timestamps have microsecond precision, so records
/// survive a round trip through PostgreSQL `timestamptz` unchanged; a
/// store must return exactly what it was given.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key's metadata (id, owner = tenant + owner id, purpose,
    /// algorithm, public key, status, times, exportability).
    pub info: KeyInfo,
    /// The fingerprint of the master key that protects this record (see
    /// [`MasterKey::id`](crate::MasterKey::id)).
    pub master_key_id: String,
    /// The encrypted private material; `None` once the key is destroyed.
    pub material: Option<WrappedMaterial>,
    /// Incremented by every change; the basis of optimistic concurrency.
    pub revision: u64,
    /// The record's authentication tag (unpadded base64url).
    pub mac: String,
}

impl KeyRecord {
    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.info.key_id
    }

    /// The owner (tenant and owner id).
    pub fn owner(&self) -> KeyOwner {
        self.info.owner
    }
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("info", &self.info)
            .field("master_key_id", &self.master_key_id)
            .field("has_material", &self.material.is_some())
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

/// Encrypted private material (two Fernet tokens).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedMaterial {
    /// The record's data key, encrypted under a key derived from the master
    /// key and the record's identity.
    pub wrapped_key: String,
    /// The private material, encrypted under the data key.
    pub ciphertext: String,
}

impl fmt::Debug for WrappedMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WrappedMaterial(..)")
    }
}

/// A key-record store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRecordStoreError {
    /// A record with this id exists already. The id generator repeated
    /// itself; do not retry with the same id.
    #[error("key record {0} already exists")]
    AlreadyExists(KeyId),
    /// The record changed since it was read (its revision moved on). Read
    /// it again and retry.
    #[error("key record {0} was changed concurrently")]
    Conflict(KeyId),
    /// There is no record with this id.
    #[error("key record {0} not found")]
    NotFound(KeyId),
    /// The backend failed (database unreachable, ...). Log it; retrying
    /// may help.
    #[error("key record store backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Stores [`KeyRecord`]s for an [`EnvelopeKeyStore`](crate::EnvelopeKeyStore).
///
/// The store is plain persistence: it never sees a private key or the
/// master key, and need not understand the records beyond the columns
/// named here. Contract (checked by
/// `security_crypto::testkit::key_record_store_conformance`, feature
/// `testkit`):
///
/// - a record read back is exactly the record written (every field,
///   timestamps to the microsecond);
/// - ids are unique: `insert` of an existing id fails with
///   [`AlreadyExists`](KeyRecordStoreError::AlreadyExists) and writes
///   nothing;
/// - `update` and `insert_successor` are compare-and-swap on `revision`:
///   they write only if the stored revision equals `expected_revision`, and
///   otherwise fail with [`Conflict`](KeyRecordStoreError::Conflict) having
///   written nothing; of concurrent writers at one revision exactly one
///   wins;
/// - `insert_successor` writes both records or neither (one transaction);
/// - tenant scoping: `list_by_owner` returns only records whose
///   `info.owner` equals the owner given (tenant id *and* owner id). A
///   PostgreSQL implementation should keep `tenant_id` as a column, index
///   `(tenant_id, owner_id, created_at, key_id)`, and may add row-level
///   security; `get` is by key id alone because callers (and
///   [`SealedSecret`](security_core::SealedSecret)s) name keys by id: the
///   layers above check the tenant;
/// - records are never deleted: a destroyed key stays as metadata with
///   `material: None` (overwriting the row is what destroys the material;
///   see the crate docs on backups).
#[async_trait]
pub trait KeyRecordStore: fmt::Debug + Send + Sync {
    /// Adds a new record.
    async fn insert(&self, record: &KeyRecord) -> Result<(), KeyRecordStoreError>;

    /// The record with this id, if any.
    async fn get(&self, key_id: KeyId) -> Result<Option<KeyRecord>, KeyRecordStoreError>;

    /// Every record of `owner`, ordered by `(info.created_at, key id)`.
    async fn list_by_owner(&self, owner: KeyOwner) -> Result<Vec<KeyRecord>, KeyRecordStoreError>;

    /// Replaces the record with the same id, if its stored revision is
    /// `expected_revision` (`record.revision` is the new one).
    async fn update(
        &self,
        record: &KeyRecord,
        expected_revision: u64,
    ) -> Result<(), KeyRecordStoreError>;

    /// Atomically replaces `rotated` (if its stored revision is
    /// `expected_revision`) and inserts `successor`.
    async fn insert_successor(
        &self,
        rotated: &KeyRecord,
        expected_revision: u64,
        successor: &KeyRecord,
    ) -> Result<(), KeyRecordStoreError>;

    /// Up to `limit` records of any tenant protected by the master key with
    /// this fingerprint, ordered by `(info.created_at, key id)`: the work
    /// list of a master-key rotation.
    async fn list_by_master_key(
        &self,
        master_key_id: &str,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, KeyRecordStoreError>;
}

#[async_trait]
impl<T: KeyRecordStore + ?Sized> KeyRecordStore for Arc<T> {
    async fn insert(&self, record: &KeyRecord) -> Result<(), KeyRecordStoreError> {
        (**self).insert(record).await
    }

    async fn get(&self, key_id: KeyId) -> Result<Option<KeyRecord>, KeyRecordStoreError> {
        (**self).get(key_id).await
    }

    async fn list_by_owner(&self, owner: KeyOwner) -> Result<Vec<KeyRecord>, KeyRecordStoreError> {
        (**self).list_by_owner(owner).await
    }

    async fn update(
        &self,
        record: &KeyRecord,
        expected_revision: u64,
    ) -> Result<(), KeyRecordStoreError> {
        (**self).update(record, expected_revision).await
    }

    async fn insert_successor(
        &self,
        rotated: &KeyRecord,
        expected_revision: u64,
        successor: &KeyRecord,
    ) -> Result<(), KeyRecordStoreError> {
        (**self)
            .insert_successor(rotated, expected_revision, successor)
            .await
    }

    async fn list_by_master_key(
        &self,
        master_key_id: &str,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, KeyRecordStoreError> {
        (**self).list_by_master_key(master_key_id, limit).await
    }
}

fn sort_records(records: &mut [KeyRecord]) {
    records.sort_by_key(|record| (record.info.created_at, record.info.key_id));
}

/// A [`KeyRecordStore`] in process memory, with the same guarantees a
/// database gives (uniqueness, compare-and-swap, atomic rotation).
#[derive(Debug, Default)]
pub struct MemoryKeyRecordStore {
    records: RwLock<HashMap<KeyId, KeyRecord>>,
}

impl MemoryKeyRecordStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of records (for tests).
    pub fn len(&self) -> usize {
        self.records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces a record without any check: simulates someone writing to
    /// the database behind the key store's back (for tampering tests).
    #[cfg(any(test, feature = "testkit"))]
    pub fn overwrite_unchecked(&self, record: KeyRecord) {
        self.records
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(record.info.key_id, record);
    }
}

fn check_revision(
    records: &HashMap<KeyId, KeyRecord>,
    key_id: KeyId,
    expected_revision: u64,
) -> Result<(), KeyRecordStoreError> {
    match records.get(&key_id) {
        None => Err(KeyRecordStoreError::NotFound(key_id)),
        Some(stored) if stored.revision != expected_revision => {
            Err(KeyRecordStoreError::Conflict(key_id))
        }
        Some(_) => Ok(()),
    }
}

#[async_trait]
impl KeyRecordStore for MemoryKeyRecordStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), KeyRecordStoreError> {
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        if records.contains_key(&record.info.key_id) {
            return Err(KeyRecordStoreError::AlreadyExists(record.info.key_id));
        }
        records.insert(record.info.key_id, record.clone());
        Ok(())
    }

    async fn get(&self, key_id: KeyId) -> Result<Option<KeyRecord>, KeyRecordStoreError> {
        Ok(self
            .records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key_id)
            .cloned())
    }

    async fn list_by_owner(&self, owner: KeyOwner) -> Result<Vec<KeyRecord>, KeyRecordStoreError> {
        let records = self.records.read().unwrap_or_else(PoisonError::into_inner);
        let mut owned: Vec<KeyRecord> = records
            .values()
            .filter(|r| r.info.owner == owner)
            .cloned()
            .collect();
        sort_records(&mut owned);
        Ok(owned)
    }

    async fn update(
        &self,
        record: &KeyRecord,
        expected_revision: u64,
    ) -> Result<(), KeyRecordStoreError> {
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        check_revision(&records, record.info.key_id, expected_revision)?;
        records.insert(record.info.key_id, record.clone());
        Ok(())
    }

    async fn insert_successor(
        &self,
        rotated: &KeyRecord,
        expected_revision: u64,
        successor: &KeyRecord,
    ) -> Result<(), KeyRecordStoreError> {
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        check_revision(&records, rotated.info.key_id, expected_revision)?;
        if records.contains_key(&successor.info.key_id) {
            return Err(KeyRecordStoreError::AlreadyExists(successor.info.key_id));
        }
        records.insert(rotated.info.key_id, rotated.clone());
        records.insert(successor.info.key_id, successor.clone());
        Ok(())
    }

    async fn list_by_master_key(
        &self,
        master_key_id: &str,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, KeyRecordStoreError> {
        let records = self.records.read().unwrap_or_else(PoisonError::into_inner);
        let mut matching: Vec<KeyRecord> = records
            .values()
            .filter(|r| r.master_key_id == master_key_id)
            .cloned()
            .collect();
        sort_records(&mut matching);
        matching.truncate(limit);
        Ok(matching)
    }
}
