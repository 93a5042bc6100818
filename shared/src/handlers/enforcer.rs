//! The enforcer function: what to do, from whichever asked.
//!
//! - the ticker, or a person: `{"action": "enforce", "level": "freeze", "reason": "…"}`;
//! - a person: `{"action": "restore"}` re-enables what the stack's budget disabled; the ticker
//!   or a person: `{"action": "restore", "budget": "genomics"}` what one applied budget's drain
//!   disabled (checked against that budget on the ledger), each only where no other holder
//!   still holds the queue;
//! - the ticker, for the budgets applied with `budgets apply`:
//!   `{"action": "budgets", "orders": [{"budget": "genomics", "action": "terminate", "reason": "…"}]}`;
//!   each order is checked against its own budget in the stored book and the ledger;
//! - the ticker, for jobs past their `batchguard:max-usd` cap:
//!   `{"action": "caps", "jobs": [{"job_id": "…"}]}`; each job's own projection is read and
//!   must show it running at or over its cap;
//! - a CloudWatch alarm (the alarm → Lambda action payload): acts only in state `ALARM`, at the
//!   level the alarm's description names as `batchguard:level=<notify|freeze|stop>`; an alarm
//!   whose description says `batchguard:budgets` (on the applied budgets' highest
//!   `BudgetActionLevel`) has every applied budget judged on the ledger and acted on.
//!
//! Whoever asks, a freeze, stop or restore is carried out only if the ledger agrees
//! (`app::verify`); otherwise it is refused, recorded and notified.

use std::collections::BTreeMap;

use aws_lambda_events::event::cloudwatch_alarms::{CloudWatchAlarm, CloudWatchAlarmStateValue};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::HandlerError;
use crate::app::enforcer::{
    ASK_AGAIN_AFTER_MS, ActionFailed, CappedJob, EnforceError, EnforcementReport, Enforcer,
};
use crate::app::job_caps::MAX_CAPS_A_TICK;
use crate::app::verify::LedgerCheck;
use crate::core::arrival::GateKind;
use crate::core::budgets::Action;
use crate::core::caps::{CapOrder, cap_agrees};
use crate::core::enforcement::{BudgetOrder, EnforcerRequest, Step, budget_restore_agrees};
use crate::core::policy::Level;
use crate::metrics::{self, Metric, MetricDocument, Unit};
use crate::ports::{
    AdmissionGates, AuditTrail, BaselineStore, BatchControl, BudgetStore, EventLog, JobProjections,
    MetricSink, Notifier, SpendReader,
};

/// The marker in an alarm's description that says which level it enforces.
pub const ALARM_LEVEL_MARKER: &str = "batchguard:level=";
/// The marker in the description of an alarm on the applied budgets' `BudgetActionLevel`: the
/// enforcer judges every applied budget itself and acts on each at a threshold.
pub const ALARM_BUDGETS_MARKER: &str = "batchguard:budgets";

/// What the payload asks for; `Ok(None)` for an alarm that is not in `ALARM` (it recovered).
pub fn read_request(payload: Value) -> Result<Option<EnforcerRequest>, HandlerError> {
    if payload.get("action").is_some() {
        return serde_json::from_value(payload)
            .map(Some)
            .map_err(|e| HandlerError::NonRetryable(format!("not an enforcer request: {e}")));
    }
    if payload.get("alarmData").is_none() {
        return Err(HandlerError::NonRetryable(
            "expected {\"action\": \"enforce\" | \"restore\" | \"budgets\" | \"caps\" | \"judge_budgets\"} or a CloudWatch alarm payload".into(),
        ));
    }
    let alarm: CloudWatchAlarm = serde_json::from_value(payload)
        .map_err(|e| HandlerError::NonRetryable(format!("not a CloudWatch alarm payload: {e}")))?;
    let data = alarm.alarm_data;
    let in_alarm = data
        .state
        .as_ref()
        .is_some_and(|state| state.value == CloudWatchAlarmStateValue::Alarm);
    if !in_alarm {
        return Ok(None);
    }
    let description = data
        .configuration
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if description.contains(ALARM_BUDGETS_MARKER) {
        let reason = data
            .state
            .as_ref()
            .map(|state| format!("alarm {} in ALARM: {}", data.alarm_name, state.reason))
            .unwrap_or_else(|| format!("alarm {} in ALARM", data.alarm_name));
        return Ok(Some(EnforcerRequest::JudgeBudgets { reason }));
    }
    let level = description
        .split_once(ALARM_LEVEL_MARKER)
        .map(|(_, rest)| rest.split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or_default())
        .and_then(|word| serde_json::from_value::<Level>(Value::String(word.to_ascii_lowercase())).ok())
        .ok_or_else(|| {
            HandlerError::NonRetryable(format!(
                "alarm {:?}: its description names no level ({ALARM_LEVEL_MARKER}notify|freeze|stop)",
                data.alarm_name
            ))
        })?;
    let reason = data
        .state
        .map(|state| format!("alarm {} in ALARM: {}", data.alarm_name, state.reason))
        .unwrap_or_default();
    Ok(Some(EnforcerRequest::Enforce { level, reason }))
}

