//! The silent-job check: a lost terminal event must not leave phantom spend growing. Jobs that
//! are still running in the projections but have been silent for longer than a threshold are
//! looked up with `DescribeJobs`; their current state, written as the event AWS would have sent,
//! goes through the collector like any other event (so a job that ended stops accruing).
//! Jobs Batch no longer knows are reported, not guessed at. (Not to be confused with
//! reconciling a day with the bill: `analysis::bill`.)

use serde::Serialize;

use super::collector::{Collected, Collector};
use crate::ports::{
    BatchControl, ControlError, EventLog, Projector, Quarantine, SilentJobs, StoreError,
};

/// Jobs checked per run at most (`DescribeJobs` takes 100 a call).
pub const MAX_JOBS_PER_RUN: usize = 500;

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SilentJobReport {
    pub checked: usize,
    /// Jobs whose state had moved on since the last event batchguard saw.
    pub updated: usize,
    pub unknown_to_batch: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SilentJobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// Checks the jobs silent since before `now_ms − silent_for_ms`.
pub async fn check<B, S, L, P>(
    batch: &B,
    projector: &S,
    collector: &Collector<L, P>,
    silent_for_ms: i64,
    now_ms: i64,
) -> Result<SilentJobReport, SilentJobError>
where
    B: BatchControl + Sync,
    S: SilentJobs + Sync,
    L: EventLog + Quarantine + Sync,
    P: Projector + Sync,
{
    let silent = projector
        .silent_jobs(now_ms - silent_for_ms, MAX_JOBS_PER_RUN)
        .await?;
    let mut report = SilentJobReport {
        checked: silent.len(),
        ..SilentJobReport::default()
    };
    if silent.is_empty() {
        return Ok(report);
    }
    let events = batch.current_state_events(&silent).await?;
    let mut known = std::collections::BTreeSet::new();
    for event in &events {
        if let Some(id) = event["detail"]["jobId"].as_str() {
            known.insert(id.to_owned());
        }
        let bytes = serde_json::to_vec(event).unwrap_or_default();
        if let Collected::Stored { new: true, .. } = collector.collect(&bytes, "reconciler").await?
        {
            report.updated += 1;
        }
    }
    report.unknown_to_batch = silent
        .into_iter()
        .filter(|id| !known.contains(id))
        .collect();
    Ok(report)
}
