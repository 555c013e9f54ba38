//! The security crate family in one package: authentication,
//! authorization, encryption and a tamper-evident, event-sourced audit trail
//! that a Rust service links in and runs in-process.
//!
//! The parts are separate crates, re-exported here: [`core`] (the pure
//! domain and its ports), [`crypto`], [`authn`], [`authz`] and
//! [`eventstore`]. [`Security::builder`] wires them: an event store, a
//! publisher, a key store, a clock, an id generator and a password hasher,
//! each with a default that needs no service (memory store, in-memory key
//! store, system clock, UUID v7 ids, argon2id with OWASP parameters).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use security::Security;
//! use security::core::{AccountClaims, Request, Actor};
//!
//! let security = Security::builder().build()?;
//! let admin = security.admin();
//! let request = Request::by(Actor::service("docs"));
//! let operator = admin.create_operator(&request, "Example Operator").await?;
//! let account = admin.create_account(&request, operator, "Example Bank", AccountClaims::default()).await?;
//! assert_eq!(admin.account(account).await?.name, "Example Bank");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "axum")]
pub mod axum;
pub mod observe;
pub mod prelude;
mod rate_tiers;
#[cfg(feature = "setup")]
pub mod setup;

pub use rate_tiers::{ApiRateLimits, RateTier};
/// The secret types of every API here (passwords, tokens), re-exported so
/// that callers use the same version.
pub use secrecy;
pub use secrecy::{ExposeSecret, SecretBox, SecretSlice, SecretString};
pub use security_authn as authn;
pub use security_authz as authz;
pub use security_core as core;
pub use security_crypto as crypto;
pub use security_eventstore as eventstore;
#[cfg(feature = "setup")]
pub use setup::{SecurityServices, Settings, SetupError};

use security_core::{
    AdminService, Clock, EventStore, IdGenerator, KeyStore, PasswordHasher, Publisher, Repository,
};

