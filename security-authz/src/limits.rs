//! Resource limits: the account's and those of the user's policies.
//!
//! A user's effective limit for each kind is the tightest of its account's
//! limit and the limits of its policies in force: assigning one more policy
//! never lifts a limit another policy or the account sets.

use std::fmt;

use security_core::{AccountLimits, PolicyId, ResourceLimits};
use serde::{Deserialize, Serialize};

/// A kind of limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitKind {
    /// Users in an account (`max_users`).
    Users,
    /// Client connections at once (`max_connections`).
    Connections,
    /// Subscriptions at once (`max_subscriptions`).
    Subscriptions,
    /// Bytes in one message payload (`max_payload_size`).
    PayloadSize,
    /// Bytes per second (`max_data_rate` / `data_rate`).
    DataRate,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Users => "users",
            Self::Connections => "connections",
            Self::Subscriptions => "subscriptions",
            Self::PayloadSize => "payload size",
            Self::DataRate => "data rate",
        })
    }
}

/// Who set a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum LimitSource {
    /// The account (tenant).
    Account,
    /// A policy the user holds.
    Policy(PolicyId),
}

impl fmt::Display for LimitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Account => f.write_str("account"),
            Self::Policy(id) => write!(f, "policy {id}"),
        }
    }
}

/// One limit and who set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limit {
    /// The largest value allowed.
    pub max: u64,
    /// Who set it.
    pub source: LimitSource,
}

/// A limit would be exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} limit of {limit} exceeded ({requested} requested, set by {source_of_limit})")]
pub struct LimitExceeded {
    /// Which limit.
    pub kind: LimitKind,
    /// Its value.
    pub limit: u64,
    /// What was asked for.
    pub requested: u64,
    /// Who set it.
    pub source_of_limit: LimitSource,
}

/// The limits that apply to one user (or, for `max_users` and
/// `max_connections`, to its account). `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveLimits {
    /// Users in the account.
    pub max_users: Option<Limit>,
    /// Client connections at once.
    pub max_connections: Option<Limit>,
    /// Subscriptions at once.
    pub max_subscriptions: Option<Limit>,
    /// Bytes in one message payload.
    pub max_payload_size: Option<Limit>,
    /// Bytes per second.
    pub max_data_rate: Option<Limit>,
}

fn tighter(current: Option<Limit>, max: Option<u64>, source: LimitSource) -> Option<Limit> {
    match (current, max) {
        (Some(c), Some(m)) if m < c.max => Some(Limit { max: m, source }),
        (None, Some(m)) => Some(Limit { max: m, source }),
        (c, _) => c,
    }
}

impl EffectiveLimits {
    /// The account's limits.
    pub fn of_account(limits: &AccountLimits) -> Self {
        let a = LimitSource::Account;
        Self {
            max_users: limits.max_users.map(|m| Limit {
                max: u64::from(m),
                source: a,
            }),
            max_connections: limits.max_connections.map(|m| Limit {
                max: u64::from(m),
                source: a,
            }),
            max_subscriptions: limits.max_subscriptions.map(|m| Limit {
                max: u64::from(m),
                source: a,
            }),
            max_payload_size: limits.max_payload_size.map(|m| Limit { max: m, source: a }),
            max_data_rate: limits.max_data_rate.map(|r| Limit {
                max: r.bytes_per_second,
                source: a,
            }),
        }
    }

    /// Tightens these limits with a policy's.
    pub fn tighten(&mut self, policy: PolicyId, limits: &ResourceLimits) {
        let source = LimitSource::Policy(policy);
        self.max_subscriptions = tighter(
            self.max_subscriptions,
            limits.max_subscriptions.map(u64::from),
            source,
        );
        self.max_payload_size = tighter(self.max_payload_size, limits.max_payload_size, source);
        self.max_data_rate = tighter(
            self.max_data_rate,
            limits.data_rate.map(|r| r.bytes_per_second),
            source,
        );
    }

    /// The limit of a kind.
    pub fn get(&self, kind: LimitKind) -> Option<Limit> {
        match kind {
            LimitKind::Users => self.max_users,
            LimitKind::Connections => self.max_connections,
            LimitKind::Subscriptions => self.max_subscriptions,
            LimitKind::PayloadSize => self.max_payload_size,
            LimitKind::DataRate => self.max_data_rate,
        }
    }

    /// Checks that `requested` (e.g. the subscription count after a new
    /// subscription, or a payload's size) is within the limit of `kind`.
    pub fn check(&self, kind: LimitKind, requested: u64) -> Result<(), LimitExceeded> {
        match self.get(kind) {
            Some(limit) if requested > limit.max => Err(LimitExceeded {
                kind,
                limit: limit.max,
                requested,
                source_of_limit: limit.source,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use security_core::DataRate;

    #[test]
    fn the_tightest_limit_wins_and_names_its_source() {
        let account = AccountLimits {
            max_payload_size: Some(1024),
            max_subscriptions: Some(10),
            ..AccountLimits::default()
        };
        let mut limits = EffectiveLimits::of_account(&account);
        let p1 = PolicyId::from_uuid(uuid::Uuid::from_u128(1));
        let p2 = PolicyId::from_uuid(uuid::Uuid::from_u128(2));
        limits.tighten(
            p1,
            &ResourceLimits {
                max_payload_size: Some(512),
                ..ResourceLimits::default()
            },
        );
        limits.tighten(
            p2,
            &ResourceLimits {
                max_payload_size: Some(2048),
                data_rate: Some(DataRate {
                    bytes_per_second: 9,
                }),
                ..ResourceLimits::default()
            },
        );
        assert_eq!(
            limits.max_payload_size,
            Some(Limit {
                max: 512,
                source: LimitSource::Policy(p1)
            })
        );
        assert_eq!(
            limits.max_subscriptions,
            Some(Limit {
                max: 10,
                source: LimitSource::Account
            })
        );
        assert_eq!(
            limits.max_data_rate,
            Some(Limit {
                max: 9,
                source: LimitSource::Policy(p2)
            })
        );
        assert!(limits.check(LimitKind::PayloadSize, 512).is_ok());
        let err = limits.check(LimitKind::PayloadSize, 513).unwrap_err();
        assert_eq!(
            err,
            LimitExceeded {
                kind: LimitKind::PayloadSize,
                limit: 512,
                requested: 513,
                source_of_limit: LimitSource::Policy(p1)
            }
        );
        assert!(
            err.to_string()
                .starts_with("payload size limit of 512 exceeded")
        );
        assert!(limits.check(LimitKind::Connections, u64::MAX).is_ok());
    }
}
