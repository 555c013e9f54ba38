//! Anchors: the operator's signature over a tenant's chain head, kept as an
//! event of the `chain_anchor` aggregate in the system tenant.
//!
//! One stream per anchored tenant, `(system tenant, "chain_anchor", tenant
//! id)`. Appending to it with the version it was loaded at is what keeps
//! several replicas from anchoring the same tenant twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::encoding::ChainHead;
use crate::aggregate::{Aggregate, CommandContext};
use crate::error::DomainError;
use crate::ids::{KeyId, OperatorId, TenantId};
use crate::impl_domain_event;
use crate::keys::PublicKey;

/// The tag that starts every anchor's signed message (followed by one zero
/// byte).
pub const ANCHOR_TAG: &[u8] = b"security-anchor-v1";

/// The longest signature accepted in an anchor, in bytes (Ed25519 needs 64).
pub const MAX_SIGNATURE_LEN: usize = 512;

/// What an anchor states: "the chain of `tenant_id` had `head` at
/// `anchored_at`", and who signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorStatement {
    /// The tenant whose chain is anchored.
    pub tenant_id: TenantId,
    /// The chain head signed.
    pub head: ChainHead,
    /// When it was signed.
    pub anchored_at: DateTime<Utc>,
    /// The operator whose key signs.
    pub operator_id: OperatorId,
    /// The signing key's id.
    pub key_id: KeyId,
    /// The signing key's public half.
    pub public_key: PublicKey,
}

impl AnchorStatement {
    /// The bytes the operator's key signs (see `docs/AUDIT.md`):
    ///
    /// ```text
    /// "security-anchor-v1" 0x00
    /// tenant_id (16)  u64be(head position)  head hash (32)
    /// i64be(unix seconds) u32be(nanoseconds)
    /// operator_id (16)  key_id (16)
    /// u64be(len) public key text
    /// ```
    pub fn signed_message(&self) -> Vec<u8> {
        let key = self.public_key.encoded.as_bytes();
        let mut message =
            Vec::with_capacity(ANCHOR_TAG.len() + 1 + 16 + 8 + 32 + 12 + 32 + 8 + key.len());
        message.extend_from_slice(ANCHOR_TAG);
        message.push(0);
        message.extend_from_slice(self.tenant_id.as_uuid().as_bytes());
        message.extend_from_slice(&self.head.position.to_be_bytes());
        message.extend_from_slice(self.head.hash.as_bytes());
        message.extend_from_slice(&self.anchored_at.timestamp().to_be_bytes());
        message.extend_from_slice(&self.anchored_at.timestamp_subsec_nanos().to_be_bytes());
        message.extend_from_slice(self.operator_id.as_uuid().as_bytes());
        message.extend_from_slice(self.key_id.as_uuid().as_bytes());
        message.extend_from_slice(&(key.len() as u64).to_be_bytes());
        message.extend_from_slice(key);
        message
    }
}

/// A signed anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// What is signed.
    #[serde(flatten)]
    pub statement: AnchorStatement,
    /// The signature of [`AnchorStatement::signed_message`], unpadded
    /// base64url.
    pub signature: String,
}

/// Commands of a tenant's anchor log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorCommand {
    /// Records a signed anchor. Records nothing when the head is at or
    /// before the last anchored one, or when the last anchor is less than
    /// `min_interval` older than this one: another replica anchored
    /// already.
    RecordAnchor {
        /// The signed anchor.
        anchor: Anchor,
        /// The least time between two anchors of the tenant.
        min_interval: chrono::Duration,
    },
}

/// Events of a tenant's anchor log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnchorEvent {
    /// The operator signed the tenant's chain head.
    ChainAnchored(Anchor),
}

impl_domain_event!(AnchorEvent, version = 1, types = [ChainAnchored]);

/// A tenant's anchor log: the last anchor recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnchorLog {
    /// The last anchor.
    pub last: Option<Anchor>,
    /// How many anchors were recorded.
    pub count: u64,
}

impl AnchorLog {
    /// The position of the last anchored head (0: none).
    pub fn last_position(&self) -> u64 {
        self.last.as_ref().map_or(0, |a| a.statement.head.position)
    }
}

impl Aggregate for AnchorLog {
    const TYPE: &'static str = "chain_anchor";
    type Command = AnchorCommand;
    type Event = AnchorEvent;
    type Error = DomainError;

    fn handle(
        &self,
        command: &AnchorCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<AnchorEvent>, DomainError> {
        let AnchorCommand::RecordAnchor {
            anchor,
            min_interval,
        } = command;
        if ctx.tenant_id != TenantId::SYSTEM {
            return Err(DomainError::InvalidState(
                "anchors are kept in the system tenant",
            ));
        }
        if anchor.signature.is_empty() || anchor.signature.len() > MAX_SIGNATURE_LEN {
            return Err(DomainError::InvalidState(
                "an anchor's signature is empty or too long",
            ));
        }
        if anchor.statement.head.position <= self.last_position() {
            return Ok(Vec::new());
        }
        if let Some(last) = &self.last
            && anchor.statement.anchored_at < last.statement.anchored_at + *min_interval
        {
            return Ok(Vec::new());
        }

        Ok(vec![AnchorEvent::ChainAnchored(anchor.clone())])
    }

    fn apply(&mut self, event: &AnchorEvent) {
        let AnchorEvent::ChainAnchored(anchor) = event;
        self.last = Some(anchor.clone());
        self.count += 1;
    }
}
