//! Walking every unit: per-job, per-instance and per-scope figures at any instant, from the
//! billing rules directly (no running sums), and a settled job's cost.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use super::entities::UnitId;
use super::fold::Ledger;
use super::output::{AttemptCost, InstanceCost, JobCost, UNKNOWN, UnattributedTask, Walk};
use crate::core::billing::{self, Accrued};
use crate::core::facts::JobStatus;
use crate::core::scope::{Scope, ScopeSpend};
use crate::core::sums;

impl Ledger {
    /// As [`Ledger::settled_job`], with the walk it was read from (for the monitoring view).
    /// A job not in a terminal state is answered without walking.
    pub fn settled_job_and_walk(&self, job_id: &str) -> Option<(JobCost, Walk)> {
        let &index = self.state.job_index.get(job_id)?;
        let head = self.state.jobs[index as usize].head.get()?;
        if !head.status.is_terminal() {
            return None;
        }
        let at = self
            .latest_instant
            .map_or(0, |m| m.0.div_euclid(1000) + 1)
            .max(self.horizon.unwrap_or(0));
        let walk = self.walk(at);
        let job = walk
            .jobs
            .iter()
            .find(|job| {
                job.job_id == job_id
                    && job.status.is_some_and(JobStatus::is_terminal)
                    && !job.running
                    && !job.array_parent
                    && job.cost_usd.is_some()
            })?
            .clone();
        Some((job, walk))
    }

