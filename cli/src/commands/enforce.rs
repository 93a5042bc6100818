//! `batchguard enforce`: run the budget policy on a store's spend and carry it out on AWS
//! Batch — notify, freeze (disable the queues, cancel queued jobs) or stop (terminate running
//! jobs) — or restore what batchguard disabled; or, with `--budgets FILE` or
//! `--applied-budgets`, judge each budget of a budgets file on the store's events and carry
//! out what its thresholds call for on its own jobs, and safe admission for the budgets that
//! ask for it, as the stack's enforcer does. The audit trail is written to the store.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Args as ClapArgs;
use rust_decimal::Decimal;
use shared::core::budget::BudgetPeriod;
use shared::core::policy::BudgetPolicy;

use super::parse_period;
use crate::error::CliError;
use crate::store::{StoreSpec, parse_store};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A SQLite file, or `dynamodb:<table-prefix>` or `dynamodb:<events table>,<state table>` (where the audit trail is written too).
    #[arg(long, value_parser = parse_store)]
    pub store: StoreSpec,
    /// Budget in USD for the period (0 to a trillion).
    #[arg(
        long,
        required_unless_present_any = ["restore", "restore_budget", "budgets", "applied_budgets"],
        value_parser = super::parse_budget
    )]
    pub budget: Option<Decimal>,
    /// Act per budget of this budgets file instead: each budget at a threshold on the store's
    /// events is notified, drained, cancelled, shed or terminated on its own jobs, and each
    /// budget with `admission = "safe"` has its waiting jobs that do not fit cancelled.
    #[arg(long, conflicts_with_all = ["budget", "restore", "restore_budget", "applied_budgets"])]
    pub budgets: Option<PathBuf>,
    /// As --budgets, with the budgets applied to the store (`budgets apply`).
    #[arg(long, conflicts_with_all = ["budget", "restore", "restore_budget"])]
    pub applied_budgets: bool,
    /// Budget period, calendar in UTC: month, week or day.
    #[arg(long, default_value = "month", value_parser = parse_period)]
    pub period: BudgetPeriod,
    /// Job queues in scope (comma-separated names); default: every queue.
    #[arg(long, value_delimiter = ',')]
    pub queues: Vec<String>,
    /// Percent of the budget at which to notify (SNS, or stderr without --topic-arn).
    #[arg(long, default_value = "80", value_parser = super::parse_percent)]
    pub notify_percent: Decimal,
    /// Percent at which to freeze: disable the queues, cancel jobs not yet started.
    #[arg(long, default_value = "90", value_parser = super::parse_percent)]
    pub freeze_percent: Decimal,
    /// Percent at which to stop: also terminate running jobs (the forecast can stop earlier).
    #[arg(long, default_value = "100", value_parser = super::parse_percent)]
    pub stop_percent: Decimal,
    /// Record and report, change nothing on AWS Batch (the notice is still sent, marked dry
    /// run).
    #[arg(long)]
    pub dry_run: bool,
    /// Re-enable the queues the stack's own budget disabled instead (a queue an applied
    /// budget's drain still holds stays disabled).
    #[arg(long, conflicts_with = "restore_budget")]
    pub restore: bool,
    /// Re-enable the queues this applied budget's drain disabled instead: exactly those, and
    /// only where no other holder (the stack's budget, another budget) still holds them.
    #[arg(long, value_name = "BUDGET", conflicts_with = "budget")]
    pub restore_budget: Option<String>,
    /// SNS topic for notifications (default: printed to stderr).
    #[arg(long)]
    pub topic_arn: Option<String>,
    /// Evaluate at this instant (RFC 3339). Default: now.
    #[arg(long)]
    pub at: Option<DateTime<Utc>>,
    /// A price file laid over the built-in prices.
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Print the decision and what was done as one JSON document.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    fn policy(&self) -> BudgetPolicy {
        BudgetPolicy {
            notify_percent: self.notify_percent,
            freeze_percent: self.freeze_percent,
            stop_percent: self.stop_percent,
            ..BudgetPolicy::default()
        }
    }
}

