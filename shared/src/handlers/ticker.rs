//! The ticker, every minute: each scope's spend as EMF (one document per scope, dimensioned
//! by scope), the budget scope's percent used and seconds to exhaustion, the budget policy, and
//! the enforcer triggered when a threshold is crossed or the forecast says the budget runs out
//! before the next tick can act. At a new budget period it asks the enforcer to restore what it
//! disabled in the last one.
//!
//! With a budget kept in AWS Budgets ([`AwsBaseline`]), the limit comes from AWS and the
//! budget's spend is AWS's own figure (exact, hours late) plus what the ledger saw accrue after
//! AWS last updated it: each tick keeps a spend mark, and the mark at or before AWS's instant
//! says how much of the ledger's period spend AWS had already counted (ADR 0007).

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;

use super::HandlerError;
use super::enforcer::EnforcerRequest;
use crate::adapters::emf::{Metric, MetricDocument, MetricSink, Unit};
use crate::core::budget::{
    AwsBudget, Budget, BudgetPeriod, BudgetStatus, Fused, Outlook, SpendMark,
};
use crate::core::facts::EnforcementAction;
use crate::core::policy::{BudgetPolicy, Decision, Level, decide};
use crate::core::scope::{Scope, ScopeSpend};
use crate::core::sums::ScopeTotals;
use crate::metrics;
use crate::ports::{
    AuditTrail, BaselineStore, BudgetSource, CachedBudget, ControlError, EnforcerTrigger,
    SpendReader, StoreError,
};

/// What the ticker watches.
#[derive(Clone, Debug)]
pub struct TickerSettings {
    pub budget: Option<Budget>,
    pub policy: BudgetPolicy,
    pub period: BudgetPeriod,
    /// Queues the budget covers; empty: everything (the `total` scope).
    pub scope_queues: Vec<String>,
}

/// Spend marks outlive their budget period by this long (DynamoDB TTL), so a baseline AWS
/// dates late in a period still finds its mark after the period ends.
pub const MARK_RETENTION_SECONDS: i64 = 35 * 86_400;

/// A budget kept in AWS Budgets: where to read it and where the ticker keeps its marks and the
/// last reading. AWS is asked again once the reading is `refresh_seconds` old.
#[derive(Clone, Debug)]
pub struct AwsBaseline<S, M> {
    pub source: S,
    pub store: M,
    pub refresh_seconds: i64,
}

impl<S: BudgetSource + Sync, M: BaselineStore + Sync> AwsBaseline<S, M> {
    /// The AWS budget to use at `at`: the stored reading, refreshed from AWS when it is old.
    /// A failed refresh keeps the stored reading and says why.
    async fn current(
        &self,
        at: i64,
    ) -> Result<(Option<CachedBudget>, Option<String>), HandlerError> {
        let cached = self.store.cached_budget().await.map_err(store)?;
        if cached.is_some_and(|c| at - c.fetched_at < self.refresh_seconds) {
            return Ok((cached, None));
        }
        match self.source.describe().await {
            Ok(budget) => {
                let fresh = CachedBudget {
                    budget,
                    fetched_at: at,
                };
                self.store.put_cached_budget(&fresh).await.map_err(store)?;
                Ok((Some(fresh), None))
            }
            Err(error) => {
                lambda_runtime::tracing::warn!(%error, "reading the AWS budget failed; keeping the last reading");
                Ok((cached, Some(error.to_string())))
            }
        }
    }
}

/// What one tick found and did.
#[derive(Clone, Debug, Serialize)]
pub struct TickReport {
    pub at: i64,
    pub scopes: usize,
    pub budget_spend_usd: Decimal,
    pub budget_used_percent: Option<Decimal>,
    pub decision: Option<Decision>,
    pub triggered: Option<EnforcerRequest>,
    /// With an AWS budget: AWS's figure, the ledger's part after it, and how they were cut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Fused>,
    /// Why the AWS budget could not be read this tick (the last reading was used, if any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_error: Option<String>,
}

