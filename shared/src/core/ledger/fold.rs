//! The ledger: folds facts into entities, recomputes the units a fact touches, and applies
//! each unit's change to the running sums of its scopes; the queries those sums answer.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use super::entities::{State, UnitId, index_u32};
use super::output::{JobCost, TaskWindowCost, UNATTRIBUTED, UNKNOWN};
use super::scopes::{ScopeId, ScopeTable};
use crate::core::billing::{self, Billing};
use crate::core::budget::BudgetPeriod;
use crate::core::facts::{Architecture, Fact, FactBody, Millis, Platform, TaskSize};
use crate::core::prices::{PriceTable, Unpriced};
use crate::core::scope::{Scope, ScopeSpend};
use crate::core::sums::{Accountings, ScopeTotals, Sign, UnitBilling};

/// What one unit adds to the scopes it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Contribution {
    pub(super) scopes: Vec<ScopeId>,
    pub(super) unit: UnitBilling,
    pub(super) unpriced: Option<Unpriced>,
    /// The hourly rate the same work would cost on-demand (Spot savings).
    pub(super) on_demand_rate: Decimal,
    /// The EC2 instance whose price this unit is a share of.
    pub(super) instance: Option<u32>,
    pub(super) platform: Platform,
}

/// The spend ledger. See the module docs.
#[derive(Clone, Debug)]
pub struct Ledger {
    pub(super) state: State,
    pub(super) period: BudgetPeriod,
    pub(super) contributions: FxHashMap<UnitId, Contribution>,
    pub(super) table: ScopeTable,
    pub(super) horizon: Option<i64>,
    pub(super) latest_instant: Option<Millis>,
    /// Facts left out because a value was out of range.
    pub(super) refused: u64,
}

impl Ledger {
    pub fn new(prices: PriceTable, period: BudgetPeriod) -> Self {
        let mut state = State::new(prices);
        state.period = period;
        Self {
            state,
            period,
            contributions: FxHashMap::default(),
            table: ScopeTable::default(),
            horizon: None,
            latest_instant: None,
            refused: 0,
        }
    }

