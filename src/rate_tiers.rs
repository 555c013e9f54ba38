//! The API rate-limit tiers of the source documents, per user and per IP.

use std::fmt;

use security_authn::RateLimit;

/// A route's rate-limit tier.
///
/// The defaults are those of the source documents: `auth` 5/minute,
/// `mfa` 3/minute, `api_default` 60/minute (`API_RATE_LIMIT_PER_MINUTE`),
/// `api_read` 100/minute, `api_write` 30/minute, `api_admin` 200/minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateTier {
    /// Login attempts (`auth`).
    Login,
    /// MFA verification (`mfa`).
    Mfa,
    /// Any other API call (`api_default`).
    Default,
    /// Reads (`api_read`).
    Read,
    /// Writes (`api_write`).
    Write,
    /// Administration (`api_admin`).
    Admin,
}

impl RateTier {
    /// The tier's name in rate-limiter keys and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "auth",
            Self::Mfa => "mfa",
            Self::Default => "api_default",
            Self::Read => "api_read",
            Self::Write => "api_write",
            Self::Admin => "api_admin",
        }
    }

    /// Whether the hourly API cap (`API_RATE_LIMIT_PER_HOUR`) applies too:
    /// it does to every `api_*` tier.
    pub fn is_api(self) -> bool {
        !matches!(self, Self::Login | Self::Mfa)
    }
}

impl fmt::Display for RateTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The limit of every tier, and the hourly cap over all API tiers.
///
/// Each limit counts per client IP and, for an authenticated caller, per
/// user too: a request is refused when either count is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRateLimits {
    /// `auth`: 5/minute.
    pub login: RateLimit,
    /// `mfa`: 3/minute.
    pub mfa: RateLimit,
    /// `api_default`: `API_RATE_LIMIT_PER_MINUTE`, 60/minute.
    pub default: RateLimit,
    /// `api_read`: 100/minute.
    pub read: RateLimit,
    /// `api_write`: 30/minute.
    pub write: RateLimit,
    /// `api_admin`: 200/minute.
    pub admin: RateLimit,
    /// Over every `api_*` tier together: `API_RATE_LIMIT_PER_HOUR`,
    /// 1000/hour.
    pub per_hour: RateLimit,
}

impl Default for ApiRateLimits {
    fn default() -> Self {
        Self {
            login: RateLimit::per_minute(5),
            mfa: RateLimit::per_minute(3),
            default: RateLimit::per_minute(60),
            read: RateLimit::per_minute(100),
            write: RateLimit::per_minute(30),
            admin: RateLimit::per_minute(200),
            per_hour: RateLimit::per_hour(1000),
        }
    }
}

impl ApiRateLimits {
    /// The limit of a tier.
    pub fn limit(&self, tier: RateTier) -> RateLimit {
        match tier {
            RateTier::Login => self.login,
            RateTier::Mfa => self.mfa,
            RateTier::Default => self.default,
            RateTier::Read => self.read,
            RateTier::Write => self.write,
            RateTier::Admin => self.admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_source_documents_tiers() {
        let limits = ApiRateLimits::default();
        assert_eq!(limits.limit(RateTier::Login), RateLimit::per_minute(5));
        assert_eq!(limits.limit(RateTier::Mfa), RateLimit::per_minute(3));
        assert_eq!(limits.limit(RateTier::Default), RateLimit::per_minute(60));
        assert_eq!(limits.limit(RateTier::Read), RateLimit::per_minute(100));
        assert_eq!(limits.limit(RateTier::Write), RateLimit::per_minute(30));
        assert_eq!(limits.limit(RateTier::Admin), RateLimit::per_minute(200));
        assert_eq!(limits.per_hour, RateLimit::per_hour(1000));
        assert!(RateTier::Read.is_api() && !RateTier::Login.is_api());
    }
}
