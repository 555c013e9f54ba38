//! [`SecurityServices`]: the running security of one application, built
//! from [`Settings`] in one call.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use security_authn::{AuthenticationService, RateLimiter, SessionsView};
use security_authz::{AuditLog, AuthorizationService};
use security_core::{
    Clock, EventStore, IdGenerator, InMemoryCheckpoints, KeyStore, Projection, ProjectionRunner,
    Scope,
};
use security_crypto::{
    EncryptionService, EnvelopeKeyStore, FernetKeyRing, MemoryKeyRecordStore, MemoryKeyStore,
    SystemClock, UuidV7Ids,
};

use super::backends::{Backends, shared_backends};
use super::error::SetupError;
use super::health::{Health, TaskHealth};
use super::settings::{RelaySettings, Settings, StoreSettings};
use super::tasks::{TaskState, Tasks, Tracked};
use crate::Security;
use crate::rate_tiers::ApiRateLimits;

/// How many authorization audit records may wait for the store.
const AUDIT_QUEUE: usize = 8192;
/// How often queued authorization audit records are appended.
const AUDIT_INTERVAL: Duration = Duration::from_millis(200);
/// How long `start` waits for the token revocation list to catch up.
const REVOCATIONS_CATCH_UP: Duration = Duration::from_secs(60);
/// How soon a failed anchoring round is tried again.
const ANCHOR_RETRY: Duration = Duration::from_secs(10);
/// How long [`SecurityServices::shutdown`] waits for each task.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The security of one application, running: the event store (connected
/// and migrated), the key store, authentication, authorization, field
/// encryption, and the background tasks that keep every replica's read
/// models in step with the store (the authorizer, the token revocation
/// list, the sessions view), append the authorization audit trail and,
/// when a broker is configured, relay the outbox.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let security = security::SecurityServices::from_env().await?;
/// // … serve requests with security.authn(), security.authz() …
/// security.shutdown().await;
/// # Ok(()) }
/// ```
pub struct SecurityServices {
    security: Security,
    authn: AuthenticationService,
    authz: AuthorizationService,
    encryption: EncryptionService,
    sessions: SessionsView,
    rate_limiter: Arc<dyn RateLimiter>,
    backends: Backends,
    rate_limits: ApiRateLimits,
    tasks: Tasks,
    #[cfg(feature = "postgres")]
    postgres: Option<security_eventstore::PostgresEventStore>,
}

impl fmt::Debug for SecurityServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityServices")
            .field("security", &self.security)
            .field("authn", &self.authn)
            .field("backends", &self.backends)
            .field("rate_limits", &self.rate_limits)
            .field("tasks", &self.tasks)
            .finish_non_exhaustive()
    }
}

impl Security {
    /// [`SecurityServices::from_env`]: the whole setup from the
    /// environment (and a `.env` file), connected and running.
    pub async fn from_env() -> Result<SecurityServices, SetupError> {
        SecurityServices::from_env().await
    }
}

impl SecurityServices {
    /// Reads [`Settings::from_env`] and [starts](Self::start) everything.
    pub async fn from_env() -> Result<Self, SetupError> {
        Self::start(Settings::from_env()?).await
    }

    /// Connects, migrates, wires and starts everything `settings` describe.
    ///
    /// - the store: PostgreSQL (migrated; its outbox written only when a
    ///   relay is configured) or memory;
    /// - the key store: envelope-encrypted under `ENCRYPTION_KEY` (in
    ///   PostgreSQL with the PostgreSQL store), or plain memory;
    /// - authentication with the shared rate limiter, authorization with
    ///   its audit trail, field encryption with `FIELD_ENCRYPTION_KEY`;
    /// - the read models caught up before this returns, then followed by
    ///   supervised tasks (restarted after an error);
    /// - the outbox relay to Kafka or NATS when one is configured.
    pub async fn start(settings: Settings) -> Result<Self, SetupError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let ids: Arc<dyn IdGenerator> = Arc::new(UuidV7Ids::new());
        let mut tasks = Tasks::new();

        let redis = (
            settings.redis_url.clone(),
            settings.redis_key_prefix.clone(),
        );
        let Settings {
            store: store_settings,
            relay,
            master_key,
            previous_master_keys,
            field_keys,
            authn: authn_config,
            rate_limits,
            ..
        } = settings;

