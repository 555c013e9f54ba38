//! The envelope-encrypted key store.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SubsecRound, Utc};
use futures::lock::Mutex;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use security_core::{
    Clock, CommandContext, CommandError, IdGenerator, KeyId, KeyInfo, KeyOwner, KeyPurpose,
    KeySpec, KeyStatus, KeyStore, KeyStoreError, Repository, SealedSecret,
};

use super::ledger::{KeyChange, KeyLedger, KeyLedgerCommand};
use super::material::Material;
use super::policy;
use super::record::{
    KeyRecord, KeyRecordStore, KeyRecordStoreError, MemoryKeyRecordStore, WrappedMaterial,
};
use crate::error::CryptoError;
use crate::fernet::FernetKey;
use crate::fernet::Plaintext;
use crate::hash::{HmacKey, constant_time_eq};
use crate::kdf::derive_subkey;
use crate::random::{SystemClock, UuidV7Ids};
use crate::secret::{MasterKey, SymmetricKey};

/// How often a compare-and-swap is retried before giving up.
const MAX_ATTEMPTS: usize = 16;

/// A master key and the record-authentication key derived from it.
#[derive(Debug)]
struct Protector {
    master: MasterKey,
    mac_key: HmacKey,
}

impl Protector {
    fn new(master: MasterKey) -> Result<Self, CryptoError> {
        let mac_key = HmacKey::from_key(derive_subkey(master.key(), "envelope/record-mac", b"")?);
        Ok(Self { master, mac_key })
    }

    /// The key that wraps a record's data key: bound to the record's
    /// identity, so wrapped material cannot be moved to another record.
    fn kek(&self, info: &KeyInfo) -> Result<FernetKey, CryptoError> {
        let mut context = Vec::with_capacity(64);
        context.extend_from_slice(info.key_id.as_uuid().as_bytes());
        context.extend_from_slice(info.owner.tenant_id.as_uuid().as_bytes());
        context.extend_from_slice(info.owner.owner_id.as_bytes());
        put(&mut context, &json_name(&info.purpose)?);
        put(&mut context, &json_name(&info.algorithm)?);
        context.push(u8::from(info.exportable));
        FernetKey::from_key(&derive_subkey(self.master.key(), "envelope/kek", &context)?)
    }

    fn wrap(
        &self,
        info: &KeyInfo,
        material: &Material,
        now: DateTime<Utc>,
    ) -> Result<WrappedMaterial, CryptoError> {
        let data_key = SymmetricKey::generate()?;
        let ciphertext =
            FernetKey::from_key(&data_key)?.encrypt_at(material.seed().expose_secret(), now)?;
        let wrapped_key = self.kek(info)?.encrypt_at(data_key.expose_secret(), now)?;
        Ok(WrappedMaterial {
            wrapped_key,
            ciphertext,
        })
    }

    fn unwrap(&self, info: &KeyInfo, wrapped: &WrappedMaterial) -> Result<Material, CryptoError> {
        let integrity = |_| CryptoError::RecordIntegrity(info.key_id);
        let data_key = self
            .kek(info)?
            .decrypt_stored(&wrapped.wrapped_key)
            .map_err(integrity)?;
        let data_key = SymmetricKey::from_slice(data_key.expose_secret())?;
        let seed = FernetKey::from_key(&data_key)?
            .decrypt_stored(&wrapped.ciphertext)
            .map_err(integrity)?;
        Material::from_seed(
            info.algorithm,
            SymmetricKey::from_slice(seed.expose_secret())?,
        )
    }

    fn mac(&self, record: &KeyRecord) -> Result<String, CryptoError> {
        Ok(URL_SAFE_NO_PAD.encode(self.mac_key.sign(&mac_input(record)?)))
    }

    fn check_mac(&self, record: &KeyRecord) -> Result<(), CryptoError> {
        let expected = self.mac(record)?;
        if constant_time_eq(expected.as_bytes(), record.mac.as_bytes()) {
            Ok(())
        } else {
            Err(CryptoError::RecordIntegrity(record.info.key_id))
        }
    }
}

