//! Walking a tenant's chain and naming its first break.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::encoding::{ChainHash, ChainHead, ChainRecord};

/// How many verified hashes are remembered to recognise inserted events,
/// and how many records after a failing one are read to tell a moved event
/// from an altered one.
const WINDOW: usize = 64;

/// What kind of damage a break is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BreakKind {
    /// The event's fields (payload, time, type, ...) or its stored hashes
    /// no longer give its stored hash: it was changed in place.
    Altered,
    /// The event is intact but its predecessor is not the event before it:
    /// one or more events before it were removed.
    Missing,
    /// The event does not belong to the chain: it was added between two
    /// events that were chained to each other (or after the recorded head).
    Inserted,
    /// The event belongs elsewhere in the chain: events were swapped or
    /// moved to other positions.
    Reordered,
    /// The chain ends before the head the store recorded: its last events
    /// were removed. The position is the recorded head's.
    Truncated,
    /// The chain ends at the recorded head's position with another hash:
    /// the chain or the recorded head was rewritten.
    HeadMismatch,
}

impl BreakKind {
    /// A short description, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Altered => "the event was changed in place",
            Self::Missing => "events before this one were removed",
            Self::Inserted => "this event was added to the chain",
            Self::Reordered => "this event was moved from its place in the chain",
            Self::Truncated => "the chain ends before its recorded head",
            Self::HeadMismatch => "the chain's last event is not its recorded head",
        }
    }
}

/// The first place where a chain does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChainBreak {
    /// The global position of the first event that does not verify (for
    /// [`BreakKind::Truncated`] and [`BreakKind::HeadMismatch`]: the
    /// recorded head's position).
    pub position: u64,
    /// The caller's locator of that record (a line number in a file, the
    /// position for a store); 0 when the break is about the recorded head.
    pub locator: u64,
    /// What is wrong.
    pub kind: BreakKind,
}

/// What a walk of a chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// How many records were read.
    pub checked: u64,
    /// The first record's position.
    pub first_position: Option<u64>,
    /// The last record read (the verified head when there is no break).
    pub last: Option<ChainHead>,
    /// The head the store recorded, when it was checked against.
    pub recorded_head: Option<ChainHead>,
    /// The first break, if any.
    pub first_break: Option<ChainBreak>,
}

impl ChainReport {
    /// Whether every record verified (and the recorded head matched).
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// A record that did not verify, waiting for the records after it to say
/// why.
#[derive(Debug, Clone, Copy)]
struct Suspect {
    position: u64,
    locator: u64,
    prev_hash: ChainHash,
    /// Its stored `prev_hash` was the expected predecessor.
    linked: bool,
    /// Its stored hash matched its fields.
    consistent: bool,
    /// Records read after it.
    seen_after: usize,
}

impl Suspect {
    /// What the suspect is when nothing after it says otherwise: intact
    /// but unlinked, events before it are missing; otherwise it was changed.
    fn fallback(self) -> BreakKind {
        if self.consistent {
            BreakKind::Missing
        } else {
            BreakKind::Altered
        }
    }
}

/// Verifies a chain record by record, in global-position order.
///
/// Push every record, then call [`finish`](Self::finish). Memory stays
/// bounded (a window of recent hashes), so a chain of any length can be
/// streamed from a store or a file. Once a break is found the rest is only
/// counted.
///
/// Each record is checked twice: its stored hash must be what its fields
/// and its stored `prev_hash` give, and its `prev_hash` must be the hash of
/// the record before it. How a failure is named (see [`BreakKind`]) uses
/// the records around it: an intact record whose predecessor is an earlier
/// record than the one before it follows inserted records; one whose
/// predecessor is unknown follows removed records; a record that does not
/// verify and whose predecessor comes later was moved; one that the next
/// record skips was inserted.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_prev: Option<ChainHash>,
    recorded_head: Option<ChainHead>,
    /// The last verified records and their locators.
    recent: VecDeque<(ChainHead, u64)>,
    report: ChainReport,
    suspect: Option<Suspect>,
}

impl ChainVerifier {
    /// A walk from a tenant's first event: its `prev_hash` must be
    /// [`ChainHash::GENESIS`].
    pub fn from_genesis() -> Self {
        Self::resume(Some(ChainHash::GENESIS))
    }

    /// A walk from the middle of a chain: the first record's `prev_hash`
    /// must be `prev` (`None`: taken as it is, for a range whose
    /// predecessor is not known).
    pub fn resume(prev: Option<ChainHash>) -> Self {
        Self {
            expected_prev: prev,
            recorded_head: None,
            recent: VecDeque::with_capacity(WINDOW),
            report: ChainReport {
                checked: 0,
                first_position: None,
                last: None,
                recorded_head: None,
                first_break: None,
            },
            suspect: None,
        }
    }

