//! Typed identifiers.
//!
//! Every identifier is a UUID wrapped in its own type, so that a `UserId` can
//! never be passed where a `PolicyId` is expected. The core never creates
//! identifiers by itself (it draws no randomness): they come in through
//! commands, built by an [`IdGenerator`](crate::IdGenerator).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An identifier could not be parsed from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id: expected a UUID")]
pub struct ParseIdError {
    kind: &'static str,
}

impl ParseIdError {
    pub(crate) fn new(kind: &'static str) -> Self {
        Self { kind }
    }
}

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| ParseIdError { kind: $kind })
            }
        }
    };
}

typed_id!(
    /// A tenant: the id of the [`Account`](crate::Account) that is the isolation boundary.
    ///
    /// [`TenantId::SYSTEM`] (the nil UUID) is the reserved tenant that holds
    /// the operator's streams.
    TenantId,
    "tenant"
);
typed_id!(
    /// An [`Operator`](crate::Operator): the root of trust of a deployment.
    OperatorId,
    "operator"
);
typed_id!(
    /// An [`Account`](crate::Account) (a tenant).
    AccountId,
    "account"
);
typed_id!(
    /// A [`User`](crate::User).
    UserId,
    "user"
);
typed_id!(
    /// A [`Policy`](crate::Policy).
    PolicyId,
    "policy"
);
typed_id!(
    /// A tenant-defined [`Role`](crate::Role).
    RoleId,
    "role"
);
typed_id!(
    /// A key held by a [`KeyStore`](crate::KeyStore).
    KeyId,
    "key"
);
typed_id!(
    /// A stored event (UUID v7, so ids sort by creation time).
    EventId,
    "event"
);
typed_id!(
    /// A login session and its refresh-token family.
    SessionId,
    "session"
);

impl TenantId {
    /// The reserved system tenant that holds the operator's streams.
    pub const SYSTEM: Self = Self(Uuid::nil());

    /// Whether this is the reserved system tenant.
    pub fn is_system(&self) -> bool {
        self.0.is_nil()
    }
}

impl From<AccountId> for TenantId {
    fn from(id: AccountId) -> Self {
        Self(id.0)
    }
}

impl From<TenantId> for AccountId {
    fn from(id: TenantId) -> Self {
        Self(id.0)
    }
}

impl From<&AccountId> for TenantId {
    fn from(id: &AccountId) -> Self {
        Self(id.0)
    }
}

impl From<&TenantId> for AccountId {
    fn from(id: &TenantId) -> Self {
        Self(id.0)
    }
}

/// An account and its tenant are the same id: they compare equal.
impl PartialEq<TenantId> for AccountId {
    fn eq(&self, other: &TenantId) -> bool {
        self.0 == other.0
    }
}

/// An account and its tenant are the same id: they compare equal.
impl PartialEq<AccountId> for TenantId {
    fn eq(&self, other: &AccountId) -> bool {
        self.0 == other.0
    }
}

impl AccountId {
    /// The tenant this account is.
    pub const fn tenant(&self) -> TenantId {
        TenantId(self.0)
    }
}

impl TenantId {
    /// The account this tenant is (every tenant but
    /// [`SYSTEM`](Self::SYSTEM) is an account's id).
    pub const fn account(&self) -> AccountId {
        AccountId(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parse_round_trip() {
        let id = UserId::from_uuid(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef));
        let text = id.to_string();
        assert_eq!(text, "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(text.parse::<UserId>(), Ok(id));
        assert_eq!(
            format!("{id:?}"),
            "UserId(01234567-89ab-cdef-0123-456789abcdef)"
        );
    }

    #[test]
    fn parse_error_names_the_kind_and_not_the_input() {
        let err = "not-a-uuid".parse::<PolicyId>().unwrap_err();
        assert_eq!(err.to_string(), "invalid policy id: expected a UUID");
    }

    #[test]
    fn serde_is_a_plain_uuid_string() {
        let id = KeyId::from_uuid(Uuid::from_u128(7));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"00000000-0000-0000-0000-000000000007\"");
        assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
    }

    #[test]
    fn account_is_its_own_tenant() {
        let account = AccountId::from_uuid(Uuid::from_u128(42));
        assert_eq!(TenantId::from(account), account.tenant());
        assert_eq!(AccountId::from(account.tenant()), account);
        assert_eq!(account.tenant().account(), account);
        assert_eq!(TenantId::from(&account), account.tenant());
        assert_eq!(AccountId::from(&account.tenant()), account);
        assert!(account == account.tenant() && account.tenant() == account);
        assert!(account != TenantId::SYSTEM);
        assert!(TenantId::SYSTEM.is_system());
        assert!(!account.tenant().is_system());
    }
}
