//! A workload simulator that shows the guardian at work: one workload and one clock, run under
//! batchguard's own policy and two baselines, second by second, with spend from the real ledger
//! (the Fargate billing rules) and decisions from the real [`decide`] and forecast.
//!
//! Strategies:
//! - **batchguard**: every tick, the ledger's spend and burn rate → [`BudgetStatus`] →
//!   [`decide`]; freeze disables the queue (later submissions are refused), stop also terminates
//!   every running task, taking effect after the stop delay.
//! - **poll** (the public serverless-batch-cost-guardian sample): armed only when a lagging spend
//!   figure — refreshed every 8 h (00:00, 08:00, 16:00 UTC), as AWS Budgets and Cost Explorer
//!   are, and here as fresh as it can be at each refresh — reaches the threshold (80 %); armed, it
//!   disables the queue and re-checks that figure every `wait` seconds (1,200), terminating all
//!   tasks once it shows spend ≥ budget.
//! - **budgets**: alerts on the same lagging figure; never stops anything. Its run is the
//!   uncontrolled one, against which "would have finished under budget" is judged.
//!
//! Pure: no IO, no clock.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::core::budget::{Budget, BudgetPeriod, BudgetStatus};
use crate::core::facts::{
    Architecture, Capacity, Fact, FactBody, Millis, Platform, TaskObserved, TaskSize,
};
use crate::core::ledger::Ledger;
use crate::core::policy::{BudgetPolicy, Level, decide};
use crate::core::prices::PriceTable;
use crate::core::scope::Scope;

/// 2026-11-01T00:00:00Z: simulated months are November 2026.
pub const NOVEMBER_2026: i64 = 1_793_491_200;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// A Spot task interrupted is resubmitted this long after (Batch's retry, a new task).
const RETRY_AFTER_SECONDS: i64 = 60;

/// One job: submitted at `submit` (Unix seconds), running `duration` seconds once started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimJob {
    pub submit: i64,
    pub duration: i64,
    pub size: TaskSize,
    pub architecture: Architecture,
    pub capacity: Capacity,
    /// A Spot task interrupted this many seconds after it starts; the retry starts over.
    pub interrupted_after: Option<i64>,
}

/// A workload, a budget, and the spend of the period before the simulation starts.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub budget: Budget,
    pub prior_spend_usd: Decimal,
    pub start: i64,
    pub end: i64,
    pub jobs: Vec<SimJob>,
}

/// The named scenarios.
pub const SCENARIOS: [&str; 3] = ["steady", "runaway", "burst"];

fn size(vcpu: Decimal, memory_gib: Decimal) -> TaskSize {
    TaskSize {
        vcpu,
        memory_gib,
        storage_gib: None,
        gpus: None,
    }
}

fn random_size(rng: &mut fastrand::Rng) -> TaskSize {
    let (cpu, memory) = super::synth::SIZES[rng.usize(0..super::synth::SIZES.len())];
    size(
        Decimal::from(cpu) / Decimal::from(1024),
        Decimal::from(memory) / Decimal::from(1024),
    )
}

