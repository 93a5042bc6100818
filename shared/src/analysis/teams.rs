//! `simulate --scenario teams` (issue 17): three teams share one job queue, each with its own
//! daily budget; one runs away. The same workload runs under three guards, each a budgets
//! file acted on every tick with [`BudgetBook::plan`]:
//! - **one budget**: the stack as it was, one budget over the shared queue (drain at 90 %,
//!   terminate at 100 %): it stops every team;
//! - **per team, terminate**: a budget per team (drain at 90 %, terminate at 100 %);
//! - **per team, shed**: the same, but at 100 % it stops only the fewest running jobs that
//!   bring the team's forecast inside its budget.
//!
//! Spend comes from the real ledger (`Ledger::with_budgets`, Fargate prices). Jobs start the
//! second they are submitted (the queue has room) unless a budget they count in drains; a
//! termination takes effect after the stop delay. Pure: no IO, no clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::Serialize;

use super::budgets::budget_lines;
use crate::core::budget::BudgetPeriod;
use crate::core::budgets::{Action, BudgetBook, JobFacets, JobStage, JobView, ShedFigures, Step};
use crate::core::facts::{
    Architecture, AttemptObserved, Capacity, Fact, FactBody, JobObserved, JobStatus, Millis,
    Platform, TaskSize,
};
use crate::core::ledger::Ledger;
use crate::core::prices::PriceTable;

/// 2026-11-02T00:00:00Z, a Monday.
pub const START: i64 = 1_793_577_600;
const HOUR: i64 = 3_600;
/// The teams, the last of which runs away.
pub const TEAMS: [&str; 3] = ["genomics", "imaging", "ml"];
/// Each team's budget for the day, in USD.
pub const TEAM_BUDGET_USD: i64 = 40;
/// The shared queue's one budget under the old guard: the teams' together.
pub const SHARED_BUDGET_USD: i64 = 120;
const QUEUE: &str = "shared";

/// One job of a team.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamJob {
    pub team: usize,
    pub submit: i64,
    pub duration: i64,
    pub size: TaskSize,
}

/// A day's work: steady jobs from every team, and from hour 6 a runaway stream from the last.
pub fn workload(seed: u64) -> Vec<TeamJob> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let size = |vcpu: i64, gib: i64| TaskSize {
        vcpu: Decimal::from(vcpu),
        memory_gib: Decimal::from(gib),
        storage_gib: None,
        gpus: None,
    };
    let mut jobs = Vec::new();
    for team in 0..TEAMS.len() {
        // A job every 20 minutes or so, 20 to 60 minutes of 2 vCPU / 8 GiB: about $5 a day.
        let mut t = START + rng.i64(0..1_200);
        while t < START + 20 * HOUR {
            jobs.push(TeamJob {
                team,
                submit: t,
                duration: rng.i64(1_200..=3_600),
                size: size(2, 8),
            });
            t += rng.i64(900..=1_500);
        }
    }
    // The runaway: from 06:00, 16 vCPU / 64 GiB jobs of four hours, one every five minutes.
    let runaway = TEAMS.len() - 1;
    let mut t = START + 6 * HOUR;
    while t < START + 12 * HOUR {
        jobs.push(TeamJob {
            team: runaway,
            submit: t,
            duration: 4 * HOUR,
            size: size(16, 64),
        });
        t += 300;
    }
    jobs.sort_by_key(|job| (job.submit, job.team));
    jobs
}

/// The guards compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    OneBudget,
    PerTeamTerminate,
    PerTeamShed,
}

impl Guard {
    pub const ALL: [Self; 3] = [Self::OneBudget, Self::PerTeamTerminate, Self::PerTeamShed];

    pub fn name(self) -> &'static str {
        match self {
            Self::OneBudget => "one budget (the shared queue)",
            Self::PerTeamTerminate => "per team, terminate",
            Self::PerTeamShed => "per team, shed",
        }
    }

    /// The guard's budgets file.
    pub fn book(self) -> BudgetBook {
        let budget = |name: &str, amount: i64, scope: &str, last: &str| {
            // Shedding acts on the forecast, so before the amount is reached; terminating at
            // the amount.
            let thresholds = if last == "shed" {
                "{ at_percent = \"80\", action = \"drain\" }, { at_percent = \"90\", action = \"shed\" }, { at_percent = \"100\", action = \"terminate\" }"
            } else {
                "{ at_percent = \"90\", action = \"drain\" }, { at_percent = \"100\", action = \"terminate\" }"
            };
            format!(
                "[[budget]]\nname = \"{name}\"\namount_usd = \"{amount}\"\nperiod = \"day\"\n\
                 scope = {scope}\nthresholds = [{thresholds}]\n"
            )
        };
        let text: String = match self {
            Self::OneBudget => budget(
                "shared-queue",
                SHARED_BUDGET_USD,
                &format!("{{ queues = [\"{QUEUE}\"] }}"),
                "terminate",
            ),
            Self::PerTeamTerminate | Self::PerTeamShed => {
                let last = if self == Self::PerTeamShed {
                    "shed"
                } else {
                    "terminate"
                };
                TEAMS
                    .iter()
                    .map(|team| {
                        budget(
                            team,
                            TEAM_BUDGET_USD,
                            &format!("{{ tags = [\"team={team}\"] }}"),
                            last,
                        )
                    })
                    .collect()
            }
        };
        // The files above are valid by construction; a test parses each.
        BudgetBook::parse(&text).unwrap_or_default()
    }
}