impl From<EnforceError> for HandlerError {
    fn from(error: EnforceError) -> Self {
        Self::Retryable(error.to_string())
    }
}

/// One `EnforcementActions` count per action taken (dry-run ones too, dimensioned apart).
pub fn action_documents(report: &EnforcementReport, now_ms: i64) -> Vec<MetricDocument> {
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for taken in &report.actions {
        *counts.entry(taken.action.name()).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(action, count)| MetricDocument {
            timestamp_ms: now_ms,
            dimensions: vec![
                (metrics::DIMENSION_LEVEL, report.level.as_str().to_owned()),
                (metrics::DIMENSION_ACTION, action.to_owned()),
                (metrics::DIMENSION_DRY_RUN, report.dry_run.to_string()),
            ],
            dimension_sets: Vec::new(),
            metrics: vec![Metric {
                name: metrics::ENFORCEMENT_ACTIONS,
                unit: Unit::Count,
                value: Decimal::from(count),
            }],
            properties: BTreeMap::from([("reason".to_owned(), json!(report.reason))]),
        })
        .collect()
}

/// The applied budgets as stored (the enforcer's own read, not a request's word): `Ok(Err(why))`
/// when the stored book cannot be read as budgets (each caller then refuses, or admits, and
/// says why); a store that cannot be reached is an error, retried.
async fn stored_book<B, L, N, P>(
    enforcer: &Enforcer<B, L, N, P>,
) -> Result<Result<(u64, crate::core::budgets::BudgetBook), String>, HandlerError>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + BudgetStore + Sync,
    N: Notifier + Sync,
    P: JobProjections + Sync,
{
    match enforcer.applied_budgets_versioned().await {
        Ok(read) => Ok(Ok(read)),
        Err(EnforceError::Store(error @ crate::ports::StoreError::Corrupt { .. })) => {
            Ok(Err(format!("the applied budgets cannot be read: {error}")))
        }
        Err(error) => Err(error.into()),
    }
}

