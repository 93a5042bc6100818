//! Safe admission on the enforcer (issue 17, `core::admission`): the waiting jobs of budgets
//! with `admission = "safe"` whose worst case does not fit in what the budget has left after
//! its committed spend are cancelled, naming the budget and the figures.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use super::{
    ActionFailed, EnforceError, EnforcementReport, Enforcer, Run, Trail, facets, tag_lists,
};
use crate::core::admission::{Ec2Placement, Waiting, WorstCase, worst_case};
use crate::core::arrival::safe_gate;
use crate::core::budgets::{Action, Admission, BudgetBook};
use crate::core::enforcement::{QUEUED, Step};
use crate::core::facts::{EnforcementAction, JobStatus};
use crate::ports::{AuditTrail, BatchControl, EventLog, JobProjections, Notifier};

impl<B, L, N, P> Enforcer<B, L, N, P>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + Sync,
    N: Notifier + Sync,
    P: JobProjections + Sync,
{
    /// Safe admission at Unix milliseconds `at_ms`: `left` is, for each budget of `book`
    /// with `admission = "safe"`, its amount less its committed spend, as the ledger check
    /// read it (not a request's word). The waiting jobs (SUBMITTED, PENDING, RUNNABLE) those
    /// budgets reach, and those already STARTING (their worst case taken first, never
    /// cancelled), are listed as for a drain (their queues, within the stack's), each one's
    /// worst case is priced from Batch's description of it (`core::admission::worst_case`,
    /// Fargate at the prices of [`Enforcer::with_pricing`], EC2 as its share of the costliest
    /// instance its queue may launch: `ec2_placements`), and `BudgetBook::admit` says which do not fit: those
    /// are cancelled with the budget and the figures in their status reason and the audit
    /// trail (a budget's or the stack's dry run records only), and one message says how many.
    /// Jobs without a bound (no timeout, no price) are admitted and listed in the report.
    /// Protected jobs and jobs whose tags cannot be read are left alone. A waiting job is
    /// judged at each call until it starts: one admitted now may be turned away later if the
    /// budget's committed spend grows meanwhile.
    pub async fn admit(
        &self,
        book: &BudgetBook,
        left: &BTreeMap<String, Decimal>,
        at_ms: i64,
    ) -> Result<EnforcementReport, EnforceError> {
        let safe: BTreeMap<String, Action> = left
            .keys()
            .filter(|name| {
                book.get(name)
                    .is_some_and(|spec| spec.admission == Admission::Safe)
            })
            .map(|name| (name.clone(), Action::Notify))
            .collect();
        let mut report = EnforcementReport {
            level: Step::Ok,
            dry_run: self.settings.dry_run,
            reason: format!(
                "safe admission for {}",
                safe.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            ..EnforcementReport::default()
        };
        if safe.is_empty() {
            report.gate = Some(safe_gate(at_ms, None, BTreeMap::new()));
            return Ok(report);
        }
        // The waiting jobs, and those already placed (STARTING): they will run, and are in no
        // committed spend until Batch gives their `startedAt`.
        let mut statuses = QUEUED.to_vec();
        statuses.push(JobStatus::Starting);
        let jobs: Vec<_> = self
            .budget_jobs(book, &safe, &statuses, &mut report)
            .await?
            .0
            .into_iter()
            .filter(|job| statuses.contains(&job.status))
            .collect();
        // A job listed under two statuses (it moved on between two `ListJobs`) is kept once,
        // at the furthest (`budget_jobs`): a job STARTING is never judged as waiting, nor its
        // worst case taken twice.
        let placements = self.ec2_placements(&jobs, &mut report).await;
        let tag_lists = tag_lists(&jobs);
        let waiting: Vec<Waiting<'_>> = jobs
            .iter()
            .zip(&tag_lists)
            .map(|(job, tags)| Waiting {
                job_id: &job.job_id,
                facets: facets(job, tags),
                created_at_ms: job.created_at_ms,
                starting: job.status == JobStatus::Starting,
                worst: match &self.pricing {
                    Some((prices, region)) => {
                        worst_case(&job.shape, prices, region, placements.get(&job.queue))
                    }
                    None => WorstCase::Unpriced {
                        why: "the enforcer has no price table".to_owned(),
                    },
                },
            })
            .collect();
        let plan = book.admit(left, &waiting);
        // What is left for the jobs submitted after this listing, until the next run.
        let latest = jobs.iter().filter_map(|job| job.created_at_ms).max();
        let mut gate = safe_gate(at_ms, latest, plan.left.clone());
        gate.environments.clone_from(&report.environments);
        gate.instance_types = placements
            .into_iter()
            .filter_map(|(queue, placement)| match placement {
                Ec2Placement::InstanceTypes(types) => Some((queue, types)),
                Ec2Placement::Unknown(_) => None,
            })
            .collect();
        report.gate = Some(gate);
        report.unbounded_jobs = plan
            .unbounded
            .iter()
            .map(|(job, why)| format!("{job}: {why}"))
            .collect();
        if plan.refused.is_empty() {
            return Ok(report);
        }
        let Trail {
            done,
            carried_out_at,
            ..
        } = self.trail(at_ms).await?;
        let reasons: Vec<String> = plan.refused.iter().map(|r| r.reason()).collect();
        let mut run = Run {
            label: String::new(),
            reason: "",
            at_ms,
            dry_run: self.settings.dry_run,
            done,
            carried_out_at,
            seen: BTreeSet::new(),
        };
        let mut turned_away: BTreeMap<&str, (usize, bool)> = BTreeMap::new();
        for (refusal, reason) in plan.refused.iter().zip(&reasons) {
            let Some(job) = jobs.iter().find(|job| job.job_id == refusal.job_id) else {
                continue;
            };
            let dry_run =
                self.settings.dry_run || book.get(&refusal.budget).is_none_or(|spec| spec.dry_run);
            run.label = format!("budget {}: admission", refusal.budget);
            run.reason = reason;
            run.dry_run = dry_run;
            let before = report.actions.len();
            self.stop_listed(job, false, false, &mut run, &mut report)
                .await?;
            if report.actions.len() > before {
                let entry = turned_away
                    .entry(refusal.budget.as_str())
                    .or_insert((0, dry_run));
                entry.0 += 1;
            }
        }
        for (budget, (count, dry_run)) in turned_away {
            let subject = format!(
                "batchguard: budget {budget} turned away {count} job{}{}",
                if count == 1 { "" } else { "s" },
                if dry_run { " (dry run)" } else { "" }
            );
            let body: Vec<&str> = plan
                .refused
                .iter()
                .zip(&reasons)
                .filter(|(refusal, _)| refusal.budget == budget)
                .map(|(_, reason)| reason.as_str())
                .collect();
            if let Err(error) = self.notifier.notify(&subject, &body.join("\n")).await {
                let notice = EnforcementAction::Notified {
                    notice: format!("budget {budget}: admission"),
                };
                report.failures.push(ActionFailed {
                    action: notice.name(),
                    target: notice.target().to_owned(),
                    error: error.to_string(),
                });
            }
        }
        Ok(report)
    }

    /// Where each listed queue may place an EC2 job: what its compute environments may
    /// launch, read with one `DescribeComputeEnvironments` (100 compute environments a call)
    /// for all of them, for the waiting jobs' worst cases and, through the safe gate, the
    /// worst cases of EC2 jobs arriving on any of those queues before the next run (the first
    /// EC2 job on an idle queue too). A queue one of whose compute environments does not say
    /// (unmanaged, Fargate) or that Batch does not know, or a failed read, leaves its EC2 jobs
    /// without a bound, with the reason; a failed read is reported as a failure only when an
    /// EC2 job waits (a stack of Fargate queues is not failed for it), and logged otherwise.
    async fn ec2_placements(
        &self,
        jobs: &[crate::ports::JobSummary],
        report: &mut EnforcementReport,
    ) -> BTreeMap<String, Ec2Placement> {
        let queues: Vec<String> = report.queue_environments.keys().cloned().collect();
        let names: Vec<String> = report
            .queue_environments
            .values()
            .flatten()
            .cloned()
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let launches = if names.is_empty() {
            Ok(BTreeMap::new())
        } else {
            self.batch.instance_types(&names).await
        };
        let launches = match launches {
            Ok(launches) => launches,
            Err(error) => {
                let why =
                    format!("its queue's compute environments could not be described ({error})");
                let ec2_waits = jobs
                    .iter()
                    .any(|job| job.shape.platform == Some(crate::core::facts::Platform::Ec2));
                if ec2_waits {
                    report.failures.push(ActionFailed {
                        action: "DescribeComputeEnvironments",
                        target: names.join(","),
                        error: error.to_string(),
                    });
                } else {
                    tracing::warn!(%error, "could not describe the compute environments: EC2 jobs arriving before the next run are left to it");
                }
                return queues
                    .into_iter()
                    .map(|queue| (queue, Ec2Placement::Unknown(why.clone())))
                    .collect();
            }
        };
        queues
            .into_iter()
            .map(|queue| {
                let order = report
                    .queue_environments
                    .get(&queue)
                    .map_or(&[][..], Vec::as_slice);
                let mut types: Vec<String> = Vec::new();
                let mut unknown = None;
                for environment in order {
                    match launches.get(environment) {
                        Some(Some(launched)) => types.extend(launched.iter().cloned()),
                        Some(None) => {
                            unknown = Some(format!(
                                "compute environment {environment} does not say which instance types it launches (unmanaged)"
                            ));
                        }
                        None => {
                            unknown =
                                Some(format!("compute environment {environment} is not known to Batch"));
                        }
                    }
                }
                let placement = match unknown {
                    Some(why) => Ec2Placement::Unknown(why),
                    None if order.is_empty() => {
                        Ec2Placement::Unknown(format!("queue {queue} names no compute environment"))
                    }
                    None => Ec2Placement::InstanceTypes(types),
                };
                (queue, placement)
            })
            .collect()
    }
}
