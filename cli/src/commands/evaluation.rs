//! The options `replay`, `status` and `report` share: when to evaluate, the budget (given, or
//! from AWS Budgets or Cost Explorer with AWS's spend as a baseline), the period, the prices.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Args;
use rust_decimal::Decimal;
use shared::core::budget::{Baseline, BudgetPeriod};
use shared::core::facts::Millis;
use shared::core::ledger::Ledger;

use super::parse_period;
use crate::error::CliError;

#[derive(Debug, Args)]
pub struct Evaluation {
    /// Evaluate at this instant (RFC 3339; rounded down to the second). Default: the latest
    /// instant any event mentions.
    #[arg(long)]
    pub at: Option<DateTime<Utc>>,
    /// Budget in USD for the period, e.g. 1000 or 1250.50 (0 to a trillion).
    #[arg(long, value_parser = super::parse_budget)]
    pub budget: Option<Decimal>,
    /// Take the budget from AWS Budgets instead: its limit and period (monthly or daily),
    /// and AWS's actual spend so far as the baseline — the budget's spend is then that plus
    /// what batchguard saw accrue after AWS last updated it.
    #[arg(long, conflicts_with = "budget", requires = "account_id")]
    pub budget_name: Option<String>,
    /// The AWS account the budget belongs to (with `--budget-name`).
    #[arg(long, env = "AWS_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// Take the baseline from Cost Explorer (`GetCostAndUsage`) instead: the unblended cost of
    /// the period's whole UTC days up to `--ce-lag-hours` before `--at` (default: now), of
    /// `--ce-service` and `--ce-tag`; the budget's spend is that plus what batchguard saw
    /// after it. The limit is `--budget`.
    #[arg(long, conflicts_with = "budget_name", requires = "budget")]
    pub cost_explorer: bool,
    /// Cost Explorer's last hours are incomplete: they are left to batchguard.
    #[arg(long, default_value_t = 24)]
    pub ce_lag_hours: u32,
    /// A Cost Explorer service to count (repeat for more). Default: Amazon Elastic Container
    /// Service and Amazon Elastic Compute Cloud - Compute.
    #[arg(long = "ce-service")]
    pub ce_services: Vec<String>,
    /// Count only costs with this cost allocation tag, KEY=VALUE (repeat; values of one key
    /// are alternatives).
    #[arg(long = "ce-tag", value_parser = parse_tag)]
    pub ce_tags: Vec<(String, String)>,
    #[arg(skip)]
    pub baseline: Option<Baseline>,
    /// Budget period, calendar in UTC: month, week (from Monday) or day.
    #[arg(long, default_value = "month", value_parser = parse_period)]
    pub period: BudgetPeriod,
    /// A price file laid over the built-in prices (format: README, "Prices").
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// A budgets file (README, "Budgets"): each budget's spend, share used, forecast and the
    /// action its thresholds call for now, in a budgets table.
    #[arg(long)]
    pub budgets: Option<PathBuf>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// How long after the latest event `--at` may be before it is worth a warning.
const FAR_PAST_THE_EVENTS_SECONDS: i64 = 7 * 86_400;

/// Warns (stderr) when `--at` is long after the latest event: every task still running is
/// billed up to it, which is rarely what was meant.
pub fn warn_if_far_past_the_events(at: i64, ledger: &Ledger) {
    if let Some(latest) = ledger.latest_instant().map(Millis::ceil_seconds)
        && at - latest > FAR_PAST_THE_EVENTS_SECONDS
    {
        eprintln!(
            "warning: --at is {} days after the latest event; tasks still running are billed up to it",
            (at - latest) / 86_400
        );
    }
}

/// Reads `--ce-tag KEY=VALUE`.
pub fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("--ce-tag {text:?}: KEY=VALUE expected")),
    }
}

impl Evaluation {
    /// The evaluation instant: `--at` rounded down to the second, or the latest instant seen
    /// rounded up (so everything seen has happened by then).
    pub fn instant(&self, ledger: &Ledger) -> i64 {
        match self.at {
            Some(at) => {
                let at = Millis::from_datetime(at).floor_seconds();
                warn_if_far_past_the_events(at, ledger);
                at
            }
            None => ledger.latest_instant().map_or(0, Millis::ceil_seconds),
        }
    }

    /// With `--budget-name`: the budget, its period and AWS's baseline, from AWS Budgets; with
    /// `--cost-explorer`, the baseline from Cost Explorer.
    pub async fn with_aws_budget(self) -> Result<Self, CliError> {
        if !self.cost_explorer && self.budget_name.is_none() {
            return Ok(self);
        }
        #[cfg(feature = "aws")]
        return self.resolve_with_aws().await;
        #[cfg(not(feature = "aws"))]
        Err(CliError::NeedsAws {
            what: "--budget-name and --cost-explorer".into(),
        })
    }

    #[cfg(feature = "aws")]
    async fn resolve_with_aws(mut self) -> Result<Self, CliError> {
        use crate::adapters::cost_explorer;
        let config = crate::adapters::sdk_config(None).await;
        if self.cost_explorer {
            let at = self
                .at
                .map_or_else(|| Utc::now().timestamp(), |t| t.timestamp());
            let query = cost_explorer::Query {
                services: if self.ce_services.is_empty() {
                    cost_explorer::DEFAULT_SERVICES
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect()
                } else {
                    self.ce_services.clone()
                },
                tags: self.ce_tags.clone(),
                lag_hours: self.ce_lag_hours,
            };
            let client = aws_sdk_costexplorer::Client::new(&config);
            self.baseline = Some(cost_explorer::baseline(&client, self.period, at, &query).await?);
            return Ok(self);
        }
        let (Some(name), Some(account)) = (&self.budget_name, &self.account_id) else {
            return Ok(self);
        };
        let aws = shared::adapters::budgets::describe(
            &aws_sdk_budgets::Client::new(&config),
            account,
            name,
        )
        .await?;
        self.budget = Some(aws.limit_usd);
        self.period = aws.period;
        self.baseline = Some(aws.baseline);
        Ok(self)
    }
}

/// Reads and validates `--budgets`: every error in the file, each naming its budget and field.
pub fn load_budgets(
    path: Option<&std::path::Path>,
) -> Result<Option<std::sync::Arc<shared::core::budgets::BudgetBook>>, CliError> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::Usage(format!("budgets file {}: {error}", path.display())))?;
    shared::core::budgets::BudgetBook::parse(&text)
        .map(|book| Some(std::sync::Arc::new(book)))
        .map_err(|error| CliError::Usage(format!("budgets file {}:\n{error}", path.display())))
}

/// The ledger of `period`, summing a budgets file's budgets (`Ledger::with_budgets`), each by
/// its own period.
pub fn ledger_with_budgets(
    prices: shared::core::prices::PriceTable,
    period: BudgetPeriod,
    budgets: Option<&std::sync::Arc<shared::core::budgets::BudgetBook>>,
) -> Ledger {
    let ledger = Ledger::new(prices, period);
    match budgets {
        Some(book) => ledger.with_budgets(book.clone()),
        None => ledger,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn tags_are_key_value() {
        assert_eq!(
            parse_tag("team=genomics").unwrap(),
            ("team".to_owned(), "genomics".to_owned())
        );
        assert!(parse_tag("genomics").is_err());
        assert!(parse_tag("=x").is_err());
    }
}
