//! `batchguard redrive`: offer the store's quarantined events again (after an upgrade that
//! reads them) and take out of the quarantine what is read now; what still cannot be read
//! stays.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use shared::adapters::memory::NoProjection;
use shared::app::collector::Collector;
use shared::core::budget::BudgetPeriod;

use super::parse_period;
use crate::error::CliError;
use crate::store::{Store, StoreSpec, parse_store};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A SQLite file, or `dynamodb:<table-prefix>` or `dynamodb:<events table>,<state table>`.
    #[arg(long, value_parser = parse_store)]
    pub store: StoreSpec,
    /// DynamoDB only: the budget period the stack's projections use (its BUDGET_PERIOD).
    #[arg(long, default_value = "month", value_parser = parse_period)]
    pub period: BudgetPeriod,
    /// DynamoDB only: the price file the stack uses (its PRICES_TOML).
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args) -> Result<(), CliError> {
    let report = match Store::open(&args.store, None).await? {
        #[cfg(feature = "aws")]
        Store::Dynamo(log) => {
            let prices = super::load_prices(args.prices.as_deref())?;
            let projector =
                shared::adapters::dynamodb::DynamoProjector::new(log.clone(), prices, args.period);
            Collector::new(log, projector).redrive().await?
        }
        store => Collector::new(store, NoProjection).redrive().await?,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "{}: {} re-driven events stored, {} skipped, {} still quarantined",
            args.store,
            report.stored,
            report.skipped,
            report.still_quarantined.len()
        );
        for entry in &report.still_quarantined {
            println!("  {}: {}", entry.origin, entry.reason);
        }
    }
    Ok(())
}