    /// Facts left out because a value was outside [`crate::core::facts::limits`] (a store
    /// written before the parser checked them).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    pub fn prices(&self) -> &PriceTable {
        &self.state.prices
    }

    pub fn period(&self) -> BudgetPeriod {
        self.period
    }

    /// Number of jobs and of tasks known.
    pub fn len(&self) -> (usize, usize) {
        (self.state.jobs.len(), self.state.tasks.len())
    }

    pub fn is_empty(&self) -> bool {
        self.state.jobs.is_empty() && self.state.tasks.is_empty()
    }

    /// The latest instant any applied fact mentions: the default evaluation time.
    pub fn latest_instant(&self) -> Option<Millis> {
        self.latest_instant
    }

    /// The latest whole second at which a unit starts or stops. [`Ledger::scope_spend`] is
    /// O(1)-ish for instants at or after it.
    pub fn horizon(&self) -> Option<i64> {
        self.horizon
    }

    /// Folds one fact in. Applying the same fact again changes nothing. A fact with a value
    /// outside [`crate::core::facts::limits`] is left out and counted ([`Ledger::refused`]).
    pub fn apply(&mut self, fact: &Fact) {
        if fact.check_ranges().is_err() {
            self.refused += 1;
            return;
        }
        if let Some(latest) = fact.latest_instant() {
            self.latest_instant = Some(self.latest_instant.map_or(latest, |held| held.max(latest)));
        }
        let mut touched = match &fact.body {
            FactBody::Job(job) => self.state.merge_job(fact, job),
            FactBody::Task(task) => self.state.merge_task(fact, task),
            FactBody::Instance(instance) => self.state.merge_instance(fact, instance),
            FactBody::Abandoned(abandoned) => self.state.abandon_job(abandoned),
            // The audit trail does not change what anything cost.
            FactBody::Enforcement(_) => return,
        };
        touched.sort_unstable();
        touched.dedup();
        for unit in touched {
            self.refresh(unit);
        }
    }

    /// Recomputes a unit's contribution and applies the difference to the scope sums.
    pub(super) fn refresh(&mut self, unit: UnitId) {
        let next = self.contribution(unit);
        let previous = match &next {
            Some(next) => self.contributions.insert(unit, next.clone()),
            None => self.contributions.remove(&unit),
        };
        if previous == next {
            return;
        }
        if let Some(previous) = previous {
            self.account(unit, &previous, Sign::Remove);
        }
        if let Some(next) = next {
            if let Some(horizon) = next.unit.billing.horizon() {
                self.horizon = Some(self.horizon.map_or(horizon, |held| held.max(horizon)));
            }
            self.account(unit, &next, Sign::Add);
        }
    }

    /// The contribution a unit makes now, from the merged state alone.
    pub(super) fn contribution(&mut self, unit: UnitId) -> Option<Contribution> {
        let input = match unit {
            UnitId::Attempt { job, attempt } => self.state.attempt_input(job, attempt)?,
            UnitId::Unattributed { task } => self.state.unattributed_input(task)?,
            UnitId::Instance { instance } => self.state.instance_input(instance),
        };
        let scopes = input
            .scopes
            .into_iter()
            .map(|key| self.table.intern(key))
            .collect();
        let (billing, unpriced, on_demand_rate, estimated) = match input.priced {
            Ok(priced) => (
                input.timing.billing(priced.rate),
                None,
                priced.on_demand_rate,
                input.estimated || priced.estimated,
            ),
            // Unpriced, it still runs: counted as running (tasks, vCPU, memory) at no rate.
            Err(reason) => (
                input.timing.billing(Decimal::ZERO),
                Some(reason),
                Decimal::ZERO,
                false,
            ),
        };
        Some(Contribution {
            on_demand_rate,
            instance: input.instance,
            platform: input.platform,
            scopes,
            unit: UnitBilling {
                billing,
                size: input.size.unwrap_or(TaskSize {
                    vcpu: Decimal::ZERO,
                    memory_gib: Decimal::ZERO,
                    storage_gib: None,
                    gpus: None,
                }),
                estimated,
                unpriced: unpriced.is_some(),
                deadline: input.deadline,
            },
            unpriced,
        })
    }

    pub(super) fn account(&mut self, unit: UnitId, contribution: &Contribution, sign: Sign) {
        // What the contribution adds is the same for every scope: work it out once.
        let mut accountings = Accountings::of(&contribution.unit, self.period);
        for &scope in &contribution.scopes {
            // A budget of another period buckets by its own.
            let accounting = accountings.by(self.table.names[scope as usize].period(self.period));
            let sums = &mut self.table.sums[scope as usize];
            sums.totals.account(accounting, sign);
            if let Billing::Running {
                anchor,
                hourly_rate,
            } = contribution.unit.billing
            {
                match sign {
                    Sign::Add => sums.running_by_anchor.insert((anchor, unit), hourly_rate),
                    Sign::Remove => sums.running_by_anchor.remove(&(anchor, unit)),
                };
            }
        }
    }

    /// Spend of one scope at whole second `at`, from the running sums when `at` is at or past
    /// the horizon (the fast path), by walking every unit otherwise.
    pub fn scope_spend(&self, scope: &Scope, at: i64) -> ScopeSpend {
        let Some(&id) = self.table.index.get(scope) else {
            return ScopeSpend::default();
        };
        if self.horizon.is_some_and(|horizon| at < horizon) {
            return self.walk(at).scopes.remove(scope).unwrap_or_default();
        }
        self.scope_spend_fast(id, at)
    }

    pub(super) fn scope_spend_fast(&self, id: ScopeId, at: i64) -> ScopeSpend {
        let sums = &self.table.sums[id as usize];
        let recent = (at - billing::MINIMUM_BILLED_SECONDS + 1, UnitId::MIN)..;
        let recent = sums
            .running_by_anchor
            .range(recent)
            .map(|(&(anchor, _), &rate)| (anchor, rate));
        let period = self.table.names[id as usize].period(self.period);
        sums.totals.spend_at(at, period, recent)
    }

    /// Every unit and the scopes it counts in (for projections).
    pub fn units(&self) -> impl Iterator<Item = (Vec<Scope>, &UnitBilling)> {
        self.contributions
            .values()
            .map(|contribution| self.named(contribution))
    }

    /// A contribution's unit and the scopes it counts in, by name.
    fn named<'a>(&'a self, contribution: &'a Contribution) -> (Vec<Scope>, &'a UnitBilling) {
        let scopes = contribution
            .scopes
            .iter()
            .map(|&id| self.table.names[id as usize].clone())
            .collect();
        (scopes, &contribution.unit)
    }

    /// As [`Ledger::units`], without the EC2 instances' own bills.
    pub fn units_without_instances(&self) -> impl Iterator<Item = (Vec<Scope>, &UnitBilling)> {
        self.contributions
            .iter()
            .filter(|(unit, _)| !matches!(unit, UnitId::Instance { .. }))
            .map(|(_, contribution)| self.named(contribution))
    }

    /// The units of job `job_id`'s own attempts and the scopes each counts in (a job's own
    /// cost, as its billing group's projection holds it).
    pub fn job_units(&self, job_id: &str) -> impl Iterator<Item = (Vec<Scope>, &UnitBilling)> {
        let job = self.state.job_index.get(job_id).copied();
        self.contributions
            .iter()
            .filter(move |(unit, _)| {
                matches!(unit, UnitId::Attempt { job: of, .. } if Some(*of) == job)
            })
            .map(|(_, contribution)| self.named(contribution))
    }

    /// The compute environment job `job_id`'s latest attempt runs in, when its events said:
    /// its task's compute environment (named by the task's cluster) or its container
    /// instance's. `None` for a job not known, not placed yet, placed where no event named,
    /// or whose latest attempt known has stopped: that says where the job was, not where it
    /// runs (a retry may be placed elsewhere, and Batch may list it running before its new
    /// attempt's events arrive).
    pub fn job_compute_environment(&self, job_id: &str) -> Option<&str> {
        let &idx = self.state.job_index.get(job_id)?;
        let (latest, _) = self.state.jobs[idx as usize].attempts.last()?;
        let input = self.state.attempt_input(idx, *latest)?;
        if input.timing.stop.is_some() {
            return None;
        }
        input.compute_environment
    }

    /// Every scope that holds at least one unit.
    pub fn scopes(&self) -> impl Iterator<Item = &Scope> {
        self.table
            .names
            .iter()
            .zip(&self.table.sums)
            .filter(|(_, sums)| sums.totals.units > 0)
            .map(|(scope, _)| scope)
    }

    /// The running sums of one scope, as a projection keeps them (`None`: never counted).
    pub fn scope_totals(&self, scope: &Scope) -> Option<&ScopeTotals> {
        self.table
            .index
            .get(scope)
            .map(|&id| &self.table.sums[id as usize].totals)
    }

    /// Jobs with an attempt still running, by id.
    /// Sums tag scopes of these keys only (before any fact is applied).
    pub fn with_tag_scopes(mut self, tag_scopes: crate::core::scope::TagScopes) -> Self {
        self.state.tag_scopes = tag_scopes;
        self
    }

    /// Sums each job's units under `Scope::Budget(name)` for every budget of `book` it counts
    /// in (`BudgetBook::budgets_of`), except a budget that counts the account's whole bill
    /// (no parent, a scope naming nothing: it reads the total). A budget of another period
    /// than the ledger's is summed under `Scope::PeriodBudget` by its own, one of the whole
    /// bill wherever the total is. Before any fact is applied.
    pub fn with_budgets(mut self, book: std::sync::Arc<crate::core::budgets::BudgetBook>) -> Self {
        self.state.budgets = Some(book);
        self
    }

    /// The facts among `facts` that hold what the ledger knows of the EC2 container instance
    /// `arn`: for each field, the facts offering a value at its winning rank (ties in version
    /// and instant kept whatever the hash that breaks them); the facts giving its earliest
    /// registration, first sighting and departure; and one with the latest instant. Every
    /// field of an instance is a join (a last-writer-wins register, or a min), so a ledger
    /// given these facts, then any others, holds the same instance as one given all of
    /// `facts`, then those: the instance's projection keeps these instead of reading its
    /// whole history on every event. Empty when the ledger has no such instance.
    pub fn instance_witnesses<'a>(&self, arn: &str, facts: &'a [Fact]) -> Vec<&'a Fact> {
        use super::join::{Lww, Rank};
        fn at_rank<T>(register: &Lww<T>, rank: Rank, offered: bool) -> bool {
            offered
                && register.slot.as_ref().is_some_and(|(held, _)| {
                    (held.major, held.observed_at) == (rank.major, rank.observed_at)
                })
        }
        let Some(&idx) = self.state.instance_index.get(arn) else {
            return Vec::new();
        };
        let instance = &self.state.instances[idx as usize];
        let (mut registered_at, mut first_seen, mut gone_at, mut latest) =
            (false, false, false, false);
        let mut kept = Vec::new();
        for fact in facts {
            let FactBody::Instance(observed) = &fact.body else {
                continue;
            };
            // A fact the fold refuses (out of range) holds nothing; it must not stand in for
            // the one that does.
            if observed.container_instance_arn != arn || fact.check_ranges().is_err() {
                continue;
            }
            let rank = Rank::new(observed.version, fact);
            let mut keep = at_rank(&instance.head, rank, true)
                || at_rank(
                    &instance.ec2_instance_id,
                    rank,
                    observed.ec2_instance_id.is_some(),
                )
                || at_rank(
                    &instance.compute_environment,
                    rank,
                    observed.compute_environment.is_some(),
                )
                || at_rank(
                    &instance.instance_type,
                    rank,
                    observed.instance_type.is_some(),
                )
                || at_rank(
                    &instance.availability_zone,
                    rank,
                    observed.availability_zone.is_some(),
                )
                || at_rank(&instance.registered, rank, observed.registered.is_some())
                || at_rank(&instance.region, rank, observed.region.is_some());
            let seen = observed.updated_at.or(fact.observed_at);
            for (done, held, offered) in [
                (
                    &mut registered_at,
                    instance.registered_at,
                    observed.registered_at,
                ),
                (&mut first_seen, instance.first_seen, seen),
                (
                    &mut gone_at,
                    instance.gone_at,
                    seen.filter(|_| observed.is_gone()),
                ),
                (&mut latest, self.latest_instant, fact.latest_instant()),
            ] {
                if !*done && offered.is_some() && offered == held {
                    *done = true;
                    keep = true;
                }
            }
            if keep {
                kept.push(fact);
            }
        }
        kept
    }

    /// What a share of the EC2 container instance `arn` is priced from, as one fact: the
    /// winning value of each field the shares read (type, region, compute environment,
    /// registered resources, zone, instance id), with the ledger's latest instant as its time.
    /// A ledger of a job placed on the instance, given this fact instead of the instance's
    /// whole history, prices the job's share exactly the same (the instance's own bill is not
    /// in a job's projection). `None` when the ledger has no such instance.
    pub fn instance_summary(&self, arn: &str) -> Option<Fact> {
        let &idx = self.state.instance_index.get(arn)?;
        let instance = &self.state.instances[idx as usize];
        Some(Fact {
            event_id: format!("batchguard-instance-summary-{arn}"),
            observed_at: self.latest_instant,
            body: FactBody::Instance(crate::core::facts::InstanceObserved {
                container_instance_arn: arn.to_owned(),
                ec2_instance_id: instance.ec2_instance_id.get().cloned(),
                compute_environment: instance.compute_environment.get().cloned(),
                instance_type: instance.instance_type.get().cloned(),
                availability_zone: instance.availability_zone.get().cloned(),
                architecture: None,
                registered: instance.registered.get().copied(),
                status: instance
                    .head
                    .get()
                    .map(|head| head.status.clone())
                    .unwrap_or_default(),
                version: 0,
                registered_at: instance.registered_at,
                updated_at: instance.first_seen,
                region: instance.region.get().cloned(),
            }),
        })
    }

    pub fn running_jobs(&self) -> Vec<&str> {
        let mut jobs: Vec<&str> = self
            .contributions
            .iter()
            .filter_map(|(unit, contribution)| match unit {
                UnitId::Attempt { job, .. }
                    if matches!(contribution.unit.billing, Billing::Running { .. }) =>
                {
                    Some(self.state.jobs[*job as usize].job_id.as_str())
                }
                _ => None,
            })
            .collect();
        jobs.sort_unstable();
        jobs.dedup();
        jobs
    }

    /// Spend of every scope at `at`, fast path where it holds.
    pub fn all_scope_spend(&self, at: i64) -> BTreeMap<Scope, ScopeSpend> {
        if self.horizon.is_some_and(|horizon| at < horizon) {
            return self.walk(at).scopes;
        }
        self.table
            .names
            .iter()
            .enumerate()
            .filter(|(id, _)| self.table.sums[*id].totals.units > 0)
            .map(|(id, scope)| (scope.clone(), self.scope_spend_fast(index_u32(id), at)))
            .collect()
    }

    /// The cost of job `job_id` if it is settled: in a terminal state, nothing of it running,
    /// priced, and not an array parent (whose children are billed instead). A later event can
    /// still revise it (an ECS task event refining times Batch reported).
    pub fn settled_job(&self, job_id: &str) -> Option<JobCost> {
        self.settled_job_and_walk(job_id).map(|(job, _)| job)
    }

    /// Every job whose latest tags name `key`, with the tag's value.
    pub fn jobs_tagged<'a>(&'a self, key: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.state.jobs.iter().filter_map(move |job| {
            let value = job
                .tags
                .get()?
                .iter()
                .find(|(tag, _)| tag == key)
                .map(|(_, value)| value.as_str())?;
            Some((job.job_id.as_str(), value))
        })
    }

    /// The tags the job's latest event named, sorted by key (empty for a job not known).
    pub fn job_tags(&self, job_id: &str) -> impl Iterator<Item = (&str, &str)> {
        self.state
            .job_index
            .get(job_id)
            .and_then(|&idx| self.state.jobs[idx as usize].tags.get())
            .into_iter()
            .flatten()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// The job whose attempt the task is billed to, if a Batch event names it.
    pub fn job_of_task(&self, task_arn: &str) -> Option<&str> {
        self.state.owner_of(task_arn).map(|(job, _)| job)
    }

    /// What `scope` spent inside `[from, to)` (whole seconds), evaluated at `to`: each unit's
    /// billed seconds in the window at its rate. A baseline from AWS covers up to `from`; this
    /// is what comes after it, never an interval twice.
    pub fn spend_between(&self, scope: &Scope, from: i64, to: i64) -> Decimal {
        let Some(&id) = self.table.index.get(scope) else {
            return Decimal::ZERO;
        };
        let mut numerator = Decimal::ZERO;
        for contribution in self.contributions.values() {
            if contribution.unpriced.is_some() || !contribution.scopes.contains(&id) {
                continue;
            }
            if let Some((start, end)) = contribution.unit.billing.billed_interval(to) {
                let seconds = end.min(to) - start.max(from);
                if seconds > 0 {
                    numerator += contribution.unit.billing.hourly_rate() * Decimal::from(seconds);
                }
            }
        }
        billing::usd(numerator)
    }

    /// Every ECS task's cost inside `[from, to)` (whole seconds), evaluated at `to`: the part of
    /// its billed interval in the window. EC2 tasks are their share of their instance.
    pub fn task_costs_between(&self, from: i64, to: i64) -> Vec<TaskWindowCost> {
        let mut out = Vec::new();
        for (&unit, contribution) in &self.contributions {
            let (task_arn, job_id, queue) = match unit {
                UnitId::Attempt { job, attempt } => {
                    let state = &self.state.jobs[job as usize];
                    let Some(arn) = state
                        .attempts
                        .binary_search_by_key(&attempt, |(index, _)| *index)
                        .ok()
                        .and_then(|position| state.attempts[position].1.task_arn.get())
                    else {
                        continue;
                    };
                    (
                        arn.clone(),
                        Some(state.job_id.clone()),
                        state
                            .head
                            .get()
                            .map_or_else(|| UNKNOWN.to_owned(), |h| h.queue.clone()),
                    )
                }
                UnitId::Unattributed { task } => (
                    self.state.tasks[task as usize].task_arn.clone(),
                    None,
                    UNATTRIBUTED.to_owned(),
                ),
                UnitId::Instance { .. } => continue,
            };
            let task = self
                .state
                .task_index
                .get(&task_arn)
                .map(|&idx| &self.state.tasks[idx as usize]);
            let seconds = contribution
                .unit
                .billing
                .billed_interval(to)
                .map_or(0, |(start, end)| (end.min(to) - start.max(from)).max(0));
            out.push(TaskWindowCost {
                job_id,
                queue,
                platform: contribution.platform,
                spot: contribution.unit.billing.hourly_rate() < contribution.on_demand_rate,
                region: task.and_then(|t| t.region.get().cloned()),
                architecture: task
                    .and_then(|t| t.architecture.get().copied())
                    .unwrap_or(Architecture::X86_64),
                size: contribution.unit.size,
                billed_seconds: seconds,
                cost_usd: contribution.unpriced.is_none().then(|| {
                    billing::usd(contribution.unit.billing.hourly_rate() * Decimal::from(seconds))
                }),
                task_arn,
            });
        }
        out.sort_by(|a, b| a.task_arn.cmp(&b.task_arn));
        out
    }
}
