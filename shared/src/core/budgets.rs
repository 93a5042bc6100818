//! Budgets as data (issue 17, ADR 0012): a file of named budgets, each with its scope, amount,
//! period, thresholds and actions, read and validated whole; which budgets a job counts in;
//! the action a budget's spend calls for; and the strictest action when several budgets act
//! on one job.
//!
//! The file, in TOML (kept in version control):
//!
//! ```toml
//! [[budget]]
//! name = "research"
//! amount_usd = "50000"
//! period = "month"
//!
//! [[budget]]
//! name = "genomics"
//! parent = "research"
//! amount_usd = "12000.50"
//! period = "month"
//! dry_run = false
//! admission = "safe"
//! scope = { queues = ["genomics-spot", "genomics-od"], tags = ["team=genomics"] }
//! thresholds = [
//!   { at_percent = "80", action = "notify" },
//!   { at_percent = "95", action = "drain" },
//!   { at_percent = "110", action = "terminate" },
//! ]
//! ```
//!
//! A scope matches a job when the job matches every dimension the scope names (queues,
//! compute environments, job definitions, tags), and a dimension when the job has any of the
//! values listed for it; a scope that names nothing matches every job. A budget with a
//! `parent` counts a job only if its parent does too, so a job in a child budget is always in
//! its parent's, and a parent's action reaches its children's jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::budget::{Budget, BudgetPeriod, BudgetStatus};
use super::policy::Level;
use super::scope::Scope;

/// Budgets one file may hold. Each budget is published as about six custom metrics every
/// tick, so 100 budgets are about 600 metrics (~$180 a month at CloudWatch's list price).
pub const MAX_BUDGETS: usize = 100;
/// The longest budget name (it is a metric dimension value and part of item keys).
pub const MAX_NAME_LEN: usize = 64;

/// The name no file budget may take: the stack's own budget (the template's parameters)
/// publishes its metrics as `ScopeKind=budget`, `Scope=budget`, which a file budget of that
/// name would share.
pub const RESERVED_NAME: &str = "budget";
/// The highest threshold, in percent of the amount (a grace of up to 10×).
pub const MAX_PERCENT: u32 = 1_000;
/// The largest amount a budget may have, in USD.
pub const MAX_AMOUNT_USD: u64 = 1_000_000_000_000;

/// What a budget does when its spend crosses a threshold, from the mildest to the strictest:
/// each does what the ones before it do, and more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Tell people (one message per threshold per period).
    Notify,
    /// Stop new work of the scope; running jobs finish.
    Drain,
    /// Also cancel the scope's jobs that are waiting (SUBMITTED, PENDING, RUNNABLE).
    CancelQueued,
    /// Also terminate the fewest running jobs of the scope that bring the forecast inside the
    /// budget.
    Shed,
    /// Also terminate every running job of the scope.
    Terminate,
}

impl Action {
    pub const ALL: [Self; 5] = [
        Self::Notify,
        Self::Drain,
        Self::CancelQueued,
        Self::Shed,
        Self::Terminate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notify => "notify",
            Self::Drain => "drain",
            Self::CancelQueued => "cancel-queued",
            Self::Shed => "shed",
            Self::Terminate => "terminate",
        }
    }

    /// Its step on the ladder: 1 for notify … 5 for terminate (0 is no action), as the
    /// `BudgetActionLevel` metric publishes it.
    pub fn rank(self) -> u8 {
        match self {
            Self::Notify => 1,
            Self::Drain => 2,
            Self::CancelQueued => 3,
            Self::Shed => 4,
            Self::Terminate => 5,
        }
    }

    /// The enforcement level of the single-budget ladder this action reaches: notify; freeze
    /// (no new work starts); stop (running work is terminated).
    pub fn level(self) -> Level {
        match self {
            Self::Notify => Level::Notify,
            Self::Drain | Self::CancelQueued => Level::Freeze,
            Self::Shed | Self::Terminate => Level::Stop,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a budget starts a queued job whose worst case does not fit in what is left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Admission {
    /// Every job is admitted; thresholds alone act.
    #[default]
    Open,
    /// A waiting job whose worst-case cost (its size × its timeout × its price) does not fit
    /// in the amount less the committed spend is cancelled (on the tick: `core::admission`).
    Safe,
}

/// One threshold: at `percent` of the amount, `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    pub percent: Decimal,
    pub action: Action,
}

/// The jobs a budget counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetScope {
    pub queues: BTreeSet<String>,
    pub compute_environments: BTreeSet<String>,
    /// Job definition names (every revision: events name the definition without it).
    pub job_definitions: BTreeSet<String>,
    /// Tag key → the values that match.
    pub tags: BTreeMap<String, BTreeSet<String>>,
}

/// What a job is matched on.
#[derive(Clone, Copy, Debug)]
pub struct JobFacets<'a> {
    pub queue: &'a str,
    pub compute_environment: Option<&'a str>,
    /// Without its revision.
    pub job_definition: &'a str,
    /// `(key, value)`, each key once.
    pub tags: &'a [(String, String)],
}

impl BudgetScope {
    /// Whether the scope names nothing (every job).
    pub fn is_everything(&self) -> bool {
        self.queues.is_empty()
            && self.compute_environments.is_empty()
            && self.job_definitions.is_empty()
            && self.tags.is_empty()
    }

    /// Whether `job` matches every dimension the scope names.
    pub fn matches(&self, job: &JobFacets<'_>) -> bool {
        let dimension = |listed: &BTreeSet<String>, value: Option<&str>| {
            listed.is_empty() || value.is_some_and(|value| listed.contains(value))
        };
        dimension(&self.queues, Some(job.queue))
            && dimension(&self.compute_environments, job.compute_environment)
            && dimension(&self.job_definitions, Some(job.job_definition))
            && self.tags.iter().all(|(key, values)| {
                job.tags
                    .iter()
                    .find(|(k, _)| k == key)
                    .is_some_and(|(_, value)| values.contains(value))
            })
    }
}

/// One budget, validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetSpec {
    pub name: String,
    pub parent: Option<String>,
    pub amount_usd: Decimal,
    pub period: BudgetPeriod,
    pub scope: BudgetScope,
    /// In rising order of percent and of action.
    pub thresholds: Vec<Threshold>,
    /// Decide and record, but change nothing on AWS Batch.
    pub dry_run: bool,
    pub admission: Admission,
}

