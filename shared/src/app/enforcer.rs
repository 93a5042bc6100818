//! The enforcer service: carries a [`Level`] out on AWS Batch, and undoes it.
//!
//! - **notify**: one notification per level per budget period.
//! - **freeze**: disable the scope's enabled job queues (`UpdateJobQueue`) and cancel jobs that
//!   have not started (SUBMITTED, PENDING, RUNNABLE; `CancelJob`).
//! - **stop**: also terminate STARTING and RUNNING jobs (`TerminateJob`, which moves them to
//!   FAILED): every running child of an array and node of a multi-node job (listed with
//!   `arrayJobId` / `multiNodeJobId`), then the array parent itself — PENDING while its
//!   children run, and terminated, not cancelled, so its waiting children go with it — and the
//!   multi-node job. A job stopped less than ten minutes ago that Batch still lists is not asked
//!   again (its containers are exiting): each job is terminated once.
//! - **restore**: re-enable exactly the queues batchguard disabled (from its own audit trail),
//!   nothing else.
//!
//! Jobs tagged `batchguard:protect=true` are never touched, nor are jobs whose tags cannot be
//! read (protection fails closed). In a **dry run** every action is recorded and notified, and
//! no mutating Batch call is made. Each action is appended to the event log as soon as it is
//! done, under a key made of the period, action and target: a run killed halfway keeps what it
//! did (a later `restore` finds the queues it disabled), a second invocation with the same
//! outcome records nothing new, and what is already done is not done again. One failed action
//! is reported and the run goes on.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::core::budget::BudgetPeriod;
use crate::core::enforcement::{QUEUED, STARTED, Step, is_protected, queues_disabled_by_us};
use crate::core::facts::{
    EnforcementAction, EnforcementRecorded, Fact, FactBody, JobStatus, Millis,
};
use crate::core::policy::Level;
use crate::ports::{
    AuditTrail, BatchControl, ControlError, EventLog, JobKind, Notifier, Record, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One action and whether it was carried out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionTaken {
    #[serde(flatten)]
    pub action: EnforcementAction,
    /// Whether it was done: false for a change to Batch in a dry run; a notice is sent in a
    /// dry run too (its subject says so), so it is true.
    pub carried_out: bool,
}

/// An action that failed; the others were still carried out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionFailed {
    /// The action's name, as in the audit trail (`Notified`, …).
    pub action: &'static str,
    pub target: String,
    pub error: String,
}

/// What an enforcement did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EnforcementReport {
    pub level: Step,
    pub dry_run: bool,
    pub reason: String,
    pub actions: Vec<ActionTaken>,
    /// Jobs left alone because of the protect tag.
    pub protected_jobs: Vec<String>,
    /// Jobs left alone because their tags could not be read (protection fails closed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unverified_jobs: Vec<String>,
    /// What could not be done (nothing recorded for it, so a later run tries again).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ActionFailed>,
    /// Jobs cancelled or terminated less than [`ASK_AGAIN_AFTER_MS`] ago and still listed:
    /// Batch is stopping them (a terminated container gets time to exit), so they are not
    /// asked again yet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stopping_jobs: Vec<String>,
}

/// A job batchguard cancelled or terminated that Batch still lists this long after (ten
/// minutes) is asked again: the first request may not have taken.
pub const ASK_AGAIN_AFTER_MS: i64 = 600_000;

/// One run's view of what it has done, for the jobs it stops.
struct Run<'a> {
    level: Level,
    reason: &'a str,
    at_ms: i64,
    dry_run: bool,
    /// This period's audit trail: each action, whether it was a dry run.
    done: BTreeSet<(EnforcementAction, bool)>,
    /// When each action was first carried out (not in a dry run) this period.
    carried_out_at: BTreeMap<EnforcementAction, i64>,
    /// Jobs this run already acted on (a child may be listed twice).
    seen: BTreeSet<String>,
}

/// Who to act on, and how.
#[derive(Clone, Debug)]
pub struct EnforcerSettings {
    /// Queue names in scope; empty: every queue in the account and region.
    pub queues: Vec<String>,
    pub dry_run: bool,
    pub period: BudgetPeriod,
}

/// The enforcer over its ports.
#[derive(Clone, Debug)]
pub struct Enforcer<B, L, N> {
    batch: B,
    log: L,
    notifier: N,
    settings: EnforcerSettings,
}

