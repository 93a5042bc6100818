//! Bounded fuzzing with proptest (it runs in CI on every test run): the event parser and the
//! collector never panic on any input; each input is accepted, skipped or rejected with a
//! reason, and a rejected one is quarantined whole. Inputs: arbitrary bytes, arbitrary JSON,
//! and — to reach deep into the parser — the real sample events with fields deleted, replaced
//! by values of the wrong type, or nested where they should not be. Plus the budget policy's
//! safety: it never freezes below the freeze level and never stops below the stop level unless
//! its forecast says the budget runs out before the next tick can act.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use shared::adapters::emf::EmfMemory;
use shared::adapters::memory::MemoryEventLog;
use shared::adapters::memory::MemoryProjector;
use shared::app::collector::Collector;
use shared::core::budget::{Budget, BudgetPeriod, BudgetStatus, Outlook};
use shared::core::policy::{BudgetPolicy, Level, decide};
use shared::core::prices::PriceTable;
use shared::events::{Parsed, parse_event};

fn samples() -> Vec<Value> {
    let dir = batchguard_tests::cfn::root().join("tests/fixtures/events");
    let mut events: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    events.sort_by_key(Value::to_string);
    events
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "RUNNING",
            "STOPPED",
            "SUCCEEDED",
            "FAILED",
            "FARGATE",
            "FARGATE_SPOT",
            "ARM64",
            "0.25",
            "512",
            "-1",
            "1e400",
            "",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "detail",
                    "detail-type",
                    "source",
                    "id",
                    "time",
                    "jobId",
                    "status",
                    "attempts",
                    "container",
                    "taskArn",
                    "cpu",
                    "memory",
                    "lastStatus",
                    "clusterArn",
                    "jobQueue",
                    "startedAt",
                    "stoppedAt",
                    "x",
                ])
                .prop_map(str::to_owned),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Every path to a value inside `value`.
fn paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => return,
    };
    for (key, child) in children {
        prefix.push(key);
        out.push(prefix.clone());
        paths(child, prefix, out);
        prefix.pop();
    }
}

fn at_path<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut node = value;
    for key in path {
        node = match node {
            Value::Object(map) => map.get_mut(key)?,
            Value::Array(items) => items.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// A real sample event with up to four of its fields deleted or replaced.
fn mutated_sample() -> impl Strategy<Value = Value> {
    let samples = samples();
    (
        prop::sample::select(samples),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                any::<bool>(),
                arbitrary_json(),
            ),
            1..5,
        ),
    )
        .prop_map(|(mut event, edits)| {
            for (index, delete, replacement) in edits {
                let mut all = Vec::new();
                paths(&event, &mut Vec::new(), &mut all);
                if all.is_empty() {
                    break;
                }
                let path = index.get(&all).clone();
                let (last, parent) = path.split_last().unwrap();
                if delete && let Some(Value::Object(map)) = at_path(&mut event, parent) {
                    map.remove(last);
                    continue;
                }
                if let Some(node) = at_path(&mut event, &path) {
                    *node = replacement;
                }
            }
            event
        })
}

fn check_parse(bytes: &[u8]) {
    match parse_event(bytes) {
        Ok(Parsed::Fact(_)) => {}
        Ok(Parsed::Skipped(reason)) => assert!(!reason.to_string().is_empty()),
        Err(error) => assert!(
            !error.to_string().trim().is_empty(),
            "an error names what is wrong"
        ),
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_parse(&bytes);
    }

    #[test]
    fn the_parser_takes_any_json(value in arbitrary_json()) {
        check_parse(value.to_string().as_bytes());
    }

    #[test]
    fn the_parser_takes_broken_real_events(event in mutated_sample()) {
        check_parse(event.to_string().as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The collector, as the Lambda handler drives it, on a batch of broken and real events:
    /// no panic, and every event is counted once as stored, duplicate, skipped or quarantined —
    /// each quarantined one kept whole with its reason.
    #[test]
    fn the_collector_accounts_for_every_event(
        events in prop::collection::vec(prop_oneof![mutated_sample(), arbitrary_json()], 1..12),
    ) {
        let log = MemoryEventLog::new();
        let projector = MemoryProjector::new(PriceTable::builtin(), BudgetPeriod::Month);
        let collector = Collector::new(&log, projector);
        let sink = EmfMemory::default();
        let response = block_on(shared::handlers::collector::handle(
            &collector,
            &sink,
            Value::Array(events.clone()),
            "fuzz",
            1_795_413_600_000,
        ))
        .unwrap();
        prop_assert_eq!(
            response.stored + response.duplicates + response.skipped + response.quarantined,
            events.len() as u64
        );
        let quarantined = log.quarantined();
        prop_assert_eq!(quarantined.len() as u64, response.quarantined);
        // The bytes as the handler received them (comparing parsed values would trip on
        // serde_json's float parsing, which is not exact without its float_roundtrip feature).
        let received: Vec<String> = events.iter().map(Value::to_string).collect();
        for entry in &quarantined {
            prop_assert!(!entry.reason.is_empty());
            prop_assert!(received.contains(&entry.body), "the quarantined body is the event as received");
        }
    }

    /// The policy's levels: never freeze below the freeze percent, never stop below the stop
    /// percent unless the forecast runs out within one tick plus the stop delay, and more spend
    /// never lowers the level.
    #[test]
    fn the_policy_never_acts_early(
        spend_cents in 0_i64..200_000,
        more_cents in 0_i64..50_000,
        burn_cents in 0_i64..100_000,
        offset in 0_i64..(29 * 86_400),
    ) {
        let budget = Budget { amount_usd: Decimal::from(1000), period: BudgetPeriod::Month };
        let at = shared::analysis::sim::NOVEMBER_2026 + offset;
        let policy = BudgetPolicy::default();
        let spend = Decimal::new(spend_cents, 2);
        let burn = Decimal::new(burn_cents, 2);
        let status = BudgetStatus::evaluate(budget, at, spend, burn);
        let decision = decide(&status, &policy, at);
        let used = spend / Decimal::from(10);
        if decision.level >= Level::Freeze && used < policy.freeze_percent {
            prop_assert_eq!(decision.level, Level::Stop, "only the forecast acts below freeze");
        }
        if decision.level == Level::Stop && used < policy.stop_percent {
            let Outlook::RunsOut { at: runs_out } = status.outlook else {
                return Err(TestCaseError::fail(format!("stop below {}% without a forecast: {decision:?}", policy.stop_percent)));
            };
            prop_assert!(runs_out <= at + policy.tick_seconds + policy.stop_delay_seconds);
        }
        let later = decide(
            &BudgetStatus::evaluate(budget, at, spend + Decimal::new(more_cents, 2), burn),
            &policy,
            at,
        );
        prop_assert!(later.level >= decision.level);
    }
}
