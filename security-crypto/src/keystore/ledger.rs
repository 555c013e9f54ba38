//! The key ledger: every revision of a key record, as an event.
//!
//! A key record's MAC proves that the key store wrote it, not that it is
//! the latest record: someone who can write to the record table can put
//! back an older genuine record (a revoked key active again, a destroyed
//! data key with its material). The ledger is the freshness anchor: before
//! a record changes, the change and the record's new revision are appended
//! to the key's stream in the event store, with the stream's expected
//! version; a record read back older (or newer) than its ledger is
//! refused. Events are append-only (no role subject to row-level security
//! may change or delete one, see the PostgreSQL store), so rolling a key
//! back now takes rewriting the event log as well as the record table.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use security_core::{Aggregate, CommandContext, KeyId, KeyPurpose, impl_domain_event};

/// What changed in a key record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyChange {
    /// The key was created (revision 1).
    Created {
        /// What it is for.
        purpose: KeyPurpose,
    },
    /// A successor replaced it.
    Rotated {
        /// The successor.
        successor: KeyId,
    },
    /// It was revoked.
    Revoked,
    /// Its private material was destroyed.
    Destroyed,
    /// It was re-encrypted under another master key.
    Rewrapped,
    /// A key made before the ledger, first seen at this revision (trusted
    /// as it was found).
    Anchored,
}

/// Commands of a key's ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLedgerCommand {
    /// Records that the key's record moves to `revision` by `change`.
    Record {
        /// The key.
        key_id: KeyId,
        /// The record's new revision: the next one after the last recorded
        /// (any, for [`KeyChange::Anchored`] on an empty ledger).
        revision: u64,
        /// What changed.
        change: KeyChange,
    },
}

/// Events of a key's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names, reason = "one event per kind of change")]
pub enum KeyLedgerEvent {
    /// A key was created.
    KeyCreated {
        /// The key.
        key_id: KeyId,
        /// Its record's revision (1).
        revision: u64,
        /// What it is for.
        purpose: KeyPurpose,
        /// When.
        at: DateTime<Utc>,
    },
    /// A key was rotated out.
    KeyRotated {
        /// The key.
        key_id: KeyId,
        /// Its record's new revision.
        revision: u64,
        /// Its successor.
        successor: KeyId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A key was revoked.
    KeyRevoked {
        /// The key.
        key_id: KeyId,
        /// Its record's new revision.
        revision: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A key's private material was destroyed (crypto-shredding).
    KeyDestroyed {
        /// The key.
        key_id: KeyId,
        /// Its record's new revision.
        revision: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A key was re-encrypted under another master key.
    KeyRewrapped {
        /// The key.
        key_id: KeyId,
        /// Its record's new revision.
        revision: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A key made before the ledger was first seen at this revision.
    KeyAnchored {
        /// The key.
        key_id: KeyId,
        /// Its record's revision when first seen.
        revision: u64,
        /// When.
        at: DateTime<Utc>,
    },
}

impl_domain_event!(
    KeyLedgerEvent,
    version = 1,
    types = [
        KeyCreated,
        KeyRotated,
        KeyRevoked,
        KeyDestroyed,
        KeyRewrapped,
        KeyAnchored
    ]
);

/// Why the ledger refused to record a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyLedgerError {
    /// The change does not follow the last recorded revision: the record
    /// was changed meanwhile (read it again and retry), or is not the
    /// latest one.
    #[error("key record revision {presented} does not follow the recorded revision {recorded}")]
    Stale {
        /// The last revision recorded.
        recorded: u64,
        /// The revision presented.
        presented: u64,
    },
}

/// A key's ledger: the last revision of its record that was recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLedger {
    /// The last recorded revision (0: nothing recorded).
    pub revision: u64,
}

impl Aggregate for KeyLedger {
    const TYPE: &'static str = "key";
    type Command = KeyLedgerCommand;
    type Event = KeyLedgerEvent;
    type Error = KeyLedgerError;

    fn handle(
        &self,
        command: &KeyLedgerCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<KeyLedgerEvent>, KeyLedgerError> {
        let KeyLedgerCommand::Record {
            key_id,
            revision,
            change,
        } = command;
        let (key_id, revision, at) = (*key_id, *revision, ctx.now);
        let follows = match change {
            KeyChange::Anchored => self.revision == 0 && revision > 0,
            _ => revision == self.revision.saturating_add(1),
        };
        if !follows {
            return Err(KeyLedgerError::Stale {
                recorded: self.revision,
                presented: revision,
            });
        }
        Ok(vec![match *change {
            KeyChange::Created { purpose } => KeyLedgerEvent::KeyCreated {
                key_id,
                revision,
                purpose,
                at,
            },
            KeyChange::Rotated { successor } => KeyLedgerEvent::KeyRotated {
                key_id,
                revision,
                successor,
                at,
            },
            KeyChange::Revoked => KeyLedgerEvent::KeyRevoked {
                key_id,
                revision,
                at,
            },
            KeyChange::Destroyed => KeyLedgerEvent::KeyDestroyed {
                key_id,
                revision,
                at,
            },
            KeyChange::Rewrapped => KeyLedgerEvent::KeyRewrapped {
                key_id,
                revision,
                at,
            },
            KeyChange::Anchored => KeyLedgerEvent::KeyAnchored {
                key_id,
                revision,
                at,
            },
        }])
    }

    fn apply(&mut self, event: &KeyLedgerEvent) {
        let (KeyLedgerEvent::KeyCreated { revision, .. }
        | KeyLedgerEvent::KeyRotated { revision, .. }
        | KeyLedgerEvent::KeyRevoked { revision, .. }
        | KeyLedgerEvent::KeyDestroyed { revision, .. }
        | KeyLedgerEvent::KeyRewrapped { revision, .. }
        | KeyLedgerEvent::KeyAnchored { revision, .. }) = event;
        self.revision = self.revision.max(*revision);
    }
}
