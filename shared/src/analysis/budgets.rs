//! Each budget of a budgets file (`core::budgets`) against a ledger's spend: its period's
//! spend, the share of its amount used, its burn rate and forecast, and the action its
//! thresholds call for now.

use rust_decimal::Decimal;
use serde::Serialize;

use super::figures::{instant, money};
use crate::core::budget::{BudgetPeriod, Outlook};
use crate::core::budgets::{Action, Admission, BudgetBook};
use crate::core::ledger::Ledger;

/// One budget's figures at an instant. Field names are the JSON contract; add, never rename.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BudgetLine {
    pub name: String,
    pub parent: Option<String>,
    /// `bill`: the account's whole bill (no parent, a scope naming nothing); `jobs`: the
    /// costs of the jobs it counts.
    pub counts: &'static str,
    pub amount_usd: Decimal,
    pub period: BudgetPeriod,
    pub period_start: String,
    pub period_end: String,
    pub period_spend_usd: Decimal,
    pub used_percent: Decimal,
    pub burn_rate_usd_per_hour: Decimal,
    /// Spend at the period's end if everything running now keeps running.
    pub forecast_usd: Decimal,
    /// `runs_out`, `lasts_the_period`, `exhausted` or `no_burn`.
    pub outlook: &'static str,
    pub projected_exhaustion: Option<String>,
    pub running_tasks: u64,
    pub unpriced_tasks: u64,
    /// The period's spend and what its running jobs with a timeout may still cost before
    /// Batch stops them: the money already promised.
    pub committed_usd: Decimal,
    /// What is left of the amount after the committed spend (negative when over).
    pub uncommitted_usd: Decimal,
    /// Running tasks whose job has no timeout: their remaining cost is not in `committed_usd`.
    pub open_ended_tasks: u64,
    /// What its thresholds call for now (`None`: below the first).
    pub action: Option<Action>,
    pub dry_run: bool,
    pub admission: Admission,
}

/// The figures of every budget of `book` at whole second `at`, from `ledgers` (folded with
/// `Ledger::with_budgets(book)`; a ledger sums every budget by the budget's own period,
/// so one is enough; none: no lines).
pub fn budget_lines(book: &BudgetBook, ledgers: &[&Ledger], at: i64) -> Vec<BudgetLine> {
    let spends: Vec<_> = ledgers
        .iter()
        .map(|ledger| (ledger.period(), ledger.all_scope_spend(at)))
        .collect();
    let mut lines = Vec::with_capacity(book.len());
    for spec in book.budgets() {
        // A ledger of the budget's period reads it under its usual scope; any other sums it
        // by its own period too (`Scope::PeriodBudget`).
        let Some((period, spend)) = spends
            .iter()
            .find(|(period, _)| *period == spec.period)
            .or_else(|| spends.first())
        else {
            continue;
        };
        let spend = spend
            .get(&spec.spend_scope(*period))
            .copied()
            .unwrap_or_default();
        let (status, action) = spec.judge(at, spend.period_spend_usd, spend.burn_rate_usd_per_hour);
        let (outlook, projected_exhaustion) = match status.outlook {
            Outlook::RunsOut { at } => ("runs_out", Some(instant(at))),
            Outlook::LastsThePeriod => ("lasts_the_period", None),
            Outlook::Exhausted => ("exhausted", None),
            Outlook::NoBurn => ("no_burn", None),
        };
        lines.push(BudgetLine {
            name: spec.name.clone(),
            parent: spec.parent.clone(),
            counts: if spec.counts_the_bill() {
                "bill"
            } else {
                "jobs"
            },
            amount_usd: spec.amount_usd,
            period: spec.period,
            period_start: instant(status.period_start),
            period_end: instant(status.period_end),
            period_spend_usd: money(spend.period_spend_usd),
            used_percent: status.used_percent.round_dp(4).normalize(),
            burn_rate_usd_per_hour: money(spend.burn_rate_usd_per_hour),
            forecast_usd: money(status.forecast_usd),
            outlook,
            projected_exhaustion,
            running_tasks: spend.running_tasks,
            unpriced_tasks: spend.unpriced_tasks,
            committed_usd: money(spend.committed_usd),
            uncommitted_usd: money(spec.amount_usd.saturating_sub(spend.committed_usd)),
            open_ended_tasks: spend.open_ended_tasks,
            action,
            dry_run: spec.dry_run,
            admission: spec.admission,
        });
    }
    lines
}
