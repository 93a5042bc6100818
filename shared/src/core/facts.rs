//! Facts: what one Batch or ECS event told us, normalised and versioned.
//!
//! A fact keeps only what billing and monitoring need (sizes, times, attribution), not the
//! raw event: raw Batch events carry environment variables and commands (secrets leak there)
//! and can be hundreds of KiB, while a fact is a few hundred bytes. See
//! `docs/adr/0001-event-log-stores-normalised-facts.md`.
//!
//! Facts are persisted by the event log under a `type` tag that carries the schema version
//! (`JobObserved.v1`): a field added later must be `#[serde(default)]` so old facts still
//! load, and a change of meaning gets a new tag.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A point in time as milliseconds since the Unix epoch (UTC).
///
/// Batch reports epoch milliseconds, ECS ISO-8601 with millisecond precision, so milliseconds
/// lose nothing either service says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    pub const MILLIS_PER_SECOND: i64 = 1_000;

    /// Whole seconds, rounded down (towards minus infinity).
    pub fn floor_seconds(self) -> i64 {
        self.0.div_euclid(Self::MILLIS_PER_SECOND)
    }

    /// Whole seconds, rounded up (towards plus infinity).
    pub fn ceil_seconds(self) -> i64 {
        -(-self.0).div_euclid(Self::MILLIS_PER_SECOND)
    }

    pub fn from_seconds(seconds: i64) -> Self {
        Self(seconds.saturating_mul(Self::MILLIS_PER_SECOND))
    }

    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        Self(at.timestamp_millis())
    }

    /// `None` only for instants chrono cannot represent (beyond ±262,000 years).
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        Utc.timestamp_millis_opt(self.0).single()
    }
}

/// The billing-relevant CPU architecture of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    X86_64,
    Arm64,
}

impl Architecture {
    /// Accepts both spellings AWS uses: Batch `runtimePlatform.cpuArchitecture` (`X86_64`,
    /// `ARM64`) and the ECS task attribute `ecs.cpu-architecture` (`x86_64`, `arm64`).
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("x86_64") {
            Some(Self::X86_64)
        } else if text.eq_ignore_ascii_case("arm64") {
            Some(Self::Arm64)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }
}

/// Fargate capacity: on-demand (`FARGATE`) or Spot (`FARGATE_SPOT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capacity {
    OnDemand,
    Spot,
}

impl Capacity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnDemand => "on_demand",
            Self::Spot => "spot",
        }
    }
}

/// Where a job or task runs, which decides how it is billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Fargate,
    Ec2,
    /// AWS Batch on Amazon EKS: a pod on an EC2 node of the cluster (no ECS events).
    Eks,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fargate => "fargate",
            Self::Ec2 => "ec2",
            Self::Eks => "eks",
        }
    }
}

/// The operating system family a task runs (Batch `runtimePlatform.operatingSystemFamily`, ECS
/// `platformFamily`): Windows on Fargate is billed differently from Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatingSystem {
    Linux,
    Windows,
}

impl OperatingSystem {
    /// `LINUX`, `WINDOWS_SERVER_2019_CORE`, `Windows Server 2022 Full`, …: the family.
    pub fn parse(text: &str) -> Option<Self> {
        let lower = text.to_ascii_lowercase();
        if lower.contains("windows") {
            Some(Self::Windows)
        } else if lower.contains("linux") {
            Some(Self::Linux)
        } else {
            None
        }
    }
}

/// The AWS Batch job states, in their lifecycle order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Submitted,
    Pending,
    Runnable,
    Starting,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    /// Every status, in the order a job moves through them.
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Submitted,
        JobStatus::Pending,
        JobStatus::Runnable,
        JobStatus::Starting,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "SUBMITTED" => Self::Submitted,
            "PENDING" => Self::Pending,
            "RUNNABLE" => Self::Runnable,
            "STARTING" => Self::Starting,
            "RUNNING" => Self::Running,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "SUBMITTED",
            Self::Pending => "PENDING",
            Self::Runnable => "RUNNABLE",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }

    /// SUCCEEDED and FAILED are final: a job never leaves them.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// The shortest attempt timeout AWS Batch accepts, in seconds
