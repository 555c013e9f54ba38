//! The crate's root error, for setting up and running the backends.
//!
//! Store operations themselves return [`StoreError`] and publishers
//! [`PublishError`] (both from `security-core`), so that every backend is
//! interchangeable behind the core traits.

use security_core::{PublishError, StoreError};

/// A backend could not be set up or run.
///
/// Messages name the setting or the service, never a value read from the
/// environment and never the driver's own text (that is in the source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required setting is missing. Set it and start again.
    #[error("missing setting {0}")]
    MissingSetting(&'static str),
    /// A setting is malformed; the message says which and why. Fix the
    /// configuration and start again.
    #[error("invalid setting {setting}: {reason}")]
    InvalidSetting {
        /// The setting (an environment variable or a field name).
        setting: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The service could not be reached. Retrying later may succeed.
    #[error("could not connect to {service}")]
    Connect {
        /// `postgresql`, `kafka`, `nats` or `redis`.
        service: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database schema could not be brought up to date. Log it; the
    /// store must not be used until `migrate()` succeeds.
    #[error("database migration failed")]
    Migrate(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A broker refused an administrative request (creating a topic or a
    /// stream). Log it; check the broker's configuration and permissions.
    #[error("{service} refused an administrative request")]
    Broker {
        /// `kafka` or `nats`.
        service: &'static str,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The event store failed; see [`StoreError`] for how to handle it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing failed; see [`PublishError`] for how to handle it.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl Error {
    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Publish(PublishError::Unavailable(_)) => true,
            Self::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}
