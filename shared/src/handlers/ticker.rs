//! The ticker function, on every scheduled invocation: first one tick (`app::ticker`: metrics,
//! the budget decision, the enforcer's trigger), then the jobs past their `batchguard:max-usd`
//! cap sent to the enforcer (`app::job_caps`; run even when the tick failed; its failure fails
//! the invocation once the rest has run), safe admission asked of the enforcer while a budget
//! has `admission = "safe"` (the same),
//! then the silent-job check (jobs still running
//! in the projections but silent for too long are looked up in AWS Batch, so a lost terminal
//! event cannot leave phantom spend growing; a failure there is reported, and the check runs
//! even when the tick failed). The payload is ignored.

use serde_json::Value;

use super::HandlerError;
use crate::app::collector::Collector;
use crate::app::job_caps;
use crate::app::silent_jobs::{self, SilentCheck};
use crate::app::ticker::{self, AwsBaseline, NoAwsBudget, TickError, TickerSettings};
use crate::core::budgets::BudgetBook;
use crate::ports::{
    AuditTrail, BaselineStore, BatchControl, BudgetSource, BudgetStore, EnforcerTrigger, EventLog,
    JobProjections, MetricSink, Projector, Quarantine, SilentJobs, SpendReader,
};

impl From<TickError> for HandlerError {
    fn from(error: TickError) -> Self {
        match error {
            TickError::Store(_) | TickError::Trigger(_) => Self::Retryable(error.to_string()),
            TickError::Metrics(_) | TickError::PeriodMismatch { .. } => {
                Self::NonRetryable(error.to_string())
            }
        }
    }
}

/// Everything one ticker invocation uses, built once per cold start by the function's `main`.
#[derive(Debug)]
pub struct TickerFunction<B, P, L, T, K, S = NoAwsBudget, M = NoAwsBudget> {
    /// AWS Batch, for the silent-job check.
    pub batch: B,
    /// The projections: spend to read and silent jobs to find.
    pub projector: P,
    /// The collector the silent jobs' current state goes through.
    pub collector: Collector<L, P>,
    /// The audit trail (the event log).
    pub audit: L,
    pub trigger: T,
    pub sink: K,
    pub settings: TickerSettings,
    /// With `BUDGET_NAME`: AWS Budgets and where the marks are kept.
    pub aws_budget: Option<AwsBaseline<S, M>>,
    /// Which running jobs are checked with AWS Batch, and how many a run.
    pub silent: SilentCheck,
    /// The applied budgets as last read (`Default::default()` to start): a tick whose read
    /// fails judges these rather than none.
    pub last_budgets: std::sync::Mutex<Option<std::sync::Arc<BudgetBook>>>,
}

