//! One tick of the ticker service: each scope's spend as a metric document (dimensioned by
//! scope), the budget scope's percent used and seconds to exhaustion, the budget policy, and
//! the enforcer triggered when a threshold is crossed or the forecast says the budget runs out
//! before the next tick can act. At a new budget period it asks the enforcer to restore what it
//! disabled in the last one.
//!
//! With a budget kept in AWS Budgets ([`AwsBaseline`]), the limit comes from AWS and the
//! budget's spend is AWS's own figure (exact, hours late) plus what the ledger saw accrue after
//! AWS last updated it: each tick keeps a spend mark, and the mark at or before AWS's instant
//! says how much of the ledger's period spend AWS had already counted (ADR 0007).
//!
//! The steps, in order: [`read_spend`] (every scope's document and the budget's sums), the
//! AWS baseline ([`AwsBaseline::fuse`]), [`budget_document`] and the decision, the metrics,
//! and last the trigger: whatever fails after the metrics are published (the audit read, the
//! trigger), the alarms on them still see this tick.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;

use crate::core::budget::{
    AwsBudget, Budget, BudgetPeriod, BudgetStatus, Fused, Outlook, SpendMark,
};
use crate::core::budgets::{Action, BudgetBook, BudgetSpec};
use crate::core::enforcement::{
    BudgetOrder, EnforcerRequest, budget_scopes, budgets_holding_queues, queues_held_by,
};
use crate::core::facts::EnforcementRecorded;
use crate::core::policy::{BudgetPolicy, Decision, Level, decide};
use crate::core::scope::{Scope, ScopeSpend};
use crate::core::sums::ScopeTotals;
use crate::metrics::{self, Metric, MetricDocument, MetricError, Unit};
use crate::ports::{
    AuditTrail, BaselineStore, BudgetSource, CachedBudget, ControlError, EnforcerTrigger,
    MetricSink, SpendReader, StoreError,
};

/// What the ticker watches.
#[derive(Clone, Debug)]
pub struct TickerSettings {
    pub budget: Option<Budget>,
    pub policy: BudgetPolicy,
    pub period: BudgetPeriod,
    /// Queues the budget covers; empty: everything (the `total` scope).
    pub scope_queues: Vec<String>,
    /// Active scopes a tick reads at most besides the total and the budget's own
    /// ([`MAX_SCOPES_READ`] in the stack; smaller in tests).
    pub max_scopes_read: usize,
    /// The budgets applied to the stack (`batchguard budgets apply`), read by the handler each
    /// tick; empty: the template's budget alone.
    pub budgets: std::sync::Arc<BudgetBook>,
}

/// One applied budget as a tick judged it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BudgetReading {
    pub name: String,
    pub amount_usd: Decimal,
    pub period_spend_usd: Decimal,
    pub used_percent: Decimal,
    pub forecast_usd: Decimal,
    /// What its thresholds call for now (`None`: below the first).
    pub action: Option<Action>,
    pub dry_run: bool,
}

/// Spend marks outlive their budget period by this long (DynamoDB TTL), so a baseline AWS
/// dates late in a period still finds its mark after the period ends.
pub const MARK_RETENTION_SECONDS: i64 = 35 * 86_400;

