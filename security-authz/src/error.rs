//! The crate's root error.

use security_core::{EventDecodeError, EventEncodeError, StoreError, TokenError};

use crate::decision::DenyReason;
use crate::limits::LimitExceeded;

/// A message sink could not take a message.
#[derive(Debug, thiserror::Error)]
#[error("message sink failed")]
pub struct SinkError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// An authorization operation failed.
///
/// Checks themselves never fail: they answer a [`Decision`](crate::Decision),
/// and anything that goes wrong while deciding is a deny. These errors come
/// from the operations around checks: limits, secure publishing, rebuilding
/// the authorizer from history, writing the audit trail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthzError {
    /// The principal may not do this; the reason says why. The caller's
    /// fault: answer 403 (or the protocol's equivalent), do not retry.
    #[error("access denied: {0}")]
    Denied(DenyReason),
    /// A limit would be exceeded. Refuse the request; it may succeed once
    /// usage drops or the limit is raised.
    #[error(transparent)]
    LimitExceeded(#[from] LimitExceeded),
    /// The bearer token is missing, malformed, invalid, expired or revoked.
    /// Answer 401; the client must authenticate again.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The event store failed while rebuilding from history or writing the
    /// audit trail. Retry if [`StoreError::is_retryable`]; log otherwise.
    #[error("event store failed")]
    Store(#[source] StoreError),
    /// A stored event could not be decoded: the store holds an event this
    /// build does not understand. Upgrade the reader.
    #[error("stored event could not be decoded")]
    Decode(#[source] EventDecodeError),
    /// An audit event or a message could not be encoded. A bug: log it.
    #[error("could not encode an event or a message")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The message sink refused the message; it was not delivered. Retry
    /// later.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl From<StoreError> for AuthzError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<EventDecodeError> for AuthzError {
    fn from(e: EventDecodeError) -> Self {
        Self::Decode(e)
    }
}

impl From<EventEncodeError> for AuthzError {
    fn from(e: EventEncodeError) -> Self {
        Self::Encode(Box::new(e))
    }
}

impl AuthzError {
    /// The deny reason, if access was denied.
    pub fn deny_reason(&self) -> Option<&DenyReason> {
        match self {
            Self::Denied(r) => Some(r),
            _ => None,
        }
    }
}
