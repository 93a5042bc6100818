//! The status report: the one JSON document `batchguard replay --json` and `status --json`
//! print. Money is a decimal string (never a float), instants RFC 3339 UTC.

use std::collections::BTreeMap;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::core::budget::{Baseline, Budget, BudgetPeriod, BudgetStatus, Fused, Outlook};
use crate::core::ledger::{InstanceCost, JobCost, Ledger, UnattributedTask};
use crate::core::scope::{Scope, ScopeSpend};
use crate::ports::IngestCounts;

pub use super::figures::{MONEY_DECIMAL_PLACES, instant, money};

const PERCENT_DECIMAL_PLACES: u32 = 4;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct EventCounts {
    pub read: u64,
    pub duplicates: u64,
    pub skipped: u64,
    pub rejected: u64,
}

impl From<IngestCounts> for EventCounts {
    fn from(counts: IngestCounts) -> Self {
        Self {
            read: counts.read,
            duplicates: counts.duplicates,
            skipped: counts.skipped,
            rejected: counts.rejected,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct JobLine {
    pub job_id: String,
    pub job_name: String,
    pub queue: String,
    pub job_definition: String,
    pub status: Option<&'static str>,
    pub attempts: usize,
    pub cost_usd: Option<Decimal>,
    pub billed_seconds: i64,
    pub estimated: bool,
    pub running: bool,
    pub array_parent: bool,
    /// Closed by batchguard at its last known instant: AWS Batch no longer knew it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub closed_unknown_to_batch: bool,
    pub unpriced: Option<String>,
}

impl From<JobCost> for JobLine {
    fn from(job: JobCost) -> Self {
        Self {
            job_id: job.job_id,
            job_name: job.job_name,
            queue: job.queue,
            job_definition: job.job_definition,
            status: job.status.map(|s| s.as_str()),
            attempts: job.attempts,
            cost_usd: job.cost_usd.map(money),
            billed_seconds: job.billed_seconds,
            estimated: job.estimated,
            running: job.running,
            array_parent: job.array_parent,
            closed_unknown_to_batch: job.closed_unknown_to_batch,
            unpriced: job.unpriced.map(|reason| reason.to_string()),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct UnattributedLine {
    pub task_arn: String,
    pub compute_environment: String,
    pub cost_usd: Option<Decimal>,
    pub billed_seconds: i64,
    pub running: bool,
    pub unpriced: Option<String>,
}

impl From<UnattributedTask> for UnattributedLine {
    fn from(task: UnattributedTask) -> Self {
        Self {
            task_arn: task.task_arn,
            compute_environment: task.compute_environment,
            cost_usd: task.cost_usd.map(money),
            billed_seconds: task.billed_seconds,
            running: task.running,
            unpriced: task.unpriced.map(|reason| reason.to_string()),
        }
    }
}

/// One EC2 instance of a Batch compute environment: its bill, the jobs' shares, idle.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct InstanceLine {
    pub container_instance_arn: String,
    pub ec2_instance_id: Option<String>,
    pub compute_environment: String,
    pub instance_type: Option<String>,
    pub availability_zone: Option<String>,
    /// What the bill is split by, e.g. `96 vCPU, 1152 GiB, 8 GPU split GPU 9 : vCPU 0.9 :
    /// GiB 0.1` (AWS split cost allocation's weights); `(registered)` when the price table
    /// does not know the type and the container instance's registered resources stand in.
    pub split_by: Option<String>,
    pub spot: bool,
    pub status: String,
    pub cost_usd: Option<Decimal>,
    /// The jobs' shares: AWS split cost allocation's split cost of their reservations (a lower
    /// bound when a job uses more than it reserved: AWS allocates max(used, reserved)).
    pub attributed_usd: Decimal,
    /// The unused cost: what no job reserved.
    pub idle_usd: Option<Decimal>,
    /// Shares beyond the bill (events claiming more than the instance holds); absent when 0.
    #[serde(skip_serializing_if = "Decimal::is_zero")]
    pub overcommitted_usd: Decimal,
    pub billed_seconds: i64,
    pub running: bool,
    pub estimated: bool,
    pub unpriced: Option<String>,
}

impl From<InstanceCost> for InstanceLine {
    fn from(instance: InstanceCost) -> Self {
        Self {
            container_instance_arn: instance.container_instance_arn,
            ec2_instance_id: instance.ec2_instance_id,
            compute_environment: instance.compute_environment,
            instance_type: instance.instance_type,
            availability_zone: instance.availability_zone,
            split_by: instance.split_basis.map(|basis| basis.to_string()),
            spot: instance.spot,
            status: instance.status,
            cost_usd: instance.cost_usd.map(money),
            attributed_usd: money(instance.attributed_usd),
            idle_usd: instance.idle_usd.map(money),
            overcommitted_usd: money(instance.overcommitted_usd),
            billed_seconds: instance.billed_seconds,
            running: instance.running,
            estimated: instance.estimated,
            unpriced: instance.unpriced.map(|reason| reason.to_string()),
        }
    }
}

/// Figures of one scope, for the `scopes` table.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ScopeLine {
    pub kind: &'static str,
    pub name: String,
    pub spend_usd: Decimal,
    pub period_spend_usd: Decimal,
    pub burn_rate_usd_per_hour: Decimal,
    pub running_tasks: u64,
    pub running_vcpu: Decimal,
    pub running_memory_gib: Decimal,
    pub unpriced_tasks: u64,
    pub estimated_tasks: u64,
}

/// The report. Field names are the JSON contract; add, never rename.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StatusReport {
    pub as_of: String,
    pub spend_usd: Decimal,
    pub by_queue: BTreeMap<String, Decimal>,
    pub by_compute_environment: BTreeMap<String, Decimal>,
    pub by_job_definition: BTreeMap<String, Decimal>,
    pub by_tag: BTreeMap<String, Decimal>,
    pub jobs: Vec<JobLine>,
    pub unattributed_tasks: Vec<UnattributedLine>,
    pub running_jobs: u64,
    pub running_tasks: u64,
    pub running_vcpu: Decimal,
    pub running_memory_gib: Decimal,
    pub burn_rate_usd_per_hour: Decimal,
    pub budget_usd: Option<Decimal>,
    pub budget_period: BudgetPeriod,
    pub period_start: String,
    pub period_end: String,
    pub period_spend_usd: Decimal,
    pub budget_used_percent: Option<Decimal>,
    pub projected_exhaustion: Option<String>,
    /// `runs_out`, `lasts_the_period`, `exhausted`, `no_burn`; `null` without a budget.
    pub outlook: Option<&'static str>,
    pub unpriced_tasks: u64,
    pub estimated_tasks: u64,
    pub scopes: Vec<ScopeLine>,
    pub events: EventCounts,
    /// EC2 instances of Batch compute environments (empty when everything ran on Fargate).
    pub ec2_instances: Vec<InstanceLine>,
    /// With a budget from AWS Budgets: AWS's figure and what the ledger adds after it;
    /// `budget_used_percent` and the forecast are then of `budget_spend_usd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineLine>,
    /// Stored facts left out of the figures because a value is out of range (a store written
    /// by a batchguard that did not check them).
    #[serde(skip_serializing_if = "is_zero")]
    pub refused_facts: u64,
    /// `status` only: what the enforcer recorded in this budget period (the audit trail).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<AuditLine>,
    /// With `--budgets`: each budget of the file (`analysis::budgets`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<super::budgets::BudgetLine>,
    /// Jobs tagged `batchguard:max-usd` (`core::caps`) running, ended over their cap, or with
    /// a tag that is not an amount: each one's cost against its cap.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capped_jobs: Vec<CappedLine>,
}

/// A job tagged `batchguard:max-usd`, as of the report's instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CappedLine {
    pub job_id: String,
    /// The cap; `None` when the tag's value is not an amount (`cap_error` says why).
    pub cap_usd: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_error: Option<String>,
    pub cost_usd: Decimal,
    pub running: bool,
    /// At or over its cap.
    pub over_cap: bool,
    /// While it runs under its cap: when its cost reaches the cap at its current rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reaches_cap_at: Option<String>,
}

/// The jobs tagged `batchguard:max-usd` in `ledger` that are running, ended over their cap,
/// or whose tag is not an amount: each one's cost at `at` against its cap; the running ones
/// first, then by job id.
pub fn capped_lines(ledger: &Ledger, at: i64) -> Vec<CappedLine> {
    use crate::core::caps::{CAP_TAG, cap_reached_at, cost_at, is_running, job_cap};
    use crate::core::projection::GroupProjection;
    let mut lines: Vec<CappedLine> = ledger
        .jobs_tagged(CAP_TAG)
        .map(|(job_id, value)| {
            let projection = GroupProjection::of_job(ledger, job_id);
            let cost = cost_at(&projection, at);
            let running = is_running(&projection);
            let (cap_usd, cap_error) = match job_cap([(CAP_TAG, value)].into_iter()) {
                Some(Ok(cap)) => (Some(cap), None),
                Some(Err(why)) => (None, Some(why)),
                None => (None, None),
            };
            let over_cap = cap_usd.is_some_and(|cap| cost >= cap);
            let reaches_cap_at = cap_usd
                .filter(|_| running && !over_cap)
                .and_then(|cap| cap_reached_at(&projection, cap))
                .map(instant);
            CappedLine {
                job_id: job_id.to_owned(),
                cap_usd,
                cap_error,
                cost_usd: money(cost),
                running,
                over_cap,
                reaches_cap_at,
            }
        })
        // A job that ended under its cap needs no line.
        .filter(|line| line.running || line.over_cap || line.cap_error.is_some())
        .collect();
    lines.sort_by(|a, b| b.running.cmp(&a.running).then(a.job_id.cmp(&b.job_id)));
    lines
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// One entry of the audit trail.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AuditLine {
    pub at: String,
    /// The level that led to it (`notify`, `freeze`, `stop`, `restore`).
    pub level: String,
    /// `Notified`, `QueueDisabled`, `QueueHeld`, `QueueEnabled`, `QueueReleased`, `JobCancelled`,
    /// `JobTerminated`.
    pub action: &'static str,
    pub target: String,
    pub dry_run: bool,
    pub reason: String,
}

impl From<&crate::core::facts::EnforcementRecorded> for AuditLine {
    fn from(entry: &crate::core::facts::EnforcementRecorded) -> Self {
        Self {
            at: instant(entry.at.floor_seconds()),
            level: entry.level.clone(),
            action: entry.action.name(),
            target: entry.action.target().to_owned(),
            dry_run: entry.dry_run,
            reason: entry.reason.clone(),
        }
    }
}

/// AWS's hours-late figure for the budget, and batchguard's real-time part after it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BaselineLine {
    /// AWS's figure (AWS Budgets' `CalculatedSpend.ActualSpend`, or Cost Explorer's); zero
    /// when AWS last updated it before the period began (last period's figure).
    pub aws_spend_usd: Decimal,
    /// When AWS last updated it.
    pub aws_as_of: String,
    /// What the ledger saw accrue from `aws_as_of` to `as_of`.
    pub ledger_after_usd: Decimal,
    /// `aws_spend_usd + ledger_after_usd`: what the budget is measured against.
    pub budget_spend_usd: Decimal,
}

impl StatusReport {
    /// Builds the report at whole Unix second `at`.
    pub fn build(
        ledger: &Ledger,
        at: i64,
        budget_usd: Option<Decimal>,
        counts: IngestCounts,
    ) -> Self {
        Self::build_with_baseline(ledger, at, budget_usd, None, counts)
    }