/// A named scenario (see [`SCENARIOS`]), or `None` for an unknown name.
pub fn scenario(name: &str, seed: u64) -> Option<Scenario> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let budget = Budget {
        amount_usd: Decimal::from(1000),
        period: BudgetPeriod::Month,
    };
    let runaway_size = size(Decimal::from(4), Decimal::from(8));
    match name {
        // A month of ordinary work: ~185 jobs a day of the valid Fargate sizes, 10 min to 2 h,
        // 60 % on Spot (5 % of those interrupted once), a third on ARM. Ends near 60 % of budget.
        "steady" => {
            let start = NOVEMBER_2026;
            let end = start + 30 * DAY;
            let mut jobs = Vec::new();
            let mut t = start;
            loop {
                t += rng.i64(1..=2 * 465);
                if t >= end - 3 * HOUR {
                    break;
                }
                let spot = rng.u32(0..100) < 60;
                let duration = rng.i64(600..=7200);
                jobs.push(SimJob {
                    submit: t,
                    duration,
                    size: random_size(&mut rng),
                    architecture: if rng.u32(0..3) == 0 {
                        Architecture::Arm64
                    } else {
                        Architecture::X86_64
                    },
                    capacity: if spot {
                        Capacity::Spot
                    } else {
                        Capacity::OnDemand
                    },
                    interrupted_after: (spot && rng.u32(0..100) < 5).then(|| rng.i64(60..duration)),
                });
            }
            Some(Scenario {
                name: name.into(),
                budget,
                prior_spend_usd: Decimal::ZERO,
                start,
                end,
                jobs,
            })
        }
        // $1,000 for the month, 70 % already spent; an array of 500 tasks of 4 vCPU / 8 GiB
        // x86 on-demand starts at 10:00 on the 20th and would run 6 hours.
        "runaway" => {
            let start = NOVEMBER_2026 + 19 * DAY + 10 * HOUR;
            let jobs = (0..500)
                .map(|i| SimJob {
                    submit: start + i / 50,
                    duration: 6 * HOUR,
                    size: runaway_size,
                    architecture: Architecture::X86_64,
                    capacity: Capacity::OnDemand,
                    interrupted_after: None,
                })
                .collect();
            Some(Scenario {
                name: name.into(),
                budget,
                prior_spend_usd: Decimal::from(700),
                start,
                end: start + 8 * HOUR,
                jobs,
            })
        }
        // 85 % spent; every 4 hours for two days a burst of 200 tasks of 2 vCPU / 4 GiB x86
        // on-demand for 45 minutes (~$15 each): the budget is crossed in the 11th burst.
        "burst" => {
            let start = NOVEMBER_2026 + 24 * DAY;
            let mut jobs = Vec::new();
            for burst in 0..12 {
                for i in 0..200 {
                    jobs.push(SimJob {
                        submit: start + burst * 4 * HOUR + 30 + i / 20 + rng.i64(0..30),
                        duration: 45 * 60,
                        size: size(Decimal::TWO, Decimal::from(4)),
                        architecture: Architecture::X86_64,
                        capacity: Capacity::OnDemand,
                        interrupted_after: None,
                    });
                }
            }
            Some(Scenario {
                name: name.into(),
                budget,
                prior_spend_usd: Decimal::from(850),
                start,
                end: start + 2 * DAY,
                jobs,
            })
        }
        _ => None,
    }
}

/// How the strategies are set.
#[derive(Clone, Debug)]
pub struct Settings {
    /// batchguard's thresholds, tick and stop delay (terminations take effect after it, for
    /// every strategy).
    pub policy: BudgetPolicy,
    /// How often the lagging figure the baselines read is refreshed.
    pub lag_refresh_seconds: i64,
    /// poll: the percent of the budget at which it arms.
    pub poll_threshold_percent: Decimal,
    /// poll: seconds between its re-checks once armed.
    pub poll_wait_seconds: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: BudgetPolicy::default(),
            lag_refresh_seconds: 8 * HOUR,
            poll_threshold_percent: Decimal::from(80),
            poll_wait_seconds: 1200,
        }
    }
}

/// The three strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Batchguard,
    Poll,
    Budgets,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Self::Batchguard => "batchguard",
            Self::Poll => "poll",
            Self::Budgets => "budgets",
        }
    }
}

/// Something a strategy did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimAction {
    /// Unix seconds.
    pub at: i64,
    pub action: String,
}

/// A strategy's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub name: &'static str,
    pub final_spend_usd: Decimal,
    pub overshoot_usd: Decimal,
    pub overshoot_percent: Decimal,
    /// From the second spend reached the budget to the last task stopping; `None` when spend
    /// never reached it.
    pub breach_to_stop_seconds: Option<i64>,
    /// Jobs stopped (terminated, or refused by a disabled queue) that, left alone, would have
    /// finished before spend reached the budget.
    pub jobs_stopped: u64,
    /// All jobs stopped.
    pub jobs_stopped_total: u64,
    pub actions: Vec<SimAction>,
}

/// All strategies on one scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimReport {
    pub scenario: String,
    pub budget_usd: Decimal,
    pub prior_spend_usd: Decimal,
    pub strategies: Vec<Outcome>,
}

