//! The Account: a tenant, the isolation boundary. Signed by the operator.
//!
//! The account also keeps the roster of its users (`UserAdded`), so that
//! `max_users` and username uniqueness are enforced by the account stream's
//! optimistic concurrency: two concurrent user creations cannot both take
//! the last slot or the same name.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{Aggregate, CommandContext};
use crate::error::{DomainError, validate_name};
use crate::ids::{AccountId, KeyId, OperatorId, UserId};
use crate::impl_domain_event;
use crate::keys::PublicKey;
use crate::limits;
use crate::permissions::{AccountLimits, Permissions, ResourceLimits};
use crate::snapshot::SnapshotCodec;
use crate::username::{fold_username, validate_username};

/// The status of an account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AccountStatus {
    /// Authenticates its users and accepts new ones.
    #[default]
    Active,
    /// Authenticates nobody and accepts no new users until reactivated.
    Suspended {
        /// Why.
        reason: String,
        /// Since when.
        since: DateTime<Utc>,
    },
    /// Past its expiry: authenticates nobody.
    Expired,
}

/// The template a scoped signing key imposes on the users it signs (NATS
/// `user_scope`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserScope {
    /// A role name for the scope.
    pub role: String,
    /// Permissions every user signed by the key gets.
    pub permissions: Permissions,
    /// Limits every user signed by the key gets.
    pub limits: ResourceLimits,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// A signing key of an account (signs user JWTs instead of the identity key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSigningKey {
    /// The key's id in the key store.
    pub key_id: KeyId,
    /// The public half.
    pub public_key: PublicKey,
    /// A scope, if the key only signs users with a fixed template.
    pub scope: Option<UserScope>,
    /// When it was added.
    pub added_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The claims the operator signs for an account, as recorded at creation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountClaims {
    /// The account's identity public key (NATS `A…` nkey), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKey>,
    /// Its limits.
    pub limits: AccountLimits,
    /// Permissions every user of the account inherits.
    #[serde(default)]
    pub default_permissions: Permissions,
    /// When the account expires (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Free-form metadata (e.g. `organization_id`).
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
}

/// Commands of an account.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountCommand {
    /// Creates the account.
    CreateAccount {
        /// The new account's id (also its tenant id).
        account_id: AccountId,
        /// Its name.
        name: String,
        /// The operator that signs it.
        operator_id: OperatorId,
        /// Limits, default permissions, expiry, metadata, identity key.
        claims: AccountClaims,
    },
    /// Replaces the limits.
    UpdateAccountLimits {
        /// The new limits.
        new_limits: AccountLimits,
    },
    /// Suspends the account.
    SuspendAccount {
        /// Why.
        reason: String,
    },
    /// Lifts a suspension.
    ReactivateAccount,
    /// Marks the account expired.
    ExpireAccount,
    /// Replaces the permissions every user inherits.
    UpdateDefaultPermissions {
        /// The new permissions.
        permissions: Permissions,
    },
    /// Takes a user into the roster (checks status, `max_users`, username).
    AddUser {
        /// The user's id.
        user_id: UserId,
        /// Its username, unique in the account (case-insensitively).
        username: String,
    },
    /// Adds a signing key for user JWTs.
    AddSigningKey {
        /// The key's id in the key store.
        key_id: KeyId,
        /// Its public half.
        public_key: PublicKey,
        /// A scope, if the key only signs users with a fixed template.
        scope: Option<UserScope>,
    },
    /// Revokes a signing key.
    RevokeSigningKey {
        /// The key.
        key_id: KeyId,
    },
}

