//! `batchguard budgets`: check a budgets file, apply it to a store, and list a store's budgets
//! with their figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::Subcommand;
use comfy_table::Table;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use serde::Serialize;
use shared::analysis::budgets::budget_lines;
use shared::core::budgets::{Admission, BudgetBook, BudgetChange, BudgetSpec, period_name};
use shared::core::facts::Millis;
use shared::ports::{BudgetStore, StoreError};

use super::evaluation::{ledger_with_budgets, load_budgets, warn_if_far_past_the_events};
use super::load_prices;
use crate::error::CliError;
use crate::render::text::budgets_table;
use crate::store::{Store, StoreSpec, parse_store};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read and validate a budgets file (README, "Budgets") and print its budgets.
    ///
    /// Every error in the file is printed, each naming its budget and field, and the exit
    /// status is 1; nothing is read from or written to AWS.
    Check {
        /// The budgets file (TOML).
        file: PathBuf,
        /// Print the budgets as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply a budgets file to a store: show what changes, then replace its budgets whole.
    ///
    /// The file is validated first; a bad file changes nothing. The budgets are replaced only
    /// if nobody applied others since this command read them (else run it again).
    Apply {
        /// The budgets file (TOML).
        file: PathBuf,
        /// A SQLite file, or `dynamodb:<table-prefix>` or `dynamodb:<events table>,<state
        /// table>` (a stack's tables).
        #[arg(long, value_parser = parse_store)]
        store: StoreSpec,
        /// Show what would change and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print what changes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the budgets applied to a store, each with its spend, share used, forecast and
    /// the action its thresholds call for now (from the store's events).
    List {
        /// A SQLite file, or `dynamodb:<table-prefix>` or `dynamodb:<events table>,<state
        /// table>`.
        #[arg(long, value_parser = parse_store)]
        store: StoreSpec,
        /// Evaluate at this instant (RFC 3339; rounded down to the second). Default: the
        /// latest instant any event mentions.
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        /// A price file laid over the built-in prices.
        #[arg(long)]
        prices: Option<PathBuf>,
        /// Print the budgets as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Check { file, json } => check(&file, json),
        Command::Apply {
            file,
            store,
            dry_run,
            json,
        } => apply(&file, &store, dry_run, json).await,
        Command::List {
            store,
            at,
            prices,
            json,
        } => list(&store, at, prices.as_deref(), json).await,
    }
}

fn check(file: &Path, json: bool) -> Result<(), CliError> {
    let Some(book) = load_budgets(Some(file))? else {
        return Ok(());
    };
    if json {
        let budgets: Vec<&BudgetSpec> = book.budgets().collect();
        let text = serde_json::to_string_pretty(&budgets)
            .map_err(|error| CliError::Usage(format!("cannot write JSON: {error}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&book));
    }
    Ok(())
}

/// One line of what an apply changes.
#[derive(Debug, Serialize)]
struct ChangeLine {
    budget: String,
    /// `added`, `changed` or `removed`.
    change: &'static str,
    /// For `changed`: the fields that differ.
    fields: Vec<&'static str>,
}

/// The fields of a budget that differ between two versions of it.
fn changed_fields(before: &BudgetSpec, after: &BudgetSpec) -> Vec<&'static str> {
    let mut fields = Vec::new();
    for (name, differs) in [
        ("parent", before.parent != after.parent),
        ("amount_usd", before.amount_usd != after.amount_usd),
        ("period", before.period != after.period),
        ("scope", before.scope != after.scope),
        ("thresholds", before.thresholds != after.thresholds),
        ("dry_run", before.dry_run != after.dry_run),
        ("admission", before.admission != after.admission),
    ] {
        if differs {
            fields.push(name);
        }
    }
    fields
}

async fn apply(file: &Path, spec: &StoreSpec, dry_run: bool, json: bool) -> Result<(), CliError> {
    let Some(next) = load_budgets(Some(file))? else {
        return Ok(());
    };
    // A dry run only reads; an apply writes to a store that exists (a mistyped SQLite path
    // is an error, not a new empty store).
    let store = match spec {
        StoreSpec::File(path) if !path.exists() => {
            return Err(CliError::Usage(format!(
                "no such store {spec}: create it with `batchguard init --store {spec}` or `batchguard ingest --store {spec} …`"
            )));
        }
        _ if dry_run => Store::open_to_read(spec).await?,
        _ => Store::open(spec, None).await?,
    };
    // A stored book that no longer validates (edited by hand, or by an older version) is
    // replaced whole: every budget of the file is then added.
    let (version, stored, corrupt) = match store.budgets().await {
        Ok((version, stored)) => (version, stored.unwrap_or_default(), None),
        Err(error @ StoreError::Corrupt { .. }) => (
            store.budgets_version().await?,
            BudgetBook::default(),
            Some(error.to_string()),
        ),
        Err(error) => return Err(error.into()),
    };
    let changes: Vec<ChangeLine> = stored
        .diff(&next)
        .into_iter()
        .map(|change| match change {
            BudgetChange::Added(b) => ChangeLine {
                budget: b.name.clone(),
                change: "added",
                fields: Vec::new(),
            },
            BudgetChange::Removed(b) => ChangeLine {
                budget: b.name.clone(),
                change: "removed",
                fields: Vec::new(),
            },
            BudgetChange::Changed { before, after } => ChangeLine {
                budget: after.name.clone(),
                change: "changed",
                fields: changed_fields(before, after),
            },
        })
        .collect();
    let written = if changes.is_empty() || dry_run {
        None
    } else if store.replace_budgets(&next, version).await? {
        Some(version + 1)
    } else {
        return Err(CliError::Usage(format!(
            "another apply changed the budgets of {spec} since this one read them (version {version}): run it again to see the difference"
        )));
    };
    if json {
        let document = serde_json::json!({
            "store": spec.to_string(),
            "version_before": version,
            "version": written.unwrap_or(version),
            "dry_run": dry_run,
            "changes": changes,
            "replaces_corrupt": corrupt,
        });
        println!("{document}");
        return Ok(());
    }
    if let Some(error) = &corrupt {
        println!(
            "the stored budgets (version {version}) do not validate ({error}): this apply replaces them whole"
        );
    }
    if changes.is_empty() {
        println!(
            "no change: {spec} already holds these {} budgets (version {version})",
            next.len()
        );
        return Ok(());
    }
    for line in &changes {
        let mark = match line.change {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        if line.fields.is_empty() {
            println!("{mark} {}: {}", line.budget, line.change);
        } else {
            println!(
                "{mark} {}: {} ({})",
                line.budget,
                line.change,
                line.fields.join(", ")
            );
        }
    }
    match written {
        Some(version) => println!(
            "applied to {spec}: {} budgets, version {version}",
            next.len()
        ),
        None => println!("dry run: nothing written to {spec} (version {version})"),
    }
    Ok(())
}

async fn list(
    spec: &StoreSpec,
    at: Option<DateTime<Utc>>,
    prices: Option<&Path>,
    json: bool,
) -> Result<(), CliError> {
    let store = Store::open_to_read(spec).await?;
    let (version, book) = store.budgets().await?;
    let Some(book) = book else {
        return Err(CliError::Usage(format!(
            "no budgets applied to {spec}: `batchguard budgets apply FILE --store {spec}`"
        )));
    };
    let book = std::sync::Arc::new(book);
    let mut ledger = ledger_with_budgets(
        load_prices(prices)?,
        book.budgets()
            .next()
            .map_or_else(Default::default, |b| b.period),
        Some(&book),
    );
    store.fold_into(&mut ledger).await?;
    let at = match at {
        Some(at) => {
            let at = Millis::from_datetime(at).floor_seconds();
            warn_if_far_past_the_events(at, &ledger);
            at
        }
        None => ledger.latest_instant().map_or(0, Millis::ceil_seconds),
    };
    let lines = budget_lines(&book, &[&ledger], at);
    if json {
        let document = serde_json::json!({
            "store": spec.to_string(),
            "version": version,
            "as_of": shared::analysis::figures::instant(at),
            "budgets": lines,
        });
        println!("{document}");
    } else {
        println!(
            "{spec}: {} budgets (version {version}), as of {}\n{}",
            lines.len(),
            shared::analysis::figures::instant(at),
            budgets_table(&lines)
        );
    }
    Ok(())
}

/// The budgets as a table, then one line on what each counts.
fn render(book: &BudgetBook) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "budget",
        "parent",
        "counts",
        "amount",
        "period",
        "scope",
        "thresholds",
        "admission",
        "dry run",
    ]);
    for spec in book.budgets() {
        table.add_row(vec![
            spec.name.clone(),
            spec.parent.clone().unwrap_or_else(|| "-".into()),
            if spec.counts_the_bill() {
                "bill"
            } else {
                "jobs"
            }
            .to_owned(),
            format!("${}", spec.amount_usd),
            period_name(spec.period).to_owned(),
            scope_text(spec),
            spec.thresholds
                .iter()
                .map(|t| format!("{}% {}", t.percent, t.action))
                .collect::<Vec<_>>()
                .join(", "),
            match spec.admission {
                Admission::Open => "open",
                Admission::Safe => "safe",
            }
            .to_owned(),
            if spec.dry_run { "yes" } else { "no" }.to_owned(),
        ]);
    }
    let mut out = format!("{} budgets, valid\n{table}\n", book.len());
    let _ = writeln!(
        out,
        "bill: the account's whole bill (EC2 instances whole); jobs: the costs of the jobs the scope, and every parent's, matches."
    );
    out
}

/// `queues a|b; tags team=x` — every dimension must match, any listed value of one.
fn scope_text(spec: &BudgetSpec) -> String {
    let scope = &spec.scope;
    if scope.is_everything() {
        return if spec.parent.is_some() {
            "its parent's".into()
        } else {
            "everything".into()
        };
    }
    let join = |values: &std::collections::BTreeSet<String>| {
        values.iter().cloned().collect::<Vec<_>>().join("|")
    };
    let mut parts = Vec::new();
    for (name, values) in [
        ("queues", &scope.queues),
        ("compute environments", &scope.compute_environments),
        ("job definitions", &scope.job_definitions),
    ] {
        if !values.is_empty() {
            parts.push(format!("{name} {}", join(values)));
        }
    }
    for (key, values) in &scope.tags {
        let values: Vec<String> = values.iter().map(|v| format!("{key}={v}")).collect();
        parts.push(format!("tag {}", values.join("|")));
    }
    parts.join("; ")
}