fn put(buf: &mut Vec<u8>, field: &[u8]) {
    // Fields are far below 4 GiB; saturating keeps this total.
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(field);
}

fn json_name<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, CryptoError> {
    serde_json::to_vec(value).map_err(CryptoError::Serialization)
}

fn put_time(buf: &mut Vec<u8>, at: Option<DateTime<Utc>>) {
    match at {
        None => buf.push(0),
        Some(at) => {
            buf.push(1);
            buf.extend_from_slice(&at.timestamp_micros().to_be_bytes());
        }
    }
}

/// The canonical bytes a record's MAC covers: every field but the MAC,
/// length-prefixed, timestamps as microseconds (the precision records are
/// stored with).
fn mac_input(record: &KeyRecord) -> Result<Vec<u8>, CryptoError> {
    let info = &record.info;
    let mut buf = Vec::with_capacity(512);
    put(&mut buf, b"security-crypto/key-record/v1");
    buf.extend_from_slice(info.key_id.as_uuid().as_bytes());
    buf.extend_from_slice(info.owner.tenant_id.as_uuid().as_bytes());
    buf.extend_from_slice(info.owner.owner_id.as_bytes());
    put(&mut buf, &json_name(&info.purpose)?);
    put(&mut buf, &json_name(&info.algorithm)?);
    match &info.public_key {
        None => buf.push(0),
        Some(key) => {
            buf.push(1);
            put(&mut buf, &json_name(&key.algorithm)?);
            put(&mut buf, key.encoded.as_bytes());
        }
    }
    match info.status {
        KeyStatus::Active => buf.push(0),
        KeyStatus::Rotated { successor, at } => {
            buf.push(1);
            buf.extend_from_slice(successor.as_uuid().as_bytes());
            put_time(&mut buf, Some(at));
        }
        KeyStatus::Revoked { at } => {
            buf.push(2);
            put_time(&mut buf, Some(at));
        }
        KeyStatus::Destroyed { at } => {
            buf.push(3);
            put_time(&mut buf, Some(at));
        }
    }
    put_time(&mut buf, Some(info.created_at));
    put_time(&mut buf, info.expires_at);
    buf.push(u8::from(info.exportable));
    put(&mut buf, record.master_key_id.as_bytes());
    match &record.material {
        None => buf.push(0),
        Some(wrapped) => {
            buf.push(1);
            put(&mut buf, wrapped.wrapped_key.as_bytes());
            put(&mut buf, wrapped.ciphertext.as_bytes());
        }
    }
    buf.extend_from_slice(&record.revision.to_be_bytes());
    Ok(buf)
}

/// Logs a refused record (a possible attack on the database) and turns the
/// error into a backend failure.
fn refused(error: CryptoError) -> KeyStoreError {
    if let CryptoError::RecordIntegrity(key_id) = &error {
        tracing::error!(%key_id, "key record refused: it failed its integrity check (tampering?)");
    } else {
        tracing::error!(%error, "key record refused");
    }
    error.into_backend()
}

fn record_error(error: KeyRecordStoreError) -> KeyStoreError {
    match error {
        KeyRecordStoreError::NotFound(key_id) => KeyStoreError::NotFound(key_id),
        other => KeyStoreError::Backend(Box::new(other)),
    }
}