/// Stands in for [`AwsBaseline`]'s ports when there is no AWS budget; it has no values.
#[derive(Clone, Copy, Debug)]
pub enum NoAwsBudget {}

impl BudgetSource for NoAwsBudget {
    async fn describe(&self) -> Result<AwsBudget, ControlError> {
        match *self {}
    }
}

impl BaselineStore for NoAwsBudget {
    async fn put_mark(&self, _: i64, _: &SpendMark, _: i64) -> Result<(), StoreError> {
        match *self {}
    }
    async fn mark_at_or_before(&self, _: i64, _: i64) -> Result<Option<SpendMark>, StoreError> {
        match *self {}
    }
    async fn cached_budget(&self) -> Result<Option<CachedBudget>, StoreError> {
        match *self {}
    }
    async fn put_cached_budget(&self, _: &CachedBudget) -> Result<(), StoreError> {
        match *self {}
    }
}

fn store(error: crate::ports::StoreError) -> HandlerError {
    HandlerError::Retryable(error.to_string())
}

fn scope_document(
    kind: &str,
    name: String,
    spend: &ScopeSpend,
    timestamp_ms: i64,
) -> MetricDocument {
    MetricDocument {
        timestamp_ms,
        dimensions: vec![
            (metrics::DIMENSION_SCOPE_KIND, kind.to_owned()),
            (metrics::DIMENSION_SCOPE, name),
        ],
        dimension_sets: Vec::new(),
        metrics: vec![
            Metric {
                name: metrics::SPEND_USD,
                unit: Unit::None,
                value: spend.spend_usd,
            },
            Metric {
                name: metrics::PERIOD_SPEND_USD,
                unit: Unit::None,
                value: spend.period_spend_usd,
            },
            Metric {
                name: metrics::BURN_RATE_USD_PER_HOUR,
                unit: Unit::None,
                value: spend.burn_rate_usd_per_hour,
            },
            Metric {
                name: metrics::RUNNING_TASKS,
                unit: Unit::Count,
                value: Decimal::from(spend.running_tasks),
            },
            Metric {
                name: metrics::RUNNING_VCPU,
                unit: Unit::None,
                value: spend.running_vcpu,
            },
            Metric {
                name: metrics::RUNNING_MEMORY_GIB,
                unit: Unit::None,
                value: spend.running_memory_gib,
            },
        ],
        properties: BTreeMap::from([
            (
                "spend_usd_exact".to_owned(),
                json!(spend.spend_usd.to_string()),
            ),
            (
                "period_spend_usd_exact".to_owned(),
                json!(spend.period_spend_usd.to_string()),
            ),
        ]),
    }
}

/// A scope's `Scope` dimension: its value, or `all` for the total (CloudWatch refuses empty
/// dimension values).
pub fn dimension_value(scope: &Scope) -> String {
    match scope {
        Scope::Total => "all".to_owned(),
        other => other.value(),
    }
}

/// One tick at Unix milliseconds `now_ms`, the budget (if any) from `settings`.
pub async fn handle<R, A, T>(
    reader: &R,
    audit: &A,
    trigger: &T,
    sink: &impl MetricSink,
    settings: &TickerSettings,
    now_ms: i64,
) -> Result<TickReport, HandlerError>
where
    R: SpendReader + Sync,
    A: AuditTrail + Sync,
    T: EnforcerTrigger + Sync,
{
    handle_with_aws_budget(
        reader,
        audit,
        trigger,
        sink,
        settings,
        None::<&AwsBaseline<NoAwsBudget, NoAwsBudget>>,
        now_ms,
    )
    .await
}

