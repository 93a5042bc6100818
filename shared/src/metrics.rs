//! The catalogue of metrics batchguard emits: one place for every name and the dimension sets
//! it is emitted with, so dashboards and alarms can be checked against it (and the handlers'
//! output against them: `tests/tests/deployment.rs`).

/// CloudWatch namespace of every batchguard metric unless configured otherwise
/// (`METRICS_NAMESPACE`; the SAM template gives each stack its own).
pub const NAMESPACE: &str = "batchguard";

/// Dimensions.
pub const DIMENSION_SCOPE_KIND: &str = "ScopeKind";
pub const DIMENSION_SCOPE: &str = "Scope";
pub const DIMENSION_QUEUE: &str = "JobQueue";
pub const DIMENSION_STATUS: &str = "Status";
pub const DIMENSION_LEVEL: &str = "Level";
pub const DIMENSION_ACTION: &str = "Action";
pub const DIMENSION_DRY_RUN: &str = "DryRun";
pub const DIMENSION_JOB_DEFINITION: &str = "JobDefinition";
pub const DIMENSION_COMPUTE_ENVIRONMENT: &str = "ComputeEnvironment";
pub const DIMENSION_AVAILABILITY_ZONE: &str = "AvailabilityZone";

/// The `ScopeKind` and `Scope` of the budget's own document (the scope the budget covers).
pub const BUDGET_SCOPE_KIND: &str = "budget";
pub const BUDGET_SCOPE: &str = "budget";

/// Per scope, from the ticker.
pub const SPEND_USD: &str = "SpendUSD";
pub const PERIOD_SPEND_USD: &str = "PeriodSpendUSD";
pub const BURN_RATE_USD_PER_HOUR: &str = "BurnRateUSDPerHour";
pub const RUNNING_TASKS: &str = "RunningTasks";
pub const RUNNING_VCPU: &str = "RunningVCPU";
pub const RUNNING_MEMORY_GIB: &str = "RunningMemoryGiB";
/// For the budget scope only, from the ticker.
pub const BUDGET_USED_PERCENT: &str = "BudgetUsedPercent";
/// The budget's limit in use (`BUDGET_USD`, or the AWS budget's limit).
pub const BUDGET_LIMIT_USD: &str = "BudgetLimitUSD";
pub const SECONDS_TO_EXHAUSTION: &str = "SecondsToExhaustion";
pub const FORECAST_PERIOD_SPEND_USD: &str = "ForecastPeriodSpendUSD";
/// For the budget scope, with a budget from AWS Budgets: AWS's figure, what the ledger adds
/// after it, and how old AWS's figure is. `PeriodSpendUSD` is then their sum.
pub const BASELINE_SPEND_USD: &str = "BaselineSpendUSD";
pub const LEDGER_AFTER_BASELINE_USD: &str = "LedgerAfterBaselineUSD";
pub const BASELINE_AGE_SECONDS: &str = "BaselineAgeSeconds";

/// From the collector, per Batch job state change.
pub const JOB_STATE_TRANSITIONS: &str = "JobStateTransitions";
/// From the collector, per job whose cost is final (properties: job id, name, definition,
/// compute environment, zone, instance type, exit code, retries, timings).
pub const JOB_COST_USD: &str = "JobCostUSD";
/// From the collector, per settled job: its timings.
pub const QUEUE_WAIT_SECONDS: &str = "QueueWaitSeconds";
pub const IMAGE_PULL_SECONDS: &str = "ImagePullSeconds";
pub const RUN_SECONDS: &str = "RunSeconds";
pub const TOTAL_SECONDS: &str = "TotalSeconds";
/// From the collector, per settled job that ran on Spot: on-demand price − price paid.
pub const SPOT_SAVINGS_USD: &str = "SpotSavingsUSD";
/// From the collector, per settled job with interrupted attempts: what they cost.
pub const INTERRUPTED_ATTEMPTS_COST_USD: &str = "InterruptedAttemptsCostUSD";
/// From the collector, per ECS task stopped by a Spot reclaim.
pub const SPOT_INTERRUPTIONS: &str = "SpotInterruptions";
/// From the collector, per ECS container instance state change (the instance registry).
pub const INSTANCE_STATE_CHANGES: &str = "InstanceStateChanges";
/// From the collector, per event it could not read.
pub const QUARANTINED_EVENTS: &str = "QuarantinedEvents";
/// From the enforcer, per action.
pub const ENFORCEMENT_ACTIONS: &str = "EnforcementActions";

