//! The ticker, every minute: each scope's spend as EMF (one document per scope, dimensioned
//! by scope), the budget scope's percent used and seconds to exhaustion, the budget policy, and
//! the enforcer triggered when a threshold is crossed or the forecast says the budget runs out
//! before the next tick can act. At a new budget period it asks the enforcer to restore what it
//! disabled in the last one.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;

use super::HandlerError;
use super::enforcer::EnforcerRequest;
use crate::adapters::emf::{Metric, MetricDocument, MetricSink, Unit};
use crate::core::budget::{Budget, BudgetPeriod, BudgetStatus, Outlook};
use crate::core::facts::EnforcementAction;
use crate::core::policy::{BudgetPolicy, Decision, Level, decide};
use crate::core::scope::{Scope, ScopeSpend};
use crate::core::sums::ScopeTotals;
use crate::metrics;
use crate::ports::{AuditTrail, EnforcerTrigger, SpendReader};

/// What the ticker watches.
#[derive(Clone, Debug)]
pub struct TickerSettings {
    pub budget: Option<Budget>,
    pub policy: BudgetPolicy,
    pub period: BudgetPeriod,
    /// Queues the budget covers; empty: everything (the `total` scope).
    pub scope_queues: Vec<String>,
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

/// One tick at Unix milliseconds `now_ms`.
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

    let budget_spend = budget_totals.spend_at(at, settings.period, budget_recent);
    let mut report = TickReport {
        at,
        scopes: documents.len(),
        budget_spend_usd: budget_spend.period_spend_usd,
        budget_used_percent: None,
        decision: None,
        triggered: None,
    };
    if let Some(budget) = settings.budget {
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
