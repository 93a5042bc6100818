//! `batchguard ingest`: append event files to a store (a missing SQLite file is created). Also
//! how recorded events are backfilled into a deployed stack (`dynamodb:<prefix>`), whose
//! projections are kept current as the collector keeps them.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use shared::analysis::report::EventCounts;
use shared::app::intake::Intake;
use shared::core::budget::BudgetPeriod;
use shared::ports::{EventLog, IngestCounts, IngestLedger, Quarantine, Record};

use super::parse_period;
use crate::error::CliError;
use crate::input::read_all;
use crate::store::{Store, StoreSpec, parse_store};

/// Records per append (one SQLite transaction).
const APPEND_BATCH: usize = 5_000;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A SQLite file, or `dynamodb:<table-prefix>` or `dynamodb:<events table>,<state table>`.
    #[arg(long, value_parser = parse_store)]
    pub store: StoreSpec,
    /// DynamoDB only: facts expire (TTL) this many days after the latest instant they name.
    #[arg(long)]
    pub retention_days: Option<u32>,
    /// DynamoDB only: the budget period the stack's projections use (its BUDGET_PERIOD).
    #[arg(long, default_value = "month", value_parser = parse_period)]
    pub period: BudgetPeriod,
    /// DynamoDB only: the price file the stack uses (its PRICES_TOML).
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Print the ingest counts as JSON.
    #[arg(long)]
    pub json: bool,
    /// JSON Lines files, JSON array files, single-event JSON files, or directories of them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub async fn run(args: Args) -> Result<(), CliError> {
    let mut intake = Intake::new(false);
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    read_all(
        &args.paths,
        &mut intake,
        |fact| records.push(Record::new(fact)),
        |q| rejected.push(q),
    )?;
    // Opened once the events are read: unreadable paths leave no empty store behind.
    let store = Store::open(&args.store, args.retention_days).await?;
    let mut duplicates = 0;
    for batch in records.chunks(APPEND_BATCH) {
        duplicates += store.append(batch).await?.duplicates;
    }
    #[cfg(feature = "aws")]
    if let Store::Dynamo(log) = &store {
        // A backfill into a live stack keeps its projections current, as the collector does.
        let table = super::load_prices(args.prices.as_deref())?;
        let projector =
            shared::adapters::dynamodb::DynamoProjector::new(log.clone(), table, args.period);
        project(&projector, &records).await?;
    }
    store.quarantine(&rejected).await?;
    let counts = IngestCounts {
        duplicates,
        ..intake.counts
    };
    store.add_counts(counts).await?;
    let stored = counts.read - counts.duplicates - counts.skipped - counts.rejected;
    if args.json {
        let document = serde_json::json!({
            "store": args.store.to_string(),
            "events": EventCounts::from(counts),
            "stored": stored,
        });
        println!("{document:#}");
    } else {
        println!(
            "{}: read {}, stored {stored}, duplicates {}, skipped {}, rejected {} (quarantined in the store)",
            args.store, counts.read, counts.duplicates, counts.skipped, counts.rejected
        );
    }
    Ok(())
}

/// Projections running at once during a backfill (each retries on its own if they collide).
#[cfg(feature = "aws")]
const PROJECT_CONCURRENCY: usize = 4;

/// One projection per job and per task covers every group's final state.
#[cfg(feature = "aws")]
async fn project(
    projector: &shared::adapters::dynamodb::DynamoProjector,
    records: &[Record],
) -> Result<(), CliError> {
    use futures_util::{StreamExt, TryStreamExt};
    let mut entities = std::collections::HashSet::new();
    let firsts: Vec<&shared::core::facts::Fact> = records
        .iter()
        .filter(|record| entities.insert(shared::adapters::dynamodb::partition_key(&record.fact)))
        .map(|record| &record.fact)
        .collect();
    futures_util::stream::iter(firsts)
        .map(|fact| projector.project(fact))
        .buffer_unordered(PROJECT_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}
