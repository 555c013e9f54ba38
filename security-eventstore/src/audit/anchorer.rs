//! The anchoring task: the operator's active signing key signs each
//! tenant's chain head, now and then, as a `ChainAnchored` event.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::FutureExt as _;
use security_core::chain::{
    Anchor, AnchorCommand, AnchorLog, AnchorStatement, ChainHead, ChainQuery,
};
use security_core::{
    Actor, Aggregate, Clock, CommandContext, KeyStore, Operator, OperatorId, Repository, TenantId,
};

use crate::error::Error;

/// How the anchoring task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchorConfig {
    /// The operator whose active signing key signs.
    pub operator_id: OperatorId,
    /// The least time between two anchors of one tenant, and how often the
    /// task looks for heads to anchor.
    pub interval: Duration,
    /// How long the task waits after a round that failed.
    pub retry_after: Duration,
}

impl AnchorConfig {
    /// Anchors every 5 minutes; retries a failed round after 10 s.
    pub fn new(operator_id: OperatorId) -> Self {
        Self {
            operator_id,
            interval: Duration::from_secs(300),
            retry_after: Duration::from_secs(10),
        }
    }

    /// With another interval.
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

/// What one tenant's anchoring did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnchorOutcome {
    /// A new anchor was recorded at this head.
    Anchored(ChainHead),
    /// The head is already anchored (or only anchors came after it, in the
    /// system tenant).
    UpToDate,
    /// The last anchor is younger than the interval.
    NotDue,
    /// Another replica recorded an anchor first.
    AnchoredElsewhere,
}

/// What one round over every tenant did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnchorRound {
    /// Tenants whose head was anchored.
    pub anchored: u64,
    /// Tenants that needed nothing (up to date, not due, or anchored by
    /// another replica).
    pub skipped: u64,
    /// Tenants whose anchoring failed (logged; tried again next round).
    pub failed: u64,
}

/// Signs tenants' chain heads with the operator's active key and records
/// them (`AnchorLog` in the system tenant, so they are published like any
/// event: through the outbox with PostgreSQL).
///
/// Safe to run on every replica: a tenant's anchors are appended to its
/// anchor log at the version it was loaded at, so of replicas anchoring at
/// the same time one records and the others find the fresh anchor and stop
/// (the anchor log refuses an anchor younger than the interval, or one
/// that does not move past the last anchored head).
#[derive(Debug, Clone)]
pub struct ChainAnchorer {
    repository: Repository,
    key_store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    config: AnchorConfig,
}

