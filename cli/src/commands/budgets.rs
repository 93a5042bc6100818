//! `batchguard budgets check`: read and validate a budgets file and show what it declares.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Subcommand;
use comfy_table::Table;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use shared::core::budgets::{Admission, BudgetBook, BudgetSpec, period_name};

use super::evaluation::load_budgets;
use crate::error::CliError;

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
}

pub fn run(command: &Command) -> Result<(), CliError> {
    let Command::Check { file, json } = command;
    let Some(book) = load_budgets(Some(file))? else {
        return Ok(());
    };
    if *json {
        let budgets: Vec<&BudgetSpec> = book.budgets().collect();
        let text = serde_json::to_string_pretty(&budgets)
            .map_err(|error| CliError::Usage(format!("cannot write JSON: {error}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&book));
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