/// (<https://docs.aws.amazon.com/batch/latest/APIReference/API_JobTimeout.html>).
pub const MIN_TIMEOUT_SECONDS: u32 = 60;
/// The longest: the API's `Integer`.
pub const MAX_TIMEOUT_SECONDS: u32 = i32::MAX as u32;

/// A task size as billed by Fargate: vCPU and memory in GiB, ephemeral storage in GiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskSize {
    pub vcpu: Decimal,
    pub memory_gib: Decimal,
    /// `None` means the Fargate default (20 GiB, free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_gib: Option<u32>,
    /// GPUs reserved (Batch `resourceRequirements` of type `GPU`; EC2 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
}

/// One attempt of a Batch job, as listed in `detail.attempts[]` (or the attempt in progress).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttemptObserved {
    /// Position in `attempts[]`: Batch only ever appends, so the index names the attempt.
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The EC2 container instance the attempt ran on (EC2 compute environments only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    /// Why the attempt stopped (`statusReason` of the attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
}

/// What one *Batch Job State Change* event said about one job.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobObserved {
    pub job_id: String,
    #[serde(default)]
    pub job_name: String,
    /// Job queue name (the last segment of the queue ARN).
    pub queue: String,
    /// Job definition name, without its revision.
    pub job_definition: String,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Millis>,
    /// Attempts, finished ones from `attempts[]` and the one in progress.
    #[serde(default)]
    pub attempts: Vec<AttemptObserved>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Summed over the job's containers; `None` when the event named no size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<TaskSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    /// Windows or Linux, when the job says (`runtimePlatform.operatingSystemFamily`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system: Option<OperatingSystem>,
    /// User tags (the `resourceArn` pseudo-tag EventBridge adds is left out).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// `Some(size)` for an array parent, which is never billed itself (its children are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_size: Option<u32>,
    /// `timeout.attemptDurationSeconds`: Batch terminates an attempt this long after its
    /// `startedAt` (an array's children each, a multi-node job as a whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Multi-node parallel node index (`<id>#<n>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// What one *ECS Task State Change* event said about one task.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskObserved {
    pub task_arn: String,
    /// Batch compute environment, from the cluster name `AWSBatch-<ce>-<uuid>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_environment: Option<String>,
    /// Task definition family (`group` is `family:<name>`), which Batch names after the job
    /// definition: the attribution of last resort when no Batch event names the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// ECS `version`: grows with every change of the task.
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub last_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<TaskSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    /// Windows or Linux, when the task says (`platformFamily`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system: Option<OperatingSystem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The EC2 container instance the task was placed on (EC2 launch type only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
}

/// What one *ECS Container Instance State Change* event said about one EC2 instance of a
/// Batch compute environment: the instance registry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstanceObserved {
    pub container_instance_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_instance_id: Option<String>,
    /// From the cluster name `AWSBatch-<ce>-<uuid>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_environment: Option<String>,
    /// ECS attribute `ecs.instance-type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// ECS attribute `ecs.availability-zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    /// Registered CPU (CPU units / 1024) and memory (MiB / 1024): what tasks can reserve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<InstanceSize>,
    /// `ACTIVE`, `DRAINING`, `DEREGISTERING`, `INACTIVE`, …
    #[serde(default)]
    pub status: String,
    /// ECS `version`: grows with every change of the instance.
    #[serde(default)]
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<Millis>,
    /// `updatedAt` of this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl InstanceObserved {
    /// The instance left the cluster (its capacity is no longer paid for) by this event.
    pub fn is_gone(&self) -> bool {
        matches!(
            self.status.as_str(),
            "INACTIVE" | "DEREGISTERING" | "REGISTRATION_FAILED"
        )
    }
}

/// What an EC2 container instance offers to tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceSize {
    pub vcpu: Decimal,
    pub memory_gib: Decimal,
}

