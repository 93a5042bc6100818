//! Runtime monitoring: what happened to jobs rather than what they cost — state transitions
//! stamped at event time, timings (queue wait, image pull, run, total), exit codes and retries,
//! placement (availability zone, instance type), Spot interruptions, and summaries of array and
//! multi-node parents from their children.
//!
//! Built from the set of facts (any order, any number of duplicates give the same result: every
//! field is a minimum, a maximum, or the value of the highest-ranked observation) and a ledger
//! [`Walk`] for the money, so the figures here and the bill never disagree.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use super::facts::{Capacity, Fact, FactBody, JobStatus, Millis, Platform};
use super::ledger::{InstanceCost, JobCost, Ledger, UNKNOWN, Walk, join_max, join_min};
use super::names;

/// ECS `stopCode` of a Fargate Spot task reclaimed by AWS.
pub const SPOT_INTERRUPTION_STOP_CODE: &str = "SpotInterruption";
/// Batch's `statusReason` prefix for an attempt whose EC2 host went away (a Spot reclaim on a
/// Spot compute environment).
pub const HOST_TERMINATED_REASON_PREFIX: &str = "Host EC2";

/// One Batch job state change, stamped with the event's own time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Transition {
    pub at: Millis,
    pub job_id: String,
    pub status: JobStatus,
    /// Attempts already made when the job entered the state (a retry re-enters RUNNABLE with
    /// one more): tells a retry's transitions from the first attempt's.
    pub attempt: u32,
    pub queue: String,
    pub job_definition: String,
    pub compute_environment: String,
}

/// Durations of one job, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobTimings {
    /// First RUNNABLE → first STARTING (or RUNNING when no STARTING was seen), event times.
    pub queue_wait_ms: Option<i64>,
    /// `pullStartedAt` → `pullStoppedAt` of the last attempt's task.
    pub image_pull_ms: Option<i64>,
    /// `startedAt` → `stoppedAt` of the last attempt (Batch's RUNNING interval).
    pub run_ms: Option<i64>,
    /// `createdAt` → the last attempt's `stoppedAt`.
    pub total_ms: Option<i64>,
}

/// Everything monitoring knows of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobActivity {
    pub job_id: String,
    pub job_name: String,
    pub queue: String,
    pub job_definition: String,
    pub compute_environment: String,
    pub status: Option<JobStatus>,
    pub attempts: u32,
    /// Attempts after the first.
    pub retries: u32,
    /// Exit code of the last attempt that reported one.
    pub exit_code: Option<i64>,
    pub status_reason: Option<String>,
    pub timings: JobTimings,
    pub platform: Option<Platform>,
    /// Fargate Spot, or an instance of a Spot compute environment.
    pub spot: bool,
    pub availability_zone: Option<String>,
    pub instance_type: Option<String>,
    pub cost_usd: Option<Decimal>,
    pub on_demand_usd: Option<Decimal>,
    pub interrupted_attempts: u32,
    /// What the interrupted attempts cost.
    pub interrupted_cost_usd: Decimal,
    pub array_parent: bool,
    /// The array parent (`<id>` of `<id>:<n>`) or multi-node job (`<id>` of `<id>#<n>`).
    pub parent: Option<String>,
}

impl JobActivity {
    /// What Spot saved against the on-demand price of the same billed time.
    pub fn spot_savings_usd(&self) -> Decimal {
        match (self.on_demand_usd, self.cost_usd) {
            (Some(on_demand), Some(cost)) => on_demand - cost,
            _ => Decimal::ZERO,
        }
    }
}

/// An attempt ended by a Spot reclaim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interruption {
    pub job_id: String,
    pub queue: String,
    pub compute_environment: String,
    pub availability_zone: Option<String>,
    pub attempt: u32,
    pub at: Option<Millis>,
    /// What the interrupted attempt cost (work that has to be done again).
    pub cost_usd: Option<Decimal>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ParentKind {
    Array,
    MultiNode,
}

/// An array job or multi-node parallel job, summarised from its children (the parent itself
/// is never billed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentSummary {
    pub job_id: String,
    pub kind: ParentKind,
    pub children: u32,
    pub by_status: BTreeMap<JobStatus, u32>,
    pub cost_usd: Decimal,
    pub retries: u32,
}

/// The runtime-monitoring view of a set of facts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    /// In time order.
    pub transitions: Vec<Transition>,
    /// By job id.
    pub jobs: Vec<JobActivity>,
    pub interruptions: Vec<Interruption>,
    pub parents: Vec<ParentSummary>,
    pub instances: Vec<InstanceCost>,
}

