//! Per-job caps on the enforcer: each running job whose own cost reached its
//! `batchguard:max-usd` tag is terminated (`core::caps`, issue 17).

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;

use super::{ActionFailed, EnforceError, EnforcementReport, Enforcer, Run, Trail};
use crate::core::caps::{CAP_TAG, cap_reason, job_cap};
use crate::core::enforcement::{STARTED, Step, is_protected};
use crate::core::facts::{EnforcementAction, FactBody, JobObserved};
use crate::events::{Parsed, parse_event};
use crate::ports::{AuditTrail, BatchControl, EventLog, JobProjections, Notifier};

/// `DescribeJobs` takes at most this many ids a call.
const DESCRIBE_JOBS_MAX_IDS: usize = 100;

/// A job the projections say reached its cap, as the enforcer was asked to stop it (already
/// checked against its projection: `core::caps::cap_agrees`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CappedJob {
    pub job_id: String,
    pub cap_usd: Decimal,
    /// Its own cost when its projection was read.
    pub cost_usd: Decimal,
}

/// The job Batch terminates for a node of a multi-node job (`<id>#<n>`): the whole job.
fn job_to_terminate(job_id: &str) -> &str {
    job_id.split_once('#').map_or(job_id, |(parent, _)| parent)
}

impl<B, L, N, P> Enforcer<B, L, N, P>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + Sync,
    N: Notifier + Sync,
    P: JobProjections + Sync,
{
    /// Terminates each of `capped` at Unix milliseconds `at_ms`, once Batch's own answer
    /// (`DescribeJobs`) says it is still starting or running, inside the stack's queues, not
    /// protected, and its tags still cap it at or under its cost. Each is recorded and notified
    /// once (the audit trail's key names the job); in a dry run recorded and notified only.
    /// A job Batch does not answer for is left alone and reported (protection fails closed).
    pub async fn enforce_caps(
        &self,
        capped: &[CappedJob],
        at_ms: i64,
    ) -> Result<EnforcementReport, EnforceError> {
        let dry_run = self.settings.dry_run;
        let mut report = EnforcementReport {
            level: Step::Stop,
            dry_run,
            reason: format!("{} job(s) reached their {CAP_TAG} cap", capped.len()),
            ..EnforcementReport::default()
        };
        if capped.is_empty() {
            return Ok(report);
        }
        let ids: Vec<String> = capped
            .iter()
            .map(|job| job_to_terminate(&job.job_id).to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut live: BTreeMap<String, JobObserved> = BTreeMap::new();
        for chunk in ids.chunks(DESCRIBE_JOBS_MAX_IDS) {
            match self.batch.current_state_events(chunk).await {
                Ok(events) => {
                    for event in events {
                        let bytes = serde_json::to_vec(&event).unwrap_or_default();
                        if let Ok(Parsed::Fact(fact)) = parse_event(&bytes)
                            && let FactBody::Job(job) = fact.body
                        {
                            live.insert(job.job_id.clone(), job);
                        }
                    }
                }
                Err(error) => report.failures.push(ActionFailed {
                    action: "DescribeJobs",
                    target: chunk.join(","),
                    error: error.to_string(),
                }),
            }
        }
        let Trail {
            done,
            carried_out_at,
            ..
        } = self.trail(at_ms).await?;
        let mut run = Run {
            label: "job cap".to_owned(),
            reason: "",
            at_ms,
            dry_run,
            done,
            carried_out_at,
            seen: BTreeSet::new(),
        };
        let reasons: Vec<String> = capped
            .iter()
            .map(|job| cap_reason(&job.job_id, job.cost_usd, job.cap_usd))
            .collect();
        for (job, reason) in capped.iter().zip(&reasons) {
            let target = job_to_terminate(&job.job_id);
            let Some(observed) = live.get(target) else {
                // Not answered for: its tags are unknown, so it is not touched.
                report.unverified_jobs.push(job.job_id.clone());
                continue;
            };
            if !STARTED.contains(&observed.status) {
                continue;
            }
            if !self.settings.queues.is_empty() && !self.settings.queues.contains(&observed.queue) {
                continue;
            }
            if is_protected(&observed.tags) {
                report.protected_jobs.push(job.job_id.clone());
                continue;
            }
            match job_cap(crate::core::caps::pairs(&observed.tags)) {
                Some(Ok(cap)) if cap <= job.cost_usd => {}
                // Untagged or raised since the projection was written: not past its cap now.
                _ => continue,
            }
            // Keyed on the job stopped: two nodes of one multi-node job send one notice.
            let notice = EnforcementAction::Notified {
                notice: format!("job cap: {target}"),
            };
            if !run.done.contains(&(notice.clone(), dry_run)) {
                let subject = format!(
                    "batchguard: job {target} reached its cap{}",
                    if dry_run { " (dry run)" } else { "" }
                );
                match self.notifier.notify(&subject, reason).await {
                    Ok(()) => {
                        self.record(notice, true, dry_run, "job cap", reason, at_ms, &mut report)
                            .await?;
                    }
                    Err(error) => report.failures.push(ActionFailed {
                        action: notice.name(),
                        target: notice.target().to_owned(),
                        error: error.to_string(),
                    }),
                }
            }
            run.reason = reason;
            self.stop_job(target, &observed.queue, true, &mut run, &mut report)
                .await?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::job_to_terminate;

    #[test]
    fn a_node_is_stopped_with_its_multi_node_job_and_an_array_child_alone() {
        assert_eq!(job_to_terminate("abc#2"), "abc");
        assert_eq!(job_to_terminate("abc:7"), "abc:7");
        assert_eq!(job_to_terminate("abc"), "abc");
    }
}