/// Events of an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names, reason = "the domain names these events")]
pub enum AccountEvent {
    /// The account was created.
    AccountCreated {
        /// Its id.
        account_id: AccountId,
        /// Its name.
        name: String,
        /// The operator that signs it.
        operator_id: OperatorId,
        /// What the operator signs for it.
        jwt_claims: AccountClaims,
        /// When.
        created_at: DateTime<Utc>,
    },
    /// The limits changed.
    AccountLimitsUpdated {
        /// The account.
        account_id: AccountId,
        /// Before.
        old_limits: AccountLimits,
        /// After.
        new_limits: AccountLimits,
    },
    /// The account was suspended.
    AccountSuspended {
        /// The account.
        account_id: AccountId,
        /// Why.
        reason: String,
        /// When.
        suspended_at: DateTime<Utc>,
    },
    /// A suspension was lifted.
    AccountReactivated {
        /// The account.
        account_id: AccountId,
        /// When.
        reactivated_at: DateTime<Utc>,
    },
    /// The account expired.
    AccountExpired {
        /// The account.
        account_id: AccountId,
        /// When.
        expired_at: DateTime<Utc>,
    },
    /// The inherited permissions changed.
    DefaultPermissionsUpdated {
        /// The account.
        account_id: AccountId,
        /// Before.
        old_permissions: Permissions,
        /// After.
        new_permissions: Permissions,
        /// When.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        updated_at: Option<DateTime<Utc>>,
    },
    /// A user joined the roster.
    UserAdded {
        /// The account.
        account_id: AccountId,
        /// The user.
        user_id: UserId,
        /// Its username.
        username: String,
        /// When.
        added_at: DateTime<Utc>,
    },
    /// A signing key was added.
    AccountSigningKeyAdded {
        /// The account.
        account_id: AccountId,
        /// The key.
        key_id: KeyId,
        /// Its public half.
        public_key: PublicKey,
        /// Its scope.
        scope: Option<UserScope>,
        /// When.
        added_at: DateTime<Utc>,
    },
    /// A signing key was revoked.
    AccountSigningKeyRevoked {
        /// The account.
        account_id: AccountId,
        /// The key.
        key_id: KeyId,
        /// When.
        revoked_at: DateTime<Utc>,
    },
}

impl_domain_event!(
    AccountEvent,
    version = 1,
    types = [
        AccountCreated,
        AccountLimitsUpdated,
        AccountSuspended,
        AccountReactivated,
        AccountExpired,
        DefaultPermissionsUpdated,
        UserAdded,
        AccountSigningKeyAdded,
        AccountSigningKeyRevoked,
    ]
);

/// The account's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Its id (`None` before creation).
    pub id: Option<AccountId>,
    /// Its name.
    pub name: String,
    /// The operator that signs it.
    pub operator_id: Option<OperatorId>,
    /// Its identity public key.
    pub public_key: Option<PublicKey>,
    /// Its limits.
    pub limits: AccountLimits,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, Value>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Active, suspended or expired.
    pub status: AccountStatus,
    /// Permissions every user inherits.
    pub default_permissions: Permissions,
    /// Signing keys for user JWTs.
    pub signing_keys: Vec<AccountSigningKey>,
    /// The roster: case-folded username to user.
    pub users: BTreeMap<String, UserId>,
    /// When the default permissions last lost something (see
    /// [`Permissions::covers`]): every user's credentials issued before
    /// then grant too much.
    pub defaults_narrowed_at: Option<DateTime<Utc>>,
}

impl Account {
    /// Whether the account authenticates users and accepts new ones at `now`.
    pub fn check_active(&self, now: DateTime<Utc>) -> Result<(), DomainError> {
        match self.status {
            AccountStatus::Suspended { .. } => Err(DomainError::AccountSuspended),
            AccountStatus::Expired => Err(DomainError::AccountExpired),
            AccountStatus::Active if self.expires_at.is_some_and(|e| now >= e) => {
                Err(DomainError::AccountExpired)
            }
            AccountStatus::Active => Ok(()),
        }
    }

    /// The user with this username (case-insensitively).
    pub fn user_by_name(&self, username: &str) -> Option<UserId> {
        self.users.get(&fold_username(username)).copied()
    }

