//! The silent-job check: a lost terminal event must not leave phantom spend growing. Jobs that
//! are still running in the projections but have not been heard from for longer than a
//! threshold are looked up with `DescribeJobs`; their current state, written as the event AWS
//! would have sent, goes through the collector like any other event (so a job that ended stops
//! accruing). (Not to be confused with reconciling a day with the bill: `analysis::bill`.)
//!
//! Bounded, so it can never starve the tick (which runs first anyway):
//! - a job Batch says is still running counts as heard from now, so it is not asked about
//!   again for a whole silence window — each running job is asked about at most once per
//!   window, not on every tick;
//! - at most [`SilentCheck::max_jobs`] jobs a run, the longest-unheard first per shard, so the
//!   jobs not reached this run are the next run's: with `n` silent jobs each is checked within
//!   ⌈n / max_jobs⌉ runs;
//! - `DescribeJobs` a hundred ids at a time, and no new call once the time budget is spent.
//!
//! A job Batch no longer knows (`DescribeJobs` leaves it out: its end was lost and is past
//! Batch's retention) is closed at the last instant anything said about it — its facts, or
//! Batch's last "still running" answer — by a [`JobAbandoned`] fact in the event log, and
//! reported. A failure part way keeps what was done (reported and counted) and ends the run.

use std::collections::BTreeMap;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::Serialize;

use super::collector::{Collected, Collector};
use crate::core::facts::{JobAbandoned, Millis};
use crate::metrics::{self, Metric, MetricDocument, Unit};
use crate::ports::{
    BatchControl, ControlError, EventLog, Projector, Quarantine, SilentJob, SilentJobs, StoreError,
};

/// Job ids per `DescribeJobs` call (the API's maximum).
pub const DESCRIBE_JOBS_MAX_IDS: usize = 100;

/// How much one run may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SilentCheck {
    /// A running job not heard from for this long (milliseconds) is asked about.
    pub silent_for_ms: i64,
    /// Jobs asked about per run at most.
    pub max_jobs: usize,
    /// No `DescribeJobs` call starts after this much time; one under way is given up at it.
    pub time_budget: Duration,
}

impl SilentCheck {
    /// 500 jobs (five `DescribeJobs` calls) within 20 seconds: what fits beside the tick in
    /// the ticker's 50-second timeout.
    pub fn after(silent_for_ms: i64) -> Self {
        Self {
            silent_for_ms,
            max_jobs: 500,
            time_budget: Duration::from_secs(20),
        }
    }
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SilentJobReport {
    /// Jobs asked about.
    pub checked: usize,
    /// Jobs whose state had moved on since the last event batchguard saw.
    pub updated: usize,
    /// Jobs Batch no longer knows, closed at the last instant they were heard of.
    pub unknown_to_batch: Vec<String>,
    /// Silent jobs left for the next run because the time budget was spent.
    pub left_for_next_run: usize,
    /// What stopped the run early (the jobs after it are the next run's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SilentJobReport {
    /// The run's metric: how many jobs it closed because Batch no longer knew them (zero
    /// too, so an alarm on it has data).
    pub fn documents(&self, now_ms: i64) -> Vec<MetricDocument> {
        vec![MetricDocument {
            timestamp_ms: now_ms,
            metrics: vec![Metric {
                name: metrics::JOBS_UNKNOWN_TO_BATCH,
                unit: Unit::Count,
                value: Decimal::from(self.unknown_to_batch.len()),
            }],
            properties: BTreeMap::from([(
                "unknownToBatch".to_owned(),
                serde_json::json!(self.unknown_to_batch),
            )]),
            ..MetricDocument::default()
        }]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SilentJobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// Checks the jobs not heard from since before `now_ms − silent_for_ms`.
pub async fn check<B, S, L, P>(
    batch: &B,
    projector: &S,
    collector: &Collector<L, P>,
    limits: &SilentCheck,
    now_ms: i64,
) -> Result<SilentJobReport, SilentJobError>
where
    B: BatchControl + Sync,
    S: SilentJobs + Sync,
    L: EventLog + Quarantine + Sync,
    P: Projector + Sync,
{
    let deadline = tokio::time::Instant::now() + limits.time_budget;
    let silent = projector
        .silent_jobs(now_ms - limits.silent_for_ms, limits.max_jobs)
        .await?;
    let mut report = SilentJobReport::default();
    for (done, chunk) in silent.chunks(DESCRIBE_JOBS_MAX_IDS).enumerate() {
        // No chunk starts after the budget, and a call under way is given up at it.
        let ids: Vec<String> = chunk.iter().map(|job| job.job_id.clone()).collect();
        let answered = tokio::time::timeout_at(deadline, batch.current_state_events(&ids)).await;
        let Ok(events) = answered else {
            report.left_for_next_run = silent.len() - done * DESCRIBE_JOBS_MAX_IDS;
            tracing::warn!(
                left = report.left_for_next_run,
                "the silent-job check spent its time budget"
            );
            break;
        };
        // A failure keeps what the run did so far (reported and counted), and ends it.
        let outcome = match events {
            Ok(events) => {
                check_chunk(projector, collector, chunk, &events, now_ms, &mut report).await
            }
            Err(error) => Err(SilentJobError::from(error)),
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, "the silent-job check stopped");
            report.error = Some(error.to_string());
            break;
        }
    }
    Ok(report)
}

/// One `DescribeJobs` answer: each job's current state through the collector, those Batch
/// answered for heard from now, and those it left out closed.
async fn check_chunk<S, L, P>(
    projector: &S,
    collector: &Collector<L, P>,
    chunk: &[SilentJob],
    events: &[serde_json::Value],
    now_ms: i64,
    report: &mut SilentJobReport,
) -> Result<(), SilentJobError>
where
    S: SilentJobs + Sync,
    L: EventLog + Quarantine + Sync,
    P: Projector + Sync,
{
    report.checked += chunk.len();
    let mut known = Vec::with_capacity(events.len());
    for event in events {
        if let Some(id) = event["detail"]["jobId"].as_str() {
            known.push(id.to_owned());
        }
        let bytes = serde_json::to_vec(event).unwrap_or_default();
        if let Collected::Stored { new: true, .. } = collector.collect(&bytes, "reconciler").await?
        {
            report.updated += 1;
        }
    }
    // Batch answered for these: heard from now (those that ended have left the index).
    projector.heard_from(&known, now_ms).await?;
    for job in chunk.iter().filter(|job| !known.contains(&job.job_id)) {
        let abandoned = JobAbandoned {
            job_id: job.job_id.clone(),
            reason: "AWS Batch no longer knows this job (DescribeJobs left it out): closed at \
                     the last instant it was heard of"
                .to_owned(),
            heard_at: Some(Millis(job.heard_ms)),
        };
        collector.record(abandoned.into_fact()).await?;
        report.unknown_to_batch.push(job.job_id.clone());
    }
    Ok(())
}
