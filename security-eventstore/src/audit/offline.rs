//! The offline verifier: checks an export with nothing but the file and
//! the operator's public key(s).

use std::collections::HashMap;
use std::io::BufRead;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use security_core::chain::{Anchor, ChainBreak, ChainHead, ChainReport, ChainVerifier};
use security_core::{KeyId, SigningKey, TenantId};
use security_crypto::{CryptoError, Ed25519PublicKey};
use serde::Serialize;

use super::export::{EXPORT_FORMAT, EXPORT_VERSION, ExportHeader, ExportLine};
use crate::error::Error;

/// The longest line read, in bytes (a stored event is far smaller).
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Reads an operator public key given as an nkey (`O…`) or as PEM
/// (`-----BEGIN PUBLIC KEY-----`, Ed25519).
pub fn parse_operator_key(text: &str) -> Result<Ed25519PublicKey, CryptoError> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        Ed25519PublicKey::from_pem(text)
    } else {
        Ed25519PublicKey::from_nkey(text)
    }
}

/// What was found about one anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AnchorVerdict {
    /// Signed by a trusted key, valid at the time, and the anchored head is
    /// on the chain.
    Valid,
    /// The key that signed is not one of the trusted keys.
    UntrustedKey,
    /// The signature does not verify.
    BadSignature,
    /// The export lists no such operator key.
    UnknownKey,
    /// The key was not valid when the anchor says it signed (not yet
    /// created, expired or revoked).
    KeyNotValidThen,
    /// The anchored head is not on the exported chain (the chain was
    /// rewritten after it was anchored).
    NotOnChain,
    /// The anchor is about another tenant.
    OtherTenant,
}

/// One anchor of the export, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorCheck {
    /// Its line (from 1).
    pub line: u64,
    /// The anchored head.
    pub head: ChainHead,
    /// When it was signed.
    pub anchored_at: DateTime<Utc>,
    /// The key that signed.
    pub key_id: KeyId,
    /// The finding.
    pub verdict: AnchorVerdict,
}

/// What the offline verifier found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportVerification {
    /// The header.
    pub tenant_id: TenantId,
    /// The head the export says it ends at.
    pub head: Option<ChainHead>,
    /// The chain walk (a break's locator is its line number; 1, the header,
    /// for a break about the recorded head).
    pub chain: ChainReport,
    /// Every anchor, checked.
    pub anchors: Vec<AnchorCheck>,
}

impl ExportVerification {
    /// The position of the last event covered by a valid anchor.
    pub fn anchored_up_to(&self) -> Option<u64> {
        self.anchors
            .iter()
            .filter(|a| a.verdict == AnchorVerdict::Valid)
            .map(|a| a.head.position)
            .max()
    }

    /// The first anchor that is not valid.
    pub fn first_bad_anchor(&self) -> Option<&AnchorCheck> {
        self.anchors
            .iter()
            .find(|a| a.verdict != AnchorVerdict::Valid)
    }

    /// The chain's first break, with its line.
    pub fn first_break(&self) -> Option<ChainBreak> {
        self.chain.first_break
    }

    /// Whether the export is trustworthy: the chain is intact, every
    /// anchor is valid, and (when there are events) at least one valid
    /// anchor covers them. Events after the last anchor are chained but
    /// not signed: [`anchored_up_to`](Self::anchored_up_to) says where
    /// signed coverage ends.
    pub fn is_valid(&self) -> bool {
        self.chain.is_intact()
            && self.first_bad_anchor().is_none()
            && (self.chain.checked == 0 || self.anchored_up_to().is_some())
    }
}

fn malformed(line: u64, reason: &'static str) -> Error {
    Error::MalformedExport { line, reason }
}

fn check_anchor(
    anchor: &Anchor,
    tenant: TenantId,
    keys: &HashMap<KeyId, SigningKey>,
    trusted: &[Ed25519PublicKey],
) -> AnchorVerdict {
    let statement = &anchor.statement;
    if statement.tenant_id != tenant {
        return AnchorVerdict::OtherTenant;
    }
    let Ok(public) = Ed25519PublicKey::from_public_key(&statement.public_key) else {
        return AnchorVerdict::UntrustedKey;
    };
    if !trusted.iter().any(|t| t.to_bytes() == public.to_bytes()) {
        return AnchorVerdict::UntrustedKey;
    }
    let signature = URL_SAFE_NO_PAD
        .decode(anchor.signature.as_bytes())
        .unwrap_or_default();
    if !public.verify(&statement.signed_message(), &signature) {
        return AnchorVerdict::BadSignature;
    }
    let Some(key) = keys
        .get(&statement.key_id)
        .filter(|k| k.public_key == statement.public_key)
    else {
        return AnchorVerdict::UnknownKey;
    };
    if statement.anchored_at < key.created_at || !key.is_valid_at(statement.anchored_at) {
        return AnchorVerdict::KeyNotValidThen;
    }
    AnchorVerdict::Valid
}