/// A normalised event. `observed_at` is the EventBridge envelope `time` (second precision),
/// used only to order otherwise equal observations; `event_id` breaks the last ties so the
/// fold never depends on arrival order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fact {
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<Millis>,
    #[serde(flatten)]
    pub body: FactBody,
}

/// The kinds of fact, persisted under a stable, versioned `type` tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FactBody {
    #[serde(rename = "JobObserved.v1")]
    Job(JobObserved),
    #[serde(rename = "TaskObserved.v1")]
    Task(TaskObserved),
    #[serde(rename = "InstanceObserved.v1")]
    Instance(InstanceObserved),
    /// What the enforcer did (or, in a dry run, would have done): the audit trail.
    #[serde(rename = "EnforcementRecorded.v1")]
    Enforcement(EnforcementRecorded),
    /// Written by the silent-job check, not observed: AWS Batch no longer knows a job the
    /// projections still show running.
    #[serde(rename = "JobAbandoned.v1")]
    Abandoned(JobAbandoned),
}

/// A job still running in the projections that AWS Batch no longer knows (`DescribeJobs`
/// leaves it out: its end was never seen and is past Batch's retention). Its billing is closed
/// at the last instant anything said about the job; a stop AWS reports later wins.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobAbandoned {
    pub job_id: String,
    pub reason: String,
    /// When batchguard last heard of the job, AWS Batch's own "still running" answers
    /// included (which are not facts): its attempts end no earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_at: Option<Millis>,
}

impl JobAbandoned {
    /// The fact, with an event id of its own: writing it twice stores it once.
    pub fn into_fact(self) -> Fact {
        Fact {
            event_id: format!(
                "batchguard-abandoned-{}-{}",
                self.job_id,
                self.heard_at.map_or(0, |at| at.0)
            ),
            observed_at: None,
            body: FactBody::Abandoned(self),
        }
    }
}

/// One enforcement action on AWS Batch (or a notification).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum EnforcementAction {
    Notified {
        notice: String,
    },
    /// A queue disabled (`UpdateJobQueue`) for its holder: the stack's own budget (`budget`
    /// absent), or an applied budget draining its own queues.
    QueueDisabled {
        queue: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget: Option<String>,
    },
    /// A queue batchguard had already disabled for another holder, held disabled for this one
    /// too: a restore re-enables a queue only when no holder is left.
    QueueHeld {
        queue: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget: Option<String>,
    },
    /// A queue re-enabled by the restore of its last holder.
    QueueEnabled {
        queue: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget: Option<String>,
    },
    /// A holder's restore that left the queue as it was: another holder still holds it
    /// disabled, or someone else re-enabled or deleted it. This holder holds it no more.
    QueueReleased {
        queue: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget: Option<String>,
    },
    JobCancelled {
        job_id: String,
        queue: String,
    },
    JobTerminated {
        job_id: String,
        queue: String,
    },
    /// A freeze, stop or restore asked for (by an alarm, by hand) that the ledger did not
    /// agree with: nothing was done. `request` is the step asked for.
    Refused {
        request: String,
    },
    /// An applied budget's action carried out for the first time this period (recorded
    /// before anything else it does): when a draining budget began turning jobs away.
    BudgetReached {
        budget: String,
        /// The budget's action (`drain`, …); not `action`, the tag of this enum.
        reached: String,
    },
}

impl EnforcementAction {
    /// The action's name, as in the audit trail and the `EnforcementActions` metric.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Notified { .. } => "Notified",
            Self::QueueDisabled { .. } => "QueueDisabled",
            Self::QueueHeld { .. } => "QueueHeld",
            Self::QueueEnabled { .. } => "QueueEnabled",
            Self::QueueReleased { .. } => "QueueReleased",
            Self::JobCancelled { .. } => "JobCancelled",
            Self::JobTerminated { .. } => "JobTerminated",
            Self::Refused { .. } => "Refused",
            Self::BudgetReached { .. } => "BudgetReached",
        }
    }

    /// What the action was done to.
    pub fn target(&self) -> &str {
        match self {
            Self::Notified { notice } => notice,
            Self::QueueDisabled { queue, .. }
            | Self::QueueHeld { queue, .. }
            | Self::QueueEnabled { queue, .. }
            | Self::QueueReleased { queue, .. } => queue,
            Self::JobCancelled { job_id, .. } | Self::JobTerminated { job_id, .. } => job_id,
            Self::Refused { request } => request,
            Self::BudgetReached { budget, .. } => budget,
        }
    }
}