impl<B, L, N> Enforcer<B, L, N>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + Sync,
    N: Notifier + Sync,
{
    pub fn new(batch: B, log: L, notifier: N, settings: EnforcerSettings) -> Self {
        Self {
            batch,
            log,
            notifier,
            settings,
        }
    }

    fn entry(&self, action: EnforcementAction, level: &str, reason: &str, at_ms: i64) -> Fact {
        let period_start = self.settings.period.bounds(Millis(at_ms).floor_seconds()).0;
        let dry_run = self.settings.dry_run;
        Fact {
            // Same period, action, target and mode: same id, so the log keeps it once.
            event_id: format!(
                "batchguard-enforcer:{period_start}:{}:{}:{}{}",
                action.name(),
                action.target(),
                level,
                if dry_run { ":dry-run" } else { "" }
            ),
            observed_at: Some(Millis(at_ms)),
            body: FactBody::Enforcement(EnforcementRecorded {
                action,
                level: level.to_owned(),
                reason: reason.to_owned(),
                dry_run,
                at: Millis(at_ms),
                period_start,
            }),
        }
    }

    /// Records one action in the audit trail as soon as it is done, so a run killed or failed
    /// later keeps it (a `restore` then re-enables a queue disabled just before the end).
    async fn record(
        &self,
        action: EnforcementAction,
        carried_out: bool,
        level: &str,
        reason: &str,
        at_ms: i64,
        report: &mut EnforcementReport,
    ) -> Result<(), EnforceError> {
        let fact = self.entry(action.clone(), level, reason, at_ms);
        self.log.append(&[Record::new(fact)]).await?;
        report.actions.push(ActionTaken {
            action,
            carried_out,
        });
        Ok(())
    }

    /// Carries out `level` at Unix milliseconds `at_ms`. Each action is recorded as it is
    /// done; one that fails (a job that ended meanwhile, throttling beyond the retries, a
    /// failed notice) is reported in `failures` and the run goes on. Only what stops the whole
    /// run is an error: the queues cannot be read, or the audit trail cannot be written.
    pub async fn enforce(
        &self,
        level: Level,
        reason: &str,
        at_ms: i64,
    ) -> Result<EnforcementReport, EnforceError> {
        let dry_run = self.settings.dry_run;
        let mut report = EnforcementReport {
            level: level.into(),
            dry_run,
            reason: reason.to_owned(),
            ..EnforcementReport::default()
        };
        if level == Level::Ok {
            return Ok(report);
        }
        let period_start = self.settings.period.bounds(Millis(at_ms).floor_seconds()).0;
        // What this period's audit trail already records, and whether it was a dry run.
        let entries = self.log.audit_entries(period_start).await?;
        let mut carried_out_at = BTreeMap::new();
        for entry in entries.iter().filter(|entry| !entry.dry_run) {
            let at = carried_out_at
                .entry(entry.action.clone())
                .or_insert(entry.at.0);
            *at = (*at).min(entry.at.0);
        }
        let done: BTreeSet<(EnforcementAction, bool)> = entries
            .into_iter()
            .map(|entry| (entry.action, entry.dry_run))
            .collect();
        let failed = |report: &mut EnforcementReport,
                      action: &EnforcementAction,
                      error: &dyn std::fmt::Display| {
            report.failures.push(ActionFailed {
                action: action.name(),
                target: action.target().to_owned(),
                error: error.to_string(),
            });
        };

        // Notify once per level per period (each higher level is news).
        let notice = EnforcementAction::Notified {
            notice: level.as_str().to_owned(),
        };
        if !done.contains(&(notice.clone(), dry_run)) {
            let subject = format!(
                "batchguard: {}{}",
                level.as_str(),
                if dry_run { " (dry run)" } else { "" }
            );
            // A failed notice (an SNS outage, a deleted topic) must not hold up the freeze or
            // the stop: it is reported, and not recorded, so the next run sends it.
            match self.notifier.notify(&subject, reason).await {
                Ok(()) => {
                    self.record(notice, true, level.as_str(), reason, at_ms, &mut report)
                        .await?;
                }
                Err(error) => failed(&mut report, &notice, &error),
            }
        }

        if level >= Level::Freeze {
            let queues = self.batch.queues(&self.settings.queues).await?;
            for queue in &queues {
                let action = EnforcementAction::QueueDisabled {
                    queue: queue.name.clone(),
                };
                let recorded = done.contains(&(action.clone(), true));
                if queue.enabled && !(dry_run && recorded) {
                    if !dry_run
                        && let Err(error) = self.batch.set_queue_enabled(&queue.name, false).await
                    {
                        failed(&mut report, &action, &error);
                        continue;
                    }
                    self.record(action, !dry_run, level.as_str(), reason, at_ms, &mut report)
                        .await?;
                }
            }
            let mut targets: Vec<(&[JobStatus], bool)> = vec![(&QUEUED, false)];
            if level >= Level::Stop {
                targets.push((&STARTED, true));
            }
            let mut run = Run {
                level,
                reason,
                at_ms,
                dry_run,
                done,
                carried_out_at,
                seen: BTreeSet::new(),
            };
            for queue in &queues {
                for (statuses, terminate) in &targets {
                    let jobs = match self.batch.jobs(&queue.name, statuses).await {
                        Ok(jobs) => jobs,
                        Err(error) => {
                            report.failures.push(ActionFailed {
                                action: "ListJobs",
                                target: queue.name.clone(),
                                error: error.to_string(),
                            });
                            continue;
                        }
                    };
                    for job in jobs {
                        // Protection fails closed: a job whose tags are unknown is not touched.
                        // An array's children and a multi-node job's nodes share its verdict.
                        match &job.tags {
                            None => {
                                report.unverified_jobs.push(job.job_id);
                                continue;
                            }
                            Some(tags) if is_protected(tags) => {
                                report.protected_jobs.push(job.job_id);
                                continue;
                            }
                            Some(_) => {}
                        }
                        if level >= Level::Stop && job.kind != JobKind::Single {
                            // Every running child or node, listed apart (ListJobs with
                            // arrayJobId / multiNodeJobId): AWS's pages do not say a queue's
                            // listing names them, nor what TerminateJob on a multi-node job
                            // does to its nodes.
                            match self.batch.children(&job, &STARTED).await {
                                Ok(children) => {
                                    for child in children {
                                        self.stop_job(
                                            &child,
                                            &queue.name,
                                            true,
                                            &mut run,
                                            &mut report,
                                        )
                                        .await?;
                                    }
                                }
                                Err(error) => report.failures.push(ActionFailed {
                                    action: "ListJobs",
                                    target: job.job_id.clone(),
                                    error: error.to_string(),
                                }),
                            }
                        }
                        // An array parent is PENDING while its children run. At stop it is
                        // terminated, which takes its children with it; at freeze cancelled,
                        // which cancels the children that have not started (AWS's array-job
                        // guide and CancelJob reference).
                        let terminate = *terminate
                            || (level >= Level::Stop && job.kind == JobKind::ArrayParent);
                        self.stop_job(&job.job_id, &queue.name, terminate, &mut run, &mut report)
                            .await?;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Cancels or terminates one job and records it as done; a failed call is reported. A job
    /// this run already acted on is skipped, and so is one this period's trail says was
    /// stopped less than [`ASK_AGAIN_AFTER_MS`] ago (Batch is still stopping it): each job is
    /// terminated once, however often the ticker asks while its containers exit.
    async fn stop_job(
        &self,
        job_id: &str,
        queue: &str,
        terminate: bool,
        run: &mut Run<'_>,
        report: &mut EnforcementReport,
    ) -> Result<(), EnforceError> {
        if !run.seen.insert(job_id.to_owned()) {
            return Ok(());
        }
        let action = if terminate {
            EnforcementAction::JobTerminated {
                job_id: job_id.to_owned(),
                queue: queue.to_owned(),
            }
        } else {
            EnforcementAction::JobCancelled {
                job_id: job_id.to_owned(),
                queue: queue.to_owned(),
            }
        };
        if run.dry_run && run.done.contains(&(action.clone(), true)) {
            return Ok(());
        }
        if !run.dry_run {
            if let Some(&at) = run.carried_out_at.get(&action)
                && run.at_ms - at < ASK_AGAIN_AFTER_MS
            {
                report.stopping_jobs.push(job_id.to_owned());
                return Ok(());
            }
            let why = format!("batchguard {}: {}", run.level.as_str(), run.reason);
            let result = if terminate {
                self.batch.terminate_job(job_id, &why).await
            } else {
                self.batch.cancel_job(job_id, &why).await
            };
            if let Err(error) = result {
                report.failures.push(ActionFailed {
                    action: action.name(),
                    target: action.target().to_owned(),
                    error: error.to_string(),
                });
                return Ok(());
            }
        }
        self.record(
            action,
            !run.dry_run,
            run.level.as_str(),
            run.reason,
            run.at_ms,
            report,
        )
        .await
    }

    /// Records a request the ledger did not agree with (`core::enforcement::agrees`) and does
    /// nothing else. Every refusal is recorded; the first of a step in a budget period is also
    /// notified (a forged signal repeated every minute sends one notice, not one a minute).
    pub async fn refuse(
        &self,
        request: Step,
        why: &str,
        at_ms: i64,
    ) -> Result<EnforcementReport, EnforceError> {
        let action = EnforcementAction::Refused {
            request: request.as_str().to_owned(),
        };
        let period_start = self.settings.period.bounds(Millis(at_ms).floor_seconds()).0;
        let refused_before = self
            .log
            .audit_entries(period_start)
            .await?
            .iter()
            .any(|entry| entry.action == action);
        let fact = self.entry(action.clone(), request.as_str(), why, at_ms);
        self.log.append(&[Record::new(fact)]).await?;
        let mut report = EnforcementReport {
            level: request,
            dry_run: self.settings.dry_run,
            reason: why.to_owned(),
            actions: vec![ActionTaken {
                action,
                carried_out: true,
            }],
            ..EnforcementReport::default()
        };
        if !refused_before {
            let subject = format!("batchguard: refused {request}");
            let message = format!(
                "batchguard was asked to {request} and did nothing: {why}. If nobody in your \
                 team asked, something in the account is sending batchguard's alarms or \
                 invoking its enforcer."
            );
            if let Err(error) = self.notifier.notify(&subject, &message).await {
                report.failures.push(ActionFailed {
                    action: "Notified",
                    target: format!("refused {request}"),
                    error: error.to_string(),
                });
            }
        }
        Ok(report)
    }

    /// Re-enables the queues batchguard disabled (not dry-run) in this budget period or the
    /// previous one and has not re-enabled since, if they are still disabled. A queue found
    /// enabled by someone else, or deleted, is recorded as released (nothing left to undo, so
    /// no restore is asked for it again); one that cannot be re-enabled is reported in
    /// `failures` and the others are still restored.
    pub async fn restore(
        &self,
        reason: &str,
        at_ms: i64,
    ) -> Result<EnforcementReport, EnforceError> {
        let at = Millis(at_ms).floor_seconds();
        let (this_period, _) = self.settings.period.bounds(at);
        let (previous_period, _) = self.settings.period.bounds(this_period - 1);
        let mut history = self.log.audit_entries(previous_period).await?;
        history.extend(self.log.audit_entries(this_period).await?);
        let disabled_by_us = queues_disabled_by_us(&history);
        let mut report = EnforcementReport {
            level: Step::Restore,
            dry_run: self.settings.dry_run,
            reason: reason.to_owned(),
            ..EnforcementReport::default()
        };
        if disabled_by_us.is_empty() {
            return Ok(report);
        }
        let names: Vec<String> = disabled_by_us.into_iter().collect();
        let found = self.batch.queues(&names).await?;
        for name in &names {
            let state = found.iter().find(|queue| &queue.name == name);
            let action = match state {
                // Still disabled, as batchguard left it: re-enable it.
                Some(queue) if !queue.enabled => {
                    let action = EnforcementAction::QueueEnabled {
                        queue: queue.name.clone(),
                    };
                    if !self.settings.dry_run
                        && let Err(error) = self.batch.set_queue_enabled(&queue.name, true).await
                    {
                        report.failures.push(ActionFailed {
                            action: action.name(),
                            target: queue.name.clone(),
                            error: error.to_string(),
                        });
                        continue;
                    }
                    action
                }
                // Enabled by someone else, or deleted: nothing to undo.
                _ => EnforcementAction::QueueReleased {
                    queue: name.clone(),
                },
            };
            let carried_out =
                !self.settings.dry_run && matches!(action, EnforcementAction::QueueEnabled { .. });
            self.record(action, carried_out, "restore", reason, at_ms, &mut report)
                .await?;
        }
        Ok(report)
    }
}
