//! The catalogue of metrics batchguard emits: one place for every name and dimension, so
//! dashboards and alarms can be checked against it.

/// CloudWatch namespace of every batchguard metric.
pub const NAMESPACE: &str = "batchguard";

/// Dimensions.
pub const DIMENSION_SCOPE_KIND: &str = "ScopeKind";
pub const DIMENSION_SCOPE: &str = "Scope";
pub const DIMENSION_QUEUE: &str = "JobQueue";
pub const DIMENSION_STATUS: &str = "Status";
pub const DIMENSION_JOB_DEFINITION: &str = "JobDefinition";
pub const DIMENSION_LEVEL: &str = "Level";

/// Per scope, from the ticker.
pub const SPEND_USD: &str = "SpendUSD";
pub const PERIOD_SPEND_USD: &str = "PeriodSpendUSD";
pub const BUDGET_USED_PERCENT: &str = "BudgetUsedPercent";
pub const BURN_RATE_USD_PER_HOUR: &str = "BurnRateUSDPerHour";
pub const RUNNING_TASKS: &str = "RunningTasks";
pub const RUNNING_VCPU: &str = "RunningVCPU";
pub const RUNNING_MEMORY_GIB: &str = "RunningMemoryGiB";
pub const SECONDS_TO_EXHAUSTION: &str = "SecondsToExhaustion";

/// From the collector, per Batch job state change.
pub const JOB_STATE_TRANSITIONS: &str = "JobStateTransitions";
/// From the collector, per event it could not read.
pub const QUARANTINED_EVENTS: &str = "QuarantinedEvents";
/// From the enforcer, per action.
pub const ENFORCEMENT_ACTIONS: &str = "EnforcementActions";

/// Every metric name, for the catalogue checks.
pub const ALL: [&str; 11] = [
    SPEND_USD,
    PERIOD_SPEND_USD,
    BUDGET_USED_PERCENT,
    BURN_RATE_USD_PER_HOUR,
    RUNNING_TASKS,
    RUNNING_VCPU,
    RUNNING_MEMORY_GIB,
    SECONDS_TO_EXHAUSTION,
    JOB_STATE_TRANSITIONS,
    QUARANTINED_EVENTS,
    ENFORCEMENT_ACTIONS,
];
