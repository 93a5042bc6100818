//! The ticker with a budget kept in AWS Budgets: the limit comes from AWS, the budget's spend
//! is AWS's actual spend plus what the ledger saw accrue after AWS last updated it, cut at the
//! spend mark of the last tick before AWS's instant. The projections and marks are on the
//! emulator's DynamoDB; AWS Budgets is the emulator's too in the last test.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::VecDeque;
use std::sync::Mutex;

use batchguard_tests::{T0, at, at_seconds, emulator_event_log, fact, task};
use rust_decimal::Decimal;
use serde_json::Value;
use shared::adapters::dynamodb::DynamoEventLog;
use shared::adapters::dynamodb::DynamoProjector;
use shared::adapters::emf::EmfMemory;
use shared::adapters::memory::RecordingTrigger;
use shared::app::ticker::{self, AwsBaseline, TickReport, TickerSettings};
use shared::core::budget::{AwsBudget, Baseline, BudgetPeriod, Cut};
use shared::core::facts::FactBody;
use shared::core::ledger::Ledger;
use shared::core::policy::BudgetPolicy;
use shared::core::prices::PriceTable;
use shared::core::scope::Scope;
use shared::ports::{BudgetSource, ControlError, EventLog, Record};

/// AWS Budgets' answers, one per call, in order; counts the calls.
#[derive(Default)]
struct ScriptedBudgets {
    answers: Mutex<VecDeque<Result<AwsBudget, String>>>,
    calls: Mutex<u32>,
}

impl BudgetSource for ScriptedBudgets {
    async fn describe(&self) -> Result<AwsBudget, ControlError> {
        *self.calls.lock().unwrap() += 1;
        let answer = self.answers.lock().unwrap().pop_front();
        answer
            .unwrap_or_else(|| Err("no answer scripted".into()))
            .map_err(|message| ControlError::Api {
                operation: "budgets:DescribeBudget",
                message,
                source: None,
            })
    }
}

fn aws_budget(limit: i64, spend: Decimal, as_of: i64) -> AwsBudget {
    AwsBudget {
        limit_usd: Decimal::from(limit),
        period: BudgetPeriod::Month,
        baseline: Baseline {
            spend_usd: spend,
            as_of,
        },
    }
}

fn settings(period: BudgetPeriod) -> TickerSettings {
    TickerSettings {
        // Stands in until AWS answers.
        budget: Some(shared::core::budget::Budget {
            amount_usd: Decimal::from(1000),
            period,
        }),
        policy: BudgetPolicy::default(),
        period,
        scope_queues: vec![],
        max_scopes_read: shared::app::ticker::MAX_SCOPES_READ,
        budgets: Default::default(),
    }
}

const ARN: &str =
    "arn:aws:ecs:us-east-1:1:task/AWSBatch-fargate-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/base";

/// One task running from T0, in the emulator's tables and in an in-memory ledger.
async fn running_task(test: &str) -> (DynamoEventLog, DynamoProjector, Ledger) {
    let log = emulator_event_log(test).await;
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), BudgetPeriod::Month);
    let mut observed = task(ARN, 2);
    observed.pull_started_at = Some(at(0));
    let started = fact("start", FactBody::Task(observed));
    log.append(&[Record::new(started.clone())]).await.unwrap();
    projector.project(&started).await.unwrap();
    let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    ledger.apply(&started);
    (log, projector, ledger)
}

async fn tick(
    projector: &DynamoProjector,
    log: &DynamoEventLog,
    sink: &EmfMemory,
    aws: &AwsBaseline<&ScriptedBudgets, &DynamoEventLog>,
    settings: &TickerSettings,
    at: i64,
) -> TickReport {
    let trigger = RecordingTrigger::default();
    ticker::tick_with_aws_budget(
        projector,
        log,
        &trigger,
        sink,
        settings,
        Some(aws),
        at * 1000,
    )
    .await
    .unwrap()
}