#[cfg(not(feature = "aws"))]
pub async fn run(args: Args) -> Result<(), CliError> {
    let _ = args.policy();
    Err(CliError::NeedsAws {
        what: "enforce".into(),
    })
}

#[cfg(feature = "aws")]
pub async fn run(args: Args) -> Result<(), CliError> {
    use shared::adapters::batch::AwsBatch;
    use shared::adapters::sns::Notifications;
    use shared::app::enforcer::{Enforcer, EnforcerSettings};
    use shared::core::budget::{Budget, BudgetStatus};
    use shared::core::enforcement::budget_scopes;
    use shared::core::facts::Millis;
    use shared::core::ledger::Ledger;
    use shared::core::policy::decide;
    use shared::ports::BatchControl;

    use crate::render::text;
    use crate::store::Store;

    let policy = args.policy();
    let log = Store::open(&args.store, None).await?;
    policy
        .validate()
        .map_err(|e| CliError::Policy(e.to_string()))?;
    let aws = crate::adapters::sdk_config(None).await;
    let batch = AwsBatch::from_config(&aws);
    let restoring = args.restore || args.restore_budget.is_some();
    if !restoring && !args.queues.is_empty() {
        // A mistyped queue must not leave the user unprotected without a word.
        let known = batch.queues(&args.queues).await?;
        let unknown: Vec<String> = args
            .queues
            .iter()
            .filter(|name| !known.iter().any(|queue| &queue.name == *name))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(CliError::UnknownQueues(unknown));
        }
    }
    let notifier = Notifications::for_topic(&aws, args.topic_arn.as_deref());
    let enforcer = Enforcer::new(
        batch,
        &log,
        notifier,
        EnforcerSettings {
            queues: args.queues.clone(),
            dry_run: args.dry_run,
            period: args.period,
        },
    );
    let now_ms = args
        .at
        .map_or_else(|| Utc::now().timestamp_millis(), |at| at.timestamp_millis());
    let at = Millis(now_ms).floor_seconds();
    if args.budgets.is_some() || args.applied_budgets {
        let region = aws.region().map(ToString::to_string);
        return per_budget(&args, &log, enforcer, region.as_deref(), now_ms).await;
    }
    let (report, decision) = if let Some(budget) = &args.restore_budget {
        (
            enforcer
                .restore_holder(
                    &Some(budget.clone()),
                    "restore requested from the command line",
                    now_ms,
                )
                .await?,
            None,
        )
    } else if args.restore {
        (
            enforcer
                .restore("restore requested from the command line", now_ms)
                .await?,
            None,
        )
    } else {
        let budget = Budget {
            amount_usd: args.budget.unwrap_or_default(),
            period: args.period,
        };
        let mut ledger = Ledger::new(super::load_prices(args.prices.as_deref())?, args.period);
        log.fold_into(&mut ledger).await?;
        if args.at.is_some() {
            super::evaluation::warn_if_far_past_the_events(at, &ledger);
        }
        let (mut spend, mut burn) = (Decimal::ZERO, Decimal::ZERO);
        for scope in &budget_scopes(&args.queues) {
            let figures = ledger.scope_spend(scope, at);
            spend += figures.period_spend_usd;
            burn += figures.burn_rate_usd_per_hour;
        }
        let status = BudgetStatus::evaluate(budget, at, spend, burn);
        let decision = decide(&status, &policy, at);
        (
            enforcer
                .enforce(decision.level, &decision.reason, now_ms)
                .await?,
            Some(decision),
        )
    };
    if args.json {
        let document = serde_json::json!({ "decision": decision, "report": report });
        println!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        );
    } else {
        print!("{}", text::enforcement(&report));
    }
    if report.failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::ActionsFailed(report.failures.len()))
    }
}