/// A dimension to count transitions by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    Queue,
    JobDefinition,
    ComputeEnvironment,
}

/// Nearest-rank percentiles of a set of durations (milliseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Distribution {
    pub count: usize,
    pub p50: i64,
    pub p90: i64,
    pub p99: i64,
    pub max: i64,
}

impl Distribution {
    pub fn of(mut values: Vec<i64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let rank = |p: usize| {
            // Nearest rank: the smallest value with at least p % of values at or below it.
            let index = (p * values.len()).div_ceil(100).max(1) - 1;
            values[index.min(values.len() - 1)]
        };
        Some(Self {
            count: values.len(),
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: values[values.len() - 1],
        })
    }
}

/// Keeps the value of the highest-ranked observation (ties broken by the value itself).
#[derive(Clone, Debug)]
struct Pick<T> {
    held: Option<(Rank, T)>,
}

impl<T> Default for Pick<T> {
    fn default() -> Self {
        Self { held: None }
    }
}

type Rank = (u64, i64, String);

impl<T: Ord + Clone> Pick<T> {
    fn offer(&mut self, rank: &Rank, value: Option<&T>) {
        let Some(value) = value else { return };
        let wins = match &self.held {
            None => true,
            Some((held_rank, held)) => (rank, value) > (held_rank, held),
        };
        if wins {
            self.held = Some((rank.clone(), value.clone()));
        }
    }

    fn get(&self) -> Option<&T> {
        self.held.as_ref().map(|(_, value)| value)
    }
}

#[derive(Default)]
struct AttemptAcc {
    task_arn: Pick<String>,
    instance_arn: Pick<String>,
    started_at: Option<Millis>,
    stopped_at: Option<Millis>,
    exit_code: Pick<i64>,
    status_reason: Pick<String>,
}

#[derive(Default)]
struct JobAcc {
    /// (status, attempts made) → earliest event time.
    transitions: BTreeMap<(JobStatus, u32), Millis>,
    attempts: BTreeMap<u32, AttemptAcc>,
    created_at: Option<Millis>,
    status_reason: Pick<String>,
    node_index: Pick<u32>,
}

#[derive(Default)]
struct TaskAcc {
    pull_started_at: Option<Millis>,
    pull_stopped_at: Option<Millis>,
    stopped_at: Option<Millis>,
    stop_code: Pick<String>,
    availability_zone: Pick<String>,
    capacity: Pick<Capacity>,
    compute_environment: Pick<String>,
}

fn rank(major: u64, fact: &Fact) -> Rank {
    (
        major,
        fact.observed_at.map_or(i64::MIN, |m| m.0),
        fact.event_id.clone(),
    )
}

