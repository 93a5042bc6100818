//! One file per command: its arguments (clap) and what it does. Shared here: the price file,
//! the budget period argument and printing the status report.

pub mod doctor;
pub mod enforce;
pub mod evaluation;
pub mod generate;
pub mod ingest;
pub mod init;
pub mod prices;
pub mod reconcile;
pub mod redrive;
pub mod replay;
pub mod report;
pub mod simulate;
pub mod status;

use std::path::Path;

use shared::analysis::report::StatusReport;
use shared::core::budget::BudgetPeriod;
use shared::core::prices::PriceTable;

use crate::error::CliError;
use crate::render::text;

/// The built-in prices, with the user's price file laid over them when one is given.
pub fn load_prices(file: Option<&Path>) -> Result<PriceTable, CliError> {
    let Some(path) = file else {
        return Ok(PriceTable::builtin());
    };
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Prices {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    PriceTable::builtin_with_overrides(&text).map_err(|e| CliError::Prices {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// Reads `--period` (clap's value parser).
pub fn parse_period(text: &str) -> Result<BudgetPeriod, String> {
    BudgetPeriod::parse(text)
        .ok_or_else(|| format!("{text:?} is not a period: use month, week or day"))
}

pub fn print_report(report: &StatusReport, json: bool) {
    if json {
        println!("{}", text::json(report));
    } else {
        print!("{}", text::human(report));
    }
}