/// What a guard did to one team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TeamOutcome {
    pub team: &'static str,
    pub spend_usd: Decimal,
    /// Spend over the team's own budget.
    pub overshoot_usd: Decimal,
    pub jobs: u64,
    pub completed: u64,
    /// Never started: cancelled on arrival.
    pub cancelled: u64,
    /// Started, then terminated.
    pub terminated: u64,
    /// Still running when the day ends (billed to its end).
    pub running_at_end: u64,
}

/// One guard's day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GuardOutcome {
    pub guard: &'static str,
    pub teams: Vec<TeamOutcome>,
    /// Each budget's action as it first rose to it: (second, budget, action).
    pub actions: Vec<(i64, String, Action)>,
}

/// The teams scenario's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TeamsReport {
    pub seed: u64,
    pub team_budget_usd: Decimal,
    pub guards: Vec<GuardOutcome>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Waiting,
    Running { started: i64 },
    Completed,
    Cancelled,
    Terminated,
}

/// Runs the day under every guard.
pub fn simulate_teams(
    seed: u64,
    prices: &PriceTable,
    tick_seconds: i64,
    stop_delay_seconds: i64,
) -> TeamsReport {
    let jobs = workload(seed);
    let guards = Guard::ALL
        .into_iter()
        .map(|guard| {
            run(
                guard,
                &jobs,
                prices,
                tick_seconds.max(1),
                stop_delay_seconds.max(0),
            )
        })
        .collect();
    TeamsReport {
        seed,
        team_budget_usd: Decimal::from(TEAM_BUDGET_USD),
        guards,
    }
}

fn job_fact(
    index: usize,
    job: &TeamJob,
    status: JobStatus,
    started: i64,
    stopped: Option<i64>,
) -> Fact {
    let id = format!("sim-{index}");
    Fact {
        event_id: format!("{id}-{status:?}"),
        observed_at: None,
        body: FactBody::Job(JobObserved {
            job_id: id.clone(),
            job_name: id,
            queue: QUEUE.into(),
            job_definition: "sim".into(),
            status,
            status_reason: None,
            created_at: Some(Millis(job.submit * 1000)),
            attempts: vec![AttemptObserved {
                index: 0,
                task_arn: None,
                started_at: Some(Millis(started * 1000)),
                stopped_at: stopped.map(|s| Millis(s * 1000)),
                exit_code: None,
                container_instance_arn: None,
                status_reason: None,
            }],
            platform: Some(Platform::Fargate),
            size: Some(job.size),
            architecture: Some(Architecture::X86_64),
            operating_system: None,
            tags: BTreeMap::from([("team".to_owned(), TEAMS[job.team].to_owned())]),
            array_size: None,
            timeout_seconds: None,
            node_index: None,
            region: Some("us-east-1".into()),
        }),
    }
}