/// An entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnforcementRecorded {
    #[serde(flatten)]
    pub action: EnforcementAction,
    /// The enforcement level that led to it (`notify`, `freeze`, `stop`, `restore`).
    pub level: String,
    pub reason: String,
    /// Recorded but not carried out.
    pub dry_run: bool,
    /// When it was done (Unix milliseconds).
    pub at: Millis,
    /// Start of the budget period it belongs to (Unix seconds).
    pub period_start: i64,
}

/// The ranges batchguard accepts in an observation. Beyond them no figure means anything, and
/// sums built from them could overflow: the parser rejects an event outside them (naming the
/// field), and the fold leaves such a fact out (a store written before these checks). AWS's
/// largest EC2 instances today have 896 vCPUs and 32 TiB; Fargate's ephemeral storage is at
/// most 200 GiB; AWS Batch started in 2016.
pub mod limits {
    /// vCPUs of a task, job or instance: 0 to this.
    pub const MAX_VCPU: u32 = 4_096;
    /// GiB of memory of a task, job or instance: 0 to this.
    pub const MAX_MEMORY_GIB: u32 = 65_536;
    /// GiB of ephemeral storage: 0 to this.
    pub const MAX_STORAGE_GIB: u32 = 65_536;
    /// GPUs of a job: 0 to this (the largest instances have 8 or 16).
    pub const MAX_GPUS: u32 = 64;
    /// The earliest instant accepted: 2014-01-01T00:00:00Z.
    pub const EARLIEST_MS: i64 = 1_388_534_400_000;
    /// The first instant not accepted: 2100-01-01T00:00:00Z.
    pub const LATEST_MS: i64 = 4_102_444_800_000;
}

/// A value of a fact outside [`limits`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutOfRange {
    /// The event field it came from.
    pub field: &'static str,
    pub value: String,
    /// What is accepted.
    pub allowed: &'static str,
}

fn instant_in_range(field: &'static str, at: Option<Millis>) -> Result<(), OutOfRange> {
    match at {
        Some(Millis(ms)) if !(limits::EARLIEST_MS..limits::LATEST_MS).contains(&ms) => {
            Err(OutOfRange {
                field,
                value: Millis(ms)
                    .to_datetime()
                    .map_or_else(|| ms.to_string(), |t| t.to_rfc3339()),
                allowed: "an instant from 2014 to 2099",
            })
        }
        _ => Ok(()),
    }
}

fn amount_in_range(
    field: &'static str,
    value: Decimal,
    max: u32,
    allowed: &'static str,
) -> Result<(), OutOfRange> {
    if value < Decimal::ZERO || value > Decimal::from(max) {
        Err(OutOfRange {
            field,
            value: value.to_string(),
            allowed,
        })
    } else {
        Ok(())
    }
}

fn size_in_range(size: Option<&TaskSize>) -> Result<(), OutOfRange> {
    let Some(size) = size else { return Ok(()) };
    amount_in_range("vCPU", size.vcpu, limits::MAX_VCPU, "0 to 4096 vCPUs")?;
    amount_in_range(
        "memory",
        size.memory_gib,
        limits::MAX_MEMORY_GIB,
        "0 to 65536 GiB",
    )?;
    if let Some(gpus) = size.gpus.filter(|&gpus| gpus > limits::MAX_GPUS) {
        return Err(OutOfRange {
            field: "resourceRequirements[GPU]",
            value: gpus.to_string(),
            allowed: "0 to 64 GPUs",
        });
    }
    match size.storage_gib {
        Some(gib) if gib > limits::MAX_STORAGE_GIB => Err(OutOfRange {
            field: "ephemeralStorage.sizeInGiB",
            value: gib.to_string(),
            allowed: "0 to 65536 GiB",
        }),
        _ => Ok(()),
    }
}