/// The applied budgets' orders: the book read from the store (not the request's word), each
/// order checked against the ledger on its own; those it agrees with are carried out, each of
/// the others refused and recorded (`Enforcer::refuse`, one notice per step a period).
async fn budget_orders<B, L, N, P, R, M>(
    enforcer: &Enforcer<B, L, N, P>,
    check: &LedgerCheck<R, M>,
    orders: Vec<BudgetOrder>,
    now_ms: i64,
) -> Result<EnforcementReport, HandlerError>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + BudgetStore + Sync,
    N: Notifier + Sync,
    P: JobProjections + Sync,
    R: SpendReader + Sync,
    M: BaselineStore + Sync,
{
    // A book that cannot be read refuses every order, recorded and notified (once a period
    // per budget and action), rather than failing each tick in silence; `budgets apply`
    // replaces it (`doctor` names it too).
    let (version, book) = match stored_book(enforcer).await? {
        Ok((version, book)) => (version, book),
        Err(why) => {
            let mut report = EnforcementReport {
                reason: why.clone(),
                ..EnforcementReport::default()
            };
            for order in &orders {
                let refusal = enforcer
                    .refuse_as(
                        order.action.level().into(),
                        &format!("budget {}: {}", order.budget, order.action),
                        &why,
                        now_ms,
                    )
                    .await?;
                report.actions.extend(refusal.actions);
                report.failures.extend(refusal.failures);
                // What the budget holds stays held, and readable past this period.
                enforcer
                    .carry_holds(&Some(order.budget.clone()), &why, now_ms, &mut report)
                    .await?;
            }
            return Ok(report);
        }
    };
    // One read of the ledger checks each order and judges every budget.
    let checked = check
        .check_and_judge_budgets(
            &book,
            &orders,
            "judged on the ledger by the enforcer",
            now_ms,
        )
        .await
        .map_err(|e| {
            HandlerError::Retryable(format!("reading the ledger to check the budgets: {e}"))
        })?;
    let mut agreed: Vec<BudgetOrder> = Vec::new();
    let mut figures = BTreeMap::new();
    let mut refused = Vec::new();
    for (order, verdict) in orders.into_iter().zip(checked.verdicts) {
        match verdict {
            Ok(shed) => {
                figures.insert(order.budget.clone(), shed);
                agreed.push(order);
            }
            Err(why) => {
                tracing::warn!(%why, reason = %order.reason, "budget order refused");
                refused.push(
                    enforcer
                        .refuse_as(
                            order.action.level().into(),
                            &format!("budget {}: {}", order.budget, order.action),
                            &format!("{why}; the request said: {}", order.reason),
                            now_ms,
                        )
                        .await?,
                );
            }
        }
    }
    // Every budget the ledger puts at drain or more is carried out, at the stricter of its
    // order's action and the ledger's, whatever the request listed: so the drain gate this run
    // writes is the enforcer's own judgement, and a forged, late or empty request can neither
    // drop a draining budget from it nor weaken one (an order below the ledger's action is
    // agreed with, `budget_agrees`, and raised here).
    for (judged, judged_figures) in checked.judged {
        if judged.action < Action::Drain {
            continue;
        }
        match agreed
            .iter_mut()
            .find(|order| order.budget == judged.budget)
        {
            Some(order) if order.action < judged.action => {
                order.action = judged.action;
                order.reason = judged.reason;
            }
            Some(_) => {}
            None => {
                figures.insert(judged.budget.clone(), judged_figures);
                agreed.push(judged);
            }
        }
    }
    let mut report = enforcer
        .enforce_budgets_with_figures(&book, &agreed, &figures, now_ms)
        .await?;
    if let Some(gate) = report.gate.as_mut() {
        gate.book_version = version;
    }
    for refusal in refused {
        report.actions.extend(refusal.actions);
        report.failures.extend(refusal.failures);
    }
    Ok(report)
}

/// The alarm path for the applied budgets: the stored book (a corrupt one refuses, recorded
/// and notified), each budget judged on the ledger here (by its own period), and those at a
/// threshold carried out as the ticker's orders would be (checked again on the way: the same
/// reads).
async fn judged_budgets<B, L, N, P, R, M>(
    enforcer: &Enforcer<B, L, N, P>,
    check: &LedgerCheck<R, M>,
    reason: &str,
    now_ms: i64,
) -> Result<EnforcementReport, HandlerError>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + BudgetStore + Sync,
    N: Notifier + Sync,
    P: JobProjections + Sync,
    R: SpendReader + Sync,
    M: BaselineStore + Sync,
{
    let book = match stored_book(enforcer).await? {
        Ok((_, book)) => book,
        Err(why) => {
            return Ok(enforcer
                .refuse_as(
                    Step::Stop,
                    "budgets alarm",
                    &format!("{why}; {reason}"),
                    now_ms,
                )
                .await?);
        }
    };
    let orders = check
        .judge_budgets(&book, reason, now_ms)
        .await
        .map_err(|e| {
            HandlerError::Retryable(format!("reading the ledger to judge the budgets: {e}"))
        })?;
    if orders.is_empty() {
        // The alarm says a budget is at a threshold; the ledger says none is (a forged
        // metric, or one that has since fallen back): refused, recorded, notified once.
        return Ok(enforcer
            .refuse_as(
                Step::Stop,
                "budgets alarm",
                &format!("no applied budget is at a threshold on the ledger; {reason}"),
                now_ms,
            )
            .await?);
    }
    budget_orders(enforcer, check, orders, now_ms).await
}

