//! The in-memory key store.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use secrecy::{SecretSlice, SecretString};
use security_core::{
    Clock, IdGenerator, KeyId, KeyInfo, KeyOwner, KeyPurpose, KeySpec, KeyStatus, KeyStore,
    KeyStoreError, SealedSecret,
};

use super::material::Material;
use super::policy;
use crate::error::CryptoError;
use crate::fernet::Plaintext;
use crate::random::{SystemClock, UuidV7Ids};

struct Entry {
    info: KeyInfo,
    /// `None` once destroyed: the material was dropped (and zeroized).
    material: Option<Material>,
}

#[derive(Default)]
struct State {
    keys: HashMap<KeyId, Entry>,
    by_owner: HashMap<KeyOwner, Vec<KeyId>>,
}

impl State {
    fn entry(&self, key_id: KeyId) -> Result<&Entry, KeyStoreError> {
        self.keys
            .get(&key_id)
            .ok_or(KeyStoreError::NotFound(key_id))
    }

    fn entry_mut(&mut self, key_id: KeyId) -> Result<&mut Entry, KeyStoreError> {
        self.keys
            .get_mut(&key_id)
            .ok_or(KeyStoreError::NotFound(key_id))
    }

    fn insert(&mut self, info: KeyInfo, material: Material) -> Result<(), KeyStoreError> {
        let key_id = info.key_id;
        if self.keys.contains_key(&key_id) {
            return Err(KeyStoreError::Backend(
                "duplicate key id from the id generator".into(),
            ));
        }
        self.by_owner.entry(info.owner).or_default().push(key_id);
        self.keys.insert(
            key_id,
            Entry {
                info,
                material: Some(material),
            },
        );
        Ok(())
    }

    fn owned(&self, owner: KeyOwner) -> impl Iterator<Item = &Entry> {
        self.by_owner
            .get(&owner)
            .into_iter()
            .flatten()
            .filter_map(|id| self.keys.get(id))
    }
}

fn material(entry: &Entry) -> Result<&Material, KeyStoreError> {
    entry
        .material
        .as_ref()
        .ok_or(KeyStoreError::Destroyed(entry.info.key_id))
}

/// A [`KeyStore`] that keeps keys in process memory: for tests, examples
/// and single-process deployments that may lose their keys on restart.
///
/// Private material lives in zeroizing buffers and is dropped (wiped) when
/// a key is destroyed. Everything else behaves exactly like the
/// [`EnvelopeKeyStore`](crate::EnvelopeKeyStore): both are checked by the
/// same conformance suite.
pub struct MemoryKeyStore {
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    state: RwLock<State>,
}

impl MemoryKeyStore {
    /// A store on the system clock with UUID v7 key ids.
    pub fn new() -> Self {
        Self::with_clock_and_ids(Arc::new(SystemClock), Arc::new(UuidV7Ids))
    }

    /// A store on the given clock and id generator (tests use a
    /// [`ManualClock`](security_core::ManualClock)).
    pub fn with_clock_and_ids(clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        Self {
            clock,
            ids,
            state: RwLock::new(State::default()),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn new_key(&self, spec: &KeySpec) -> Result<(KeyInfo, Material), KeyStoreError> {
        let material = Material::generate(spec.purpose.default_algorithm())
            .map_err(CryptoError::into_backend)?;
        let public_key = material
            .public_key(spec.purpose)
            .map_err(CryptoError::into_backend)?;
        let info = policy::new_info(
            KeyId::from_uuid(self.ids.new_id()),
            spec,
            public_key,
            self.clock.now(),
        );
        Ok((info, material))
    }
}

impl Default for MemoryKeyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryKeyStore")
            .field("keys", &self.read().keys.len())
            .finish_non_exhaustive()
    }
}