/// What one run left.
struct Run {
    final_spend_usd: Decimal,
    breach_at: Option<i64>,
    last_stop: i64,
    /// Per job: when it finished (`None`: stopped or refused).
    finished_at: Vec<Option<i64>>,
    actions: Vec<SimAction>,
}

/// A running attempt.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    number: u32,
    started: i64,
}

struct Cluster<'a> {
    scenario: &'a Scenario,
    ledger: Ledger,
    running: BTreeMap<usize, Attempt>,
    /// Attempt ends by second: natural ends and interruptions, (job, interrupted).
    ends: BTreeMap<i64, Vec<(usize, bool)>>,
    /// Resubmissions after an interruption, by second.
    retries: BTreeMap<i64, Vec<(usize, u32)>>,
    finished_at: Vec<Option<i64>>,
    last_stop: i64,
    facts: u64,
}

impl<'a> Cluster<'a> {
    fn new(scenario: &'a Scenario, prices: &PriceTable) -> Self {
        Self {
            scenario,
            ledger: Ledger::new(prices.clone(), scenario.budget.period),
            running: BTreeMap::new(),
            ends: BTreeMap::new(),
            retries: BTreeMap::new(),
            finished_at: vec![None; scenario.jobs.len()],
            last_stop: scenario.start,
            facts: 0,
        }
    }

    fn observe(&mut self, job: usize, number: u32, started: i64, stopped: Option<i64>) {
        let spec = &self.scenario.jobs[job];
        self.facts += 1;
        let task = TaskObserved {
            task_arn: format!(
                "arn:aws:ecs:us-east-1:123456789012:task/AWSBatch-sim-0000/{job}-{number}"
            ),
            compute_environment: Some("sim".into()),
            family: Some("sim".into()),
            version: if stopped.is_some() { 2 } else { 1 },
            last_status: if stopped.is_some() {
                "STOPPED"
            } else {
                "RUNNING"
            }
            .into(),
            platform: Some(Platform::Fargate),
            capacity: Some(spec.capacity),
            size: Some(spec.size),
            architecture: Some(spec.architecture),
            operating_system: None,
            pull_started_at: Some(Millis(started * 1000)),
            pull_stopped_at: Some(Millis(started * 1000)),
            started_at: Some(Millis(started * 1000)),
            stopped_at: stopped.map(|s| Millis(s * 1000)),
            container_instance_arn: None,
            stop_code: None,
            availability_zone: None,
            region: Some("us-east-1".into()),
        };
        self.ledger.apply(&Fact {
            event_id: format!("sim-{}", self.facts),
            observed_at: None,
            body: FactBody::Task(task),
        });
    }

    fn start(&mut self, job: usize, number: u32, t: i64) {
        let spec = &self.scenario.jobs[job];
        let (end, interrupted) = match spec.interrupted_after {
            Some(after) if number == 1 => (t + after, true),
            _ => (t + spec.duration, false),
        };
        self.running.insert(job, Attempt { number, started: t });
        self.ends.entry(end).or_default().push((job, interrupted));
        self.observe(job, number, t, None);
    }

    fn stop(&mut self, job: usize, t: i64) -> Option<Attempt> {
        let attempt = self.running.remove(&job)?;
        self.observe(job, attempt.number, attempt.started, Some(t));
        self.last_stop = self.last_stop.max(t);
        Some(attempt)
    }

    fn stop_all(&mut self, t: i64) {
        let running: Vec<usize> = self.running.keys().copied().collect();
        for job in running {
            self.stop(job, t);
        }
    }

    /// Spend of the period so far, the prior spend included, and the burn rate, at `t`.
    fn spend(&self, t: i64) -> (Decimal, Decimal) {
        let spend = self.ledger.scope_spend(&Scope::Total, t);
        (
            self.scenario.prior_spend_usd + spend.period_spend_usd,
            spend.burn_rate_usd_per_hour,
        )
    }
}

