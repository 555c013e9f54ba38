//! The metrics this crate records, through the [`metrics`] facade: nothing
//! is recorded until the application installs a recorder (e.g. the
//! Prometheus one of the umbrella's `prometheus` feature). Every name,
//! type and label is listed in `docs/OBSERVABILITY.md`.
//!
//! Labels are low-cardinality: no tenant, user or stream id is a label.

/// Counter: commands run through the
/// [`Repository`](crate::Repository) (every admin and service command).
/// Labels: `aggregate` (the aggregate type, e.g. `user`), `outcome`
/// (`ok`, `unchanged`, `deduplicated`, `rejected`, `conflict`, `error`).
pub const COMMANDS: &str = "security_commands_total";

/// Gauge: how many global positions a projection is behind the store's
/// head, as its [`ProjectionRunner`](crate::ProjectionRunner) last saw it
/// (set at each catch-up and after each batch). Label: `projection` (the
/// projection's name).
pub const PROJECTION_LAG: &str = "security_projection_lag_events";

/// Counter: events a projection skipped as dead letters. Label:
/// `projection`.
pub const PROJECTION_DEAD_LETTERS: &str = "security_projection_dead_letters_total";
