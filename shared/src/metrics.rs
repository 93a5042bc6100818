//! Metrics as data: the catalogue of every metric batchguard emits (its name and the dimension
//! sets it is emitted with, so dashboards and alarms can be checked against it, and the
//! handlers' output against them: `tests/tests/deployment.rs`), and the [`MetricDocument`]s the
//! services build — with CloudWatch's limits as named constants. How a document is written
//! (EMF) is the `adapters::emf` adapter's business; where it goes is the `MetricSink` port.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::Value;

/// At most this many metrics in one EMF document.
pub const MAX_METRICS_PER_DOCUMENT: usize = 100;
/// At most this many dimensions in one dimension set.
pub const MAX_DIMENSIONS_PER_SET: usize = 30;

/// A metric's unit, as CloudWatch names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    None,
    Count,
    Percent,
    Seconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Count => "Count",
            Self::Percent => "Percent",
            Self::Seconds => "Seconds",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    pub value: Decimal,
}

/// Metrics that share a timestamp and dimensions, with extra properties for Logs Insights.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricDocument {
    /// Unix milliseconds the values are for (an event's own time, or the tick's).
    pub timestamp_ms: i64,
    pub dimensions: Vec<(&'static str, String)>,
    /// The dimension sets the metrics are published under, each naming some of `dimensions`;
    /// empty means one set of all of them. One document with several sets is one log line
    /// (what CloudWatch Logs charges for) instead of one per set.
    pub dimension_sets: Vec<Vec<&'static str>>,
    pub metrics: Vec<Metric>,
    /// Searchable in Logs Insights, not metrics (job ids, exact decimal figures).
    pub properties: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    #[error("{0} dimensions in one set; CloudWatch allows {MAX_DIMENSIONS_PER_SET}")]
    TooManyDimensions(usize),
    #[error("metric {name} = {value} is not a number CloudWatch can store")]
    NotANumber { name: &'static str, value: Decimal },
    #[error("property {0:?} would overwrite a metric or dimension of the same name")]
    PropertyClash(String),
    #[error("dimension set names {0}, which the document does not have")]
    UnknownDimension(&'static str),
    #[error(
        "dimension {name} = {value:?}: CloudWatch takes 1 to {MAX_DIMENSION_VALUE_LENGTH} characters"
    )]
    BadDimensionValue { name: &'static str, value: String },
}

/// The longest dimension value CloudWatch accepts.
pub const MAX_DIMENSION_VALUE_LENGTH: usize = 1024;

/// What a dimension value stands in for when the event gave none (CloudWatch refuses an empty
/// value, and a document it refuses is dropped whole).
pub const UNKNOWN_DIMENSION_VALUE: &str = "(unknown)";

impl MetricDocument {
    /// Makes every dimension value one CloudWatch accepts: an empty one becomes
    /// [`UNKNOWN_DIMENSION_VALUE`], a longer one is cut at [`MAX_DIMENSION_VALUE_LENGTH`]
    /// characters. Values come from events, which can carry anything.
    pub fn with_acceptable_dimensions(mut self) -> Self {
        for (_, value) in &mut self.dimensions {
            if value.is_empty() {
                UNKNOWN_DIMENSION_VALUE.clone_into(value);
            } else if value.chars().count() > MAX_DIMENSION_VALUE_LENGTH {
                *value = value.chars().take(MAX_DIMENSION_VALUE_LENGTH).collect();
            }
        }
        self
    }
}

/// CloudWatch namespace of every batchguard metric unless configured otherwise
/// (`METRICS_NAMESPACE`; the SAM template gives each stack its own).
pub const NAMESPACE: &str = "batchguard";

/// CloudWatch takes a data point "as much as two weeks before the current date, and as much as
/// 2 hours after" (PutMetricData API reference); an EMF document stamped outside is dropped
/// without an error to the writer. Five minutes are kept off each edge for clock skew.
pub const MAX_AGE_MS: i64 = 14 * 86_400_000 - 300_000;
pub const MAX_AHEAD_MS: i64 = 2 * 3_600_000 - 300_000;

/// The timestamp to write for a data point that happened at `event_ms`, written at `now_ms`:
/// the event's own time when CloudWatch accepts it, else `now_ms`, so a re-driven or
/// backfilled event (or one with a skewed clock) is counted when it is processed rather than
/// silently lost.
pub fn acceptable_timestamp(event_ms: i64, now_ms: i64) -> i64 {
    let earliest = now_ms.saturating_sub(MAX_AGE_MS);
    let latest = now_ms.saturating_add(MAX_AHEAD_MS);
    if (earliest..=latest).contains(&event_ms) {
        event_ms
    } else {
        now_ms
    }
}

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
/// For each budget applied to the stack (`ScopeKind=budget`, `Scope=<name>`): the step of the
/// action its thresholds call for, 0 (none) to 5 (terminate); and the highest of them under
/// `ScopeKind=budget` alone, for the alarms on the applied budgets.
pub const BUDGET_ACTION_LEVEL: &str = "BudgetActionLevel";
/// For each budget applied to the stack: its period's spend and what its running jobs with a
/// timeout may still cost before Batch stops them (committed spend).
pub const COMMITTED_SPEND_USD: &str = "CommittedSpendUSD";
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
/// From the ticker, every tick: active scopes not published this tick, over the cap on scopes
/// published (`app::ticker::MAX_SCOPES_PUBLISHED`) or not read this minute (past
/// `app::ticker::MAX_SCOPES_READ`; zero too).
pub const SCOPES_NOT_PUBLISHED: &str = "ScopesNotPublished";
/// From the ticker, per silent-job check: jobs AWS Batch no longer knew, closed at the last
/// instant they were heard of.
pub const JOBS_UNKNOWN_TO_BATCH: &str = "JobsUnknownToBatch";

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
pub const CATALOGUE: [MetricSpec; 29] = [
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
        name: BUDGET_ACTION_LEVEL,
        // Per budget, and the highest of them under `ScopeKind=budget` alone (the alarms').
        dimension_sets: &[SCOPE, &[DIMENSION_SCOPE_KIND]],
        source: "ticker",
    },
    MetricSpec {
        name: COMMITTED_SPEND_USD,
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
        name: JOBS_UNKNOWN_TO_BATCH,
        dimension_sets: &[&[]],
        source: "ticker",
    },
    MetricSpec {
        name: SCOPES_NOT_PUBLISHED,
        dimension_sets: &[&[]],
        source: "ticker",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_cloudwatch_would_refuse_becomes_the_moment_of_writing() {
        let now = 1_795_413_600_000;
        assert_eq!(acceptable_timestamp(now - 3_600_000, now), now - 3_600_000);
        assert_eq!(
            acceptable_timestamp(now - MAX_AGE_MS, now),
            now - MAX_AGE_MS
        );
        assert_eq!(acceptable_timestamp(now - 15 * 86_400_000, now), now);
        assert_eq!(
            acceptable_timestamp(now + MAX_AHEAD_MS, now),
            now + MAX_AHEAD_MS
        );
        assert_eq!(acceptable_timestamp(now + 3 * 3_600_000, now), now);
        assert_eq!(acceptable_timestamp(i64::MIN, i64::MAX), i64::MAX);
    }

    /// An event with an empty queue name (the fuzz test found one) must not cost the whole
    /// batch its metrics: the value stands in, the document is one CloudWatch accepts.
    #[test]
    fn dimension_values_from_events_are_made_acceptable() {
        let document = MetricDocument {
            dimensions: vec![
                (DIMENSION_QUEUE, String::new()),
                (DIMENSION_JOB_DEFINITION, "x".repeat(2_000)),
                (DIMENSION_STATUS, "RUNNING".into()),
            ],
            ..MetricDocument::default()
        }
        .with_acceptable_dimensions();
        assert_eq!(document.dimensions[0].1, UNKNOWN_DIMENSION_VALUE);
        assert_eq!(
            document.dimensions[1].1.chars().count(),
            MAX_DIMENSION_VALUE_LENGTH
        );
        assert_eq!(document.dimensions[2].1, "RUNNING");
    }
}
