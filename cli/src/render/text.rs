//! Printing a [`StatusReport`]: one JSON document, or tables for people.

use std::fmt::Write as _;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};
use rust_decimal::{Decimal, RoundingStrategy};

use shared::analysis::report::StatusReport;
use shared::analysis::sim::{Scenario, SimReport};

/// How many of the costliest jobs the human output lists.
const COSTLIEST_JOBS_SHOWN: usize = 10;

pub fn json(report: &StatusReport) -> String {
    // Serialising plain data (strings, decimals as strings, integers) cannot fail.
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn usd(value: Decimal) -> String {
    format!(
        "${:.2}",
        value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    )
}

fn usd_precise(value: Decimal) -> String {
    format!(
        "${:.4}",
        value.round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
    )
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    for index in 1..header.len() {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// Where a report's event counts come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventsCounted {
    /// The files this command read.
    ThisRead,
    /// The store's running totals over every ingest.
    StoreTotals,
}

pub fn human(report: &StatusReport, counted: EventsCounted) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "batchguard — as of {} (budget period {} to {})",
        report.as_of, report.period_start, report.period_end
    );
    let _ = writeln!(
        out,
        "Spend        {} in all, {} this period",
        usd(report.spend_usd),
        usd(report.period_spend_usd)
    );
    let _ = writeln!(
        out,
        "Burn rate    {}/hour — {} jobs running ({} tasks, {} vCPU, {} GiB)",
        usd_precise(report.burn_rate_usd_per_hour),
        report.running_jobs,
        report.running_tasks,
        report.running_vcpu,
        report.running_memory_gib
    );
    match (report.budget_usd, report.budget_used_percent) {
        (Some(budget), Some(used)) => {
            let outlook = match (report.outlook, &report.projected_exhaustion) {
                (Some("runs_out"), Some(when)) => format!("runs out at {when} at this rate"),
                (Some("exhausted"), _) => "EXHAUSTED".to_owned(),
                (Some("lasts_the_period"), _) => "lasts the period at this rate".to_owned(),
                _ => "not growing (nothing running)".to_owned(),
            };
            let _ = writeln!(
                out,
                "Budget       {} — {}% used — {outlook}",
                usd(budget),
                used.round_dp(1)
            );
        }
        _ => {
            let _ = writeln!(out, "Budget       none given (--budget USD)");
        }
    }
    if let Some(baseline) = &report.baseline {
        let _ = writeln!(
            out,
            "Baseline     AWS's {} as of {} + batchguard's {} after it = {} against the budget",
            usd(baseline.aws_spend_usd),
            baseline.aws_as_of,
            usd(baseline.ledger_after_usd),
            usd(baseline.budget_spend_usd)
        );
    }
    let what = match counted {
        EventsCounted::ThisRead => "",
        EventsCounted::StoreTotals => " (the store's totals over every ingest)",
    };
    let _ = writeln!(
        out,
        "Events{what}  read {}, duplicates {}, skipped {}, rejected {}",
        report.events.read, report.events.duplicates, report.events.skipped, report.events.rejected
    );

    let mut queues = table(&[
        "queue",
        "spend",
        "this period",
        "burn/hour",
        "running tasks",
    ]);
    for line in report.scopes.iter().filter(|line| line.kind == "queue") {
        queues.add_row(vec![
            line.name.clone(),
            usd(line.spend_usd),
            usd(line.period_spend_usd),
            usd_precise(line.burn_rate_usd_per_hour),
            line.running_tasks.to_string(),
        ]);
    }
    let _ = writeln!(out, "\nSpend by queue\n{queues}");

    if !report.budgets.is_empty() {
        let _ = writeln!(
            out,
            "\nBudgets (--budgets)\n{}",
            budgets_table(&report.budgets)
        );
    }

    if !report.capped_jobs.is_empty() {
        let mut capped = table(&["capped job", "cap", "cost", "state", "reaches its cap"]);
        for line in &report.capped_jobs {
            capped.add_row(vec![
                line.job_id.clone(),
                match (&line.cap_usd, &line.cap_error) {
                    (Some(cap), _) => usd(*cap),
                    (None, Some(why)) => format!("not capped: {why}"),
                    (None, None) => "-".to_owned(),
                },
                usd(line.cost_usd),
                match (line.running, line.over_cap) {
                    (true, true) => "running, over its cap",
                    (true, false) => "running",
                    (false, true) => "ended over its cap",
                    (false, false) => "ended",
                }
                .to_owned(),
                line.reaches_cap_at
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
            ]);
        }
        let _ = writeln!(out, "\nJobs capped with batchguard:max-usd\n{capped}");
    }

    let mut environments = table(&[
        "compute environment",
        "spend",
        "running tasks",
        "vCPU",
        "GiB",
    ]);
    for line in report
        .scopes
        .iter()
        .filter(|line| line.kind == "compute_environment")
    {
        environments.add_row(vec![
            line.name.clone(),
            usd(line.spend_usd),
            line.running_tasks.to_string(),
            line.running_vcpu.to_string(),
            line.running_memory_gib.to_string(),
        ]);
    }
    let _ = writeln!(out, "\nSpend by compute environment\n{environments}");

    let mut definitions = table(&["job definition", "spend"]);
    for (name, spend) in &report.by_job_definition {
        definitions.add_row(vec![name.clone(), usd(*spend)]);
    }
    let _ = writeln!(out, "\nSpend by job definition\n{definitions}");

    if !report.by_tag.is_empty() {
        let mut tags = table(&["tag", "spend"]);
        for (tag, spend) in &report.by_tag {
            tags.add_row(vec![tag.clone(), usd(*spend)]);
        }
        let _ = writeln!(out, "\nSpend by tag\n{tags}");
    }

    let mut costliest: Vec<_> = report
        .jobs
        .iter()
        .filter(|job| job.cost_usd.is_some())
        .collect();
    costliest.sort_by(|a, b| {
        b.cost_usd
            .cmp(&a.cost_usd)
            .then_with(|| a.job_id.cmp(&b.job_id))
    });
    let mut jobs = table(&["costliest jobs", "queue", "status", "billed", "cost"]);
    for job in costliest.iter().take(COSTLIEST_JOBS_SHOWN) {
        let mark = if job.estimated { " (est.)" } else { "" };
        jobs.add_row(vec![
            job.job_id.clone(),
            job.queue.clone(),
            job.status.unwrap_or("?").to_owned(),
            format!("{} s", job.billed_seconds),
            format!("{}{mark}", usd_precise(job.cost_usd.unwrap_or_default())),
        ]);
    }
    let _ = writeln!(out, "\n{jobs}");

    if !report.ec2_instances.is_empty() {
        let mut instances = table(&[
            "EC2 instance",
            "type",
            "split by",
            "compute environment",
            "billed",
            "bill",
            "jobs' shares",
            "idle",
        ]);
        for instance in &report.ec2_instances {
            let priced =
                |value: Option<Decimal>| value.map_or_else(|| "unpriced".into(), usd_precise);
            instances.add_row(vec![
                instance
                    .ec2_instance_id
                    .clone()
                    .unwrap_or_else(|| instance.container_instance_arn.clone()),
                instance.instance_type.clone().unwrap_or_else(|| "?".into()),
                instance.split_by.clone().unwrap_or_else(|| "—".into()),
                format!(
                    "{}{}",
                    instance.compute_environment,
                    if instance.spot { " (Spot)" } else { "" }
                ),
                format!("{} s", instance.billed_seconds),
                priced(instance.cost_usd),
                usd_precise(instance.attributed_usd),
                priced(instance.idle_usd),
            ]);
        }
        let _ = writeln!(out, "\n{instances}");
    }

    if !report.audit.is_empty() {
        let mut audit = table(&[
            "enforcement this period",
            "level",
            "action",
            "target",
            "dry run",
        ]);
        for entry in &report.audit {
            audit.add_row(vec![
                entry.at.clone(),
                entry.level.clone(),
                entry.action.to_owned(),
                entry.target.clone(),
                if entry.dry_run { "yes" } else { "no" }.to_owned(),
            ]);
        }
        let _ = writeln!(out, "\n{audit}");
    }

    if report.refused_facts > 0 {
        let _ = writeln!(
            out,
            "\nWARNING: {} stored events have a value out of range (a size or time no AWS event has) and are left out of the figures.",
            report.refused_facts
        );
    }
    if report.unpriced_tasks > 0 {
        let mut reasons: Vec<&str> = report
            .jobs
            .iter()
            .filter_map(|job| job.unpriced.as_deref())
            .chain(
                report
                    .unattributed_tasks
                    .iter()
                    .filter_map(|task| task.unpriced.as_deref()),
            )
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        let _ = writeln!(
            out,
            "\nWARNING: {} tasks have no price and are not in the figures above: {}",
            report.unpriced_tasks,
            reasons.join("; ")
        );
    }
    if report.estimated_tasks > 0 {
        let _ = writeln!(
            out,
            "Note: {} tasks are priced from Batch events alone (no ECS task event yet): marked (est.), on-demand assumed.",
            report.estimated_tasks
        );
    }
    if !report.unattributed_tasks.is_empty() {
        let _ = writeln!(
            out,
            "Note: {} tasks on Batch clusters are not named by any Batch event yet: under queue \"(unattributed)\".",
            report.unattributed_tasks.len()
        );
    }
    out
}