/// Safe admission: the stored book (one that cannot be read admits everything, said in the
/// answer and the log; `doctor` and the budgets' orders report it too), each safe budget's
/// committed spend read from the ledger here, and the waiting jobs that do not fit cancelled
/// (`Enforcer::admit`).
async fn admission<B, L, N, P, R, M>(
    enforcer: &Enforcer<B, L, N, P>,
    check: &LedgerCheck<R, M>,
    reason: &str,
    now_ms: i64,
) -> Result<EnforcementReport, HandlerError>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + BudgetStore + Sync,
    N: Notifier + Sync,
    P: JobProjections + Sync,
    R: SpendReader + Sync,
    M: BaselineStore + Sync,
{
    let (version, book) = match stored_book(enforcer).await? {
        Ok((version, book)) => (version, book),
        Err(why) => {
            let why = format!("{why}; nothing is admitted or turned away");
            tracing::warn!(%why, "safe admission");
            return Ok(EnforcementReport {
                reason: why,
                ..EnforcementReport::default()
            });
        }
    };
    let left = check.uncommitted(&book, now_ms).await.map_err(|e| {
        HandlerError::Retryable(format!("reading the ledger for safe admission: {e}"))
    })?;
    let mut report = enforcer.admit(&book, &left, now_ms).await?;
    if let Some(gate) = report.gate.as_mut() {
        gate.book_version = version;
    }
    if !reason.is_empty() {
        report.reason = format!("{}; {reason}", report.reason);
    }
    Ok(report)
}

/// One applied budget's restore: the stored book read (one that cannot be read refuses,
/// recorded and notified: a queue is never re-enabled on a guess) and the budget judged on
/// the ledger here; while its spend still calls for `drain` or more, for real, the restore
/// is refused; otherwise exactly the queues it alone holds are re-enabled
/// (`Enforcer::restore_holder`).
async fn budget_restore<B, L, N, P, R, M>(
    enforcer: &Enforcer<B, L, N, P>,
    check: &LedgerCheck<R, M>,
    budget: &str,
    reason: &str,
    now_ms: i64,
) -> Result<EnforcementReport, HandlerError>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + BudgetStore + Sync,
    N: Notifier + Sync,
    P: JobProjections + Sync,
    R: SpendReader + Sync,
    M: BaselineStore + Sync,
{
    let label = format!("budget {budget}: restore");
    let book = match stored_book(enforcer).await? {
        Ok((_, book)) => book,
        Err(why) => {
            let mut report = enforcer
                .refuse_as(Step::Restore, &label, &why, now_ms)
                .await?;
            // Refused, so still held: carried into this period, readable past it.
            enforcer
                .carry_holds(&Some(budget.to_owned()), &why, now_ms, &mut report)
                .await?;
            return Ok(report);
        }
    };
    let acting = book.get(budget).is_some_and(|spec| !spec.dry_run);
    let judged = if acting {
        check
            .judge_budgets(&book, reason, now_ms)
            .await
            .map_err(|e| {
                HandlerError::Retryable(format!("reading the ledger to check the restore: {e}"))
            })?
            .into_iter()
            .find(|order| order.budget == budget)
            .map(|order| order.action)
    } else {
        None
    };
    match budget_restore_agrees(budget, judged) {
        Ok(()) => {
            let reason = if reason.is_empty() {
                "restore requested"
            } else {
                reason
            };
            Ok(enforcer
                .restore_holder(&Some(budget.to_owned()), reason, now_ms)
                .await?)
        }
        Err(why) => {
            tracing::warn!(%why, %reason, "budget restore refused");
            Ok(enforcer
                .refuse_as(Step::Restore, &label, &why, now_ms)
                .await?)
        }
    }
}

