//! Given/when/then tests for aggregates (feature `test-util`).
//!
//! ```
//! # use security_core::testing::AggregateTest;
//! # use security_core::*;
//! # use chrono::{TimeZone, Utc};
//! # use uuid::Uuid;
//! let tenant = TenantId::from_uuid(Uuid::from_u128(1));
//! let ctx = CommandContext::new(tenant, Utc.timestamp_opt(1_700_000_000, 0).unwrap());
//! let policy_id = PolicyId::from_uuid(Uuid::from_u128(2));
//! AggregateTest::<Policy>::new(ctx.clone())
//!     .when(PolicyCommand::CreatePolicy {
//!         policy_id,
//!         name: "readers".into(),
//!         description: String::new(),
//!         permissions: Permissions::default(),
//!         limits: ResourceLimits::default(),
//!     })
//!     .then_expect_events(vec![PolicyEvent::PolicyCreated {
//!         policy_id,
//!         name: "readers".into(),
//!         description: String::new(),
//!         permissions: Permissions::default(),
//!         limits: ResourceLimits::default(),
//!         created_at: ctx.now,
//!     }]);
//! ```

#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::needless_pass_by_value,
    reason = "a test helper fails its test by panicking, and takes what tests write inline"
)]

use std::fmt::Debug;

use crate::aggregate::{Aggregate, CommandContext};
use crate::event::DomainEvent;

/// A given/when/then test of one aggregate.
#[derive(Debug)]
pub struct AggregateTest<A: Aggregate> {
    state: A,
    ctx: CommandContext,
}

/// The outcome of `when`, to check with `then_*`.
#[derive(Debug)]
#[must_use = "a test that checks nothing proves nothing"]
pub struct Outcome<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> AggregateTest<A> {
    /// A test of a fresh aggregate; commands run in `ctx`.
    pub fn new(ctx: CommandContext) -> Self {
        Self {
            state: A::default(),
            ctx,
        }
    }

    /// Applies past events.
    pub fn given(mut self, events: impl IntoIterator<Item = A::Event>) -> Self {
        for event in events {
            self.state.apply(&event);
        }
        self
    }

    /// Changes the context for the next command (e.g. a later time).
    pub fn at(mut self, ctx: CommandContext) -> Self {
        self.ctx = ctx;
        self
    }

    /// Runs a command.
    pub fn when(self, command: A::Command) -> Outcome<A> {
        let result = self.state.handle(&command, &self.ctx);
        Outcome {
            state: self.state,
            result,
        }
    }
}

impl<A: Aggregate> Outcome<A>
where
    A::Event: PartialEq,
    A::Error: Debug,
{
    /// Asserts the command produced exactly these events, that each survives
    /// its stored encoding unchanged, and returns the state after them.
    #[track_caller]
    pub fn then_expect_events(self, expected: Vec<A::Event>) -> A {
        let events = match self.result {
            Ok(events) => events,
            Err(error) => panic!("expected events, got error {error:?}"),
        };
        assert_eq!(events, expected, "events differ");
        let mut state = self.state;
        for event in &events {
            let payload = event.encode().expect("event encodes");
            let back = A::Event::decode(event.event_type(), event.schema_version(), &payload)
                .expect("event decodes");
            assert_eq!(&back, event, "event changed through its stored encoding");
            state.apply(event);
        }
        state
    }

    /// Asserts the command was refused with this error.
    #[track_caller]
    pub fn then_expect_error(self, expected: &A::Error)
    where
        A::Error: PartialEq,
    {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(error) => assert_eq!(&error, expected, "errors differ"),
        }
    }

    /// The raw result, for checks the helpers above do not cover.
    pub fn result(&self) -> &Result<Vec<A::Event>, A::Error> {
        &self.result
    }
}