impl BudgetSpec {
    /// Whether the budget counts the account's whole bill: no parent, and a scope that names
    /// nothing. Its spend is the total (EC2 instances whole, idle time included), as AWS bills
    /// it; any other budget counts its jobs (an EC2 job its share of its instance, as AWS's
    /// split cost allocation data splits it).
    pub fn counts_the_bill(&self) -> bool {
        self.parent.is_none() && self.scope.is_everything()
    }

    /// The scope its spend is summed under in sums bucketed by `stack` (the ledger's or the
    /// stack's period): the total for a budget that counts the bill, else
    /// `Scope::Budget(name)`; for a budget of another period, `Scope::PeriodBudget`, which
    /// sums the same by the budget's own period.
    pub fn spend_scope(&self, stack: BudgetPeriod) -> Scope {
        if self.period != stack {
            Scope::PeriodBudget(self.name.as_str().into(), self.period)
        } else if self.counts_the_bill() {
            Scope::Total
        } else {
            Scope::Budget(self.name.as_str().into())
        }
    }

    /// Its status at whole second `at` with this period's spend and burn rate, and the
    /// action its thresholds call for.
    pub fn judge(
        &self,
        at: i64,
        period_spend_usd: Decimal,
        burn_rate_usd_per_hour: Decimal,
    ) -> (BudgetStatus, Option<Action>) {
        let status = BudgetStatus::evaluate(
            Budget {
                amount_usd: self.amount_usd,
                period: self.period,
            },
            at,
            period_spend_usd,
            burn_rate_usd_per_hour,
        );
        let action = self.action_at(status.used_percent);
        (status, action)
    }

    /// The action the spend calls for: that of the highest threshold `used_percent` has
    /// reached, if any.
    pub fn action_at(&self, used_percent: Decimal) -> Option<Action> {
        self.thresholds
            .iter()
            .rev()
            .find(|threshold| used_percent >= threshold.percent)
            .map(|threshold| threshold.action)
    }
}

/// A whole file of budgets, validated: names unique, parents known and without cycles. Made
/// only by [`BudgetBook::parse`] or [`BudgetBook::new`], which validate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BudgetBook {
    budgets: BTreeMap<String, BudgetSpec>,
}

/// One thing wrong in a budgets file: the budget (its name, or its place in the file when it
/// has no usable name), the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetError {
    pub budget: String,
    pub field: String,
    pub message: String,
}

impl fmt::Display for BudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.budget.is_empty() {
            write!(f, "{}: {}", self.field, self.message)
        } else {
            write!(
                f,
                "budget {}: {}: {}",
                self.budget, self.field, self.message
            )
        }
    }
}

/// Everything wrong in a budgets file (an apply takes all of a file or none of it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct BudgetFileError(pub Vec<BudgetError>);

/// A change an apply makes, by budget name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BudgetChange<'a> {
    Added(&'a BudgetSpec),
    Changed {
        before: &'a BudgetSpec,
        after: &'a BudgetSpec,
    },
    Removed(&'a BudgetSpec),
}

impl BudgetBook {
    /// Reads and validates a budgets file; every error in it, or none.
    pub fn parse(text: &str) -> Result<Self, BudgetFileError> {
        let file: RawFile = toml::from_str(text).map_err(|error| {
            BudgetFileError(vec![BudgetError {
                budget: String::new(),
                field: "file".into(),
                message: error.to_string().trim_end().to_owned(),
            }])
        })?;
        // Each budget read on its own, so a misspelt or missing field is named with its budget
        // and the others are still checked.
        let mut errors = Vec::new();
        let mut raw = Vec::with_capacity(file.budget.len());
        for (index, table) in file.budget.into_iter().enumerate() {
            let label = table
                .get("name")
                .and_then(toml::Value::as_str)
                .filter(|name| valid_name(name))
                .map_or_else(|| format!("#{} in the file", index + 1), str::to_owned);
            match toml::Value::Table(table).try_into::<RawBudget>() {
                Ok(budget) => raw.push(budget),
                Err(error) => errors.push(BudgetError {
                    budget: label,
                    field: "budget".into(),
                    message: error.to_string().trim_end().to_owned(),
                }),
            }
        }
        match Self::from_raw(raw) {
            Ok(book) if errors.is_empty() => Ok(book),
            Ok(_) => Err(BudgetFileError(errors)),
            Err(BudgetFileError(more)) => {
                errors.extend(more);
                Err(BudgetFileError(errors))
            }
        }
    }

    /// Validated budgets as a book; every error found, or none.
    pub fn new(budgets: Vec<BudgetSpec>) -> Result<Self, BudgetFileError> {
        let raw = budgets.into_iter().map(RawBudget::from).collect();
        Self::from_raw(raw)
    }

    fn from_raw(raw: Vec<RawBudget>) -> Result<Self, BudgetFileError> {
        let mut errors = Vec::new();
        if raw.is_empty() {
            errors.push(BudgetError {
                budget: String::new(),
                field: "budget".into(),
                message: "the file declares no budget ([[budget]] tables)".into(),
            });
        }
        if raw.len() > MAX_BUDGETS {
            errors.push(BudgetError {
                budget: String::new(),
                field: "budget".into(),
                message: format!(
                    "{} budgets; at most {MAX_BUDGETS} (each is about six custom metrics a tick)",
                    raw.len()
                ),
            });
        }
        let mut budgets = BTreeMap::new();
        for (index, budget) in raw.into_iter().enumerate() {
            let label = if valid_name(&budget.name) {
                budget.name.clone()
            } else {
                format!("#{} in the file", index + 1)
            };
            let mut fail = |field: &str, message: String| {
                errors.push(BudgetError {
                    budget: label.clone(),
                    field: field.to_owned(),
                    message,
                });
            };
            if let Some(spec) = budget.validate(&mut fail) {
                if budgets.contains_key(&spec.name) {
                    fail("name", "another budget has this name".into());
                } else {
                    budgets.insert(spec.name.clone(), spec);
                }
            }
        }
        for spec in budgets.values() {
            let mut fail = |message: String| {
                errors.push(BudgetError {
                    budget: spec.name.clone(),
                    field: "parent".into(),
                    message,
                });
            };
            let Some(parent) = &spec.parent else { continue };
            if !budgets.contains_key(parent) {
                fail(format!("no budget named {parent:?} in the file"));
                continue;
            }
            // A chain longer than the book has budgets has gone round.
            let mut at = parent;
            for _ in 0..=budgets.len() {
                if at == &spec.name {
                    fail("the parents form a cycle".into());
                    break;
                }
                match budgets.get(at).and_then(|b| b.parent.as_ref()) {
                    Some(next) => at = next,
                    None => break,
                }
            }
        }
        if errors.is_empty() {
            Ok(Self { budgets })
        } else {
            Err(BudgetFileError(errors))
        }
    }

    /// Every budget, by name.
    pub fn budgets(&self) -> impl Iterator<Item = &BudgetSpec> {
        self.budgets.values()
    }

    pub fn get(&self, name: &str) -> Option<&BudgetSpec> {
        self.budgets.get(name)
    }

    pub fn len(&self) -> usize {
        self.budgets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }

    /// The budget and its ancestors, nearest first.
    fn lineage<'a>(&'a self, spec: &'a BudgetSpec) -> impl Iterator<Item = &'a BudgetSpec> {
        let mut next = Some(spec);
        let mut steps = 0;
        std::iter::from_fn(move || {
            let current = next?;
            steps += 1;
            // Validation refuses cycles; the bound keeps a hand-built book finite anyway.
            next = current
                .parent
                .as_deref()
                .and_then(|parent| self.budgets.get(parent))
                .filter(|_| steps <= self.budgets.len());
            Some(current)
        })
    }

    /// The queues budget `name` owns: those every job of which it counts, so that a drain
    /// may disable them without stopping another scope's work. Only a budget whose scope, and
    /// every ancestor's, names nothing but queues owns any: the queues every one of them that
    /// names queues lists. `None`: every queue (nothing in its lineage names a queue, or a
    /// dimension); `Some` of an empty set: none (a tag, a job definition or a compute
    /// environment narrows it to part of a queue's jobs), and an unknown budget owns none.
    pub fn owned_queues(&self, name: &str) -> Option<BTreeSet<String>> {
        let Some(spec) = self.get(name) else {
            return Some(BTreeSet::new());
        };
        let mut owned: Option<BTreeSet<String>> = None;
        for scope in self.lineage(spec).map(|spec| &spec.scope) {
            if !scope.compute_environments.is_empty()
                || !scope.job_definitions.is_empty()
                || !scope.tags.is_empty()
            {
                return Some(BTreeSet::new());
            }
            if scope.queues.is_empty() {
                continue;
            }
            owned = Some(match owned {
                None => scope.queues.clone(),
                Some(queues) => queues.intersection(&scope.queues).cloned().collect(),
            });
        }
        owned
    }

    /// The names of the budgets `job` counts in: those whose scope, and every ancestor's,
    /// matches it.
    pub fn budgets_of(&self, job: &JobFacets<'_>) -> Vec<&str> {
        self.budgets
            .values()
            .filter(|spec| self.lineage(spec).all(|b| b.scope.matches(job)))
            .map(|spec| spec.name.as_str())
            .collect()
    }

    /// The strictest of the actions `acting` (budget name → its action now) that reach `job`,
    /// with the budget taking it (the first by name among equals); `None` when none does.
    pub fn strictest<'a>(
        &'a self,
        job: &JobFacets<'_>,
        acting: &BTreeMap<String, Action>,
    ) -> Option<(Action, &'a str)> {
        let mut best: Option<(Action, &str)> = None;
        for name in self.budgets_of(job) {
            if let Some(&action) = acting.get(name)
                && best.is_none_or(|(held, _)| action > held)
            {
                best = Some((action, name));
            }
        }
        best
    }

    /// What an apply of `next` over `self` changes, by name.
    pub fn diff<'a>(&'a self, next: &'a Self) -> Vec<BudgetChange<'a>> {
        let names: BTreeSet<&String> = self.budgets.keys().chain(next.budgets.keys()).collect();
        names
            .into_iter()
            .filter_map(
                |name| match (self.budgets.get(name), next.budgets.get(name)) {
                    (None, Some(after)) => Some(BudgetChange::Added(after)),
                    (Some(before), None) => Some(BudgetChange::Removed(before)),
                    (Some(before), Some(after)) if before != after => {
                        Some(BudgetChange::Changed { before, after })
                    }
                    _ => None,
                },
            )
            .collect()
    }
}