/// Verifies an export read from `reader` against the operator's trusted
/// public keys (see [`parse_operator_key`]).
///
/// Checks the chain from its first event to the head in the header (see
/// [`ChainVerifier`]), and every anchor: its key must be trusted and listed
/// with a life cycle that makes it valid when it signed, its signature
/// must verify, and the head it signed must be on the chain. A file that
/// is not an export (a line that is not JSON, lines out of their order) is
/// an [`Error::MalformedExport`] naming the line.
pub fn verify_export<R: BufRead>(
    mut reader: R,
    trusted: &[Ed25519PublicKey],
) -> Result<ExportVerification, Error> {
    let mut text = String::new();
    let mut line = 0_u64;
    let mut header: Option<ExportHeader> = None;
    let mut keys: HashMap<KeyId, SigningKey> = HashMap::new();
    let mut anchors: Vec<AnchorCheck> = Vec::new();
    // Anchored positions still to be found on the chain: position -> indexes.
    let mut pending: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut verifier: Option<ChainVerifier> = None;
    let mut events_started = false;
    loop {
        text.clear();
        let read = std::io::Read::take(reader.by_ref(), MAX_LINE as u64 + 1)
            .read_line(&mut text)
            .map_err(Error::Io)?;
        if read == 0 {
            break;
        }
        line += 1;
        if text.len() > MAX_LINE {
            return Err(malformed(line, "the line is too long"));
        }
        if text.trim().is_empty() {
            continue;
        }
        let parsed: ExportLine = serde_json::from_str(&text)
            .map_err(|_| malformed(line, "not a line of an audit export"))?;
        match parsed {
            ExportLine::Header(h) => {
                if header.is_some() || line != 1 {
                    return Err(malformed(line, "the header must be the first line, once"));
                }
                if h.format != EXPORT_FORMAT || h.version != EXPORT_VERSION {
                    return Err(malformed(line, "not an export of a known format version"));
                }
                verifier = Some(ChainVerifier::from_genesis().expecting_head(h.head));
                header = Some(h);
            }
            _ if header.is_none() => {
                return Err(malformed(line, "the header must be the first line, once"));
            }
            ExportLine::OperatorKey(key) => {
                if !anchors.is_empty() || events_started {
                    return Err(malformed(
                        line,
                        "operator keys come before anchors and events",
                    ));
                }
                keys.insert(key.key_id, key);
            }
            ExportLine::Anchor(anchor) => {
                if events_started {
                    return Err(malformed(line, "anchors come before events"));
                }
                let tenant = header.as_ref().map_or(TenantId::SYSTEM, |h| h.tenant_id);
                let verdict = check_anchor(&anchor, tenant, &keys, trusted);
                if verdict == AnchorVerdict::Valid {
                    pending
                        .entry(anchor.statement.head.position)
                        .or_default()
                        .push(anchors.len());
                }
                anchors.push(AnchorCheck {
                    line,
                    head: anchor.statement.head,
                    anchored_at: anchor.statement.anchored_at,
                    key_id: anchor.statement.key_id,
                    verdict,
                });
            }
            ExportLine::Event(record) => {
                events_started = true;
                if let Some(indexes) = pending.remove(&record.global_position) {
                    for index in indexes {
                        if let Some(check) = anchors.get_mut(index)
                            && check.head.hash != record.hash
                        {
                            check.verdict = AnchorVerdict::NotOnChain;
                        }
                    }
                }
                if let Some(verifier) = verifier.as_mut() {
                    verifier.push(&record, line);
                }
            }
        }
    }
    let (Some(header), Some(verifier)) = (header, verifier) else {
        return Err(malformed(line.max(1), "the export has no header"));
    };
    for index in pending.into_values().flatten() {
        if let Some(check) = anchors.get_mut(index) {
            check.verdict = AnchorVerdict::NotOnChain;
        }
    }
    let mut chain = verifier.finish();
    if let Some(b) = chain.first_break.as_mut()
        && b.locator == 0
    {
        b.locator = 1;
    }
    Ok(ExportVerification {
        tenant_id: header.tenant_id,
        head: header.head,
        chain,
        anchors,
    })
}
