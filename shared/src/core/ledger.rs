//! The fold: facts → per-task billing → per-scope running sums.
//!
//! **Order independence.** Every field of a job or task is merged with a join: timestamps
//! that only ever get known (`pullStartedAt`, attempt starts) take the minimum, stops the
//! maximum ("latest known stop"), and everything else is last-writer-wins under a *rank*
//! that comes from the event itself — for ECS the task `version`, for Batch (terminal?,
//! attempts so far, status order) — then the envelope time, then a hash of the event id,
//! then the value itself. Joins are commutative, associative and idempotent, so the ledger
//! is a pure function of the *set* of facts applied: any order, any number of duplicates.
//!
//! **Units.** A billing unit is one Batch attempt (linked to its ECS task by task ARN, every
//! retry billed) or one ECS task that no attempt names yet ("unattributed"). Each unit's
//! billing is recomputed from the merged state whenever a fact touches it, and the
//! *difference* from its previous contribution is applied to the running sums of each scope
//! it belongs to. The sums therefore always equal the sum over the current units.
//!
//! **Running sums.** Per scope: closed cost (all time and per budget period), and for running
//! units Σ rate and Σ rate × anchor, bucketed by the period the unit started in. Spend at a
//! whole second `at` is then `closed + Σ rate × (at − anchor)`, plus a correction for units
//! started less than 60 s before `at` (the one-minute minimum), found by a range query: the
//! answer costs O(log n + units started in the last minute), not O(running units). It holds
//! for `at` at or after the ledger's *horizon* (the latest start or stop it knows); earlier
//! instants are answered by walking every unit ([`Ledger::walk`]).

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use super::billing::{self, Accrued, Billing};
use super::budget::BudgetPeriod;
use super::facts::{
    Architecture, Capacity, Fact, FactBody, InstanceObserved, InstanceSize, JobObserved, JobStatus,
    Millis, Platform, TaskObserved, TaskSize,
};
use super::names;
use super::prices::{EC2_SHARE_CPU_WEIGHT, EC2_SHARE_MEMORY_WEIGHT, PriceTable, Unpriced};
use super::scope::{Scope, ScopeSpend};
use super::sums::{Accounting, ScopeTotals, Sign, UnitBilling};

/// Decimal places of an EC2 share's hourly rate (a trillionth of a dollar per hour).
pub const SHARE_RATE_DECIMAL_PLACES: u32 = 12;

/// Queue name given to tasks that no Batch event has named yet.
pub const UNATTRIBUTED: &str = "(unattributed)";
/// Compute environment name when neither the ECS cluster nor the task ARN tells it.
pub const UNKNOWN: &str = "(unknown)";

/// Orders observations of the same job or task. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Rank {
    major: u64,
    observed_at: i64,
    id_hash: u64,
}

impl Rank {
    fn new(major: u64, fact: &Fact) -> Self {
        // DefaultHasher::new() has fixed keys: the same id hashes the same within a build,
        // which is all the in-memory fold needs (ranks are never persisted).
        let mut hasher = DefaultHasher::new();
        fact.event_id.hash(&mut hasher);
        Self {
            major,
            observed_at: fact.observed_at.map_or(i64::MIN, |m| m.0),
            id_hash: hasher.finish(),
        }
    }
}

/// A last-writer-wins register: the value offered with the greatest (rank, value) is kept.
#[derive(Clone, Debug)]
struct Lww<T> {
    slot: Option<(Rank, T)>,
}

impl<T> Default for Lww<T> {
    fn default() -> Self {
        Self { slot: None }
    }
}

impl<T: Ord> Lww<T> {
    fn offer(&mut self, rank: Rank, value: Option<T>) {
        let Some(value) = value else { return };
        let keep =
            matches!(&self.slot, Some((held_rank, held)) if (held_rank, held) >= (&rank, &value));
        if !keep {
            self.slot = Some((rank, value));
        }
    }

    /// As [`Lww::offer`], cloning the value only when it wins.
    fn offer_ref(&mut self, rank: Rank, value: Option<&T>)
    where
        T: Clone,
    {
        let Some(value) = value else { return };
        let keep =
            matches!(&self.slot, Some((held_rank, held)) if (held_rank, held) >= (&rank, value));
        if !keep {
            self.slot = Some((rank, value.clone()));
        }
    }

    /// As [`Lww::offer`], building the value only when its rank does not already lose.
    fn offer_with(&mut self, rank: Rank, make: impl FnOnce() -> T) {
        if matches!(&self.slot, Some((held_rank, _)) if *held_rank > rank) {
            return;
        }
        self.offer(rank, Some(make()));
    }

    fn get(&self) -> Option<&T> {
        self.slot.as_ref().map(|(_, value)| value)
    }
}

/// Joins for instants that only ever get known: the earliest start, the latest stop.
pub(super) fn join_min(slot: &mut Option<Millis>, value: Option<Millis>) {
    if let Some(value) = value {
        *slot = Some(slot.map_or(value, |held| held.min(value)));
    }
}

