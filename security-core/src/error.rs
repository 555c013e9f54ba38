//! Errors of the domain: commands refused by an aggregate's rules.

use crate::ids::{KeyId, PolicyId};
use crate::limits::{LimitExceeded, MAX_NAME_CHARS, check_chars};
use crate::subject::SubjectError;

/// A command was refused by the rules of the domain. The caller's input or
/// the aggregate's state is the cause: retrying the same command will fail
/// the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The aggregate already exists: a create command ran twice. Use a new
    /// id, or an idempotency key to make the create safe to repeat.
    #[error("{kind} already exists")]
    AlreadyExists {
        /// What kind of aggregate.
        kind: &'static str,
    },
    /// The aggregate does not exist (no events in its stream).
    #[error("{kind} not found")]
    NotFound {
        /// What kind of aggregate.
        kind: &'static str,
    },
    /// A field failed validation; the message names the field and the rule.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The rule broken.
        reason: &'static str,
    },
    /// A field is larger or deeper than what the store keeps (see
    /// [`limits`](crate::limits)); the message names the field and the
    /// limit. Shrink the input; nothing was stored.
    #[error(transparent)]
    LimitExceeded(#[from] LimitExceeded),
    /// A subject pattern broke the NATS grammar.
    #[error("invalid subject pattern: {0}")]
    Subject(#[from] SubjectError),
    /// The account is suspended: it authenticates nobody and accepts no new
    /// users until reactivated.
    #[error("account is suspended")]
    AccountSuspended,
    /// The account has expired.
    #[error("account has expired")]
    AccountExpired,
    /// The account is not suspended, so it cannot be reactivated.
    #[error("account is not suspended")]
    AccountNotSuspended,
    /// The account already holds `max_users` users.
    #[error("account has reached its limit of {limit} users")]
    MaxUsersReached {
        /// The account's `max_users`.
        limit: u32,
    },
    /// The username is already taken in this account (case-insensitively).
    #[error("username is already taken in this account")]
    UsernameTaken,
    /// The user belongs to another account than the one named.
    #[error("user belongs to another account")]
    WrongAccount,
    /// The key id is already known to this aggregate.
    #[error("signing key {0} is already known")]
    DuplicateKey(KeyId),
    /// The key id is not known to this aggregate.
    #[error("signing key {0} not found")]
    KeyNotFound(KeyId),
    /// The key was revoked; a revoked key never becomes active again.
    #[error("signing key {0} is revoked")]
    KeyRevoked(KeyId),
    /// Revoking the active key needs a successor key in the same command.
    #[error("the active signing key cannot be revoked without a successor")]
    ActiveKeyNeedsSuccessor,
    /// A successor was given for a key that is not the active one.
    #[error("a successor is only accepted when revoking the active key")]
    UnexpectedSuccessor,
    /// The policy is already assigned to the user.
    #[error("policy {0} is already assigned")]
    PolicyAlreadyAssigned(PolicyId),
    /// The policy is not assigned to the user.
    #[error("policy {0} is not assigned")]
    PolicyNotAssigned(PolicyId),
    /// The policy does not exist in this tenant.
    #[error("policy {0} does not exist in this tenant")]
    PolicyNotInTenant(PolicyId),
    /// The role is already held by the user.
    #[error("role {0} is already assigned")]
    RoleAlreadyAssigned(String),
    /// The role is not held by the user.
    #[error("role {0} is not assigned")]
    RoleNotAssigned(String),
    /// The role is not built in and not defined in this tenant.
    #[error("role {0} is not defined in this tenant")]
    RoleNotDefined(String),
    /// A built-in role name cannot be redefined by a tenant.
    #[error("role name {0} is reserved for a built-in role")]
    RoleNameReserved(String),
    /// The user is locked.
    #[error("user is locked")]
    UserLocked,
    /// The user is not locked, so it cannot be unlocked.
    #[error("user is not locked")]
    UserNotLocked,
    /// The user has expired.
    #[error("user has expired")]
    UserExpired,
    /// The command is not valid in the aggregate's current state; the
    /// message says which state.
    #[error("not allowed now: {0}")]
    InvalidState(&'static str),
}

impl DomainError {
    pub(crate) fn invalid(field: &'static str, reason: &'static str) -> Self {
        Self::Invalid { field, reason }
    }
}

/// Checks a human-readable name: 1 to [`MAX_NAME_CHARS`] characters, no
/// control characters, no surrounding whitespace.
pub(crate) fn validate_name(field: &'static str, name: &str) -> Result<(), DomainError> {
    if name.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    check_chars(field, name, MAX_NAME_CHARS)?;
    if name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not hold control characters",
        ));
    }
    if name.trim() != name {
        return Err(DomainError::invalid(
            field,
            "must not start or end with whitespace",
        ));
    }
    Ok(())
}
