//! The Operator: the root of trust of a deployment. It owns signing keys
//! (rotated, revoked) and signs accounts. Its stream lives in the system
//! tenant.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, CommandContext};
use crate::error::{DomainError, validate_name};
use crate::ids::{AccountId, KeyId, OperatorId};
use crate::impl_domain_event;
use crate::keys::PublicKey;
use crate::limits;

/// A signing key as the operator knows it: the public half and its life
/// cycle. The private half lives in the [`KeyStore`](crate::KeyStore).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// The key's id in the key store.
    pub key_id: KeyId,
    /// The public half.
    pub public_key: PublicKey,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it stops being valid (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl SigningKey {
    /// Whether the key may be trusted at `at`: not revoked, not expired.
    pub fn is_valid_at(&self, at: DateTime<Utc>) -> bool {
        self.revoked_at.is_none_or(|r| at < r) && self.expires_at.is_none_or(|e| at < e)
    }
}

/// A key to add: its id in the key store and its public half.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSigningKey {
    /// The key's id in the key store.
    pub key_id: KeyId,
    /// The public half.
    pub public_key: PublicKey,
    /// When it stops being valid (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
}

/// Commands of the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorCommand {
    /// Creates the operator with its first signing key.
    CreateOperator {
        /// The new operator's id.
        operator_id: OperatorId,
        /// Its name.
        name: String,
        /// Its first (identity) key.
        initial_key: NewSigningKey,
    },
    /// Makes a new key the active one; the old one stays valid until revoked.
    RotateSigningKey {
        /// The new key.
        new_key: NewSigningKey,
    },
    /// Revokes a key. Revoking the active key needs a successor.
    RevokeSigningKey {
        /// The key to revoke.
        key_id: KeyId,
        /// Why.
        reason: String,
        /// Becomes the active key (only when revoking the active one).
        successor: Option<NewSigningKey>,
    },
    /// Names the system account.
    SetSystemAccount {
        /// The account.
        account_id: AccountId,
    },
}

/// Events of the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names, reason = "the domain names these events")]
pub enum OperatorEvent {
    /// The operator was created.
    OperatorCreated {
        /// Its id.
        operator_id: OperatorId,
        /// Its name.
        name: String,
        /// The first key's id.
        initial_key_id: KeyId,
        /// The first key's public half.
        public_key: PublicKey,
        /// When the first key expires.
        #[serde(default)]
        key_expires_at: Option<DateTime<Utc>>,
        /// When.
        created_at: DateTime<Utc>,
    },
    /// A new key became the active one.
    SigningKeyRotated {
        /// The operator.
        operator_id: OperatorId,
        /// The key that was active.
        old_key_id: KeyId,
        /// The key now active.
        new_key_id: KeyId,
        /// Its public half.
        new_public_key: PublicKey,
        /// When it expires.
        #[serde(default)]
        expires_at: Option<DateTime<Utc>>,
        /// When.
        rotated_at: DateTime<Utc>,
    },
    /// A key was revoked; it is never valid again.
    SigningKeyRevoked {
        /// The operator.
        operator_id: OperatorId,
        /// The key.
        key_id: KeyId,
        /// Why.
        reason: String,
        /// When.
        revoked_at: DateTime<Utc>,
    },
    /// The system account was named.
    SystemAccountSet {
        /// The operator.
        operator_id: OperatorId,
        /// The account.
        account_id: AccountId,
    },
}

impl_domain_event!(
    OperatorEvent,
    version = 1,
    types = [
        OperatorCreated,
        SigningKeyRotated,
        SigningKeyRevoked,
        SystemAccountSet
    ]
);

/// The operator's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Operator {
    /// Its id (`None` before creation).
    pub id: Option<OperatorId>,
    /// Its name.
    pub name: String,
    /// Every key it ever had, in order.
    pub signing_keys: Vec<SigningKey>,
    /// The key that signs now.
    pub active_key_id: Option<KeyId>,
    /// The identity (first) key.
    pub identity_key_id: Option<KeyId>,
    /// The system account.
    pub system_account_id: Option<AccountId>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
}

impl Operator {
    /// A key by id.
    pub fn signing_key(&self, key_id: KeyId) -> Option<&SigningKey> {
        self.signing_keys.iter().find(|k| k.key_id == key_id)
    }

    /// The active key.
    pub fn active_key(&self) -> Option<&SigningKey> {
        self.active_key_id.and_then(|id| self.signing_key(id))
    }

    /// Whether a signature by `key_id` is to be trusted at `at`.
    pub fn is_key_trusted(&self, key_id: KeyId, at: DateTime<Utc>) -> bool {
        self.signing_key(key_id).is_some_and(|k| k.is_valid_at(at))
    }

    fn require_id(&self) -> Result<OperatorId, DomainError> {
        self.id.ok_or(DomainError::NotFound { kind: "operator" })
    }

