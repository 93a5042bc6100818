//! Intake: raw events → facts, with every event accounted for as read, duplicate, skipped
//! or rejected. Shared by the CLI's `replay` and `ingest` (and, later, the collector).

use std::collections::HashSet;

use crate::events::{self, Parsed, SkipReason};
use std::hash::Hash;

use crate::core::facts::Fact;
use crate::ports::{IngestCounts, Quarantined};

/// What happened to one event.
#[allow(
    clippy::large_enum_variant,
    reason = "almost every event is a fact: boxing would allocate on the common path to save stack on the rare one"
)]
#[derive(Debug)]
pub enum Outcome {
    /// A fact not seen before in this intake.
    Fact(Fact),
    /// The same event again: a redelivery.
    Duplicate,
    Skipped(SkipReason),
    Rejected(Quarantined),
}

/// Parses events and keeps the counts. `dedupe` remembers what it has seen (replays); an
/// intake feeding an event log leaves that to the log, which knows what earlier runs stored.
#[derive(Debug, Default)]
pub struct Intake {
    pub counts: IngestCounts,
    /// 128-bit digests of the facts seen. They live only as long as the intake, so the
    /// derived `Hash` (whose byte layout Rust does not promise across versions) is enough;
    /// persisted keys use [`crate::ports::record_key`].
    seen: Option<HashSet<u128>>,
}

fn digest(fact: &Fact) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    fact.hash(&mut hasher);
    hasher.digest128()
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
                if let Some(seen) = &mut self.seen
                    && !seen.insert(digest(&fact))
                {
                    self.counts.duplicates += 1;
                    return Outcome::Duplicate;
                }
                Outcome::Fact(fact)
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
