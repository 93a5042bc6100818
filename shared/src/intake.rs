//! Intake: raw events → facts, with every event accounted for as read, duplicate, skipped
//! or rejected. Shared by the CLI's `replay` and `ingest` (and, later, the collector).

use std::collections::HashSet;

use crate::events::{self, Parsed, SkipReason};
use crate::ports::{IngestCounts, Quarantined, Record, record_key};

/// What happened to one event.
#[derive(Debug)]
pub enum Outcome {
    /// A fact not seen before in this intake (see [`record_key`]).
    Fact(Record),
    /// The same event again: a redelivery.
    Duplicate,
    Skipped(SkipReason),
    Rejected(Quarantined),
}

/// Parses events and keeps the counts. `dedupe` remembers record keys (replays); an intake
/// feeding an event log leaves that to the log, which knows what earlier runs stored.
#[derive(Debug, Default)]
pub struct Intake {
    pub counts: IngestCounts,
    seen: Option<HashSet<String>>,
}

impl Intake {
    pub fn new(dedupe: bool) -> Self {
        Self {
            counts: IngestCounts::default(),
            seen: dedupe.then(HashSet::new),
        }
    }

    /// Reads one event; `origin` says where it came from (`file:line`).
    pub fn offer(&mut self, origin: impl FnOnce() -> String, bytes: &[u8]) -> Outcome {
        self.counts.read += 1;
        match events::parse_event(bytes) {
            Ok(Parsed::Fact(fact)) => {
                let key = record_key(&fact);
                if let Some(seen) = &mut self.seen {
                    if !seen.insert(key.clone()) {
                        self.counts.duplicates += 1;
                        return Outcome::Duplicate;
                    }
                }
                Outcome::Fact(Record { key, fact })
            }
            Ok(Parsed::Skipped(reason)) => {
                self.counts.skipped += 1;
                Outcome::Skipped(reason)
            }
            Err(error) => {
                self.counts.rejected += 1;
                Outcome::Rejected(Quarantined {
                    origin: origin(),
                    reason: error.to_string(),
                    body: String::from_utf8_lossy(bytes).into_owned(),
                })
            }
        }
    }
}
