//! Budgets applied to a stack (issue 17, ADR 0012), on the emulator's DynamoDB through the
//! real SDK: the collector sums each job under every applied budget it counts in, and the
//! ticker publishes each budget's figures and the action its thresholds call for — the same
//! figures a local replay of the same events gives. The events are the first lines of the
//! sample day (`examples/sample-day.jsonl`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use batchguard_tests::emulator_event_log;
use rust_decimal::Decimal;
use serde_json::Value;
use shared::adapters::dynamodb::{DynamoEventLog, DynamoProjector};
use shared::adapters::emf::EmfMemory;
use shared::adapters::memory::{MemoryBatch, RecordingTrigger};
use shared::app::collector::Collector;
use shared::app::silent_jobs::SilentCheck;
use shared::app::ticker::{self, TickerSettings};
use shared::core::budget::BudgetPeriod;
use shared::core::budgets::{BudgetBook, RESERVED_NAME};
use shared::core::facts::Millis;
use shared::core::ledger::Ledger;
use shared::core::policy::BudgetPolicy;
use shared::core::prices::PriceTable;
use shared::handlers::ticker::TickerFunction;
use shared::ports::BudgetStore;

/// Lines of the sample day the emulator ingests (the whole day takes it over ten minutes).
const LINES: usize = 400;

fn sample_events() -> Vec<String> {
    let text =
        std::fs::read_to_string(batchguard_tests::cfn::root().join("examples/sample-day.jsonl"))
            .unwrap();
    text.lines().take(LINES).map(str::to_owned).collect()
}

/// A book over the sample day: the whole bill, the genomics team, its jobs on one queue
/// (nested), and two of periods other than the stack's (a day): a week's on one queue and a
/// month's of the whole bill. `genomics` is the amount of the
/// genomics team's budget.
fn book(genomics: Decimal) -> BudgetBook {
    BudgetBook::parse(&format!(
        r#"
[[budget]]
name = "everything"
amount_usd = "100000"
period = "day"
thresholds = [{{ at_percent = "80", action = "notify" }}]

[[budget]]
name = "genomics"
parent = "everything"
amount_usd = "{genomics}"
period = "day"
scope = {{ tags = ["team=genomics"] }}
thresholds = [
  {{ at_percent = "50", action = "notify" }},
  {{ at_percent = "100", action = "terminate" }},
]

[[budget]]
name = "genomics-high"
parent = "genomics"
amount_usd = "100000"
period = "day"
dry_run = true
admission = "safe"
scope = {{ queues = ["genomics-high"] }}
thresholds = [{{ at_percent = "90", action = "drain" }}]

[[budget]]
name = "weekly"
amount_usd = "10"
period = "week"
scope = {{ queues = ["genomics-high"] }}
thresholds = [{{ at_percent = "90", action = "drain" }}]

[[budget]]
name = "bill-monthly"
amount_usd = "100000"
period = "month"
thresholds = [{{ at_percent = "80", action = "notify" }}]
"#
    ))
    .unwrap()
}

fn replay(events: &[String], book: &BudgetBook) -> Ledger {
    replay_by(events, book, BudgetPeriod::Day)
}

/// The events folded locally by a ledger summing by `period`.
fn replay_by(events: &[String], book: &BudgetBook, period: BudgetPeriod) -> Ledger {
    let mut ledger =
        Ledger::new(PriceTable::builtin(), period).with_budgets(Arc::new(book.clone()));
    for event in events {
        if let Ok(shared::events::Parsed::Fact(fact)) =
            shared::events::parse_event(event.as_bytes())
        {
            ledger.apply(&fact);
        }
    }
    ledger
}

fn settings() -> TickerSettings {
    TickerSettings {
        budget: None,
        policy: BudgetPolicy::default(),
        period: BudgetPeriod::Day,
        scope_queues: vec![],
        max_scopes_read: ticker::MAX_SCOPES_READ,
        budgets: Default::default(),
    }
}

/// The ticker function on the emulator's tables, with no AWS budget and no silent-job check.
fn ticker_function<'a>(
    projector: &'a DynamoProjector,
    log: &'a DynamoEventLog,
    trigger: &'a RecordingTrigger,
    sink: &'a EmfMemory,
) -> TickerFunction<
    MemoryBatch,
    &'a DynamoProjector,
    &'a DynamoEventLog,
    &'a RecordingTrigger,
    &'a EmfMemory,