impl<B, P, L, T, K, S, M> TickerFunction<B, P, L, T, K, S, M>
where
    B: BatchControl + Sync,
    P: SpendReader + SilentJobs + JobProjections + Projector + Sync,
    L: EventLog + Quarantine + AuditTrail + BudgetStore + Sync,
    T: EnforcerTrigger + Sync,
    K: MetricSink + Sync,
    S: BudgetSource + Sync,
    M: BaselineStore + Sync,
{
    /// One invocation at Unix milliseconds `now_ms`: `{"tick": …, "reconciled": …}`.
    pub async fn invoke(&self, now_ms: i64) -> Result<Value, HandlerError> {
        // The budget decision first, so no number of silent jobs can delay it; the silent
        // jobs' corrections reach the spend on the next tick. The check runs even when the
        // tick failed (it is independent), and its own failure is reported, not raised.
        let (settings, budgets_error) = self.settings_with_budgets().await;
        let tick = ticker::tick_with_aws_budget(
            &self.projector,
            &self.audit,
            &self.trigger,
            &self.sink,
            &settings,
            self.aws_budget.as_ref(),
            now_ms,
        )
        .await;
        // Once an hour (the run in an hour's first tick interval: a schedule of N minutes is
        // not aligned to the clock), after the tick: the scopes' sums drop what past periods
        // left that nothing reads.
        let at = now_ms.div_euclid(1000);
        let interval = self.settings.policy.tick_seconds.max(60);
        let pruned = if at.rem_euclid(3600) < interval {
            match ticker::prune_sums(&self.projector, &self.settings, at).await {
                Ok(items) => Value::from(items),
                Err(error) => {
                    tracing::warn!(%error, "pruning past periods from the scopes' sums failed");
                    Value::String(error.to_string())
                }
            }
        } else {
            Value::Null
        };
        // Jobs past their cap: independent of the budgets, so after the tick whatever it did.
        // A failure fails the invocation once the rest has run (below): retried, then in the
        // control dead-letter queue and its alarm, so caps that stop working are not silent.
        let (capped, caps_failed) =
            match job_caps::check(&self.projector, &self.trigger, now_ms).await {
                Ok(report) => (serde_json::to_value(report).unwrap_or(Value::Null), None),
                Err(error) => {
                    tracing::error!(%error, "the capped jobs were not sent to the enforcer");
                    (Value::String(error.to_string()), Some(error.to_string()))
                }
            };
        // Safe admission: every tick while a budget has `admission = "safe"`, the enforcer is
        // asked to judge the waiting jobs (it reads the budgets' committed spend itself). A
        // failure fails the invocation once the rest ran.
        let safe = settings
            .budgets
            .budgets()
            .any(|spec| spec.admission == crate::core::budgets::Admission::Safe);
        let (admission, admission_failed) = if safe {
            let request = crate::core::enforcement::EnforcerRequest::Admit {
                reason: "the tick".to_owned(),
            };
            match self.trigger.trigger(&request).await {
                Ok(()) => (Value::String("sent".to_owned()), None),
                Err(error) => {
                    tracing::error!(%error, "safe admission was not sent to the enforcer");
                    (
                        Value::String(error.to_string()),
                        Some(format!("asking the enforcer for safe admission: {error}")),
                    )
                }
            }
        } else {
            (Value::Null, None)
        };
        let checked = match silent_jobs::check(
            &self.batch,
            &self.projector,
            &self.collector,
            &self.silent,
            now_ms,
        )
        .await
        {
            Ok(report) => {
                if let Err(error) = self.sink.emit(&report.documents(now_ms)) {
                    tracing::warn!(%error, "the silent-job check's metric was not written");
                }
                serde_json::to_value(report).unwrap_or(Value::Null)
            }
            Err(error) => {
                tracing::warn!(%error, "the silent-job check failed");
                Value::String(error.to_string())
            }
        };
        let tick = tick?;
        if let Some(error) = caps_failed.or(admission_failed) {
            return Err(HandlerError::Retryable(format!(
                "{error} (the tick and the silent-job check ran)"
            )));
        }
        let mut answer = serde_json::json!({ "tick": tick, "caps": capped, "admission": admission, "reconciled": checked, "pruned": pruned });
        if let Some(error) = budgets_error {
            answer["budgets_error"] = Value::String(error);
        }
        Ok(answer)
    }

    /// The settings with the applied budgets read now (one consistent `GetItem`). When the
    /// read fails, the last reading is used and the error returned, so a store that fails
    /// for a minute leaves no budget unjudged; a stored book that no longer validates is
    /// the same (`budgets apply` refuses to store one; the error names the budget and field).
    async fn settings_with_budgets(&self) -> (TickerSettings, Option<String>) {
        let mut settings = self.settings.clone();
        let read = self.audit.budgets().await;
        let mut last = self
            .last_budgets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let error = match read {
            Ok((_, book)) => {
                *last = Some(std::sync::Arc::new(book.unwrap_or_default()));
                None
            }
            Err(error) => {
                tracing::error!(%error, "could not read the applied budgets: judging the last reading");
                Some(error.to_string())
            }
        };
        if let Some(book) = last.as_ref() {
            settings.budgets = book.clone();
        }
        (settings, error)
    }
}