const SCOPE: &[&str] = &[DIMENSION_SCOPE_KIND, DIMENSION_SCOPE];
const QUEUE: &[&str] = &[DIMENSION_QUEUE];

/// One metric and the dimension sets it is emitted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: &'static str,
    pub dimension_sets: &'static [&'static [&'static str]],
    /// Which function emits it.
    pub source: &'static str,
}

/// Every metric batchguard emits.
pub const CATALOGUE: [MetricSpec; 25] = [
    MetricSpec {
        name: SPEND_USD,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: PERIOD_SPEND_USD,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: BURN_RATE_USD_PER_HOUR,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: RUNNING_TASKS,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: RUNNING_VCPU,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: RUNNING_MEMORY_GIB,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: BUDGET_USED_PERCENT,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: BUDGET_LIMIT_USD,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: SECONDS_TO_EXHAUSTION,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: FORECAST_PERIOD_SPEND_USD,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: BASELINE_SPEND_USD,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: LEDGER_AFTER_BASELINE_USD,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: BASELINE_AGE_SECONDS,
        dimension_sets: &[SCOPE],
        source: "ticker",
    },
    MetricSpec {
        name: JOB_STATE_TRANSITIONS,
        dimension_sets: &[
            &[DIMENSION_QUEUE, DIMENSION_STATUS],
            &[DIMENSION_JOB_DEFINITION, DIMENSION_STATUS],
            &[DIMENSION_COMPUTE_ENVIRONMENT, DIMENSION_STATUS],
        ],
        source: "collector",
    },
    MetricSpec {
        name: JOB_COST_USD,
        dimension_sets: &[QUEUE],
        source: "collector",
    },
    MetricSpec {
        name: QUEUE_WAIT_SECONDS,
        dimension_sets: &[QUEUE],
        source: "collector",
    },
    MetricSpec {
        name: IMAGE_PULL_SECONDS,
        dimension_sets: &[QUEUE],
        source: "collector",
    },
    MetricSpec {
        name: RUN_SECONDS,
        dimension_sets: &[QUEUE],
        source: "collector",
    },
    MetricSpec {
        name: TOTAL_SECONDS,
        dimension_sets: &[QUEUE],
        source: "collector",
    },
    MetricSpec {
        name: SPOT_SAVINGS_USD,
        dimension_sets: &[QUEUE],
        source: "collector",
    },
    MetricSpec {
        name: INTERRUPTED_ATTEMPTS_COST_USD,
        dimension_sets: &[QUEUE],
        source: "collector",
    },
    MetricSpec {
        name: SPOT_INTERRUPTIONS,
        dimension_sets: &[&[DIMENSION_COMPUTE_ENVIRONMENT, DIMENSION_AVAILABILITY_ZONE]],
        source: "collector",
    },
    MetricSpec {
        name: INSTANCE_STATE_CHANGES,
        dimension_sets: &[&[DIMENSION_COMPUTE_ENVIRONMENT, DIMENSION_STATUS]],
        source: "collector",
    },
    MetricSpec {
        name: QUARANTINED_EVENTS,
        dimension_sets: &[&[]],
        source: "collector",
    },
    MetricSpec {
        name: ENFORCEMENT_ACTIONS,
        dimension_sets: &[&[DIMENSION_LEVEL, DIMENSION_ACTION, DIMENSION_DRY_RUN]],
        source: "enforcer",
    },
];

/// The catalogue entry of a metric name.
pub fn spec(name: &str) -> Option<&'static MetricSpec> {
    CATALOGUE.iter().find(|spec| spec.name == name)
}
