//! `batchguard replay`: fold event files into spend and print the report; nothing is stored.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use shared::analysis::report::StatusReport;
use shared::app::intake::Intake;

use super::evaluation::{Evaluation, ledger_with_budgets, load_budgets};
use super::{load_prices, print_report};
use crate::error::CliError;
use crate::input::read_all;
use crate::render::text::EventsCounted;
use shared::analysis::budgets::budget_lines;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub evaluation: Evaluation,
    /// JSON Lines files, JSON array files, single-event JSON files, or directories of them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub async fn run(args: Args) -> Result<(), CliError> {
    let evaluation = args.evaluation.with_aws_budget().await?;
    let budgets = load_budgets(evaluation.budgets.as_deref())?;
    let mut ledger = ledger_with_budgets(
        load_prices(evaluation.prices.as_deref())?,
        evaluation.period,
        budgets.as_ref(),
    );
    let mut intake = Intake::new(true);
    read_all(&args.paths, &mut intake, |fact| ledger.apply(&fact), |_| {})?;
    let at = evaluation.instant(&ledger);
    let mut report = StatusReport::build_with_baseline(
        &ledger,
        at,
        evaluation.budget,
        evaluation.baseline,
        intake.counts,
    );
    if let Some(book) = &budgets {
        report.budgets = budget_lines(book, &[&ledger], at);
    }
    print_report(&report, evaluation.json, EventsCounted::ThisRead);
    Ok(())
}
