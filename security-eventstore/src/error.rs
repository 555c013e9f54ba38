//! The crate's root error, for setting up and running the backends.
//!
//! Store operations themselves return [`StoreError`] and publishers
//! [`PublishError`] (both from `security-core`), so that every backend is
//! interchangeable behind the core traits.

use security_core::{CommandError, DomainError, PublishError, StoreError};

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
    /// The operator does not exist or has no active signing key, so no
    /// anchor can be signed. Create the operator or rotate a key in.
    #[error("the operator has no active signing key")]
    NoOperatorKey,
    /// The key store could not sign an anchor (the key is revoked, expired
    /// or unavailable). Log it; rotate the operator's key if it is revoked.
    #[error("the key store could not sign an anchor")]
    Signing(#[source] security_core::KeyStoreError),
    /// Recording an anchor failed; see [`CommandError`] for how to handle
    /// it (a conflict or an unavailable store may be retried).
    #[error("an anchor could not be recorded")]
    Anchor(#[source] CommandError<DomainError>),
    /// A stored operator or anchor event could not be decoded. Log it; the
    /// store holds an event this build does not understand.
    #[error("a stored event could not be decoded")]
    Decode(#[source] security_core::EventDecodeError),
    /// The key store failed (as a backend) while opening a sealed field
    /// for a personal-data export. Retrying later may succeed.
    #[error("the key store could not open a sealed field")]
    Unseal(#[source] security_core::KeyStoreError),
    /// Reading or writing an audit export failed. Check the file or the
    /// stream it goes to.
    #[error("audit export input or output failed")]
    Io(#[source] std::io::Error),
    /// An audit export is not in the format (a line is not JSON, or not
    /// where it belongs). The file is damaged or is not an export.
    #[error("audit export line {line}: {reason}")]
    MalformedExport {
        /// The line (from 1).
        line: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Error {
    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Publish(PublishError::Unavailable(_))
            | Self::Unseal(security_core::KeyStoreError::Backend(_)) => true,
            Self::Store(e) => e.is_retryable(),
            Self::Anchor(e) => e.is_retryable(),
            _ => false,
        }
    }
}
