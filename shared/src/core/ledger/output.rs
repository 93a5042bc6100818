//! What the ledger answers with: costs per job, attempt, EC2 instance, unattributed task and
//! task-in-a-window, and a whole walk.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::core::facts::{Architecture, InstanceSize, JobStatus, Platform, TaskSize};
use crate::core::prices::Unpriced;
use crate::core::scope::{Scope, ScopeSpend};
use crate::core::split::SplitBasis;

/// Queue name given to tasks that no Batch event has named yet.
pub const UNATTRIBUTED: &str = "(unattributed)";
/// Compute environment name when neither the ECS cluster nor the task ARN tells it.
pub const UNKNOWN: &str = "(unknown)";

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
    /// AWS Batch no longer knew the job when the silent-job check asked: its billing was
    /// closed at the last instant anything said about it.
    pub closed_unknown_to_batch: bool,
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
    /// What its bill is split by (resources and weights); `None` when it is unpriced.
    pub split_basis: Option<SplitBasis>,
    pub spot: bool,
    pub status: String,
    /// The instance's bill so far (per second, one-minute minimum).
    pub cost_usd: Option<Decimal>,
    /// Σ of the shares of the jobs (and unattributed tasks) placed on it.
    pub attributed_usd: Decimal,
    /// `cost_usd − attributed_usd`: capacity paid for that no task reserved (AWS split cost
    /// allocation's unused cost); never negative.
    pub idle_usd: Option<Decimal>,
    /// How far the shares exceed the bill: zero unless events claim more tasks on the instance
    /// than it can hold (`cost_usd + overcommitted_usd = attributed_usd + idle_usd`).
    pub overcommitted_usd: Decimal,
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
