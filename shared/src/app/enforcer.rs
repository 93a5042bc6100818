//! The enforcer service: carries a [`Level`] out on AWS Batch, and undoes it.
//!
//! - **notify**: one notification per level per budget period.
//! - **freeze**: disable the scope's enabled job queues (`UpdateJobQueue`) and cancel jobs that
//!   have not started (SUBMITTED, PENDING, RUNNABLE; `CancelJob`).
//! - **stop**: also terminate STARTING and RUNNING jobs (`TerminateJob`, which moves them to
//!   FAILED).
//! - **restore**: re-enable exactly the queues batchguard disabled (from its own audit trail),
//!   nothing else.
//!
//! Jobs tagged `batchguard:protect=true` are never touched. In a **dry run** every action is
//! recorded and notified, and no mutating Batch call is made. Every action is appended to the
//! event log under a key made of the period, action and target, so a second invocation with the
//! same outcome records nothing new, and what is already done is not done again.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::core::budget::BudgetPeriod;
use crate::core::enforcement::{QUEUED, STARTED, Step, is_protected, queues_disabled_by_us};
use crate::core::facts::{
    EnforcementAction, EnforcementRecorded, Fact, FactBody, JobStatus, Millis,
};
use crate::core::policy::Level;
use crate::ports::{
    AuditTrail, BatchControl, ControlError, EventLog, Notifier, Record, StoreError,
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
    /// What could not be done (nothing recorded for it, so a later run tries again).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ActionFailed>,
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

    /// Carries out `level` at Unix milliseconds `at_ms`.
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
        let done: BTreeSet<(EnforcementAction, bool)> = self
            .log
            .audit_entries(period_start)
            .await?
            .into_iter()
            .map(|entry| (entry.action, entry.dry_run))
            .collect();
        let mut entries = Vec::new();
        let take =
            |action: EnforcementAction, report: &mut EnforcementReport, entries: &mut Vec<Fact>| {
                entries.push(self.entry(action.clone(), level.as_str(), reason, at_ms));
                report.actions.push(ActionTaken {
                    action,
                    carried_out: !dry_run,
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
                    entries.push(self.entry(notice.clone(), level.as_str(), reason, at_ms));
                    report.actions.push(ActionTaken {
                        action: notice,
                        carried_out: true,
                    });
                }
                Err(error) => report.failures.push(ActionFailed {
                    action: notice.name(),
                    target: notice.target().to_owned(),
                    error: error.to_string(),
                }),
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
                    if !dry_run {
                        self.batch.set_queue_enabled(&queue.name, false).await?;
                    }
                    take(action, &mut report, &mut entries);
                }
            }
            let mut targets: Vec<(&[JobStatus], bool)> = vec![(&QUEUED, false)];
            if level >= Level::Stop {
                targets.push((&STARTED, true));
            }
            for queue in &queues {
                for (statuses, terminate) in &targets {
                    for job in self.batch.jobs(&queue.name, statuses).await? {
                        if is_protected(&job.tags) {
                            report.protected_jobs.push(job.job_id);
                            continue;
                        }
                        let action = if *terminate {
                            EnforcementAction::JobTerminated {
                                job_id: job.job_id.clone(),
                                queue: queue.name.clone(),
                            }
                        } else {
                            EnforcementAction::JobCancelled {
                                job_id: job.job_id.clone(),
                                queue: queue.name.clone(),
                            }
                        };
                        if dry_run && done.contains(&(action.clone(), true)) {
                            continue;
                        }
                        if !dry_run {
                            let why = format!("batchguard {}: {reason}", level.as_str());
                            if *terminate {
                                self.batch.terminate_job(&job.job_id, &why).await?;
                            } else {
                                self.batch.cancel_job(&job.job_id, &why).await?;
                            }
                        }
                        take(action, &mut report, &mut entries);
                    }
                }
            }
        }
        let records: Vec<Record> = entries.into_iter().map(Record::new).collect();
        self.log.append(&records).await?;
        Ok(report)
    }

    /// Re-enables the queues batchguard disabled (not dry-run) in this budget period or the
    /// previous one and has not re-enabled since, if they are still disabled.
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
        let mut entries = Vec::new();
        for queue in self.batch.queues(&names).await? {
            if queue.enabled {
                continue; // someone else re-enabled it; nothing to undo
            }
            if !self.settings.dry_run {
                self.batch.set_queue_enabled(&queue.name, true).await?;
            }
            let action = EnforcementAction::QueueEnabled {
                queue: queue.name.clone(),
            };
            entries.push(Record::new(self.entry(
                action.clone(),
                "restore",
                reason,
                at_ms,
            )));
            report.actions.push(ActionTaken {
                action,
                carried_out: !self.settings.dry_run,
            });
        }
        self.log.append(&entries).await?;
        Ok(report)
    }
}