/// Where a job stands, for what a budget's action does to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStage {
    /// Its SUBMITTED, PENDING or RUNNABLE event has just arrived (admission).
    Arriving,
    /// Already waiting in a queue (SUBMITTED, PENDING, RUNNABLE).
    Waiting,
    /// STARTING or RUNNING: billed.
    Running,
}

/// A job as the plan sees it.
#[derive(Clone, Copy, Debug)]
pub struct JobView<'a> {
    pub job_id: &'a str,
    pub facets: JobFacets<'a>,
    pub stage: JobStage,
    /// What it costs an hour while it runs (zero when waiting).
    pub burn_usd_per_hour: Decimal,
}

/// What a plan does to one job, and the budget it does it for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Cancel a job that has not started.
    Cancel { job_id: String, budget: String },
    /// Terminate a running job.
    Terminate { job_id: String, budget: String },
}

/// A shedding budget's figures: spend so far this period and hours left in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShedFigures {
    pub spend_usd: Decimal,
    pub hours_left: Decimal,
}

/// A budget's figures on the ledger at one instant: its spend this period, what all of its
/// running jobs burn an hour (those that cannot be stopped too: protected, unreadable, or on
/// queues outside the stack's), and the hours left in its period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetFigures {
    pub spend_usd: Decimal,
    pub burn_usd_per_hour: Decimal,
    pub hours_left: Decimal,
}

impl BudgetFigures {
    /// A budget of `period` that has spent `spend_usd` and burns `burn_usd_per_hour` at whole
    /// second `at`: the hours left are those to the end of its period.
    pub fn at(
        period: BudgetPeriod,
        at: i64,
        spend_usd: Decimal,
        burn_usd_per_hour: Decimal,
    ) -> Self {
        let (_, end) = period.bounds(at);
        Self {
            spend_usd,
            burn_usd_per_hour,
            hours_left: Decimal::from(end.saturating_sub(at).max(0))
                / Decimal::from(super::billing::SECONDS_PER_HOUR),
        }
    }

    /// The figures [`shed`] plans with when the running jobs it may stop burn `candidates` an
    /// hour: what the others burn until the period ends counts as spent already (none, when
    /// the ledger's burn is below the candidates'). `None` on an overflow.
    pub fn for_shed(&self, candidates: Decimal) -> Option<ShedFigures> {
        let others = self
            .burn_usd_per_hour
            .checked_sub(candidates)?
            .max(Decimal::ZERO);
        Some(ShedFigures {
            spend_usd: self
                .spend_usd
                .checked_add(others.checked_mul(self.hours_left)?)?,
            hours_left: self.hours_left,
        })
    }
}