/// A [`KeyStore`] that keeps every private key encrypted at rest, in any
/// [`KeyRecordStore`] (memory here; PostgreSQL elsewhere).
///
/// Envelope encryption: each key's 32-byte private material is encrypted
/// (Fernet) under its own random data key; the data key is encrypted under
/// a key derived (HKDF-SHA256) from the master key and the record's
/// identity (key id, tenant, owner, purpose, algorithm, exportability).
/// Every record carries an HMAC over all its fields, so changes made
/// behind the store's back (a revoked key set active, a key made
/// exportable, records swapped) are refused as
/// [`CryptoError::RecordIntegrity`] inside [`KeyStoreError::Backend`].
/// Neither private keys nor data keys are ever stored in clear, and
/// nothing decrypted is cached: each operation reads the record (so a
/// revocation made by another process takes effect at once) and wipes
/// the material when done.
///
/// Master-key rotation: construct the store with the new master key and
/// the old one in
/// [`with_previous_master_keys`](Self::with_previous_master_keys), call
/// [`rewrap`](Self::rewrap) until it returns 0, then retire the old key.
///
/// Crypto-shredding is as strong as your backups: a backup taken before
/// [`shred`](KeyStore::shred) still holds the encrypted data key, which
/// the master key can open. Rotate the master key after erasures and
/// destroy the old one to make such copies unreadable.
pub struct EnvelopeKeyStore<S> {
    records: S,
    current: Protector,
    previous: Vec<Protector>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    /// Serializes the creation of data keys inside this process, so that
    /// concurrent first seals for one owner create one key (across
    /// processes a duplicate is harmless: the newest one is used).
    data_key_creation: Mutex<()>,
    /// Where each record's revisions are recorded (see
    /// [`with_ledger`](Self::with_ledger)).
    ledger: Option<Repository>,
}

impl EnvelopeKeyStore<MemoryKeyRecordStore> {
    /// A store over a fresh [`MemoryKeyRecordStore`], on the system clock
    /// with UUID v7 key ids.
    pub fn in_memory(master: MasterKey) -> Result<Self, CryptoError> {
        Self::new(
            MemoryKeyRecordStore::new(),
            master,
            Arc::new(SystemClock),
            Arc::new(UuidV7Ids),
        )
    }
}