fn seal_with(
    entry: &Entry,
    plaintext: &[u8],
    store: &MemoryKeyStore,
) -> Result<SealedSecret, KeyStoreError> {
    let fernet = material(entry)?
        .fernet()
        .ok_or(KeyStoreError::WrongPurpose(entry.info.key_id))?;
    let token = fernet
        .encrypt_at(plaintext, store.clock.now())
        .map_err(CryptoError::into_backend)?;
    Ok(SealedSecret::new(entry.info.key_id, token))
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn create_key(&self, spec: KeySpec) -> Result<KeyInfo, KeyStoreError> {
        let (info, material) = self.new_key(&spec)?;
        self.write().insert(info.clone(), material)?;
        Ok(info)
    }

    async fn key(&self, key_id: KeyId) -> Result<KeyInfo, KeyStoreError> {
        Ok(self.read().entry(key_id)?.info.clone())
    }

    async fn list_keys(&self, owner: KeyOwner) -> Result<Vec<KeyInfo>, KeyStoreError> {
        let mut infos: Vec<KeyInfo> = self
            .read()
            .owned(owner)
            .map(|entry| entry.info.clone())
            .collect();
        policy::sort_oldest_first(&mut infos);
        Ok(infos)
    }

    async fn rotate_key(&self, key_id: KeyId) -> Result<KeyInfo, KeyStoreError> {
        let now = self.clock.now();
        let mut state = self.write();
        let current = state.entry(key_id)?.info.clone();
        policy::check_rotate(&current)?;
        let (successor, material) = self.new_key(&policy::successor_spec(&current, now))?;
        state.insert(successor.clone(), material)?;
        state.entry_mut(key_id)?.info.status = KeyStatus::Rotated {
            successor: successor.key_id,
            at: now,
        };
        Ok(successor)
    }

    async fn revoke_key(&self, key_id: KeyId) -> Result<KeyInfo, KeyStoreError> {
        let now = self.clock.now();
        let mut state = self.write();
        let entry = state.entry_mut(key_id)?;
        if let Some(status) = policy::revoked(&entry.info, now)? {
            entry.info.status = status;
        }
        Ok(entry.info.clone())
    }

    async fn destroy_key(&self, key_id: KeyId) -> Result<(), KeyStoreError> {
        let now = self.clock.now();
        let mut state = self.write();
        let entry = state.entry_mut(key_id)?;
        if !matches!(entry.info.status, KeyStatus::Destroyed { .. }) {
            entry.info.status = KeyStatus::Destroyed { at: now };
        }
        entry.material = None;
        Ok(())
    }

    async fn sign(&self, key_id: KeyId, message: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        let state = self.read();
        let entry = state.entry(key_id)?;
        policy::check_sign(&entry.info, self.clock.now())?;
        material(entry)?
            .sign(message)
            .ok_or(KeyStoreError::WrongPurpose(key_id))
    }

    async fn verify(
        &self,
        key_id: KeyId,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, KeyStoreError> {
        let state = self.read();
        let entry = state.entry(key_id)?;
        policy::check_verify(&entry.info)?;
        material(entry)?
            .verify(message, signature)
            .ok_or(KeyStoreError::WrongPurpose(key_id))
    }

    async fn seal(&self, owner: KeyOwner, plaintext: &[u8]) -> Result<SealedSecret, KeyStoreError> {
        let now = self.clock.now();
        {
            let state = self.read();
            let newest = state
                .owned(owner)
                .filter(|entry| policy::can_seal(&entry.info, now))
                .last();
            if let Some(entry) = newest {
                return seal_with(entry, plaintext, self);
            }
        }
        let mut state = self.write();
        // Another task may have created the data key meanwhile.
        let existing = state
            .owned(owner)
            .filter(|entry| policy::can_seal(&entry.info, now))
            .last()
            .map(|entry| entry.info.key_id);
        let key_id = if let Some(key_id) = existing {
            key_id
        } else {
            let (info, material) =
                self.new_key(&KeySpec::new(owner, KeyPurpose::DataEncryption))?;
            let key_id = info.key_id;
            state.insert(info, material)?;
            key_id
        };
        seal_with(state.entry(key_id)?, plaintext, self)
    }

    async fn unseal(&self, sealed: &SealedSecret) -> Result<SecretSlice<u8>, KeyStoreError> {
        let state = self.read();
        let entry = state.entry(sealed.key_id())?;
        policy::check_unseal(&entry.info)?;
        let fernet = material(entry)?
            .fernet()
            .ok_or(KeyStoreError::WrongPurpose(sealed.key_id()))?;
        fernet
            .decrypt_stored(sealed.ciphertext())
            .map(Plaintext::into_secret)
            .map_err(|_| KeyStoreError::Unseal)
    }

    async fn shred(&self, owner: KeyOwner) -> Result<(), KeyStoreError> {
        let now = self.clock.now();
        let mut state = self.write();
        let ids: Vec<KeyId> = state.by_owner.get(&owner).cloned().unwrap_or_default();
        for key_id in ids {
            let entry = state.entry_mut(key_id)?;
            if entry.info.purpose == KeyPurpose::DataEncryption {
                if !matches!(entry.info.status, KeyStatus::Destroyed { .. }) {
                    entry.info.status = KeyStatus::Destroyed { at: now };
                }
                entry.material = None;
            }
        }
        Ok(())
    }

    async fn export_private_key(&self, key_id: KeyId) -> Result<SecretString, KeyStoreError> {
        let state = self.read();
        let entry = state.entry(key_id)?;
        policy::check_export(&entry.info)?;
        material(entry)?
            .export(entry.info.purpose)
            .map_err(CryptoError::into_backend)
    }
}
