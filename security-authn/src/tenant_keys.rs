//! Each tenant's keys in the key store: the `TokenSigning` key (EdDSA
//! access tokens) and the `LookupHashing` key (refresh tokens, API keys,
//! backup codes).
//!
//! Which key is a tenant's active one for a purpose is decided by the
//! tenant's keyring stream, `(tenant, "tenant_keyring", tenant)`, through
//! the event store's optimistic concurrency: however many replicas create
//! a tenant's first key at once, exactly one `TenantKeyActivated` lands;
//! the others find it, revoke the key they made (it signed nothing) and
//! use the winner's. Retiring a key (rotation, revocation) is an event too,
//! so every replica's validator learns that a key was revoked.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use security_core::{
    Clock, CommandContext, ExpectedVersion, KeyId, KeyInfo, KeyOwner, KeyPurpose, KeySpec, KeyStatus,
    KeyStore, KeyStoreError, StreamId, StreamQuery, TenantId, impl_domain_event,
};

use crate::error::AuthnError;
use crate::store::EventWriter;

/// The aggregate type of keyring streams.
pub const TENANT_KEYRING: &str = "tenant_keyring";

/// How many times a keyring change is tried again after another replica
/// changed the keyring first.
const KEYRING_ATTEMPTS: usize = 8;

/// Events of a tenant's keyring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyringEvent {
    /// A key became the tenant's active key for its purpose.
    TenantKeyActivated {
        /// What it is for.
        purpose: KeyPurpose,
        /// The key.
        key_id: KeyId,
        /// When.
        activated_at: DateTime<Utc>,
    },
    /// A key stopped being the active one (rotated out, or revoked).
    TenantKeyRetired {
        /// What it was for.
        purpose: KeyPurpose,
        /// The key.
        key_id: KeyId,
        /// Whether it was revoked (every token it signed is refused).
        revoked: bool,
        /// When.
        retired_at: DateTime<Utc>,
    },
}

impl_domain_event!(
    KeyringEvent,
    version = 1,
    types = [TenantKeyActivated, TenantKeyRetired]
);

/// The owner of a tenant's own keys.
pub(crate) fn tenant_owner(tenant: TenantId) -> KeyOwner {
    KeyOwner::new(tenant, tenant.as_uuid())
}

fn keyring_stream(tenant: TenantId) -> StreamId {
    StreamId::new(tenant, TENANT_KEYRING, tenant.as_uuid())
}

/// A keyring as its stream says, and the stream's version.
#[derive(Default)]
struct Keyring {
    active: HashMap<KeyPurpose, KeyId>,
    version: u64,
}

#[derive(Debug)]
pub(crate) struct TenantKeys {
    store: Arc<dyn KeyStore>,
    writer: EventWriter,
    clock: Arc<dyn Clock>,
    cache: RwLock<HashMap<(TenantId, KeyPurpose), KeyInfo>>,
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
    pub(crate) fn new(store: Arc<dyn KeyStore>, writer: EventWriter, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            writer,
            clock,
            cache: RwLock::new(HashMap::new()),
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

    async fn keyring(&self, tenant: TenantId) -> Result<Keyring, AuthnError> {
        let events = self
            .writer
            .store
            .read_stream(&keyring_stream(tenant), StreamQuery::all())
            .await?;
        let mut ring = Keyring::default();
        for stored in &events {
            match stored.decode::<KeyringEvent>().map_err(|e| AuthnError::Store(Box::new(e)))? {
                KeyringEvent::TenantKeyActivated {
                    purpose, key_id, ..
                } => {
                    ring.active.insert(purpose, key_id);
                }
                KeyringEvent::TenantKeyRetired {
                    purpose, key_id, ..
                } => {
                    if ring.active.get(&purpose) == Some(&key_id) {
                        ring.active.remove(&purpose);
                    }
                }
            }
            ring.version = stored.version;
        }
        Ok(ring)
    }

    /// Appends keyring events expecting `version`; `false` when another
    /// replica changed the keyring first.
    async fn append(
        &self,
        tenant: TenantId,
        version: u64,
        events: &[KeyringEvent],
    ) -> Result<bool, AuthnError> {
        let ctx = CommandContext::new(tenant, self.clock.now())
            .with_actor(security_core::Actor::service("security-authn"));
        let expected = if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        };
        let encoded = self.writer.encode(events, &ctx)?;
        Ok(self
            .writer
            .append(&keyring_stream(tenant), expected, encoded, &ctx)
            .await?
            .is_some())
    }