impl<S: KeyRecordStore> EnvelopeKeyStore<S> {
    /// A store over `records`, protected by `master`.
    pub fn new(
        records: S,
        master: MasterKey,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Result<Self, CryptoError> {
        Ok(Self {
            records,
            current: Protector::new(master)?,
            previous: Vec::new(),
            clock,
            ids,
            data_key_creation: Mutex::new(()),
            ledger: None,
        })
    }

    /// Records every change of every key record in a key ledger (the
    /// [`KeyLedger`] aggregate, one stream per key in its owner's tenant)
    /// through `repository`, and refuses a record that is not the revision
    /// the ledger last recorded.
    ///
    /// Without a ledger, each record's MAC proves that this key store wrote
    /// it, but not that it is the latest: someone able to write to the
    /// record table can put an older genuine record back and undo a
    /// revocation or a crypto-shredding. With one, the rollback is refused
    /// ([`CryptoError::RecordRolledBack`]), unless the event log is rolled
    /// back to match, which an event store whose events cannot be changed
    /// or deleted by the application's role (PostgreSQL's row-level
    /// security, the hash chain) prevents. Every process sharing the
    /// records must use the ledger. A key created before the ledger was
    /// configured is anchored at the revision it is first seen at.
    ///
    /// Each operation reads the key's ledger besides its record: give the
    /// repository a state cache so that it reads only what is new.
    pub fn with_ledger(mut self, repository: Repository) -> Self {
        self.ledger = Some(repository);
        self
    }

    /// A store protected by the master key in the `ENCRYPTION_KEY`
    /// environment variable, on the system clock with UUID v7 ids.
    pub fn from_env(records: S) -> Result<Self, CryptoError> {
        Self::new(
            records,
            MasterKey::from_env()?,
            Arc::new(SystemClock),
            Arc::new(UuidV7Ids),
        )
    }

    /// Adds older master keys: records they protect stay readable until
    /// [`rewrap`](Self::rewrap) moves them under the current key.
    pub fn with_previous_master_keys(mut self, keys: Vec<MasterKey>) -> Result<Self, CryptoError> {
        for key in keys {
            if key.id() != self.current.master.id() {
                self.previous.push(Protector::new(key)?);
            }
        }
        Ok(self)
    }

    /// The fingerprint of the current master key.
    pub fn master_key_id(&self) -> &str {
        self.current.master.id()
    }

    /// The record store underneath.
    pub fn records(&self) -> &S {
        &self.records
    }

    fn now(&self) -> DateTime<Utc> {
        // Microseconds: the precision records keep in PostgreSQL.
        self.clock.now().trunc_subsecs(6)
    }

    fn protector(&self, master_key_id: &str) -> Result<&Protector, CryptoError> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|p| p.master.id() == master_key_id)
            .ok_or_else(|| CryptoError::UnknownMasterKey(master_key_id.to_owned()))
    }

    /// Checks a record read from the store: its MAC, and that it is the
    /// record asked for.
    fn verified(
        &self,
        record: KeyRecord,
        key_id: Option<KeyId>,
    ) -> Result<KeyRecord, KeyStoreError> {
        let checked = if key_id.is_some_and(|id| id != record.info.key_id) {
            Err(CryptoError::RecordIntegrity(record.info.key_id))
        } else {
            self.protector(&record.master_key_id)
                .and_then(|p| p.check_mac(&record))
        };
        checked.map_err(refused)?;
        Ok(record)
    }

    async fn load(&self, key_id: KeyId) -> Result<KeyRecord, KeyStoreError> {
        let record = self
            .records
            .get(key_id)
            .await
            .map_err(record_error)?
            .ok_or(KeyStoreError::NotFound(key_id))?;
        let record = self.verified(record, Some(key_id))?;
        self.check_fresh(&record).await?;
        Ok(record)
    }

    async fn owned(&self, owner: KeyOwner) -> Result<Vec<KeyRecord>, KeyStoreError> {
        let records = self
            .records
            .list_by_owner(owner)
            .await
            .map_err(record_error)?;
        let mut verified = Vec::with_capacity(records.len());
        for record in records {
            if record.info.owner != owner {
                return Err(CryptoError::RecordIntegrity(record.info.key_id).into_backend());
            }
            let record = self.verified(record, None)?;
            self.check_fresh(&record).await?;
            verified.push(record);
        }
        Ok(verified)
    }

    fn ledger_context(&self, info: &KeyInfo) -> CommandContext {
        CommandContext::new(info.owner.tenant_id, self.now())
    }

    /// Records in the ledger that `info`'s record moves to `revision` by
    /// `change`. `Ok(false)`: the ledger is at another revision (someone
    /// else changed the key first: read it again).
    async fn record_change(
        &self,
        info: &KeyInfo,
        revision: u64,
        change: KeyChange,
    ) -> Result<bool, KeyStoreError> {
        let Some(ledger) = &self.ledger else {
            return Ok(true);
        };
        let command = KeyLedgerCommand::Record {
            key_id: info.key_id,
            revision,
            change,
        };
        match ledger
            .execute::<KeyLedger>(info.key_id, &command, &self.ledger_context(info))
            .await
        {
            Ok(_) => Ok(true),
            Err(CommandError::Rejected(_) | CommandError::Conflict { .. }) => Ok(false),
            Err(other) => Err(KeyStoreError::Backend(Box::new(other))),
        }
    }

    /// Refuses a record that is not the revision the ledger last recorded
    /// (anchoring a key the ledger has never seen).
    async fn check_fresh(&self, record: &KeyRecord) -> Result<(), KeyStoreError> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        let info = &record.info;
        for _ in 0..2 {
            let recorded = ledger
                .load::<KeyLedger>(info.owner.tenant_id, info.key_id)
                .await
                .map_err(|e| KeyStoreError::Backend(Box::new(e)))?
                .state
                .revision;
            if recorded == record.revision {
                return Ok(());
            }
            if recorded != 0 {
                break;
            }
            // Made before the ledger: trusted as found, from now on anchored.
            if self
                .record_change(info, record.revision, KeyChange::Anchored)
                .await?
            {
                return Ok(());
            }
        }
        tracing::error!(
            key_id = %info.key_id,
            revision = record.revision,
            "key record refused: not the revision its ledger recorded (rolled back?)"
        );
        Err(CryptoError::RecordRolledBack(info.key_id).into_backend())
    }

    fn material(&self, record: &KeyRecord) -> Result<Material, KeyStoreError> {
        let wrapped = record
            .material
            .as_ref()
            .ok_or(KeyStoreError::Destroyed(record.info.key_id))?;
        self.material_under(record, wrapped)
    }

    /// Signs a new or changed record with its protector's MAC key.
    fn sealed_record(&self, mut record: KeyRecord) -> Result<KeyRecord, KeyStoreError> {
        record.mac = self
            .protector(&record.master_key_id)
            .and_then(|p| p.mac(&record))
            .map_err(CryptoError::into_backend)?;
        Ok(record)
    }

    fn new_record(&self, spec: &KeySpec, now: DateTime<Utc>) -> Result<KeyRecord, KeyStoreError> {
        let material = Material::generate(spec.purpose.default_algorithm())
            .map_err(CryptoError::into_backend)?;
        let public_key = material
            .public_key(spec.purpose)
            .map_err(CryptoError::into_backend)?;
        let mut spec = spec.clone();
        spec.expires_at = spec.expires_at.map(|at| at.trunc_subsecs(6));
        let info = policy::new_info(KeyId::from_uuid(self.ids.new_id()), &spec, public_key, now);
        let wrapped = self
            .current
            .wrap(&info, &material, now)
            .map_err(CryptoError::into_backend)?;
        self.sealed_record(KeyRecord {
            info,
            master_key_id: self.current.master.id().to_owned(),
            material: Some(wrapped),
            revision: 1,
            mac: String::new(),
        })
    }

    async fn insert_new(&self, spec: &KeySpec) -> Result<KeyRecord, KeyStoreError> {
        let record = self.new_record(spec, self.now())?;
        let created = KeyChange::Created {
            purpose: record.info.purpose,
        };
        if !self.record_change(&record.info, 1, created).await? {
            return Err(record_error(KeyRecordStoreError::AlreadyExists(
                record.info.key_id,
            )));
        }
        self.records.insert(&record).await.map_err(record_error)?;
        Ok(record)
    }

    /// Applies `change` to a record with compare-and-swap, retrying on
    /// conflicts. `change` returns `false` when there is nothing to write.
    /// With a ledger, the new revision is recorded there first.
    async fn modify(
        &self,
        key_id: KeyId,
        kind: KeyChange,
        mut change: impl FnMut(&mut KeyRecord, DateTime<Utc>) -> Result<bool, KeyStoreError> + Send,
    ) -> Result<KeyRecord, KeyStoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.load(key_id).await?;
            let mut next = current.clone();
            if !change(&mut next, self.now())? {
                return Ok(current);
            }
            next.revision = current.revision + 1;
            let next = self.sealed_record(next)?;
            if !self.record_change(&next.info, next.revision, kind).await? {
                continue;
            }
            match self.records.update(&next, current.revision).await {
                Ok(()) => return Ok(next),
                // The ledger took this revision, so no writer that uses it
                // can have moved the record: it changed behind the store.
                Err(KeyRecordStoreError::Conflict(_)) if self.ledger.is_some() => {
                    return Err(CryptoError::RecordRolledBack(key_id).into_backend());
                }
                Err(KeyRecordStoreError::Conflict(_)) => {}
                Err(other) => return Err(record_error(other)),
            }
        }
        Err(record_error(KeyRecordStoreError::Conflict(key_id)))
    }

    async fn destroy(&self, key_id: KeyId) -> Result<(), KeyStoreError> {
        self.modify(key_id, KeyChange::Destroyed, |record, now| {
            if matches!(record.info.status, KeyStatus::Destroyed { .. })
                && record.material.is_none()
            {
                return Ok(false);
            }
            if !matches!(record.info.status, KeyStatus::Destroyed { .. }) {
                record.info.status = KeyStatus::Destroyed { at: now };
            }
            record.material = None;
            Ok(true)
        })
        .await
        .map(|_| ())
    }

    async fn sealing_key(&self, owner: KeyOwner) -> Result<Option<KeyRecord>, KeyStoreError> {
        let now = self.now();
        Ok(self
            .owned(owner)
            .await?
            .into_iter()
            .rfind(|r| policy::can_seal(&r.info, now)))
    }

    /// Moves up to `limit` records protected by previous master keys under
    /// the current one (new data keys, new wrapping, new MAC). Returns how
    /// many it moved; call until it returns 0, then retire the old keys.
    pub async fn rewrap(&self, limit: usize) -> Result<usize, KeyStoreError> {
        let mut moved = 0;
        for old in &self.previous {
            let remaining = limit - moved;
            if remaining == 0 {
                break;
            }
            let records = self
                .records
                .list_by_master_key(old.master.id(), remaining)
                .await
                .map_err(record_error)?;
            for record in records {
                let key_id = record.info.key_id;
                self.verified(record, Some(key_id))?;
                let current_id = self.current.master.id().to_owned();
                self.modify(key_id, KeyChange::Rewrapped, |record, now| {
                    if record.master_key_id == current_id {
                        return Ok(false);
                    }
                    if let Some(wrapped) = &record.material {
                        let material = self.material_under(record, wrapped)?;
                        record.material = Some(
                            self.current
                                .wrap(&record.info, &material, now)
                                .map_err(CryptoError::into_backend)?,
                        );
                    }
                    record.master_key_id.clone_from(&current_id);
                    Ok(true)
                })
                .await?;
                moved += 1;
            }
        }
        Ok(moved)
    }

    fn material_under(
        &self,
        record: &KeyRecord,
        wrapped: &WrappedMaterial,
    ) -> Result<Material, KeyStoreError> {
        self.protector(&record.master_key_id)
            .and_then(|p| p.unwrap(&record.info, wrapped))
            .map_err(refused)
    }
}