/// Why a tick failed.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// Reading spend or the baseline, or keeping a mark, failed: the next tick may succeed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The enforcer could not be triggered.
    #[error(transparent)]
    Trigger(ControlError),
    /// A metric document CloudWatch would refuse.
    #[error(transparent)]
    Metrics(#[from] MetricError),
    /// The AWS budget's period is not the one the ledger sums by.
    #[error(
        "the AWS budget is {aws:?} but BUDGET_PERIOD is {configured:?}: set the stack's BudgetPeriod to the budget's period"
    )]
    PeriodMismatch {
        aws: BudgetPeriod,
        configured: BudgetPeriod,
    },
}

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
    async fn current(&self, at: i64) -> Result<(Option<CachedBudget>, Option<String>), TickError> {
        let cached = self.store.cached_budget().await?;
        if cached.is_some_and(|c| at - c.fetched_at < self.refresh_seconds) {
            return Ok((cached, None));
        }
        match self.source.describe().await {
            Ok(budget) => {
                let fresh = CachedBudget {
                    budget,
                    fetched_at: at,
                };
                self.store.put_cached_budget(&fresh).await?;
                Ok((Some(fresh), None))
            }
            Err(error) => {
                tracing::warn!(%error, "reading the AWS budget failed; keeping the last reading");
                Ok((cached, Some(error.to_string())))
            }
        }
    }

    /// Keeps this tick's spend mark, reads the AWS budget, and joins AWS's figure with the
    /// ledger's spend after it: `Ok(None)` until AWS has answered once.
    async fn fuse(
        &self,
        settings: &TickerSettings,
        at: i64,
        budget_spend: &ScopeSpend,
        report: &mut TickReport,
    ) -> Result<Option<(AwsBudget, Fused)>, TickError> {
        let (period_start, period_end) = settings.period.bounds(at);
        let mark = SpendMark {
            at,
            period_spend_usd: budget_spend.period_spend_usd,
            burn_rate_usd_per_hour: budget_spend.burn_rate_usd_per_hour,
        };
        self.store
            .put_mark(period_start, &mark, period_end + MARK_RETENTION_SECONDS)
            .await?;
        let (cached, error) = self.current(at).await?;
        report.baseline_error = error;
        let Some(cached) = cached else {
            return Ok(None);
        };
        let from_aws = cached.budget;
        if from_aws.period != settings.period {
            // The ledger's sums are kept per the configured period; measuring a monthly
            // AWS budget with daily sums would be wrong. Loud, so it gets fixed.
            return Err(TickError::PeriodMismatch {
                aws: from_aws.period,
                configured: settings.period,
            });
        }
        let fused = join_stored(
            &self.store,
            &from_aws,
            period_start,
            budget_spend.period_spend_usd,
        )
        .await?;
        Ok(Some((from_aws, fused)))
    }
}

/// AWS's figure joined with the ledger's spend in the period (`Fused::of`), cut at the last
/// stored mark at or before AWS's instant.
async fn join_stored<M: BaselineStore + Sync>(
    store: &M,
    from_aws: &AwsBudget,
    period_start: i64,
    ledger_period_spend_usd: Decimal,
) -> Result<Fused, StoreError> {
    let before = store
        .mark_at_or_before(period_start, from_aws.baseline.as_of)
        .await?;
    Ok(Fused::of(
        from_aws.baseline,
        before,
        period_start,
        ledger_period_spend_usd,
    ))
}

/// A scope's start-of-run corrections among the recent starts: `(anchor, rate)`.
pub(crate) fn corrections_of<'a>(
    recent: &'a [(Scope, i64, Decimal)],
    scope: &'a Scope,
) -> impl Iterator<Item = (i64, Decimal)> + 'a {
    recent
        .iter()
        .filter(move |(s, _, _)| s == scope)
        .map(|(_, anchor, rate)| (*anchor, *rate))
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
    /// Each applied budget the tick judged, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetReading>,
    /// The applied budgets' orders sent to the enforcer this tick, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggered_budgets: Option<EnforcerRequest>,
    /// The applied budgets whose restore was asked of the enforcer this tick.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restored_budgets: Vec<String>,
}

/// This period's and the previous one's audit trail, read once a tick when first needed
/// (the stack's restore and the budgets' both read it): two queries.
struct AuditWindow<'a, A> {
    audit: &'a A,
    period: BudgetPeriod,
    at: i64,
    entries: Option<Vec<EnforcementRecorded>>,
}

impl<'a, A: AuditTrail + Sync> AuditWindow<'a, A> {
    fn new(audit: &'a A, period: BudgetPeriod, at: i64) -> Self {
        Self {
            audit,
            period,
            at,
            entries: None,
        }
    }

    async fn entries(&mut self) -> Result<&[EnforcementRecorded], StoreError> {
        if self.entries.is_none() {
            let (this_period, _) = self.period.bounds(self.at);
            let (previous, _) = self.period.bounds(this_period - 1);
            let mut entries = self.audit.audit_entries(previous).await?;
            entries.extend(self.audit.audit_entries(this_period).await?);
            self.entries = Some(entries);
        }
        Ok(self.entries.as_deref().unwrap_or_default())
    }
}

/// Sends the enforcer what the applied budgets' thresholds call for (every budget at a
/// threshold, each tick: the enforcer notifies once per budget and action per period, and
/// acts on the jobs that arrived since), then the restores of the budgets that hold queues
/// and no longer drain ([`budget_restores`]), while any budget is applied.
async fn trigger_budgets<A: AuditTrail + Sync>(
    trigger: &(impl EnforcerTrigger + Sync),
    window: &mut AuditWindow<'_, A>,
    applied: bool,
    report: &mut TickReport,
) -> Result<(), TickError> {
    let orders = send_orders(trigger, report).await;
    let restores = if applied {
        match window.entries().await {
            Ok(entries) => budget_restores(entries, trigger, &report.budgets)
                .await
                .map(|sent| report.restored_budgets = sent),
            Err(error) => Err(error.into()),
        }
    } else {
        Ok(())
    };
    orders?;
    restores
}