/// The fewest of `burns` (the running jobs' costs an hour) to stop so that the forecast,
/// `spend + Σ burn of the others × hours_left`, is at most `amount`: the costliest first,
/// which no smaller set can beat (any k jobs remove at most the k largest burns). All of them
/// when even that does not fit (the spend alone is over). Returns their indexes, costliest
/// first (ties: the lower index first). Checked arithmetic; an overflow stops them all.
pub fn shed(burns: &[Decimal], spend: Decimal, hours_left: Decimal, amount: Decimal) -> Vec<usize> {
    let mut order: Vec<usize> = (0..burns.len()).collect();
    order.sort_by(|&a, &b| burns[b].cmp(&burns[a]).then(a.cmp(&b)));
    let forecast = |kept: Decimal| {
        kept.checked_mul(hours_left)
            .and_then(|accrual| spend.checked_add(accrual))
    };
    let mut kept = burns
        .iter()
        .try_fold(Decimal::ZERO, |sum, burn| sum.checked_add(*burn));
    let mut stopped = Vec::new();
    for index in order {
        match kept.and_then(forecast) {
            Some(forecast) if forecast <= amount => break,
            _ => {}
        }
        stopped.push(index);
        kept = kept.and_then(|sum| sum.checked_sub(burns[index]));
    }
    stopped
}

impl BudgetBook {
    /// What the budgets acting now (`acting`: budget name → its action) do to `jobs`: a job
    /// arriving is cancelled when a budget it counts in drains or more; a waiting one when
    /// one cancels queued work or more; a running one is terminated when one terminates, or
    /// when a shedding one picks it ([`shed`], over that budget's running jobs, with `figures`
    /// for each shedding budget; without them, it terminates all of them, the safe side). Each
    /// step names the budget of the strictest action that reaches the job.
    pub fn plan(
        &self,
        acting: &BTreeMap<String, Action>,
        figures: &BTreeMap<String, ShedFigures>,
        jobs: &[JobView<'_>],
    ) -> Vec<Step> {
        // The running jobs each shedding budget picks.
        let mut shed_by: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (name, action) in acting {
            let (Action::Shed, Some(spec)) = (action, self.budgets.get(name)) else {
                continue;
            };
            let running: Vec<&JobView<'_>> = jobs
                .iter()
                .filter(|job| {
                    job.stage == JobStage::Running
                        && self.budgets_of(&job.facets).contains(&name.as_str())
                })
                .collect();
            let picked: BTreeSet<&str> = match figures.get(name) {
                Some(f) => {
                    let burns: Vec<Decimal> =
                        running.iter().map(|job| job.burn_usd_per_hour).collect();
                    shed(&burns, f.spend_usd, f.hours_left, spec.amount_usd)
                        .into_iter()
                        .map(|index| running[index].job_id)
                        .collect()
                }
                None => running.iter().map(|job| job.job_id).collect(),
            };
            shed_by.insert(spec.name.as_str(), picked);
        }
        let mut steps = Vec::new();
        for job in jobs {
            let Some((action, budget)) = self.strictest(&job.facets, acting) else {
                continue;
            };
            let step = |budget: &str| match job.stage {
                JobStage::Running => Step::Terminate {
                    job_id: job.job_id.to_owned(),
                    budget: budget.to_owned(),
                },
                JobStage::Arriving | JobStage::Waiting => Step::Cancel {
                    job_id: job.job_id.to_owned(),
                    budget: budget.to_owned(),
                },
            };
            let acts = match job.stage {
                JobStage::Arriving => action >= Action::Drain,
                JobStage::Waiting => action >= Action::CancelQueued,
                JobStage::Running => action == Action::Terminate,
            };
            if acts {
                steps.push(step(budget));
            } else if job.stage == JobStage::Running
                && let Some((shedder, _)) = shed_by
                    .iter()
                    .find(|(_, picked)| picked.contains(job.job_id))
            {
                steps.push(step(shedder));
            }
        }
        steps
    }
}

/// Letters, digits, `-`, `_` and `.`, 1 to 64 of them.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    budget: Vec<toml::Table>,
}

/// A budget as written: amounts and percents as TOML strings or integers (a TOML float is
/// binary and refused, as money is exact), names not yet checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    name: String,
    #[serde(default)]
    parent: Option<String>,
    amount_usd: toml::Value,
    period: String,
    #[serde(default)]
    scope: RawScope,
    thresholds: Vec<RawThreshold>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    admission: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScope {
    #[serde(default)]
    queues: Vec<String>,
    #[serde(default)]
    compute_environments: Vec<String>,
    #[serde(default)]
    job_definitions: Vec<String>,
    /// `key=value`.
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    at_percent: toml::Value,
    action: String,
}

impl From<BudgetSpec> for RawBudget {
    fn from(spec: BudgetSpec) -> Self {
        let tags = spec
            .scope
            .tags
            .iter()
            .flat_map(|(key, values)| values.iter().map(move |value| format!("{key}={value}")))
            .collect();
        Self {
            name: spec.name,
            parent: spec.parent,
            amount_usd: toml::Value::String(spec.amount_usd.to_string()),
            period: period_name(spec.period).to_owned(),
            scope: RawScope {
                queues: spec.scope.queues.into_iter().collect(),
                compute_environments: spec.scope.compute_environments.into_iter().collect(),
                job_definitions: spec.scope.job_definitions.into_iter().collect(),
                tags,
            },
            thresholds: spec
                .thresholds
                .into_iter()
                .map(|threshold| RawThreshold {
                    at_percent: toml::Value::String(threshold.percent.to_string()),
                    action: threshold.action.as_str().to_owned(),
                })
                .collect(),
            dry_run: spec.dry_run,
            admission: Some(
                match spec.admission {
                    Admission::Open => "open",
                    Admission::Safe => "safe",
                }
                .to_owned(),
            ),
        }
    }
}

/// The name a budgets file uses for a period.
pub fn period_name(period: BudgetPeriod) -> &'static str {
    match period {
        BudgetPeriod::Day => "day",
        BudgetPeriod::Week => "week",
        BudgetPeriod::Month => "month",
    }
}

/// A decimal written as a TOML string or integer.
fn decimal_of(value: &toml::Value) -> Result<Decimal, String> {
    match value {
        toml::Value::String(text) => {
            Decimal::from_str(text.trim()).map_err(|_| format!("{text:?} is not a decimal number"))
        }
        toml::Value::Integer(number) => Ok(Decimal::from(*number)),
        toml::Value::Float(number) => Err(format!(
            "{number} is a TOML float, which is binary: write it as a string, e.g. \"{number}\""
        )),
        other => Err(format!(
            "expected a decimal string, got {}",
            other.type_str()
        )),
    }
}

