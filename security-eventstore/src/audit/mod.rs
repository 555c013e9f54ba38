//! The tamper-evident audit trail around the stores' hash chains: anchors
//! signed by the operator, exports, and the offline verifier.
//!
//! - [`ChainAnchorer`] signs each tenant's chain head with the operator's
//!   active signing key, every interval, as a `ChainAnchored` event of the
//!   tenant's anchor log (in the system tenant, so it is published like
//!   any event). Someone who rewrites a whole chain in the database,
//!   hashes included, cannot sign the rewritten heads.
//! - [`export_tenant`] writes one tenant's chain as JSON lines, with the
//!   operator's keys and the anchors.
//! - [`verify_export`] checks such a file with nothing but the operator's
//!   public key: the chain, every anchor's signature and key validity, and
//!   that every anchored head is on the chain. `cargo run --example audit
//!   -- verify FILE --operator-key KEY` is its command line.
//!
//! - [`export_personal_data`] gathers everything about one user (a GDPR
//!   access request), sealed fields opened where the keys still exist and
//!   marked `shredded` where they were destroyed.
//!
//! The formats are in `docs/AUDIT.md`.

mod anchorer;
mod export;
mod offline;
mod personal;

pub use anchorer::{AnchorConfig, AnchorOutcome, AnchorRound, AnchorTask, ChainAnchorer};
pub use export::{
    EXPORT_FORMAT, EXPORT_VERSION, ExportHeader, ExportLine, ExportSummary, export_tenant,
};
pub use offline::{
    AnchorCheck, AnchorVerdict, ExportVerification, parse_operator_key, verify_export,
};
pub use personal::{
    CREDENTIAL_FIELDS, PERSONAL_EXPORT_FORMAT, PersonalDataExport, PersonalEvent,
    export_personal_data,
};
