//! The metrics this crate records, through the [`metrics`] facade (no-ops
//! until the application installs a recorder). `docs/OBSERVABILITY.md`
//! lists every name, type and label.

/// Gauge: events in the PostgreSQL outbox not yet published, as the
/// `OutboxRelay` (feature `postgres`) measured before its last run.
pub const OUTBOX_PENDING: &str = "security_outbox_pending_events";

/// Gauge: how long, in seconds, the oldest unpublished event has waited
/// in the outbox (the database's clock now minus the event's
/// `occurred_at`; 0 when the outbox is empty), measured with
/// [`OUTBOX_PENDING`].
pub const OUTBOX_LAG: &str = "security_outbox_lag_seconds";

/// Counter: events the relay published (a batch published again after a
/// failure counts again).
pub const OUTBOX_PUBLISHED: &str = "security_outbox_published_total";

/// Counter: relay runs that failed (and were retried).
pub const OUTBOX_FAILURES: &str = "security_outbox_failures_total";