impl RawBudget {
    /// The budget, or `None` after reporting each thing wrong with it to `fail`.
    fn validate(self, fail: &mut impl FnMut(&str, String)) -> Option<BudgetSpec> {
        let mut wrong = 0_usize;
        let mut fail = |field: &str, message: String| {
            wrong += 1;
            fail(field, message);
        };
        if !valid_name(&self.name) {
            fail(
                "name",
                format!(
                    "{:?}: 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.'",
                    self.name
                ),
            );
        } else if self.name == RESERVED_NAME {
            fail(
                "name",
                format!(
                    "{RESERVED_NAME:?} is the stack's own budget (the template's BudgetAmountUSD), whose metrics carry Scope={RESERVED_NAME}: choose another name"
                ),
            );
        }
        if let Some(parent) = &self.parent
            && parent == &self.name
        {
            fail("parent", "a budget cannot be its own parent".into());
        }
        let amount = match decimal_of(&self.amount_usd) {
            Ok(amount) if amount < Decimal::new(1, 2) => {
                fail("amount_usd", format!("{amount}: at least 0.01 USD"));
                None
            }
            Ok(amount) if amount > Decimal::from(MAX_AMOUNT_USD) => {
                fail(
                    "amount_usd",
                    format!("{amount}: at most {MAX_AMOUNT_USD} USD"),
                );
                None
            }
            Ok(amount) => Some(amount),
            Err(message) => {
                fail("amount_usd", message);
                None
            }
        };
        let period = BudgetPeriod::parse(&self.period);
        if period.is_none() {
            fail(
                "period",
                format!("{:?}: one of day, week, month", self.period),
            );
        }
        let admission = match self.admission.as_deref() {
            None | Some("open") => Admission::Open,
            Some("safe") => Admission::Safe,
            Some(other) => {
                fail("admission", format!("{other:?}: one of open, safe"));
                Admission::Open
            }
        };
        let scope = self.scope.validate(&mut fail);
        let mut thresholds: Vec<Threshold> = Vec::new();
        if self.thresholds.is_empty() {
            fail(
                "thresholds",
                "at least one, e.g. { at_percent = \"100\", action = \"drain\" }".into(),
            );
        }
        for (index, raw) in self.thresholds.iter().enumerate() {
            let field = |name: &str| format!("thresholds[{index}].{name}");
            let percent = match decimal_of(&raw.at_percent) {
                Ok(percent) if percent <= Decimal::ZERO || percent > Decimal::from(MAX_PERCENT) => {
                    fail(
                        &field("at_percent"),
                        format!("{percent}: more than 0 and at most {MAX_PERCENT}"),
                    );
                    None
                }
                Ok(percent) => Some(percent),
                Err(message) => {
                    fail(&field("at_percent"), message);
                    None
                }
            };
            let action = Action::ALL
                .into_iter()
                .find(|action| action.as_str() == raw.action);
            if action.is_none() {
                fail(
                    &field("action"),
                    format!(
                        "{:?}: one of notify, drain, cancel-queued, shed, terminate",
                        raw.action
                    ),
                );
            }
            let (Some(percent), Some(action)) = (percent, action) else {
                continue;
            };
            if let Some(last) = thresholds.last() {
                if percent <= last.percent {
                    fail(
                        &field("at_percent"),
                        format!(
                            "{percent}: thresholds must rise (the one before is at {})",
                            last.percent
                        ),
                    );
                }
                if action <= last.action {
                    fail(
                        &field("action"),
                        format!(
                            "{action}: each threshold must do more than the one before ({})",
                            last.action
                        ),
                    );
                }
            }
            thresholds.push(Threshold { percent, action });
        }
        if wrong > 0 {
            return None;
        }
        Some(BudgetSpec {
            name: self.name,
            parent: self.parent,
            amount_usd: amount?,
            period: period?,
            scope,
            thresholds,
            dry_run: self.dry_run,
            admission,
        })
    }
}

impl RawScope {
    fn validate(self, fail: &mut impl FnMut(&str, String)) -> BudgetScope {
        let mut scope = BudgetScope::default();
        // AWS Batch: queue and compute environment names are up to 128 letters, digits,
        // hyphens and underscores; job definition names likewise.
        let batch_name = |name: &str| {
            !name.is_empty()
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        };
        for (field, names, into) in [
            ("scope.queues", self.queues, &mut scope.queues),
            (
                "scope.compute_environments",
                self.compute_environments,
                &mut scope.compute_environments,
            ),
        ] {
            for name in names {
                if batch_name(&name) {
                    into.insert(name);
                } else {
                    fail(
                        field,
                        format!(
                            "{name:?}: a name (1 to 128 letters, digits, '-' or '_'), not an ARN"
                        ),
                    );
                }
            }
        }
        for name in self.job_definitions {
            let base = name.strip_suffix(":*").unwrap_or(&name);
            if batch_name(base) {
                scope.job_definitions.insert(base.to_owned());
            } else if base.rsplit_once(':').is_some_and(|(_, revision)| {
                !revision.is_empty() && revision.bytes().all(|b| b.is_ascii_digit())
            }) {
                fail(
                    "scope.job_definitions",
                    format!(
                        "{name:?}: a revision cannot be matched (events name the definition without it); write the name, or name:*"
                    ),
                );
            } else {
                fail(
                    "scope.job_definitions",
                    format!("{name:?}: a job definition name, or name:*"),
                );
            }
        }
        for tag in self.tags {
            match tag.split_once('=') {
                // AWS tags: keys up to 128 characters, values up to 256.
                Some((key, value))
                    if !key.is_empty()
                        && key.chars().count() <= 128
                        && value.chars().count() <= 256 =>
                {
                    scope
                        .tags
                        .entry(key.to_owned())
                        .or_default()
                        .insert(value.to_owned());
                }
                _ => fail(
                    "scope.tags",
                    format!("{tag:?}: key=value, the key 1 to 128 characters, the value up to 256"),
                ),
            }
        }
        scope
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[budget]]
name = "research"
amount_usd = "50000"
period = "month"
thresholds = [{ at_percent = 90, action = "notify" }, { at_percent = "100", action = "drain" }]

[[budget]]
name = "genomics"
parent = "research"
amount_usd = "12000.50"
period = "month"
admission = "safe"
scope = { queues = ["genomics-spot", "genomics-od"], tags = ["team=genomics"] }
thresholds = [
  { at_percent = "80", action = "notify" },
  { at_percent = "95", action = "drain" },
  { at_percent = "110", action = "terminate" },
]
"#;