fn run(
    guard: Guard,
    jobs: &[TeamJob],
    prices: &PriceTable,
    tick: i64,
    stop_delay: i64,
) -> GuardOutcome {
    let book = Arc::new(guard.book());
    // What each job costs an hour while it runs (on-demand x86 Fargate in us-east-1, as the
    // ledger prices it), for shedding.
    let rates = prices
        .fargate("us-east-1", Architecture::X86_64, Capacity::OnDemand)
        .ok();
    let burn = |job: &TeamJob| rates.map_or(Decimal::ZERO, |rates| rates.hourly(&job.size));
    let mut ledger = Ledger::new(prices.clone(), BudgetPeriod::Day).with_budgets(book.clone());
    let mut fates = vec![Fate::Waiting; jobs.len()];
    let mut acting: BTreeMap<String, Action> = BTreeMap::new();
    let mut actions = Vec::new();
    // Terminations ordered, by the second they take effect; attempts' natural ends, by the
    // second they end (entered when they start).
    let mut stopping: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    let mut ending: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    let mut arrivals = jobs.iter().enumerate().peekable();
    let tags: Vec<Vec<(String, String)>> = jobs
        .iter()
        .map(|job| vec![("team".to_owned(), TEAMS[job.team].to_owned())])
        .collect();
    let facets = |index: usize| JobFacets {
        queue: QUEUE,
        compute_environment: Some("sim"),
        job_definition: "sim",
        tags: &tags[index],
    };
    let end = START + 24 * HOUR;
    // Each tick at `t` first takes in everything up to and including `t` (terminations, ends,
    // arrivals, in time order; at one second, in that order), then decides: a job ending at
    // the tick's second is over before the tick looks.
    let mut t = START;
    loop {
        let mut events: Vec<(i64, u8, usize)> = Vec::new();
        while let Some((&at, _)) = stopping.first_key_value().filter(|(at, _)| **at <= t) {
            let indexes = stopping.remove(&at).unwrap_or_default();
            events.extend(indexes.into_iter().map(|i| (at, 0, i)));
        }
        while let Some((index, job)) = arrivals.next_if(|(_, job)| job.submit <= t) {
            events.push((job.submit, 2, index));
        }
        events.sort_unstable();
        // Arrivals can start jobs that end before `t`: ends are taken as they come due.
        let mut queue: std::collections::BinaryHeap<std::cmp::Reverse<(i64, u8, usize)>> =
            events.into_iter().map(std::cmp::Reverse).collect();
        while let Some((&at, _)) = ending.first_key_value().filter(|(at, _)| **at <= t) {
            for index in ending.remove(&at).unwrap_or_default() {
                queue.push(std::cmp::Reverse((at, 1, index)));
            }
        }
        while let Some(std::cmp::Reverse((at, kind, index))) = queue.pop() {
            match (kind, fates[index]) {
                (0, Fate::Running { started }) => {
                    ledger.apply(&job_fact(
                        index,
                        &jobs[index],
                        JobStatus::Failed,
                        started,
                        Some(at),
                    ));
                    fates[index] = Fate::Terminated;
                }
                (1, Fate::Running { started }) => {
                    ledger.apply(&job_fact(
                        index,
                        &jobs[index],
                        JobStatus::Succeeded,
                        started,
                        Some(at),
                    ));
                    fates[index] = Fate::Completed;
                }
                (2, Fate::Waiting) => {
                    let view = JobView {
                        job_id: "arriving",
                        facets: facets(index),
                        stage: JobStage::Arriving,
                        burn_usd_per_hour: Decimal::ZERO,
                    };
                    if book.plan(&acting, &BTreeMap::new(), &[view]).is_empty() {
                        ledger.apply(&job_fact(index, &jobs[index], JobStatus::Running, at, None));
                        fates[index] = Fate::Running { started: at };
                        let done = at + jobs[index].duration;
                        if done <= t {
                            queue.push(std::cmp::Reverse((done, 1, index)));
                        } else {
                            ending.entry(done).or_default().push(index);
                        }
                    } else {
                        fates[index] = Fate::Cancelled;
                    }
                }
                _ => {}
            }
        }
        if t >= end {
            break;
        }
        // The tick: each budget's action, then what it does to the running jobs.
        let lines = budget_lines(&book, &[&ledger], t);
        let mut figures = BTreeMap::new();
        for line in &lines {
            let now = line.action;
            let before = acting.get(&line.name).copied();
            if now > before
                && let Some(action) = now
            {
                actions.push((t, line.name.clone(), action));
            }
            match now {
                Some(action) => acting.insert(line.name.clone(), action),
                None => acting.remove(&line.name),
            };
            let (_, period_end) = BudgetPeriod::Day.bounds(t);
            figures.insert(
                line.name.clone(),
                ShedFigures {
                    spend_usd: line.period_spend_usd,
                    hours_left: Decimal::from(period_end - t) / Decimal::from(HOUR),
                },
            );
        }
        let ids: Vec<String> = (0..jobs.len()).map(|i| i.to_string()).collect();
        let running: Vec<JobView<'_>> = fates
            .iter()
            .enumerate()
            .filter(|(_, fate)| matches!(fate, Fate::Running { .. }))
            .map(|(index, _)| JobView {
                job_id: &ids[index],
                facets: facets(index),
                stage: JobStage::Running,
                burn_usd_per_hour: burn(&jobs[index]),
            })
            .collect();
        let pending: std::collections::BTreeSet<usize> =
            stopping.values().flatten().copied().collect();
        for step in book.plan(&acting, &figures, &running) {
            if let Step::Terminate { job_id, .. } = step
                && let Ok(index) = job_id.parse::<usize>()
                && !pending.contains(&index)
            {
                stopping.entry(t + stop_delay).or_default().push(index);
            }
        }
        t += tick;
    }
    // The day is over: what still runs is billed to its last second.
    let spend_at_end = ledger.all_scope_spend(end - 1);
    let teams = TEAMS
        .iter()
        .enumerate()
        .map(|(team, name)| {
            let spend = spend_at_end
                .get(&crate::core::scope::Scope::Tag(
                    "team".into(),
                    (*name).into(),
                ))
                .map_or(Decimal::ZERO, |s| s.period_spend_usd);
            let count = |fate: fn(&Fate) -> bool| {
                jobs.iter()
                    .zip(&fates)
                    .filter(|(job, f)| job.team == team && fate(f))
                    .count() as u64
            };
            TeamOutcome {
                team: name,
                spend_usd: spend.round_dp(2),
                overshoot_usd: (spend - Decimal::from(TEAM_BUDGET_USD))
                    .max(Decimal::ZERO)
                    .round_dp(2),
                jobs: count(|_| true),
                completed: count(|f| *f == Fate::Completed),
                cancelled: count(|f| *f == Fate::Cancelled),
                terminated: count(|f| *f == Fate::Terminated),
                running_at_end: count(|f| matches!(f, Fate::Running { .. })),
            }
        })
        .collect();
    GuardOutcome {
        guard: guard.name(),
        teams,
        actions,
    }
}
