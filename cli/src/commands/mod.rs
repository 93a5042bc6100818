//! One file per command: its arguments (clap) and what it does. Shared here: the price file,
//! the budget period argument and printing the status report.

pub mod budgets;
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

/// Whether an output path means standard output (`-`).
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Writes `text` to the file at `path`, or to standard output when `path` is `-`.
pub fn write_output(path: &Path, text: &[u8]) -> Result<(), CliError> {
    use std::io::Write as _;
    let written = if is_stdout(path) {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text).and_then(|()| stdout.flush())
    } else {
        std::fs::write(path, text)
    };
    written.map_err(|source| CliError::Output {
        path: path.to_path_buf(),
        source,
    })
}

/// The largest budget accepted, USD.
pub const MAX_BUDGET_USD: u64 = 1_000_000_000_000;
/// The most decimal places a budget may have.
pub const BUDGET_DECIMAL_PLACES: u32 = 10;

/// Reads `--budget`: USD from 0 to a trillion, at most 10 decimal places (a budget outside
/// them means nothing and its percentages cannot be computed).
pub fn parse_budget(text: &str) -> Result<rust_decimal::Decimal, String> {
    use rust_decimal::Decimal;
    let budget: Decimal = text
        .parse()
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|_| format!("{text:?} is not an amount of USD (e.g. 1000 or 1250.50)"))?;
    if budget < Decimal::ZERO {
        return Err(format!("{text}: a budget must not be negative"));
    }
    if budget > Decimal::from(MAX_BUDGET_USD) {
        return Err(format!("{text}: a budget is at most {MAX_BUDGET_USD} USD"));
    }
    if budget.normalize().scale() > BUDGET_DECIMAL_PLACES {
        return Err(format!(
            "{text}: a budget has at most {BUDGET_DECIMAL_PLACES} decimal places"
        ));
    }
    Ok(budget.normalize())
}

/// Reads a threshold percentage: 0 to 1000.
pub fn parse_percent(text: &str) -> Result<rust_decimal::Decimal, String> {
    use rust_decimal::Decimal;
    let percent: Decimal = text
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage (e.g. 90 or 92.5)"))?;
    if percent < Decimal::ZERO || percent > Decimal::from(1000) {
        return Err(format!(
            "{text}: a threshold is 0 to 1000 percent of the budget"
        ));
    }
    Ok(percent)
}

/// Reads `--period` (clap's value parser).
pub fn parse_period(text: &str) -> Result<BudgetPeriod, String> {
    BudgetPeriod::parse(text)
        .ok_or_else(|| format!("{text:?} is not a period: use month, week or day"))
}

pub fn print_report(report: &StatusReport, json: bool, counted: text::EventsCounted) {
    if json {
        println!("{}", text::json(report));
    } else {
        print!("{}", text::human(report, counted));
    }
}