        #[cfg(feature = "postgres")]
        let mut postgres = None;
        let (store, key_store): (Arc<dyn EventStore>, Arc<dyn KeyStore>) = match store_settings {
            StoreSettings::Memory => {
                if !matches!(relay, RelaySettings::Off) {
                    return Err(SetupError::invalid(
                        "OUTBOX_RELAY",
                        "a relay publishes the PostgreSQL store's outbox: set DATABASE_URL too",
                    ));
                }
                let key_store: Arc<dyn KeyStore> = match master_key {
                    Some(master) => Arc::new(
                        EnvelopeKeyStore::new(
                            MemoryKeyRecordStore::new(),
                            master,
                            Arc::clone(&clock),
                            Arc::clone(&ids),
                        )
                        .and_then(|s| s.with_previous_master_keys(previous_master_keys))
                        .map_err(|e| SetupError::component("key store", e))?,
                    ),
                    None => Arc::new(MemoryKeyStore::with_clock_and_ids(
                        Arc::clone(&clock),
                        Arc::clone(&ids),
                    )),
                };
                (
                    Arc::new(security_eventstore::MemoryEventStore::new()),
                    key_store,
                )
            }
            #[cfg(feature = "postgres")]
            StoreSettings::Postgres(mut config) => {
                config.options.outbox = !matches!(relay, RelaySettings::Off);
                let store = connect_postgres(config).await?;
                let master = master_key.ok_or_else(|| {
                    SetupError::invalid("ENCRYPTION_KEY", "must be set with DATABASE_URL")
                })?;
                let key_store = EnvelopeKeyStore::new(
                    security_eventstore::PostgresKeyRecordStore::new(&store),
                    master,
                    Arc::clone(&clock),
                    Arc::clone(&ids),
                )
                .and_then(|s| s.with_previous_master_keys(previous_master_keys))
                .map_err(|e| SetupError::component("key store", e))?;
                start_relay(&mut tasks, &store, relay).await?;
                let shared: Arc<dyn EventStore> = Arc::new(store.clone());
                postgres = Some(store);
                (shared, Arc::new(key_store))
            }
        };

        let backends = shared_backends(
            redis.0.as_ref(),
            redis.1.as_deref(),
            #[cfg(feature = "postgres")]
            postgres.as_ref(),
        )
        .await?;

        let security = Security::builder()
            .event_store(Arc::clone(&store))
            .key_store(key_store)
            .clock(Arc::clone(&clock))
            .id_generator(Arc::clone(&ids))
            .build()
            .map_err(|e| SetupError::component("security services", e))?;

        let authn = security
            .authentication()
            .config(authn_config)
            .rate_limiter(Arc::clone(&backends.rate_limiter))
            .attempt_ledger(Arc::clone(&backends.attempts))
            .challenge_store(Arc::clone(&backends.challenges))
            .build()
            .map_err(|e| SetupError::component("authentication service", e))?;

        let (audit, mut audit_writer) = AuditLog::new(AUDIT_QUEUE, Arc::clone(&store), ids);
        let (authz, authz_projection) = security.authorization().audit(Arc::new(audit)).build();

        let mut encryption = security.encryption();
        if !field_keys.is_empty() {
            let ring = FernetKeyRing::new(field_keys, Arc::clone(&clock))
                .map_err(|e| SetupError::component("field encryption key ring", e))?;
            encryption = encryption.with_key_ring(ring);
        }

        // In-memory read models start from position 0 in every process.
        // (The token revocation list is kept by the authentication
        // service's own supervised projection: see `health`.)
        let sessions = SessionsView::new();
        let authz_state = Arc::new(TaskState::default());
        let authz_runner = caught_up(
            &store,
            Tracked::new(authz_projection, Arc::clone(&authz_state)),
            "authorization",
        )
        .await?;
        let sessions_state = Arc::new(TaskState::default());
        let sessions_runner = caught_up(
            &store,
            Tracked::new(sessions.projection(), Arc::clone(&sessions_state)),
            "sessions",
        )
        .await?;
        revocations_caught_up(&authn).await?;
        tasks.spawn_projection("authorization read model", authz_state, authz_runner);
        tasks.spawn_projection("sessions read model", sessions_state, sessions_runner);

        let stopped = tasks.stopped();
        let audit_state = Arc::new(TaskState::default());
        audit_state.succeeded();
        let state = Arc::clone(&audit_state);
        tasks.spawn("authorization audit writer", audit_state, async move {
            let mut stopped = std::pin::pin!(stopped);
            loop {
                let stop = tokio::select! {
                    () = &mut stopped => true,
                    () = tokio::time::sleep(AUDIT_INTERVAL) => false,
                };
                match audit_writer.write_pending().await {
                    Ok(_) => state.succeeded(),
                    Err(error) => {
                        state.failed(&error);
                        tracing::error!(error = %error, "authorization audit records could not be stored");
                    }
                }
                if stop {
                    return;
                }
            }
        });

