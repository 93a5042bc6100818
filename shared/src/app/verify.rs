//! The enforcer's check of what it is asked: a freeze, stop or restore is carried out only when
//! the ledger agrees (`core::enforcement::agrees`), read from the projections as the ticker
//! reads them (`app::ticker::assess`). An alarm or an invocation by hand is a signal anyone with
//! `cloudwatch:PutMetricData` or `lambda:InvokeFunction` in the account can send; the
//! projections are written only from AWS Batch's and ECS's own events.

use std::collections::BTreeMap;

use crate::app::ticker::{NoAwsBudget, TickerSettings, assess, corrections_of};
use crate::core::budgets::{Action, BudgetBook, BudgetFigures, BudgetSpec};
use crate::core::enforcement::{BudgetOrder, EnforcerRequest, agrees, budget_agrees};
use crate::core::policy::Level;
use crate::core::scope::Scope;
use crate::ports::{BaselineStore, SpendReader, StoreError};

/// [`LedgerCheck::check_and_judge_budgets`]: each order's verdict (its budget's figures when
/// agreed with, else why not), and every budget at a threshold by the ledger's own judgement,
/// with its figures.
#[derive(Clone, Debug)]
pub struct CheckedAndJudged {
    pub verdicts: Vec<Result<BudgetFigures, String>>,
    pub judged: Vec<(BudgetOrder, BudgetFigures)>,
}

/// Where the enforcer reads the ledger: the projections, the budget and its policy, and (with
/// a budget kept in AWS Budgets) where the ticker keeps AWS's last reading and its marks.
#[derive(Clone, Debug)]
pub struct LedgerCheck<R, M = NoAwsBudget> {
    pub reader: R,
    pub settings: TickerSettings,
    pub baseline: Option<M>,
}