    /// Walks every unit: per-job costs, unattributed tasks and per-scope spend at whole second
    /// `at`, computed from the billing rules directly (no running sums). O(units).
    pub fn walk(&self, at: i64) -> Walk {
        let (period_start, period_end) = self.period.bounds(at);
        let mut jobs: Vec<JobCost> = self
            .state
            .jobs
            .iter()
            .map(|job| {
                let head = job.head.get();
                JobCost {
                    job_id: job.job_id.clone(),
                    job_name: head.map(|h| h.job_name.clone()).unwrap_or_default(),
                    queue: head.map_or_else(|| UNKNOWN.to_owned(), |h| h.queue.clone()),
                    job_definition: head
                        .map_or_else(|| UNKNOWN.to_owned(), |h| h.job_definition.clone()),
                    status: head.map(|h| h.status),
                    attempts: job.attempts.len(),
                    cost_usd: None,
                    billed_seconds: 0,
                    estimated: false,
                    running: false,
                    array_parent: job.array_size.get().is_some(),
                    closed_unknown_to_batch: job.abandoned,
                    unpriced: None,
                    platform: None,
                    on_demand_usd: None,
                    attempt_costs: Vec::new(),
                }
            })
            .collect();
        let mut job_numerators = vec![Decimal::ZERO; jobs.len()];
        let mut job_on_demand = vec![Decimal::ZERO; jobs.len()];
        let mut job_last_attempt = vec![None::<u32>; jobs.len()];
        // Per instance: (its own numerator, Σ of the numerators of the shares placed on it).
        let mut instance_numerators: FxHashMap<u32, (Decimal, Decimal)> = FxHashMap::default();
        let mut instances = Vec::new();
        let mut job_priced = vec![false; jobs.len()];
        let mut unattributed = Vec::new();
        let mut scopes: BTreeMap<Scope, ScopeSpend> = BTreeMap::new();

        for (&unit, contribution) in &self.contributions {
            let accrued: Accrued = contribution.unit.billing.accrued(at);
            let billed = contribution.unit.billing.billed_interval(at);
            let in_bounds = |(period_start, period_end): (i64, i64)| {
                billed
                    .map(|(from, to)| to.min(period_end) - from.max(period_start))
                    .filter(|&seconds| seconds > 0)
                    .map_or(Decimal::ZERO, |seconds| {
                        contribution.unit.billing.hourly_rate() * Decimal::from(seconds)
                    })
            };
            let in_period = in_bounds((period_start, period_end));
            for &scope in &contribution.scopes {
                let name = &self.table.names[scope as usize];
                // A budget of another period counts the part inside its own period.
                let own = name.period(self.period);
                let in_own_period = if own == self.period {
                    in_period
                } else {
                    in_bounds(own.bounds(at))
                };
                let spend = scopes.entry(name.clone()).or_default();
                spend.spend_usd += accrued.numerator;
                spend.period_spend_usd += in_own_period;
                if contribution.unpriced.is_some() {
                    spend.unpriced_tasks += 1;
                }
                if contribution.unit.estimated {
                    spend.estimated_tasks += 1;
                }
                if accrued.running {
                    // What it may still cost (a numerator, made committed spend below).
                    match contribution.unit.deadline {
                        Some(deadline) => {
                            spend.committed_usd += contribution.unit.billing.hourly_rate()
                                * Decimal::from(deadline - at);
                        }
                        None => spend.open_ended_tasks += 1,
                    }
                    spend.burn_rate_usd_per_hour += contribution.unit.billing.hourly_rate();
                    spend.running_tasks += 1;
                    spend.running_vcpu += contribution.unit.size.vcpu;
                    spend.running_memory_gib += contribution.unit.size.memory_gib;
                }
            }
            if let (Some(instance), None, UnitId::Attempt { .. } | UnitId::Unattributed { .. }) =
                (contribution.instance, &contribution.unpriced, unit)
            {
                instance_numerators.entry(instance).or_default().1 += accrued.numerator;
            }
            match unit {
                UnitId::Attempt { job, attempt } => {
                    let (cost, i) = (&mut jobs[job as usize], job as usize);
                    if job_last_attempt[i].is_none_or(|last| last <= attempt) {
                        job_last_attempt[i] = Some(attempt);
                        cost.platform = Some(contribution.platform);
                    }
                    job_on_demand[i] +=
                        contribution.on_demand_rate * Decimal::from(accrued.billed_seconds);
                    cost.attempt_costs.push(AttemptCost {
                        index: attempt,
                        cost_usd: contribution
                            .unpriced
                            .is_none()
                            .then(|| billing::usd(accrued.numerator)),
                        billed_seconds: accrued.billed_seconds,
                    });
                    cost.billed_seconds += accrued.billed_seconds;
                    cost.running |= accrued.running;
                    cost.estimated |= contribution.unit.estimated;
                    if let Some(reason) = &contribution.unpriced {
                        cost.unpriced = Some(
                            cost.unpriced
                                .take()
                                .map_or_else(|| reason.clone(), |r| r.min(reason.clone())),
                        );
                    } else {
                        job_priced[i] = true;
                        job_numerators[i] += accrued.numerator;
                    }
                }
                UnitId::Unattributed { task } => {
                    let task = &self.state.tasks[task as usize];
                    unattributed.push(UnattributedTask {
                        task_arn: task.task_arn.clone(),
                        compute_environment: task
                            .compute_environment
                            .get()
                            .cloned()
                            .unwrap_or_else(|| UNKNOWN.to_owned()),
                        cost_usd: contribution
                            .unpriced
                            .is_none()
                            .then(|| billing::usd(accrued.numerator)),
                        billed_seconds: accrued.billed_seconds,
                        running: accrued.running,
                        unpriced: contribution.unpriced.clone(),
                    });
                }
                UnitId::Instance { instance } => {
                    if contribution.unpriced.is_none() {
                        instance_numerators.entry(instance).or_default().0 += accrued.numerator;
                    }
                    let state = &self.state.instances[instance as usize];
                    instances.push(InstanceCost {
                        container_instance_arn: state.arn.clone(),
                        ec2_instance_id: state.ec2_instance_id.get().cloned(),
                        compute_environment: state
                            .compute_environment
                            .get()
                            .cloned()
                            .unwrap_or_else(|| UNKNOWN.to_owned()),
                        instance_type: state.instance_type.get().cloned(),
                        availability_zone: state.availability_zone.get().cloned(),
                        registered: state.registered.get().copied(),
                        split_basis: self.state.split_basis(state),
                        spot: state
                            .compute_environment
                            .get()
                            .is_some_and(|ce| self.state.prices.is_spot_compute_environment(ce)),
                        status: state
                            .head
                            .get()
                            .map(|h| h.status.clone())
                            .unwrap_or_default(),
                        cost_usd: None,
                        attributed_usd: Decimal::ZERO,
                        idle_usd: None,
                        overcommitted_usd: Decimal::ZERO,
                        billed_seconds: accrued.billed_seconds,
                        running: accrued.running,
                        estimated: contribution.unit.estimated,
                        unpriced: contribution.unpriced.clone(),
                    });
                }
            }
        }
        for cost in &mut instances {
            let Some(&idx) = self.state.instance_index.get(&cost.container_instance_arn) else {
                continue;
            };
            let (own, attributed) = instance_numerators.get(&idx).copied().unwrap_or_default();
            cost.attributed_usd = billing::usd(attributed);
            if cost.unpriced.is_none() {
                let bill = billing::usd(own);
                cost.cost_usd = Some(bill);
                // Shares are rounded down and ECS places no more than an instance offers, so
                // they stay within its bill; events that say otherwise (a stop never seen)
                // show as overcommitted, never as negative idle.
                cost.idle_usd = Some((bill - cost.attributed_usd).max(Decimal::ZERO));
                cost.overcommitted_usd = (cost.attributed_usd - bill).max(Decimal::ZERO);
            }
        }
        instances.sort_by(|a, b| a.container_instance_arn.cmp(&b.container_instance_arn));
        for (i, job) in jobs.iter_mut().enumerate() {
            job.attempt_costs.sort_by_key(|attempt| attempt.index);
            let nothing_unpriced = job.unpriced.is_none();
            if job_priced[i] || nothing_unpriced {
                job.cost_usd = Some(billing::usd(job_numerators[i]));
                job.on_demand_usd = Some(billing::usd(job_on_demand[i]));
            }
        }
        for spend in scopes.values_mut() {
            spend.committed_usd = sums::committed(spend.period_spend_usd, spend.committed_usd);
            spend.spend_usd = billing::usd(spend.spend_usd);
            spend.period_spend_usd = billing::usd(spend.period_spend_usd);
        }
        let running_jobs = jobs.iter().filter(|job| job.running).count() as u64;
        jobs.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        unattributed.sort_by(|a, b| a.task_arn.cmp(&b.task_arn));
        Walk {
            at,
            jobs,
            unattributed,
            instances,
            scopes,
            running_jobs,
        }
    }
}
