//! A budget kept in AWS Budgets, read with `DescribeBudget`: its limit and period, and AWS's
//! own actual spend so far with the time AWS last updated it (the baseline). The CLI's
//! `--budget-name` and the ticker (`BUDGET_NAME`) both read it here.

use aws_sdk_budgets::Client;
use aws_sdk_budgets::types::TimeUnit;
use rust_decimal::Decimal;

use crate::core::budget::{AwsBudget, Baseline, BudgetPeriod};
use crate::ports::{BudgetSource, ControlError};

#[derive(Debug, thiserror::Error)]
pub enum BudgetsError {
    #[error("AWS Budgets: budget {name:?} of account {account}: {message}")]
    Api {
        name: String,
        account: String,
        message: String,
    },
    #[error(
        "AWS Budgets: budget {name:?} is {what}; batchguard reads monthly or daily cost budgets in USD"
    )]
    Unsupported { name: String, what: String },
}

pub async fn describe(
    client: &Client,
    account: &str,
    name: &str,
) -> Result<AwsBudget, BudgetsError> {
    let api = |message: String| BudgetsError::Api {
        name: name.to_owned(),
        account: account.to_owned(),
        message,
    };
    let unsupported = |what: String| BudgetsError::Unsupported {
        name: name.to_owned(),
        what,
    };
    let output = client
        .describe_budget()
        .account_id(account)
        .budget_name(name)
        .send()
        .await
        .map_err(|e| api(super::sdk_error::summary(&e)))?;
    let budget = output
        .budget()
        .ok_or_else(|| api("the answer holds no budget".into()))?;
    let period = match budget.time_unit() {
        TimeUnit::Monthly => BudgetPeriod::Month,
        TimeUnit::Daily => BudgetPeriod::Day,
        other => return Err(unsupported(other.as_str().to_lowercase())),
    };
    let amount = |spend: Option<&aws_sdk_budgets::types::Spend>, what: &str| {
        let spend = spend.ok_or_else(|| api(format!("no {what}")))?;
        if spend.unit() != "USD" {
            return Err(unsupported(format!("in {}", spend.unit())));
        }
        spend.amount().parse::<Decimal>().map_err(|_| {
            api(format!(
                "{what} {:?} is not a decimal number",
                spend.amount()
            ))
        })
    };
    let limit_usd = amount(budget.budget_limit(), "BudgetLimit")?;
    let spend_usd = amount(
        budget.calculated_spend().and_then(|c| c.actual_spend()),
        "CalculatedSpend.ActualSpend",
    )?;
    let as_of = budget
        .last_updated_time()
        .map(|t| t.secs())
        .ok_or_else(|| api("no LastUpdatedTime".into()))?;
    Ok(AwsBudget {
        limit_usd,
        period,
        baseline: Baseline { spend_usd, as_of },
    })
}

/// One named budget of one account, as a [`BudgetSource`].
#[derive(Clone, Debug)]
pub struct AwsBudgets {
    client: Client,
    account: String,
    name: String,
}

impl AwsBudgets {
    pub fn new(client: Client, account: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            client,
            account: account.into(),
            name: name.into(),
        }
    }
}

impl BudgetSource for AwsBudgets {
    async fn describe(&self) -> Result<AwsBudget, ControlError> {
        describe(&self.client, &self.account, &self.name)
            .await
            .map_err(|e| ControlError::Api {
                operation: "budgets:DescribeBudget",
                message: e.to_string(),
                source: Some(Box::new(e)),
            })
    }
}