/// What an enforcement did (or, in a dry run, would do), as a table, and what failed.
#[cfg(feature = "aws")]
pub fn enforcement(report: &shared::app::enforcer::EnforcementReport) -> String {
    use shared::core::facts::EnforcementAction;
    let mut out = String::new();
    let mode = if report.dry_run {
        " (dry run: no queue or job was changed; notices are sent, marked dry run)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "batchguard enforce — level {}{mode}: {}",
        report.level, report.reason
    );
    if report.actions.is_empty() {
        let _ = writeln!(out, "Nothing to do.");
    } else {
        let mut actions = table(&["action", "target", "carried out"]);
        for action in &report.actions {
            let done = match (&action.action, action.carried_out, report.dry_run) {
                (EnforcementAction::Notified { .. }, true, true) => "yes (sent, marked dry run)",
                (_, true, _) => "yes",
                (_, false, true) => "no (dry run)",
                (_, false, false) => "no",
            };
            actions.add_row(vec![
                action.action.name().to_owned(),
                action.action.target().to_owned(),
                done.to_owned(),
            ]);
        }
        let _ = writeln!(out, "{actions}");
    }
    if !report.protected_jobs.is_empty() {
        let _ = writeln!(
            out,
            "Left alone (batchguard:protect=true): {}",
            report.protected_jobs.join(", ")
        );
    }
    if !report.unverified_jobs.is_empty() {
        let _ = writeln!(
            out,
            "Left alone (tags unreadable, so maybe protected): {}",
            report.unverified_jobs.join(", ")
        );
    }
    if !report.stopping_jobs.is_empty() {
        let _ = writeln!(
            out,
            "Still stopping (asked less than 10 minutes ago, not asked again yet): {}",
            report.stopping_jobs.join(", ")
        );
    }
    for failure in &report.failures {
        let _ = writeln!(
            out,
            "FAILED {} {}: {} (not recorded: the next run tries again)",
            failure.action, failure.target, failure.error
        );
    }
    out
}

