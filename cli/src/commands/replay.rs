//! `batchguard replay`: fold event files into spend and print the report; nothing is stored.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use shared::analysis::report::StatusReport;
use shared::app::intake::Intake;
use shared::core::ledger::Ledger;

use super::evaluation::Evaluation;
use super::{load_prices, print_report};
use crate::error::CliError;
use crate::input::read_all;
use crate::render::text::EventsCounted;

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
    let mut ledger = Ledger::new(
        load_prices(evaluation.prices.as_deref())?,
        evaluation.period,
    );
    let mut intake = Intake::new(true);
    read_all(&args.paths, &mut intake, |fact| ledger.apply(&fact), |_| {})?;
    let at = evaluation.instant(&ledger);
    let report = StatusReport::build_with_baseline(
        &ledger,
        at,
        evaluation.budget,
        evaluation.baseline,
        intake.counts,
    );
    print_report(&report, evaluation.json, EventsCounted::ThisRead);
    Ok(())
}