/// The budget document of the last tick.
fn budget_document(sink: &EmfMemory) -> Value {
    sink.objects
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|o| o["ScopeKind"] == "budget")
        .cloned()
        .unwrap()
}

fn number(value: &Value) -> Decimal {
    value.to_string().parse().unwrap()
}

#[tokio::test]
async fn the_budget_is_aws_spend_plus_the_ledgers_spend_after_it() {
    let (log, projector, ledger) = running_task("baseline-fuse").await;
    let source = ScriptedBudgets::default();
    let hour = 3_600;
    {
        let mut answers = source.answers.lock().unwrap();
        answers.push_back(Err("throttled".into()));
        // AWS updated the budget at T0 + 1 h: $50 so far, limit $60.
        answers.push_back(Ok(aws_budget(60, Decimal::from(50), at_seconds(hour))));
        // And again at T0 + 2 h: $80.
        answers.push_back(Ok(aws_budget(60, Decimal::from(80), at_seconds(2 * hour))));
    }
    let aws = AwsBaseline {
        source: &source,
        store: &log,
        refresh_seconds: hour,
    };
    let sink = EmfMemory::default();
    let month = settings(BudgetPeriod::Month);
    let after = |from: i64, to: i64| ledger.spend_between(&Scope::Total, from, to);

    // A minute before AWS's update: AWS does not answer, nothing has been read yet, so the
    // configured budget stands in and the spend is the ledger's own.
    let first = tick(&projector, &log, &sink, &aws, &month, at_seconds(hour - 60)).await;
    assert!(first.baseline.is_none());
    assert!(
        first
            .baseline_error
            .as_deref()
            .unwrap()
            .contains("throttled")
    );
    assert_eq!(
        first.budget_spend_usd,
        after(T0 / 1000, at_seconds(hour - 60))
    );
    assert_eq!(
        number(&budget_document(&sink)["BudgetLimitUSD"]),
        Decimal::from(1000)
    );

    // Half an hour after it: AWS answers; the ledger counts from AWS's instant, cut at the
    // mark a minute before it (the task ran through, so the extension is exact).
    let now = at_seconds(hour + 1_800);
    let second = tick(&projector, &log, &sink, &aws, &month, now).await;
    let fused = second.baseline.unwrap();
    assert_eq!(
        fused.cut,
        Cut::Mark {
            at: at_seconds(hour - 60)
        }
    );
    assert_eq!(fused.ledger_after_usd, after(at_seconds(hour), now));
    assert!(fused.ledger_after_usd > Decimal::ZERO);
    assert_eq!(
        second.budget_spend_usd,
        Decimal::from(50) + after(at_seconds(hour), now)
    );
    assert_eq!(
        second.budget_used_percent.unwrap(),
        second.budget_spend_usd * Decimal::from(100) / Decimal::from(60)
    );
    let document = budget_document(&sink);
    assert_eq!(number(&document["BudgetLimitUSD"]), Decimal::from(60));
    assert_eq!(number(&document["BaselineSpendUSD"]), Decimal::from(50));
    assert_eq!(
        number(&document["BaselineAgeSeconds"]),
        Decimal::from(1_800)
    );
    assert_eq!(
        number(&document["PeriodSpendUSD"]),
        number(&document["BaselineSpendUSD"]) + number(&document["LedgerAfterBaselineUSD"])
    );
    assert_eq!(*source.calls.lock().unwrap(), 2);

    // Within the refresh interval AWS is not asked again.
    tick(&projector, &log, &sink, &aws, &month, now + 60).await;
    assert_eq!(*source.calls.lock().unwrap(), 2);

    // An hour later it is, and AWS has moved on to T0 + 2 h: the cut is the tick at
    // T0 + 1.5 h + 1 min, extended to T0 + 2 h.
    let later = at_seconds(hour + 1_800 + hour);
    let third = tick(&projector, &log, &sink, &aws, &month, later).await;
    assert_eq!(*source.calls.lock().unwrap(), 3);
    let fused = third.baseline.unwrap();
    assert_eq!(fused.cut, Cut::Mark { at: now + 60 });
    assert_eq!(fused.baseline_usd, Decimal::from(80));
    assert_eq!(fused.ledger_after_usd, after(at_seconds(2 * hour), later));
    // Spend over the limit: the policy stops.
    assert!(third.triggered.is_some());
}