/// The services could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A default component could not be made (e.g. the password hasher's
    /// parameters were rejected).
    #[error("could not build the default {component}")]
    Component {
        /// Which component.
        component: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The wired security services of one application.
///
/// Cloning is cheap: every part is shared.
#[derive(Clone)]
pub struct Security {
    store: Arc<dyn EventStore>,
    publisher: Option<Arc<dyn Publisher>>,
    key_store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    password_hasher: Arc<dyn PasswordHasher>,
    repository: Repository,
    admin: AdminService,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("store", &self.store)
            .field("publisher", &self.publisher)
            .field("key_store", &self.key_store)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Security {
    /// A builder with every component at its default.
    pub fn builder() -> SecurityBuilder {
        SecurityBuilder::default()
    }

    /// The admin / command API.
    pub fn admin(&self) -> &AdminService {
        &self.admin
    }

    /// The command bus.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The event store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The publisher, if one is wired.
    pub fn publisher(&self) -> Option<&Arc<dyn Publisher>> {
        self.publisher.as_ref()
    }

    /// The key store.
    pub fn key_store(&self) -> &Arc<dyn KeyStore> {
        &self.key_store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The id generator.
    pub fn ids(&self) -> &Arc<dyn IdGenerator> {
        &self.ids
    }

    /// The password hasher.
    pub fn password_hasher(&self) -> &Arc<dyn PasswordHasher> {
        &self.password_hasher
    }

    /// A builder of the [`authn::AuthenticationService`] wired to this
    /// store, key store, password hasher and clock; set its configuration
    /// (e.g. [`authn::AuthnConfig::from_env`]) and rate limiter, then build.
    pub fn authentication(&self) -> authn::AuthenticationServiceBuilder {
        authn::AuthenticationService::builder(
            self.repository.clone(),
            Arc::clone(&self.key_store),
            Arc::clone(&self.password_hasher),
            Arc::clone(&self.clock),
        )
    }

    /// A builder of the [`authz::AuthorizationService`] on this clock. Its
    /// `build` gives the service and the projection that feeds it: run the
    /// projection over [`store`](Self::store) with a
    /// [`core::ProjectionRunner`].
    pub fn authorization(&self) -> authz::AuthorizationServiceBuilder {
        authz::AuthorizationService::builder(Arc::clone(&self.clock))
    }

    /// The [`crypto::EncryptionService`] over this key store and password hasher.
    pub fn encryption(&self) -> crypto::EncryptionService {
        crypto::EncryptionService::new(
            Arc::clone(&self.key_store),
            Arc::clone(&self.password_hasher),
        )
    }

    /// The task that has the operator's active signing key sign every
    /// tenant's chain head, every `interval` (see
    /// [`eventstore::audit::ChainAnchorer`]). Safe to run on every replica.
    pub fn chain_anchorer(
        &self,
        operator_id: core::OperatorId,
        interval: std::time::Duration,
    ) -> eventstore::audit::ChainAnchorer {
        eventstore::audit::ChainAnchorer::new(
            self.repository.clone(),
            Arc::clone(&self.key_store),
            Arc::clone(&self.clock),
            eventstore::audit::AnchorConfig::new(operator_id).with_interval(interval),
        )
    }

    /// Starts [`chain_anchorer`](Self::chain_anchorer) as a supervised
    /// background task on the current Tokio runtime (a failed or panicking
    /// round is logged and retried); stop it with
    /// [`AnchorTask::stop`](eventstore::audit::AnchorTask::stop).
    pub fn spawn_chain_anchoring(
        &self,
        operator_id: core::OperatorId,
        interval: std::time::Duration,
    ) -> eventstore::audit::AnchorTask {
        self.chain_anchorer(operator_id, interval).spawn()
    }
}

/// Builds [`Security`]; every component has a default that needs no service.
#[derive(Default)]
pub struct SecurityBuilder {
    store: Option<Arc<dyn EventStore>>,
    publisher: Option<Arc<dyn Publisher>>,
    key_store: Option<Arc<dyn KeyStore>>,
    clock: Option<Arc<dyn Clock>>,
    ids: Option<Arc<dyn IdGenerator>>,
    password_hasher: Option<Arc<dyn PasswordHasher>>,
}

impl fmt::Debug for SecurityBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityBuilder")
            .field("store", &self.store)
            .field("publisher", &self.publisher)
            .field("key_store", &self.key_store)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl SecurityBuilder {
    /// The event store (default: a new [`eventstore::MemoryEventStore`]).
    pub fn event_store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Publishes every stored event (default: none; with a PostgreSQL store,
    /// prefer its transactional outbox and relay).
    pub fn publisher(mut self, publisher: Arc<dyn Publisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// The key store (default: a new in-memory [`crypto::MemoryKeyStore`]
    /// on the same clock and ids).
    pub fn key_store(mut self, key_store: Arc<dyn KeyStore>) -> Self {
        self.key_store = Some(key_store);
        self
    }

    /// The clock (default: [`crypto::SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The id generator (default: [`crypto::UuidV7Ids`]).
    pub fn id_generator(mut self, ids: Arc<dyn IdGenerator>) -> Self {
        self.ids = Some(ids);
        self
    }

    /// The password hasher (default: argon2id with the OWASP parameters).
    pub fn password_hasher(mut self, hasher: Arc<dyn PasswordHasher>) -> Self {
        self.password_hasher = Some(hasher);
        self
    }

    /// Wires the components.
    pub fn build(self) -> Result<Security, BuildError> {
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(crypto::SystemClock::new()));
        let ids = self
            .ids
            .unwrap_or_else(|| Arc::new(crypto::UuidV7Ids::new()));
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(eventstore::MemoryEventStore::new()));
        let key_store = self.key_store.unwrap_or_else(|| {
            Arc::new(crypto::MemoryKeyStore::with_clock_and_ids(
                Arc::clone(&clock),
                Arc::clone(&ids),
            ))
        });
        let password_hasher = match self.password_hasher {
            Some(hasher) => hasher,
            None => Arc::new(crypto::Argon2PasswordHasher::owasp().map_err(|e| {
                BuildError::Component {
                    component: "password hasher",
                    source: Box::new(e),
                }
            })?),
        };
        let mut repository = Repository::new(Arc::clone(&store), Arc::clone(&ids));
        if let Some(publisher) = &self.publisher {
            repository = repository.with_publisher(Arc::clone(publisher));
        }
        let admin = AdminService::new(
            repository.clone(),
            Arc::clone(&clock),
            Arc::clone(&key_store),
        );
        Ok(Security {
            store,
            publisher: self.publisher,
            key_store,
            clock,
            ids,
            password_hasher,
            repository,
            admin,
        })
    }
}
