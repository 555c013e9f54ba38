//! How the setup's background work fares: [`Health`], one [`TaskHealth`]
//! per supervised task.

/// How one background task fares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskHealth {
    /// The task's name.
    pub name: &'static str,
    /// Whether it is working normally: a read model caught up and
    /// following the store, a writer whose last round succeeded.
    /// `false` while it starts, after a failure until it recovers, and
    /// once it stopped.
    pub live: bool,
    /// Whether it has ended. Before [`shutdown`](super::SecurityServices::shutdown)
    /// this never happens to a healthy setup: readiness must fail.
    pub stopped: bool,
    /// The last global position a read model applied (`None` for other
    /// tasks).
    pub position: Option<u64>,
    /// How many events a read model is behind the store's head (when both
    /// are known).
    pub lag: Option<u64>,
    /// How many times it failed and started again.
    pub restarts: u64,
    /// The last failure's message, if it failed since it was last live.
    pub last_error: Option<String>,
}

impl TaskHealth {
    /// Whether the task is live and has not stopped.
    pub fn is_healthy(&self) -> bool {
        self.live && !self.stopped
    }

    pub(crate) fn from_projection(health: security_authn::ProjectionHealth) -> Self {
        Self {
            name: health.name,
            live: health.live,
            stopped: false,
            position: Some(health.position),
            lag: health.lag,
            restarts: health.restarts,
            last_error: health.last_error,
        }
    }
}

/// The health of a running setup: one entry per background task.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Whether the store answered (its head position is the read models'
    /// reference for lag).
    pub store_reachable: bool,
    /// Every supervised task.
    pub tasks: Vec<TaskHealth>,
}

impl Health {
    /// Whether the store answers and every task is live.
    pub fn is_healthy(&self) -> bool {
        self.store_reachable && self.tasks.iter().all(TaskHealth::is_healthy)
    }

    /// The largest lag of a read model, in events.
    pub fn max_lag(&self) -> Option<u64> {
        self.tasks.iter().filter_map(|task| task.lag).max()
    }
}