impl Activity {
    /// The monitoring view of `facts`, with money from `walk` (a walk of a ledger holding the
    /// same facts).
    pub fn build<'a>(facts: impl IntoIterator<Item = &'a Fact>, walk: &Walk) -> Self {
        let mut jobs: BTreeMap<String, JobAcc> = BTreeMap::new();
        let mut tasks: BTreeMap<String, TaskAcc> = BTreeMap::new();
        for fact in facts {
            match &fact.body {
                FactBody::Job(job) => {
                    let attempts_made = u32::try_from(job.attempts.len()).unwrap_or(u32::MAX);
                    let major = (u64::from(job.status.is_terminal()) << 48)
                        | (u64::from(attempts_made) << 8)
                        | job.status as u64;
                    let rank = rank(major, fact);
                    let acc = jobs.entry(job.job_id.clone()).or_default();
                    // The attempt in progress is listed while STARTING/RUNNING: it does not
                    // count as made yet.
                    let made = match job.status {
                        JobStatus::Starting | JobStatus::Running => attempts_made.saturating_sub(1),
                        _ => attempts_made,
                    };
                    if let Some(at) = fact.observed_at.or_else(|| fact.latest_instant()) {
                        let slot = acc.transitions.entry((job.status, made)).or_insert(at);
                        *slot = (*slot).min(at);
                    }
                    join_min(&mut acc.created_at, job.created_at);
                    acc.status_reason.offer(&rank, job.status_reason.as_ref());
                    acc.node_index.offer(&rank, job.node_index.as_ref());
                    for attempt in &job.attempts {
                        let state = acc.attempts.entry(attempt.index).or_default();
                        state.task_arn.offer(&rank, attempt.task_arn.as_ref());
                        state
                            .instance_arn
                            .offer(&rank, attempt.container_instance_arn.as_ref());
                        join_min(&mut state.started_at, attempt.started_at);
                        join_max(&mut state.stopped_at, attempt.stopped_at);
                        state.exit_code.offer(&rank, attempt.exit_code.as_ref());
                        state
                            .status_reason
                            .offer(&rank, attempt.status_reason.as_ref());
                    }
                }
                FactBody::Task(task) => {
                    let rank = rank(task.version, fact);
                    let acc = tasks.entry(task.task_arn.clone()).or_default();
                    join_min(&mut acc.pull_started_at, task.pull_started_at);
                    join_max(&mut acc.pull_stopped_at, task.pull_stopped_at);
                    join_max(&mut acc.stopped_at, task.stopped_at);
                    acc.stop_code.offer(&rank, task.stop_code.as_ref());
                    acc.availability_zone
                        .offer(&rank, task.availability_zone.as_ref());
                    acc.capacity.offer(&rank, task.capacity.as_ref());
                    acc.compute_environment
                        .offer(&rank, task.compute_environment.as_ref());
                }
                FactBody::Instance(_) | FactBody::Enforcement(_) | FactBody::Abandoned(_) => {}
            }
        }

        let instances: BTreeMap<&str, &InstanceCost> = walk
            .instances
            .iter()
            .map(|i| (i.container_instance_arn.as_str(), i))
            .collect();
        let costs: BTreeMap<&str, &JobCost> =
            walk.jobs.iter().map(|j| (j.job_id.as_str(), j)).collect();

        let mut activity = Self {
            instances: walk.instances.clone(),
            ..Self::default()
        };
        for (job_id, acc) in &jobs {
            let cost = costs.get(job_id.as_str()).copied();
            let queue = cost.map_or(UNKNOWN, |c| c.queue.as_str()).to_owned();
            let job_definition = cost
                .map_or(UNKNOWN, |c| c.job_definition.as_str())
                .to_owned();
            let last = acc.attempts.iter().next_back();
            let last_task = last
                .and_then(|(_, a)| a.task_arn.get())
                .and_then(|arn| tasks.get(arn));
            let last_instance = last
                .and_then(|(_, a)| a.instance_arn.get())
                .and_then(|arn| instances.get(arn.as_str()).copied());
            let compute_environment = last_instance
                .map(|i| i.compute_environment.clone())
                .or_else(|| last_task.and_then(|t| t.compute_environment.get().cloned()))
                .or_else(|| {
                    last.and_then(|(_, a)| a.task_arn.get())
                        .and_then(|arn| names::cluster_of_task_arn(arn))
                        .and_then(names::compute_environment_of_cluster)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| UNKNOWN.to_owned());

            for (&(status, attempt), &at) in &acc.transitions {
                activity.transitions.push(Transition {
                    at,
                    job_id: job_id.clone(),
                    status,
                    attempt,
                    queue: queue.clone(),
                    job_definition: job_definition.clone(),
                    compute_environment: compute_environment.clone(),
                });
            }

            let first = |wanted: &[JobStatus]| {
                acc.transitions
                    .iter()
                    .filter(|((status, _), _)| wanted.contains(status))
                    .map(|(_, at)| *at)
                    .min()
            };
            let runnable = first(&[JobStatus::Runnable]);
            let started = first(&[JobStatus::Starting]).or_else(|| first(&[JobStatus::Running]));
            let span = |from: Option<Millis>, to: Option<Millis>| match (from, to) {
                (Some(from), Some(to)) if to >= from => Some(to.0 - from.0),
                _ => None,
            };
            let last_stop = last.and_then(|(_, a)| a.stopped_at);
            let timings = JobTimings {
                queue_wait_ms: span(runnable, started),
                image_pull_ms: last_task.and_then(|t| span(t.pull_started_at, t.pull_stopped_at)),
                run_ms: last.and_then(|(_, a)| span(a.started_at, a.stopped_at)),
                total_ms: span(acc.created_at, last_stop),
            };

            let mut interrupted = 0;
            let mut interrupted_cost = Decimal::ZERO;
            for (&index, attempt) in &acc.attempts {
                let task = attempt.task_arn.get().and_then(|arn| tasks.get(arn));
                let instance = attempt
                    .instance_arn
                    .get()
                    .and_then(|arn| instances.get(arn.as_str()).copied());
                let fargate_spot = task
                    .and_then(|t| t.stop_code.get())
                    .is_some_and(|code| code == SPOT_INTERRUPTION_STOP_CODE);
                let host_reclaimed = instance.is_some_and(|i| i.spot)
                    && attempt
                        .status_reason
                        .get()
                        .is_some_and(|reason| reason.starts_with(HOST_TERMINATED_REASON_PREFIX));
                if !(fargate_spot || host_reclaimed) {
                    continue;
                }
                interrupted += 1;
                let attempt_cost = cost
                    .and_then(|c| c.attempt_costs.iter().find(|a| a.index == index))
                    .and_then(|a| a.cost_usd);
                interrupted_cost += attempt_cost.unwrap_or_default();
                activity.interruptions.push(Interruption {
                    job_id: job_id.clone(),
                    queue: queue.clone(),
                    compute_environment: instance
                        .map(|i| i.compute_environment.clone())
                        .or_else(|| task.and_then(|t| t.compute_environment.get().cloned()))
                        .unwrap_or_else(|| UNKNOWN.to_owned()),
                    availability_zone: instance
                        .and_then(|i| i.availability_zone.clone())
                        .or_else(|| task.and_then(|t| t.availability_zone.get().cloned())),
                    attempt: index,
                    at: task.and_then(|t| t.stopped_at).or(attempt.stopped_at),
                    cost_usd: attempt_cost,
                });
            }

            let attempts = u32::try_from(acc.attempts.len()).unwrap_or(u32::MAX);
            activity.jobs.push(JobActivity {
                job_id: job_id.clone(),
                job_name: cost.map(|c| c.job_name.clone()).unwrap_or_default(),
                queue,
                job_definition,
                compute_environment,
                status: cost.and_then(|c| c.status),
                attempts,
                retries: attempts.saturating_sub(1),
                exit_code: acc
                    .attempts
                    .values()
                    .rev()
                    .find_map(|a| a.exit_code.get().copied()),
                status_reason: acc.status_reason.get().cloned(),
                timings,
                platform: cost.and_then(|c| c.platform),
                spot: last_instance.is_some_and(|i| i.spot)
                    || last_task.and_then(|t| t.capacity.get()) == Some(&Capacity::Spot),
                availability_zone: last_instance
                    .and_then(|i| i.availability_zone.clone())
                    .or_else(|| last_task.and_then(|t| t.availability_zone.get().cloned())),
                instance_type: last_instance.and_then(|i| i.instance_type.clone()),
                cost_usd: cost.and_then(|c| c.cost_usd),
                on_demand_usd: cost.and_then(|c| c.on_demand_usd),
                interrupted_attempts: interrupted,
                interrupted_cost_usd: interrupted_cost,
                array_parent: cost.is_some_and(|c| c.array_parent),
                parent: parent_of(job_id).map(|(parent, _)| parent.to_owned()),
            });
        }
        activity.transitions.sort();

        let mut parents: BTreeMap<(String, ParentKind), ParentSummary> = BTreeMap::new();
        for job in &activity.jobs {
            let Some((parent, kind)) = parent_of(&job.job_id) else {
                continue;
            };
            let summary =
                parents
                    .entry((parent.to_owned(), kind))
                    .or_insert_with(|| ParentSummary {
                        job_id: parent.to_owned(),
                        kind,
                        children: 0,
                        by_status: BTreeMap::new(),
                        cost_usd: Decimal::ZERO,
                        retries: 0,
                    });
            summary.children += 1;
            if let Some(status) = job.status {
                *summary.by_status.entry(status).or_default() += 1;
            }
            summary.cost_usd += job.cost_usd.unwrap_or_default();
            summary.retries += job.retries;
        }
        activity.parents = parents.into_values().collect();
        activity
    }

    /// Transitions counted by a dimension and the state entered.
    pub fn transition_counts(&self, by: By) -> BTreeMap<(String, JobStatus), u64> {
        let mut counts = BTreeMap::new();
        for transition in &self.transitions {
            let key = match by {
                By::Queue => &transition.queue,
                By::JobDefinition => &transition.job_definition,
                By::ComputeEnvironment => &transition.compute_environment,
            };
            *counts.entry((key.clone(), transition.status)).or_default() += 1;
        }
        counts
    }

    /// Exit codes of finished jobs, counted.
    pub fn exit_codes(&self) -> BTreeMap<i64, u64> {
        let mut counts = BTreeMap::new();
        for job in &self.jobs {
            if let (Some(code), Some(true)) =
                (job.exit_code, job.status.map(JobStatus::is_terminal))
            {
                *counts.entry(code).or_default() += 1;
            }
        }
        counts
    }

    /// A timing's distribution over the jobs that have it.
    pub fn distribution(&self, timing: fn(&JobTimings) -> Option<i64>) -> Option<Distribution> {
        Distribution::of(
            self.jobs
                .iter()
                .filter_map(|j| timing(&j.timings))
                .collect(),
        )
    }

    /// Jobs placed per (availability zone, instance type) — instance type `fargate` for Fargate.
    pub fn placements(&self) -> BTreeMap<(String, String), u64> {
        let mut counts = BTreeMap::new();
        for job in self.jobs.iter().filter(|j| j.attempts > 0) {
            let zone = job
                .availability_zone
                .clone()
                .unwrap_or_else(|| UNKNOWN.into());
            let kind = match (job.platform, &job.instance_type) {
                (Some(Platform::Fargate), _) => "fargate".to_owned(),
                (_, Some(instance_type)) => instance_type.clone(),
                _ => UNKNOWN.to_owned(),
            };
            *counts.entry((zone, kind)).or_default() += 1;
        }
        counts
    }

    /// Spot savings over all jobs: on-demand price of the same billed time − the price paid.
    pub fn spot_savings_usd(&self) -> Decimal {
        self.jobs.iter().map(JobActivity::spot_savings_usd).sum()
    }

    /// Idle EC2 capacity per compute environment (instances' bill − the jobs' shares).
    pub fn idle_by_compute_environment(&self) -> BTreeMap<String, Decimal> {
        let mut idle = BTreeMap::new();
        for instance in &self.instances {
            *idle
                .entry(instance.compute_environment.clone())
                .or_insert(Decimal::ZERO) += instance.idle_usd.unwrap_or_default();
        }
        idle
    }

    /// Interruptions counted per (queue, availability zone).
    pub fn interruption_counts(&self) -> BTreeMap<(String, String), u64> {
        let mut counts = BTreeMap::new();
        for interruption in &self.interruptions {
            let zone = interruption
                .availability_zone
                .clone()
                .unwrap_or_else(|| UNKNOWN.into());
            *counts
                .entry((interruption.queue.clone(), zone))
                .or_default() += 1;
        }
        counts
    }

    /// The distinct availability zones and instance types EC2 instances ran in.
    pub fn instance_types(&self) -> BTreeSet<String> {
        self.instances
            .iter()
            .filter_map(|i| i.instance_type.clone())
            .collect()
    }
}