        Ok(Self {
            security,
            authn,
            authz,
            encryption,
            sessions,
            rate_limiter: backends.rate_limiter,
            backends: backends.kinds,
            rate_limits,
            tasks,
            #[cfg(feature = "postgres")]
            postgres,
        })
    }

    /// The wiring underneath: store, key store, clock, admin API.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// Authentication.
    pub fn authn(&self) -> &AuthenticationService {
        &self.authn
    }

    /// Authorization (its read model followed by a background task).
    pub fn authz(&self) -> &AuthorizationService {
        &self.authz
    }

    /// Encryption: sealing, key management, and field encryption when
    /// `FIELD_ENCRYPTION_KEY` is set.
    pub fn encryption(&self) -> &EncryptionService {
        &self.encryption
    }

    /// Every user's live sessions.
    pub fn sessions(&self) -> &SessionsView {
        &self.sessions
    }

    /// The rate limiter shared by authentication and the API tiers.
    pub fn rate_limiter(&self) -> &Arc<dyn RateLimiter> {
        &self.rate_limiter
    }

    /// Where the state the replicas share is kept (rate limits,
    /// verification budgets, challenges).
    pub fn backends(&self) -> Backends {
        self.backends
    }

    /// The API rate-limit tiers.
    pub fn rate_limits(&self) -> &ApiRateLimits {
        &self.rate_limits
    }

    /// Waits until the read models reflect every event stored so far
    /// (read-your-writes after an admin command, or before a readiness
    /// probe answers).
    pub async fn caught_up(&self) -> Result<(), SetupError> {
        let head =
            self.security
                .store()
                .head_position()
                .await
                .map_err(|e| SetupError::Database {
                    retryable: e.is_retryable(),
                    source: Box::new(e),
                })?;
        self.authz.wait_for_position(head).await;
        self.sessions.wait_for_position(head).await;
        Ok(())
    }

    /// How every background task fares: the read models (authorization,
    /// sessions, the authentication service's token revocations) with
    /// their lag behind the store, the audit writer, the outbox relay.
    /// A readiness probe fails unless [`Health::is_healthy`].
    pub async fn health(&self) -> Health {
        let head = self.security.store().head_position().await.ok();
        let mut tasks = self.tasks.health(head);
        tasks.push(TaskHealth::from_projection(
            self.authn.revocation_health().await,
        ));
        Health {
            store_reachable: head.is_some(),
            tasks,
        }
    }

    /// The background tasks that ended although nobody stopped them (none
    /// while healthy: a readiness probe should fail otherwise).
    pub fn stopped_tasks(&self) -> Vec<&'static str> {
        self.tasks
            .health(None)
            .into_iter()
            .filter(|task| task.stopped)
            .map(|task| task.name)
            .collect()
    }

    /// Has the operator's active signing key sign every tenant's chain
    /// head every `interval` (see [`Security::chain_anchorer`]), as one
    /// more supervised task: a failed round is reported in
    /// [`health`](Self::health) and tried again after at most 10 s; it
    /// stops with [`shutdown`](Self::shutdown). Safe on every replica.
    pub fn supervise_chain_anchoring(
        &mut self,
        operator_id: security_core::OperatorId,
        interval: Duration,
    ) {
        let anchorer = self.security.chain_anchorer(operator_id, interval);
        let state = Arc::new(TaskState::default());
        let task_state = Arc::clone(&state);
        let stopped = self.tasks.stopped();
        self.tasks.spawn("audit chain anchorer", state, async move {
            let mut stopped = std::pin::pin!(stopped);
            loop {
                let wait = match anchorer.anchor_all().await {
                    Ok(round) if round.failed == 0 => {
                        task_state.succeeded();
                        interval
                    }
                    Ok(round) => {
                        task_state
                            .failed(&format!("{} tenants could not be anchored", round.failed));
                        ANCHOR_RETRY.min(interval)
                    }
                    Err(error) => {
                        task_state.failed(&error);
                        tracing::warn!(%error, "an anchoring round failed");
                        ANCHOR_RETRY.min(interval)
                    }
                };
                tokio::select! {
                    () = &mut stopped => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        });
    }

    /// Stops the background tasks (the relay publishes what it holds, the
    /// audit writer appends what is queued), then closes the database pool.
    pub async fn shutdown(self) {
        self.tasks.shutdown(SHUTDOWN_GRACE).await;
        #[cfg(feature = "postgres")]
        if let Some(store) = self.postgres {
            store.close().await;
        }
    }
}

/// Waits until the authentication service's own revocation projection
/// has caught up (like the other read models before `start` returns), for
/// at most [`REVOCATIONS_CATCH_UP`].
async fn revocations_caught_up(authn: &AuthenticationService) -> Result<(), SetupError> {
    let deadline = tokio::time::Instant::now() + REVOCATIONS_CATCH_UP;
    loop {
        let health = authn.revocation_health().await;
        if health.live {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(SetupError::Database {
                retryable: true,
                source: health
                    .last_error
                    .unwrap_or_else(|| "the token revocation list did not catch up".to_owned())
                    .into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn caught_up<P: Projection + 'static>(
    store: &Arc<dyn EventStore>,
    projection: P,
    name: &'static str,
) -> Result<ProjectionRunner<P>, SetupError> {
    let failed = |source: security_core::ProjectionError| SetupError::Projection {
        projection: name,
        retryable: matches!(&source, security_core::ProjectionError::Store(e) if e.is_retryable()),
        source,
    };
    let mut runner = ProjectionRunner::new(
        Arc::clone(store),
        Arc::new(InMemoryCheckpoints::new()),
        projection,
        Scope::All,
    )
    .await
    .map_err(failed)?;
    runner.catch_up().await.map_err(failed)?;
    Ok(runner)
}

#[cfg(feature = "postgres")]
async fn connect_postgres(
    config: security_eventstore::PostgresConfig,
) -> Result<security_eventstore::PostgresEventStore, SetupError> {
    let failed = |e: security_eventstore::Error| SetupError::Database {
        retryable: e.is_retryable(),
        source: Box::new(e),
    };
    let store = security_eventstore::PostgresEventStore::connect(config)
        .await
        .map_err(failed)?;
    store.migrate().await.map_err(failed)?;
    Ok(store)
}

#[cfg(all(feature = "postgres", not(any(feature = "kafka", feature = "nats"))))]
#[allow(
    clippy::unused_async,
    reason = "awaits only with the kafka or nats feature"
)]
async fn start_relay(
    _tasks: &mut Tasks,
    _store: &security_eventstore::PostgresEventStore,
    relay: RelaySettings,
) -> Result<(), SetupError> {
    match relay {
        RelaySettings::Off => Ok(()),
    }
}

#[cfg(all(feature = "postgres", any(feature = "kafka", feature = "nats")))]
async fn start_relay(
    tasks: &mut Tasks,
    store: &security_eventstore::PostgresEventStore,
    relay: RelaySettings,
) -> Result<(), SetupError> {
    let broker = |e: security_eventstore::Error| SetupError::Broker {
        retryable: e.is_retryable(),
        source: Box::new(e),
    };
    let relay = match relay {
        RelaySettings::Off => return Ok(()),
        #[cfg(feature = "kafka")]
        RelaySettings::Kafka(config) => {
            let kafka = security_eventstore::KafkaPublisher::new(config).map_err(broker)?;
            kafka.create_topic(3).await.map_err(broker)?;
            security_eventstore::OutboxRelay::pipelined(store, Arc::new(kafka))
        }
        #[cfg(feature = "nats")]
        RelaySettings::Nats(config) => {
            let nats = security_eventstore::NatsPublisher::connect(config)
                .await
                .map_err(broker)?;
            security_eventstore::OutboxRelay::new(store, Arc::new(nats))
        }
    };
    let stopped = tasks.stopped();
    let state = Arc::new(TaskState::default());
    state.succeeded();
    tasks.spawn("outbox relay", state, async move {
        let stats = relay.run_until(stopped).await;
        tracing::info!(
            published = stats.published,
            batches = stats.batches,
            failures = stats.failures,
            "outbox relay stopped"
        );
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::panic,
        reason = "a test fails by panicking"
    )]

    use security_core::{AccountClaims, GlobalQuery, Request};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_task_reports_and_the_anchorer_runs_supervised() {
        let mut services = SecurityServices::start(Settings::from_lookup(|_| None).unwrap())
            .await
            .unwrap();
        let admin = services.security().admin().clone();
        let operator = admin
            .create_operator(&Request::default(), "ops")
            .await
            .unwrap();
        admin
            .create_account(
                &Request::default(),
                operator,
                "bank",
                AccountClaims::default(),
            )
            .await
            .unwrap();
        services.supervise_chain_anchoring(operator, Duration::from_millis(50));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let health = services.health().await;
            let names: Vec<_> = health.tasks.iter().map(|t| t.name).collect();
            for expected in [
                "authorization read model",
                "sessions read model",
                "authorization audit writer",
                "authn-revocations",
                "audit chain anchorer",
            ] {
                assert!(names.contains(&expected), "{expected} in {names:?}");
            }
            let events = services
                .security()
                .store()
                .read_global(Scope::All, GlobalQuery::after(0, 10_000))
                .await
                .unwrap();
            let anchored = events.iter().any(|e| &*e.event_type == "ChainAnchored");
            if anchored && health.is_healthy() && health.max_lag() == Some(0) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "anchored: {anchored}, {health:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        services.shutdown().await;
    }
}
