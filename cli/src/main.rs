//! `batchguard`: replay recorded AWS Batch / ECS events into an exact Fargate bill, a burn
//! rate and a budget forecast — locally, on an embedded store, with no AWS account.
#![forbid(unsafe_code)]

mod cost_explorer;
mod cur;
mod doctor;
mod html;
mod output;
mod pricing;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rust_decimal::Decimal;

use futures_util::{StreamExt, TryStreamExt};
use shared::adapters::batch::AwsBatch;
use shared::adapters::dynamodb::{DynamoEventLog, TableNames, partition_key};
use shared::adapters::dynamodb_projection::DynamoProjector;
use shared::adapters::files::{self, InputFile};
use shared::adapters::sns::Notifications;
use shared::adapters::sqlite::SqliteEventLog;
use shared::collector::{Collector, NoProjection};
use shared::core::activity::Activity;
use shared::core::budget::{Budget, BudgetPeriod, BudgetStatus};
use shared::core::facts::{Fact, Millis};
use shared::core::ledger::Ledger;
use shared::core::policy::{BudgetPolicy, decide};
use shared::core::prices::PriceTable;
use shared::core::scope::Scope;
use shared::enforcer::{Enforcer, EnforcerSettings};
use shared::intake::{Intake, Outcome};
use shared::ports::{
    AuditTrail, EventLog, IngestCounts, IngestLedger, Quarantine, Quarantined, Record,
};
use shared::report::StatusReport;
use shared::synth::{self, WorkloadConfig};

/// How many rejected events are listed on stderr before the rest are only counted.
const REJECTIONS_LISTED: u64 = 100;
/// Records per append (one SQLite transaction).
const APPEND_BATCH: usize = 5_000;
/// Records per page when loading a store.
const READ_PAGE: usize = 10_000;