/// Jobs the ticker found past their cap: each one's own projection read now (not the
/// request's word) must show it running at or over a valid cap (`cap_agrees`); those that do
/// are terminated (`Enforcer::enforce_caps`), and each of the others is refused and recorded,
/// except a job that has stopped meanwhile, which needs nothing.
async fn cap_orders<B, L, N, P>(
    enforcer: &Enforcer<B, L, N, P>,
    caps: &(impl JobProjections + Sync),
    jobs: Vec<CapOrder>,
    now_ms: i64,
) -> Result<EnforcementReport, HandlerError>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + BudgetStore + Sync,
    N: Notifier + Sync,
    P: JobProjections + Sync,
{
    let at = now_ms.div_euclid(1000);
    let mut agreed = Vec::new();
    let mut versions = BTreeMap::new();
    let mut refused = Vec::new();
    let mut unread = Vec::new();
    // At most what a tick sends: a request naming more (by hand) is cut, not run to the
    // function's timeout.
    for order in jobs.into_iter().take(MAX_CAPS_A_TICK) {
        // One job's projection that cannot be read holds up no other.
        let reading = match caps.cap_reading(&order.job_id, at).await {
            Ok(reading) => reading,
            Err(error) => {
                unread.push(ActionFailed {
                    action: "ReadProjection",
                    target: order.job_id.clone(),
                    error: error.to_string(),
                });
                continue;
            }
        };
        match cap_agrees(reading.as_ref(), &order.job_id) {
            // (`cap_agrees` agrees only with a reading.)
            Ok(cap_usd) => {
                if let Some(reading) = reading {
                    versions.insert(order.job_id.clone(), reading.version);
                    agreed.push(CappedJob {
                        job_id: order.job_id,
                        cap_usd,
                        cost_usd: reading.cost_usd,
                    });
                }
            }
            Err(_) if reading.as_ref().is_some_and(|r| !r.running) => {}
            Err(why) => {
                tracing::warn!(%why, "cap order refused");
                refused.push(
                    enforcer
                        .refuse_as(
                            Step::Stop,
                            &format!("job cap: {}", order.job_id),
                            &why,
                            now_ms,
                        )
                        .await?,
                );
            }
        }
    }
    let mut report = enforcer.enforce_caps(&agreed, now_ms).await?;
    // Each job judged is out of the search for the time Batch takes to stop a job (or, one
    // left running — protected, a dry run, not answered for — until then): the tick does not
    // send it again every minute, nor let it crowd out jobs that reach their cap later. A job
    // whose stop failed stays, to be tried again; any change of a job puts it back.
    let until = at + ASK_AGAIN_AFTER_MS / 1000;
    for job in &agreed {
        if report
            .failures
            .iter()
            .any(|failed| failed.target == job.job_id)
        {
            continue;
        }
        let version = versions.get(&job.job_id).copied().unwrap_or_default();
        if let Err(error) = caps.defer_cap(&job.job_id, version, until).await {
            tracing::warn!(job_id = %job.job_id, %error, "the capped job stays in the search");
        }
    }
    for refusal in refused {
        report.actions.extend(refusal.actions);
        report.failures.extend(refusal.failures);
    }
    report.failures.extend(unread);
    Ok(report)
}