    fn remember(&self, tenant: TenantId, purpose: KeyPurpose, info: &KeyInfo) {
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((tenant, purpose), info.clone());
    }

    /// The tenant's active key of `purpose`, created if it has none.
    pub(crate) async fn active(
        &self,
        tenant: TenantId,
        purpose: KeyPurpose,
    ) -> Result<KeyInfo, AuthnError> {
        if let Some(info) = self.cached(tenant, purpose) {
            return Ok(info);
        }
        let now = self.clock.now();
        let owner = tenant_owner(tenant);
        for _ in 0..KEYRING_ATTEMPTS {
            let ring = self.keyring(tenant).await?;
            if let Some(key_id) = ring.active.get(&purpose) {
                let info = self.store.key(*key_id).await?;
                if info.status == KeyStatus::Active {
                    self.remember(tenant, purpose, &info);
                    return Ok(info);
                }
                // Rotated or revoked in the key store directly: retire it.
                let retired = KeyringEvent::TenantKeyRetired {
                    purpose,
                    key_id: *key_id,
                    revoked: matches!(
                        info.status,
                        KeyStatus::Revoked { .. } | KeyStatus::Destroyed { .. }
                    ),
                    retired_at: now,
                };
                self.append(tenant, ring.version, &[retired]).await?;
                continue;
            }
            // None yet: adopt an active key made before keyrings existed,
            // or make one.
            let existing = self
                .store
                .list_keys(owner)
                .await?
                .into_iter()
                .rfind(|k| k.purpose == purpose && k.status == KeyStatus::Active);
            let (info, created) = match existing {
                Some(info) => (info, false),
                None => (self.store.create_key(KeySpec::new(owner, purpose)).await?, true),
            };
            let activated = KeyringEvent::TenantKeyActivated {
                purpose,
                key_id: info.key_id,
                activated_at: now,
            };
            if self.append(tenant, ring.version, &[activated]).await? {
                self.remember(tenant, purpose, &info);
                return Ok(info);
            }
            // Another replica changed the keyring first. Unless it made our
            // key the active one, ours signed nothing: revoke it.
            if created
                && self.keyring(tenant).await?.active.get(&purpose) != Some(&info.key_id)
            {
                self.store.revoke_key(info.key_id).await?;
            }
        }
        Err(AuthnError::Conflict)
    }

    /// Rotates the tenant's active key of `purpose`: the key store makes a
    /// successor, and the keyring records the change.
    pub(crate) async fn rotate(
        &self,
        tenant: TenantId,
        purpose: KeyPurpose,
    ) -> Result<KeyInfo, AuthnError> {
        let now = self.clock.now();
        let current = self.active(tenant, purpose).await?;
        let ring = self.keyring(tenant).await?;
        let next = self.store.rotate_key(current.key_id).await?;
        self.forget(tenant, purpose);
        let events = [
            KeyringEvent::TenantKeyRetired {
                purpose,
                key_id: current.key_id,
                revoked: false,
                retired_at: now,
            },
            KeyringEvent::TenantKeyActivated {
                purpose,
                key_id: next.key_id,
                activated_at: now,
            },
        ];
        if !self.append(tenant, ring.version, &events).await? {
            return Err(AuthnError::Conflict);
        }
        self.remember(tenant, purpose, &next);
        Ok(next)
    }

    /// Records that a key of the tenant was revoked (after the key store
    /// revoked it): every replica's validator refuses its tokens.
    pub(crate) async fn record_revoked(
        &self,
        tenant: TenantId,
        purpose: KeyPurpose,
        key_id: KeyId,
    ) -> Result<(), AuthnError> {
        let now = self.clock.now();
        self.forget(tenant, purpose);
        let ctx = CommandContext::new(tenant, now)
            .with_actor(security_core::Actor::service("security-authn"));
        let event = KeyringEvent::TenantKeyRetired {
            purpose,
            key_id,
            revoked: true,
            retired_at: now,
        };
        let encoded = self.writer.encode(&[event], &ctx)?;
        self.writer
            .append(&keyring_stream(tenant), ExpectedVersion::Any, encoded, &ctx)
            .await?
            .ok_or(AuthnError::Conflict)?;
        Ok(())
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
