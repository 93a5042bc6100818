//! `batchguard report --html`: one self-contained HTML page of charts and tables, from a store
//! or from event files.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use shared::analysis::report::{StatusReport, timeline};
use shared::app::intake::Intake;
use shared::core::activity::Activity;
use shared::ports::IngestLedger;

use super::evaluation::{Evaluation, ledger_with_budgets, load_budgets};
use super::{load_prices, print_report};
use crate::error::CliError;
use crate::input::read_all;
use crate::render::html;
use crate::render::text::EventsCounted;
use crate::store::{Store, StoreSpec, parse_store};
use shared::analysis::budgets::budget_lines;

/// Points on the report's time axes.
const TIMELINE_POINTS: usize = 240;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Where to write the page; `-` for standard output (then without `--json`).
    #[arg(long)]
    pub html: PathBuf,
    /// Read a store (a SQLite file or `dynamodb:…`) instead of event files.
    #[arg(long, value_parser = parse_store, conflicts_with = "paths")]
    pub store: Option<StoreSpec>,
    #[command(flatten)]
    pub evaluation: Evaluation,
    /// JSON Lines files, JSON array files, single-event JSON files, or directories of them.
    #[arg(required_unless_present = "store")]
    pub paths: Vec<PathBuf>,
}

pub async fn run(args: Args) -> Result<(), CliError> {
    if super::is_stdout(&args.html) && args.evaluation.json {
        return Err(CliError::Usage(
            "--html - and --json would both write to standard output: give --html a file".into(),
        ));
    }
    let evaluation = args.evaluation.with_aws_budget().await?;
    let budgets = load_budgets(evaluation.budgets.as_deref())?;
    let mut ledger = ledger_with_budgets(
        load_prices(evaluation.prices.as_deref())?,
        evaluation.period,
        budgets.as_ref(),
    );
    // The monitoring view needs the facts themselves, not only the fold.
    let (facts, counts) = match &args.store {
        None => {
            let mut intake = Intake::new(true);
            let mut facts = Vec::new();
            read_all(&args.paths, &mut intake, |fact| facts.push(fact), |_| {})?;
            (facts, intake.counts)
        }
        Some(spec) => {
            let store = Store::open_to_read(spec).await?;
            (store.facts().await?, store.counts().await?)
        }
    };
    for fact in &facts {
        ledger.apply(fact);
    }
    let at = evaluation.instant(&ledger);
    let mut status = StatusReport::build_with_baseline(
        &ledger,
        at,
        evaluation.budget,
        evaluation.baseline,
        counts,
    );
    if let Some(book) = &budgets {
        status.budgets = budget_lines(book, &[&ledger], at);
    }
    let timeline = timeline(&ledger, at, TIMELINE_POINTS);
    let activity = Activity::build(&facts, &ledger.walk(at));
    let page = html::render(&status, &timeline, &activity, at);
    super::write_output(&args.html, page.as_bytes())?;
    if evaluation.json {
        print_report(&status, true, EventsCounted::ThisRead);
    } else if !super::is_stdout(&args.html) {
        eprintln!("{}: written", args.html.display());
    }
    Ok(())
}