/// The simulation as JSON: money as decimal strings, like the status report.
pub fn simulation_json(report: &SimReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The simulation as a table, then each strategy's actions.
pub fn simulation_human(report: &SimReport, scenario: &Scenario) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {}: budget {} for the period, {} spent before it starts, {} jobs",
        report.scenario,
        usd(report.budget_usd),
        usd(report.prior_spend_usd),
        scenario.jobs.len()
    );
    let mut rows = table(&[
        "strategy",
        "final spend",
        "overshoot",
        "overshoot %",
        "breach → last stop",
        "needless stops",
        "jobs stopped",
    ]);
    for outcome in &report.strategies {
        rows.add_row(vec![
            outcome.name.to_owned(),
            usd_precise(outcome.final_spend_usd),
            usd_precise(outcome.overshoot_usd),
            format!("{:.2} %", outcome.overshoot_percent),
            outcome
                .breach_to_stop_seconds
                .map_or_else(|| "no breach".to_owned(), |s| format!("{s} s")),
            outcome.jobs_stopped.to_string(),
            outcome.jobs_stopped_total.to_string(),
        ]);
    }
    let _ = writeln!(out, "{rows}");
    let _ = writeln!(
        out,
        "needless stops: jobs stopped that, left alone, would have finished before spend reached the budget"
    );
    for outcome in &report.strategies {
        for action in &outcome.actions {
            let _ = writeln!(
                out,
                "{:>10} {} {}",
                outcome.name,
                shared::analysis::report::instant(action.at),
                action.action
            );
        }
    }
    out
}