    /// As [`StatusReport::build`], the budget's spend being AWS's `baseline` plus the ledger's
    /// spend after it (inside the budget period).
    pub fn build_with_baseline(
        ledger: &Ledger,
        at: i64,
        budget_usd: Option<Decimal>,
        baseline: Option<Baseline>,
        counts: IngestCounts,
    ) -> Self {
        let walk = ledger.walk(at);
        let scopes = ledger.all_scope_spend(at);
        let total = scopes.get(&Scope::Total).copied().unwrap_or_default();
        let by = |kind: &str| -> BTreeMap<String, Decimal> {
            scopes
                .iter()
                .filter(|(scope, _)| scope.kind() == kind)
                .map(|(scope, spend)| (scope.value(), money(spend.spend_usd)))
                .collect()
        };
        let period = ledger.period();
        let (period_start, period_end) = period.bounds(at);
        let baseline = baseline.map(|baseline| {
            let fused = Fused::exact(baseline, period_start, |from| {
                ledger.spend_between(&Scope::Total, from, at)
            });
            BaselineLine {
                aws_spend_usd: money(fused.baseline_usd),
                aws_as_of: instant(fused.baseline_as_of),
                ledger_after_usd: money(fused.ledger_after_usd),
                budget_spend_usd: money(fused.spend_usd),
            }
        });
        let budget_spend = baseline
            .as_ref()
            .map_or(total.period_spend_usd, |b| b.budget_spend_usd);
        let budget = budget_usd.map(|amount_usd| {
            BudgetStatus::evaluate(
                Budget { amount_usd, period },
                at,
                budget_spend,
                total.burn_rate_usd_per_hour,
            )
        });
        let (outlook, projected_exhaustion) = match budget.map(|b| b.outlook) {
            None => (None, None),
            Some(Outlook::RunsOut { at }) => (Some("runs_out"), Some(instant(at))),
            Some(Outlook::LastsThePeriod) => (Some("lasts_the_period"), None),
            Some(Outlook::Exhausted) => (Some("exhausted"), None),
            Some(Outlook::NoBurn) => (Some("no_burn"), None),
        };
        // The figures a user adds up agree: the jobs, the tasks no job names and the EC2
        // capacity no job reserved (jobs' EC2 shares + idle = the instances' bills) are the
        // total; each is rounded to 10 places so that their sum is the total rounded
        // (largest remainders: no figure moves by more than a ten-billionth).
        let spend_usd = money(total.spend_usd);
        let exact: Vec<Decimal> = walk
            .jobs
            .iter()
            .map(|job| job.cost_usd)
            .chain(walk.unattributed.iter().map(|task| task.cost_usd))
            .chain(walk.instances.iter().map(|instance| instance.idle_usd))
            .map(Option::unwrap_or_default)
            .collect();
        let mut rounded = apportion(&exact, spend_usd).into_iter();
        let mut jobs: Vec<JobLine> = walk.jobs.into_iter().map(JobLine::from).collect();
        let mut unattributed_tasks: Vec<UnattributedLine> = walk
            .unattributed
            .into_iter()
            .map(UnattributedLine::from)
            .collect();
        let mut ec2_instances: Vec<InstanceLine> =
            walk.instances.into_iter().map(InstanceLine::from).collect();
        for (slot, value) in jobs
            .iter_mut()
            .map(|job| &mut job.cost_usd)
            .chain(unattributed_tasks.iter_mut().map(|task| &mut task.cost_usd))
            .chain(ec2_instances.iter_mut().map(|i| &mut i.idle_usd))
            .zip(&mut rounded)
        {
            if slot.is_some() {
                *slot = Some(value.normalize());
            }
        }
        Self {
            as_of: instant(at),
            spend_usd,
            by_queue: by("queue"),
            by_compute_environment: by("compute_environment"),
            by_job_definition: by("job_definition"),
            by_tag: by("tag"),
            jobs,
            unattributed_tasks,
            running_jobs: walk.running_jobs,
            running_tasks: total.running_tasks,
            running_vcpu: total.running_vcpu.normalize(),
            running_memory_gib: total.running_memory_gib.normalize(),
            burn_rate_usd_per_hour: money(total.burn_rate_usd_per_hour),
            budget_usd,
            budget_period: period,
            period_start: instant(period_start),
            period_end: instant(period_end),
            period_spend_usd: money(total.period_spend_usd),
            budget_used_percent: budget.map(|b| {
                b.used_percent
                    .round_dp_with_strategy(
                        PERCENT_DECIMAL_PLACES,
                        RoundingStrategy::MidpointNearestEven,
                    )
                    .normalize()
            }),
            projected_exhaustion,
            outlook,
            unpriced_tasks: total.unpriced_tasks,
            estimated_tasks: total.estimated_tasks,
            scopes: scopes
                .iter()
                .filter(|(scope, _)| **scope != Scope::Total)
                .map(|(scope, spend)| scope_line(scope, spend))
                .collect(),
            events: counts.into(),
            ec2_instances,
            baseline,
            refused_facts: ledger.refused(),
            audit: Vec::new(),
            budgets: Vec::new(),
            capped_jobs: capped_lines(ledger, at),
        }
    }
}

/// Rounds each of `exact` to [`MONEY_DECIMAL_PLACES`] so that they add up to `total` (itself
/// rounded): each is rounded down, and the units of the last place still missing go to the
/// largest remainders. Parts that do not add up to about `total` (overcommitted EC2 shares)
/// are rounded on their own.
pub fn apportion(exact: &[Decimal], total: Decimal) -> Vec<Decimal> {
    let unit = Decimal::new(1, MONEY_DECIMAL_PLACES);
    let floors: Vec<Decimal> = exact
        .iter()
        .map(|value| {
            value.round_dp_with_strategy(MONEY_DECIMAL_PLACES, RoundingStrategy::ToNegativeInfinity)
        })
        .collect();
    let missing = (total - floors.iter().copied().sum::<Decimal>()) / unit;
    let Some(missing) = missing
        .trunc()
        .to_usize()
        .filter(|&units| units <= exact.len() && missing.fract().is_zero())
    else {
        return exact.iter().map(|&value| money(value)).collect();
    };
    let mut order: Vec<usize> = (0..exact.len()).collect();
    // Largest remainder first; ties to the earlier figure, so the result is deterministic.
    order.sort_by(|&a, &b| {
        (exact[b] - floors[b])
            .cmp(&(exact[a] - floors[a]))
            .then(a.cmp(&b))
    });
    let mut rounded = floors;
    for &index in order.iter().take(missing) {
        rounded[index] += unit;
    }
    rounded
}

fn scope_line(scope: &Scope, spend: &ScopeSpend) -> ScopeLine {
    ScopeLine {
        kind: scope.kind(),
        name: scope.value(),
        spend_usd: money(spend.spend_usd),
        period_spend_usd: money(spend.period_spend_usd),
        burn_rate_usd_per_hour: money(spend.burn_rate_usd_per_hour),
        running_tasks: spend.running_tasks,
        running_vcpu: spend.running_vcpu.normalize(),
        running_memory_gib: spend.running_memory_gib.normalize(),
        unpriced_tasks: spend.unpriced_tasks,
        estimated_tasks: spend.estimated_tasks,
    }
}

/// One point of [`timeline`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelinePoint {
    /// Unix seconds.
    pub at: i64,
    /// Spend inside the budget period containing `until`, billed up to `at`.
    pub period_spend_usd: Decimal,
    pub running_vcpu: Decimal,
}

