//! Queries over the audit trail, answered from a read model of the store.
//!
//! Every event the library writes is classified ([`classify`]) into an
//! [`AuditEntry`]: its [`AuditKind`] (authentication, authorization,
//! admin, key management), its [`AuditOutcome`], the user it is about
//! (the subject), and who caused it (the actor). An [`AuditIndex`] keeps
//! these entries per tenant, fed by a
//! [`ProjectionRunner`](crate::ProjectionRunner), and answers an
//! [`AuditQuery`] (tenant, subject, actor, kind, outcome, time range) one
//! page at a time, in global-position order, with the last position as
//! the cursor of the next page.
//!
//! - [`MemoryAuditIndex`] keeps the entries in memory (it is its own
//!   projection).
//! - [`AuditBuffer`] is the projection of an index that writes elsewhere
//!   (PostgreSQL): it classifies events into a batch that the index's
//!   checkpoint store writes together with the checkpoint.

mod buffer;
mod classify;
mod memory;
mod query;

pub use buffer::{AuditBatch, AuditBuffer};
pub use classify::{AuditKind, AuditOutcome, UnknownAuditName, classify, username_of};
pub use memory::MemoryAuditIndex;
pub use query::{
    AuditCursor, AuditEntry, AuditIndex, AuditOrder, AuditPage, AuditQuery, MAX_AUDIT_PAGE,
};
