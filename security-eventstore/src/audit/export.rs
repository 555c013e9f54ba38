//! The audit export: one tenant's chain as JSON lines, with the operator's
//! keys and the anchors, enough to verify it offline (see `docs/AUDIT.md`).

use std::io::Write;

use chrono::{DateTime, Utc};
use security_core::chain::{Anchor, AnchorEvent, AnchorLog, ChainHead, ChainQuery, ChainRecord};
use security_core::{
    EventStore, Operator, OperatorId, Repository, SigningKey, StreamQuery, TenantId, replay,
};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The `format` of an export's header line.
pub const EXPORT_FORMAT: &str = "security-audit-export";

/// The version of the export format this build writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// Chain records read per step while exporting.
const PAGE: usize = 2_000;

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// Always [`EXPORT_VERSION`].
    pub version: u32,
    /// The tenant whose chain this is.
    pub tenant_id: TenantId,
    /// The operator whose keys sign the anchors.
    pub operator_id: OperatorId,
    /// When the export was made.
    pub exported_at: DateTime<Utc>,
    /// The head the store recorded when the export began; the export's
    /// events end exactly there (`None`: the tenant had no event).
    pub head: Option<ChainHead>,
}

/// One line of an export, tagged by `type`: the header first, then the
/// operator's keys, the anchors, and the events in chain order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "lines are read and written one at a time"
)]
pub enum ExportLine {
    /// The header.
    Header(ExportHeader),
    /// One of the operator's signing keys, with its life cycle.
    OperatorKey(SigningKey),
    /// A signed anchor of the tenant's chain.
    Anchor(Anchor),
    /// One event with its hashes.
    Event(ChainRecord),
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    /// Events written.
    pub events: u64,
    /// Anchors written.
    pub anchors: u64,
    /// The head the export ends at.
    pub head: Option<ChainHead>,
}

fn write_line<W: Write>(out: &mut W, line: &ExportLine) -> Result<(), Error> {
    serde_json::to_writer(&mut *out, line).map_err(|e| Error::Io(e.into()))?;
    out.write_all(b"\n").map_err(Error::Io)
}

/// Writes the export of `tenant`'s chain to `out` (wrap a file in a
/// `BufWriter`): the header, the keys of `operator_id`, every anchor of the
/// tenant up to the head, and every event up to the head the store
/// recorded when the export began.
pub async fn export_tenant<W: Write>(
    store: &dyn EventStore,
    tenant: TenantId,
    operator_id: OperatorId,
    exported_at: DateTime<Utc>,
    out: &mut W,
) -> Result<ExportSummary, Error> {
    let head = store.chain_head(tenant).await?;
    let until = head.map_or(0, |h| h.position);
    let operator_stream = Repository::stream_id::<Operator>(TenantId::SYSTEM, operator_id);
    let operator_events = store
        .read_stream(&operator_stream, StreamQuery::all())
        .await?;
    let operator = replay::<Operator>(&operator_stream, &operator_events)
        .map_err(Error::Decode)?
        .state;
    let anchor_stream = Repository::stream_id::<AnchorLog>(TenantId::SYSTEM, tenant.as_uuid());
    let mut anchors = Vec::new();
    for event in store
        .read_stream(&anchor_stream, StreamQuery::all())
        .await?
    {
        let AnchorEvent::ChainAnchored(anchor) =
            event.decode::<AnchorEvent>().map_err(Error::Decode)?;
        if anchor.statement.tenant_id == tenant && anchor.statement.head.position <= until {
            anchors.push(anchor);
        }
    }
    write_line(
        out,
        &ExportLine::Header(ExportHeader {
            format: EXPORT_FORMAT.to_owned(),
            version: EXPORT_VERSION,
            tenant_id: tenant,
            operator_id,
            exported_at,
            head,
        }),
    )?;
    for key in operator.signing_keys {
        write_line(out, &ExportLine::OperatorKey(key))?;
    }
    let mut summary = ExportSummary {
        events: 0,
        anchors: anchors.len() as u64,
        head,
    };
    for anchor in anchors {
        write_line(out, &ExportLine::Anchor(anchor))?;
    }
    let mut after = 0;
    while head.is_some() {
        let page = store
            .read_chain(
                tenant,
                ChainQuery {
                    after,
                    until,
                    limit: PAGE,
                },
            )
            .await?;
        for record in &page {
            summary.events += 1;
            after = record.global_position;
            write_line(out, &ExportLine::Event(record.clone()))?;
        }
        if page.len() < PAGE {
            break;
        }
    }
    out.flush().map_err(Error::Io)?;
    Ok(summary)
}