    /// Checks the walk against the head the store recorded (read before
    /// the walk, which then stops at its position): a record after it is
    /// [`BreakKind::Inserted`]; at the end, fewer records are
    /// [`BreakKind::Truncated`] and another hash at its position
    /// [`BreakKind::HeadMismatch`].
    #[must_use]
    pub fn expecting_head(mut self, head: Option<ChainHead>) -> Self {
        self.recorded_head = head;
        self.report.recorded_head = head;
        self
    }

    /// The first break found so far.
    pub fn first_break(&self) -> Option<ChainBreak> {
        self.report.first_break
    }

    /// How many records were pushed.
    pub fn checked(&self) -> u64 {
        self.report.checked
    }

    /// Checks the next record. `locator` is the caller's name for it (a
    /// line number, a position), returned in a [`ChainBreak`].
    pub fn push(&mut self, record: &ChainRecord, locator: u64) {
        self.report.checked += 1;
        self.report
            .first_position
            .get_or_insert(record.global_position);
        if self.report.first_break.is_some() {
            return;
        }
        if let Some(suspect) = self.suspect.as_mut() {
            suspect.seen_after += 1;
            let suspect = *suspect;
            if record.hash == suspect.prev_hash {
                // The suspect's predecessor comes after it.
                self.broke(suspect.position, suspect.locator, BreakKind::Reordered);
            } else if suspect.seen_after == 1 && Some(record.prev_hash) == self.expected_prev {
                // The next record skips the suspect.
                self.broke(suspect.position, suspect.locator, BreakKind::Inserted);
            } else if suspect.linked || suspect.seen_after >= WINDOW {
                self.broke(suspect.position, suspect.locator, suspect.fallback());
            }
            return;
        }
        if self
            .recorded_head
            .is_some_and(|head| record.global_position > head.position)
        {
            self.broke(record.global_position, locator, BreakKind::Inserted);
            return;
        }
        if let Some(last) = self.report.last
            && record.global_position <= last.position
        {
            self.broke(record.global_position, locator, BreakKind::Reordered);
            return;
        }
        let linked = self.expected_prev.is_none_or(|e| e == record.prev_hash);
        let consistent = record.is_consistent();
        if consistent && !linked {
            // Chained to an earlier record: what came after that one was
            // inserted.
            if let Some(&(first, first_locator)) = self
                .recent
                .iter()
                .position(|(head, _)| head.hash == record.prev_hash)
                .and_then(|index| self.recent.get(index + 1))
            {
                self.broke(first.position, first_locator, BreakKind::Inserted);
                return;
            }
        }
        if !consistent || !linked {
            self.suspect = Some(Suspect {
                position: record.global_position,
                locator,
                prev_hash: record.prev_hash,
                linked,
                consistent,
                seen_after: 0,
            });
            return;
        }
        let head = record.as_head();
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((head, locator));
        self.report.last = Some(head);
        self.expected_prev = Some(record.hash);
    }

    fn broke(&mut self, position: u64, locator: u64, kind: BreakKind) {
        self.suspect = None;
        self.report.first_break = Some(ChainBreak {
            position,
            locator,
            kind,
        });
    }

    /// Ends the walk and checks its end against the recorded head (see
    /// [`expecting_head`](Self::expecting_head)).
    pub fn finish(mut self) -> ChainReport {
        if let Some(suspect) = self.suspect.take() {
            self.broke(suspect.position, suspect.locator, suspect.fallback());
        }
        if self.report.first_break.is_none()
            && let Some(head) = self.recorded_head
        {
            let kind = match self.report.last {
                Some(last) if last.position == head.position && last.hash == head.hash => None,
                Some(last) if last.position == head.position => Some(BreakKind::HeadMismatch),
                _ => Some(BreakKind::Truncated),
            };
            if let Some(kind) = kind {
                self.broke(head.position, 0, kind);
            }
        }
        self.report
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::ids::{EventId, TenantId};

    /// A chain of `n` records at positions 10, 20, 30, ...
    fn chain(n: u64) -> Vec<ChainRecord> {
        let mut prev = ChainHash::GENESIS;
        (1..=n)
            .map(|i| {
                let mut record = ChainRecord {
                    global_position: i * 10,
                    event_id: EventId::from_uuid(Uuid::from_u128(u128::from(i))),
                    tenant_id: TenantId::from_uuid(Uuid::from_u128(7)),
                    aggregate_type: Arc::from("user"),
                    aggregate_id: Uuid::from_u128(1),
                    version: i,
                    event_type: Arc::from("UserAuthenticated"),
                    schema_version: 1,
                    occurred_at: Utc
                        .timestamp_opt(1_700_000_000 + i64::try_from(i).unwrap_or(0), 0)
                        .single()
                        .unwrap_or_default(),
                    payload: Arc::from(format!("{{\"n\":{i}}}")),
                    metadata: Arc::from("{}"),
                    prev_hash: prev,
                    hash: ChainHash::GENESIS,
                };
                record.hash = record.computed_hash();
                prev = record.hash;
                record
            })
            .collect()
    }

    fn walk(records: &[ChainRecord], head: Option<ChainHead>) -> ChainReport {
        let mut verifier = ChainVerifier::from_genesis().expecting_head(head);
        for (line, record) in records.iter().enumerate() {
            verifier.push(record, line as u64 + 1);
        }
        verifier.finish()
    }

    fn head_of(records: &[ChainRecord]) -> Option<ChainHead> {
        records.last().map(ChainRecord::as_head)
    }

    fn first_break(records: &[ChainRecord], head: Option<ChainHead>) -> (u64, u64, BreakKind) {
        let report = walk(records, head);
        let b = report.first_break.unwrap_or(ChainBreak {
            position: 0,
            locator: 0,
            kind: BreakKind::Altered,
        });
        assert!(!report.is_intact(), "no break found");
        (b.position, b.locator, b.kind)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let records = chain(200);
        let report = walk(&records, head_of(&records));
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.checked, 200);
        assert_eq!(report.last, head_of(&records));
        assert!(walk(&[], None).is_intact());
    }

