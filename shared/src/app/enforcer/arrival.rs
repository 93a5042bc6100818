//! Admission as each job's event arrives (issue 17, `core::arrival`): the admitter function
//! hands the enforcer one waiting job from its Batch event and the gates the enforcer itself
//! wrote at its last runs; the job is cancelled when a live gate turns it away.

use std::collections::{BTreeMap, BTreeSet};

use super::{EnforceError, EnforcementReport, Enforcer, Run, facets, tag_lists};
use crate::core::admission::{Ec2Placement, WorstCase, worst_case};
use crate::core::arrival::{Arriving, Gate, judge};
use crate::core::budgets::BudgetBook;
use crate::core::enforcement::{QUEUED, Step, is_protected};
use crate::ports::{AuditTrail, BatchControl, EventLog, JobProjections, JobSummary, Notifier};

impl<B, L, N, P> Enforcer<B, L, N, P>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + Sync,
    N: Notifier + Sync,
    P: JobProjections + Sync,
{
    /// Judges `job`, whose SUBMITTED, PENDING or RUNNABLE event has just arrived, at Unix
    /// milliseconds `at_ms` against the live gates (`drain`, `safe`: `None` when missing or
    /// stale) and `book`, the applied budgets: a job a gate turns away is cancelled
    /// (`CancelJob`, which leaves a job that has started meanwhile alone), with the budget and
    /// the reason in its status reason and the audit trail, under the label the tick would
    /// give it, so the trail keeps one entry when both reach it (a dry run records only).
    ///
    /// Nothing is read beyond the arguments: the audit trail is not (a repeated event's entry
    /// has the same key and is kept once), so the work per event does not grow with the
    /// period's actions. A job outside the stack's queues, no longer waiting, protected, or
    /// whose tags the event did not carry (protection fails closed) is left alone and said so.
    /// No message is sent per job: the budget's own notice said it drains.
    pub async fn admit_arrival(
        &self,
        book: &BudgetBook,
        drain: Option<&Gate>,
        safe: Option<&Gate>,
        job: &JobSummary,
        at_ms: i64,
    ) -> Result<EnforcementReport, EnforceError> {
        let mut report = EnforcementReport {
            level: Step::Ok,
            dry_run: self.settings.dry_run,
            ..EnforcementReport::default()
        };
        let scoped = &self.settings.queues;
        if !scoped.is_empty() && !scoped.contains(&job.queue) {
            report.reason = format!(
                "job {}: queue {} is outside the stack's",
                job.job_id, job.queue
            );
            return Ok(report);
        }
        if !QUEUED.contains(&job.status) {
            report.reason = format!("job {} is not waiting", job.job_id);
            return Ok(report);
        }
        match &job.tags {
            None => {
                report.unverified_jobs.push(job.job_id.clone());
                report.reason = format!("job {}: its event carried no tags", job.job_id);
                return Ok(report);
            }
            Some(tags) if is_protected(tags) => {
                report.protected_jobs.push(job.job_id.clone());
                report.reason = format!("job {} is protected", job.job_id);
                return Ok(report);
            }
            Some(_) => {}
        }
        let tags = tag_lists(std::slice::from_ref(job));
        // Its compute environment, when the gates' run found its queue has a single one.
        let environment = [drain, safe]
            .into_iter()
            .flatten()
            .find_map(|gate| gate.environments.get(&job.queue))
            .map(String::as_str);
        let mut facets = facets(job, &tags[0]);
        facets.compute_environment = facets.compute_environment.or(environment);
        let arriving = Arriving {
            job_id: &job.job_id,
            facets,
            created_at_ms: job.created_at_ms,
            worst: match &self.pricing {
                Some((prices, region)) => {
                    // What its queue's compute environments may launch, as the safe gate's run
                    // read them.
                    let placement = safe
                        .and_then(|gate| gate.instance_types.get(&job.queue))
                        .map(|types| Ec2Placement::InstanceTypes(types.clone()));
                    worst_case(&job.shape, prices, region, placement.as_ref())
                }
                None => WorstCase::Unpriced {
                    why: "the enforcer has no price table".to_owned(),
                },
            },
        };
        let Some(turn) = judge(book, drain, safe, &arriving) else {
            report.reason = format!("job {} admitted", job.job_id);
            return Ok(report);
        };
        report.reason.clone_from(&turn.reason);
        let mut run = Run {
            label: turn.label,
            reason: &turn.reason,
            at_ms,
            dry_run: self.settings.dry_run || turn.dry_run,
            done: BTreeSet::new(),
            carried_out_at: BTreeMap::new(),
            seen: BTreeSet::new(),
        };
        self.stop_listed(job, false, false, &mut run, &mut report)
            .await?;
        Ok(report)
    }
}
