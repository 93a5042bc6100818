//! Invariants of the fold, by proptest:
//! - any order and any duplication of a set of facts gives the same ledger and spend;
//! - the running sums (fast path) equal a walk of every unit;
//! - spend never decreases as the evaluation time grows;
//! - on generated workloads, every job's cost equals the Fargate formula (independent bill);
//! - a budget of another period than the ledger's sums as a ledger of its period does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batchguard_tests::{IndependentPrices, T0, at, attempt, fact, independent_bill, job, task};
use proptest::prelude::*;
use rust_decimal::Decimal;
use shared::analysis::synth::{self, WorkloadConfig};
use shared::core::budget::BudgetPeriod;
use shared::core::facts::{Capacity, Fact, FactBody, JobStatus, Millis, TaskSize};
use shared::core::ledger::Ledger;
use shared::core::prices::PriceTable;
use shared::core::projection::GroupProjection;
use shared::core::scope::Scope;
use shared::core::sums::ScopeTotals;
use shared::events::{Parsed, parse_event};
use std::collections::BTreeMap;
use std::sync::Arc;

use shared::core::budgets::BudgetBook;

const STATUSES: [JobStatus; 7] = JobStatus::ALL;

fn arn(n: u8) -> String {
    format!(
        "arn:aws:ecs:us-east-1:1:task/AWSBatch-ce{}-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/t{n}",
        n % 2
    )
}

/// Within an hour before and two after `T0`, a Monday's midnight (UTC): units cross a day's
/// and a week's start.
fn optional_time() -> impl Strategy<Value = Option<Millis>> {
    prop::option::of((-3_600_000_i64..7_200_000).prop_map(at))
}

/// Facts drawn from small pools so they collide: the same task from several events and
/// versions, the same ARN named by two jobs, attempts that disagree, regions without prices.
fn adversarial_fact() -> impl Strategy<Value = FactBody> {
    let task_fact = (
        0_u8..6,
        0_u64..6,
        optional_time(),
        optional_time(),
        any::<bool>(),
        0_u8..3,
        prop::option::of(0_u32..80),
    )
        .prop_map(|(n, version, pull, stop, spot, size, storage)| {
            let mut observed = task(&arn(n), version);
            observed.pull_started_at = pull;
            observed.stopped_at = stop;
            observed.capacity = Some(if spot {
                Capacity::Spot
            } else {
                Capacity::OnDemand
            });
            observed.size = (size > 0).then(|| TaskSize {
                vcpu: Decimal::from(size),
                memory_gib: Decimal::from(size * 2),
                storage_gib: storage,
                gpus: None,
            });
            FactBody::Task(observed)
        });
    let attempt_strategy = (
        0_u32..3,
        prop::option::of(0_u8..6),
        optional_time(),
        optional_time(),
    )
        .prop_map(|(index, n, start, stop)| attempt(index, n.map(arn).as_deref(), start, stop));
    let job_fact = (
        0_u8..5,
        0_usize..7,
        prop::collection::vec(attempt_strategy, 0..3),
        0_u8..3,
        any::<bool>(),
        // Timeouts short enough that some running units are past their deadline.
        prop::option::of(60_u32..10_000),
    )
        .prop_map(|(j, status, attempts, queue, priced_region, timeout)| {
            let mut observed = job(&format!("job-{j}"), STATUSES[status], attempts);
            observed.queue = format!("queue-{queue}");
            observed.timeout_seconds = timeout;
            if !priced_region {
                observed.region = Some("eu-south-2".into());
            }
            FactBody::Job(observed)
        });
    prop_oneof![task_fact, job_fact]
}

fn ledger_of<'a>(facts: impl IntoIterator<Item = &'a Fact>) -> Ledger {
    ledger_by(facts, BudgetPeriod::Day, None)
}

/// The facts folded by a ledger summing by `period`, with `book`'s budgets.
fn ledger_by<'a>(
    facts: impl IntoIterator<Item = &'a Fact>,
    period: BudgetPeriod,
    book: Option<&Arc<BudgetBook>>,
) -> Ledger {
    let mut ledger = Ledger::new(PriceTable::builtin(), period);
    if let Some(book) = book {
        ledger = ledger.with_budgets(book.clone());
    }
    for fact in facts {
        ledger.apply(fact);
    }
    ledger
}