pub(super) fn join_max(slot: &mut Option<Millis>, value: Option<Millis>) {
    if let Some(value) = value {
        *slot = Some(slot.map_or(value, |held| held.max(value)));
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct JobHead {
    status: JobStatus,
    queue: String,
    job_definition: String,
    job_name: String,
    status_reason: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct AttemptState {
    task_arn: Lww<String>,
    started_at: Option<Millis>,
    stopped_at: Option<Millis>,
    exit_code: Lww<i64>,
    container_instance_arn: Lww<String>,
}

#[derive(Clone, Debug)]
struct JobState {
    job_id: String,
    head: Lww<JobHead>,
    created_at: Option<Millis>,
    platform: Lww<Platform>,
    size: Lww<TaskSize>,
    architecture: Lww<Architecture>,
    /// Sorted by key (a `BTreeMap`'s first node alone is half a kilobyte).
    tags: Lww<Vec<(String, String)>>,
    array_size: Lww<u32>,
    node_index: Lww<u32>,
    region: Lww<String>,
    /// By attempt index, sorted; a job has a handful, so a vector beats a tree (whose first
    /// node alone is over a kilobyte).
    attempts: Vec<(u32, AttemptState)>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TaskHead {
    last_status: String,
    stop_code: Option<String>,
}

#[derive(Clone, Debug)]
struct TaskState {
    task_arn: String,
    head: Lww<TaskHead>,
    compute_environment: Lww<String>,
    family: Lww<String>,
    platform: Lww<Platform>,
    capacity: Lww<Capacity>,
    size: Lww<TaskSize>,
    architecture: Lww<Architecture>,
    availability_zone: Lww<String>,
    region: Lww<String>,
    pull_started_at: Option<Millis>,
    pull_stopped_at: Option<Millis>,
    started_at: Option<Millis>,
    stopped_at: Option<Millis>,
    container_instance_arn: Lww<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InstanceHead {
    status: String,
}

/// An EC2 container instance of a Batch compute environment.
#[derive(Clone, Debug)]
struct InstanceState {
    arn: String,
    head: Lww<InstanceHead>,
    ec2_instance_id: Lww<String>,
    compute_environment: Lww<String>,
    instance_type: Lww<String>,
    availability_zone: Lww<String>,
    registered: Lww<InstanceSize>,
    region: Lww<String>,
    registered_at: Option<Millis>,
    /// The earliest `updatedAt` seen: the start when no event carries `registeredAt`.
    first_seen: Option<Millis>,
    /// The earliest time an event saw it deregistering or gone.
    gone_at: Option<Millis>,
}

/// A unit that runs on an EC2 instance: its share depends on the instance's facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Placed {
    Task(u32),
    Attempt { job: u32, attempt: u32 },
}

/// A billing unit: one attempt of a job, one task no attempt names, or one EC2 instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum UnitId {
    Attempt { job: u32, attempt: u32 },
    Unattributed { task: u32 },
    Instance { instance: u32 },
}

type ScopeId = u32;

/// What one unit adds to the scopes it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Contribution {
    scopes: Vec<ScopeId>,
    unit: UnitBilling,
    unpriced: Option<Unpriced>,
    /// The hourly rate the same work would cost on-demand (Spot savings).
    on_demand_rate: Decimal,
    /// The EC2 instance whose price this unit is a share of.
    instance: Option<u32>,
    platform: Platform,
}

/// Running sums for one scope; see the module docs.
#[derive(Clone, Debug, Default)]
struct ScopeSums {
    totals: ScopeTotals,
    /// Running units by anchor, to apply the one-minute minimum to recent starts.
    running_by_anchor: BTreeMap<(i64, UnitId), Decimal>,
}

/// One job's cost at an instant, from [`Ledger::walk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobCost {
    pub job_id: String,
    pub job_name: String,
    pub queue: String,
    pub job_definition: String,
    pub status: Option<JobStatus>,
    pub attempts: usize,
    /// `None` when no unit of the job could be priced (see `unpriced`).
    pub cost_usd: Option<Decimal>,
    pub billed_seconds: i64,
    /// Some figure came from Batch alone (no ECS task event): times, size or capacity.
    pub estimated: bool,
    pub running: bool,
    pub array_parent: bool,
    /// Why (part of) the job has no price.
    pub unpriced: Option<Unpriced>,
    /// Where its (last) attempt ran; `None` before one started.
    pub platform: Option<Platform>,
    /// What the same billed time would have cost on-demand (equal to `cost_usd` unless Spot).
    pub on_demand_usd: Option<Decimal>,
    /// Each billed attempt, by index.
    pub attempt_costs: Vec<AttemptCost>,
}

/// One attempt's part of a job's cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptCost {
    pub index: u32,
    /// `None` when the attempt could not be priced.
    pub cost_usd: Option<Decimal>,
    pub billed_seconds: i64,
}

/// An EC2 instance of a Batch compute environment, its bill and how much of it jobs used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceCost {
    pub container_instance_arn: String,
    pub ec2_instance_id: Option<String>,
    pub compute_environment: String,
    pub instance_type: Option<String>,
    pub availability_zone: Option<String>,
    pub registered: Option<InstanceSize>,
    pub spot: bool,
    pub status: String,
    /// The instance's bill so far (per second, one-minute minimum).
    pub cost_usd: Option<Decimal>,
    /// Σ of the shares of the jobs (and unattributed tasks) placed on it.
    pub attributed_usd: Decimal,
    /// `cost_usd − attributed_usd`: capacity paid for that no task reserved.
    pub idle_usd: Option<Decimal>,
    pub billed_seconds: i64,
    pub running: bool,
    pub estimated: bool,
    pub unpriced: Option<Unpriced>,
}

