//! A baseline from Cost Explorer (`GetCostAndUsage`): the unblended cost of the budget period's
//! whole UTC days up to a cut `lag` hours before the evaluation instant, filtered to the
//! services (and optionally the cost allocation tags) of the Batch workload. Cost Explorer's
//! figures for the last hours are incomplete; the cut leaves them to the ledger, which counts
//! from the cut on.

use aws_sdk_costexplorer::Client;
use aws_sdk_costexplorer::types::{
    DateInterval, Dimension, DimensionValues, Expression, Granularity, TagValues,
};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use shared::core::budget::{Baseline, BudgetPeriod};

/// The services Batch spend is billed under by default: Fargate tasks and EC2 instances.
pub const DEFAULT_SERVICES: [&str; 2] = [
    "Amazon Elastic Container Service",
    "Amazon Elastic Compute Cloud - Compute",
];

#[derive(Debug, thiserror::Error)]
pub enum CostExplorerError {
    #[error("Cost Explorer GetCostAndUsage: {0}")]
    Api(String),
    #[error("Cost Explorer: {0}")]
    Answer(String),
}

/// What to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub services: Vec<String>,
    /// (key, value) pairs; values of one key are alternatives, keys all apply.
    pub tags: Vec<(String, String)>,
    pub lag_hours: u32,
}

/// The whole days `[start, end)` to ask for: from the period's start to the day containing
/// `at − lag`, or `None` when that cut falls at or before the period's start (the baseline is
/// then zero at the period's start).
pub fn window(period: BudgetPeriod, at: i64, lag_hours: u32) -> Option<(NaiveDate, NaiveDate)> {
    let (period_start, _) = period.bounds(at);
    let cut = at - i64::from(lag_hours) * 3600;
    let cut_day = DateTime::<Utc>::from_timestamp(cut, 0)?.date_naive();
    let start_day = DateTime::<Utc>::from_timestamp(period_start, 0)?.date_naive();
    (cut_day > start_day).then_some((start_day, cut_day))
}

fn midnight(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp())
}

fn filter(query: &Query) -> Expression {
    let mut parts = vec![
        Expression::builder()
            .dimensions(
                DimensionValues::builder()
                    .key(Dimension::Service)
                    .set_values(Some(query.services.clone()))
                    .build(),
            )
            .build(),
    ];
    // One expression per key, its values alternatives, whatever order they were given in.
    let mut by_key: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (key, value) in &query.tags {
        by_key.entry(key).or_default().push(value.clone());
    }
    for (key, values) in by_key {
        parts.push(
            Expression::builder()
                .tags(
                    TagValues::builder()
                        .key(key)
                        .set_values(Some(values))
                        .build(),
                )
                .build(),
        );
    }
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        Expression::builder().set_and(Some(parts)).build()
    }
}