impl<R, M> LedgerCheck<R, M>
where
    R: SpendReader + Sync,
    M: BaselineStore + Sync,
{
    /// `Ok(Ok(()))` to go ahead, `Ok(Err(why))` to refuse; `Err` when the ledger cannot be
    /// read (the request is then neither done nor refused, and Lambda retries it). A notice is
    /// not checked (it changes nothing), so no read is made for it.
    pub async fn check(
        &self,
        request: &EnforcerRequest,
        at_ms: i64,
    ) -> Result<Result<(), String>, StoreError> {
        let checked = match request {
            EnforcerRequest::Enforce { level, .. } => *level >= Level::Freeze,
            // A budget's restore is checked against that budget (`budget_restore_agrees`).
            EnforcerRequest::Restore { budget, .. } => budget.is_none(),
            // Each order is checked against its own budget (`check_budgets`).
            EnforcerRequest::Budgets { .. } => false,
            // Each job is checked against its own projection (`cap_agrees`).
            EnforcerRequest::Caps { .. } => false,
            // The enforcer judges each budget itself (`judge_budgets`).
            EnforcerRequest::JudgeBudgets { .. } => false,
            // The enforcer reads each safe budget's committed spend itself (`uncommitted`).
            EnforcerRequest::Admit { .. } => false,
        };
        if !checked {
            return Ok(Ok(()));
        }
        let at = at_ms.div_euclid(1000);
        let ledger = assess(&self.reader, &self.settings, self.baseline.as_ref(), at).await?;
        Ok(agrees(
            request,
            ledger.as_ref().map(|(_, decision)| decision),
        ))
    }

    /// Each order checked against the ledger: its budget, as `book` (the applied budgets the
    /// enforcer read itself, not the request's word) defines it, judged on the projections'
    /// spend as the ticker judges it (`BudgetSpec::judge`), each by its own period. An order
    /// for a budget the book does not have is refused. One read of the
    /// budgets' sums and one of the recent starts, whatever the number of orders. An order
    /// agreed with comes with its budget's figures (its spend and burn rate, the hours left
    /// in its period), for a shed.
    pub async fn check_budgets(
        &self,
        book: &BudgetBook,
        orders: &[BudgetOrder],
        at_ms: i64,
    ) -> Result<Vec<Result<BudgetFigures, String>>, StoreError> {
        Ok(self
            .check_and_judge_budgets(book, orders, "", at_ms)
            .await?
            .verdicts)
    }

    /// [`LedgerCheck::check_budgets`] and [`LedgerCheck::judge_budgets`] on one read: each
    /// order's verdict, and an order (with its figures) for every budget at a threshold, its reason beginning with `why`. One read of every such
    /// budget's sums and one of the recent starts.
    pub async fn check_and_judge_budgets(
        &self,
        book: &BudgetBook,
        orders: &[BudgetOrder],
        why: &str,
        at_ms: i64,
    ) -> Result<CheckedAndJudged, StoreError> {
        let at = at_ms.div_euclid(1000);
        let period = self.settings.period;
        let specs: Vec<&BudgetSpec> = book.budgets().collect();
        let scopes: Vec<Scope> = specs.iter().map(|spec| spec.spend_scope(period)).collect();
        let (totals, recent) = if scopes.is_empty() {
            (Default::default(), Vec::new())
        } else {
            (
                self.reader.scopes_totals(&scopes).await?,
                self.reader.recent_starts(at).await?,
            )
        };
        // Each budget's judgement and figures, from the one read.
        let mut judged: BTreeMap<&str, (Option<Action>, BudgetFigures, BudgetOrder)> =
            BTreeMap::new();
        for spec in specs {
            // A budget of another period is summed, and read, by its own.
            let scope = spec.spend_scope(period);
            let spend = totals
                .get(&scope)
                .map(|t| t.spend_at(at, spec.period, corrections_of(&recent, &scope)))
                .unwrap_or_default();
            let (status, action) =
                spec.judge(at, spend.period_spend_usd, spend.burn_rate_usd_per_hour);
            let figures = BudgetFigures::at(
                spec.period,
                at,
                spend.period_spend_usd,
                spend.burn_rate_usd_per_hour,
            );
            let mut order = BudgetOrder::judged(
                &spec.name,
                spend.period_spend_usd,
                spec.amount_usd,
                status.used_percent,
                action.unwrap_or(Action::Notify),
                spec.dry_run,
            );
            order.reason = format!("{why}: {}", order.reason);
            judged.insert(spec.name.as_str(), (action, figures, order));
        }
        let verdicts = orders
            .iter()
            .map(|order| {
                let Some(spec) = book.get(&order.budget) else {
                    return Err(format!(
                        "no budget named {} is applied to the stack",
                        order.budget
                    ));
                };
                let Some((action, figures, _)) = judged.get(spec.name.as_str()) else {
                    return Err(format!("budget {} was not judged", spec.name));
                };
                budget_agrees(order, *action).map(|()| *figures)
            })
            .collect();
        let at_threshold = judged
            .into_values()
            .filter_map(|(action, figures, order)| action.map(|_| (order, figures)))
            .collect();
        Ok(CheckedAndJudged {
            verdicts,
            judged: at_threshold,
        })
    }

    /// What each budget of `book` with `admission = "safe"` has left:
    /// its amount less its committed spend on the projections (its period's spend and what
    /// its running jobs with a timeout may still cost), for safe admission. One read of their
    /// sums and one of the recent starts; none when no budget is safe.
    pub async fn uncommitted(
        &self,
        book: &BudgetBook,
        at_ms: i64,
    ) -> Result<std::collections::BTreeMap<String, rust_decimal::Decimal>, StoreError> {
        let at = at_ms.div_euclid(1000);
        let period = self.settings.period;
        let specs: Vec<&BudgetSpec> = book
            .budgets()
            .filter(|spec| spec.admission == crate::core::budgets::Admission::Safe)
            .collect();
        if specs.is_empty() {
            return Ok(Default::default());
        }
        let scopes: Vec<Scope> = specs.iter().map(|spec| spec.spend_scope(period)).collect();
        let totals = self.reader.scopes_totals(&scopes).await?;
        let recent = self.reader.recent_starts(at).await?;
        Ok(specs
            .into_iter()
            .map(|spec| {
                let scope = spec.spend_scope(period);
                let spend = totals
                    .get(&scope)
                    .map(|t| t.spend_at(at, spec.period, corrections_of(&recent, &scope)))
                    .unwrap_or_default();
                (
                    spec.name.clone(),
                    spec.amount_usd.saturating_sub(spend.committed_usd),
                )
            })
            .collect())
    }

    /// Every budget of `book` judged on the projections, as the ticker
    /// judges it: an order for each at a threshold (the alarm path, where no order is sent).
    /// One read of the budgets' sums and one of the recent starts.
    pub async fn judge_budgets(
        &self,
        book: &BudgetBook,
        why: &str,
        at_ms: i64,
    ) -> Result<Vec<BudgetOrder>, StoreError> {
        Ok(self
            .check_and_judge_budgets(book, &[], why, at_ms)
            .await?
            .judged
            .into_iter()
            .map(|(order, _)| order)
            .collect())
    }
}