fn run(scenario: &Scenario, strategy: Strategy, settings: &Settings, prices: &PriceTable) -> Run {
    let budget = scenario.budget.amount_usd;
    let mut cluster = Cluster::new(scenario, prices);
    let mut submissions: Vec<usize> = (0..scenario.jobs.len()).collect();
    submissions.sort_by_key(|&j| (scenario.jobs[j].submit, j));
    let mut next = 0;
    let mut queue_enabled = true;
    let mut terminate_at: Option<i64> = None;
    let mut armed = false;
    let mut next_poll_check = i64::MAX;
    let mut lagging = scenario.prior_spend_usd;
    let mut breach_at = None;
    let mut actions = Vec::new();
    let mut last_level = Level::Ok;
    let mut act = |at: i64, action: String| actions.push(SimAction { at, action });
    // Spend grows at most at the burn rate between starts: the next second it can reach the
    // budget, re-computed when something starts.
    let mut breach_check = scenario.start;

    let mut t = scenario.start;
    while t <= scenario.end
        || !cluster.running.is_empty()
        || next < submissions.len()
        || !cluster.retries.is_empty()
    {
        // Terminations ordered earlier take effect now.
        if terminate_at.is_some_and(|at| at <= t) {
            cluster.stop_all(t);
            terminate_at = None;
        }
        // Attempts that end now: finished, or interrupted (and resubmitted).
        if let Some(ending) = cluster.ends.remove(&t) {
            for (job, interrupted) in ending {
                let Some(attempt) = cluster.running.get(&job).copied() else {
                    continue; // already terminated
                };
                cluster.stop(job, t);
                if interrupted {
                    cluster
                        .retries
                        .entry(t + RETRY_AFTER_SECONDS)
                        .or_default()
                        .push((job, attempt.number + 1));
                } else {
                    cluster.finished_at[job] = Some(t);
                }
            }
        }
        // New submissions and retries start at once on an enabled queue; a disabled one
        // refuses them.
        let mut starting: Vec<(usize, u32)> = cluster.retries.remove(&t).unwrap_or_default();
        while next < submissions.len() && scenario.jobs[submissions[next]].submit <= t {
            starting.push((submissions[next], 1));
            next += 1;
        }
        for (job, number) in starting {
            if queue_enabled {
                cluster.start(job, number, t);
                breach_check = t;
            }
        }
        // The breach, to the second.
        if breach_at.is_none() && t >= breach_check {
            let (spend, burn) = cluster.spend(t);
            if spend >= budget {
                breach_at = Some(t);
            } else if burn > Decimal::ZERO {
                let seconds = ((budget - spend) * Decimal::from(HOUR) / burn)
                    .floor()
                    .to_i64()
                    .unwrap_or(i64::MAX / 2);
                breach_check = t + seconds.max(1);
            } else {
                breach_check = i64::MAX;
            }
        }
        // The strategy.
        let since_start = t - scenario.start;
        match strategy {
            Strategy::Batchguard if since_start % settings.policy.tick_seconds == 0 => {
                let (spend, burn) = cluster.spend(t);
                let status = BudgetStatus::evaluate(scenario.budget, t, spend, burn);
                let decision = decide(&status, &settings.policy, t);
                if decision.level > last_level {
                    act(
                        t,
                        format!("{}: {}", decision.level.as_str(), decision.reason),
                    );
                    last_level = decision.level;
                }
                if decision.level >= Level::Freeze {
                    queue_enabled = false;
                }
                if decision.level == Level::Stop
                    && terminate_at.is_none()
                    && !cluster.running.is_empty()
                {
                    terminate_at = Some(t + settings.policy.stop_delay_seconds);
                }
            }
            Strategy::Poll | Strategy::Budgets => {
                if t.rem_euclid(settings.lag_refresh_seconds) == 0 {
                    lagging = cluster.spend(t).0;
                    let threshold = budget * settings.poll_threshold_percent / Decimal::ONE_HUNDRED;
                    if !armed && lagging >= threshold {
                        armed = true;
                        if strategy == Strategy::Poll {
                            queue_enabled = false;
                            next_poll_check = t;
                            act(
                                t,
                                format!(
                                    "armed at lagging spend ${}: queue disabled",
                                    lagging.round_dp(2)
                                ),
                            );
                        } else {
                            act(t, format!("alert: lagging spend ${}", lagging.round_dp(2)));
                        }
                    }
                }
                if strategy == Strategy::Poll && t >= next_poll_check {
                    next_poll_check = t + settings.poll_wait_seconds;
                    if lagging >= budget && terminate_at.is_none() && !cluster.running.is_empty() {
                        terminate_at = Some(t + settings.policy.stop_delay_seconds);
                        act(
                            t,
                            format!(
                                "lagging spend ${} ≥ budget: terminate all",
                                lagging.round_dp(2)
                            ),
                        );
                    }
                }
            }
            Strategy::Batchguard => {}
        }
        // A stop delay of zero: the tasks stop this very second.
        if terminate_at.is_some_and(|at| at <= t) {
            cluster.stop_all(t);
            terminate_at = None;
        }
        t += 1;
        // Skip idle stretches: nothing runs and nothing is due before the next event.
        if cluster.running.is_empty() && terminate_at.is_none() {
            let mut due = i64::MAX;
            if let Some(job) = submissions.get(next) {
                due = due.min(scenario.jobs[*job].submit);
            }
            if let Some((&retry, _)) = cluster.retries.iter().next() {
                due = due.min(retry);
            }
            if due == i64::MAX {
                break;
            }
            // Land on the strategy's own schedule too, so its checks see the idle stretch.
            let next_check = match strategy {
                Strategy::Batchguard => {
                    let tick = settings.policy.tick_seconds;
                    t + (tick - (t - scenario.start).rem_euclid(tick)) % tick
                }
                Strategy::Poll | Strategy::Budgets => {
                    let refresh = settings.lag_refresh_seconds;
                    let next_refresh = t + (refresh - t.rem_euclid(refresh)) % refresh;
                    if strategy == Strategy::Poll && armed {
                        next_refresh.min(next_poll_check.max(t))
                    } else {
                        next_refresh
                    }
                }
            };
            t = t.max(due.min(next_check));
        }
    }
    let horizon = t.max(cluster.last_stop);
    Run {
        final_spend_usd: cluster.spend(horizon).0,
        breach_at,
        last_stop: cluster.last_stop,
        finished_at: cluster.finished_at,
        actions,
    }
}