/// The applied budgets' orders, sent.
async fn send_orders(
    trigger: &(impl EnforcerTrigger + Sync),
    report: &mut TickReport,
) -> Result<(), TickError> {
    let orders: Vec<BudgetOrder> = report
        .budgets
        .iter()
        .filter_map(|reading| {
            reading.action.map(|action| {
                BudgetOrder::judged(
                    &reading.name,
                    reading.period_spend_usd,
                    reading.amount_usd,
                    reading.used_percent,
                    action,
                    reading.dry_run,
                )
            })
        })
        .collect();
    if orders.is_empty() {
        return Ok(());
    }
    let request = EnforcerRequest::Budgets { orders };
    trigger
        .trigger(&request)
        .await
        .map_err(TickError::Trigger)?;
    report.triggered_budgets = Some(request);
    Ok(())
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

/// What [`read_spend`] found: every scope's document, the template budget's spend (the
/// scopes it covers, merged), and each applied budget's spend.
struct SpendRead {
    documents: Vec<MetricDocument>,
    budget_spend: ScopeSpend,
    applied: BTreeMap<Scope, ScopeSpend>,
}

/// Every scope's spend at `at` as a document, the template budget's spend and each applied
/// budget's.
async fn read_spend(
    reader: &(impl SpendReader + Sync),
    settings: &TickerSettings,
    at: i64,
    now_ms: i64,
) -> Result<SpendRead, TickError> {
    // The scopes with spend or running units this period or the last, not every scope ever
    // seen: a tick's reads do not grow with the fleet's history.
    let listed = reader.active_scopes(at).await?;
    let recent = reader.recent_starts(at).await?;
    let in_budget: BTreeSet<Scope> = budget_scopes(&settings.scope_queues).into_iter().collect();
    // Each applied budget's scope, summed by its own period (`BudgetSpec::spend_scope`).
    let applied: BTreeSet<Scope> = settings
        .budgets
        .budgets()
        .map(|spec| spec.spend_scope(settings.period))
        .collect();
    let always: BTreeSet<Scope> = in_budget.union(&applied).cloned().collect();
    // The budget's own scopes and the applied budgets' (at most MAX_BUDGETS) are read whatever the index says, as `assess` reads them: the
    // budget figure the tick publishes is the one the enforcer checks. Of the others, at most
    // MAX_SCOPES_READ, in turn by the tick: what a tick reads does not grow with tag values.
    // The turn counts ticks, not minutes: ticks 2, 5 or 10 minutes apart would otherwise
    // step over windows and leave some scopes never read.
    let (scopes, unread) = scopes_to_read(
        listed,
        &always,
        at.div_euclid(settings.policy.tick_seconds.max(1)),
        settings.max_scopes_read,
    );
    let mut documents = Vec::with_capacity(scopes.len() + 1);
    let mut budget_totals = ScopeTotals::default();
    let mut budget_recent = Vec::new();
    let all_totals = reader.scopes_totals(&scopes).await?;
    // A unit running since an earlier period changes no sum this period: its scopes are kept
    // active by hand, or they would drop out of the index a period on.
    let running: Vec<Scope> = all_totals
        .iter()
        .filter(|(_, totals)| totals.running_by_period.values().any(|b| b.units > 0))
        .map(|(scope, _)| scope.clone())
        .collect();
    // Bookkeeping for the ticks to come: its failure is logged (the next tick tries again),
    // never a reason for this tick to publish nothing.
    if let Err(error) = reader.keep_active(&running, at).await {
        tracing::warn!(%error, "could not keep running scopes in the active-scope index");
    }
    let mut active: Vec<(&Scope, ScopeSpend)> = Vec::new();
    let mut applied_spend = BTreeMap::new();
    for (scope, totals) in &all_totals {
        let corrections: Vec<(i64, Decimal)> = corrections_of(&recent, scope).collect();
        if in_budget.contains(scope) {
            budget_totals.merge(totals);
            budget_recent.extend(corrections.iter().copied());
        }
        if applied.contains(scope) {
            applied_spend.insert(
                scope.clone(),
                totals.spend_at(
                    at,
                    scope.period(settings.period),
                    corrections.iter().copied(),
                ),
            );
        }
        if scope.is_budget() {
            // An applied budget has a document of its own (`budget_document`); one no
            // longer applied is not published.
            continue;
        }
        if totals.units == 0 {
            continue; // a scope whose units all moved elsewhere
        }
        let spend = totals.spend_at(at, settings.period, corrections);
        // A scope with nothing running and nothing spent this period has nothing to say; the
        // total always speaks (the dashboards and the silent-ticker alarm read it).
        let idle = spend.period_spend_usd.is_zero()
            && spend.running_tasks == 0
            && spend.unpriced_tasks == 0;
        if idle && *scope != Scope::Total {
            continue;
        }
        active.push((scope, spend));
    }
    // At most MAX_SCOPES_PUBLISHED scopes a tick, the total first and then the costliest
    // this period: each is about six custom metrics, and CloudWatch bills every one.
    active.sort_by(|(a, a_spend), (b, b_spend)| {
        (**b == Scope::Total)
            .cmp(&(**a == Scope::Total))
            .then(b_spend.period_spend_usd.cmp(&a_spend.period_spend_usd))
            .then(a.cmp(b))
    });
    let over_cap = active.len().saturating_sub(MAX_SCOPES_PUBLISHED);
    let not_published = over_cap + unread;
    for (scope, spend) in active.into_iter().take(MAX_SCOPES_PUBLISHED) {
        documents.push(
            scope_document(scope.kind(), dimension_value(scope), &spend, now_ms)
                .with_acceptable_dimensions(),
        );
    }
    if over_cap > 0 {
        tracing::warn!(
            over_cap,
            cap = MAX_SCOPES_PUBLISHED,
            "more active scopes than a tick publishes: the cheapest were left out"
        );
    }
    if unread > 0 {
        tracing::warn!(
            unread,
            cap = settings.max_scopes_read,
            "more active scopes than a tick reads: the others are read in the next minutes"
        );
    }
    documents.push(MetricDocument {
        timestamp_ms: now_ms,
        metrics: vec![Metric {
            name: metrics::SCOPES_NOT_PUBLISHED,
            unit: Unit::Count,
            value: Decimal::from(not_published),
        }],
        ..MetricDocument::default()
    });
    let budget_spend = budget_totals.spend_at(at, settings.period, budget_recent);
    Ok(SpendRead {
        documents,
        budget_spend,
        applied: applied_spend,
    })
}

/// Drops what the scopes' sums keep of periods before the one containing `at` that no figure
/// reads any more (`SpendReader::prune_before`), so a sum item does not grow with every period.
pub async fn prune_sums(
    reader: &(impl SpendReader + Sync),
    settings: &TickerSettings,
    at: i64,
) -> Result<usize, StoreError> {
    // A scope with attributes of a past period was active in it: pruned in the hours after,
    // while it is still among the scopes of this period or the last.
    // Past MAX_SCOPES_READ active scopes, a window of them in turn by the hour (this runs in
    // an hour's first minute).
    // The applied budgets' scopes every time: one of another period is listed in the index
    // only while it has news, and its buckets (a day's, a week's) outnumber the stack's.
    let budgets: BTreeSet<Scope> = settings
        .budgets
        .budgets()
        .map(|spec| spec.spend_scope(settings.period))
        .collect();
    let (scopes, _) = scopes_to_read(
        reader.active_scopes(at).await?,
        &budgets,
        at.div_euclid(3_600),
        settings.max_scopes_read,
    );
    reader.prune_before(&scopes, at).await
}

/// Scopes a tick publishes at most (about six custom metrics each, so about 1,200 metrics); the
/// ones left out are counted in `ScopesNotPublished`.
pub const MAX_SCOPES_PUBLISHED: usize = 200;

/// Active scopes a tick reads at most besides the total and the budget's own (8 sum items
/// each): twice the scopes it publishes, so up to this many the costliest are published.
pub const MAX_SCOPES_READ: usize = 400;

/// The scopes a tick reads at `turn` (its tick's number: consecutive ticks, consecutive turns):
/// the total and `always` (the budget's own)
/// every time and, of the other `listed` scopes, all of them when there are at most `cap`,
/// else the `turn`-th window of `cap` of them in their order, so that each is read once every
/// ceil(others / `cap`) turns. Returns the scopes to read and how many of the others were
/// left for other turns.
pub fn scopes_to_read(
    listed: Vec<Scope>,
    always: &BTreeSet<Scope>,
    turn: i64,
    cap: usize,
) -> (Vec<Scope>, usize) {
    let cap = cap.max(1);
    let mut read: BTreeSet<Scope> = always.clone();
    read.insert(Scope::Total);
    let others: Vec<Scope> = listed
        .into_iter()
        .filter(|scope| !read.contains(scope))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let windows = others.len().div_ceil(cap).max(1);
    let window =
        usize::try_from(turn.rem_euclid(i64::try_from(windows).unwrap_or(i64::MAX))).unwrap_or(0);
    let total = others.len();
    let before = read.len();
    read.extend(others.into_iter().skip(window * cap).take(cap));
    let taken = read.len() - before;
    (read.into_iter().collect(), total - taken)
}

/// The budget's status and the policy's decision at `at`, from the projections alone: no
/// metric, no spend mark, no call to AWS. With `baseline` (where the ticker keeps AWS
/// Budgets' last reading and its marks), the budget's spend is joined with AWS's figure as the
/// tick joins it, from what is stored. `None` when there is no budget to judge by. The enforcer
/// checks a freeze, stop or restore it is asked for against it (`app::verify`).
pub async fn assess<R, M>(
    reader: &R,
    settings: &TickerSettings,
    baseline: Option<&M>,
    at: i64,
) -> Result<Option<(BudgetStatus, Decision)>, StoreError>
where
    R: SpendReader + Sync,
    M: BaselineStore + Sync,
{
    let in_budget = budget_scopes(&settings.scope_queues);
    let totals = reader.scopes_totals(&in_budget).await?;
    let recent = reader.recent_starts(at).await?;
    let mut budget_totals = ScopeTotals::default();
    let mut budget_recent = Vec::new();
    for (scope, scope_totals) in &totals {
        budget_totals.merge(scope_totals);
        budget_recent.extend(corrections_of(&recent, scope));
    }
    let mut spend = budget_totals.spend_at(at, settings.period, budget_recent);
    let mut budget = settings.budget;
    if let Some(store) = baseline
        && let Some(cached) = store.cached_budget().await?
        && cached.budget.period == settings.period
    {
        let (period_start, _) = settings.period.bounds(at);
        let fused =
            join_stored(store, &cached.budget, period_start, spend.period_spend_usd).await?;
        budget = Some(cached.budget.budget());
        spend.period_spend_usd = fused.spend_usd;
    }
    let Some(budget) = budget else {
        return Ok(None);
    };
    let status = BudgetStatus::evaluate(
        budget,
        at,
        spend.period_spend_usd,
        spend.burn_rate_usd_per_hour,
    );
    let decision = decide(&status, &settings.policy, at);
    Ok(Some((status, decision)))
}

/// The budget scope's document: its spend, the limit, percent used, the forecast and the time
/// to exhaustion, and AWS's part when there is a baseline. Fixed dimensions, so alarms can name
/// them; the queues it covers are a property.
fn budget_document(
    settings: &TickerSettings,
    budget: Budget,
    status: &BudgetStatus,
    spend: &ScopeSpend,
    baseline: Option<&Fused>,
    at: i64,
    now_ms: i64,
) -> MetricDocument {
    let mut document = scope_document(
        metrics::BUDGET_SCOPE_KIND,
        metrics::BUDGET_SCOPE.to_owned(),
        spend,
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
    if let Some(fused) = baseline {
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
    push_budget_metrics(&mut document, budget.amount_usd, status, at);
    document
}

/// A budget's limit, percent used, forecast and (when it runs out) seconds to exhaustion.
fn push_budget_metrics(
    document: &mut MetricDocument,
    amount_usd: Decimal,
    status: &BudgetStatus,
    at: i64,
) {
    document.metrics.push(Metric {
        name: metrics::BUDGET_LIMIT_USD,
        unit: Unit::None,
        value: amount_usd,
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
}

/// An applied budget's document, dimensioned `ScopeKind=budget`, `Scope=<name>`: its spend,
/// limit, percent used, forecast, committed spend, and the step of the action its thresholds call for
/// (`BudgetActionLevel`: 0 none, 1 notify … 5 terminate, so an alarm can watch one number).
fn applied_budget_document(
    spec: &BudgetSpec,
    spend: &ScopeSpend,
    status: &BudgetStatus,
    action: Option<Action>,
    at: i64,
    now_ms: i64,
) -> MetricDocument {
    let mut document = scope_document(metrics::BUDGET_SCOPE_KIND, spec.name.clone(), spend, now_ms);
    push_budget_metrics(&mut document, spec.amount_usd, status, at);
    document.metrics.push(Metric {
        name: metrics::BUDGET_ACTION_LEVEL,
        unit: Unit::None,
        value: Decimal::from(action.map_or(0, Action::rank)),
    });
    document.metrics.push(Metric {
        name: metrics::COMMITTED_SPEND_USD,
        unit: Unit::None,
        value: spend.committed_usd,
    });
    document
        .properties
        .insert("action".into(), json!(action.map(Action::as_str)));
    document
        .properties
        .insert("open_ended_tasks".into(), json!(spend.open_ended_tasks));
    document
        .properties
        .insert("dry_run".into(), json!(spec.dry_run));
    document
        .properties
        .insert("budget_usd".into(), json!(spec.amount_usd.to_string()));
    document
}

/// The highest `BudgetActionLevel` of the enforcing applied budgets judged this tick, under
/// `ScopeKind=budget` alone: one metric whatever the number of budgets, watched by the
/// template's alarms on the applied budgets (the second path to the enforcer, which then
/// judges every budget itself). A dry-run budget does not count: one held at terminate all
/// period would keep the alarms in ALARM, and an enforcing budget reaching drain later would
/// never move them. 0 when every budget judged is a dry run; `None` when none was judged.
fn highest_action_document(readings: &[BudgetReading], now_ms: i64) -> Option<MetricDocument> {
    if readings.is_empty() {
        return None;
    }
    let highest = readings
        .iter()
        .filter(|reading| !reading.dry_run)
        .max_by_key(|reading| reading.action.map_or(0, Action::rank));
    Some(MetricDocument {
        timestamp_ms: now_ms,
        dimensions: vec![(
            metrics::DIMENSION_SCOPE_KIND,
            metrics::BUDGET_SCOPE_KIND.to_owned(),
        )],
        dimension_sets: Vec::new(),
        metrics: vec![Metric {
            name: metrics::BUDGET_ACTION_LEVEL,
            unit: Unit::None,
            value: Decimal::from(
                highest
                    .and_then(|reading| reading.action)
                    .map_or(0, Action::rank),
            ),
        }],
        properties: BTreeMap::from([(
            "budget".to_owned(),
            json!(highest.map(|reading| &reading.name)),
        )]),
    })
}

/// What to ask of the enforcer after `decision`: the level when one is reached; otherwise a
/// restore while the stack's own budget holds queues disabled (its freeze, in this period or
/// the previous one) and is below notify.
async fn request_for<A: AuditTrail + Sync>(
    window: &mut AuditWindow<'_, A>,
    decision: &Decision,
) -> Result<Option<EnforcerRequest>, TickError> {
    if decision.level >= Level::Notify {
        return Ok(Some(EnforcerRequest::Enforce {
            level: decision.level,
            reason: decision.reason.clone(),
        }));
    }
    let entries = window.entries().await?;
    Ok(
        (!queues_held_by(entries, &None).is_empty()).then(|| EnforcerRequest::Restore {
            reason: "the budget is below its notify level".into(),
            budget: None,
        }),
    )
}

/// The restores of the applied budgets that hold queues disabled (their drain) and whose
/// thresholds no longer call for `drain` or more, for real: a new period began, their spend
/// fell back, they became dry runs, or they were removed from the book while others remain
/// (`readings`: this tick's; `entries`: the audit trail of this period and the previous
/// one). One request per budget, each checked again by the enforcer
/// (`budget_restore_agrees`), each releasing that budget's holds only.
pub async fn budget_restores(
    entries: &[EnforcementRecorded],
    trigger: &(impl EnforcerTrigger + Sync),
    readings: &[BudgetReading],
) -> Result<Vec<String>, TickError> {
    let mut sent = Vec::new();
    for budget in budgets_holding_queues(entries) {
        let draining = readings.iter().any(|reading| {
            reading.name == budget
                && !reading.dry_run
                && reading.action.is_some_and(|action| action >= Action::Drain)
        });
        if draining {
            continue;
        }
        let request = EnforcerRequest::Restore {
            reason: format!("budget {budget} no longer calls for drain"),
            budget: Some(budget.clone()),
        };
        trigger
            .trigger(&request)
            .await
            .map_err(TickError::Trigger)?;
        sent.push(budget);
    }
    Ok(sent)
}

/// One tick at Unix milliseconds `now_ms`, the budget (if any) from `settings`.
pub async fn tick<R, A, T>(
    reader: &R,
    audit: &A,
    trigger: &T,
    sink: &impl MetricSink,
    settings: &TickerSettings,
    now_ms: i64,
) -> Result<TickReport, TickError>
where
    R: SpendReader + Sync,
    A: AuditTrail + Sync,
    T: EnforcerTrigger + Sync,
{
    tick_with_aws_budget(
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
pub async fn tick_with_aws_budget<R, A, T, S, M>(
    reader: &R,
    audit: &A,
    trigger: &T,
    sink: &impl MetricSink,
    settings: &TickerSettings,
    aws: Option<&AwsBaseline<S, M>>,
    now_ms: i64,
) -> Result<TickReport, TickError>
where
    R: SpendReader + Sync,
    A: AuditTrail + Sync,
    T: EnforcerTrigger + Sync,
    S: BudgetSource + Sync,
    M: BaselineStore + Sync,
{
    let at = now_ms.div_euclid(1000);
    let SpendRead {
        mut documents,
        mut budget_spend,
        applied,
    } = read_spend(reader, settings, at, now_ms).await?;
    let mut readings = Vec::with_capacity(settings.budgets.len());
    for spec in settings.budgets.budgets() {
        let spend = applied
            .get(&spec.spend_scope(settings.period))
            .copied()
            .unwrap_or_default();
        let (status, action) = spec.judge(at, spend.period_spend_usd, spend.burn_rate_usd_per_hour);
        documents.push(
            applied_budget_document(spec, &spend, &status, action, at, now_ms)
                .with_acceptable_dimensions(),
        );
        readings.push(BudgetReading {
            name: spec.name.clone(),
            amount_usd: spec.amount_usd,
            period_spend_usd: spend.period_spend_usd,
            used_percent: status.used_percent,
            forecast_usd: status.forecast_usd,
            action,
            dry_run: spec.dry_run,
        });
    }
    let mut report = TickReport {
        at,
        scopes: documents.len(),
        budget_spend_usd: budget_spend.period_spend_usd,
        budget_used_percent: None,
        decision: None,
        triggered: None,
        baseline: None,
        baseline_error: None,
        budgets: readings,
        triggered_budgets: None,
        restored_budgets: Vec::new(),
    };
    let mut window = AuditWindow::new(audit, settings.period, at);
    let applied = !settings.budgets.is_empty();
    if let Some(document) = highest_action_document(&report.budgets, now_ms) {
        documents.push(document);
    }
    let mut budget = settings.budget;
    if let Some(aws) = aws {
        match aws.fuse(settings, at, &budget_spend, &mut report).await {
            Ok(Some((from_aws, fused))) => {
                budget = Some(from_aws.budget());
                budget_spend.period_spend_usd = fused.spend_usd;
                report.budget_spend_usd = fused.spend_usd;
                report.baseline = Some(fused);
            }
            Ok(None) => {}
            Err(error) => {
                // The scopes' own figures are still published; the budget's are not, as
                // without AWS's part they would understate its spend. The applied budgets
                // do not depend on AWS Budgets: their orders still go.
                let emitted = sink.emit(&documents);
                let budgets_triggered =
                    trigger_budgets(trigger, &mut window, applied, &mut report).await;
                emitted?;
                budgets_triggered?;
                return Err(error);
            }
        }
    }
    if let Some(budget) = budget {
        let status = BudgetStatus::evaluate(
            budget,
            at,
            budget_spend.period_spend_usd,
            budget_spend.burn_rate_usd_per_hour,
        );
        documents.push(budget_document(
            settings,
            budget,
            &status,
            &budget_spend,
            report.baseline.as_ref(),
            at,
            now_ms,
        ));
        let decision = decide(&status, &settings.policy, at);
        report.budget_used_percent = Some(status.used_percent);
        // Every metric is published before anything that can fail: the alarms on them are the
        // second path to the enforcer (ADR 0005) and must see this tick whatever fails after.
        let emitted = sink.emit(&documents);
        let triggered = match request_for(&mut window, &decision).await {
            Ok(Some(request)) => match trigger.trigger(&request).await {
                Ok(()) => {
                    report.triggered = Some(request);
                    Ok(())
                }
                Err(error) => Err(TickError::Trigger(error)),
            },
            Ok(None) => Ok(()),
            Err(error) => Err(error),
        };
        let budgets_triggered = trigger_budgets(trigger, &mut window, applied, &mut report).await;
        report.decision = Some(decision);
        emitted?;
        triggered?;
        budgets_triggered?;
        return Ok(report);
    }
    let emitted = sink.emit(&documents);
    let budgets_triggered = trigger_budgets(trigger, &mut window, applied, &mut report).await;
    emitted?;
    budgets_triggered?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(count: usize) -> Vec<Scope> {
        (0..count)
            .map(|index| Scope::Tag("team".into(), format!("team-{index:04}").into()))
            .collect()
    }

    #[test]
    fn up_to_the_cap_every_active_scope_is_read_every_turn() {
        let budget = BTreeSet::from([Scope::Queue("q".into())]);
        let (read, unread) = scopes_to_read(tags(MAX_SCOPES_READ), &budget, 7, MAX_SCOPES_READ);
        assert_eq!((read.len(), unread), (MAX_SCOPES_READ + 2, 0));
        assert!(read.contains(&Scope::Total) && read.contains(&Scope::Queue("q".into())));
    }

    /// GIVEN ticks 2 minutes apart and two windows of active scopes WHEN the turn is taken
    /// as the tick does THEN consecutive ticks read both windows (by the minute, the turn
    /// stepped by two and read one window only).
    #[test]
    fn ticks_minutes_apart_still_visit_every_window() {
        let listed = tags(MAX_SCOPES_READ + 1);
        let tick_seconds = 120;
        let mut seen = BTreeSet::new();
        for tick in 0..2_i64 {
            let at = 1_793_491_200 + tick * tick_seconds;
            let (read, _) = scopes_to_read(
                listed.clone(),
                &BTreeSet::new(),
                at.div_euclid(tick_seconds),
                MAX_SCOPES_READ,
            );
            seen.extend(read);
        }
        assert_eq!(seen.len(), listed.len() + 1, "every scope and the total");
    }

    #[test]
    fn past_the_cap_each_scope_is_read_once_in_a_round_of_turns() {
        let budget = BTreeSet::from([Scope::Queue("q".into())]);
        let listed = tags(2 * MAX_SCOPES_READ + 100);
        let mut seen: BTreeMap<Scope, usize> = BTreeMap::new();
        for turn in 30..33 {
            // The listing's order does not matter.
            let mut shuffled = listed.clone();
            shuffled.reverse();
            let (read, unread) = scopes_to_read(shuffled, &budget, turn, MAX_SCOPES_READ);
            assert!(read.contains(&Scope::Total) && read.contains(&Scope::Queue("q".into())));
            let others = read.len() - 2;
            assert!(others <= MAX_SCOPES_READ, "{others}");
            assert_eq!(others + unread, listed.len());
            for scope in read {
                *seen.entry(scope).or_default() += 1;
            }
        }
        for scope in &listed {
            assert_eq!(seen.get(scope), Some(&1), "{scope:?}");
        }
        assert_eq!(seen[&Scope::Total], 3);
    }

    /// The alarms' metric is the highest level of the enforcing budgets: a dry-run budget at
    /// terminate does not hold it up (it would keep the alarms in ALARM all period).
    #[test]
    fn the_highest_action_level_counts_enforcing_budgets_only() {
        let reading = |name: &str, action: Option<Action>, dry_run: bool| BudgetReading {
            name: name.into(),
            amount_usd: Decimal::TEN,
            period_spend_usd: Decimal::ONE,
            used_percent: Decimal::TEN,
            forecast_usd: Decimal::ONE,
            action,
            dry_run,
        };
        let level = |readings: &[BudgetReading]| {
            highest_action_document(readings, 0).map(|document| {
                (
                    document.metrics[0].value,
                    document.properties["budget"].clone(),
                )
            })
        };
        assert_eq!(level(&[]), None);
        assert_eq!(
            level(&[
                reading("dry", Some(Action::Terminate), true),
                reading("team", Some(Action::Drain), false),
                reading("quiet", None, false),
            ]),
            Some((Decimal::TWO, json!("team")))
        );
        assert_eq!(
            level(&[reading("dry", Some(Action::Terminate), true)]),
            Some((Decimal::ZERO, serde_json::Value::Null))
        );
    }
}