/// Budgets of every period: a queue's by day, by week and by month, and the whole bill by
/// day and by week.
fn budgets_of_every_period() -> Arc<BudgetBook> {
    let budget = |name: &str, period: &str, scope: &str| {
        format!(
            "[[budget]]\nname = \"{name}\"\namount_usd = \"5\"\nperiod = \"{period}\"\n{scope}\
             thresholds = [{{ at_percent = \"90\", action = \"notify\" }}]\n"
        )
    };
    let queue = "scope = { queues = [\"queue-0\"] }\n";
    Arc::new(
        BudgetBook::parse(&format!(
            "{}{}{}{}{}",
            budget("q-day", "day", queue),
            budget("q-week", "week", queue),
            budget("q-month", "month", queue),
            budget("bill-day", "day", ""),
            budget("bill-week", "week", ""),
        ))
        .unwrap(),
    )
}

const PERIODS: [BudgetPeriod; 3] = [BudgetPeriod::Day, BudgetPeriod::Week, BudgetPeriod::Month];

/// A set of facts, and the same set delivered in another order with some delivered twice.
fn facts_and_redelivery() -> impl Strategy<Value = (Vec<Fact>, Vec<Fact>)> {
    prop::collection::vec(adversarial_fact(), 1..40).prop_flat_map(|bodies| {
        let facts: Vec<Fact> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Fact {
                observed_at: Some(at(i64::try_from(i).unwrap() * 1000)),
                ..fact(&format!("ev-{i}"), body)
            })
            .collect();
        let count = facts.len();
        let redelivered = (
            Just(facts.clone()),
            prop::collection::vec(0..count, 0..count),
        )
            .prop_map(|(mut all, again)| {
                let extra: Vec<Fact> = again.into_iter().map(|i| all[i].clone()).collect();
                all.extend(extra);
                all
            })
            .prop_shuffle();
        (Just(facts), redelivered)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_order_and_any_duplicates_give_the_same_ledger((facts, redelivered) in facts_and_redelivery(), offset in 0_i64..10_000) {
        let in_order = ledger_of(&facts);
        let shuffled = ledger_of(&redelivered);
        for at_s in [T0 / 1000 + offset, T0 / 1000 + 3 * offset, T0 / 1000 + 20_000] {
            prop_assert_eq!(in_order.walk(at_s), shuffled.walk(at_s));
            prop_assert_eq!(in_order.all_scope_spend(at_s), shuffled.all_scope_spend(at_s));
        }
    }

    #[test]
    fn running_sums_equal_a_walk_of_every_unit(facts in prop::collection::vec(adversarial_fact(), 1..40), later in 0_i64..200_000) {
        let facts: Vec<Fact> = facts.into_iter().enumerate().map(|(i, body)| fact(&format!("ev-{i}"), body)).collect();
        let ledger = ledger_of(&facts);
        let at_s = ledger.horizon().unwrap_or(T0 / 1000) + later;
        let walked = ledger.walk(at_s).scopes;
        let fast = ledger.all_scope_spend(at_s);
        prop_assert_eq!(walked, fast);
    }

    #[test]
    fn spend_never_decreases_as_time_goes_on(facts in prop::collection::vec(adversarial_fact(), 1..40), steps in prop::collection::vec(1_i64..2_000, 1..12)) {
        let facts: Vec<Fact> = facts.into_iter().enumerate().map(|(i, body)| fact(&format!("ev-{i}"), body)).collect();
        let ledger = ledger_of(&facts);
        let mut at_s = T0 / 1000 - 100;
        let mut previous = ledger.walk(at_s);
        for step in steps {
            at_s += step;
            let next = ledger.walk(at_s);
            prop_assert!(next.scopes.get(&Scope::Total).map(|s| s.spend_usd) >= previous.scopes.get(&Scope::Total).map(|s| s.spend_usd));
            for (before, after) in previous.jobs.iter().zip(&next.jobs) {
                prop_assert!(after.billed_seconds >= before.billed_seconds);
                prop_assert!(after.cost_usd >= before.cost_usd);
            }
            previous = next;
        }
    }

    #[test]
    fn generated_workloads_cost_exactly_the_fargate_formula(seed in any::<u64>(), jobs in 1_usize..25, cut_minutes in 30_i64..900) {
        let start_ms = T0;
        let config = WorkloadConfig { seed, jobs, start_ms, span_seconds: 4 * 3600, end_ms: start_ms + cut_minutes * 60_000, ..WorkloadConfig::sample_day() };
        let workload = synth::generate(&config);
        let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
        for event in synth::shuffle_with_duplicates(&workload.events, 20, seed) {
            if let Parsed::Fact(fact) = parse_event(event.as_bytes()).unwrap() {
                ledger.apply(&fact);
            }
        }
        let at_s = Millis(config.end_ms).ceil_seconds();
        let expected = independent_bill(&workload.tasks, at_s * 1000, &IndependentPrices::default());
        let walk = ledger.walk(at_s);
        let mut total = Decimal::ZERO;
        for job in walk.jobs.iter().filter(|job| !job.array_parent) {
            let want = expected.get(&job.job_id).copied().unwrap_or_default();
            let got = job.cost_usd.expect("generated jobs are all priced");
            prop_assert!((got - want).abs() <= Decimal::new(1, 6), "{}: {} vs {}", job.job_id, got, want);
            total += want;
        }
        let reported = ledger.scope_spend(&Scope::Total, at_s).spend_usd;
        prop_assert!((reported - total).abs() <= Decimal::new(1, 6), "total {} vs {}", reported, total);
    }

    /// A budget whose period is not the ledger's is summed by its own: its figures are those
    /// a ledger of its period gives it (for a budget of the whole bill, that ledger's total's),
    /// before and after the horizon, and the running sums still equal a walk.
    #[test]
    fn a_budget_of_another_period_sums_as_a_ledger_of_its_period_does(facts in prop::collection::vec(adversarial_fact(), 1..40), later in -5_000_i64..200_000, stack in 0_usize..3) {
        let facts: Vec<Fact> = facts.into_iter().enumerate().map(|(i, body)| fact(&format!("ev-{i}"), body)).collect();
        let book = budgets_of_every_period();
        let stack = PERIODS[stack];
        let ledger = ledger_by(&facts, stack, Some(&book));
        let at_s = ledger.horizon().unwrap_or(T0 / 1000) + later;
        for spec in book.budgets() {
            let own = ledger_by(&facts, spec.period, Some(&book));
            prop_assert_eq!(
                ledger.scope_spend(&spec.spend_scope(stack), at_s),
                own.scope_spend(&spec.spend_scope(spec.period), at_s),
                "{} on a ledger by {:?}", &spec.name, stack
            );
        }
        if later >= 0 {
            prop_assert_eq!(ledger.walk(at_s).scopes, ledger.all_scope_spend(at_s));
        }
    }

    /// The DynamoDB projector's arithmetic (ADR 0004): re-project after every fact, add each
    /// delta to one of three shards, merge the shards on read — the result equals the ledger,
    /// for budgets of other periods than the stack's too (each bucketed by its own).
    #[test]
    fn projection_deltas_spread_over_shards_sum_to_the_ledger(facts in prop::collection::vec(adversarial_fact(), 1..30), later in 0_i64..5_000) {
        let facts: Vec<Fact> = facts.into_iter().enumerate().map(|(i, body)| fact(&format!("ev-{i}"), body)).collect();
        let period = BudgetPeriod::Day;
        let mut ledger = Ledger::new(PriceTable::builtin(), period).with_budgets(budgets_of_every_period());
        let mut previous = GroupProjection::default();
        let mut shards: Vec<BTreeMap<Scope, ScopeTotals>> = vec![BTreeMap::new(); 3];
        for (i, fact) in facts.iter().enumerate() {
            ledger.apply(fact);
            let next = GroupProjection::of(&ledger);
            for (scope, delta) in previous.delta_to(&next, period) {
                shards[i % 3].entry(scope).or_default().merge(&delta);
            }
            previous = next;
        }
        let mut merged: BTreeMap<Scope, ScopeTotals> = BTreeMap::new();
        for shard in &shards {
            for (scope, totals) in shard {
                merged.entry(scope.clone()).or_default().merge(totals);
            }
        }
        let at = ledger.horizon().unwrap_or(T0 / 1000) + later;
        let expected = ledger.all_scope_spend(at);
        for (scope, spend) in &expected {
            let recent = previous.recent_starts(at).filter(|(s, _, _)| *s == scope).map(|(_, anchor, rate)| (anchor, rate));
            let got = merged.get(scope).cloned().unwrap_or_default().spend_at(at, scope.period(period), recent);
            prop_assert_eq!(&got, spend, "scope {:?}", scope);
        }
        for (scope, totals) in &merged {
            if !expected.contains_key(scope) {
                prop_assert_eq!(totals.units, 0, "scope {:?} should be empty", scope);
            }
        }
    }
}

/// An EC2 container instance's facts, in any order: registrations and updates with random
/// versions, statuses (some gone), types, times and fields left out.
fn instance_facts() -> impl Strategy<Value = Vec<Fact>> {
    let one = (
        (
            0_u64..6,
            prop::sample::select(vec!["ACTIVE", "DRAINING", "INACTIVE", "DEREGISTERING"]),
            prop::sample::select(vec!["m5.xlarge", "c5.2xlarge"]),
            0_i64..3_600_000,
            0_i64..600_000,
        ),
        (
            any::<bool>(),
            any::<bool>(),
            prop::option::of(0_i64..3_600_000),
            prop::sample::select(vec![(4096, 15_580), (8192, 15_580), (4096, 7_680)]),
            any::<bool>(),
        ),
    );
    prop::collection::vec(one, 1..10).prop_map(|facts| {
        facts
            .into_iter()
            .enumerate()
            .map(
                |(
                    i,
                    (
                        (version, status, kind, updated, registered),
                        (drop_type, drop_zone, seen, resources, other_region),
                    ),
                )| {
                    let mut fact = batchguard_tests::instance_fact(
                        &format!("instance-{i}"),
                        "arn:aws:ecs:us-east-1:123456789012:container-instance/AWSBatch-ce-1/i",
                        "ce",
                        kind,
                        resources,
                        status,
                        version,
                        at(registered),
                        at(updated),
                    );
                    fact.observed_at = seen.map(at);
                    if let FactBody::Instance(observed) = &mut fact.body {
                        if other_region {
                            observed.region = Some("eu-west-1".into());
                            observed.ec2_instance_id = Some(format!("i-{i}"));
                        }
                        if drop_type {
                            observed.instance_type = None;
                        }
                        if drop_zone {
                            observed.availability_zone = None;
                            observed.registered_at = None;
                        }
                    }
                    fact
                },
            )
            .collect()
    })
}

proptest! {
    /// GIVEN an instance's facts split anywhere into those already projected and those still
    /// to come WHEN a ledger folds the first part's witnesses (`Ledger::instance_witnesses`),
    /// then the rest THEN it holds what a ledger of every fact holds: the same instance bill
    /// and summary. So the instance's projection can keep its witnesses instead of reading
    /// its whole history (issue 16).
    #[test]
    fn an_instances_witnesses_stand_for_its_history(facts in instance_facts(), split in 0_usize..10) {
        let arn = "arn:aws:ecs:us-east-1:123456789012:container-instance/AWSBatch-ce-1/i";
        let fold = |facts: &[Fact]| {
            let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
            for fact in facts {
                ledger.apply(fact);
            }
            ledger
        };
        let split = split.min(facts.len());
        let (before, after) = facts.split_at(split);
        let whole = fold(&facts);
        let earlier = fold(before);
        let mut kept: Vec<Fact> = earlier
            .instance_witnesses(arn, before)
            .into_iter()
            .cloned()
            .collect();
        prop_assert!(kept.len() <= before.len());
        kept.extend(after.iter().cloned());
        let resumed = fold(&kept);
        prop_assert_eq!(GroupProjection::of(&resumed), GroupProjection::of(&whole));
        prop_assert_eq!(resumed.instance_summary(arn), whole.instance_summary(arn));
        prop_assert_eq!(resumed.latest_instant(), whole.latest_instant());
        // As the projector does it: the witnesses re-taken after every fact.
        let mut kept: Vec<Fact> = Vec::new();
        for fact in &facts {
            kept.push(fact.clone());
            let ledger = fold(&kept);
            kept = ledger.instance_witnesses(arn, &kept).into_iter().cloned().collect();
        }
        let stepped = fold(&kept);
        prop_assert_eq!(GroupProjection::of(&stepped), GroupProjection::of(&whole));
        prop_assert_eq!(stepped.instance_summary(arn), whole.instance_summary(arn));
        prop_assert_eq!(stepped.latest_instant(), whole.latest_instant());
    }
}