/// What one ECS task cost inside a window, for reconciliation with the bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskWindowCost {
    pub task_arn: String,
    /// The job whose attempt it is; `None` for a task no Batch event names.
    pub job_id: Option<String>,
    pub queue: String,
    pub platform: Platform,
    pub spot: bool,
    pub region: Option<String>,
    pub architecture: Architecture,
    pub size: TaskSize,
    /// Billed seconds inside the window.
    pub billed_seconds: i64,
    /// `None` when the task could not be priced.
    pub cost_usd: Option<Decimal>,
}

/// An ECS task of a Batch cluster that no Batch event names yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnattributedTask {
    pub task_arn: String,
    pub compute_environment: String,
    pub cost_usd: Option<Decimal>,
    pub billed_seconds: i64,
    pub running: bool,
    pub unpriced: Option<Unpriced>,
}

/// Everything the ledger knows at an instant, computed by walking every unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    pub at: i64,
    pub jobs: Vec<JobCost>,
    pub unattributed: Vec<UnattributedTask>,
    /// EC2 instances, by container instance ARN.
    pub instances: Vec<InstanceCost>,
    pub scopes: BTreeMap<Scope, ScopeSpend>,
    pub running_jobs: u64,
}

/// The spend ledger. See the module docs.
#[derive(Clone, Debug)]
pub struct Ledger {
    state: State,
    period: BudgetPeriod,
    contributions: FxHashMap<UnitId, Contribution>,
    table: ScopeTable,
    horizon: Option<i64>,
    latest_instant: Option<Millis>,
}

/// The merged jobs and tasks, and what billing needs to read them.
#[derive(Clone, Debug)]
struct State {
    prices: PriceTable,
    jobs: Vec<JobState>,
    job_index: FxHashMap<String, u32>,
    tasks: Vec<TaskState>,
    task_index: FxHashMap<String, u32>,
    /// Task ARN → the attempts that name it, as (job id, attempt index). The least claims the
    /// task; any other claimant bills nothing, so a task is never counted twice.
    claims: FxHashMap<String, Vec<(String, u32)>>,
    instances: Vec<InstanceState>,
    instance_index: FxHashMap<String, u32>,
    /// Container instance ARN → the tasks and attempts placed on it.
    placements: FxHashMap<String, Vec<Placed>>,
}

/// Scopes by id, with lookups by borrowed names so interning a known scope allocates nothing.
#[derive(Clone, Debug, Default)]
struct ScopeTable {
    sums: Vec<ScopeSums>,
    names: Vec<Scope>,
    index: FxHashMap<Scope, ScopeId>,
    queues: FxHashMap<String, ScopeId>,
    compute_environments: FxHashMap<String, ScopeId>,
    job_definitions: FxHashMap<String, ScopeId>,
    tags: FxHashMap<String, FxHashMap<String, ScopeId>>,
}