    fn check_new_key(&self, key: &NewSigningKey) -> Result<(), DomainError> {
        limits::check_secret("public_key", &key.public_key)?;
        match self.signing_key(key.key_id) {
            Some(existing) if existing.revoked_at.is_some() => {
                Err(DomainError::KeyRevoked(key.key_id))
            }
            Some(_) => Err(DomainError::DuplicateKey(key.key_id)),
            None => Ok(()),
        }
    }
}

impl Aggregate for Operator {
    const TYPE: &'static str = "operator";
    type Command = OperatorCommand;
    type Event = OperatorEvent;
    type Error = DomainError;

    fn handle(
        &self,
        command: &OperatorCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<OperatorEvent>, DomainError> {
        match command {
            OperatorCommand::CreateOperator {
                operator_id,
                name,
                initial_key,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists { kind: "operator" });
                }
                validate_name("name", name)?;
                limits::check_secret("public_key", &initial_key.public_key)?;
                Ok(vec![OperatorEvent::OperatorCreated {
                    operator_id: *operator_id,
                    name: name.clone(),
                    initial_key_id: initial_key.key_id,
                    public_key: initial_key.public_key.clone(),
                    key_expires_at: initial_key.expires_at,
                    created_at: ctx.now,
                }])
            }
            OperatorCommand::RotateSigningKey { new_key } => {
                let operator_id = self.require_id()?;
                self.check_new_key(new_key)?;
                let old_key_id = self
                    .active_key_id
                    .ok_or(DomainError::InvalidState("operator has no active key"))?;
                Ok(vec![rotated(operator_id, old_key_id, new_key, ctx)])
            }
            OperatorCommand::RevokeSigningKey {
                key_id,
                reason,
                successor,
            } => {
                let operator_id = self.require_id()?;
                validate_name("reason", reason)?;
                let key = self
                    .signing_key(*key_id)
                    .ok_or(DomainError::KeyNotFound(*key_id))?;
                if key.revoked_at.is_some() {
                    return Err(DomainError::KeyRevoked(*key_id));
                }
                let mut events = Vec::with_capacity(2);
                let is_active = self.active_key_id == Some(*key_id);
                match (is_active, successor) {
                    (true, None) => return Err(DomainError::ActiveKeyNeedsSuccessor),
                    (false, Some(_)) => return Err(DomainError::UnexpectedSuccessor),
                    (true, Some(next)) => {
                        self.check_new_key(next)?;
                        events.push(rotated(operator_id, *key_id, next, ctx));
                    }
                    (false, None) => {}
                }
                events.push(OperatorEvent::SigningKeyRevoked {
                    operator_id,
                    key_id: *key_id,
                    reason: reason.clone(),
                    revoked_at: ctx.now,
                });
                Ok(events)
            }
            OperatorCommand::SetSystemAccount { account_id } => {
                let operator_id = self.require_id()?;
                if self.system_account_id == Some(*account_id) {
                    return Ok(Vec::new());
                }
                Ok(vec![OperatorEvent::SystemAccountSet {
                    operator_id,
                    account_id: *account_id,
                }])
            }
        }
    }

    fn apply(&mut self, event: &OperatorEvent) {
        match event {
            OperatorEvent::OperatorCreated {
                operator_id,
                name,
                initial_key_id,
                public_key,
                key_expires_at,
                created_at,
            } => {
                self.id = Some(*operator_id);
                self.name.clone_from(name);
                self.signing_keys.push(SigningKey {
                    key_id: *initial_key_id,
                    public_key: public_key.clone(),
                    created_at: *created_at,
                    expires_at: *key_expires_at,
                    revoked_at: None,
                });
                self.active_key_id = Some(*initial_key_id);
                self.identity_key_id = Some(*initial_key_id);
                self.created_at = Some(*created_at);
            }
            OperatorEvent::SigningKeyRotated {
                new_key_id,
                new_public_key,
                expires_at,
                rotated_at,
                ..
            } => {
                self.signing_keys.push(SigningKey {
                    key_id: *new_key_id,
                    public_key: new_public_key.clone(),
                    created_at: *rotated_at,
                    expires_at: *expires_at,
                    revoked_at: None,
                });
                self.active_key_id = Some(*new_key_id);
            }
            OperatorEvent::SigningKeyRevoked {
                key_id, revoked_at, ..
            } => {
                if let Some(key) = self.signing_keys.iter_mut().find(|k| k.key_id == *key_id) {
                    key.revoked_at = Some(*revoked_at);
                }
            }
            OperatorEvent::SystemAccountSet { account_id, .. } => {
                self.system_account_id = Some(*account_id);
            }
        }
    }
}

fn rotated(
    operator_id: OperatorId,
    old_key_id: KeyId,
    new_key: &NewSigningKey,
    ctx: &CommandContext,
) -> OperatorEvent {
    OperatorEvent::SigningKeyRotated {
        operator_id,
        old_key_id,
        new_key_id: new_key.key_id,
        new_public_key: new_key.public_key.clone(),
        expires_at: new_key.expires_at,
        rotated_at: ctx.now,
    }
}
