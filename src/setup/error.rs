//! The setup's root error.

/// The one-call setup failed.
///
/// Configuration errors name the variable and never show its value;
/// connection errors keep the driver's error as their source (log it; it
/// is not for end users).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A variable is missing or invalid; the message names it and says what
    /// is expected. Fix the configuration; retrying will not help.
    #[error("invalid {variable}: {reason}")]
    Invalid {
        /// The environment variable.
        variable: &'static str,
        /// What is expected (never the value).
        reason: String,
    },
    /// The `.env` file exists but could not be read or parsed. Fix or
    /// remove it.
    #[error("the .env file could not be read")]
    DotEnv(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database could not be reached or migrated. Retry when
    /// [`is_retryable`](Self::is_retryable) says so; otherwise check the
    /// URL, the role's rights and the logs.
    #[error("the database could not be set up")]
    Database {
        /// Whether trying again later may succeed (an outage rather than
        /// a refusal).
        retryable: bool,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The outbox relay's broker (Kafka or NATS) could not be reached or
    /// set up. Retry when [`is_retryable`](Self::is_retryable) says so.
    #[error("the event broker could not be set up")]
    Broker {
        /// Whether trying again later may succeed.
        retryable: bool,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Redis (`REDIS_URL`) could not be reached. Retry when
    /// [`is_retryable`](Self::is_retryable) says so; otherwise check the
    /// URL and the credentials.
    #[error("redis could not be reached")]
    Redis {
        /// Whether trying again later may succeed.
        retryable: bool,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A service could not be built from valid settings (a key store or a
    /// key ring refused its keys, the password hasher its parameters). Fix
    /// the configuration.
    #[error("the {component} could not be built")]
    Component {
        /// Which component.
        component: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A read model could not catch up with the store at start. Retry when
    /// [`is_retryable`](Self::is_retryable) says so; otherwise the store
    /// holds events this build does not understand.
    #[error("the {projection} read model could not catch up")]
    Projection {
        /// Which read model.
        projection: &'static str,
        /// Whether trying again later may succeed.
        retryable: bool,
        /// Why.
        #[source]
        source: security_core::ProjectionError,
    },
}

impl SetupError {
    /// Whether trying the setup again later may succeed (a database or
    /// broker outage) rather than needing a configuration change.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Database { retryable, .. }
            | Self::Broker { retryable, .. }
            | Self::Redis { retryable, .. }
            | Self::Projection { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// The variable a configuration error names.
    pub fn variable(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { variable, .. } => Some(variable),
            _ => None,
        }
    }

    pub(crate) fn invalid(variable: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            variable,
            reason: reason.into(),
        }
    }

    pub(crate) fn component(
        component: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Component {
            component,
            source: Box::new(source),
        }
    }
}

impl From<security_authn::ConfigError> for SetupError {
    fn from(e: security_authn::ConfigError) -> Self {
        Self::Invalid {
            variable: e.variable,
            reason: e.reason,
        }
    }
}
