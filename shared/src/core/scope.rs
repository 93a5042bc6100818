//! Scopes spend is summed over, and the figures each one answers with.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::budget::BudgetPeriod;

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
    /// The jobs a budget of a budgets file counts (`core::budgets`), by its name.
    Budget(Arc<str>),
    /// A budget whose period is not the stack's, by its name: the same jobs (or, for a budget
    /// counting the whole bill, everything the total counts), summed by its own period.
    PeriodBudget(Arc<str>, BudgetPeriod),
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
            Self::Budget(_) | Self::PeriodBudget(..) => "budget",
        }
    }

    /// Whether it is a budget's scope (published under `ScopeKind=budget`).
    pub fn is_budget(&self) -> bool {
        matches!(self, Self::Budget(_) | Self::PeriodBudget(..))
    }

    /// The period its sums are bucketed by: a [`Scope::PeriodBudget`]'s own, else the stack's.
    pub fn period(&self, stack: BudgetPeriod) -> BudgetPeriod {
        match self {
            Self::PeriodBudget(_, period) => *period,
            _ => stack,
        }
    }

    /// The scope's value (`key=value` for tags, empty for the total).
    pub fn value(&self) -> String {
        match self {
            Self::Total => String::new(),
            Self::Queue(name)
            | Self::ComputeEnvironment(name)
            | Self::JobDefinition(name)
            | Self::Budget(name)
            | Self::PeriodBudget(name, _) => name.to_string(),
            Self::Tag(key, value) => format!("{key}={value}"),
        }
    }
}

/// Which job tags become scopes. Every distinct `key=value` of a listed key is a scope summed
/// on every event and published every tick, so a tag with a value per run (a run id, a
/// commit) would make one scope per job; the deployed stack lists the keys it sums by
/// (`SCOPE_TAG_KEYS`, default `team,project`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TagScopes {
    /// Every tag key (the CLI's local analysis).
    #[default]
    All,
    /// Only these keys (none: no tag scopes).
    Keys(std::collections::BTreeSet<String>),
}

impl TagScopes {
    /// The stack's default: `team` and `project`.
    pub fn default_keys() -> Self {
        Self::parse("team,project")
    }

    /// A comma-separated list of keys; `*` for every key; `-` (or nothing) for none.
    pub fn parse(text: &str) -> Self {
        match text.trim() {
            "*" => return Self::All,
            "-" => return Self::Keys(std::collections::BTreeSet::new()),
            _ => {}
        }
        Self::Keys(
            text.split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    pub fn allows(&self, key: &str) -> bool {
        match self {
            Self::All => true,
            Self::Keys(keys) => keys.contains(key),
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
    /// The period's spend and what its running work may still cost before Batch's timeouts
    /// stop it (`Σ rate × (deadline − at)` over running units whose job has a timeout): the
    /// money already promised. Work without a timeout adds only what it has spent.
    pub committed_usd: Decimal,
    /// Running units whose job has no timeout: their remaining cost is open-ended and not in
    /// `committed_usd`.
    pub open_ended_tasks: u64,
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

#[cfg(test)]
mod tag_scope_tests {
    use super::TagScopes;

    #[test]
    fn tag_keys_parse_as_listed() {
        let keys = TagScopes::parse(" team , project,,");
        assert!(keys.allows("team") && keys.allows("project"));
        assert!(!keys.allows("run-id"));
        assert!(TagScopes::parse("*").allows("anything"));
        assert!(!TagScopes::parse("").allows("team"));
        assert!(!TagScopes::parse("-").allows("team"));
        assert_eq!(TagScopes::default_keys(), TagScopes::parse("project,team"));
    }
}
