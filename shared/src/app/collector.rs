//! The collector service: what happens to one raw event, however it arrives (a Lambda
//! invocation, the CLI's backfill, a re-drive of the quarantine, the silent-job check) — read
//! it, append it to the event log, re-project its billing group.
//!
//! A bad event is quarantined with its reason and the caller is told; it never fails the
//! others. A storage failure is an error: the caller retries (Lambda's asynchronous retries,
//! then the dead-letter queue). A redelivered event is appended as a no-op but still
//! re-projected, so an invocation that stored an event and died before projecting it is
//! completed by the redelivery.

use super::intake::{Read, read_event};
use crate::core::activity::SettledJob;
use crate::core::facts::Fact;
use crate::ports::{EventLog, Projector, Quarantine, Record, StoreError};

/// What a re-drive of the quarantine did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Redriven {
    /// Read now, appended (and projected), and taken out of the quarantine.
    pub stored: u64,
    /// Read now as events batchguard does not keep: taken out too.
    pub skipped: u64,
    /// Still unreadable: left in the quarantine, with today's reason.
    pub still_quarantined: Vec<StillQuarantined>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StillQuarantined {
    pub origin: String,
    pub reason: String,
}

/// What the collector did with one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Collected {
    /// Appended (or already there: `new` is false) and projected.
    Stored {
        new: bool,
        /// What the event said.
        fact: Box<Fact>,
        /// The job's cost and activity, when this event settled (or revised) it.
        settled: Option<Box<SettledJob>>,
    },
    /// Not an event batchguard reads.
    Skipped { reason: String },
    /// Unreadable: kept in the quarantine with this reason.
    Quarantined { reason: String },
}

/// Parse, append, project.
#[derive(Clone, Debug)]
pub struct Collector<L, P> {
    log: L,
    projector: P,
}

impl<L, P> Collector<L, P>
where
    L: EventLog + Quarantine + Sync,
    P: Projector + Sync,
{
    pub fn new(log: L, projector: P) -> Self {
        Self { log, projector }
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    pub fn projector(&self) -> &P {
        &self.projector
    }

    /// Offers every quarantined event again — after a fix to the parser, or to prices — and
    /// takes out of the quarantine what is read now. What still cannot be read stays, once.
    pub async fn redrive(&self) -> Result<Redriven, StoreError> {
        let mut report = Redriven::default();
        for entry in self.log.list_quarantined().await? {
            match read_event(entry.body.as_bytes(), || entry.origin.clone()) {
                Read::Rejected(rejected) => report.still_quarantined.push(StillQuarantined {
                    origin: entry.origin.clone(),
                    reason: rejected.reason,
                }),
                Read::Skipped(_) => {
                    report.skipped += 1;
                    self.log.release(&entry).await?;
                }
                Read::Fact(fact) => {
                    self.store(fact).await?;
                    report.stored += 1;
                    self.log.release(&entry).await?;
                }
            }
        }
        Ok(report)
    }

    /// Collects one raw event; `origin` names where it came from (for the quarantine).
    pub async fn collect(&self, bytes: &[u8], origin: &str) -> Result<Collected, StoreError> {
        match read_event(bytes, || origin.to_owned()) {
            Read::Fact(fact) => self.store(fact).await,
            Read::Skipped(reason) => Ok(Collected::Skipped {
                reason: reason.to_string(),
            }),
            Read::Rejected(rejected) => {
                let reason = rejected.reason.clone();
                self.log.quarantine(&[rejected]).await?;
                Ok(Collected::Quarantined { reason })
            }
        }
    }

    /// Appends a fact batchguard wrote itself (not read from an event) and re-projects its
    /// billing group.
    pub async fn record(&self, fact: Fact) -> Result<Collected, StoreError> {
        self.store(fact).await
    }

    /// Appends a fact and re-projects its billing group.
    async fn store(&self, fact: Fact) -> Result<Collected, StoreError> {
        let appended = self.log.append(&[Record::new(fact.clone())]).await?;
        let settled = self.projector.project(&fact).await?;
        Ok(Collected::Stored {
            new: appended.new > 0,
            fact: Box::new(fact),
            settled: settled.map(Box::new),
        })
    }
}