> {
    TickerFunction {
        batch: MemoryBatch::default(),
        projector,
        collector: Collector::new(log, projector),
        audit: log,
        trigger,
        sink,
        settings: settings(),
        aws_budget: None,
        silent: SilentCheck::after(365 * 86_400_000),
        last_budgets: Default::default(),
    }
}

fn budget_document<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    objects
        .iter()
        .rev()
        .find(|o| o["ScopeKind"] == "budget" && o["Scope"] == name)
        .unwrap_or_else(|| panic!("no document for budget {name}"))
}

/// GIVEN a budgets file applied to the stack's state table, and the first 400 events of the
/// sample day collected WHEN the ticker function runs THEN each applied budget of the stack's
/// period is published with the spend a local replay gives it (the bill for the root, the
/// team's tag, the team's jobs on one queue), the nested budget is inside its parent, and its
/// action level is what its thresholds call for (genomics over its amount: terminate, 5). The
/// budgets of another period than the stack's are summed by their own: each is published with
/// the figure a ledger of its period gives it (the week's on its queue, the month's bill).
#[tokio::test]
async fn the_stack_sums_each_applied_budget_and_the_ticker_judges_it_as_a_replay_does() {
    let events = sample_events();
    // The genomics team's spend on these events, to set its amount just under it.
    let probe = replay(&events, &book(Decimal::ONE));
    let at = probe.latest_instant().unwrap().ceil_seconds();
    let genomics_spend = probe
        .scope_spend(&shared::core::scope::Scope::Budget("genomics".into()), at)
        .period_spend_usd;
    assert!(genomics_spend > Decimal::ZERO, "{genomics_spend}");
    let amount = (genomics_spend * Decimal::new(9, 1)).round_dp(2);
    let book = book(amount);
    let local = replay(&events, &book);

    let log = emulator_event_log("applied-budgets").await;
    assert!(log.replace_budgets(&book, 0).await.unwrap());
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), BudgetPeriod::Day)
        .with_applied_budgets();
    let collector = Collector::new(log.clone(), projector.clone());
    for event in &events {
        collector.collect(event.as_bytes(), "test").await.unwrap();
    }

    let sink = EmfMemory::default();
    let trigger = RecordingTrigger::default();
    let function = ticker_function(&projector, &log, &trigger, &sink);
    let answer = function.invoke(at * 1000).await.unwrap();
    let objects = sink.objects.lock().unwrap().clone();
    let mut spends = std::collections::BTreeMap::new();
    for spec in book.budgets() {
        // The oracle for a budget of another period: a ledger summing by that period, where
        // it is an ordinary budget (or, for the bill, the total).
        let expected = if spec.period == BudgetPeriod::Day {
            local.scope_spend(&spec.spend_scope(BudgetPeriod::Day), at)
        } else {
            let own = replay_by(&events, &book, spec.period);
            let expected = own.scope_spend(&spec.spend_scope(spec.period), at);
            // The stack's ledger sums it by its own period too.
            let in_stack = local.scope_spend(&spec.spend_scope(BudgetPeriod::Day), at);
            assert_eq!(
                in_stack.period_spend_usd, expected.period_spend_usd,
                "{}",
                spec.name
            );
            assert_eq!(
                in_stack.committed_usd, expected.committed_usd,
                "{}",
                spec.name
            );
            expected
        };
        let (_, action) = spec.judge(
            at,
            expected.period_spend_usd,
            expected.burn_rate_usd_per_hour,
        );
        let document = budget_document(&objects, &spec.name);
        assert_eq!(
            document["period_spend_usd_exact"],
            expected.period_spend_usd.to_string(),
            "{}",
            spec.name
        );
        assert_eq!(
            document["BudgetActionLevel"],
            u64::from(action.map_or(0, |a| a.rank())),
            "{}",
            spec.name
        );
        assert_eq!(document["dry_run"], spec.dry_run, "{}", spec.name);
        // Committed spend: the replay's, from the sums' timed units on the emulator.
        assert_eq!(
            document["CommittedSpendUSD"],
            serde_json::Value::Number(
                expected
                    .committed_usd
                    .normalize()
                    .to_string()
                    .parse()
                    .unwrap()
            ),
            "{}",
            spec.name
        );
        spends.insert(spec.name.clone(), expected.period_spend_usd);
    }
    // The month's bill is the day's and more only if the sample crosses midnight; at least it
    // is no less, and the week's budget counts what the nested day's one on its queue does.
    assert!(spends["bill-monthly"] >= spends["everything"]);
    assert!(spends["weekly"] >= spends["genomics-high"]);
    assert!(spends["weekly"] > Decimal::ZERO);
    assert_eq!(
        budget_document(&objects, "genomics")["BudgetActionLevel"],
        5,
        "genomics spent over its amount: terminate"
    );
    assert_eq!(
        budget_document(&objects, "everything")["BudgetActionLevel"],
        0
    );
    // The highest of them, under ScopeKind=budget alone: what the alarms on the applied
    // budgets watch.
    let highest: Vec<&Value> = objects
        .iter()
        .filter(|o| o["ScopeKind"] == "budget" && o.get("Scope").is_none())
        .collect();
    assert_eq!(highest.len(), 1, "{highest:?}");
    assert_eq!(highest[0]["BudgetActionLevel"], 5);
    assert_eq!(highest[0]["budget"], "genomics");
    // Some of the day's running jobs have a timeout: committed is above the spend.
    let total = local.scope_spend(&shared::core::scope::Scope::Total, at);
    assert!(total.committed_usd > total.period_spend_usd, "{total:?}");
    // The enforcer is sent the one order the thresholds call for, then (genomics-high admits
    // safely) safe admission.
    let sent = trigger.0.lock().unwrap().clone();
    assert!(
        matches!(
            sent.last(),
            Some(shared::core::enforcement::EnforcerRequest::Admit { .. })
        ),
        "{sent:?}"
    );
    assert_eq!(answer["admission"], "sent");
    match &sent[..sent.len() - 1] {
        [shared::core::enforcement::EnforcerRequest::Budgets { orders }] => {
            let named: Vec<(&str, shared::core::budgets::Action)> = orders
                .iter()
                .map(|o| (o.budget.as_str(), o.action))
                .collect();
            assert_eq!(
                named,
                [("genomics", shared::core::budgets::Action::Terminate)]
            );
            assert!(
                orders[0].reason.contains("genomics has spent"),
                "{orders:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(spends["genomics-high"] > Decimal::ZERO);
    assert!(spends["genomics-high"] <= spends["genomics"]);
    assert!(spends["genomics"] < spends["everything"]);
    // The template's own budget keeps its dimensions: no file budget may take its name.
    assert!(
        BudgetBook::parse(&format!(
            "[[budget]]\nname = \"{RESERVED_NAME}\"\namount_usd = \"1\"\nperiod = \"day\"\nthresholds = [{{ at_percent = \"90\", action = \"notify\" }}]\n"
        ))
        .unwrap_err()
        .to_string()
        .contains("the stack's own budget")
    );
}

/// GIVEN a ticker that has read the applied budgets once WHEN the stored book turns unreadable
/// (edited by hand into one that does not validate) THEN the next tick still judges and
/// publishes every budget from the last reading, and says why in its answer: one failed read
/// never leaves a budget unwatched.
#[tokio::test]
async fn a_tick_whose_budgets_read_fails_judges_the_last_reading() {
    let events = sample_events();
    let book = book(Decimal::from(1000));
    let log = emulator_event_log("applied-budgets-unreadable").await;
    assert!(log.replace_budgets(&book, 0).await.unwrap());
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), BudgetPeriod::Day)
        .with_applied_budgets();
    let collector = Collector::new(log.clone(), projector.clone());
    for event in events.iter().take(40) {
        collector.collect(event.as_bytes(), "test").await.unwrap();
    }
    let at = Millis(1_795_420_000_000).ceil_seconds();
    let sink = EmfMemory::default();
    let trigger = RecordingTrigger::default();
    let function = ticker_function(&projector, &log, &trigger, &sink);
    let first = function.invoke(at * 1000).await.unwrap();
    assert!(first.get("budgets_error").is_none(), "{first}");
    let judged = |objects: &[Value]| -> usize {
        objects
            .iter()
            .filter(|o| {
                o["ScopeKind"] == "budget"
                    && o.get("Scope").is_some()
                    && o.get("BudgetActionLevel").is_some()
            })
            .count()
    };
    assert_eq!(judged(&sink.objects.lock().unwrap()), 5);

    // The stored book, corrupted: a threshold above the 1,000 % limit.
    let client = aws_sdk_dynamodb::Client::new(&batchguard_tests::emulator_config().await);
    let text = shared::ports::budgets_to_json(&book)
        .unwrap()
        .replace("\"80\"", "\"5000\"");
    client
        .update_item()
        .table_name(&log.tables().state)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("BUDGETS".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("BOOK".into()),
        )
        .update_expression("SET book = :b")
        .expression_attribute_values(":b", aws_sdk_dynamodb::types::AttributeValue::S(text))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        log.budgets().await,
        Err(shared::ports::StoreError::Corrupt { .. })
    ));

    sink.objects.lock().unwrap().clear();
    let second = function.invoke(at * 1000 + 60_000).await.unwrap();
    let error = second["budgets_error"].as_str().unwrap_or_default();
    assert!(error.contains("everything"), "{second}");
    assert_eq!(
        judged(&sink.objects.lock().unwrap()),
        5,
        "every budget of the last reading is still judged and published"
    );

    // The enforcer, asked to act for a budget while the stored book is unreadable, refuses
    // the order with the reason, recorded and notified, and touches nothing.
    let batch = MemoryBatch::with(
        &[("q", true)],
        &[("j", "q", shared::core::facts::JobStatus::Running, false)],
    );
    let outbox = shared::adapters::memory::Outbox::default();
    let enforcing = shared::app::enforcer::Enforcer::new(
        &batch,
        &log,
        &outbox,
        shared::app::enforcer::EnforcerSettings {
            queues: vec![],
            dry_run: false,
            period: BudgetPeriod::Day,
        },
    );
    let check = shared::app::verify::LedgerCheck {
        reader: &projector,
        settings: settings(),
        baseline: None::<ticker::NoAwsBudget>,
    };
    let payload = serde_json::json!({"action": "budgets", "orders": [
        {"budget": "genomics", "action": "terminate", "reason": "over"}]});
    let report =
        shared::handlers::enforcer::handle(&enforcing, &check, &sink, payload, at * 1000 + 120_000)
            .await
            .unwrap()
            .unwrap();
    assert!(batch.calls().is_empty(), "{:?}", batch.calls());
    assert!(
        report.actions.iter().any(|a| matches!(
            &a.action,
            shared::core::facts::EnforcementAction::Refused { request } if request == "budget genomics: terminate"
        )),
        "{report:?}"
    );
    assert!(report.reason.contains("cannot be read"), "{report:?}");
    let notices = outbox.0.lock().unwrap().clone();
    assert_eq!(notices, ["batchguard: refused budget genomics: terminate"]);
}