impl ChainAnchorer {
    /// An anchorer over the repository's store.
    pub fn new(
        repository: Repository,
        key_store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
        config: AnchorConfig,
    ) -> Self {
        Self {
            repository,
            key_store,
            clock,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AnchorConfig {
        &self.config
    }

    /// One round: anchors every tenant whose head moved and whose last
    /// anchor is older than the interval. A tenant that fails is logged and
    /// counted; the others go on.
    pub async fn anchor_all(&self) -> Result<AnchorRound, Error> {
        let heads = self.repository.store().chain_heads().await?;
        let mut round = AnchorRound::default();
        for (tenant, head) in heads {
            match self.anchor_head(tenant, head).await {
                Ok(AnchorOutcome::Anchored(_)) => round.anchored += 1,
                Ok(_) => round.skipped += 1,
                Err(error) => {
                    round.failed += 1;
                    tracing::warn!(%tenant, %error, "anchoring a tenant's chain head failed");
                }
            }
        }
        Ok(round)
    }

    /// Anchors one tenant's current head (if due).
    pub async fn anchor_tenant(&self, tenant: TenantId) -> Result<AnchorOutcome, Error> {
        match self.repository.store().chain_head(tenant).await? {
            Some(head) => self.anchor_head(tenant, head).await,
            None => Ok(AnchorOutcome::UpToDate),
        }
    }

    async fn anchor_head(&self, tenant: TenantId, head: ChainHead) -> Result<AnchorOutcome, Error> {
        let log = self
            .repository
            .load::<AnchorLog>(TenantId::SYSTEM, tenant.as_uuid())
            .await
            .map_err(Error::Anchor)?
            .state;
        if head.position <= log.last_position() || self.only_anchors_since(tenant, &log).await? {
            return Ok(AnchorOutcome::UpToDate);
        }
        let now = self.clock.now();
        let interval = self.interval();
        if let Some(last) = &log.last
            && now < last.statement.anchored_at + interval
        {
            return Ok(AnchorOutcome::NotDue);
        }
        let operator = self
            .repository
            .load::<Operator>(TenantId::SYSTEM, self.config.operator_id)
            .await
            .map_err(Error::Anchor)?
            .state;
        let key = operator
            .active_key()
            .filter(|key| key.is_valid_at(now))
            .ok_or(Error::NoOperatorKey)?;
        let statement = AnchorStatement {
            tenant_id: tenant,
            head,
            anchored_at: now,
            operator_id: self.config.operator_id,
            key_id: key.key_id,
            public_key: key.public_key.clone(),
        };
        let signature = self
            .key_store
            .sign(key.key_id, &statement.signed_message())
            .await
            .map_err(Error::Signing)?;
        let command = AnchorCommand::RecordAnchor {
            anchor: Anchor {
                statement,
                signature: URL_SAFE_NO_PAD.encode(signature),
            },
            min_interval: interval,
        };
        let ctx = CommandContext::new(TenantId::SYSTEM, now).with_actor(Actor::system());
        let outcome = self
            .repository
            .execute::<AnchorLog>(tenant.as_uuid(), &command, &ctx)
            .await
            .map_err(Error::Anchor)?;
        Ok(if outcome.events.is_empty() {
            AnchorOutcome::AnchoredElsewhere
        } else {
            AnchorOutcome::Anchored(head)
        })
    }

    /// In the system tenant every anchor is itself an event: a head that
    /// moved only by anchors needs no anchor of its own.
    async fn only_anchors_since(&self, tenant: TenantId, log: &AnchorLog) -> Result<bool, Error> {
        if tenant != TenantId::SYSTEM || log.last.is_none() {
            return Ok(false);
        }
        let after = self
            .repository
            .store()
            .read_chain(tenant, ChainQuery::after(log.last_position(), 1_000))
            .await?;
        Ok(after.len() < 1_000
            && after
                .iter()
                .all(|record| *record.aggregate_type == *AnchorLog::TYPE))
    }

    fn interval(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.interval).unwrap_or(chrono::Duration::MAX)
    }

    /// Anchors round after round, every interval, until `shutdown`
    /// completes. A round that fails (or panics) is logged and tried again
    /// after `retry_after`; the task itself never stops on an error.
    pub async fn run_until<F>(&self, shutdown: F) -> AnchorRound
    where
        F: Future<Output = ()> + Send,
    {
        let mut total = AnchorRound::default();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let round = std::panic::AssertUnwindSafe(self.anchor_all())
                .catch_unwind()
                .await;
            let wait = match round {
                Ok(Ok(round)) => {
                    total.anchored += round.anchored;
                    total.skipped += round.skipped;
                    total.failed += round.failed;
                    if round.failed > 0 {
                        self.config.retry_after.min(self.config.interval)
                    } else {
                        self.config.interval
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "an anchoring round failed");
                    self.config.retry_after
                }
                Err(_) => {
                    tracing::error!("an anchoring round panicked");
                    self.config.retry_after
                }
            };
            tokio::select! {
                () = &mut shutdown => return total,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Starts [`run_until`](Self::run_until) on the current Tokio runtime;
    /// the task stops when the returned handle is stopped or dropped.
    pub fn spawn(self) -> AnchorTask {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            self.run_until(async move {
                let _ = stopped.await;
            })
            .await
        });
        AnchorTask {
            stop: Some(stop),
            handle,
        }
    }
}

/// A running anchoring task (see [`ChainAnchorer::spawn`]).
#[derive(Debug)]
pub struct AnchorTask {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<AnchorRound>,
}

impl AnchorTask {
    /// Stops the task after its current round and returns what it did.
    pub async fn stop(mut self) -> AnchorRound {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.handle).await.unwrap_or_default()
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

impl Drop for AnchorTask {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.handle.abort();
        }
    }
}
