//! Scopes spend is summed over, and the figures each one answers with.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A set of jobs that spend is summed over.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Scope {
    /// Everything the ledger knows.
    Total,
    Queue(Arc<str>),
    ComputeEnvironment(Arc<str>),
    JobDefinition(Arc<str>),
    /// A job tag `key=value`.
    Tag(Arc<str>, Arc<str>),
}

impl Scope {
    /// The dimension name used in output and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::Queue(_) => "queue",
            Self::ComputeEnvironment(_) => "compute_environment",
            Self::JobDefinition(_) => "job_definition",
            Self::Tag(..) => "tag",
        }
    }

    /// The scope's value (`key=value` for tags, empty for the total).
    pub fn value(&self) -> String {
        match self {
            Self::Total => String::new(),
            Self::Queue(name) | Self::ComputeEnvironment(name) | Self::JobDefinition(name) => {
                name.to_string()
            }
            Self::Tag(key, value) => format!("{key}={value}"),
        }
    }
}

/// Spend figures of one scope at an instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopeSpend {
    /// Everything billed up to the instant, over all time.
    pub spend_usd: Decimal,
    /// The part of it inside the budget period containing the instant.
    pub period_spend_usd: Decimal,
    /// Σ hourly price of the tasks running at the instant.
    pub burn_rate_usd_per_hour: Decimal,
    pub running_tasks: u64,
    pub running_vcpu: Decimal,
    pub running_memory_gib: Decimal,
    /// Tasks with no price (unknown region, EC2, unknown size): not in the figures above.
    pub unpriced_tasks: u64,
    /// Tasks priced from Batch data alone (no ECS task event yet).
    pub estimated_tasks: u64,
}