/// Spend of the budget period and running vCPU at `points` evenly spaced instants from the
/// first billed second (or the period's start, if later) to `until`, from each unit's billed
/// interval (the one-minute minimum included). Unpriced units are left out, as in every figure.
pub fn timeline(ledger: &Ledger, until: i64, points: usize) -> Vec<TimelinePoint> {
    let (period_start, _) = ledger.period().bounds(until);
    // (from, to, hourly rate, vCPU, still running at `until`)
    let intervals: Vec<(i64, i64, Decimal, Decimal, bool)> = ledger
        .units()
        .filter(|(_, unit)| !unit.unpriced)
        .filter_map(|(_, unit)| {
            let (from, to) = unit.billing.billed_interval(until)?;
            let running = matches!(unit.billing, crate::core::billing::Billing::Running { .. });
            Some((
                from,
                to,
                unit.billing.hourly_rate(),
                unit.size.vcpu,
                running,
            ))
        })
        .collect();
    let Some(first) = intervals.iter().map(|(from, ..)| *from).min() else {
        return Vec::new();
    };
    let start = first.max(period_start).min(until);
    let points = points.max(2);
    let span = until - start;
    (0..points)
        .map(|i| {
            let at = start
                + span * i64::try_from(i).unwrap_or(0) / i64::try_from(points - 1).unwrap_or(1);
            let mut numerator = Decimal::ZERO;
            let mut vcpu = Decimal::ZERO;
            for &(from, to, rate, unit_vcpu, running) in &intervals {
                let billed = to.min(at) - from.max(period_start);
                if billed > 0 {
                    numerator += rate * Decimal::from(billed);
                }
                // A running unit's interval ends at `until`, where it still runs.
                if from <= at && (at < to || (running && at == until)) {
                    vcpu += unit_vcpu;
                }
            }
            TimelinePoint {
                at,
                period_spend_usd: money(crate::core::billing::usd(numerator)),
                running_vcpu: vcpu,
            }
        })
        .collect()
}