    /// How many users the account holds.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    fn require_id(&self) -> Result<AccountId, DomainError> {
        self.id.ok_or(DomainError::NotFound { kind: "account" })
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = DomainError;
    // An account's stream grows with every user (the roster). The roster
    // is keyed by folded username: a change of the folding changes how
    // events fold, and so must bump this version. Version 2: the PRECIS
    // and confusable-skeleton key; the defaults' narrowing instant.
    const SNAPSHOT: Option<SnapshotCodec<Self>> = Some(SnapshotCodec::json(2));

    fn handle(
        &self,
        command: &AccountCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<AccountEvent>, DomainError> {
        if let AccountCommand::CreateAccount {
            account_id,
            name,
            operator_id,
            claims,
        } = command
        {
            if self.id.is_some() {
                return Err(DomainError::AlreadyExists { kind: "account" });
            }
            validate_name("name", name)?;
            limits::check_metadata("metadata", &claims.metadata)?;
            limits::check_permissions("default_permissions", &claims.default_permissions)?;
            limits::check_permissions("limits", &claims.limits)?;
            limits::check_secret("public_key", &claims.public_key)?;
            if claims.expires_at.is_some_and(|e| e <= ctx.now) {
                return Err(DomainError::invalid("expires_at", "must be in the future"));
            }
            return Ok(vec![AccountEvent::AccountCreated {
                account_id: *account_id,
                name: name.clone(),
                operator_id: *operator_id,
                jwt_claims: claims.clone(),
                created_at: ctx.now,
            }]);
        }
        let account_id = self.require_id()?;
        match command {
            AccountCommand::CreateAccount { .. } => {
                Err(DomainError::AlreadyExists { kind: "account" })
            }
            AccountCommand::UpdateAccountLimits { new_limits } => {
                limits::check_permissions("new_limits", new_limits)?;
                if *new_limits == self.limits {
                    return Ok(Vec::new());
                }
                Ok(vec![AccountEvent::AccountLimitsUpdated {
                    account_id,
                    old_limits: self.limits.clone(),
                    new_limits: new_limits.clone(),
                }])
            }
            AccountCommand::SuspendAccount { reason } => {
                validate_name("reason", reason)?;
                match self.status {
                    AccountStatus::Suspended { .. } => Err(DomainError::AccountSuspended),
                    AccountStatus::Expired => Err(DomainError::AccountExpired),
                    AccountStatus::Active => Ok(vec![AccountEvent::AccountSuspended {
                        account_id,
                        reason: reason.clone(),
                        suspended_at: ctx.now,
                    }]),
                }
            }
            AccountCommand::ReactivateAccount => match self.status {
                AccountStatus::Suspended { .. }
                    if self.expires_at.is_some_and(|e| ctx.now >= e) =>
                {
                    Err(DomainError::AccountExpired)
                }
                AccountStatus::Suspended { .. } => Ok(vec![AccountEvent::AccountReactivated {
                    account_id,
                    reactivated_at: ctx.now,
                }]),
                AccountStatus::Expired => Err(DomainError::AccountExpired),
                AccountStatus::Active => Err(DomainError::AccountNotSuspended),
            },
            AccountCommand::ExpireAccount => match self.status {
                AccountStatus::Expired => Ok(Vec::new()),
                _ => Ok(vec![AccountEvent::AccountExpired {
                    account_id,
                    expired_at: ctx.now,
                }]),
            },
            AccountCommand::UpdateDefaultPermissions { permissions } => {
                limits::check_permissions("permissions", permissions)?;
                if *permissions == self.default_permissions {
                    return Ok(Vec::new());
                }
                Ok(vec![AccountEvent::DefaultPermissionsUpdated {
                    account_id,
                    old_permissions: self.default_permissions.clone(),
                    new_permissions: permissions.clone(),
                    updated_at: Some(ctx.now),
                }])
            }
            AccountCommand::AddUser { user_id, username } => {
                self.check_active(ctx.now)?;
                validate_username(username)?;
                if self.users.values().any(|u| u == user_id) {
                    return Err(DomainError::AlreadyExists { kind: "user" });
                }
                if self.users.contains_key(&fold_username(username)) {
                    return Err(DomainError::UsernameTaken);
                }
                if let Some(limit) = self.limits.max_users
                    && self.users.len() >= limit as usize
                {
                    return Err(DomainError::MaxUsersReached { limit });
                }
                Ok(vec![AccountEvent::UserAdded {
                    account_id,
                    user_id: *user_id,
                    username: username.clone(),
                    added_at: ctx.now,
                }])
            }
            AccountCommand::AddSigningKey {
                key_id,
                public_key,
                scope,
            } => {
                limits::check_secret("public_key", public_key)?;
                limits::check_permissions("scope", scope)?;
                match self.signing_keys.iter().find(|k| k.key_id == *key_id) {
                    Some(k) if k.revoked_at.is_some() => {
                        return Err(DomainError::KeyRevoked(*key_id));
                    }
                    Some(_) => return Err(DomainError::DuplicateKey(*key_id)),
                    None => {}
                }
                Ok(vec![AccountEvent::AccountSigningKeyAdded {
                    account_id,
                    key_id: *key_id,
                    public_key: public_key.clone(),
                    scope: scope.clone(),
                    added_at: ctx.now,
                }])
            }
            AccountCommand::RevokeSigningKey { key_id } => {
                let key = self
                    .signing_keys
                    .iter()
                    .find(|k| k.key_id == *key_id)
                    .ok_or(DomainError::KeyNotFound(*key_id))?;
                if key.revoked_at.is_some() {
                    return Err(DomainError::KeyRevoked(*key_id));
                }
                Ok(vec![AccountEvent::AccountSigningKeyRevoked {
                    account_id,
                    key_id: *key_id,
                    revoked_at: ctx.now,
                }])
            }
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::AccountCreated {
                account_id,
                name,
                operator_id,
                jwt_claims,
                created_at,
            } => {
                self.id = Some(*account_id);
                self.name.clone_from(name);
                self.operator_id = Some(*operator_id);
                self.public_key.clone_from(&jwt_claims.public_key);
                self.limits = jwt_claims.limits.clone();
                self.default_permissions = jwt_claims.default_permissions.clone();
                self.expires_at = jwt_claims.expires_at;
                self.metadata = jwt_claims.metadata.clone();
                self.created_at = Some(*created_at);
                self.status = AccountStatus::Active;
            }
            AccountEvent::AccountLimitsUpdated { new_limits, .. } => {
                self.limits = new_limits.clone();
            }
            AccountEvent::AccountSuspended {
                reason,
                suspended_at,
                ..
            } => {
                self.status = AccountStatus::Suspended {
                    reason: reason.clone(),
                    since: *suspended_at,
                };
            }
            AccountEvent::AccountReactivated { .. } => self.status = AccountStatus::Active,
            AccountEvent::AccountExpired { .. } => self.status = AccountStatus::Expired,
            AccountEvent::DefaultPermissionsUpdated {
                new_permissions,
                updated_at,
                ..
            } => {
                if !new_permissions.covers(&self.default_permissions) {
                    self.defaults_narrowed_at = self.defaults_narrowed_at.max(*updated_at);
                }
                self.default_permissions = new_permissions.clone();
            }
            AccountEvent::UserAdded {
                user_id, username, ..
            } => {
                self.users.insert(fold_username(username), *user_id);
            }
            AccountEvent::AccountSigningKeyAdded {
                key_id,
                public_key,
                scope,
                added_at,
                ..
            } => {
                self.signing_keys.push(AccountSigningKey {
                    key_id: *key_id,
                    public_key: public_key.clone(),
                    scope: scope.clone(),
                    added_at: *added_at,
                    revoked_at: None,
                });
            }
            AccountEvent::AccountSigningKeyRevoked {
                key_id, revoked_at, ..
            } => {
                if let Some(key) = self.signing_keys.iter_mut().find(|k| k.key_id == *key_id) {
                    key.revoked_at = Some(*revoked_at);
                }
            }
        }
    }
}
