//! `batchguard enforce`: run the budget policy on a store's spend and carry it out on AWS
//! Batch — notify, freeze (disable the queues, cancel queued jobs) or stop (terminate running
//! jobs) — or restore what batchguard disabled. The audit trail is written to the store.

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
    #[arg(long, required_unless_present = "restore", value_parser = super::parse_budget)]
    pub budget: Option<Decimal>,
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
    /// Re-enable the queues batchguard disabled instead.
    #[arg(long)]
    pub restore: bool,
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
    if !args.restore && !args.queues.is_empty() {
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
    let (report, decision) = if args.restore {
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