/// Runs every strategy on the scenario.
pub fn simulate(scenario: &Scenario, settings: &Settings, prices: &PriceTable) -> SimReport {
    let budget = scenario.budget.amount_usd;
    let uncontrolled = run(scenario, Strategy::Budgets, settings, prices);
    let under_budget: Vec<bool> = uncontrolled
        .finished_at
        .iter()
        .map(|finished| match (finished, uncontrolled.breach_at) {
            (Some(at), Some(breach)) => *at < breach,
            (Some(_), None) => true,
            (None, _) => false,
        })
        .collect();
    let runs = [
        (
            Strategy::Batchguard,
            run(scenario, Strategy::Batchguard, settings, prices),
        ),
        (
            Strategy::Poll,
            run(scenario, Strategy::Poll, settings, prices),
        ),
        (Strategy::Budgets, uncontrolled),
    ];
    let strategies = runs
        .into_iter()
        .map(|(strategy, result)| {
            let stopped: Vec<usize> = result
                .finished_at
                .iter()
                .enumerate()
                .filter(|(_, finished)| finished.is_none())
                .map(|(job, _)| job)
                .collect();
            let overshoot = (result.final_spend_usd - budget).max(Decimal::ZERO);
            Outcome {
                name: strategy.name(),
                final_spend_usd: result.final_spend_usd.round_dp(4),
                overshoot_usd: overshoot.round_dp(4),
                overshoot_percent: if budget.is_zero() {
                    Decimal::ZERO
                } else {
                    (overshoot * Decimal::ONE_HUNDRED / budget).round_dp(4)
                },
                breach_to_stop_seconds: result
                    .breach_at
                    .map(|breach| (result.last_stop - breach).max(0)),
                jobs_stopped: stopped.iter().filter(|&&job| under_budget[job]).count() as u64,
                jobs_stopped_total: stopped.len() as u64,
                actions: result.actions,
            }
        })
        .collect();
    SimReport {
        scenario: scenario.name.clone(),
        budget_usd: budget,
        prior_spend_usd: scenario.prior_spend_usd,
        strategies,
    }
}
