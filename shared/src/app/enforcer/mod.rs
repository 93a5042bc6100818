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
//!   nothing else. Each disabled queue is held by whoever wanted it disabled — the stack's own
//!   budget or an applied budget ([`Holder`]) — and a holder's restore
//!   ([`Enforcer::restore_holder`]) re-enables a queue only when no other holder is left.
//! - **budgets** ([`Enforcer::enforce_budgets`]): the applied budgets' orders, each on the jobs
//!   its budget counts only (issue 17); a draining budget also holds the queues it owns
//!   (`BudgetBook::owned_queues`) disabled.
//! - **caps** ([`Enforcer::enforce_caps`]): terminate each running job whose own cost reached
//!   its `batchguard:max-usd` tag (`core::caps`).
//!
//! Jobs tagged `batchguard:protect=true` are never touched, nor are jobs whose tags cannot be
//! read (protection fails closed). In a **dry run** every action is recorded and notified, and
//! no mutating Batch call is made. Each action is appended to the event log as soon as it is
//! done, under a key made of the period, action and target: a run killed halfway keeps what it
//! did (a later `restore` finds the queues it disabled), a second invocation with the same
//! outcome records nothing new, and what is already done is not done again. One failed action
//! is reported and the run goes on.

mod admission;
mod arrival;
mod caps;

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;

pub use caps::CappedJob;

use crate::core::budget::BudgetPeriod;
use crate::core::budgets::{
    Action, BudgetBook, BudgetFigures, JobFacets, JobStage, JobView, ShedFigures, Step as JobStep,
};
use crate::core::enforcement::BudgetOrder;
use crate::core::enforcement::{Holder, QUEUED, STARTED, Step, is_protected, queue_holds};
use crate::core::facts::{
    EnforcementAction, EnforcementRecorded, Fact, FactBody, JobStatus, Millis,
};
use crate::core::policy::Level;
use crate::ports::{
    AuditTrail, BatchControl, BudgetStore, ControlError, EventLog, JobKind, JobProjections,
    JobReading, JobSummary, Notifier, Record, StoreError, Unprojected,
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
    /// Waiting jobs of a budget with safe admission admitted without a worst case, and why
    /// (no timeout, no price before they run, or an EC2 share in a budget counting the whole
    /// bill).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unbounded_jobs: Vec<String>,
    /// What this run verified for the jobs arriving before the next one (`core::arrival`):
    /// the budgets' orders give the drain gate, safe admission the safe gate. The enforcer
    /// function stores it for the admitter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::core::arrival::Gate>,
    /// When each applied budget's drain began this period, from the audit trail (its first
    /// `BudgetReached`, in its own dry-run mode): for the drain gate's budgets this run did not
    /// carry out.
    #[serde(skip)]
    pub drain_started: BTreeMap<String, i64>,
    /// The listed queues that place their jobs on a single compute environment, with it: for
    /// the gates, so a budget scoped by compute environment reaches arriving jobs too.
    #[serde(skip)]
    pub environments: BTreeMap<String, String>,
    /// Every listed queue's compute environments, in its order: where safe admission reads
    /// what an EC2 job may be placed on.
    #[serde(skip)]
    pub queue_environments: BTreeMap<String, Vec<String>>,
}

/// A job batchguard cancelled or terminated that Batch still lists this long after (ten
/// minutes) is asked again: the first request may not have taken.
pub const ASK_AGAIN_AFTER_MS: i64 = 600_000;

/// This period's audit trail: each action, and whether it was a dry run.
type Done = BTreeSet<(EnforcementAction, bool)>;

/// What this period's audit trail says.
struct Trail {
    done: Done,
    /// When each action was first carried out (not in a dry run).
    carried_out_at: BTreeMap<EnforcementAction, i64>,
    /// When each action was first recorded, with whether it was a dry run.
    first_at: BTreeMap<(EnforcementAction, bool), i64>,
}

impl Trail {
    /// What `entries` (a period's audit trail, or part of one) say.
    fn of(entries: Vec<EnforcementRecorded>) -> Self {
        let mut first_at: BTreeMap<(EnforcementAction, bool), i64> = BTreeMap::new();
        for entry in &entries {
            let at = first_at
                .entry((entry.action.clone(), entry.dry_run))
                .or_insert(entry.at.0);
            *at = (*at).min(entry.at.0);
        }
        let mut carried_out_at = BTreeMap::new();
        for entry in entries.iter().filter(|entry| !entry.dry_run) {
            let at = carried_out_at
                .entry(entry.action.clone())
                .or_insert(entry.at.0);
            *at = (*at).min(entry.at.0);
        }
        let done = entries
            .into_iter()
            .map(|entry| (entry.action, entry.dry_run))
            .collect();
        Self {
            done,
            carried_out_at,
            first_at,
        }
    }
}

/// The applied budget an audit entry is of: the start of its action, its notices
/// (`budget <name>: <action>`), its queues' holds.
fn budget_of_entry(action: &EnforcementAction) -> Option<&str> {
    match action {
        EnforcementAction::BudgetReached { budget, .. } => Some(budget),
        EnforcementAction::Notified { notice } => notice
            .strip_prefix("budget ")
            .and_then(|rest| rest.rsplit_once(": "))
            .map(|(name, _)| name),
        EnforcementAction::QueueDisabled { budget, .. }
        | EnforcementAction::QueueHeld { budget, .. }
        | EnforcementAction::QueueEnabled { budget, .. }
        | EnforcementAction::QueueReleased { budget, .. } => budget.as_deref(),
        EnforcementAction::JobCancelled { .. }
        | EnforcementAction::JobTerminated { .. }
        | EnforcementAction::Refused { .. } => None,
    }
}