impl Fact {
    /// Whether every value of the fact is inside [`limits`]; the first one outside if not.
    pub fn check_ranges(&self) -> Result<(), OutOfRange> {
        if matches!(self.body, FactBody::Enforcement(_)) {
            return Ok(()); // written by batchguard itself, not observed
        }
        instant_in_range("time", self.observed_at)?;
        match &self.body {
            FactBody::Job(job) => {
                instant_in_range("createdAt", job.created_at)?;
                for attempt in &job.attempts {
                    instant_in_range("attempts[].startedAt", attempt.started_at)?;
                    instant_in_range("attempts[].stoppedAt", attempt.stopped_at)?;
                }
                size_in_range(job.size.as_ref())
            }
            FactBody::Task(task) => {
                instant_in_range("pullStartedAt", task.pull_started_at)?;
                instant_in_range("pullStoppedAt", task.pull_stopped_at)?;
                instant_in_range("startedAt", task.started_at)?;
                instant_in_range("stoppedAt", task.stopped_at)?;
                size_in_range(task.size.as_ref())
            }
            FactBody::Instance(instance) => {
                instant_in_range("registeredAt", instance.registered_at)?;
                instant_in_range("updatedAt", instance.updated_at)?;
                match &instance.registered {
                    Some(registered) => {
                        amount_in_range(
                            "registeredResources[CPU]",
                            registered.vcpu,
                            limits::MAX_VCPU,
                            "0 to 4096 vCPUs",
                        )?;
                        amount_in_range(
                            "registeredResources[MEMORY]",
                            registered.memory_gib,
                            limits::MAX_MEMORY_GIB,
                            "0 to 65536 GiB",
                        )
                    }
                    None => Ok(()),
                }
            }
            FactBody::Abandoned(abandoned) => instant_in_range("heard_at", abandoned.heard_at),
            FactBody::Enforcement(_) => Ok(()),
        }
    }

    /// The latest instant this fact mentions, used as the default evaluation time.
    pub fn latest_instant(&self) -> Option<Millis> {
        let mut latest = self.observed_at;
        let mut see = |candidate: Option<Millis>| {
            if candidate > latest {
                latest = candidate;
            }
        };
        match &self.body {
            FactBody::Job(job) => {
                see(job.created_at);
                for attempt in &job.attempts {
                    see(attempt.started_at);
                    see(attempt.stopped_at);
                }
            }
            FactBody::Task(task) => {
                see(task.pull_started_at);
                see(task.started_at);
                see(task.stopped_at);
            }
            FactBody::Instance(instance) => {
                see(instance.registered_at);
                see(instance.updated_at);
            }
            // An audit entry or an abandonment is not an observation of a job: neither moves
            // the evaluation time.
            FactBody::Enforcement(_) | FactBody::Abandoned(_) => return None,
        }
        latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_to_seconds_handles_negative_instants() {
        assert_eq!(Millis(1_500).floor_seconds(), 1);
        assert_eq!(Millis(1_500).ceil_seconds(), 2);
        assert_eq!(Millis(2_000).ceil_seconds(), 2);
        assert_eq!(Millis(-1_500).floor_seconds(), -2);
        assert_eq!(Millis(-1_500).ceil_seconds(), -1);
    }

    #[test]
    fn architecture_accepts_batch_and_ecs_spellings() {
        assert_eq!(Architecture::parse("X86_64"), Some(Architecture::X86_64));
        assert_eq!(Architecture::parse("arm64"), Some(Architecture::Arm64));
        assert_eq!(Architecture::parse("ARM64"), Some(Architecture::Arm64));
        assert_eq!(Architecture::parse("riscv"), None);
    }
}
