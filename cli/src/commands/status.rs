//! `batchguard status`: spend, burn rate and forecast from a store.

use clap::Args as ClapArgs;
use shared::analysis::report::{AuditLine, StatusReport};
use shared::ports::{AuditTrail, IngestLedger};

use super::evaluation::{Evaluation, ledger_with_budgets, load_budgets};
use super::{load_prices, print_report};
use crate::error::CliError;
use crate::render::text::EventsCounted;
use crate::store::{Store, StoreSpec, parse_store};
use shared::analysis::budgets::budget_lines;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A SQLite file, or `dynamodb:<table-prefix>` or `dynamodb:<events table>,<state table>`.
    #[arg(long, value_parser = parse_store)]
    pub store: StoreSpec,
    #[command(flatten)]
    pub evaluation: Evaluation,
}

pub async fn run(args: Args) -> Result<(), CliError> {
    let evaluation = args.evaluation.with_aws_budget().await?;
    let store = Store::open_to_read(&args.store).await?;
    let budgets = load_budgets(evaluation.budgets.as_deref())?;
    let mut ledger = ledger_with_budgets(
        load_prices(evaluation.prices.as_deref())?,
        evaluation.period,
        budgets.as_ref(),
    );
    store.fold_into(&mut ledger).await?;
    let at = evaluation.instant(&ledger);
    let counts = store.counts().await?;
    let mut report = StatusReport::build_with_baseline(
        &ledger,
        at,
        evaluation.budget,
        evaluation.baseline,
        counts,
    );
    let (period_start, _) = evaluation.period.bounds(at);
    let mut entries = store.audit_entries(period_start).await?;
    entries.sort_by_key(|entry| entry.at);
    report.audit = entries.iter().map(AuditLine::from).collect();
    if let Some(book) = &budgets {
        report.budgets = budget_lines(book, &[&ledger], at);
    }
    print_report(&report, evaluation.json, EventsCounted::StoreTotals);
    Ok(())
}