/// A scope named by borrowed strings, as a unit's input states it.
#[derive(Clone, Copy, Debug)]
enum ScopeKey<'a> {
    Total,
    Queue(&'a str),
    ComputeEnvironment(&'a str),
    JobDefinition(&'a str),
    Tag(&'a str, &'a str),
}

impl ScopeTable {
    fn intern(&mut self, key: ScopeKey<'_>) -> ScopeId {
        let known = match key {
            ScopeKey::Total => self.index.get(&Scope::Total).copied(),
            ScopeKey::Queue(name) => self.queues.get(name).copied(),
            ScopeKey::ComputeEnvironment(name) => self.compute_environments.get(name).copied(),
            ScopeKey::JobDefinition(name) => self.job_definitions.get(name).copied(),
            ScopeKey::Tag(k, v) => self.tags.get(k).and_then(|values| values.get(v)).copied(),
        };
        if let Some(id) = known {
            return id;
        }
        let id = index_u32(self.sums.len());
        let scope = match key {
            ScopeKey::Total => Scope::Total,
            ScopeKey::Queue(name) => {
                self.queues.insert(name.to_owned(), id);
                Scope::Queue(name.into())
            }
            ScopeKey::ComputeEnvironment(name) => {
                self.compute_environments.insert(name.to_owned(), id);
                Scope::ComputeEnvironment(name.into())
            }
            ScopeKey::JobDefinition(name) => {
                self.job_definitions.insert(name.to_owned(), id);
                Scope::JobDefinition(name.into())
            }
            ScopeKey::Tag(k, v) => {
                self.tags
                    .entry(k.to_owned())
                    .or_default()
                    .insert(v.to_owned(), id);
                Scope::Tag(k.into(), v.into())
            }
        };
        self.sums.push(ScopeSums::default());
        self.names.push(scope.clone());
        self.index.insert(scope, id);
        id
    }
}

impl Ledger {
    pub fn new(prices: PriceTable, period: BudgetPeriod) -> Self {
        Self {
            state: State {
                prices,
                jobs: Vec::new(),
                job_index: FxHashMap::default(),
                tasks: Vec::new(),
                task_index: FxHashMap::default(),
                claims: FxHashMap::default(),
                instances: Vec::new(),
                instance_index: FxHashMap::default(),
                placements: FxHashMap::default(),
            },
            period,
            contributions: FxHashMap::default(),
            table: ScopeTable::default(),
            horizon: None,
            latest_instant: None,
        }
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

    /// Folds one fact in. Applying the same fact again changes nothing.
    pub fn apply(&mut self, fact: &Fact) {
        if let Some(latest) = fact.latest_instant() {
            self.latest_instant = Some(self.latest_instant.map_or(latest, |held| held.max(latest)));
        }
        let mut touched = match &fact.body {
            FactBody::Job(job) => self.merge_job(fact, job),
            FactBody::Task(task) => self.merge_task(fact, task),
            FactBody::Instance(instance) => self.merge_instance(fact, instance),
            // The audit trail does not change what anything cost.
            FactBody::Enforcement(_) => return,
        };
        touched.sort_unstable();
        touched.dedup();
        for unit in touched {
            self.refresh(unit);
        }
    }

    fn merge_job(&mut self, fact: &Fact, observed: &JobObserved) -> Vec<UnitId> {
        let job_idx = match self.state.job_index.get(&observed.job_id) {
            Some(&idx) => idx,
            None => {
                let idx = index_u32(self.state.jobs.len());
                self.state.jobs.push(JobState {
                    job_id: observed.job_id.clone(),
                    head: Lww::default(),
                    created_at: None,
                    platform: Lww::default(),
                    size: Lww::default(),
                    architecture: Lww::default(),
                    tags: Lww::default(),
                    array_size: Lww::default(),
                    node_index: Lww::default(),
                    region: Lww::default(),
                    attempts: Vec::new(),
                });
                self.state.job_index.insert(observed.job_id.clone(), idx);
                idx
            }
        };
        let attempts_seen = u64::try_from(observed.attempts.len())
            .unwrap_or(u64::MAX)
            .min(0xFFFF_FFFF);
        let major = (u64::from(observed.status.is_terminal()) << 48)
            | (attempts_seen << 8)
            | observed.status as u64;
        let rank = Rank::new(major, fact);

        let mut renamed: Vec<(u32, Option<String>, Option<String>)> = Vec::new();
        let job = &mut self.state.jobs[job_idx as usize];
        job.head.offer_with(rank, || JobHead {
            status: observed.status,
            queue: observed.queue.clone(),
            job_definition: observed.job_definition.clone(),
            job_name: observed.job_name.clone(),
            status_reason: observed.status_reason.clone(),
        });
        join_min(&mut job.created_at, observed.created_at);
        job.platform.offer(rank, observed.platform);
        job.size.offer(rank, observed.size);
        job.architecture.offer(rank, observed.architecture);
        if !observed.tags.is_empty() {
            job.tags.offer_with(rank, || {
                observed
                    .tags
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect()
            });
        }
        job.array_size.offer(rank, observed.array_size);
        job.node_index.offer(rank, observed.node_index);
        job.region.offer_ref(rank, observed.region.as_ref());
        let mut placed: Vec<(String, u32)> = Vec::new();
        for attempt in &observed.attempts {
            if let Some(arn) = &attempt.container_instance_arn {
                placed.push((arn.clone(), attempt.index));
            }
            let state = sorted_entry(&mut job.attempts, attempt.index);
            let before = state.task_arn.get().cloned();
            state.task_arn.offer_ref(rank, attempt.task_arn.as_ref());
            join_min(&mut state.started_at, attempt.started_at);
            join_max(&mut state.stopped_at, attempt.stopped_at);
            state.exit_code.offer(rank, attempt.exit_code);
            state
                .container_instance_arn
                .offer_ref(rank, attempt.container_instance_arn.as_ref());
            let after = state.task_arn.get().cloned();
            if before != after {
                renamed.push((attempt.index, before, after));
            }
        }

        for (arn, attempt) in placed {
            self.state.place(
                arn,
                Placed::Attempt {
                    job: job_idx,
                    attempt,
                },
            );
        }
        let mut touched: Vec<UnitId> = self.state.jobs[job_idx as usize]
            .attempts
            .iter()
            .map(|&(attempt, _)| UnitId::Attempt {
                job: job_idx,
                attempt,
            })
            .collect();
        if renamed.is_empty() {
            return touched;
        }
        let job_id = self.state.jobs[job_idx as usize].job_id.clone();
        for (attempt, before, after) in renamed {
            if let Some(arn) = before {
                if let Some(set) = self.state.claims.get_mut(&arn) {
                    set.retain(|(job, index)| !(*job == job_id && *index == attempt));
                    if set.is_empty() {
                        self.state.claims.remove(&arn);
                    }
                }
                self.state.touch_task_units(&arn, &mut touched);
            }
            if let Some(arn) = after {
                let claimants = self.state.claims.entry(arn.clone()).or_default();
                let claim = (job_id.clone(), attempt);
                if let Err(position) = claimants.binary_search(&claim) {
                    claimants.insert(position, claim);
                }
                self.state.touch_task_units(&arn, &mut touched);
            }
        }
        touched
    }

    fn merge_task(&mut self, fact: &Fact, observed: &TaskObserved) -> Vec<UnitId> {
        let task_idx = match self.state.task_index.get(&observed.task_arn) {
            Some(&idx) => idx,
            None => {
                let idx = index_u32(self.state.tasks.len());
                self.state.tasks.push(TaskState {
                    task_arn: observed.task_arn.clone(),
                    head: Lww::default(),
                    compute_environment: Lww::default(),
                    family: Lww::default(),
                    platform: Lww::default(),
                    capacity: Lww::default(),
                    size: Lww::default(),
                    architecture: Lww::default(),
                    availability_zone: Lww::default(),
                    region: Lww::default(),
                    pull_started_at: None,
                    pull_stopped_at: None,
                    started_at: None,
                    stopped_at: None,
                    container_instance_arn: Lww::default(),
                });
                self.state.task_index.insert(observed.task_arn.clone(), idx);
                idx
            }
        };
        let rank = Rank::new(observed.version, fact);
        let task = &mut self.state.tasks[task_idx as usize];
        task.head.offer_with(rank, || TaskHead {
            last_status: observed.last_status.clone(),
            stop_code: observed.stop_code.clone(),
        });
        task.compute_environment
            .offer_ref(rank, observed.compute_environment.as_ref());
        task.family.offer_ref(rank, observed.family.as_ref());
        task.platform.offer(rank, observed.platform);
        task.capacity.offer(rank, observed.capacity);
        task.size.offer(rank, observed.size);
        task.architecture.offer(rank, observed.architecture);
        task.availability_zone
            .offer_ref(rank, observed.availability_zone.as_ref());
        task.region.offer_ref(rank, observed.region.as_ref());
        join_min(&mut task.pull_started_at, observed.pull_started_at);
        join_max(&mut task.pull_stopped_at, observed.pull_stopped_at);
        join_min(&mut task.started_at, observed.started_at);
        join_max(&mut task.stopped_at, observed.stopped_at);
        task.container_instance_arn
            .offer_ref(rank, observed.container_instance_arn.as_ref());
        if let Some(arn) = &observed.container_instance_arn {
            self.state.place(arn.clone(), Placed::Task(task_idx));
        }

        let mut touched = Vec::with_capacity(2);
        self.state
            .touch_task_units(&observed.task_arn, &mut touched);
        touched
    }

    fn merge_instance(&mut self, fact: &Fact, observed: &InstanceObserved) -> Vec<UnitId> {
        let arn = &observed.container_instance_arn;
        let idx = match self.state.instance_index.get(arn) {
            Some(&idx) => idx,
            None => {
                let idx = index_u32(self.state.instances.len());
                self.state.instances.push(InstanceState {
                    arn: arn.clone(),
                    head: Lww::default(),
                    ec2_instance_id: Lww::default(),
                    compute_environment: Lww::default(),
                    instance_type: Lww::default(),
                    availability_zone: Lww::default(),
                    registered: Lww::default(),
                    region: Lww::default(),
                    registered_at: None,
                    first_seen: None,
                    gone_at: None,
                });
                self.state.instance_index.insert(arn.clone(), idx);
                idx
            }
        };
        let rank = Rank::new(observed.version, fact);
        let instance = &mut self.state.instances[idx as usize];
        instance.head.offer_with(rank, || InstanceHead {
            status: observed.status.clone(),
        });
        instance
            .ec2_instance_id
            .offer_ref(rank, observed.ec2_instance_id.as_ref());
        instance
            .compute_environment
            .offer_ref(rank, observed.compute_environment.as_ref());
        instance
            .instance_type
            .offer_ref(rank, observed.instance_type.as_ref());
        instance
            .availability_zone
            .offer_ref(rank, observed.availability_zone.as_ref());
        instance.registered.offer(rank, observed.registered);
        instance.region.offer_ref(rank, observed.region.as_ref());
        join_min(&mut instance.registered_at, observed.registered_at);
        join_min(
            &mut instance.first_seen,
            observed.updated_at.or(fact.observed_at),
        );
        if observed.is_gone() {
            join_min(
                &mut instance.gone_at,
                observed.updated_at.or(fact.observed_at),
            );
        }
        let mut touched = vec![UnitId::Instance { instance: idx }];
        if let Some(placed) = self.state.placements.get(arn) {
            for &unit in placed {
                match unit {
                    Placed::Attempt { job, attempt } => {
                        touched.push(UnitId::Attempt { job, attempt });
                    }
                    Placed::Task(task) => {
                        let task_arn = &self.state.tasks[task as usize].task_arn;
                        self.state.touch_task_units(task_arn, &mut touched);
                    }
                }
            }
        }
        touched
    }

    /// Recomputes a unit's contribution and applies the difference to the scope sums.
    fn refresh(&mut self, unit: UnitId) {
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
    fn contribution(&mut self, unit: UnitId) -> Option<Contribution> {
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
            Err(reason) => (Billing::NotStarted, Some(reason), Decimal::ZERO, false),
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
                }),
                estimated,
                unpriced: unpriced.is_some(),
            },
            unpriced,
        })
    }

    fn account(&mut self, unit: UnitId, contribution: &Contribution, sign: Sign) {
        // What the contribution adds is the same for every scope: work it out once.
        let accounting = Accounting::of(&contribution.unit, self.period);
        for &scope in &contribution.scopes {
            let sums = &mut self.table.sums[scope as usize];
            sums.totals.account(&accounting, sign);
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

    fn scope_spend_fast(&self, id: ScopeId, at: i64) -> ScopeSpend {
        let sums = &self.table.sums[id as usize];
        let recent = (at - billing::MINIMUM_BILLED_SECONDS + 1, UnitId::MIN)..;
        let recent = sums
            .running_by_anchor
            .range(recent)
            .map(|(&(anchor, _), &rate)| (anchor, rate));
        sums.totals.spend_at(at, self.period, recent)
    }

    /// Every unit and the scopes it counts in (for projections).
    pub fn units(&self) -> impl Iterator<Item = (Vec<Scope>, &UnitBilling)> {
        self.contributions.values().map(|contribution| {
            let scopes = contribution
                .scopes
                .iter()
                .map(|&id| self.table.names[id as usize].clone())
                .collect();
            (scopes, &contribution.unit)
        })
    }

    /// As [`Ledger::units`], without the EC2 instances' own bills.
    pub fn units_without_instances(&self) -> impl Iterator<Item = (Vec<Scope>, &UnitBilling)> {
        self.contributions
            .iter()
            .filter(|(unit, _)| !matches!(unit, UnitId::Instance { .. }))
            .map(|(_, contribution)| {
                let scopes = contribution
                    .scopes
                    .iter()
                    .map(|&id| self.table.names[id as usize].clone())
                    .collect();
                (scopes, &contribution.unit)
            })
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

    /// The job whose attempt the task is billed to, if a Batch event names it.
    pub fn job_of_task(&self, task_arn: &str) -> Option<&str> {
        self.state.owner_of(task_arn).map(|(job, _)| job)
    }

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
            let in_period = contribution
                .unit
                .billing
                .billed_interval(at)
                .map(|(from, to)| to.min(period_end) - from.max(period_start))
                .filter(|&seconds| seconds > 0)
                .map_or(Decimal::ZERO, |seconds| {
                    contribution.unit.billing.hourly_rate() * Decimal::from(seconds)
                });
            for &scope in &contribution.scopes {
                let spend = scopes
                    .entry(self.table.names[scope as usize].clone())
                    .or_default();
                spend.spend_usd += accrued.numerator;
                spend.period_spend_usd += in_period;
                if contribution.unpriced.is_some() {
                    spend.unpriced_tasks += 1;
                }
                if contribution.unit.estimated {
                    spend.estimated_tasks += 1;
                }
                if accrued.running {
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
                cost.idle_usd = Some(bill - cost.attributed_usd);
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

impl State {
    /// The units whose billing depends on the task with this ARN.
    fn touch_task_units(&self, task_arn: &str, touched: &mut Vec<UnitId>) {
        if let Some(&task) = self.task_index.get(task_arn) {
            touched.push(UnitId::Unattributed { task });
        }
        if let Some(claimants) = self.claims.get(task_arn) {
            for (job_id, attempt) in claimants {
                if let Some(&job) = self.job_index.get(job_id) {
                    touched.push(UnitId::Attempt {
                        job,
                        attempt: *attempt,
                    });
                }
            }
        }
    }

    /// Records that a task or attempt runs on a container instance.
    fn place(&mut self, instance_arn: String, unit: Placed) {
        let placed = self.placements.entry(instance_arn).or_default();
        if let Err(position) = placed.binary_search(&unit) {
            placed.insert(position, unit);
        }
    }

    fn owner_of(&self, task_arn: &str) -> Option<(&str, u32)> {
        self.claims
            .get(task_arn)
            .and_then(|set| set.first())
            .map(|(job, attempt)| (job.as_str(), *attempt))
    }

    fn attempt_input(&self, job_idx: u32, attempt_index: u32) -> Option<UnitInput<'_>> {
        let job = &self.jobs[job_idx as usize];
        let attempt = job
            .attempts
            .binary_search_by_key(&attempt_index, |(index, _)| *index)
            .ok()
            .map(|position| &job.attempts[position].1)?;
        let task_arn = attempt.task_arn.get();
        if let Some(arn) = task_arn {
            // Another attempt claims this task first: it is billed there, not twice.
            if self.owner_of(arn) != Some((job.job_id.as_str(), attempt_index)) {
                return None;
            }
        }
        let task = task_arn
            .and_then(|arn| self.task_index.get(arn))
            .map(|&idx| &self.tasks[idx as usize]);
        let head = job.head.get();
        let mut estimated = false;

        let platform = task
            .and_then(|t| t.platform.get())
            .or(job.platform.get())
            .copied()
            // Batch's default platform capability is EC2.
            .unwrap_or(Platform::Ec2);

        // Fargate bills from the image pull; without ECS data, Batch's attempt start
        // (which leaves the pull out) is the best we have.
        let exact_start = task.and_then(|t| t.pull_started_at);
        let start = exact_start
            .or_else(|| task.and_then(|t| t.started_at))
            .or(attempt.started_at);
        estimated |= exact_start.is_none() && start.is_some();
        let exact_stop = task.and_then(|t| t.stopped_at);
        let stop = exact_stop.or(attempt.stopped_at);
        estimated |= exact_stop.is_none() && stop.is_some();

        let task_size = task.and_then(|t| t.size.get()).copied();
        let size = task_size.or(job.size.get().copied());
        // On EC2 the job's requested size is the reservation itself, not an estimate of it.
        estimated |= task_size.is_none() && size.is_some() && platform == Platform::Fargate;
        let architecture = task
            .and_then(|t| t.architecture.get())
            .or(job.architecture.get())
            .copied()
            .unwrap_or(Architecture::X86_64);
        let task_capacity = task.and_then(|t| t.capacity.get()).copied();
        let capacity = task_capacity.unwrap_or(Capacity::OnDemand);
        let region = task
            .and_then(|t| t.region.get())
            .or(job.region.get())
            .map(String::as_str);

        let compute_environment = task
            .and_then(|t| t.compute_environment.get().map(String::as_str))
            .or_else(|| {
                task_arn
                    .and_then(|arn| names::cluster_of_task_arn(arn))
                    .and_then(names::compute_environment_of_cluster)
            })
            .unwrap_or(UNKNOWN);

        let (instance, priced) = if platform == Platform::Ec2 {
            let instance_arn = task
                .and_then(|t| t.container_instance_arn.get())
                .or(attempt.container_instance_arn.get());
            self.ec2_share(instance_arn.map(String::as_str), size.as_ref())
        } else {
            // Batch events do not say Spot or on-demand: assume on-demand, the higher price,
            // so an estimate errs on the side of stopping early.
            estimated |= task_capacity.is_none();
            (
                None,
                self.fargate_price(region, size.as_ref(), architecture, capacity),
            )
        };
        let compute_environment = instance
            .and_then(|i| self.instances[i as usize].compute_environment.get())
            .map_or(compute_environment, String::as_str);
        let mut scopes = vec![
            ScopeKey::Queue(head.map_or(UNKNOWN, |h| h.queue.as_str())),
            ScopeKey::JobDefinition(head.map_or(UNKNOWN, |h| h.job_definition.as_str())),
        ];
        if let Some(tags) = job.tags.get() {
            scopes.extend(
                tags.iter()
                    .map(|(k, v)| ScopeKey::Tag(k.as_str(), v.as_str())),
            );
        }
        // The total and the compute environment count what AWS bills: Fargate tasks and EC2
        // instances. A priced EC2 share is part of its instance's bill, already counted there;
        // an unpriced one is listed so the total shows what it cannot price.
        if platform == Platform::Fargate || priced.is_err() {
            scopes.extend([
                ScopeKey::Total,
                ScopeKey::ComputeEnvironment(compute_environment),
            ]);
        }
        Some(UnitInput {
            scopes,
            timing: Timing { start, stop },
            size,
            estimated: estimated && priced.is_ok(),
            priced,
            instance,
            platform,
        })
    }

    /// A task's share of its EC2 instance's price: the instance's hourly price weighted 9:1
    /// by the task's share of the instance's registered vCPU and memory.
    fn ec2_share(
        &self,
        instance_arn: Option<&str>,
        size: Option<&TaskSize>,
    ) -> (Option<u32>, Result<Priced, Unpriced>) {
        let Some(idx) = instance_arn
            .and_then(|arn| self.instance_index.get(arn))
            .copied()
        else {
            return (None, Err(Unpriced::UnknownInstance));
        };
        let instance = &self.instances[idx as usize];
        let priced = (|| {
            let price = self.instance_price(instance)?;
            let size = size.ok_or(Unpriced::UnknownSize)?;
            let registered = instance.registered.get().ok_or(Unpriced::UnknownInstance)?;
            let share = EC2_SHARE_CPU_WEIGHT * size.vcpu / registered.vcpu
                + EC2_SHARE_MEMORY_WEIGHT * size.memory_gib / registered.memory_gib;
            // Rounded to 10⁻¹² USD/hour: a share of 7.5 GiB is a repeating decimal, and sums
            // of rates stored as fixed point (the DynamoDB projections) must stay exact.
            let round = |rate: Decimal| {
                rate.round_dp_with_strategy(
                    SHARE_RATE_DECIMAL_PLACES,
                    rust_decimal::RoundingStrategy::MidpointNearestEven,
                )
            };
            Ok(Priced {
                rate: round(price.rate * share),
                on_demand_rate: round(price.on_demand_rate * share),
                estimated: price.estimated,
            })
        })();
        (Some(idx), priced)
    }

    fn instance_price(&self, instance: &InstanceState) -> Result<Priced, Unpriced> {
        let region = instance.region.get().ok_or(Unpriced::UnknownRegion)?;
        let instance_type = instance
            .instance_type
            .get()
            .ok_or(Unpriced::UnknownInstanceType)?;
        let spot = instance
            .compute_environment
            .get()
            .is_some_and(|ce| self.prices.is_spot_compute_environment(ce));
        let price = self.prices.ec2(region, instance_type, spot)?;
        Ok(Priced {
            rate: price.hourly,
            on_demand_rate: price.on_demand_hourly,
            estimated: price.estimated,
        })
    }

    fn instance_input(&self, idx: u32) -> UnitInput<'_> {
        let instance = &self.instances[idx as usize];
        let compute_environment = instance
            .compute_environment
            .get()
            .map_or(UNKNOWN, String::as_str);
        UnitInput {
            scopes: vec![
                ScopeKey::Total,
                ScopeKey::ComputeEnvironment(compute_environment),
            ],
            timing: Timing {
                start: instance.registered_at.or(instance.first_seen),
                stop: instance.gone_at,
            },
            size: instance.registered.get().map(|r| TaskSize {
                vcpu: r.vcpu,
                memory_gib: r.memory_gib,
                storage_gib: None,
            }),
            estimated: false,
            priced: self.instance_price(instance),
            instance: Some(idx),
            platform: Platform::Ec2,
        }
    }

    fn unattributed_input(&self, task_idx: u32) -> Option<UnitInput<'_>> {
        let task = &self.tasks[task_idx as usize];
        if self.claims.contains_key(&task.task_arn) {
            return None; // billed through its attempt
        }
        let exact_start = task.pull_started_at;
        let start = exact_start.or(task.started_at);
        let estimated = exact_start.is_none() && start.is_some();
        let size = task.size.get().copied();
        let platform = task.platform.get().copied().unwrap_or(Platform::Fargate);
        let (instance, priced) = if platform == Platform::Ec2 {
            self.ec2_share(
                task.container_instance_arn.get().map(String::as_str),
                size.as_ref(),
            )
        } else {
            (
                None,
                self.fargate_price(
                    task.region.get().map(String::as_str),
                    size.as_ref(),
                    task.architecture
                        .get()
                        .copied()
                        .unwrap_or(Architecture::X86_64),
                    task.capacity.get().copied().unwrap_or(Capacity::OnDemand),
                ),
            )
        };
        let mut scopes = vec![
            ScopeKey::Queue(UNATTRIBUTED),
            ScopeKey::JobDefinition(task.family.get().map_or(UNATTRIBUTED, String::as_str)),
        ];
        if platform == Platform::Fargate || priced.is_err() {
            scopes.extend([
                ScopeKey::Total,
                ScopeKey::ComputeEnvironment(
                    task.compute_environment
                        .get()
                        .map_or(UNKNOWN, String::as_str),
                ),
            ]);
        }
        Some(UnitInput {
            scopes,
            timing: Timing {
                start,
                stop: task.stopped_at,
            },
            size,
            estimated: estimated && priced.is_ok(),
            priced,
            instance,
            platform,
        })
    }

    fn fargate_price(
        &self,
        region: Option<&str>,
        size: Option<&TaskSize>,
        architecture: Architecture,
        capacity: Capacity,
    ) -> Result<Priced, Unpriced> {
        let size = size.ok_or(Unpriced::UnknownSize)?;
        let region = region.ok_or(Unpriced::UnknownRegion)?;
        let rates = self.prices.fargate(region, architecture, capacity)?;
        let on_demand_rate = match capacity {
            Capacity::OnDemand => rates.hourly(size),
            Capacity::Spot => self
                .prices
                .fargate(region, architecture, Capacity::OnDemand)
                .map_or(rates.hourly(size), |on_demand| on_demand.hourly(size)),
        };
        Ok(Priced {
            rate: rates.hourly(size),
            on_demand_rate,
            estimated: false,
        })
    }
}

/// The value under `key` in a vector of pairs sorted by key, inserted as default if absent.
fn sorted_entry<V: Default>(pairs: &mut Vec<(u32, V)>, key: u32) -> &mut V {
    let position = match pairs.binary_search_by_key(&key, |(k, _)| *k) {
        Ok(position) => position,
        Err(position) => {
            pairs.insert(position, (key, V::default()));
            position
        }
    };
    &mut pairs[position].1
}

impl UnitId {
    const MIN: Self = Self::Attempt { job: 0, attempt: 0 };
}

struct Timing {
    start: Option<Millis>,
    stop: Option<Millis>,
}

impl Timing {
    fn billing(&self, hourly_rate: Decimal) -> Billing {
        match (self.start, self.stop) {
            (None, _) => Billing::NotStarted,
            (Some(start), None) => Billing::Running {
                anchor: billing::anchor_seconds(start),
                hourly_rate,
            },
            (Some(start), Some(stop)) => Billing::Closed {
                anchor: billing::anchor_seconds(start),
                stop,
                billed_seconds: billing::billed_seconds_closed(start, stop),
                hourly_rate,
            },
        }
    }
}

struct UnitInput<'a> {
    scopes: Vec<ScopeKey<'a>>,
    timing: Timing,
    size: Option<TaskSize>,
    estimated: bool,
    priced: Result<Priced, Unpriced>,
    instance: Option<u32>,
    platform: Platform,
}

/// A unit's hourly rate, what the same work costs on-demand, and whether the rate is a guess.
struct Priced {
    rate: Decimal,
    on_demand_rate: Decimal,
    estimated: bool,
}

fn index_u32(len: usize) -> u32 {
    // More than 4 billion jobs in one ledger is far beyond what one process can hold.
    u32::try_from(len).unwrap_or(u32::MAX)
}
