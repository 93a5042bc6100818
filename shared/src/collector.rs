//! The collector's work for one event, independent of how it arrives (a Lambda invocation,
//! the CLI's backfill): parse, append to the event log, re-project the billing group.
//!
//! A bad event is quarantined with its reason and the caller is told; it never fails the
//! others. A storage failure is an error: the caller retries (Lambda's asynchronous retries,
//! then the dead-letter queue). A redelivered event is appended as a no-op but still
//! re-projected, so an invocation that stored an event and died before projecting it is
//! completed by the redelivery.

use std::future::Future;

use crate::core::activity::SettledJob;
use crate::core::facts::Fact;
use crate::events::{self, Parsed};
use crate::ports::{EventLog, Quarantine, Quarantined, Record, StoreError};

/// Keeps projections in step with the event log.
pub trait Projector {
    /// Re-projects the billing group of a fact already in the log; the job's cost and
    /// activity when the change left it settled.
    fn project(
        &self,
        fact: &Fact,
    ) -> impl Future<Output = Result<Option<SettledJob>, StoreError>> + Send;
}

impl Projector for crate::adapters::dynamodb_projection::DynamoProjector {
    async fn project(&self, fact: &Fact) -> Result<Option<SettledJob>, StoreError> {
        crate::adapters::dynamodb_projection::DynamoProjector::project(self, fact)
            .await
            .map(|projected| projected.settled)
    }
}

/// For stores that keep no projections (SQLite: `status` folds the log).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProjection;

impl Projector for NoProjection {
    async fn project(&self, _fact: &Fact) -> Result<Option<SettledJob>, StoreError> {
        Ok(None)
    }
}

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

    /// Offers every quarantined event again — after a fix to the parser, or to prices — and
    /// takes out of the quarantine what is read now. What still cannot be read stays, once.
    pub async fn redrive(&self) -> Result<Redriven, StoreError> {
        let mut report = Redriven::default();
        for entry in self.log.list_quarantined().await? {
            match events::parse_event(entry.body.as_bytes()) {
                Err(error) => report.still_quarantined.push(StillQuarantined {
                    origin: entry.origin.clone(),
                    reason: error.to_string(),
                }),
                Ok(_) => {
                    match self.collect(entry.body.as_bytes(), &entry.origin).await? {
                        Collected::Stored { .. } => report.stored += 1,
                        Collected::Skipped { .. } => report.skipped += 1,
                        // parse_event just read it: the collector reads it the same way.
                        Collected::Quarantined { reason } => {
                            report.still_quarantined.push(StillQuarantined {
                                origin: entry.origin.clone(),
                                reason,
                            });
                            continue;
                        }
                    }
                    self.log.release(&entry).await?;
                }
            }
        }
        Ok(report)
    }

    /// Collects one raw event; `origin` names where it came from (for the quarantine).
    pub async fn collect(&self, bytes: &[u8], origin: &str) -> Result<Collected, StoreError> {
        let fact = match events::parse_event(bytes) {
            Ok(Parsed::Fact(fact)) => fact,
            Ok(Parsed::Skipped(reason)) => {
                return Ok(Collected::Skipped {
                    reason: reason.to_string(),
                });
            }
            Err(error) => {
                let reason = error.to_string();
                self.log
                    .quarantine(&[Quarantined {
                        origin: origin.to_owned(),
                        reason: reason.clone(),
                        body: String::from_utf8_lossy(bytes).into_owned(),
                    }])
                    .await?;
                return Ok(Collected::Quarantined { reason });
            }
        };
        let appended = self.log.append(&[Record::new(fact.clone())]).await?;
        let settled = self.projector.project(&fact).await?;
        Ok(Collected::Stored {
            new: appended.new > 0,
            fact: Box::new(fact),
            settled: settled.map(Box::new),
        })
    }
}
