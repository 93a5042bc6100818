//! Intake: raw events → facts, with every event accounted for as read, duplicate, skipped or
//! rejected. [`read_event`] is the one place an event is parsed and, if unreadable, turned into
//! a quarantine entry with its reason: the CLI's `replay` and `ingest` read through [`Intake`],
//! the collector service (`app::collector`) through [`read_event`] itself.

use std::collections::HashSet;
use std::hash::Hash;

use crate::core::facts::Fact;
use crate::events::{self, Parsed, SkipReason};
use crate::ports::{IngestCounts, Quarantined};

/// What reading one raw event gives.
#[allow(
    clippy::large_enum_variant,
    reason = "almost every event is a fact: boxing would allocate on the common path to save stack on the rare one"
)]
#[derive(Debug)]
pub enum Read {
    Fact(Fact),
    /// Well-formed, but not an event batchguard keeps.
    Skipped(SkipReason),
    /// Unreadable: the quarantine entry, with the reason and the event as received.
    Rejected(Quarantined),
}

/// Parses one event; `origin` says where it came from (`file:line`, a Lambda request id) and is
/// asked for only when the event is rejected.
pub fn read_event(bytes: &[u8], origin: impl FnOnce() -> String) -> Read {
    match events::parse_event(bytes) {
        Ok(Parsed::Fact(fact)) => Read::Fact(fact),
        Ok(Parsed::Skipped(reason)) => Read::Skipped(reason),
        Err(error) => Read::Rejected(Quarantined {
            origin: origin(),
            reason: error.to_string(),
            body: String::from_utf8_lossy(bytes).into_owned(),
        }),
    }
}

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

    /// Counts bytes that cannot be an event whatever they say (the rest of a broken file) as
    /// rejected, with `reason`.
    pub fn refuse(&mut self, origin: String, bytes: &[u8], reason: &str) -> Outcome {
        self.counts.read += 1;
        self.counts.rejected += 1;
        Outcome::Rejected(Quarantined {
            origin,
            reason: reason.to_owned(),
            body: String::from_utf8_lossy(bytes).into_owned(),
        })
    }

    /// Reads one event; `origin` says where it came from (`file:line`).
    pub fn offer(&mut self, origin: impl FnOnce() -> String, bytes: &[u8]) -> Outcome {
        self.counts.read += 1;
        match read_event(bytes, origin) {
            Read::Fact(fact) => {
                if let Some(seen) = &mut self.seen
                    && !seen.insert(digest(&fact))
                {
                    self.counts.duplicates += 1;
                    return Outcome::Duplicate;
                }
                Outcome::Fact(fact)
            }
            Read::Skipped(reason) => {
                self.counts.skipped += 1;
                Outcome::Skipped(reason)
            }
            Read::Rejected(quarantined) => {
                self.counts.rejected += 1;
                Outcome::Rejected(quarantined)
            }
        }
    }
}
