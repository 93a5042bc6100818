//! The entities the fold merges facts into — jobs and their attempts, ECS tasks, EC2 container
//! instances — each field joined (see `join`), and which billing units a change touches.

use rustc_hash::FxHashMap;

use super::join::{Lww, Rank, join_max, join_min, sorted_entry};
use crate::core::facts::{
    Architecture, Capacity, Fact, InstanceObserved, InstanceSize, JobAbandoned, JobObserved,
    JobStatus, Millis, OperatingSystem, Platform, TaskObserved, TaskSize,
};
use crate::core::prices::PriceTable;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct JobHead {
    pub(super) status: JobStatus,
    pub(super) queue: String,
    pub(super) job_definition: String,
    pub(super) job_name: String,
    pub(super) status_reason: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct AttemptState {
    pub(super) task_arn: Lww<String>,
    pub(super) started_at: Option<Millis>,
    pub(super) stopped_at: Option<Millis>,
    pub(super) exit_code: Lww<i64>,
    pub(super) container_instance_arn: Lww<String>,
}

#[derive(Clone, Debug)]
pub(super) struct JobState {
    pub(super) job_id: String,
    pub(super) head: Lww<JobHead>,
    pub(super) created_at: Option<Millis>,
    pub(super) platform: Lww<Platform>,
    pub(super) size: Lww<TaskSize>,
    pub(super) architecture: Lww<Architecture>,
    pub(super) operating_system: Lww<OperatingSystem>,
    /// Sorted by key (a `BTreeMap`'s first node alone is half a kilobyte).
    pub(super) tags: Lww<Vec<(String, String)>>,
    pub(super) array_size: Lww<u32>,
    pub(super) node_index: Lww<u32>,
    /// Seconds after an attempt's start at which Batch terminates it.
    pub(super) timeout: Lww<u32>,
    pub(super) region: Lww<String>,
    /// By attempt index, sorted; a job has a handful, so a vector beats a tree (whose first
    /// node alone is over a kilobyte).
    pub(super) attempts: Vec<(u32, AttemptState)>,
    /// The latest instant the job's own facts name (their envelope time included), or an
    /// abandonment says it was last heard of (AWS Batch's "still running" answers).
    pub(super) last_seen: Option<Millis>,
    /// AWS Batch no longer knew the job when the silent-job check asked.
    pub(super) abandoned: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct TaskHead {
    pub(super) last_status: String,
    pub(super) stop_code: Option<String>,
}

#[derive(Clone, Debug)]
pub(super) struct TaskState {
    pub(super) task_arn: String,
    pub(super) head: Lww<TaskHead>,
    pub(super) compute_environment: Lww<String>,
    pub(super) family: Lww<String>,
    pub(super) platform: Lww<Platform>,
    pub(super) capacity: Lww<Capacity>,
    pub(super) size: Lww<TaskSize>,
    pub(super) architecture: Lww<Architecture>,
    pub(super) operating_system: Lww<OperatingSystem>,
    pub(super) availability_zone: Lww<String>,
    pub(super) region: Lww<String>,
    pub(super) pull_started_at: Option<Millis>,
    pub(super) pull_stopped_at: Option<Millis>,
    pub(super) started_at: Option<Millis>,
    pub(super) stopped_at: Option<Millis>,
    pub(super) container_instance_arn: Lww<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct InstanceHead {
    pub(super) status: String,
}

/// An EC2 container instance of a Batch compute environment.
#[derive(Clone, Debug)]
pub(super) struct InstanceState {
    pub(super) arn: String,
    pub(super) head: Lww<InstanceHead>,
    pub(super) ec2_instance_id: Lww<String>,
    pub(super) compute_environment: Lww<String>,
    pub(super) instance_type: Lww<String>,
    pub(super) availability_zone: Lww<String>,
    pub(super) registered: Lww<InstanceSize>,
    pub(super) region: Lww<String>,
    pub(super) registered_at: Option<Millis>,
    /// The earliest `updatedAt` seen: the start when no event carries `registeredAt`.
    pub(super) first_seen: Option<Millis>,
    /// The earliest time an event saw it deregistering or gone.
    pub(super) gone_at: Option<Millis>,
}

/// A unit that runs on an EC2 instance: its share depends on the instance's facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Placed {
    Task(u32),
    Attempt { job: u32, attempt: u32 },
}

/// A billing unit: one attempt of a job, one task no attempt names, or one EC2 instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum UnitId {
    Attempt { job: u32, attempt: u32 },
    Unattributed { task: u32 },
    Instance { instance: u32 },
}

/// The merged jobs and tasks, and what billing needs to read them.
#[derive(Clone, Debug)]
pub(super) struct State {
    pub(super) prices: PriceTable,
    pub(super) jobs: Vec<JobState>,
    pub(super) job_index: FxHashMap<String, u32>,
    pub(super) tasks: Vec<TaskState>,
    pub(super) task_index: FxHashMap<String, u32>,
    /// Task ARN → the attempts that name it, as (job id, attempt index). The least claims the
    /// task; any other claimant bills nothing, so a task is never counted twice.
    pub(super) claims: FxHashMap<String, Vec<(String, u32)>>,
    pub(super) instances: Vec<InstanceState>,
    pub(super) instance_index: FxHashMap<String, u32>,
    /// Container instance ARN → the tasks and attempts placed on it.
    pub(super) placements: FxHashMap<String, Vec<Placed>>,
    /// Which job tags are scopes.
    pub(super) tag_scopes: crate::core::scope::TagScopes,
    /// Budgets whose jobs are summed under `Scope::Budget`, or `Scope::PeriodBudget` for a
    /// budget of another period (none: no budget scopes).
    pub(super) budgets: Option<std::sync::Arc<crate::core::budgets::BudgetBook>>,
    /// The period the ledger's scopes are bucketed by; a budget of another is summed under
    /// `Scope::PeriodBudget`.
    pub(super) period: crate::core::budget::BudgetPeriod,
}

impl UnitId {
    /// Orders before every unit (range queries by anchor).
    pub(super) const MIN: Self = Self::Attempt { job: 0, attempt: 0 };
}

impl State {
    pub(super) fn new(prices: PriceTable) -> Self {
        Self {
            prices,
            jobs: Vec::new(),
            job_index: FxHashMap::default(),
            tasks: Vec::new(),
            task_index: FxHashMap::default(),
            claims: FxHashMap::default(),
            instances: Vec::new(),
            instance_index: FxHashMap::default(),
            placements: FxHashMap::default(),
            tag_scopes: crate::core::scope::TagScopes::All,
            budgets: None,
            period: crate::core::budget::BudgetPeriod::default(),
        }
    }

    /// The job's index, a new empty job if it is not known yet.
    fn job_idx(&mut self, job_id: &str) -> u32 {
        match self.job_index.get(job_id) {
            Some(&idx) => idx,
            None => {
                let idx = index_u32(self.jobs.len());
                self.jobs.push(JobState {
                    job_id: job_id.to_owned(),
                    head: Lww::default(),
                    created_at: None,
                    platform: Lww::default(),
                    size: Lww::default(),
                    architecture: Lww::default(),
                    operating_system: Lww::default(),
                    tags: Lww::default(),
                    array_size: Lww::default(),
                    node_index: Lww::default(),
                    timeout: Lww::default(),
                    region: Lww::default(),
                    attempts: Vec::new(),
                    last_seen: None,
                    abandoned: false,
                });
                self.job_index.insert(job_id.to_owned(), idx);
                idx
            }
        }
    }

    /// AWS Batch no longer knows the job: every attempt still open ends at the last instant
    /// anything said about it (unless a stop is known). Returns the units that changed.
    pub(super) fn abandon_job(&mut self, abandoned: &JobAbandoned) -> Vec<UnitId> {
        let job_idx = self.job_idx(&abandoned.job_id);
        let job = &mut self.jobs[job_idx as usize];
        job.abandoned = true;
        join_max(&mut job.last_seen, abandoned.heard_at);
        job.attempts
            .iter()
            .map(|&(attempt, _)| UnitId::Attempt {
                job: job_idx,
                attempt,
            })
            .collect()
    }

    pub(super) fn merge_job(&mut self, fact: &Fact, observed: &JobObserved) -> Vec<UnitId> {
        let job_idx = self.job_idx(&observed.job_id);
        let attempts_seen = u64::try_from(observed.attempts.len())
            .unwrap_or(u64::MAX)
            .min(0xFFFF_FFFF);
        let major = (u64::from(observed.status.is_terminal()) << 48)
            | (attempts_seen << 8)
            | observed.status as u64;
        let rank = Rank::new(major, fact);

        let mut renamed: Vec<(u32, Option<String>, Option<String>)> = Vec::new();
        let job = &mut self.jobs[job_idx as usize];
        job.head.offer_with(rank, || JobHead {
            status: observed.status,
            queue: observed.queue.clone(),
            job_definition: observed.job_definition.clone(),
            job_name: observed.job_name.clone(),
            status_reason: observed.status_reason.clone(),
        });
        join_min(&mut job.created_at, observed.created_at);
        join_max(&mut job.last_seen, fact.latest_instant());
        job.platform.offer(rank, observed.platform);
        job.size.offer(rank, observed.size);
        job.architecture.offer(rank, observed.architecture);
        job.operating_system.offer(rank, observed.operating_system);
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
        job.timeout.offer(rank, observed.timeout_seconds);
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
            self.place(
                arn,
                Placed::Attempt {
                    job: job_idx,
                    attempt,
                },
            );
        }
        let mut touched: Vec<UnitId> = self.jobs[job_idx as usize]
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
        let job_id = self.jobs[job_idx as usize].job_id.clone();
        for (attempt, before, after) in renamed {
            if let Some(arn) = before {
                if let Some(set) = self.claims.get_mut(&arn) {
                    set.retain(|(job, index)| !(*job == job_id && *index == attempt));
                    if set.is_empty() {
                        self.claims.remove(&arn);
                    }
                }
                self.touch_task_units(&arn, &mut touched);
            }
            if let Some(arn) = after {
                let claimants = self.claims.entry(arn.clone()).or_default();
                let claim = (job_id.clone(), attempt);
                if let Err(position) = claimants.binary_search(&claim) {
                    claimants.insert(position, claim);
                }
                self.touch_task_units(&arn, &mut touched);
            }
        }
        touched
    }

    pub(super) fn merge_task(&mut self, fact: &Fact, observed: &TaskObserved) -> Vec<UnitId> {
        let task_idx = match self.task_index.get(&observed.task_arn) {
            Some(&idx) => idx,
            None => {
                let idx = index_u32(self.tasks.len());
                self.tasks.push(TaskState {
                    task_arn: observed.task_arn.clone(),
                    head: Lww::default(),
                    compute_environment: Lww::default(),
                    family: Lww::default(),
                    platform: Lww::default(),
                    capacity: Lww::default(),
                    size: Lww::default(),
                    architecture: Lww::default(),
                    operating_system: Lww::default(),
                    availability_zone: Lww::default(),
                    region: Lww::default(),
                    pull_started_at: None,
                    pull_stopped_at: None,
                    started_at: None,
                    stopped_at: None,
                    container_instance_arn: Lww::default(),
                });
                self.task_index.insert(observed.task_arn.clone(), idx);
                idx
            }
        };
        let rank = Rank::new(observed.version, fact);
        let task = &mut self.tasks[task_idx as usize];
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
        task.operating_system.offer(rank, observed.operating_system);
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
            self.place(arn.clone(), Placed::Task(task_idx));
        }

        let mut touched = Vec::with_capacity(2);
        self.touch_task_units(&observed.task_arn, &mut touched);
        touched
    }

    pub(super) fn merge_instance(
        &mut self,
        fact: &Fact,
        observed: &InstanceObserved,
    ) -> Vec<UnitId> {
        let arn = &observed.container_instance_arn;
        let idx = match self.instance_index.get(arn) {
            Some(&idx) => idx,
            None => {
                let idx = index_u32(self.instances.len());
                self.instances.push(InstanceState {
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
                self.instance_index.insert(arn.clone(), idx);
                idx
            }
        };
        let rank = Rank::new(observed.version, fact);
        let instance = &mut self.instances[idx as usize];
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
        if let Some(placed) = self.placements.get(arn) {
            for &unit in placed {
                match unit {
                    Placed::Attempt { job, attempt } => {
                        touched.push(UnitId::Attempt { job, attempt });
                    }
                    Placed::Task(task) => {
                        let task_arn = &self.tasks[task as usize].task_arn;
                        self.touch_task_units(task_arn, &mut touched);
                    }
                }
            }
        }
        touched
    }

    /// The units whose billing depends on the task with this ARN.
    pub(super) fn touch_task_units(&self, task_arn: &str, touched: &mut Vec<UnitId>) {
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
    pub(super) fn place(&mut self, instance_arn: String, unit: Placed) {
        let placed = self.placements.entry(instance_arn).or_default();
        if let Err(position) = placed.binary_search(&unit) {
            placed.insert(position, unit);
        }
    }

    pub(super) fn owner_of(&self, task_arn: &str) -> Option<(&str, u32)> {
        self.claims
            .get(task_arn)
            .and_then(|set| set.first())
            .map(|(job, attempt)| (job.as_str(), *attempt))
    }
}

pub(super) fn index_u32(len: usize) -> u32 {
    // More than 4 billion jobs in one ledger is far beyond what one process can hold.
    u32::try_from(len).unwrap_or(u32::MAX)
}
