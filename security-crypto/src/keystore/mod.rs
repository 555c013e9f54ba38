//! Key stores: the in-memory one and the envelope-encrypted one, with the
//! persistence port of the latter.

mod envelope;
mod ledger;
mod material;
mod memory;
mod policy;
mod record;

pub use envelope::EnvelopeKeyStore;
pub use ledger::{KeyChange, KeyLedger, KeyLedgerCommand, KeyLedgerError, KeyLedgerEvent};
pub use memory::MemoryKeyStore;
pub use record::{
    KeyRecord, KeyRecordStore, KeyRecordStoreError, MemoryKeyRecordStore, WrappedMaterial,
};