#[tokio::test]
async fn a_budget_of_another_period_is_refused_by_name() {
    let (log, projector, _) = running_task("baseline-period").await;
    let source = ScriptedBudgets::default();
    source
        .answers
        .lock()
        .unwrap()
        .push_back(Ok(aws_budget(60, Decimal::from(5), at_seconds(60))));
    let aws = AwsBaseline {
        source: &source,
        store: &log,
        refresh_seconds: 3_600,
    };
    let sink = EmfMemory::default();
    let trigger = RecordingTrigger::default();
    let error = ticker::tick_with_aws_budget(
        &projector,
        &log,
        &trigger,
        &sink,
        &settings(BudgetPeriod::Day),
        Some(&aws),
        at_seconds(120) * 1000,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("BudgetPeriod"), "{error}");
    // The scopes' own metrics were still emitted.
    assert!(
        sink.objects
            .lock()
            .unwrap()
            .iter()
            .any(|o| o["Scope"] == "all")
    );
}

/// The real adapter: the limit and AWS's actual spend come from the emulator's AWS Budgets.
#[tokio::test]
async fn the_ticker_reads_the_budget_from_aws_budgets() {
    use shared::adapters::budgets::AwsBudgets;
    let config = batchguard_tests::emulator_config().await;
    let client = aws_sdk_budgets::Client::new(&config);
    let name = batchguard_tests::unique_prefix("ticker-budget");
    batchguard_tests::emulator_budget(&client, &name, "250", "12.25").await;
    let log = emulator_event_log("ticker-budget").await;
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), BudgetPeriod::Month);
    let aws = AwsBaseline {
        source: AwsBudgets::new(client, "123456789012", &name),
        store: &log,
        refresh_seconds: 3_600,
    };
    let sink = EmfMemory::default();
    let trigger = RecordingTrigger::default();
    let now = chrono::Utc::now().timestamp();
    let report = ticker::tick_with_aws_budget(
        &projector,
        &log,
        &trigger,
        &sink,
        &settings(BudgetPeriod::Month),
        Some(&aws),
        (now + 60) * 1000,
    )
    .await
    .unwrap();
    let fused = report.baseline.unwrap();
    assert_eq!(fused.baseline_usd, Decimal::new(1225, 2));
    // Nothing ran: the budget's spend is AWS's.
    assert_eq!(report.budget_spend_usd, Decimal::new(1225, 2));
    assert_eq!(
        number(&budget_document(&sink)["BudgetLimitUSD"]),
        Decimal::from(250)
    );
    // The reading is kept in the state table for the next ticks.
    let cached = shared::ports::BaselineStore::cached_budget(&log)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cached.budget.limit_usd, Decimal::from(250));
    assert_eq!(cached.fetched_at, now + 60);

    // A budget that does not exist: the tick goes on with the configured budget and says why.
    let missing = AwsBaseline {
        source: AwsBudgets::new(
            aws_sdk_budgets::Client::new(&config),
            "123456789012",
            "no-such-budget",
        ),
        store: &emulator_event_log("ticker-budget-missing").await,
        refresh_seconds: 3_600,
    };
    let report = ticker::tick_with_aws_budget(
        &projector,
        &log,
        &trigger,
        &sink,
        &settings(BudgetPeriod::Month),
        Some(&missing),
        (now + 60) * 1000,
    )
    .await
    .unwrap();
    assert!(report.baseline.is_none());
    assert!(
        report
            .baseline_error
            .as_deref()
            .unwrap()
            .contains("no-such-budget"),
        "{:?}",
        report.baseline_error
    );
}