/// Handles one invocation at Unix milliseconds `now_ms`; the actions taken are counted in
/// `sink`. A freeze, stop or restore the ledger does not agree with (`check`) is refused:
/// recorded, notified once, and nothing else done.
pub async fn handle<B, L, N, P, R, M>(
    enforcer: &Enforcer<B, L, N, P>,
    check: &LedgerCheck<R, M>,
    sink: &impl MetricSink,
    payload: Value,
    now_ms: i64,
) -> Result<Option<EnforcementReport>, HandlerError>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + BudgetStore + AdmissionGates + Sync,
    N: Notifier + Sync,
    P: JobProjections + Sync,
    R: SpendReader + JobProjections + Sync,
    M: BaselineStore + Sync,
{
    let Some(request) = read_request(payload)? else {
        return Ok(None);
    };
    let verdict = check.check(&request, now_ms).await.map_err(|e| {
        HandlerError::Retryable(format!("reading the ledger to check the request: {e}"))
    })?;
    // The gate a run verifies for the admitter: the budgets' orders give the drain gate,
    // safe admission the safe gate.
    let gate_kind = match &request {
        EnforcerRequest::Budgets { .. } | EnforcerRequest::JudgeBudgets { .. } => {
            Some(GateKind::Drain)
        }
        EnforcerRequest::Admit { .. } => Some(GateKind::Safe),
        _ => None,
    };
    let mut report = match (verdict, request) {
        (_, EnforcerRequest::Budgets { orders }) => {
            budget_orders(enforcer, check, orders, now_ms).await?
        }
        (_, EnforcerRequest::JudgeBudgets { reason }) => {
            judged_budgets(enforcer, check, &reason, now_ms).await?
        }
        (_, EnforcerRequest::Caps { jobs }) => {
            cap_orders(enforcer, &check.reader, jobs, now_ms).await?
        }
        (_, EnforcerRequest::Admit { reason }) => {
            admission(enforcer, check, &reason, now_ms).await?
        }
        (Err(why), EnforcerRequest::Enforce { level, reason }) => {
            tracing::warn!(%why, %reason, "request refused");
            enforcer
                .refuse(
                    level.into(),
                    &format!("{why}; the request said: {reason}"),
                    now_ms,
                )
                .await?
        }
        (
            _,
            EnforcerRequest::Restore {
                reason,
                budget: Some(budget),
            },
        ) => budget_restore(enforcer, check, &budget, &reason, now_ms).await?,
        (Err(why), EnforcerRequest::Restore { reason, .. }) => {
            tracing::warn!(%why, %reason, "request refused");
            enforcer.refuse(Step::Restore, &why, now_ms).await?
        }
        (Ok(()), EnforcerRequest::Enforce { level, reason }) => {
            enforcer.enforce(level, &reason, now_ms).await?
        }
        (Ok(()), EnforcerRequest::Restore { reason, .. }) => {
            let reason = if reason.is_empty() {
                "restore requested".to_owned()
            } else {
                reason
            };
            enforcer.restore(&reason, now_ms).await?
        }
    };
    // Stored for the admitter: a gate that cannot be stored is a failure (the admitter would
    // go on with the last one until it is too old to trust, and then admit everything until
    // the next run), so the invocation is retried and, past the retries, dead-lettered.
    // A safe gate from a listing that missed a queue, or jobs whose description could not be
    // read, would say too much is left: it is stored with nothing left to judge by (the
    // admitter then admits, and the tick judges every job), so the last one does not linger.
    let listed_all = !report.failures.iter().any(|f| f.action == "ListJobs")
        && report.unverified_jobs.is_empty();
    if gate_kind == Some(GateKind::Safe)
        && !listed_all
        && let Some(gate) = report.gate.as_mut()
    {
        gate.left.clear();
    }
    if let (Some(kind), Some(gate)) = (gate_kind, &report.gate)
        && let Err(error) = enforcer.log().put_gate(kind, gate).await
    {
        report.failures.push(ActionFailed {
            action: "PutGate",
            target: kind.as_str().to_owned(),
            error: error.to_string(),
        });
    }
    sink.emit(&action_documents(&report, now_ms))
        .map_err(|e| HandlerError::NonRetryable(e.to_string()))?;
    if !report.failures.is_empty() {
        // The rest was done and recorded; a retry does only what failed.
        let failed: Vec<String> = report
            .failures
            .iter()
            .map(|f| format!("{} {}: {}", f.action, f.target, f.error))
            .collect();
        return Err(HandlerError::Retryable(format!(
            "{} action(s) failed: {}",
            failed.len(),
            failed.join("; ")
        )));
    }
    Ok(Some(report))
}