    #[test]
    fn a_changed_payload_or_time_is_altered() {
        let mut records = chain(100);
        let head = head_of(&records);
        records[40].payload = Arc::from("{\"n\":999}");
        assert_eq!(first_break(&records, head), (410, 41, BreakKind::Altered));
        let mut records = chain(100);
        records[99].occurred_at += chrono::Duration::seconds(1);
        assert_eq!(first_break(&records, head), (1000, 100, BreakKind::Altered));
    }

    #[test]
    fn a_removed_event_is_missing() {
        let mut records = chain(100);
        let head = head_of(&records);
        records.remove(50);
        assert_eq!(first_break(&records, head), (520, 51, BreakKind::Missing));
        let mut records = chain(10);
        records.remove(0);
        assert_eq!(
            first_break(&records, head_of(&records)),
            (20, 1, BreakKind::Missing)
        );
    }

    #[test]
    fn swapped_positions_are_reordered() {
        let mut records = chain(100);
        let head = head_of(&records);
        let (a, b) = (records[30].global_position, records[31].global_position);
        records[30].global_position = b;
        records[31].global_position = a;
        records.swap(30, 31);
        assert_eq!(first_break(&records, head), (310, 31, BreakKind::Reordered));
        // Far apart.
        let mut records = chain(100);
        let (a, b) = (records[10].global_position, records[40].global_position);
        records[10].global_position = b;
        records[40].global_position = a;
        records.swap(10, 40);
        assert_eq!(first_break(&records, head), (110, 11, BreakKind::Reordered));
        // Lines out of position order.
        let mut records = chain(100);
        records.swap(60, 61);
        assert_eq!(first_break(&records, head), (620, 61, BreakKind::Reordered));
    }

    fn forged(after: &ChainRecord, position: u64, valid: bool) -> ChainRecord {
        let mut record = after.clone();
        record.global_position = position;
        record.event_id = EventId::from_uuid(Uuid::from_u128(0xf0f0));
        record.payload = Arc::from("{\"forged\":true}");
        record.prev_hash = after.hash;
        record.hash = if valid {
            record.computed_hash()
        } else {
            ChainHash::from_bytes([7; 32])
        };
        record
    }

    #[test]
    fn forged_events_are_inserted() {
        for valid in [true, false] {
            let mut records = chain(100);
            let head = head_of(&records);
            let forged = forged(&records[19], 205, valid);
            records.insert(20, forged);
            assert_eq!(
                first_break(&records, head),
                (205, 21, BreakKind::Inserted),
                "valid hash: {valid}"
            );
            // After the recorded head.
            let mut records = chain(100);
            let forged = forged_end(&records, valid);
            records.push(forged);
            assert_eq!(
                first_break(&records, head),
                (1005, 101, BreakKind::Inserted),
                "valid hash: {valid}"
            );
        }
    }

    fn forged_end(records: &[ChainRecord], valid: bool) -> ChainRecord {
        forged(&records[records.len() - 1], 1005, valid)
    }

    #[test]
    fn a_truncated_tail_or_rewritten_head_is_found() {
        let mut records = chain(100);
        let head = head_of(&records);
        records.truncate(97);
        assert_eq!(first_break(&records, head), (1000, 0, BreakKind::Truncated));
        assert_eq!(first_break(&[], head), (1000, 0, BreakKind::Truncated));
        let records = chain(100);
        let other = Some(ChainHead {
            position: 1000,
            hash: ChainHash::from_bytes([1; 32]),
        });
        assert_eq!(
            first_break(&records, other),
            (1000, 0, BreakKind::HeadMismatch)
        );
    }

    #[test]
    fn a_range_resumes_from_its_first_record() {
        let records = chain(100);
        let mut verifier = ChainVerifier::resume(None);
        for record in &records[50..] {
            verifier.push(record, record.global_position);
        }
        assert!(verifier.finish().is_intact());
        let mut verifier = ChainVerifier::resume(Some(records[48].hash));
        verifier.push(&records[50], 510);
        assert_eq!(
            verifier.finish().first_break.map(|b| b.kind),
            Some(BreakKind::Missing)
        );
    }
}