/// One tick at Unix milliseconds `now_ms`; with `aws`, the budget's limit and baseline come
/// from AWS Budgets (`settings.budget` stands in until AWS has answered once).
pub async fn handle_with_aws_budget<R, A, T, S, M>(
    reader: &R,
    audit: &A,
    trigger: &T,
    sink: &impl MetricSink,
    settings: &TickerSettings,
    aws: Option<&AwsBaseline<S, M>>,
    now_ms: i64,
) -> Result<TickReport, HandlerError>
where
    R: SpendReader + Sync,
    A: AuditTrail + Sync,
    T: EnforcerTrigger + Sync,
    S: BudgetSource + Sync,
    M: BaselineStore + Sync,
{
    let at = now_ms.div_euclid(1000);
    let scopes = reader.scopes().await.map_err(store)?;
    let recent = reader.recent_starts(at).await.map_err(store)?;
    let in_budget: BTreeSet<Scope> = if settings.scope_queues.is_empty() {
        BTreeSet::from([Scope::Total])
    } else {
        settings
            .scope_queues
            .iter()
            .map(|q| Scope::Queue(q.as_str().into()))
            .collect()
    };
    let mut documents = Vec::with_capacity(scopes.len() + 1);
    let mut budget_totals = ScopeTotals::default();
    let mut budget_recent = Vec::new();
    let all_totals = reader.scopes_totals(&scopes).await.map_err(store)?;
    for (scope, totals) in &all_totals {
        let corrections: Vec<(i64, Decimal)> = recent
            .iter()
            .filter(|(s, _, _)| s == scope)
            .map(|(_, anchor, rate)| (*anchor, *rate))
            .collect();
        if in_budget.contains(scope) {
            budget_totals.merge(totals);
            budget_recent.extend(corrections.iter().copied());
        }
        if totals.units == 0 {
            continue; // a scope whose units all moved elsewhere
        }
        let spend = totals.spend_at(at, settings.period, corrections);
        documents.push(scope_document(
            scope.kind(),
            dimension_value(scope),
            &spend,
            now_ms,
        ));
    }

    let mut budget_spend = budget_totals.spend_at(at, settings.period, budget_recent);
    let mut report = TickReport {
        at,
        scopes: documents.len(),
        budget_spend_usd: budget_spend.period_spend_usd,
        budget_used_percent: None,
        decision: None,
        triggered: None,
        baseline: None,
        baseline_error: None,
    };
    let mut budget = settings.budget;
    if let Some(aws) = aws {
        let (period_start, period_end) = settings.period.bounds(at);
        let mark = SpendMark {
            at,
            period_spend_usd: budget_spend.period_spend_usd,
            burn_rate_usd_per_hour: budget_spend.burn_rate_usd_per_hour,
        };
        aws.store
            .put_mark(period_start, &mark, period_end + MARK_RETENTION_SECONDS)
            .await
            .map_err(store)?;
        let (cached, error) = aws.current(at).await?;
        report.baseline_error = error;
        if let Some(cached) = cached {
            let from_aws = cached.budget;
            if from_aws.period != settings.period {
                // The ledger's sums are kept per the configured period; measuring a monthly
                // AWS budget with daily sums would be wrong. Loud, so it gets fixed.
                sink.emit(&documents)
                    .map_err(|e| HandlerError::NonRetryable(e.to_string()))?;
                return Err(HandlerError::NonRetryable(format!(
                    "the AWS budget is {:?} but BUDGET_PERIOD is {:?}: set the stack's BudgetPeriod to the budget's period",
                    from_aws.period, settings.period
                )));
            }
            let before = aws
                .store
                .mark_at_or_before(period_start, from_aws.baseline.as_of)
                .await
                .map_err(store)?;
            let fused = Fused::of(
                from_aws.baseline,
                before,
                period_start,
                budget_spend.period_spend_usd,
            );
            budget = Some(from_aws.budget());
            budget_spend.period_spend_usd = fused.spend_usd;
            report.budget_spend_usd = fused.spend_usd;
            report.baseline = Some(fused);
        }
    }
    if let Some(budget) = budget {
        let status = BudgetStatus::evaluate(
            budget,
            at,
            budget_spend.period_spend_usd,
            budget_spend.burn_rate_usd_per_hour,
        );
        // Fixed dimensions, so alarms can name them; the queues it covers are a property.
        let mut document = scope_document(
            metrics::BUDGET_SCOPE_KIND,
            metrics::BUDGET_SCOPE.to_owned(),
            &budget_spend,
            now_ms,
        );
        let queues = if settings.scope_queues.is_empty() {
            json!("all")
        } else {
            json!(settings.scope_queues)
        };
        document.properties.insert("queues".into(), queues);
        document
            .properties
            .insert("budget_usd".into(), json!(budget.amount_usd.to_string()));
        if let Some(fused) = &report.baseline {
            document.metrics.extend([
                Metric {
                    name: metrics::BASELINE_SPEND_USD,
                    unit: Unit::None,
                    value: fused.baseline_usd,
                },
                Metric {
                    name: metrics::LEDGER_AFTER_BASELINE_USD,
                    unit: Unit::None,
                    value: fused.ledger_after_usd,
                },
                Metric {
                    name: metrics::BASELINE_AGE_SECONDS,
                    unit: Unit::Seconds,
                    value: Decimal::from((at - fused.baseline_as_of).max(0)),
                },
            ]);
            document.properties.insert("baseline".into(), json!(fused));
        }
        document.metrics.push(Metric {
            name: metrics::BUDGET_LIMIT_USD,
            unit: Unit::None,
            value: budget.amount_usd,
        });
        document.metrics.push(Metric {
            name: metrics::BUDGET_USED_PERCENT,
            unit: Unit::Percent,
            value: status.used_percent,
        });
        document.metrics.push(Metric {
            name: metrics::FORECAST_PERIOD_SPEND_USD,
            unit: Unit::None,
            value: status.forecast_usd,
        });
        let seconds_left = match status.outlook {
            Outlook::RunsOut { at: when } => Some(Decimal::from(when - at)),
            Outlook::Exhausted => Some(Decimal::ZERO),
            Outlook::LastsThePeriod | Outlook::NoBurn => None,
        };
        if let Some(seconds) = seconds_left {
            document.metrics.push(Metric {
                name: metrics::SECONDS_TO_EXHAUSTION,
                unit: Unit::Seconds,
                value: seconds,
            });
        }
        documents.push(document);
        let decision = decide(&status, &settings.policy, at);
        report.budget_used_percent = Some(status.used_percent);
        if decision.level >= Level::Notify {
            let request = EnforcerRequest::Enforce {
                level: decision.level,
                reason: decision.reason.clone(),
            };
            trigger
                .trigger(&request)
                .await
                .map_err(|e| HandlerError::Retryable(e.to_string()))?;
            report.triggered = Some(request);
        } else if disabled_last_period(audit, settings.period, at).await? {
            let request = EnforcerRequest::Restore {
                reason: "a new budget period began".into(),
            };
            trigger
                .trigger(&request)
                .await
                .map_err(|e| HandlerError::Retryable(e.to_string()))?;
            report.triggered = Some(request);
        }
        report.decision = Some(decision);
    }
    sink.emit(&documents)
        .map_err(|e| HandlerError::NonRetryable(e.to_string()))?;
    Ok(report)
}

/// Whether batchguard disabled queues in the previous period and has not re-enabled them.
async fn disabled_last_period(
    audit: &(impl AuditTrail + Sync),
    period: BudgetPeriod,
    at: i64,
) -> Result<bool, HandlerError> {
    let (this_period, _) = period.bounds(at);
    let (previous, _) = period.bounds(this_period - 1);
    let mut entries = audit.audit_entries(previous).await.map_err(store)?;
    entries.extend(audit.audit_entries(this_period).await.map_err(store)?);
    entries.sort_by_key(|entry| entry.at);
    let mut outstanding = BTreeSet::new();
    for entry in entries.iter().filter(|e| !e.dry_run) {
        match &entry.action {
            EnforcementAction::QueueDisabled { queue } => {
                outstanding.insert(queue.clone());
            }
            EnforcementAction::QueueEnabled { queue } => {
                outstanding.remove(queue);
            }
            _ => {}
        }
    }
    Ok(!outstanding.is_empty())
}
