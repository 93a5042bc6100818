//! `batchguard reconcile`: one UTC day of batchguard's task costs checked against a Cost and
//! Usage Report export (`shared::analysis::bill`), with the Spot prices actually paid.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use rust_decimal::Decimal;
use shared::analysis::bill;
use shared::app::intake::Intake;
use shared::core::budget::BudgetPeriod;
use shared::core::facts::{Architecture, Capacity};
use shared::core::ledger::Ledger;

use super::load_prices;
use crate::adapters::cur::{self, CurSource};
use crate::error::CliError;
use crate::input::read_all;
use crate::render::text;
use crate::store::{Store, StoreSpec, parse_store};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The export: a file, a directory, or `s3://bucket/prefix`.
    #[arg(long, value_parser = cur::parse_source)]
    pub cur: CurSource,
    /// The UTC day to reconcile, `YYYY-MM-DD`.
    #[arg(long, value_parser = parse_day)]
    pub day: chrono::NaiveDate,
    /// Read a store (a SQLite file or `dynamodb:…`) instead of event files.
    #[arg(long, value_parser = parse_store, conflicts_with = "paths")]
    pub store: Option<StoreSpec>,
    /// A price file laid over the built-in prices.
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Differences up to this many USD per task count as a match.
    #[arg(long, default_value = "0.0001")]
    pub tolerance: Decimal,
    /// Write the Spot prices the bill shows as a price file (for `--prices`).
    #[arg(long)]
    pub spot_prices_out: Option<PathBuf>,
    /// Print the reconciliation as JSON.
    #[arg(long)]
    pub json: bool,
    /// Event files (as for `replay`).
    #[arg(required_unless_present = "store")]
    pub paths: Vec<PathBuf>,
}

fn parse_day(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| format!("{text:?} is not a day YYYY-MM-DD: {e}"))
}

pub async fn run(args: Args) -> Result<(), CliError> {
    let table = load_prices(args.prices.as_deref())?;
    let mut ledger = Ledger::new(table.clone(), BudgetPeriod::Month);
    match &args.store {
        None => {
            let mut intake = Intake::new(true);
            read_all(&args.paths, &mut intake, |fact| ledger.apply(&fact), |_| {})?;
        }
        Some(spec) => {
            Store::open_to_read(spec)
                .await?
                .fold_into(&mut ledger)
                .await?
        }
    }
    let lines = match &args.cur {
        CurSource::Local(path) => cur::read_local(path)?,
        #[cfg(feature = "aws")]
        CurSource::S3(url) => {
            let config = crate::adapters::sdk_config(None).await;
            // Path-style addressing works with S3 and with an emulator's endpoint alike.
            let s3 = aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(true)
                    .build(),
            );
            cur::read_s3(&s3, url).await?
        }
        #[cfg(not(feature = "aws"))]
        CurSource::S3(url) => {
            return Err(CliError::NeedsAws {
                what: format!("reading {url}"),
            });
        }
    };
    let day_start = args
        .day
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp());
    let ours = ledger.task_costs_between(day_start, day_start + 86_400);
    let result = bill::reconcile(day_start, &lines, &ours, args.tolerance);
    if let Some(path) = &args.spot_prices_out {
        // Spot does not discount ephemeral storage: the region's on-demand figure.
        let storage = |region: &str, architecture: &str| {
            Architecture::parse(architecture)
                .and_then(|a| table.fargate(region, a, Capacity::OnDemand).ok())
                .map_or(Decimal::ZERO, |rates| rates.storage_gb_hour)
        };
        std::fs::write(path, result.spot_price_file(storage)).map_err(|source| {
            CliError::Output {
                path: path.clone(),
                source,
            }
        })?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
    } else {
        print!("{}", text::reconciliation(&result));
    }
    Ok(())
}