    fn facets<'a>(queue: &'a str, tags: &'a [(String, String)]) -> JobFacets<'a> {
        JobFacets {
            queue,
            compute_environment: Some("ce"),
            job_definition: "def",
            tags,
        }
    }

    #[test]
    fn a_budget_owns_the_queues_its_lineage_names_and_nothing_narrower() {
        let book = BudgetBook::parse(
            r#"
[[budget]]
name = "research"
amount_usd = "100"
period = "month"
thresholds = [{ at_percent = "100", action = "drain" }]
scope = { queues = ["genomics", "imaging", "shared"] }

[[budget]]
name = "genomics"
parent = "research"
amount_usd = "50"
period = "month"
thresholds = [{ at_percent = "100", action = "drain" }]
scope = { queues = ["genomics", "elsewhere"] }

[[budget]]
name = "imaging"
parent = "research"
amount_usd = "50"
period = "month"
thresholds = [{ at_percent = "100", action = "drain" }]
scope = { queues = ["shared"], tags = ["team=imaging"] }

[[budget]]
name = "everything"
amount_usd = "500"
period = "month"
thresholds = [{ at_percent = "100", action = "drain" }]
"#,
        )
        .unwrap();
        let set = |names: &[&str]| -> BTreeSet<String> {
            names.iter().map(|name| (*name).to_owned()).collect()
        };
        assert_eq!(
            book.owned_queues("research"),
            Some(set(&["genomics", "imaging", "shared"]))
        );
        // Its own queue, not the one its parent does not count.
        assert_eq!(book.owned_queues("genomics"), Some(set(&["genomics"])));
        // A tag narrows it to part of the shared queue's jobs: it owns none.
        assert_eq!(book.owned_queues("imaging"), Some(set(&[])));
        assert_eq!(book.owned_queues("everything"), None);
        assert_eq!(book.owned_queues("nobody"), Some(set(&[])));
    }

    #[test]
    fn the_example_reads_as_written() {
        let book = BudgetBook::parse(EXAMPLE).unwrap();
        assert_eq!(book.len(), 2);
        let genomics = book.get("genomics").unwrap();
        assert_eq!(genomics.amount_usd, Decimal::new(1_200_050, 2));
        assert_eq!(genomics.admission, Admission::Safe);
        assert_eq!(genomics.parent.as_deref(), Some("research"));
        assert_eq!(
            genomics
                .thresholds
                .iter()
                .map(|t| t.action)
                .collect::<Vec<_>>(),
            [Action::Notify, Action::Drain, Action::Terminate]
        );
        assert!(book.get("research").unwrap().scope.is_everything());
        // Written back and read again: the same book.
        let again = BudgetBook::new(book.budgets().cloned().collect()).unwrap();
        assert_eq!(again, book);
    }

    #[test]
    fn a_job_counts_in_a_child_only_where_its_parent_counts_it_too() {
        let book = BudgetBook::parse(EXAMPLE).unwrap();
        let team = [("team".to_owned(), "genomics".to_owned())];
        let other = [("team".to_owned(), "physics".to_owned())];
        assert_eq!(
            book.budgets_of(&facets("genomics-spot", &team)),
            ["genomics", "research"]
        );
        assert_eq!(
            book.budgets_of(&facets("genomics-spot", &other)),
            ["research"]
        );
        assert_eq!(book.budgets_of(&facets("physics", &team)), ["research"]);
    }

    #[test]
    fn the_strictest_action_wins_and_a_parents_reaches_its_children() {
        let book = BudgetBook::parse(EXAMPLE).unwrap();
        let team = [("team".to_owned(), "genomics".to_owned())];
        let job = facets("genomics-od", &team);
        let acting = BTreeMap::from([
            ("genomics".to_owned(), Action::Notify),
            ("research".to_owned(), Action::Drain),
        ]);
        assert_eq!(
            book.strictest(&job, &acting),
            Some((Action::Drain, "research"))
        );
        let acting = BTreeMap::from([("genomics".to_owned(), Action::Terminate)]);
        assert_eq!(
            book.strictest(&job, &acting),
            Some((Action::Terminate, "genomics"))
        );
        let outsider = facets("physics", &team);
        assert_eq!(book.strictest(&outsider, &acting), None);
    }

    #[test]
    fn the_highest_threshold_reached_decides() {
        let book = BudgetBook::parse(EXAMPLE).unwrap();
        let genomics = book.get("genomics").unwrap();
        assert_eq!(genomics.action_at(Decimal::from(79)), None);
        assert_eq!(genomics.action_at(Decimal::from(80)), Some(Action::Notify));
        assert_eq!(genomics.action_at(Decimal::from(100)), Some(Action::Drain));
        assert_eq!(
            genomics.action_at(Decimal::from(110)),
            Some(Action::Terminate)
        );
    }

    #[test]
    fn a_bad_file_is_refused_whole_with_every_error_named() {
        let text = r#"
[[budget]]
name = "ok"
amount_usd = "10"
period = "month"
thresholds = [{ at_percent = "100", action = "drain" }]

[[budget]]
name = "team a"
amount_usd = 12.5
period = "fortnight"
scope = { job_definitions = ["scan:3"], tags = ["team"] }
thresholds = [{ at_percent = "100", action = "terminate" }, { at_percent = "90", action = "notify" }]

[[budget]]
name = "orphan"
parent = "nobody"
amount_usd = "-1"
period = "day"
thresholds = [{ at_percent = "100", action = "stop" }]
"#;
        let errors = BudgetBook::parse(text).unwrap_err().0;
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let has = |budget: &str, field: &str| {
            errors
                .iter()
                .any(|e| e.budget == budget && e.field == field)
        };
        assert!(has("#2 in the file", "name"), "{text:#?}");
        assert!(has("#2 in the file", "amount_usd"), "{text:#?}");
        assert!(text.iter().any(|t| t.contains("TOML float")), "{text:#?}");
        assert!(has("#2 in the file", "period"), "{text:#?}");
        assert!(has("#2 in the file", "scope.job_definitions"), "{text:#?}");
        assert!(text.iter().any(|t| t.contains("revision")), "{text:#?}");
        assert!(has("#2 in the file", "scope.tags"), "{text:#?}");
        assert!(
            has("#2 in the file", "thresholds[1].at_percent"),
            "{text:#?}"
        );
        assert!(has("#2 in the file", "thresholds[1].action"), "{text:#?}");
        assert!(has("orphan", "amount_usd"), "{text:#?}");
        assert!(has("orphan", "thresholds[0].action"), "{text:#?}");
        assert_eq!(errors.len(), 9, "{text:#?}");
    }