/// A job whose cost is settled (see [`Ledger::settled_job`]) and what monitoring knows of it:
/// what the collector reports when a job ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettledJob {
    pub cost: JobCost,
    pub activity: JobActivity,
}

impl SettledJob {
    /// `job_id`'s figures if it is settled in `ledger`, which holds exactly `facts`.
    pub fn of<'a>(
        ledger: &Ledger,
        facts: impl IntoIterator<Item = &'a Fact>,
        job_id: &str,
    ) -> Option<Self> {
        let (cost, walk) = ledger.settled_job_and_walk(job_id)?;
        let activity = Activity::build(facts, &walk)
            .jobs
            .into_iter()
            .find(|job| job.job_id == job_id)?;
        Some(Self { cost, activity })
    }
}

/// `(parent, kind)` of an array child `<id>:<n>` or a multi-node node `<id>#<n>`.
pub fn parent_of(job_id: &str) -> Option<(&str, ParentKind)> {
    let numeric = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if let Some((parent, index)) = job_id.rsplit_once(':')
        && numeric(index)
    {
        return Some((parent, ParentKind::Array));
    }
    if let Some((parent, index)) = job_id.rsplit_once('#')
        && numeric(index)
    {
        return Some((parent, ParentKind::MultiNode));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Distribution::of((1..=100).collect()).unwrap_or_default();
        assert_eq!(
            (d.count, d.p50, d.p90, d.p99, d.max),
            (100, 50, 90, 99, 100)
        );
        let one = Distribution::of(vec![7]).unwrap_or_default();
        assert_eq!((one.p50, one.p99, one.max), (7, 7, 7));
        assert_eq!(Distribution::of(Vec::new()), None);
    }

    #[test]
    fn parents_of_array_children_and_nodes() {
        assert_eq!(parent_of("abc:3"), Some(("abc", ParentKind::Array)));
        assert_eq!(parent_of("abc#0"), Some(("abc", ParentKind::MultiNode)));
        assert_eq!(parent_of("abc"), None);
        assert_eq!(parent_of("a:b"), None);
    }
}