impl<S: fmt::Debug> fmt::Debug for EnvelopeKeyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeKeyStore")
            .field("records", &self.records)
            .field("master_key_id", &self.current.master.id())
            .field(
                "previous_master_keys",
                &self
                    .previous
                    .iter()
                    .map(|p| p.master.id())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: KeyRecordStore> KeyStore for EnvelopeKeyStore<S> {
    async fn create_key(&self, spec: KeySpec) -> Result<KeyInfo, KeyStoreError> {
        Ok(self.insert_new(&spec).await?.info)
    }

    async fn key(&self, key_id: KeyId) -> Result<KeyInfo, KeyStoreError> {
        Ok(self.load(key_id).await?.info)
    }

    async fn list_keys(&self, owner: KeyOwner) -> Result<Vec<KeyInfo>, KeyStoreError> {
        Ok(self
            .owned(owner)
            .await?
            .into_iter()
            .map(|record| record.info)
            .collect())
    }

    async fn rotate_key(&self, key_id: KeyId) -> Result<KeyInfo, KeyStoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.load(key_id).await?;
            policy::check_rotate(&current.info)?;
            let now = self.now();
            let successor = self.new_record(&policy::successor_spec(&current.info, now), now)?;
            let mut rotated = current.clone();
            rotated.info.status = KeyStatus::Rotated {
                successor: successor.info.key_id,
                at: now,
            };
            rotated.revision = current.revision + 1;
            let rotated = self.sealed_record(rotated)?;
            let created = KeyChange::Created {
                purpose: successor.info.purpose,
            };
            if !self.record_change(&successor.info, 1, created).await? {
                return Err(record_error(KeyRecordStoreError::AlreadyExists(
                    successor.info.key_id,
                )));
            }
            let change = KeyChange::Rotated {
                successor: successor.info.key_id,
            };
            if !self
                .record_change(&rotated.info, rotated.revision, change)
                .await?
            {
                continue;
            }
            match self
                .records
                .insert_successor(&rotated, current.revision, &successor)
                .await
            {
                Ok(()) => return Ok(successor.info),
                Err(KeyRecordStoreError::Conflict(_)) if self.ledger.is_some() => {
                    return Err(CryptoError::RecordRolledBack(key_id).into_backend());
                }
                Err(KeyRecordStoreError::Conflict(_)) => {}
                Err(other) => return Err(record_error(other)),
            }
        }
        Err(record_error(KeyRecordStoreError::Conflict(key_id)))
    }

    async fn revoke_key(&self, key_id: KeyId) -> Result<KeyInfo, KeyStoreError> {
        let record = self
            .modify(
                key_id,
                KeyChange::Revoked,
                |record, now| match policy::revoked(&record.info, now)? {
                    Some(status) => {
                        record.info.status = status;
                        Ok(true)
                    }
                    None => Ok(false),
                },
            )
            .await?;
        Ok(record.info)
    }

    async fn destroy_key(&self, key_id: KeyId) -> Result<(), KeyStoreError> {
        self.destroy(key_id).await
    }

    async fn sign(&self, key_id: KeyId, message: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        let record = self.load(key_id).await?;
        policy::check_sign(&record.info, self.clock.now())?;
        self.material(&record)?
            .sign(message)
            .ok_or(KeyStoreError::WrongPurpose(key_id))
    }

    async fn verify(
        &self,
        key_id: KeyId,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, KeyStoreError> {
        let record = self.load(key_id).await?;
        policy::check_verify(&record.info)?;
        self.material(&record)?
            .verify(message, signature)
            .ok_or(KeyStoreError::WrongPurpose(key_id))
    }

    async fn seal(&self, owner: KeyOwner, plaintext: &[u8]) -> Result<SealedSecret, KeyStoreError> {
        let record = if let Some(record) = self.sealing_key(owner).await? {
            record
        } else {
            let _creating = self.data_key_creation.lock().await;
            match self.sealing_key(owner).await? {
                Some(record) => record,
                None => {
                    self.insert_new(&KeySpec::new(owner, KeyPurpose::DataEncryption))
                        .await?
                }
            }
        };
        let material = self.material(&record)?;
        let fernet = material
            .fernet()
            .ok_or(KeyStoreError::WrongPurpose(record.info.key_id))?;
        let token = fernet
            .encrypt_at(plaintext, self.clock.now())
            .map_err(CryptoError::into_backend)?;
        Ok(SealedSecret::new(record.info.key_id, token))
    }

    async fn unseal(&self, sealed: &SealedSecret) -> Result<SecretSlice<u8>, KeyStoreError> {
        let record = self.load(sealed.key_id()).await?;
        policy::check_unseal(&record.info)?;
        let material = self.material(&record)?;
        let fernet = material
            .fernet()
            .ok_or(KeyStoreError::WrongPurpose(sealed.key_id()))?;
        fernet
            .decrypt_stored(sealed.ciphertext())
            .map(Plaintext::into_secret)
            .map_err(|_| KeyStoreError::Unseal)
    }

    async fn shred(&self, owner: KeyOwner) -> Result<(), KeyStoreError> {
        for record in self.owned(owner).await? {
            let destroyed = matches!(record.info.status, KeyStatus::Destroyed { .. })
                && record.material.is_none();
            if record.info.purpose == KeyPurpose::DataEncryption && !destroyed {
                self.destroy(record.info.key_id).await?;
            }
        }
        Ok(())
    }

    async fn export_private_key(&self, key_id: KeyId) -> Result<SecretString, KeyStoreError> {
        let record = self.load(key_id).await?;
        policy::check_export(&record.info)?;
        self.material(&record)?
            .export(record.info.purpose)
            .map_err(CryptoError::into_backend)
    }
}