/// The collector's clock in the test below (Unix seconds).
static CLOCK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1_795_420_000);

fn test_clock() -> i64 {
    CLOCK.load(std::sync::atomic::Ordering::Relaxed)
}

/// GIVEN the same 60 sample events collected twice, by a collector that does not read applied
/// budgets and by one that does (none applied, so both sum the same scopes) WHEN their
/// DynamoDB requests are counted THEN reading the budgets costs one request for all 60 events,
/// and one more once its reading is a minute old: a request a minute per warm collector, not
/// one an event.
#[tokio::test]
async fn the_applied_budgets_cost_a_collector_one_read_a_minute_not_one_an_event() {
    let events = sample_events();
    let (first_half, second_half) = events[..60].split_at(30);
    let mut requests = Vec::new();
    for reads_budgets in [false, true] {
        let (log, counter) =
            batchguard_tests::counted_emulator_event_log("budgets-read-cost").await;
        let mut projector =
            DynamoProjector::new(log.clone(), PriceTable::builtin(), BudgetPeriod::Day)
                .with_clock(test_clock);
        if reads_budgets {
            projector = projector.with_applied_budgets();
        }
        let collector = Collector::new(log.clone(), projector);
        let before = counter.count();
        for event in first_half {
            collector.collect(event.as_bytes(), "test").await.unwrap();
        }
        let first = counter.count() - before;
        CLOCK.fetch_add(
            shared::adapters::dynamodb::BUDGETS_REFRESH_SECONDS,
            std::sync::atomic::Ordering::Relaxed,
        );
        for event in second_half {
            collector.collect(event.as_bytes(), "test").await.unwrap();
        }
        requests.push((first, counter.count() - before - first));
        CLOCK.fetch_sub(
            shared::adapters::dynamodb::BUDGETS_REFRESH_SECONDS,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    let (without, with) = (requests[0], requests[1]);
    assert_eq!(with.0, without.0 + 1, "{requests:?}");
    assert_eq!(with.1, without.1 + 1, "{requests:?}");
}