/// One run's view of what it has done, for the jobs it stops.
struct Run<'a> {
    /// What the audit trail and the job's status reason name: the level (`stop`), or the
    /// budget and its action (`budget genomics: terminate`).
    label: String,
    reason: &'a str,
    at_ms: i64,
    dry_run: bool,
    /// This period's audit trail: each action, whether it was a dry run.
    done: Done,
    /// When each action was first carried out (not in a dry run) this period.
    carried_out_at: BTreeMap<EnforcementAction, i64>,
    /// Jobs this run already acted on (a child may be listed twice).
    seen: BTreeSet<String>,
}

/// Each listed job's tags as `(key, value)` pairs, for its [`JobFacets`].
fn tag_lists(jobs: &[JobSummary]) -> Vec<Vec<(String, String)>> {
    jobs.iter()
        .map(|job| {
            job.tags
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect()
}

/// What a budget matches a listed job on; its compute environment only when its queue has
/// one (Batch's listing does not name it).
fn facets<'a>(job: &'a JobSummary, tags: &'a [(String, String)]) -> JobFacets<'a> {
    JobFacets {
        queue: &job.queue,
        compute_environment: job.compute_environment.as_deref(),
        job_definition: job.job_definition.as_deref().unwrap_or_default(),
        tags,
    }
}

/// The queues' holders, over the two periods read, and those with an entry in this one.
#[derive(Debug, Default)]
struct Holds {
    all: BTreeMap<String, BTreeSet<Holder>>,
    this_period: BTreeMap<String, BTreeSet<Holder>>,
}

impl Holds {
    /// The queues `holder` holds from the previous period only.
    fn carried(&self, holder: &Holder) -> Vec<String> {
        self.all
            .iter()
            .filter(|(queue, holders)| {
                holders.contains(holder)
                    && !self
                        .this_period
                        .get(*queue)
                        .is_some_and(|now| now.contains(holder))
            })
            .map(|(queue, _)| queue.clone())
            .collect()
    }
}

/// The audit label of `holder`'s `what` (`restore`, `held`): the stack's own, or
/// `budget <name>: <what>`.
fn holder_label(holder: &Holder, what: &str) -> String {
    holder.as_ref().map_or_else(
        || what.to_owned(),
        |budget| format!("budget {budget}: {what}"),
    )
}

/// How a holder's queues are held: in a dry run or not, under which label and reason, when.
#[derive(Clone, Copy)]
struct Hold<'a> {
    dry_run: bool,
    label: &'a str,
    reason: &'a str,
    at_ms: i64,
}

/// Who to act on, and how.
#[derive(Clone, Debug)]
pub struct EnforcerSettings {
    /// Queue names in scope; empty: every queue in the account and region.
    pub queues: Vec<String>,
    pub dry_run: bool,
    pub period: BudgetPeriod,
}

/// The enforcer over its ports; `P`, the projections, gives a shedding budget its running
/// jobs' burn rates (without them, shed stops every running job of the budget) and says where
/// the started jobs of queues with several compute environments run (without them, those jobs
/// are in no budget scoped by compute environment).
#[derive(Clone, Debug)]
pub struct Enforcer<B, L, N, P = Unprojected> {
    batch: B,
    log: L,
    notifier: N,
    settings: EnforcerSettings,
    projections: P,
    /// The price table and the region safe admission prices waiting jobs with; without
    /// them, every waiting job is unpriced (admitted, and named as such).
    pricing: Option<(crate::core::prices::PriceTable, String)>,
}

impl<B, L, N> Enforcer<B, L, N> {
    pub fn new(batch: B, log: L, notifier: N, settings: EnforcerSettings) -> Self {
        Self {
            batch,
            log,
            notifier,
            settings,
            projections: Unprojected,
            pricing: None,
        }
    }
}

impl<B, L, N, P> Enforcer<B, L, N, P> {
    /// The same enforcer reading the jobs' projections (a shedding budget's burn rates, the
    /// placements of started jobs).
    pub fn with_projections<Q>(self, projections: Q) -> Enforcer<B, L, N, Q> {
        Enforcer {
            batch: self.batch,
            log: self.log,
            notifier: self.notifier,
            settings: self.settings,
            projections,
            pricing: self.pricing,
        }
    }

    /// The store the audit trail is written to (the enforcer function keeps its gates there).
    pub fn log(&self) -> &L {
        &self.log
    }

    /// The same enforcer pricing waiting jobs for safe admission with `prices` in `region`
    /// (the stack's own: Batch jobs run in the region of their queue).
    #[must_use]
    pub fn with_pricing(mut self, prices: crate::core::prices::PriceTable, region: &str) -> Self {
        self.pricing = Some((prices, region.to_owned()));
        self
    }
}

impl<B, L, N, P> Enforcer<B, L, N, P>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + Sync,
    N: Notifier + Sync,
    P: JobProjections + Sync,
{
    /// The audit entry of `action`; `dry_run`: the stack's, or an applied budget's.
    /// `id_start` is the start of the period its id names: the stack's, or an applied
    /// budget's own for its notices and the start of its action.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &self,
        action: EnforcementAction,
        dry_run: bool,
        level: &str,
        reason: &str,
        at_ms: i64,
        id_start: i64,
    ) -> Fact {
        let period_start = self.settings.period.bounds(Millis(at_ms).floor_seconds()).0;
        Fact {
            // Same period, action, target and mode: same id (the log keeps a record once per
            // id and content, `ports::record_key`; once a period comes from the trail read).
            event_id: format!(
                "batchguard-enforcer:{id_start}:{}:{}:{}{}",
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
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        action: EnforcementAction,
        carried_out: bool,
        dry_run: bool,
        level: &str,
        reason: &str,
        at_ms: i64,
        report: &mut EnforcementReport,
    ) -> Result<(), EnforceError> {
        let id_start = self.settings.period.bounds(Millis(at_ms).floor_seconds()).0;
        self.record_once_in(
            action,
            (carried_out, dry_run),
            level,
            reason,
            (at_ms, id_start),
            report,
        )
        .await
    }

    /// [`Enforcer::record`], its id naming the period beginning at `id_start` (Unix s): an
    /// applied budget's own period for its notices and the start of its action.
    async fn record_once_in(
        &self,
        action: EnforcementAction,
        (carried_out, dry_run): (bool, bool),
        level: &str,
        reason: &str,
        (at_ms, id_start): (i64, i64),
        report: &mut EnforcementReport,
    ) -> Result<(), EnforceError> {
        let fact = self.entry(action.clone(), dry_run, level, reason, at_ms, id_start);
        self.log.append(&[Record::new(fact)]).await?;
        report.actions.push(ActionTaken {
            action,
            carried_out,
        });
        Ok(())
    }

    /// This period's audit trail.
    async fn trail(&self, at_ms: i64) -> Result<Trail, EnforceError> {
        let period_start = self.settings.period.bounds(Millis(at_ms).floor_seconds()).0;
        let entries = self.log.audit_entries(period_start).await?;
        Ok(Trail::of(entries))
    }

    /// The audit trail as the applied budgets of `book` see it: an entry of a budget's own
    /// (`budget_of_entry`: its notices, the start of its action, its queues' holds) counts
    /// from the start of that budget's period, the others from the stack's. The previous
    /// stack period's trail is read too when a budget's period began before the stack's (a
    /// week across a month's end), so a budget whose period is at most the stack's sees all of
    /// its own; one longer than two of the stack's sees the last two (doctor warns).
    async fn budget_trail(&self, book: &BudgetBook, at_ms: i64) -> Result<Trail, EnforceError> {
        let at = Millis(at_ms).floor_seconds();
        let (this_period, _) = self.settings.period.bounds(at);
        let own_start = |name: &str| book.get(name).map(|spec| spec.period.bounds(at).0);
        let mut entries = self.log.audit_entries(this_period).await?;
        if book
            .budgets()
            .any(|spec| spec.period.bounds(at).0 < this_period)
        {
            let (previous, _) = self.settings.period.bounds(this_period - 1);
            let older = self.log.audit_entries(previous).await?;
            entries.extend(older.into_iter().filter(|entry| {
                budget_of_entry(&entry.action)
                    .and_then(own_start)
                    .is_some_and(|start| start < this_period)
            }));
        }
        entries.retain(
            |entry| match budget_of_entry(&entry.action).and_then(own_start) {
                Some(start) => entry.at.0 >= start.saturating_mul(1000),
                None => true,
            },
        );
        Ok(Trail::of(entries))
    }

    /// Every queue holder's holds, from the audit trail of this budget period and the
    /// previous one, and which of them have an entry in this period. A hold is read from two
    /// periods only (the reads stay bounded), so one still held when a period begins is
    /// carried into it ([`Enforcer::carry_holds`]) by whatever next touches it: its holder's
    /// drain, a restore that could not re-enable it, a restore refused.
    async fn holds(&self, at_ms: i64) -> Result<Holds, EnforceError> {
        let at = Millis(at_ms).floor_seconds();
        let (this_period, _) = self.settings.period.bounds(at);
        let (previous_period, _) = self.settings.period.bounds(this_period - 1);
        let this = self.log.audit_entries(this_period).await?;
        let mut history = self.log.audit_entries(previous_period).await?;
        history.extend(this.iter().cloned());
        Ok(Holds {
            all: queue_holds(&history),
            this_period: queue_holds(&this),
        })
    }

    /// Records `holder`'s holds that come from the previous period only as `QueueHeld` in
    /// this one, so they are still read once that period is two behind. Not in a dry run
    /// (a dry run holds nothing).
    pub async fn carry_holds(
        &self,
        holder: &Holder,
        reason: &str,
        at_ms: i64,
        report: &mut EnforcementReport,
    ) -> Result<(), EnforceError> {
        if self.settings.dry_run {
            return Ok(());
        }
        let holds = self.holds(at_ms).await?;
        let label = holder_label(holder, "held");
        for queue in holds.carried(holder) {
            let action = EnforcementAction::QueueHeld {
                queue,
                budget: holder.clone(),
            };
            self.record(action, true, false, &label, reason, at_ms, report)
                .await?;
        }
        Ok(())
    }

    /// Holds the queues `names` (every queue when empty) disabled for `holder`: an enabled one
    /// is disabled (`UpdateJobQueue`) and recorded as `QueueDisabled`; one batchguard already
    /// holds disabled for another holder is recorded as `QueueHeld` by this one too, so that
    /// the other's restore leaves it disabled; one disabled by someone else is left alone (no
    /// restore of batchguard's re-enables it). In a dry run each is recorded once a period
    /// and nothing is changed or held. Returns the queues as listed.
    async fn hold_queues(
        &self,
        holder: &Holder,
        names: &[String],
        hold: Hold<'_>,
        done: &Done,
        report: &mut EnforcementReport,
    ) -> Result<Vec<crate::ports::QueueState>, EnforceError> {
        let queues = self.batch.queues(names).await?;
        let holds = if hold.dry_run || queues.iter().all(|queue| queue.enabled) {
            Holds::default()
        } else {
            self.holds(hold.at_ms).await?
        };
        for queue in &queues {
            let action = if queue.enabled {
                EnforcementAction::QueueDisabled {
                    queue: queue.name.clone(),
                    budget: holder.clone(),
                }
            } else {
                // Disabled: joined when batchguard holds it for another holder, carried into
                // this period when this holder's hold is from the previous one only.
                let held = holds.all.get(&queue.name).is_some_and(|h| !h.is_empty());
                let mine_now = holds
                    .this_period
                    .get(&queue.name)
                    .is_some_and(|h| h.contains(holder));
                if !held || mine_now {
                    continue;
                }
                EnforcementAction::QueueHeld {
                    queue: queue.name.clone(),
                    budget: holder.clone(),
                }
            };
            if hold.dry_run && done.contains(&(action.clone(), true)) {
                continue;
            }
            if !hold.dry_run
                && queue.enabled
                && let Err(error) = self.batch.set_queue_enabled(&queue.name, false).await
            {
                report.failures.push(ActionFailed {
                    action: action.name(),
                    target: queue.name.clone(),
                    error: error.to_string(),
                });
                continue;
            }
            self.record(
                action,
                !hold.dry_run,
                hold.dry_run,
                hold.label,
                hold.reason,
                hold.at_ms,
                report,
            )
            .await?;
        }
        Ok(queues)
    }

    /// Stops one listed job and, when running work is being stopped (`stops_running`) and it
    /// is an array parent or a multi-node job, every running child or node first (listed apart: `ListJobs` with
    /// `arrayJobId` / `multiNodeJobId`). An array parent is terminated, not cancelled, when
    /// running work is stopped, which takes its waiting children with it (AWS's array-job
    /// guide and CancelJob reference).
    async fn stop_listed(
        &self,
        job: &JobSummary,
        terminate: bool,
        stops_running: bool,
        run: &mut Run<'_>,
        report: &mut EnforcementReport,
    ) -> Result<(), EnforceError> {
        if stops_running && job.kind != JobKind::Single {
            match self.batch.children(job, &STARTED).await {
                Ok(children) => {
                    for child in children {
                        self.stop_job(&child, &job.queue, true, run, report).await?;
                    }
                }
                Err(error) => report.failures.push(ActionFailed {
                    action: "ListJobs",
                    target: job.job_id.clone(),
                    error: error.to_string(),
                }),
            }
        }
        let terminate = terminate || (stops_running && job.kind == JobKind::ArrayParent);
        self.stop_job(&job.job_id, &job.queue, terminate, run, report)
            .await
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
        let Trail {
            done,
            carried_out_at,
            ..
        } = self.trail(at_ms).await?;
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
                    self.record(
                        notice,
                        true,
                        dry_run,
                        level.as_str(),
                        reason,
                        at_ms,
                        &mut report,
                    )
                    .await?;
                }
                Err(error) => failed(&mut report, &notice, &error),
            }
        }

        if level >= Level::Freeze {
            let queues = self
                .hold_queues(
                    &None,
                    &self.settings.queues,
                    Hold {
                        dry_run,
                        label: level.as_str(),
                        reason,
                        at_ms,
                    },
                    &done,
                    &mut report,
                )
                .await?;
            let mut targets: Vec<(&[JobStatus], bool)> = vec![(&QUEUED, false)];
            if level >= Level::Stop {
                targets.push((&STARTED, true));
            }
            let mut run = Run {
                label: level.as_str().to_owned(),
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
                        self.stop_listed(
                            &job,
                            *terminate,
                            level >= Level::Stop,
                            &mut run,
                            &mut report,
                        )
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
            let why = format!("batchguard {}: {}", run.label, run.reason);
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
        let label = run.label.clone();
        self.record(
            action,
            !run.dry_run,
            run.dry_run,
            &label,
            run.reason,
            run.at_ms,
            report,
        )
        .await
    }

    /// Carries out the applied budgets' orders (already checked against the ledger) at Unix
    /// milliseconds `at_ms` (issue 17, ADR 0012):
    /// - every order is notified once per budget and action per period;
    /// - at `drain` and above, the queues the budget owns (every job of which it counts),
    ///   within the stack's, are disabled and held for it (`hold_queues`);
    /// - at `drain` and above, the jobs each acting budget counts are listed (its queues, or
    ///   every queue when its scope names none) and `BudgetBook::plan` says what to do to each,
    ///   naming the strictest budget reaching it: a waiting job submitted since the budget
    ///   first drained this period is cancelled (admission on the tick: a shared queue stays
    ///   open for the other budgets' jobs), every waiting job at `cancel-queued`, every running
    ///   job at `terminate`, and at `shed` every running job too (this method has no figures:
    ///   the safe side; [`Enforcer::enforce_budgets_with_figures`] picks the fewest);
    /// - a budget's `dry_run` (or the stack's) records what it would do and changes nothing;
    /// - protected jobs and jobs whose tags cannot be read are left alone, as at every level.
    ///
    /// Batch's listing does not name a job's compute environment: a budget whose scope names
    /// compute environments reaches the jobs of queues with a single compute environment (its
    /// queue says where it runs), and the started jobs of a queue with several where their
    /// projections place them; a waiting job there, or one no event placed, is in no such
    /// budget (it is still summed and notified). A running job of a single-environment queue
    /// takes its queue's compute environment as the queue is now.
    pub async fn enforce_budgets(
        &self,
        book: &BudgetBook,
        orders: &[BudgetOrder],
        at_ms: i64,
    ) -> Result<EnforcementReport, EnforceError> {
        self.enforce_budgets_with_figures(book, orders, &BTreeMap::new(), at_ms)
            .await
    }

    /// As [`Enforcer::enforce_budgets`], with each budget's figures as the ledger check read
    /// them (its spend and burn rate, the hours left in its period): for a shedding budget the
    /// running jobs' burn rates are read from the projections, and `budgets::shed` stops the
    /// fewest of the jobs it can stop that bring the budget's forecast inside its amount,
    /// costliest first; what the others burn (protected jobs, jobs whose tags cannot be read,
    /// jobs outside the stack's queues) counts as spent (`BudgetFigures::for_shed`). A
    /// shedding budget without figures, or with a running job whose burn rate cannot be read,
    /// stops all of its running jobs (the safe side), as does a failed read of the rates
    /// (reported).
    pub async fn enforce_budgets_with_figures(
        &self,
        book: &BudgetBook,
        orders: &[BudgetOrder],
        figures: &BTreeMap<String, BudgetFigures>,
        at_ms: i64,
    ) -> Result<EnforcementReport, EnforceError> {
        let strictest = orders.iter().map(|order| order.action).max();
        let mut report = EnforcementReport {
            level: strictest.map_or(Step::Ok, |action| action.level().into()),
            dry_run: self.settings.dry_run,
            reason: orders
                .iter()
                .map(|order| order.reason.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            ..EnforcementReport::default()
        };
        // Each budget's own entries count from the start of its own period.
        let Trail {
            done,
            carried_out_at,
            first_at,
        } = self.budget_trail(book, at_ms).await?;
        let own_start = |budget: &str| {
            let at = Millis(at_ms).floor_seconds();
            book.get(budget)
                .map_or(self.settings.period, |spec| spec.period)
                .bounds(at)
                .0
        };
        let dry_run_of = |budget: &str| {
            self.settings.dry_run || book.get(budget).is_none_or(|spec| spec.dry_run)
        };
        for ((action, dry), at) in &first_at {
            if let EnforcementAction::BudgetReached { budget, .. } = action
                && *dry == dry_run_of(budget)
            {
                let since = report.drain_started.entry(budget.clone()).or_insert(*at);
                *since = (*since).min(*at);
            }
        }
        // Each acting budget's action, recorded the first time this period before anything
        // else it does: when a drain began, whatever the notices do.
        for order in orders
            .iter()
            .filter(|order| order.action >= Action::Drain && book.get(&order.budget).is_some())
        {
            let dry_run = dry_run_of(&order.budget);
            let reached = EnforcementAction::BudgetReached {
                budget: order.budget.clone(),
                reached: order.action.as_str().to_owned(),
            };
            if !done.contains(&(reached.clone(), dry_run)) {
                let label = format!("budget {}: {}", order.budget, order.action);
                self.record_once_in(
                    reached,
                    (true, dry_run),
                    &label,
                    &order.reason,
                    (at_ms, own_start(&order.budget)),
                    &mut report,
                )
                .await?;
            }
        }
        for order in orders {
            let dry_run = dry_run_of(&order.budget);
            let notice = EnforcementAction::Notified {
                notice: format!("budget {}: {}", order.budget, order.action),
            };
            if done.contains(&(notice.clone(), dry_run)) {
                continue;
            }
            let subject = format!(
                "batchguard: budget {} at {}{}",
                order.budget,
                order.action,
                if dry_run { " (dry run)" } else { "" }
            );
            match self.notifier.notify(&subject, &order.reason).await {
                Ok(()) => {
                    let label = format!("budget {}", order.budget);
                    self.record_once_in(
                        notice,
                        (true, dry_run),
                        &label,
                        &order.reason,
                        (at_ms, own_start(&order.budget)),
                        &mut report,
                    )
                    .await?;
                }
                Err(error) => report.failures.push(ActionFailed {
                    action: notice.name(),
                    target: notice.target().to_owned(),
                    error: error.to_string(),
                }),
            }
        }
        let acting: BTreeMap<String, Action> = orders
            .iter()
            .filter(|order| order.action >= Action::Drain && book.get(&order.budget).is_some())
            .map(|order| (order.budget.clone(), order.action))
            .collect();
        report.gate = Some(crate::core::arrival::drain_gate(at_ms, []));
        if acting.is_empty() {
            return Ok(report);
        }
        // Each acting budget's own queues (all of whose jobs it counts: `owned_queues`),
        // within the stack's, are held disabled for it: no new job reaches them, and its
        // restore re-enables only what it alone holds. A shared queue stays open; the jobs
        // of this budget's scope arriving there are cancelled below.
        for (name, action) in &acting {
            let scoped = &self.settings.queues;
            // (An empty list asks Batch for every queue: only when the budget owns them all.)
            let names: Vec<String> = match book.owned_queues(name) {
                None => scoped.clone(),
                Some(owned) => {
                    let owned: Vec<String> = owned
                        .into_iter()
                        .filter(|q| scoped.is_empty() || scoped.contains(q))
                        .collect();
                    if owned.is_empty() {
                        continue;
                    }
                    owned
                }
            };
            let label = format!("budget {name}: {action}");
            let reason = orders
                .iter()
                .find(|order| &order.budget == name)
                .map_or("", |order| order.reason.as_str());
            let hold = Hold {
                dry_run: dry_run_of(name),
                label: &label,
                reason,
                at_ms,
            };
            match self
                .hold_queues(&Some(name.clone()), &names, hold, &done, &mut report)
                .await
            {
                Ok(_) => {}
                // Queues that cannot be listed hold up none of the jobs' actions below.
                Err(EnforceError::Control(error)) => report.failures.push(ActionFailed {
                    action: "DescribeJobQueues",
                    target: names.join(","),
                    error: error.to_string(),
                }),
                Err(error) => return Err(error),
            }
        }
        // When each budget first drained (or more) this period: the jobs submitted since are
        // the ones it turns away.
        // (The dry-run records of a budget since made live do not count: its drain begins
        // when it first acts for real.)
        let drained_since: BTreeMap<&str, i64> = acting
            .keys()
            .map(|name| {
                let dry_run = dry_run_of(name);
                let since = first_at
                    .iter()
                    .filter_map(|((action, dry), at)| match action {
                        EnforcementAction::BudgetReached { budget, .. }
                            if budget == name && *dry == dry_run =>
                        {
                            Some(*at)
                        }
                        _ => None,
                    })
                    .min()
                    .unwrap_or(at_ms);
                (name.as_str(), since)
            })
            .collect();
        // The same, for the jobs whose events arrive before the next run.
        report.gate = Some(crate::core::arrival::drain_gate(
            at_ms,
            acting.iter().map(|(name, action)| {
                let draining = crate::core::arrival::Draining {
                    action: *action,
                    since_ms: drained_since.get(name.as_str()).copied().unwrap_or(at_ms),
                    dry_run: dry_run_of(name),
                    reason: orders
                        .iter()
                        .find(|order| &order.budget == name)
                        .map_or_else(String::new, |order| order.reason.clone()),
                };
                (name.clone(), draining)
            }),
        ));
        let mut statuses: Vec<JobStatus> = QUEUED.to_vec();
        if acting.values().any(|action| *action >= Action::Shed) {
            statuses.extend(STARTED);
        }
        let (jobs, readings) = self
            .budget_jobs(book, &acting, &statuses, &mut report)
            .await?;
        if let Some(gate) = report.gate.as_mut() {
            gate.environments.clone_from(&report.environments);
        }
        let tag_lists = tag_lists(&jobs);
        let views: Vec<JobView<'_>> = jobs
            .iter()
            .zip(&tag_lists)
            .map(|(job, tags)| {
                let facets = facets(job, tags);
                let stage = if STARTED.contains(&job.status) {
                    JobStage::Running
                } else {
                    let since = book
                        .budgets_of(&facets)
                        .into_iter()
                        .filter_map(|name| drained_since.get(name).copied())
                        .min();
                    match (job.created_at_ms, since) {
                        (Some(created), Some(since)) if created >= since => JobStage::Arriving,
                        _ => JobStage::Waiting,
                    }
                };
                JobView {
                    job_id: &job.job_id,
                    facets,
                    stage,
                    burn_usd_per_hour: rust_decimal::Decimal::ZERO,
                }
            })
            .collect();
        // The enforcing budgets' plan first, so a dry-run budget never takes the place of an
        // enforcing one on a job they share; then the dry-run budgets' on the jobs left, to
        // record what they would do.
        let (live, dry): (BTreeMap<String, Action>, BTreeMap<String, Action>) = acting
            .iter()
            .map(|(name, action)| (name.clone(), *action))
            .partition(|(name, _)| !dry_run_of(name));
        let (views, figures) = self
            .with_burns(book, &acting, figures, views, readings, &mut report)
            .await;
        let mut steps = book.plan(&live, &figures, &views);
        let stepped: BTreeSet<String> = steps
            .iter()
            .map(|step| match step {
                JobStep::Cancel { job_id, .. } | JobStep::Terminate { job_id, .. } => {
                    job_id.clone()
                }
            })
            .collect();
        let left: Vec<JobView<'_>> = views
            .iter()
            .filter(|view| !stepped.contains(view.job_id))
            .copied()
            .collect();
        steps.extend(book.plan(&dry, &figures, &left));
        let mut run = Run {
            label: String::new(),
            reason: "",
            at_ms,
            dry_run: self.settings.dry_run,
            done,
            carried_out_at,
            seen: BTreeSet::new(),
        };
        let reasons: BTreeMap<&str, &str> = orders
            .iter()
            .map(|order| (order.budget.as_str(), order.reason.as_str()))
            .collect();
        for step in &steps {
            let (job_id, budget, terminate) = match step {
                JobStep::Cancel { job_id, budget } => (job_id, budget, false),
                JobStep::Terminate { job_id, budget } => (job_id, budget, true),
            };
            let Some(job) = jobs.iter().find(|job| &job.job_id == job_id) else {
                continue;
            };
            let action = acting.get(budget).copied().unwrap_or(Action::Terminate);
            run.label = format!("budget {budget}: {action}");
            run.reason = reasons.get(budget.as_str()).copied().unwrap_or_default();
            run.dry_run = dry_run_of(budget);
            self.stop_listed(
                job,
                terminate,
                action >= Action::Shed,
                &mut run,
                &mut report,
            )
            .await?;
        }
        Ok(report)
    }

    /// The running jobs' burn rates, when a shedding budget has figures, and the figures of
    /// the shedding budgets whose every running job has one (the others stop all of theirs).
    /// `read` holds the projections [`Enforcer::budget_jobs`] read already (`None`: asked
    /// for, not projected): they are not read twice.
    async fn with_burns<'a>(
        &self,
        book: &BudgetBook,
        acting: &BTreeMap<String, Action>,
        figures: &BTreeMap<String, BudgetFigures>,
        mut views: Vec<JobView<'a>>,
        read: BTreeMap<String, Option<JobReading>>,
        report: &mut EnforcementReport,
    ) -> (Vec<JobView<'a>>, BTreeMap<String, ShedFigures>) {
        let shedding: Vec<&String> = acting
            .iter()
            .filter(|(name, action)| **action == Action::Shed && figures.contains_key(*name))
            .map(|(name, _)| name)
            .collect();
        if shedding.is_empty() {
            return (views, BTreeMap::new());
        }
        let running: Vec<String> = views
            .iter()
            .filter(|view| view.stage == JobStage::Running && !read.contains_key(view.job_id))
            .map(|view| view.job_id.to_owned())
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let readings = if running.is_empty() {
            Ok(BTreeMap::new())
        } else {
            self.projections.job_readings(&running).await
        };
        let burns: BTreeMap<String, Decimal> = match readings {
            Ok(readings) => read
                .into_iter()
                .filter_map(|(job, reading)| reading.map(|reading| (job, reading)))
                .chain(readings)
                .map(|(job, reading)| (job, reading.burn_usd_per_hour))
                .collect(),
            Err(error) => {
                report.failures.push(ActionFailed {
                    action: "ReadBurnRates",
                    target: running.join(","),
                    error: error.to_string(),
                });
                return (views, BTreeMap::new());
            }
        };
        for view in &mut views {
            if let Some(burn) = burns.get(view.job_id) {
                view.burn_usd_per_hour = *burn;
            }
        }
        let mut known = BTreeMap::new();
        for name in shedding {
            let mine: Vec<&JobView<'_>> = views
                .iter()
                .filter(|view| {
                    view.stage == JobStage::Running
                        && book.budgets_of(&view.facets).contains(&name.as_str())
                })
                .collect();
            if mine.iter().any(|view| !burns.contains_key(view.job_id)) {
                continue;
            }
            let candidates = mine.iter().try_fold(Decimal::ZERO, |sum, view| {
                sum.checked_add(view.burn_usd_per_hour)
            });
            if let Some(shed) = figures
                .get(name)
                .zip(candidates)
                .and_then(|(f, candidates)| f.for_shed(candidates))
            {
                known.insert(name.clone(), shed);
            }
        }
        (views, known)
    }

    /// The jobs of `statuses` the acting budgets may reach, tags read; from the queues their
    /// scopes (or their ancestors') name, or every queue when one names none — within the
    /// stack's queues when it names some (`EnforcerSettings::queues`). Protected jobs and
    /// jobs whose tags cannot be read are reported and left out.
    ///
    /// Each job's compute environment, when some applied budget names one: a queue with a
    /// single compute environment places every job there; a started job of a queue with
    /// several is where its projection says its events placed it (read in batches of 100,
    /// and returned, `None` for a job not projected, so a shedding budget does not read them
    /// again). A job whose placement is
    /// not known (waiting, or no event named it) is in no budget scoped by compute
    /// environment.
    async fn budget_jobs(
        &self,
        book: &BudgetBook,
        acting: &BTreeMap<String, Action>,
        statuses: &[JobStatus],
        report: &mut EnforcementReport,
    ) -> Result<(Vec<JobSummary>, BTreeMap<String, Option<JobReading>>), EnforceError> {
        let mut named: BTreeSet<String> = BTreeSet::new();
        let mut every_queue = false;
        for name in acting.keys() {
            // The nearest of the budget and its ancestors that names queues bounds its jobs.
            let mut at = book.get(name);
            let mut found = false;
            while let Some(spec) = at {
                if !spec.scope.queues.is_empty() {
                    named.extend(spec.scope.queues.iter().cloned());
                    found = true;
                    break;
                }
                at = spec.parent.as_deref().and_then(|parent| book.get(parent));
            }
            every_queue |= !found;
        }
        // Never outside the stack's queues (`JobQueueArns`) when it names some.
        let scoped = &self.settings.queues;
        let names: Vec<String> = match (every_queue, scoped.is_empty()) {
            (true, _) => scoped.clone(),
            (false, true) => named.into_iter().collect(),
            (false, false) => named.into_iter().filter(|q| scoped.contains(q)).collect(),
        };
        if names.is_empty() && !(every_queue && scoped.is_empty()) {
            return Ok((Vec::new(), BTreeMap::new()));
        }
        let queues = self.batch.queues(&names).await?;
        // The compute environments some applied budget names: the gates carry only those.
        let named: BTreeSet<&String> = book
            .budgets()
            .flat_map(|spec| &spec.scope.compute_environments)
            .collect();
        let mut jobs: Vec<JobSummary> = Vec::new();
        for queue in &queues {
            report
                .queue_environments
                .insert(queue.name.clone(), queue.compute_environments.clone());
            // A queue with one compute environment places every job of it there.
            let sole = match queue.compute_environments.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            };
            if let Some(ce) = sole.as_ref().filter(|ce| named.contains(ce)) {
                report.environments.insert(queue.name.clone(), ce.clone());
            }
            match self.batch.jobs(&queue.name, statuses).await {
                Ok(listed) => {
                    for mut job in listed {
                        job.compute_environment.clone_from(&sole);
                        match &job.tags {
                            None => report.unverified_jobs.push(job.job_id),
                            Some(tags) if is_protected(tags) => {
                                report.protected_jobs.push(job.job_id);
                            }
                            Some(_) => jobs.push(job),
                        }
                    }
                }
                Err(error) => report.failures.push(ActionFailed {
                    action: "ListJobs",
                    target: queue.name.clone(),
                    error: error.to_string(),
                }),
            }
        }
        // `ListJobs` is asked once per status, so a job that moved on between two of them is
        // listed twice: it is kept once, at the furthest status listed (in the order of
        // `statuses`), where it was listed first.
        let progress = |status: JobStatus| statuses.iter().position(|s| *s == status);
        let mut furthest: BTreeMap<String, Option<usize>> = BTreeMap::new();
        for job in &jobs {
            let at = furthest.entry(job.job_id.clone()).or_default();
            *at = (*at).max(progress(job.status));
        }
        let mut kept: BTreeSet<String> = BTreeSet::new();
        jobs.retain(|job| {
            furthest.get(&job.job_id) == Some(&progress(job.status))
                && kept.insert(job.job_id.clone())
        });
        // Started jobs of queues with several compute environments, when a budget names one.
        let unplaced: Vec<String> = jobs
            .iter()
            .filter(|job| {
                !named.is_empty()
                    && STARTED.contains(&job.status)
                    && report
                        .queue_environments
                        .get(&job.queue)
                        .is_some_and(|environments| environments.len() > 1)
            })
            .map(|job| job.job_id.clone())
            .collect();
        if unplaced.is_empty() {
            return Ok((jobs, BTreeMap::new()));
        }
        let mut readings = match self.projections.job_readings(&unplaced).await {
            Ok(readings) => readings,
            Err(error) => {
                report.failures.push(ActionFailed {
                    action: "ReadPlacements",
                    target: unplaced.join(","),
                    error: error.to_string(),
                });
                return Ok((jobs, BTreeMap::new()));
            }
        };
        for job in &mut jobs {
            if let Some(reading) = readings.get(&job.job_id) {
                job.compute_environment
                    .clone_from(&reading.compute_environment);
            }
        }
        let read = unplaced
            .into_iter()
            .map(|job| {
                let reading = readings.remove(&job);
                (job, reading)
            })
            .collect();
        Ok((jobs, read))
    }

    /// The budgets applied to the stack, as stored (`budgets apply`): what the enforcer checks
    /// and acts on, whatever a request says of them.
    pub async fn applied_budgets(&self) -> Result<BudgetBook, EnforceError>
    where
        L: BudgetStore,
    {
        Ok(self.applied_budgets_versioned().await?.1)
    }

    /// As [`Enforcer::applied_budgets`], with the stored book's version (0: none applied).
    pub async fn applied_budgets_versioned(&self) -> Result<(u64, BudgetBook), EnforceError>
    where
        L: BudgetStore,
    {
        let (version, book) = self.log.budgets().await?;
        Ok((version, book.unwrap_or_default()))
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
        self.refuse_as(request, request.as_str(), why, at_ms).await
    }

    /// As [`Enforcer::refuse`], the refusal recorded and notified under `label` (an applied
    /// budget's order: `budget genomics: terminate`, so its refusals are kept apart from the
    /// template budget's levels and from each other).
    pub async fn refuse_as(
        &self,
        request: Step,
        label: &str,
        why: &str,
        at_ms: i64,
    ) -> Result<EnforcementReport, EnforceError> {
        let action = EnforcementAction::Refused {
            request: label.to_owned(),
        };
        let period_start = self.settings.period.bounds(Millis(at_ms).floor_seconds()).0;
        let refused_before = self
            .log
            .audit_entries(period_start)
            .await?
            .iter()
            .any(|entry| entry.action == action);
        let fact = self.entry(
            action.clone(),
            self.settings.dry_run,
            label,
            why,
            at_ms,
            period_start,
        );
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
            let subject = format!("batchguard: refused {label}");
            let message = format!(
                "batchguard was asked to {label} and did nothing: {why}. If nobody in your \
                 team asked, something in the account is sending batchguard's alarms or \
                 invoking its enforcer."
            );
            if let Err(error) = self.notifier.notify(&subject, &message).await {
                report.failures.push(ActionFailed {
                    action: "Notified",
                    target: format!("refused {label}"),
                    error: error.to_string(),
                });
            }
        }
        Ok(report)
    }

    /// Re-enables the queues the stack's own budget (its levels) holds disabled
    /// ([`Enforcer::restore_holder`] with no budget).
    pub async fn restore(
        &self,
        reason: &str,
        at_ms: i64,
    ) -> Result<EnforcementReport, EnforceError> {
        self.restore_holder(&None, reason, at_ms).await
    }

    /// Releases every queue `holder` (the stack's own budget, or an applied budget by name)
    /// holds disabled since the previous budget period, and re-enables those no other holder
    /// holds and that are still disabled: exactly what this holder changed, nothing of
    /// another's. A queue another holder still holds stays disabled, and one found enabled by
    /// someone else, or deleted, is left as it is; both are recorded as released (nothing left
    /// for this holder to undo, so no restore is asked for it again). One that cannot be
    /// re-enabled is reported in `failures`, and the others are still restored.
    pub async fn restore_holder(
        &self,
        holder: &Holder,
        reason: &str,
        at_ms: i64,
    ) -> Result<EnforcementReport, EnforceError> {
        let holds = self.holds(at_ms).await?;
        let mut report = EnforcementReport {
            level: Step::Restore,
            dry_run: self.settings.dry_run,
            reason: reason.to_owned(),
            ..EnforcementReport::default()
        };
        let names: Vec<String> = holds
            .all
            .iter()
            .filter(|(_, holders)| holders.contains(holder))
            .map(|(queue, _)| queue.clone())
            .collect();
        if names.is_empty() {
            return Ok(report);
        }
        let label = holder_label(holder, "restore");
        // A dry run records what it would do once a period, not at every request.
        let done = if self.settings.dry_run {
            self.trail(at_ms).await?.done
        } else {
            Done::new()
        };
        let carried = holds.carried(holder);
        let found = self.batch.queues(&names).await?;
        for name in &names {
            let others_hold = holds
                .all
                .get(name)
                .is_some_and(|holders| holders.iter().any(|other| other != holder));
            let state = found.iter().find(|queue| &queue.name == name);
            let action = match state {
                // Still disabled, as batchguard left it, and nobody else holds it: re-enable it.
                Some(queue) if !queue.enabled && !others_hold => {
                    let action = EnforcementAction::QueueEnabled {
                        queue: queue.name.clone(),
                        budget: holder.clone(),
                    };
                    if !self.settings.dry_run
                        && let Err(error) = self.batch.set_queue_enabled(&queue.name, true).await
                    {
                        report.failures.push(ActionFailed {
                            action: action.name(),
                            target: queue.name.clone(),
                            error: error.to_string(),
                        });
                        // Still held: carried into this period, so a retry finds it.
                        if carried.contains(name) {
                            let held = EnforcementAction::QueueHeld {
                                queue: name.clone(),
                                budget: holder.clone(),
                            };
                            let label = holder_label(holder, "held");
                            self.record(held, true, false, &label, reason, at_ms, &mut report)
                                .await?;
                        }
                        continue;
                    }
                    action
                }
                // Held by another holder, enabled by someone else, or deleted: this holder
                // lets go and changes nothing.
                _ => EnforcementAction::QueueReleased {
                    queue: name.clone(),
                    budget: holder.clone(),
                },
            };
            if self.settings.dry_run && done.contains(&(action.clone(), true)) {
                continue;
            }
            let carried_out =
                !self.settings.dry_run && matches!(action, EnforcementAction::QueueEnabled { .. });
            self.record(
                action,
                carried_out,
                self.settings.dry_run,
                &label,
                reason,
                at_ms,
                &mut report,
            )
            .await?;
        }
        Ok(report)
    }
}