/// `batchguard reconcile` for people: per queue, then the tasks that do not match.
pub fn reconciliation(result: &shared::analysis::bill::Reconciliation) -> String {
    let mut out = String::new();
    let mut queues = Table::new();
    queues.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "queue",
        "tasks",
        "not matching",
        "batchguard",
        "bill",
        "difference",
    ]);
    let mut row = |name: &str, sums: &shared::analysis::bill::Sums| {
        queues.add_row(vec![
            name.to_owned(),
            sums.tasks.to_string(),
            sums.drifting.to_string(),
            usd_precise(sums.ledger_usd),
            usd_precise(sums.billed_usd),
            usd_precise(sums.difference_usd),
        ]);
    };
    for (queue, sums) in &result.by_queue {
        row(queue, sums);
    }
    row("total", &result.total);
    for column in 1..6 {
        if let Some(c) = queues.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let _ = writeln!(
        out,
        "Reconciliation of {} (UTC): {} bill lines read, {} of ECS tasks; tolerance {} per task",
        shared::analysis::report::instant(result.day_start),
        result.bill_lines_read,
        result.bill_lines_used,
        usd_precise(result.tolerance_usd)
    );
    let _ = writeln!(out, "{queues}");
    let drifting: Vec<_> = result
        .tasks
        .iter()
        .filter(|t| t.outcome != shared::analysis::bill::Match::Matched)
        .collect();
    if !drifting.is_empty() {
        let mut tasks = Table::new();
        tasks.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "task",
            "queue",
            "",
            "batchguard",
            "bill",
            "difference",
        ]);
        for task in drifting.iter().take(50) {
            let money = |v: Option<Decimal>| v.map_or_else(|| "—".to_owned(), usd_precise);
            tasks.add_row(vec![
                task.task_arn
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                task.queue.clone(),
                serde_json::to_value(task.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                money(task.ledger_usd),
                money(task.billed_usd),
                money(task.difference_usd),
            ]);
        }
        let _ = writeln!(out, "{tasks}");
        if drifting.len() > 50 {
            let _ = writeln!(out, "… and {} more (--json lists all)", drifting.len() - 50);
        }
    }
    for price in &result.effective_spot_prices {
        let _ = writeln!(
            out,
            "Spot paid in {} ({}): {} per vCPU-hour, {} per GB-hour",
            price.region,
            price.architecture,
            price
                .vcpu_hour
                .map_or_else(|| "—".to_owned(), |p| p.to_string()),
            price
                .gb_hour
                .map_or_else(|| "—".to_owned(), |p| p.to_string())
        );
    }
    out
}

/// `doctor`'s checklist: one line per check, the fix indented under it.
#[cfg(feature = "aws")]
pub fn doctor_checklist(checks: &[shared::analysis::checklist::Check]) -> String {
    use shared::analysis::checklist::Status;
    let width = checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let mut text = String::new();
    for check in checks {
        let mark = match check.status {
            Status::Ok => "ok  ",
            Status::Info => "info",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        text.push_str(&format!("{mark}  {:width$}  {}\n", check.id, check.detail));
        if let Some(fix) = &check.fix {
            text.push_str(&format!("      {:width$}  fix: {fix}\n", ""));
        }
    }
    text
}

/// Each budget's figures and its action now, as a table.
pub fn budgets_table(lines: &[shared::analysis::budgets::BudgetLine]) -> Table {
    let mut budgets = table(&[
        "budget",
        "counts",
        "amount",
        "period",
        "this period",
        "used",
        "committed",
        "forecast",
        "burn/hour",
        "action now",
    ]);
    for line in lines {
        let name = match &line.parent {
            Some(parent) => format!("{} (in {parent})", line.name),
            None => line.name.clone(),
        };
        let action = match line.action {
            Some(action) if line.dry_run => format!("{action} (dry run)"),
            Some(action) => action.to_string(),
            None => "-".to_owned(),
        };
        budgets.add_row(vec![
            name,
            line.counts.to_owned(),
            usd(line.amount_usd),
            shared::core::budgets::period_name(line.period).to_owned(),
            usd(line.period_spend_usd),
            format!("{}%", line.used_percent.round_dp(1)),
            committed_cell(line),
            usd(line.forecast_usd),
            usd_precise(line.burn_rate_usd_per_hour),
            action,
        ]);
    }
    budgets
}

/// A budget's committed spend, and how many of its running tasks have no timeout (their
/// remaining cost is not in it).
pub fn committed_cell(line: &shared::analysis::budgets::BudgetLine) -> String {
    if line.open_ended_tasks > 0 {
        format!(
            "{} (+{} without a timeout)",
            usd(line.committed_usd),
            line.open_ended_tasks
        )
    } else {
        usd(line.committed_usd)
    }
}

/// `simulate --scenario teams` for people: per guard, each team's spend against its budget and
/// what happened to its jobs.
pub fn teams_human(report: &shared::analysis::teams::TeamsReport) -> String {
    let mut out = format!(
        "Three teams share one job queue, each with a daily budget of {}; the last runs away from 06:00 (seed {}).\n",
        usd(report.team_budget_usd),
        report.seed
    );
    for guard in &report.guards {
        let mut teams = table(&[
            "team",
            "spend",
            "over its budget",
            "jobs",
            "completed",
            "cancelled",
            "terminated",
            "running at 24:00",
        ]);
        for team in &guard.teams {
            teams.add_row(vec![
                team.team.to_owned(),
                usd(team.spend_usd),
                usd(team.overshoot_usd),
                team.jobs.to_string(),
                team.completed.to_string(),
                team.cancelled.to_string(),
                team.terminated.to_string(),
                team.running_at_end.to_string(),
            ]);
        }
        let _ = writeln!(out, "\n{}\n{teams}", guard.guard);
        for (at, budget, action) in &guard.actions {
            let _ = writeln!(
                out,
                "  {} {budget}: {action}",
                shared::analysis::figures::instant(*at)
            );
        }
    }
    out
}
