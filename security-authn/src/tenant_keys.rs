//! Each tenant's keys in the key store: the `TokenSigning` key (EdDSA
//! access tokens) and the `LookupHashing` key (refresh tokens, API keys,
//! backup codes). Found or created on first use, then cached by id.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use security_core::{
    KeyId, KeyInfo, KeyOwner, KeyPurpose, KeySpec, KeyStatus, KeyStore, KeyStoreError, TenantId,
};

use crate::error::AuthnError;

/// The owner of a tenant's own keys.
pub(crate) fn tenant_owner(tenant: TenantId) -> KeyOwner {
    KeyOwner::new(tenant, tenant.as_uuid())
}

#[derive(Debug)]
pub(crate) struct TenantKeys {
    store: Arc<dyn KeyStore>,
    cache: RwLock<HashMap<(TenantId, KeyPurpose), KeyInfo>>,
    create: tokio::sync::Mutex<()>,
}

/// Whether the key store refused a key because it can no longer sign
/// (rotated, revoked, expired, destroyed): look for the current one.
pub(crate) fn is_stale(e: &KeyStoreError) -> bool {
    matches!(
        e,
        KeyStoreError::RotatedOut(_)
            | KeyStoreError::Revoked(_)
            | KeyStoreError::Expired(_)
            | KeyStoreError::Destroyed(_)
            | KeyStoreError::NotFound(_)
    )
}

impl TenantKeys {
    pub(crate) fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            store,
            cache: RwLock::new(HashMap::new()),
            create: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    fn cached(&self, tenant: TenantId, purpose: KeyPurpose) -> Option<KeyInfo> {
        self.cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(tenant, purpose))
            .cloned()
    }

    /// Forgets the cached key (after the store refused it).
    pub(crate) fn forget(&self, tenant: TenantId, purpose: KeyPurpose) {
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(tenant, purpose));
    }

    /// The tenant's newest active key of `purpose`, created if it has none.
    pub(crate) async fn active(
        &self,
        tenant: TenantId,
        purpose: KeyPurpose,
    ) -> Result<KeyInfo, AuthnError> {
        if let Some(info) = self.cached(tenant, purpose) {
            return Ok(info);
        }
        // One creator at a time, so two first logins do not make two keys.
        let _guard = self.create.lock().await;
        if let Some(info) = self.cached(tenant, purpose) {
            return Ok(info);
        }
        let owner = tenant_owner(tenant);
        let existing = self
            .store
            .list_keys(owner)
            .await?
            .into_iter()
            .rfind(|k| k.purpose == purpose && k.status == KeyStatus::Active);
        let info = match existing {
            Some(info) => info,
            None => self.store.create_key(KeySpec::new(owner, purpose)).await?,
        };
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((tenant, purpose), info.clone());
        Ok(info)
    }

    /// Signs with the tenant's active key of `purpose`, moving to a new
    /// key once if the cached one was rotated or revoked. `build` makes the
    /// message from the key's id (a JWT header names its key).
    pub(crate) async fn sign_with<M: AsRef<[u8]>>(
        &self,
        tenant: TenantId,
        purpose: KeyPurpose,
        build: impl Fn(&KeyInfo) -> Result<M, AuthnError>,
    ) -> Result<(KeyInfo, M, Vec<u8>), AuthnError> {
        let mut retried = false;
        loop {
            let info = self.active(tenant, purpose).await?;
            let message = build(&info)?;
            match self.store.sign(info.key_id, message.as_ref()).await {
                Ok(signature) => return Ok((info, message, signature)),
                Err(e) if is_stale(&e) && !retried => {
                    self.forget(tenant, purpose);
                    retried = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The keyed hash of a lookup token under the tenant's active
    /// `LookupHashing` key, and that key's id.
    pub(crate) async fn lookup_hash(
        &self,
        tenant: TenantId,
        message: &[u8],
    ) -> Result<(KeyId, Vec<u8>), AuthnError> {
        let (info, _, tag) = self
            .sign_with(tenant, KeyPurpose::LookupHashing, |_| Ok(message))
            .await?;
        Ok((info.key_id, tag))
    }

    /// The keyed hash of `message` under a given `LookupHashing` key, if
    /// that key still hashes (`None`: it was rotated out; compare with
    /// [`KeyStore::verify`] instead).
    pub(crate) async fn lookup_hash_with(
        &self,
        key_id: KeyId,
        message: &[u8],
    ) -> Result<Option<Vec<u8>>, AuthnError> {
        match self.store.sign(key_id, message).await {
            Ok(tag) => Ok(Some(tag)),
            Err(KeyStoreError::RotatedOut(_) | KeyStoreError::Expired(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