/// The baseline at `at`: Cost Explorer's unblended cost of the window's days, as of the
/// window's end (midnight UTC).
pub async fn baseline(
    client: &Client,
    period: BudgetPeriod,
    at: i64,
    query: &Query,
) -> Result<Baseline, CostExplorerError> {
    let Some((start, end)) = window(period, at, query.lag_hours) else {
        return Ok(Baseline {
            spend_usd: Decimal::ZERO,
            as_of: period.bounds(at).0,
        });
    };
    let mut spend = Decimal::ZERO;
    let mut token: Option<String> = None;
    loop {
        let answer = client
            .get_cost_and_usage()
            .time_period(
                DateInterval::builder()
                    .start(start.format("%Y-%m-%d").to_string())
                    .end(end.format("%Y-%m-%d").to_string())
                    .build()
                    .map_err(|e| CostExplorerError::Answer(e.to_string()))?,
            )
            .granularity(Granularity::Daily)
            .metrics("UnblendedCost")
            .filter(filter(query))
            .set_next_page_token(token.take())
            .send()
            .await
            .map_err(|e| CostExplorerError::Api(shared::adapters::sdk_error::summary(&e)))?;
        for result in answer.results_by_time() {
            let Some(cost) = result.total().and_then(|t| t.get("UnblendedCost")) else {
                continue; // a day with nothing
            };
            if cost.unit() != Some("USD") {
                return Err(CostExplorerError::Answer(format!(
                    "UnblendedCost in {:?}, not USD",
                    cost.unit()
                )));
            }
            let amount = cost.amount().unwrap_or("0");
            spend += amount
                .parse::<Decimal>()
                .or_else(|_| Decimal::from_scientific(amount))
                .map_err(|_| {
                    CostExplorerError::Answer(format!("UnblendedCost {amount:?} is not a number"))
                })?;
        }
        match answer.next_page_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }
    Ok(Baseline {
        spend_usd: spend,
        as_of: midnight(end),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp()
    }

    #[test]
    fn the_window_is_the_periods_whole_days_before_the_lag() {
        let day = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
        // 24 h before 2026-11-24T15:00Z is the 23rd: the 1st to the 22nd are Cost Explorer's,
        // the ledger counts from the 23rd 00:00.
        assert_eq!(
            window(BudgetPeriod::Month, at("2026-11-24T15:00:00Z"), 24),
            Some((day("2026-11-01"), day("2026-11-23")))
        );
        // Early in the period there is nothing whole to ask for.
        assert_eq!(
            window(BudgetPeriod::Month, at("2026-11-01T20:00:00Z"), 24),
            None
        );
        assert_eq!(
            window(BudgetPeriod::Day, at("2026-11-24T15:00:00Z"), 0),
            None
        );
    }

    /// What is asked (the emulator does not look at the request): the window's days, daily
    /// unblended cost, the services and the tag together; every page is read.
    #[tokio::test]
    async fn the_request_names_the_window_the_services_and_the_tags() {
        use aws_sdk_costexplorer::operation::get_cost_and_usage::GetCostAndUsageOutput;
        use aws_sdk_costexplorer::types::{MetricValue, ResultByTime};
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let day = |amount: &str| {
            ResultByTime::builder()
                .total(
                    "UnblendedCost",
                    MetricValue::builder().amount(amount).unit("USD").build(),
                )
                .build()
        };
        let asks_right = |request: &aws_sdk_costexplorer::operation::get_cost_and_usage::GetCostAndUsageInput| {
            let period = request.time_period().unwrap();
            let filter = request.filter().unwrap();
            let parts = filter.and();
            period.start() == "2026-11-01"
                && period.end() == "2026-11-23"
                && request.granularity() == Some(&Granularity::Daily)
                && request.metrics() == ["UnblendedCost"]
                && parts.len() == 2
                && parts[0].dimensions().is_some_and(|d| {
                    d.key() == Some(&Dimension::Service) && d.values() == DEFAULT_SERVICES
                })
                && parts[1].tags().is_some_and(|t| {
                    t.key() == Some("team") && t.values() == ["genomics", "render"]
                })
        };
        let first = mock!(Client::get_cost_and_usage)
            .match_requests(move |r| asks_right(r) && r.next_page_token().is_none())
            .then_output(move || {
                GetCostAndUsageOutput::builder()
                    .results_by_time(day("1.5"))
                    .next_page_token("page-2")
                    .build()
            });
        let second = mock!(Client::get_cost_and_usage)
            .match_requests(move |r| asks_right(r) && r.next_page_token() == Some("page-2"))
            .then_output(move || {
                GetCostAndUsageOutput::builder()
                    .results_by_time(day("2.25"))
                    .build()
            });
        let client = mock_client!(aws_sdk_costexplorer, RuleMode::MatchAny, [&first, &second]);
        let query = Query {
            services: DEFAULT_SERVICES.iter().map(|s| (*s).to_owned()).collect(),
            tags: vec![
                ("team".into(), "genomics".into()),
                ("team".into(), "render".into()),
            ],
            lag_hours: 24,
        };
        let found = baseline(
            &client,
            BudgetPeriod::Month,
            at("2026-11-24T15:00:00Z"),
            &query,
        )
        .await
        .unwrap();
        assert_eq!(found.spend_usd, Decimal::new(375, 2));
        assert_eq!(first.num_calls() + second.num_calls(), 2);
    }

    /// Against the emulator's Cost Explorer, whose answers are set through its own API.
    #[tokio::test]
    async fn the_baseline_sums_the_windows_days() {
        batchguard_tests::set_emulator_cost_and_usage();
        let config = batchguard_tests::emulator_config().await;
        let client = Client::new(&config);
        let query = Query {
            services: DEFAULT_SERVICES.iter().map(|s| (*s).to_owned()).collect(),
            tags: vec![("team".into(), "genomics".into())],
            lag_hours: 24,
        };
        let found = baseline(
            &client,
            BudgetPeriod::Month,
            at("2026-11-05T06:00:00Z"),
            &query,
        )
        .await
        .unwrap();
        assert_eq!(found.spend_usd, Decimal::new(1975, 2));
        assert_eq!(found.as_of, at("2026-11-04T00:00:00Z"));
        // Nothing whole to ask for: zero at the period's start, and no call.
        let early = baseline(
            &client,
            BudgetPeriod::Month,
            at("2026-11-01T10:00:00Z"),
            &query,
        )
        .await
        .unwrap();
        assert_eq!(early.spend_usd, Decimal::ZERO);
        assert_eq!(early.as_of, at("2026-11-01T00:00:00Z"));
    }
}