/// `--budgets FILE` / `--applied-budgets`: each budget judged on the store's events (every
/// period its budgets use), an order for each at a threshold, carried out by the enforcer with
/// its figures, so a shedding budget stops the fewest jobs (burn rates from the same fold).
#[cfg(feature = "aws")]
async fn per_budget<B, N>(
    args: &Args,
    log: &crate::store::Store,
    enforcer: shared::app::enforcer::Enforcer<B, &crate::store::Store, N>,
    region: Option<&str>,
    now_ms: i64,
) -> Result<(), CliError>
where
    B: shared::ports::BatchControl + Sync,
    N: shared::ports::Notifier + Sync,
{
    use shared::adapters::memory::MemoryProjector;
    use shared::analysis::budgets::budget_lines;
    use shared::core::budgets::BudgetFigures;
    use shared::core::enforcement::BudgetOrder;
    use shared::core::facts::Millis;
    use shared::ports::BudgetStore;

    use crate::render::text;

    let book = match &args.budgets {
        Some(path) => super::evaluation::load_budgets(Some(path))?.unwrap_or_default(),
        None => {
            let (_, book) = log.budgets().await?;
            let Some(book) = book else {
                return Err(CliError::Usage(format!(
                    "no budgets are applied to {}: `batchguard budgets apply FILE --store {}`",
                    args.store, args.store
                )));
            };
            std::sync::Arc::new(book)
        }
    };
    let at = Millis(now_ms).floor_seconds();
    let prices = super::load_prices(args.prices.as_deref())?;
    let mut ledger =
        super::evaluation::ledger_with_budgets(prices.clone(), args.period, Some(&book));
    log.fold_into(&mut ledger).await?;
    if args.at.is_some() {
        super::evaluation::warn_if_far_past_the_events(at, &ledger);
    }
    let lines = budget_lines(&book, &[&ledger], at);
    let mut orders = Vec::new();
    let mut figures = std::collections::BTreeMap::new();
    for line in &lines {
        let Some(action) = line.action else { continue };
        orders.push(BudgetOrder::judged(
            &line.name,
            line.period_spend_usd,
            line.amount_usd,
            line.used_percent,
            action,
            line.dry_run,
        ));
        figures.insert(
            line.name.clone(),
            BudgetFigures::at(
                line.period,
                at,
                line.period_spend_usd,
                line.burn_rate_usd_per_hour,
            ),
        );
    }
    let enforcer = match region {
        Some(region) => enforcer.with_pricing(prices, region),
        None => enforcer,
    };
    let enforcer = enforcer.with_projections(MemoryProjector::from_ledger(ledger.clone()));
    let report = enforcer
        .enforce_budgets_with_figures(&book, &orders, &figures, now_ms)
        .await?;
    // Safe admission, as the stack's enforcer runs it each tick: what each budget with
    // `admission = "safe"` has left after its committed spend, on the same fold.
    let left: std::collections::BTreeMap<String, rust_decimal::Decimal> = lines
        .iter()
        .filter(|line| line.admission == shared::core::budgets::Admission::Safe)
        .map(|line| (line.name.clone(), line.uncommitted_usd))
        .collect();
    let admission = if left.is_empty() {
        None
    } else {
        Some(enforcer.admit(&book, &left, now_ms).await?)
    };
    let failures = report.failures.len() + admission.as_ref().map_or(0, |a| a.failures.len());
    if args.json {
        let document =
            serde_json::json!({ "orders": orders, "report": report, "admission": admission });
        println!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        );
    } else {
        if orders.is_empty() {
            println!("no budget is at a threshold");
        }
        for order in &orders {
            println!("{}", order.reason);
        }
        print!("{}", text::enforcement(&report));
        if let Some(admission) = &admission {
            println!("{}", admission.reason);
            print!("{}", text::enforcement(admission));
            for job in &admission.unbounded_jobs {
                println!("admitted without a worst case: {job}");
            }
        }
    }
    if failures == 0 {
        Ok(())
    } else {
        Err(CliError::ActionsFailed(failures))
    }
}