#[derive(Debug, Parser)]
#[command(
    name = "batchguard",
    version,
    about = "Real-time spend monitor and kill switch for AWS Batch on Fargate and EC2: an exact bill, burn rate and budget forecast from Batch and ECS state-change events, runtime monitoring, the enforcer, a simulator, an HTML report and prices from the AWS Price List."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum PricesCommand {
    /// Read Fargate's on-demand prices (x86 and ARM vCPU-hour and GB-hour, ephemeral storage)
    /// and EC2 instance prices (Linux, shared tenancy) for one region from the AWS Price List
    /// API (`GetProducts`), and write them as a price file for `--prices` and `PRICES_TOML`,
    /// each figure with its SKU, dates and source. What the Price List lacks is listed on
    /// stderr, never guessed; Spot prices are not in the Price List. Needs AWS credentials.
    Fetch {
        /// The region whose prices to read (e.g. `eu-west-1`).
        #[arg(long)]
        region: String,
        /// Where to write the price file; standard output when not given.
        #[arg(long)]
        out: Option<PathBuf>,
        /// EC2 instance types to price, comma-separated (default: the built-in table's).
        #[arg(long, value_delimiter = ',')]
        instance_types: Vec<String>,
        /// The Price List API's own region (it answers in us-east-1, eu-central-1 and
        /// ap-south-1).
        #[arg(long, default_value = "us-east-1")]
        api_region: String,
        /// Print what was found and missing as JSON on stdout (the file then needs `--out`).
        #[arg(long, requires = "out")]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prices: `prices fetch` reads them from the AWS Price List API into a price file.
    Prices {
        #[command(subcommand)]
        command: PricesCommand,
    },
    /// Reconcile one day with the bill: read a Cost and Usage Report export (CUR 2.0 / split
    /// cost allocation data, CSV, CSV.gz or Parquet; a file, a directory or `s3://bucket/prefix`), match
    /// its ECS task line items to batchguard's tasks by task ARN, and report the drift per task
    /// and per queue, tasks either side lacks, and the Spot prices actually paid.
    Reconcile {
        /// The export: a file, a directory, or `s3://bucket/prefix`.
        #[arg(long, value_parser = cur::parse_source)]
        cur: cur::CurSource,
        /// The UTC day to reconcile, `YYYY-MM-DD`.
        #[arg(long, value_parser = parse_day)]
        day: chrono::NaiveDate,
        /// Read a store (a SQLite file or `dynamodb:…`) instead of event files.
        #[arg(long, value_parser = parse_store, conflicts_with = "paths")]
        store: Option<StoreSpec>,
        /// A price file laid over the built-in prices.
        #[arg(long)]
        prices: Option<PathBuf>,
        /// Differences up to this many USD per task count as a match.
        #[arg(long, default_value = "0.0001")]
        tolerance: Decimal,
        /// Write the Spot prices the bill shows as a price file (for `--prices`).
        #[arg(long)]
        spot_prices_out: Option<PathBuf>,
        /// Print the reconciliation as JSON.
        #[arg(long)]
        json: bool,
        /// Event files (as for `replay`).
        #[arg(required_unless_present = "store")]
        paths: Vec<PathBuf>,
    },
    /// Fold event files into spend and print it (nothing is stored).
    Replay {
        #[command(flatten)]
        evaluation: Evaluation,
        /// JSON Lines files, JSON array files, single-event JSON files, or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Create a store: a SQLite file, or the DynamoDB tables of `dynamodb:<prefix>`
    /// (for development; deployments get theirs from the SAM template).
    Init {
        /// A SQLite file, or `dynamodb:<table-prefix>` or `dynamodb:<events table>,<state table>`.
        #[arg(long, value_parser = parse_store)]
        store: StoreSpec,
    },
    /// Append event files to a store (created if it is a missing SQLite file). Also how
    /// recorded events are backfilled into a deployed stack (`dynamodb:<prefix>`).
    Ingest {
        /// A SQLite file, or `dynamodb:<table-prefix>` or `dynamodb:<events table>,<state table>`.
        #[arg(long, value_parser = parse_store)]
        store: StoreSpec,
        /// DynamoDB only: facts expire (TTL) this many days after the latest instant they name.
        #[arg(long)]
        retention_days: Option<u32>,
        /// DynamoDB only: the budget period the stack's projections use (its BUDGET_PERIOD).
        #[arg(long, default_value = "month", value_parser = parse_period)]
        period: BudgetPeriod,
        /// DynamoDB only: the price file the stack uses (its PRICES_TOML).
        #[arg(long)]
        prices: Option<PathBuf>,
        /// Print the ingest counts as JSON.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Offer the store's quarantined events again (after an upgrade that reads them) and take
    /// out of the quarantine what is read now; what still cannot be read stays.
    Redrive {
        /// A SQLite file, or `dynamodb:<table-prefix>` or `dynamodb:<events table>,<state table>`.
        #[arg(long, value_parser = parse_store)]
        store: StoreSpec,
        /// DynamoDB only: the budget period the stack's projections use (its BUDGET_PERIOD).
        #[arg(long, default_value = "month", value_parser = parse_period)]
        period: BudgetPeriod,
        /// DynamoDB only: the price file the stack uses (its PRICES_TOML).
        #[arg(long)]
        prices: Option<PathBuf>,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write one self-contained HTML page of charts and tables, from a store or from event
    /// files: spend against the budget with the forecast, spend by queue, running vCPU, jobs by
    /// state, state transitions over time, timing distributions (queue wait, image pull, run,
    /// total), Spot interruptions and savings, EC2 instances (bill, jobs' shares, idle) and
    /// placement, array and multi-node jobs, and the costliest jobs.
    Report {
        /// Where to write the page.
        #[arg(long)]
        html: PathBuf,
        /// Read a store (a SQLite file or `dynamodb:…`) instead of event files.
        #[arg(long, value_parser = parse_store, conflicts_with = "paths")]
        store: Option<StoreSpec>,
        #[command(flatten)]
        evaluation: Evaluation,
        /// JSON Lines files, JSON array files, single-event JSON files, or directories of them.
        #[arg(required_unless_present = "store")]
        paths: Vec<PathBuf>,
    },
    /// Spend, burn rate and forecast from a store.
    Status {
        /// A SQLite file, or `dynamodb:<table-prefix>` or `dynamodb:<events table>,<state table>`.
        #[arg(long, value_parser = parse_store)]
        store: StoreSpec,
        #[command(flatten)]
        evaluation: Evaluation,
    },
    /// Run the budget policy on a store's spend and carry it out on AWS Batch: notify, freeze
    /// (disable the queues, cancel queued jobs) or stop (terminate running jobs); or restore
    /// what batchguard disabled. Uses the usual AWS variables (AWS_ENDPOINT_URL for an emulator).
    Enforce {
        /// A SQLite file, or `dynamodb:<table-prefix>` or `dynamodb:<events table>,<state table>` (where the audit trail is written too).
        #[arg(long, value_parser = parse_store)]
        store: StoreSpec,
        /// Budget in USD for the period.
        #[arg(long, required_unless_present = "restore")]
        budget: Option<Decimal>,
        /// Budget period, calendar in UTC: month, week or day.
        #[arg(long, default_value = "month", value_parser = parse_period)]
        period: BudgetPeriod,
        /// Job queues in scope (comma-separated names); default: every queue.
        #[arg(long, value_delimiter = ',')]
        queues: Vec<String>,
        /// Percent of the budget at which to notify, freeze and stop.
        #[arg(long, default_value = "80")]
        notify_percent: Decimal,
        #[arg(long, default_value = "90")]
        freeze_percent: Decimal,
        #[arg(long, default_value = "100")]
        stop_percent: Decimal,
        /// Record and report, but make no mutating Batch call.
        #[arg(long)]
        dry_run: bool,
        /// Re-enable the queues batchguard disabled instead.
        #[arg(long)]
        restore: bool,
        /// SNS topic for notifications (default: printed to stderr).
        #[arg(long)]
        topic_arn: Option<String>,
        /// Evaluate at this instant (RFC 3339). Default: now.
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        /// A price file laid over the built-in prices.
        #[arg(long)]
        prices: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Check a deployed stack: the stack's state, its tables, event rules, dead-letter queues
    /// and quarantine, its alarms (and that the budget alarms invoke the enforcer), that the
    /// ticker's metrics arrived in the last 15 minutes, the job queues in scope against what
    /// batchguard last did to them, the ticker's reading of the AWS budget (with BudgetName),
    /// and dry run. Prints a checklist with the fix for each
    /// failure; exits non-zero when a check fails. Uses the usual AWS variables.
    Doctor {
        /// The CloudFormation stack name (`sam deploy --stack-name`).
        #[arg(long)]
        stack: String,
        /// Print the checklist as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a generated, realistic workload as JSON Lines (how `examples/` was made).
    Generate {
        /// Seed of the generator; the same seed gives the same file.
        #[arg(long, default_value_t = WorkloadConfig::sample_day().seed)]
        seed: u64,
        /// Top-level jobs to generate.
        #[arg(long, default_value_t = WorkloadConfig::sample_day().jobs)]
        jobs: usize,
        /// Output file (JSON Lines).
        #[arg(long)]
        out: PathBuf,
    },
    /// Simulate a workload under batchguard's policy and two baselines (a poller of a spend
    /// figure refreshed every 8 h, and alert-only AWS Budgets) and compare the overshoot.
    Simulate {
        /// steady (a month under budget), runaway (70 % spent, then 500 tasks of 4 vCPU for 6 h)
        /// or burst (85 % spent, a burst of 200 tasks every 4 h).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(shared::sim::SCENARIOS))]
        scenario: String,
        /// Seed of the scenario's random parts.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// batchguard's tick, seconds.
        #[arg(long, default_value_t = 60)]
        tick_seconds: i64,
        /// Seconds from a terminate call to the task stopping (Batch's default stop timeout).
        #[arg(long, default_value_t = 30)]
        stop_delay_seconds: i64,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct Evaluation {
    /// Evaluate at this instant (RFC 3339; rounded down to the second). Default: the latest
    /// instant any event mentions.
    #[arg(long)]
    at: Option<DateTime<Utc>>,
    /// Budget in USD for the period, e.g. 1000 or 1250.50.
    #[arg(long)]
    budget: Option<Decimal>,
    /// Take the budget from AWS Budgets instead: its limit and period (monthly or daily),
    /// and AWS's actual spend so far as the baseline — the budget's spend is then that plus
    /// what batchguard saw accrue after AWS last updated it.
    #[arg(long, conflicts_with = "budget", requires = "account_id")]
    budget_name: Option<String>,
    /// The AWS account the budget belongs to (with `--budget-name`).
    #[arg(long, env = "AWS_ACCOUNT_ID")]
    account_id: Option<String>,
    /// Take the baseline from Cost Explorer (`GetCostAndUsage`) instead: the unblended cost of
    /// the period's whole UTC days up to `--ce-lag-hours` before `--at` (default: now), of
    /// `--ce-service` and `--ce-tag`; the budget's spend is that plus what batchguard saw
    /// after it. The limit is `--budget`.
    #[arg(long, conflicts_with = "budget_name", requires = "budget")]
    cost_explorer: bool,
    /// Cost Explorer's last hours are incomplete: they are left to batchguard.
    #[arg(long, default_value_t = 24)]
    ce_lag_hours: u32,
    /// A Cost Explorer service to count (repeat for more). Default: Amazon Elastic Container
    /// Service and Amazon Elastic Compute Cloud - Compute.
    #[arg(long = "ce-service")]
    ce_services: Vec<String>,
    /// Count only costs with this cost allocation tag, KEY=VALUE (repeat; values of one key
    /// are alternatives).
    #[arg(long = "ce-tag", value_parser = parse_ce_tag)]
    ce_tags: Vec<(String, String)>,
    #[arg(skip)]
    baseline: Option<shared::core::budget::Baseline>,
    /// Budget period, calendar in UTC: month, week (from Monday) or day.
    #[arg(long, default_value = "month", value_parser = parse_period)]
    period: BudgetPeriod,
    /// A price file laid over the built-in prices (format: README, "Prices").
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
}

fn parse_ce_tag(text: &str) -> Result<(String, String), String> {
    cost_explorer::parse_tag(text).map_err(|e| e.to_string())
}

fn parse_period(text: &str) -> Result<BudgetPeriod, String> {
    BudgetPeriod::parse(text)
        .ok_or_else(|| format!("{text:?} is not a period: use month, week or day"))
}

/// A failure that stops the command, with what to do about it.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Input(#[from] files::InputError),
    #[error("price file {path}: {source}")]
    Prices {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Store(#[from] shared::ports::StoreError),
    #[error("budget must not be negative, got {0}")]
    NegativeBudget(Decimal),
    #[error("policy: {0}")]
    Policy(String),
    #[error(transparent)]
    Enforce(#[from] shared::enforcer::EnforceError),
    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pricing(#[from] pricing::PricingError),
    #[error(transparent)]
    Cur(#[from] cur::CurError),
    #[error(transparent)]
    Budgets(#[from] shared::adapters::budgets::BudgetsError),
    #[error(transparent)]
    Doctor(#[from] doctor::DoctorError),
    #[error(transparent)]
    CostExplorer(#[from] cost_explorer::CostExplorerError),
    #[error("stack {stack}: {failed} check(s) failed")]
    Unhealthy { stack: String, failed: usize },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("batchguard: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("batchguard: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Prices {
            command:
                PricesCommand::Fetch {
                    region,
                    out,
                    instance_types,
                    api_region,
                    json,
                },
        } => prices_fetch(&region, out.as_deref(), instance_types, &api_region, json).await,
        Command::Reconcile {
            cur,
            day,
            store,
            prices,
            tolerance,
            spot_prices_out,
            json,
            paths,
        } => {
            reconcile(
                &cur,
                day,
                store.as_ref(),
                prices.as_deref(),
                tolerance,
                spot_prices_out.as_deref(),
                json,
                &paths,
            )
            .await
        }
        Command::Replay { evaluation, paths } => {
            replay(&with_aws_budget(evaluation).await?, &paths)
        }
        Command::Doctor { stack, json } => run_doctor(&stack, json).await,
        Command::Init { store } => init(&store).await,
        Command::Ingest {
            store,
            retention_days,
            period,
            prices,
            json,
            paths,
        } => ingest(&store, retention_days, period, prices, json, &paths).await,
        Command::Status { store, evaluation } => {
            status(&store, &with_aws_budget(evaluation).await?).await
        }
        Command::Report {
            html,
            store,
            evaluation,
            paths,
        } => {
            report(
                &html,
                store.as_ref(),
                &with_aws_budget(evaluation).await?,
                &paths,
            )
            .await
        }
        Command::Redrive {
            store,
            period,
            prices,
            json,
        } => redrive(&store, period, prices.as_deref(), json).await,
        Command::Generate { seed, jobs, out } => generate(seed, jobs, &out),
        Command::Simulate {
            scenario,
            seed,
            tick_seconds,
            stop_delay_seconds,
            json,
        } => simulate(&scenario, seed, tick_seconds, stop_delay_seconds, json),
        Command::Enforce {
            store,
            budget,
            period,
            queues,
            notify_percent,
            freeze_percent,
            stop_percent,
            dry_run,
            restore,
            topic_arn,
            at,
            prices,
            json,
        } => {
            let request = EnforceRequest {
                budget,
                period,
                queues,
                policy: BudgetPolicy {
                    notify_percent,
                    freeze_percent,
                    stop_percent,
                    ..BudgetPolicy::default()
                },
                dry_run,
                restore,
                topic_arn,
                at,
                prices,
                json,
            };
            match &store {
                StoreSpec::File(path) => enforce_with(&SqliteEventLog::open(path)?, &request).await,
                StoreSpec::Dynamo(tables) => {
                    enforce_with(&dynamo(tables, None).await, &request).await
                }
            }
        }
    }
}

/// The built-in prices, with the user's price file laid over them when one is given.
fn load_prices(file: Option<&Path>) -> Result<PriceTable, CliError> {
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

fn check_budget(evaluation: &Evaluation) -> Result<(), CliError> {
    match evaluation.budget {
        Some(budget) if budget < Decimal::ZERO => Err(CliError::NegativeBudget(budget)),
        _ => Ok(()),
    }
}

/// A byte-counting progress bar on stderr, drawn only when stderr is a terminal.
fn progress(files: &[InputFile]) -> ProgressBar {
    let total: u64 = files.iter().map(|f| f.bytes).sum();
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Lists a rejected event on stderr (the first [`REJECTIONS_LISTED`] of them).
fn report_rejection(rejected_so_far: u64, event: &Quarantined, bar: &ProgressBar) {
    if rejected_so_far <= REJECTIONS_LISTED {
        bar.suspend(|| eprintln!("rejected {}: {}", event.origin, event.reason));
    }
}

fn summarize_rejections(counts: &IngestCounts) {
    if counts.rejected > REJECTIONS_LISTED {
        eprintln!(
            "rejected {} events in all ({} more not listed)",
            counts.rejected,
            counts.rejected - REJECTIONS_LISTED
        );
    }
}

/// Reads every event of every file through `intake`, handing facts and rejections on.
fn read_all(
    files: &[InputFile],
    intake: &mut Intake,
    mut on_fact: impl FnMut(Fact),
    mut on_rejected: impl FnMut(Quarantined),
) -> Result<(), CliError> {
    let bar = progress(files);
    let mut done_before = 0;
    for file in files {
        bar.set_message(file.path.display().to_string());
        let mut last_tick = 0;
        files::read_events(&file.path, |event| {
            let origin = || format!("{}:{}", file.path.display(), event.line);
            match intake.offer(origin, event.bytes) {
                Outcome::Fact(fact) => on_fact(fact),
                Outcome::Rejected(quarantined) => {
                    report_rejection(intake.counts.rejected, &quarantined, &bar);
                    on_rejected(quarantined);
                }
                Outcome::Duplicate | Outcome::Skipped(_) => {}
            }
            // Redraw about every MiB, not every event.
            if event.consumed - last_tick > 1 << 20 {
                last_tick = event.consumed;
                bar.set_position(done_before + event.consumed);
            }
        })?;
        done_before += file.bytes;
        bar.set_position(done_before);
    }
    bar.finish_and_clear();
    summarize_rejections(&intake.counts);
    Ok(())
}

/// The evaluation instant: `--at` rounded down to the second, or the latest instant seen
/// rounded up (so everything seen has happened by then).
fn evaluation_instant(evaluation: &Evaluation, ledger: &Ledger) -> i64 {
    match evaluation.at {
        Some(at) => Millis::from_datetime(at).floor_seconds(),
        None => ledger.latest_instant().map_or(0, Millis::ceil_seconds),
    }
}

fn print_report(report: &StatusReport, json: bool) {
    if json {
        println!("{}", output::json(report));
    } else {
        print!("{}", output::human(report));
    }
}

fn replay(evaluation: &Evaluation, paths: &[PathBuf]) -> Result<(), CliError> {
    check_budget(evaluation)?;
    let mut ledger = Ledger::new(
        load_prices(evaluation.prices.as_deref())?,
        evaluation.period,
    );
    let files = files::expand_paths(paths)?;
    let mut intake = Intake::new(true);
    read_all(&files, &mut intake, |fact| ledger.apply(&fact), |_| {})?;
    let at = evaluation_instant(evaluation, &ledger);
    let report = StatusReport::build_with_baseline(
        &ledger,
        at,
        evaluation.budget,
        evaluation.baseline,
        intake.counts,
    );
    print_report(&report, evaluation.json);
    Ok(())
}

/// Where `ingest` and `status` keep the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StoreSpec {
    /// A SQLite file.
    File(PathBuf),
    /// DynamoDB tables `<prefix>-events` and `<prefix>-state` (`dynamodb:<prefix>`), or two
    /// tables named in full (`dynamodb:<events table>,<state table>`, a SAM stack's outputs),
    /// reached with the usual AWS variables (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`).
    Dynamo(TableNames),
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Dynamo(tables) => write!(f, "dynamodb:{},{}", tables.events, tables.state),
        }
    }
}

fn table_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!(
            "dynamodb: needs a {what}, e.g. dynamodb:batchguard-dev or dynamodb:<events table>,<state table>"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{name:?} is not a DynamoDB {what} (letters, digits, '-', '_', '.')"
        ));
    }
    Ok(())
}

fn parse_store(text: &str) -> Result<StoreSpec, String> {
    let Some(rest) = text.strip_prefix("dynamodb:") else {
        return Ok(StoreSpec::File(PathBuf::from(text)));
    };
    match rest.split_once(',') {
        Some((events, state)) => {
            table_name(events, "events table name")?;
            table_name(state, "state table name")?;
            Ok(StoreSpec::Dynamo(TableNames {
                events: events.to_owned(),
                state: state.to_owned(),
            }))
        }
        None => {
            table_name(rest, "table prefix")?;
            Ok(StoreSpec::Dynamo(TableNames::from_prefix(rest)))
        }
    }
}

async fn dynamo(tables: &TableNames, retention_days: Option<u32>) -> DynamoEventLog {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let log = DynamoEventLog::new(shared::adapters::dynamodb::client(&config), tables.clone());
    match retention_days {
        Some(days) => log.with_retention(std::time::Duration::from_secs(u64::from(days) * 86_400)),
        None => log,
    }
}

async fn init(store: &StoreSpec) -> Result<(), CliError> {
    match store {
        StoreSpec::File(path) => {
            SqliteEventLog::open(path)?;
        }
        StoreSpec::Dynamo(tables) => dynamo(tables, None).await.create_tables().await?,
    }
    println!("{store}: ready");
    Ok(())
}

async fn ingest(
    store: &StoreSpec,
    retention_days: Option<u32>,
    period: BudgetPeriod,
    prices: Option<PathBuf>,
    json: bool,
    paths: &[PathBuf],
) -> Result<(), CliError> {
    match store {
        StoreSpec::File(path) => {
            ingest_into(&SqliteEventLog::open(path)?, None, store, json, paths).await
        }
        StoreSpec::Dynamo(tables) => {
            let log = dynamo(tables, retention_days).await;
            let table = load_prices(prices.as_deref())?;
            // A backfill into a live stack keeps its projections current, as the collector does.
            let projector = DynamoProjector::new(log.clone(), table, period);
            ingest_into(&log, Some(&projector), store, json, paths).await
        }
    }
}

/// Projections running at once during a backfill (each retries on its own if they collide).
const PROJECT_CONCURRENCY: usize = 4;

async fn ingest_into<S: EventLog + Quarantine + IngestLedger>(
    log: &S,
    projector: Option<&DynamoProjector>,
    store: &StoreSpec,
    json: bool,
    paths: &[PathBuf],
) -> Result<(), CliError> {
    let files = files::expand_paths(paths)?;
    let mut intake = Intake::new(false);
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    read_all(
        &files,
        &mut intake,
        |fact| records.push(Record::new(fact)),
        |q| rejected.push(q),
    )?;
    let mut duplicates = 0;
    for batch in records.chunks(APPEND_BATCH) {
        duplicates += log.append(batch).await?.duplicates;
    }
    if let Some(projector) = projector {
        // One projection per job and per task covers every group's final state.
        let mut entities = std::collections::HashSet::new();
        let firsts: Vec<&Fact> = records
            .iter()
            .filter(|record| entities.insert(partition_key(&record.fact)))
            .map(|record| &record.fact)
            .collect();
        futures_util::stream::iter(firsts)
            .map(|fact| projector.project(fact))
            .buffer_unordered(PROJECT_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
    }
    log.quarantine(&rejected).await?;
    let counts = IngestCounts {
        duplicates,
        ..intake.counts
    };
    log.add_counts(counts).await?;
    let stored = counts.read - counts.duplicates - counts.skipped - counts.rejected;
    if json {
        let document = serde_json::json!({
            "store": store.to_string(),
            "events": shared::report::EventCounts::from(counts),
            "stored": stored,
        });
        println!("{document}");
    } else {
        println!(
            "{store}: read {}, stored {stored}, duplicates {}, skipped {}, rejected {} (quarantined in the store)",
            counts.read, counts.duplicates, counts.skipped, counts.rejected
        );
    }
    Ok(())
}

async fn status(store: &StoreSpec, evaluation: &Evaluation) -> Result<(), CliError> {
    check_budget(evaluation)?;
    match store {
        StoreSpec::File(path) => {
            if !path.exists() {
                return Err(CliError::Input(files::InputError {
                    path: path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such store (run `batchguard ingest` first)",
                    ),
                }));
            }
            status_from(&SqliteEventLog::open(path)?, evaluation).await
        }
        StoreSpec::Dynamo(tables) => status_from(&dynamo(tables, None).await, evaluation).await,
    }
}

async fn status_from<S: EventLog + IngestLedger>(
    log: &S,
    evaluation: &Evaluation,
) -> Result<(), CliError> {
    let mut ledger = Ledger::new(
        load_prices(evaluation.prices.as_deref())?,
        evaluation.period,
    );
    fold_log(log, &mut ledger).await?;
    let at = evaluation_instant(evaluation, &ledger);
    let counts = log.counts().await?;
    let report = StatusReport::build_with_baseline(
        &ledger,
        at,
        evaluation.budget,
        evaluation.baseline,
        counts,
    );
    print_report(&report, evaluation.json);
    Ok(())
}

/// Folds every fact of a store into the ledger, a page at a time.
async fn read_log<S: EventLog>(log: &S) -> Result<Vec<Fact>, CliError> {
    let mut facts = Vec::new();
    let mut cursor = None;
    loop {
        let page = log.read(cursor.as_ref(), READ_PAGE).await?;
        facts.extend(page.records.into_iter().map(|record| record.fact));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(facts),
        }
    }
}

async fn fold_log<S: EventLog>(log: &S, ledger: &mut Ledger) -> Result<(), CliError> {
    let mut cursor = None;
    loop {
        let page = log.read(cursor.as_ref(), READ_PAGE).await?;
        for record in &page.records {
            ledger.apply(&record.fact);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// `batchguard enforce`, as parsed.
#[derive(Debug)]
struct EnforceRequest {
    budget: Option<Decimal>,
    period: BudgetPeriod,
    queues: Vec<String>,
    policy: BudgetPolicy,
    dry_run: bool,
    restore: bool,
    topic_arn: Option<String>,
    at: Option<DateTime<Utc>>,
    prices: Option<PathBuf>,
    json: bool,
}

async fn enforce_with<S: EventLog + AuditTrail + Sync>(
    log: &S,
    request: &EnforceRequest,
) -> Result<(), CliError> {
    request
        .policy
        .validate()
        .map_err(|e| CliError::Policy(e.to_string()))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let notifier = Notifications::for_topic(&aws, request.topic_arn.as_deref());
    let enforcer = Enforcer::new(
        AwsBatch::from_config(&aws),
        log,
        notifier,
        EnforcerSettings {
            queues: request.queues.clone(),
            dry_run: request.dry_run,
            period: request.period,
        },
    );
    let now_ms = request
        .at
        .map_or_else(|| Utc::now().timestamp_millis(), |at| at.timestamp_millis());
    let at = Millis(now_ms).floor_seconds();
    let (report, decision) = if request.restore {
        (
            enforcer
                .restore("restore requested from the command line", now_ms)
                .await?,
            None,
        )
    } else {
        let budget = Budget {
            amount_usd: request.budget.unwrap_or_default(),
            period: request.period,
        };
        if budget.amount_usd < Decimal::ZERO {
            return Err(CliError::NegativeBudget(budget.amount_usd));
        }
        let mut ledger = Ledger::new(load_prices(request.prices.as_deref())?, request.period);
        fold_log(log, &mut ledger).await?;
        let scopes: Vec<Scope> = if request.queues.is_empty() {
            vec![Scope::Total]
        } else {
            request
                .queues
                .iter()
                .map(|q| Scope::Queue(q.as_str().into()))
                .collect()
        };
        let (mut spend, mut burn) = (Decimal::ZERO, Decimal::ZERO);
        for scope in &scopes {
            let figures = ledger.scope_spend(scope, at);
            spend += figures.period_spend_usd;
            burn += figures.burn_rate_usd_per_hour;
        }
        let status = BudgetStatus::evaluate(budget, at, spend, burn);
        let decision = decide(&status, &request.policy, at);
        (
            enforcer
                .enforce(decision.level, &decision.reason, now_ms)
                .await?,
            Some(decision),
        )
    };
    if request.json {
        let document = serde_json::json!({ "decision": decision, "report": report });
        println!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        );
    } else {
        print!("{}", output::enforcement(&report));
    }
    Ok(())
}

async fn prices_fetch(
    region: &str,
    out: Option<&Path>,
    instance_types: Vec<String>,
    api_region: &str,
    json: bool,
) -> Result<(), CliError> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(api_region.to_owned()))
        .load()
        .await;
    let client = aws_sdk_pricing::Client::new(&config);
    let instance_types = if instance_types.is_empty() {
        PriceTable::builtin().ec2_instance_types()
    } else {
        instance_types
    };
    let today = Utc::now().format("%Y-%m-%d").to_string();
    let fetched = pricing::fetch(&client, region, &instance_types, &today).await?;
    write_fetched(&fetched, out, json)
}

/// Writes a fetched price file and says what is in it (stderr), or as JSON (stdout).
fn write_fetched(
    fetched: &shared::pricelist::FetchedPrices,
    out: Option<&Path>,
    json: bool,
) -> Result<(), CliError> {
    // The file must read back as a price file before it is written anywhere.
    PriceTable::builtin_with_overrides(&fetched.toml).map_err(|e| CliError::Prices {
        path: out.map_or_else(|| PathBuf::from("-"), Path::to_path_buf),
        source: Box::new(e),
    })?;
    match out {
        Some(path) => std::fs::write(path, &fetched.toml).map_err(|source| CliError::Output {
            path: path.to_path_buf(),
            source,
        })?,
        None => print!("{}", fetched.toml),
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"found": fetched.found, "missing": fetched.missing})
        );
    } else {
        for line in &fetched.found {
            eprintln!("found: {line}");
        }
        for line in &fetched.missing {
            eprintln!("missing (not in the Price List; nothing written): {line}");
        }
    }
    Ok(())
}

async fn run_doctor(stack: &str, json: bool) -> Result<(), CliError> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let facts = doctor::gather(
        &doctor::Clients::new(&config),
        stack,
        Utc::now().timestamp(),
    )
    .await?;
    let checks = shared::doctor::checklist(&facts);
    let healthy = shared::doctor::healthy(&checks);
    if json {
        let document = serde_json::json!({
            "stack": stack,
            "healthy": healthy,
            "checks": checks,
        });
        println!("{document:#}");
    } else {
        print!("{}", output::doctor_checklist(&checks));
    }
    if healthy {
        Ok(())
    } else {
        Err(CliError::Unhealthy {
            stack: stack.to_owned(),
            failed: checks
                .iter()
                .filter(|c| c.status == shared::doctor::Status::Fail)
                .count(),
        })
    }
}

/// With `--budget-name`: the budget, its period and AWS's baseline, from AWS Budgets; with
/// `--cost-explorer`, the baseline from Cost Explorer.
async fn with_aws_budget(mut evaluation: Evaluation) -> Result<Evaluation, CliError> {
    if evaluation.cost_explorer {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let at = evaluation
            .at
            .map_or_else(|| Utc::now().timestamp(), |t| t.timestamp());
        let query = cost_explorer::Query {
            services: if evaluation.ce_services.is_empty() {
                cost_explorer::DEFAULT_SERVICES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            } else {
                evaluation.ce_services.clone()
            },
            tags: evaluation.ce_tags.clone(),
            lag_hours: evaluation.ce_lag_hours,
        };
        let client = aws_sdk_costexplorer::Client::new(&config);
        evaluation.baseline =
            Some(cost_explorer::baseline(&client, evaluation.period, at, &query).await?);
        return Ok(evaluation);
    }
    let (Some(name), Some(account)) = (&evaluation.budget_name, &evaluation.account_id) else {
        return Ok(evaluation);
    };
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let aws =
        shared::adapters::budgets::describe(&aws_sdk_budgets::Client::new(&config), account, name)
            .await?;
    evaluation.budget = Some(aws.limit_usd);
    evaluation.period = aws.period;
    evaluation.baseline = Some(aws.baseline);
    Ok(evaluation)
}

fn parse_day(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| format!("{text:?} is not a day YYYY-MM-DD: {e}"))
}

#[allow(clippy::too_many_arguments, reason = "one per command-line option")]
async fn reconcile(
    source: &cur::CurSource,
    day: chrono::NaiveDate,
    store: Option<&StoreSpec>,
    prices: Option<&Path>,
    tolerance: Decimal,
    spot_prices_out: Option<&Path>,
    json: bool,
    paths: &[PathBuf],
) -> Result<(), CliError> {
    let table = load_prices(prices)?;
    let mut ledger = Ledger::new(table.clone(), BudgetPeriod::Month);
    match store {
        None => {
            let files = files::expand_paths(paths)?;
            let mut intake = Intake::new(true);
            read_all(&files, &mut intake, |fact| ledger.apply(&fact), |_| {})?;
        }
        Some(StoreSpec::File(path)) => {
            fold_log(&SqliteEventLog::open(path)?, &mut ledger).await?;
        }
        Some(StoreSpec::Dynamo(tables)) => {
            fold_log(&dynamo(tables, None).await, &mut ledger).await?;
        }
    }
    let lines = match source {
        cur::CurSource::Local(path) => cur::read_local(path)?,
        cur::CurSource::S3(url) => {
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await;
            // Path-style addressing works with S3 and with an emulator's endpoint alike.
            let s3 = aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(true)
                    .build(),
            );
            cur::read_s3(&s3, url).await?
        }
    };
    let day_start = day
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp());
    let ours = ledger.task_costs_between(day_start, day_start + 86_400);
    let result = shared::bill::reconcile(day_start, &lines, &ours, tolerance);
    if let Some(path) = spot_prices_out {
        // Spot does not discount ephemeral storage: the region's on-demand figure.
        let storage = |region: &str, architecture: &str| {
            shared::core::facts::Architecture::parse(architecture)
                .and_then(|a| {
                    table
                        .fargate(region, a, shared::core::facts::Capacity::OnDemand)
                        .ok()
                })
                .map_or(Decimal::ZERO, |rates| rates.storage_gb_hour)
        };
        std::fs::write(path, result.spot_price_file(storage)).map_err(|source| {
            CliError::Output {
                path: path.to_path_buf(),
                source,
            }
        })?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
    } else {
        print!("{}", output::reconciliation(&result));
    }
    Ok(())
}

/// Points on the report's time axes.
const TIMELINE_POINTS: usize = 240;

async fn report(
    html: &Path,
    store: Option<&StoreSpec>,
    evaluation: &Evaluation,
    paths: &[PathBuf],
) -> Result<(), CliError> {
    check_budget(evaluation)?;
    let mut ledger = Ledger::new(
        load_prices(evaluation.prices.as_deref())?,
        evaluation.period,
    );
    // The monitoring view needs the facts themselves, not only the fold.
    let mut facts = Vec::new();
    let counts = match store {
        None => {
            let files = files::expand_paths(paths)?;
            let mut intake = Intake::new(true);
            read_all(
                &files,
                &mut intake,
                |fact| {
                    ledger.apply(&fact);
                    facts.push(fact);
                },
                |_| {},
            )?;
            intake.counts
        }
        Some(StoreSpec::File(path)) => {
            let log = SqliteEventLog::open(path)?;
            facts = read_log(&log).await?;
            log.counts().await?
        }
        Some(StoreSpec::Dynamo(tables)) => {
            let log = dynamo(tables, None).await;
            facts = read_log(&log).await?;
            log.counts().await?
        }
    };
    if store.is_some() {
        for fact in &facts {
            ledger.apply(fact);
        }
    }
    let at = evaluation_instant(evaluation, &ledger);
    let status = StatusReport::build_with_baseline(
        &ledger,
        at,
        evaluation.budget,
        evaluation.baseline,
        counts,
    );
    let timeline = shared::report::timeline(&ledger, at, TIMELINE_POINTS);
    let activity = Activity::build(&facts, &ledger.walk(at));
    let page = html::render(&status, &timeline, &activity, at);
    std::fs::write(html, page).map_err(|source| CliError::Output {
        path: html.to_path_buf(),
        source,
    })?;
    if evaluation.json {
        print_report(&status, true);
    } else {
        eprintln!("{}: written", html.display());
    }
    Ok(())
}

async fn redrive(
    store: &StoreSpec,
    period: BudgetPeriod,
    prices: Option<&Path>,
    json: bool,
) -> Result<(), CliError> {
    let report = match store {
        StoreSpec::File(path) => {
            Collector::new(SqliteEventLog::open(path)?, NoProjection)
                .redrive()
                .await?
        }
        StoreSpec::Dynamo(tables) => {
            let log = dynamo(tables, None).await;
            let projector = DynamoProjector::new(log.clone(), load_prices(prices)?, period);
            Collector::new(log, projector).redrive().await?
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "{store}: {} re-driven events stored, {} skipped, {} still quarantined",
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

fn simulate(
    name: &str,
    seed: u64,
    tick_seconds: i64,
    stop_delay_seconds: i64,
    json: bool,
) -> Result<(), CliError> {
    let scenario = shared::sim::scenario(name, seed)
        .ok_or_else(|| CliError::Policy(format!("no scenario {name:?}")))?;
    if tick_seconds < 1 || stop_delay_seconds < 0 {
        return Err(CliError::Policy(
            "--tick-seconds must be at least 1 and --stop-delay-seconds not negative".into(),
        ));
    }
    let settings = shared::sim::Settings {
        policy: BudgetPolicy {
            tick_seconds,
            stop_delay_seconds,
            ..BudgetPolicy::default()
        },
        ..shared::sim::Settings::default()
    };
    let report = shared::sim::simulate(&scenario, &settings, &PriceTable::builtin());
    if json {
        println!("{}", output::simulation_json(&report));
    } else {
        print!("{}", output::simulation_human(&report, &scenario));
    }
    Ok(())
}

fn generate(seed: u64, jobs: usize, out: &Path) -> Result<(), CliError> {
    let config = WorkloadConfig {
        seed,
        jobs,
        ..WorkloadConfig::sample_day()
    };
    let workload = synth::generate(&config);
    let mut text = workload.events.join("\n");
    text.push('\n');
    std::fs::write(out, text).map_err(|source| CliError::Output {
        path: out.to_path_buf(),
        source,
    })?;
    eprintln!(
        "wrote {} events ({} tasks) to {}",
        workload.events.len(),
        workload.tasks.len(),
        out.display()
    );
    Ok(())
}
