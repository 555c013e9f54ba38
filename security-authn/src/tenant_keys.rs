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
    Aggregate, Clock, CommandContext, CommandError, KeyId, KeyInfo, KeyOwner, KeyPurpose, KeySpec,
    KeyStatus, KeyStore, KeyStoreError, Repository, RetryPolicy, TenantId, impl_domain_event,
};

use crate::error::AuthnError;

/// The aggregate type of keyring streams.
pub const TENANT_KEYRING: &str = "tenant_keyring";

/// How many times a first key is looked for again after the keyring moved
/// under it (a key retired meanwhile).
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

/// A tenant's keyring: its active key for each purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantKeyring {
    /// The active key of each purpose.
    pub active: HashMap<KeyPurpose, KeyId>,
}

/// Commands of a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringCommand {
    /// Makes a key the active one of its purpose; refused while another is.
    Activate {
        /// What it is for.
        purpose: KeyPurpose,
        /// The key.
        key_id: KeyId,
    },
    /// Retires a key (and, when `successor` is given, activates that one).
    Retire {
        /// What it was for.
        purpose: KeyPurpose,
        /// The key.
        key_id: KeyId,
        /// Whether it was revoked.
        revoked: bool,
        /// The key that replaces it.
        successor: Option<KeyId>,
    },
}

/// Why a keyring refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The purpose already has an active key (another replica made it
    /// first): use that one.
    #[error("the tenant already has an active key for this purpose")]
    AlreadyActive(KeyId),
    /// The key is not the purpose's active one (another replica rotated
    /// it first): look the active one up again.
    #[error("the key is not the active one")]
    NotActive,
}

impl From<KeyringError> for AuthnError {
    fn from(_: KeyringError) -> Self {
        Self::Conflict
    }
}

impl Aggregate for TenantKeyring {
    const TYPE: &'static str = TENANT_KEYRING;
    type Command = KeyringCommand;
    type Event = KeyringEvent;
    type Error = KeyringError;

    fn handle(
        &self,
        command: &KeyringCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<KeyringEvent>, KeyringError> {
        match command {
            KeyringCommand::Activate { purpose, key_id } => match self.active.get(purpose) {
                Some(active) if active == key_id => Ok(Vec::new()),
                Some(active) => Err(KeyringError::AlreadyActive(*active)),
                None => Ok(vec![KeyringEvent::TenantKeyActivated {
                    purpose: *purpose,
                    key_id: *key_id,
                    activated_at: ctx.now,
                }]),
            },
            KeyringCommand::Retire {
                purpose,
                key_id,
                revoked,
                successor,
            } => {
                // A revocation is recorded whatever the keyring says (every
                // replica must refuse the key); a rotation only of the
                // active key.
                if !revoked && self.active.get(purpose) != Some(key_id) {
                    return Err(KeyringError::NotActive);
                }
                let mut events = vec![KeyringEvent::TenantKeyRetired {
                    purpose: *purpose,
                    key_id: *key_id,
                    revoked: *revoked,
                    retired_at: ctx.now,
                }];
                if let Some(next) = successor {
                    events.push(KeyringEvent::TenantKeyActivated {
                        purpose: *purpose,
                        key_id: *next,
                        activated_at: ctx.now,
                    });
                }
                Ok(events)
            }
        }
    }

    fn apply(&mut self, event: &KeyringEvent) {
        match event {
            KeyringEvent::TenantKeyActivated {
                purpose, key_id, ..
            } => {
                self.active.insert(*purpose, *key_id);
            }
            KeyringEvent::TenantKeyRetired {
                purpose, key_id, ..
            } => {
                if self.active.get(purpose) == Some(key_id) {
                    self.active.remove(purpose);
                }
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct TenantKeys {
    store: Arc<dyn KeyStore>,
    repo: Repository,
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
    pub(crate) fn new(store: Arc<dyn KeyStore>, repo: Repository, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            repo,
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

    async fn keyring(&self, tenant: TenantId) -> Result<TenantKeyring, AuthnError> {
        Ok(self
            .repo
            .load::<TenantKeyring>(tenant, tenant.as_uuid())
            .await?
            .state)
    }

    /// Runs a keyring command (retried after conflicts: the keyring's rule
    /// is checked again against what the other replica wrote).
    async fn run(
        &self,
        tenant: TenantId,
        command: KeyringCommand,
    ) -> Result<Result<(), KeyringError>, AuthnError> {
        let ctx = CommandContext::new(tenant, self.clock.now())
            .with_actor(security_core::Actor::system());
        match self
            .repo
            .execute_with::<TenantKeyring>(
                tenant.as_uuid(),
                &command,
                &ctx,
                &RetryPolicy::persistent(),
            )
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(CommandError::Rejected(refusal)) => Ok(Err(refusal)),
            Err(e) => Err(e.into()),
        }
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
                let revoked = matches!(
                    info.status,
                    KeyStatus::Revoked { .. } | KeyStatus::Destroyed { .. }
                );
                let retire = KeyringCommand::Retire {
                    purpose,
                    key_id: *key_id,
                    revoked,
                    successor: None,
                };
                let _ = self.run(tenant, retire).await?;
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
                None => (
                    self.store.create_key(KeySpec::new(owner, purpose)).await?,
                    true,
                ),
            };
            let activate = KeyringCommand::Activate {
                purpose,
                key_id: info.key_id,
            };
            match self.run(tenant, activate).await? {
                Ok(()) => {
                    self.remember(tenant, purpose, &info);
                    return Ok(info);
                }
                // Another replica activated a key first: ours signed
                // nothing, so it goes; theirs is used.
                Err(KeyringError::AlreadyActive(winner)) => {
                    if created && winner != info.key_id {
                        self.store.revoke_key(info.key_id).await?;
                    }
                }
                Err(KeyringError::NotActive) => {}
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
        let current = self.active(tenant, purpose).await?;
        let next = self.store.rotate_key(current.key_id).await?;
        self.forget(tenant, purpose);
        let rotate = KeyringCommand::Retire {
            purpose,
            key_id: current.key_id,
            revoked: false,
            successor: Some(next.key_id),
        };
        self.run(tenant, rotate).await??;
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
        self.forget(tenant, purpose);
        let retire = KeyringCommand::Retire {
            purpose,
            key_id,
            revoked: true,
            successor: None,
        };
        self.run(tenant, retire).await??;
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
