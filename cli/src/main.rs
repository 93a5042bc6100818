//! `batchguard`: replay recorded AWS Batch / ECS events into the bill AWS will send, a burn
//! rate and a budget forecast — locally, on an embedded store, with no AWS account — and, with
//! one, enforce the budget, check a stack, fetch prices and reconcile with the bill.
//!
//! This file is the command tree and nothing else: each command's options and body are in
//! `commands/`, what it prints in `render/`, the SDK calls only the CLI makes in `adapters/`.
#![forbid(unsafe_code)]

mod adapters;
mod commands;
mod error;
mod input;
mod render;
mod store;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{
    budgets, doctor, enforce, generate, ingest, init, prices, reconcile, redrive, replay, report,
    simulate, status,
};
use crate::error::CliError;

#[derive(Debug, Parser)]
#[command(
    name = "batchguard",
    version,
    about = "Real-time spend monitor and kill switch for AWS Batch: the bill, burn rate and forecast from Batch and ECS events, and the budget enforced."
)]
struct Cli {
    /// On a failure, also print the whole error (the AWS SDK's own account included); so does
    /// a set RUST_LOG.
    #[arg(long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fold event files into spend and print it (nothing is stored).
    Replay(replay::Args),
    /// Create a store: a SQLite file, or DynamoDB tables for development.
    ///
    /// A SQLite file, or the DynamoDB tables of `dynamodb:<prefix>` (for development;
    /// deployments get theirs from the SAM template).
    Init(init::Args),
    /// Append event files to a store; also backfills a deployed stack.
    ///
    /// A missing SQLite file is created. Into `dynamodb:<prefix>` (a deployed stack's tables)
    /// this is how recorded events are backfilled; the stack's projections are kept current.
    Ingest(ingest::Args),
    /// Spend, burn rate and forecast from a store.
    Status(status::Args),
    /// Write one self-contained HTML page of charts and tables.
    ///
    /// From a store or from event files: spend against the budget with the forecast, spend by
    /// queue, running vCPU, jobs by state, state transitions over time, timing distributions
    /// (queue wait, image pull, run, total), Spot interruptions and savings, EC2 instances
    /// (bill, jobs' shares, idle) and placement, array and multi-node jobs, and the costliest
    /// jobs.
    Report(report::Args),
    /// Offer the store's quarantined events again and release what is read now.
    ///
    /// After an upgrade that reads them: what is read now is stored (and, on DynamoDB,
    /// projected) and taken out of the quarantine; what still cannot be read stays, with
    /// today's reason.
    Redrive(redrive::Args),
    /// Enforce the budget on AWS Batch: notify, freeze, stop — or restore.
    ///
    /// Runs the budget policy on a store's spend and carries it out: notify, freeze (disable
    /// the queues, cancel queued jobs) or stop (terminate running jobs); or restore what
    /// batchguard disabled; or, with --budgets FILE or --applied-budgets, what each budget's
    /// thresholds call for on its own jobs. Uses the usual AWS variables (AWS_ENDPOINT_URL for
    /// an emulator).
    Enforce(enforce::Args),
    /// Check a deployed stack and print a checklist with a fix per failure.
    ///
    /// The stack's state, its tables, event rules, dead-letter queues and quarantine, its
    /// alarms (and that the budget alarms invoke the enforcer), that the ticker's metrics
    /// arrived in the last 15 minutes, the job queues in scope against what batchguard last
    /// did to them, the ticker's reading of the AWS budget (with BudgetName), and dry run.
    /// Exits non-zero when a check fails. Uses the usual AWS variables.
    Doctor(doctor::Args),
    /// Write a generated, realistic workload as JSON Lines.
    ///
    /// How `examples/sample-day.jsonl` was made.
    Generate(generate::Args),
    /// Simulate a workload under batchguard and two baselines; compare the overshoot.
    ///
    /// One workload under batchguard's policy, a poller of a spend figure refreshed every
    /// 8 h, and alert-only AWS Budgets; compares the overshoot.
    Simulate(simulate::Args),
    /// Prices: `prices fetch` reads them from the AWS Price List API into a price file.
    Prices {
        #[command(subcommand)]
        command: prices::Command,
    },
    /// Check one day of batchguard's task costs against the Cost and Usage Report.
    ///
    /// Reads a CUR 2.0 export (split cost allocation data; CSV, CSV.gz or Parquet; a file, a
    /// directory or `s3://bucket/prefix`), matches its ECS task line items to batchguard's
    /// tasks by task ARN, and reports the drift per task and per queue, tasks either side
    /// lacks, and the Spot prices actually paid.
    Reconcile(reconcile::Args),
    /// Budgets files: check one, apply one to a store, list a store's budgets.
    ///
    /// A budgets file declares named budgets, each with its scope, amount, period and
    /// thresholds (README, "Budgets"); `replay`, `status` and `report` take one with
    /// `--budgets`.
    Budgets {
        #[command(subcommand)]
        command: budgets::Command,
    },
}

async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Replay(args) => replay::run(args).await,
        Command::Init(args) => init::run(args).await,
        Command::Ingest(args) => ingest::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Redrive(args) => redrive::run(args).await,
        Command::Enforce(args) => enforce::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Generate(args) => generate::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Prices { command } => prices::run(command).await,
        Command::Reconcile(args) => reconcile::run(args).await,
        Command::Budgets { command } => budgets::run(command).await,
    }
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
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("batchguard: {error}");
            if let Some(hint) = error.hint() {
                eprintln!("hint: {hint}");
            }
            if cli.verbose || std::env::var_os("RUST_LOG").is_some() {
                eprintln!("the whole error: {error:#?}");
            }
            ExitCode::FAILURE
        }
    }
}