    #[test]
    fn unknown_parents_cycles_and_twins_are_named() {
        let budget = |name: &str, parent: Option<&str>| {
            format!(
                "[[budget]]\nname = \"{name}\"\n{}amount_usd = \"1\"\nperiod = \"day\"\nthresholds = [{{ at_percent = \"100\", action = \"drain\" }}]\n",
                parent.map_or(String::new(), |p| format!("parent = \"{p}\"\n"))
            )
        };
        let text = [
            budget("a", Some("b")),
            budget("b", Some("a")),
            budget("c", Some("missing")),
            budget("c", None),
        ]
        .concat();
        let errors = BudgetBook::parse(&text).unwrap_err().0;
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.contains(&"budget a: parent: the parents form a cycle".to_owned()),
            "{text:#?}"
        );
        assert!(
            text.contains(&"budget b: parent: the parents form a cycle".to_owned()),
            "{text:#?}"
        );
        assert!(
            text.contains(&"budget c: name: another budget has this name".to_owned()),
            "{text:#?}"
        );
        assert!(
            text.contains(&"budget c: parent: no budget named \"missing\" in the file".to_owned()),
            "{text:#?}"
        );
        let syntax = BudgetBook::parse("[[budget]\n").unwrap_err().0;
        assert_eq!(syntax[0].field, "file");
        let unknown = BudgetBook::parse(
            "[[budget]]\nname = \"x\"\namount = \"1\"\nperiod = \"day\"\nthresholds = []\n\n\
             [[budget]]\nname = \"y\"\namount_usd = 5.5\nperiod = \"day\"\nthresholds = []\n",
        )
        .unwrap_err();
        // Both budgets' errors, each named: the unknown field, and the other's float.
        assert_eq!(unknown.0[0].budget, "x", "{unknown}");
        assert!(unknown.0[0].message.contains("amount"), "{unknown}");
        assert!(
            unknown.to_string().contains("budget y: amount_usd"),
            "{unknown}"
        );
    }

    #[test]
    fn an_apply_lists_what_it_adds_changes_and_removes() {
        let before = BudgetBook::parse(EXAMPLE).unwrap();
        let mut budgets: Vec<BudgetSpec> = before.budgets().cloned().collect();
        budgets.retain(|b| b.name != "genomics");
        budgets[0].amount_usd = Decimal::from(60_000);
        let mut new = budgets[0].clone();
        new.name = "physics".into();
        budgets.push(new);
        let after = BudgetBook::new(budgets).unwrap();
        let changes: Vec<String> = before
            .diff(&after)
            .into_iter()
            .map(|change| match change {
                BudgetChange::Added(b) => format!("+{}", b.name),
                BudgetChange::Removed(b) => format!("-{}", b.name),
                BudgetChange::Changed { after, .. } => format!("~{}", after.name),
            })
            .collect();
        assert_eq!(changes, ["-genomics", "+physics", "~research"]);
        assert!(before.diff(&before).is_empty());
    }

    #[test]
    fn shedding_stops_the_costliest_until_the_forecast_fits() {
        let burns = [2, 10, 1, 5].map(Decimal::from);
        // 50 spent, 10 hours left, 100 allowed: 18/h × 10 = 180 → over; without 10/h: 80 → 130;
        // without 5/h too: 30 → 80, which fits.
        let stopped = shed(
            &burns,
            Decimal::from(50),
            Decimal::from(10),
            Decimal::from(100),
        );
        assert_eq!(stopped, [1, 3]);
        // Already over: all of them.
        let all = shed(
            &burns,
            Decimal::from(120),
            Decimal::from(10),
            Decimal::from(100),
        );
        assert_eq!(all, [1, 3, 0, 2]);
        // Fits already: none.
        assert!(shed(&burns, Decimal::ZERO, Decimal::ONE, Decimal::from(100)).is_empty());
    }

    #[test]
    fn a_plan_cancels_arrivals_on_drain_and_terminates_only_the_runaway_scope() {
        let book = BudgetBook::parse(EXAMPLE).unwrap();
        let genomics = [("team".to_owned(), "genomics".to_owned())];
        let physics = [("team".to_owned(), "physics".to_owned())];
        let view = |job_id, tags, stage| JobView {
            job_id,
            facets: facets("genomics-spot", tags),
            stage,
            burn_usd_per_hour: Decimal::ONE,
        };
        let jobs = [
            view("g-new", &genomics[..], JobStage::Arriving),
            view("g-waiting", &genomics[..], JobStage::Waiting),
            view("g-running", &genomics[..], JobStage::Running),
            view("p-new", &physics[..], JobStage::Arriving),
            view("p-running", &physics[..], JobStage::Running),
        ];
        let drain = BTreeMap::from([("genomics".to_owned(), Action::Drain)]);
        assert_eq!(
            book.plan(&drain, &BTreeMap::new(), &jobs),
            [Step::Cancel {
                job_id: "g-new".into(),
                budget: "genomics".into()
            }]
        );
        let terminate = BTreeMap::from([("genomics".to_owned(), Action::Terminate)]);
        let steps = book.plan(&terminate, &BTreeMap::new(), &jobs);
        assert_eq!(steps.len(), 3, "{steps:?}");
        assert!(
            steps
                .iter()
                .all(|step| !format!("{step:?}").contains("\"p-")),
            "{steps:?}"
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Up to 6 budgets over small pools of queues and teams, each maybe the child of an
        /// earlier one (so no cycles), with a random action now.
        fn book_and_actions() -> impl Strategy<Value = (BudgetBook, BTreeMap<String, Action>)> {
            let budget = (
                prop::option::of(0_usize..6),
                prop::collection::btree_set(0_u8..3, 0..3),
                prop::collection::btree_set(0_u8..3, 0..3),
                prop::option::of(0_usize..5),
            );
            prop::collection::vec(budget, 1..7).prop_map(|drawn| {
                let mut acting = BTreeMap::new();
                let budgets = drawn
                    .iter()
                    .enumerate()
                    .map(|(index, (parent, queues, teams, action))| {
                        let name = format!("b{index}");
                        if let Some(action) = action {
                            acting.insert(name.clone(), Action::ALL[*action]);
                        }
                        let mut scope = BudgetScope {
                            queues: queues.iter().map(|q| format!("q{q}")).collect(),
                            ..BudgetScope::default()
                        };
                        if !teams.is_empty() {
                            scope.tags.insert(
                                "team".into(),
                                teams.iter().map(|t| format!("t{t}")).collect(),
                            );
                        }
                        BudgetSpec {
                            name,
                            parent: parent.filter(|p| *p < index).map(|p| format!("b{p}")),
                            amount_usd: Decimal::from(100),
                            period: BudgetPeriod::Month,
                            scope,
                            thresholds: vec![Threshold {
                                percent: Decimal::from(100),
                                action: Action::Drain,
                            }],
                            dry_run: false,
                            admission: Admission::Open,
                        }
                    })
                    .collect();
                (BudgetBook::new(budgets).unwrap(), acting)
            })
        }

        proptest! {
            /// GIVEN any book of nested budgets and a job WHEN it is matched THEN it counts in
            /// every ancestor of each budget it counts in, and the strictest action reaching
            /// it is taken by one of those budgets and is at least each of theirs.
            #[test]
            fn nesting_and_the_strictest_action_hold(
                (book, acting) in book_and_actions(),
                queue in 0_u8..4,
                team in prop::option::of(0_u8..4),
            ) {
                let tags: Vec<(String, String)> =
                    team.map(|t| ("team".to_owned(), format!("t{t}"))).into_iter().collect();
                let queue = format!("q{queue}");
                let job = JobFacets {
                    queue: &queue,
                    compute_environment: None,
                    job_definition: "def",
                    tags: &tags,
                };
                let counted = book.budgets_of(&job);
                for name in &counted {
                    let spec = book.get(name).unwrap();
                    prop_assert!(spec.scope.matches(&job));
                    if let Some(parent) = &spec.parent {
                        prop_assert!(counted.contains(&parent.as_str()), "{name} in, {parent} out");
                    }
                }
                let reaching: Vec<Action> =
                    counted.iter().filter_map(|name| acting.get(*name).copied()).collect();
                match book.strictest(&job, &acting) {
                    None => prop_assert!(reaching.is_empty()),
                    Some((action, by)) => {
                        prop_assert!(counted.contains(&by));
                        prop_assert_eq!(Some(&action), acting.get(by));
                        prop_assert!(reaching.iter().all(|other| *other <= action));
                    }
                }
                // A book rebuilt from its budgets is the same book.
                prop_assert_eq!(BudgetBook::new(book.budgets().cloned().collect()).unwrap(), book.clone());
            }

            /// GIVEN any book of nested budgets WHEN a budget's owned queues are read THEN
            /// every job on one of them, whatever its tags, counts in that budget (a drain
            /// that disables it stops only work the budget counts); and a budget owns a queue
            /// that some job on it is not counted in by no means.
            #[test]
            fn a_budget_owns_only_queues_all_of_whose_jobs_it_counts(
                (book, _) in book_and_actions(),
            ) {
                let queues: Vec<String> = (0..4).map(|q| format!("q{q}")).collect();
                let teams: Vec<Vec<(String, String)>> = std::iter::once(Vec::new())
                    .chain((0..4).map(|t| vec![("team".to_owned(), format!("t{t}"))]))
                    .collect();
                for spec in book.budgets() {
                    let owned = book.owned_queues(&spec.name);
                    for queue in &queues {
                        let every_job_counts = teams.iter().all(|tags| {
                            book.budgets_of(&JobFacets {
                                queue,
                                compute_environment: None,
                                job_definition: "def",
                                tags,
                            })
                            .contains(&spec.name.as_str())
                        });
                        let owns = owned.as_ref().is_none_or(|owned| owned.contains(queue));
                        if owns {
                            prop_assert!(every_job_counts, "{} owns {queue}", spec.name);
                        }
                        // Owning is exact where the lineage names queues only (the books drawn
                        // here name queues and tags, nothing else).
                        let queues_only = book.lineage(spec).all(|b| b.scope.tags.is_empty());
                        if queues_only {
                            prop_assert_eq!(owns, every_job_counts, "{} and {}", spec.name, queue);
                        }
                    }
                }
            }

            /// GIVEN any running burns (up to 10), spend, hours left and amount WHEN shedding
            /// THEN the forecast without the stopped jobs fits (or every job is stopped), and
            /// no set of fewer jobs makes it fit (every subset tried).
            #[test]
            fn shedding_stops_the_fewest_jobs_that_make_the_forecast_fit(
                burns in prop::collection::vec(0_i64..10_000, 0..10),
                spend in 0_i64..100_000,
                hours in 0_i64..800,
                amount in 1_i64..200_000,
            ) {
                let burns: Vec<Decimal> = burns.into_iter().map(|b| Decimal::new(b, 2)).collect();
                let (spend, hours, amount) =
                    (Decimal::from(spend), Decimal::from(hours), Decimal::from(amount));
                let stopped = shed(&burns, spend, hours, amount);
                let fits = |stopped: &dyn Fn(usize) -> bool| {
                    let kept: Decimal = burns
                        .iter()
                        .enumerate()
                        .filter(|(index, _)| !stopped(*index))
                        .map(|(_, burn)| *burn)
                        .sum();
                    spend + kept * hours <= amount
                };
                prop_assert!(
                    fits(&|index| stopped.contains(&index)) || stopped.len() == burns.len()
                );
                for subset in 0_u32..(1 << burns.len()) {
                    if (subset.count_ones() as usize) < stopped.len() {
                        prop_assert!(
                            !fits(&|index| subset & (1 << index) != 0),
                            "{subset:b} stops fewer than {stopped:?} and fits"
                        );
                    }
                }
            }
        }
    }

    /// What the jobs that cannot be stopped burn until the period ends counts as spent; a
    /// ledger burn under the candidates' (stale sums) adds nothing; an overflow gives none.
    #[test]
    fn the_jobs_shed_cannot_stop_count_as_spent() {
        let figures = BudgetFigures {
            spend_usd: Decimal::from(8),
            burn_usd_per_hour: Decimal::new(225, 2),
            hours_left: Decimal::TWO,
        };
        assert_eq!(
            figures.for_shed(Decimal::new(175, 2)),
            Some(ShedFigures {
                spend_usd: Decimal::from(9),
                hours_left: Decimal::TWO,
            })
        );
        assert_eq!(
            figures.for_shed(Decimal::from(5)).map(|f| f.spend_usd),
            Some(Decimal::from(8))
        );
        let huge = BudgetFigures {
            spend_usd: Decimal::MAX,
            ..figures
        };
        assert_eq!(huge.for_shed(Decimal::ZERO), None);
    }
}
