//! Throughput of the replay path and the flatness of the spend query.
//!
//! `cargo bench -p shared --bench ledger`. Figures go in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rust_decimal::Decimal;
use shared::analysis::synth::{self, WorkloadConfig};
use shared::app::intake::{Intake, Outcome};
use shared::core::activity::Activity;
use shared::core::budget::BudgetPeriod;
use shared::core::facts::{
    Architecture, Capacity, Fact, FactBody, Millis, Platform, TaskObserved, TaskSize,
};
use shared::core::ledger::Ledger;
use shared::core::prices::PriceTable;
use shared::core::scope::Scope;
use shared::events::{Parsed, parse_event};

fn sample_events() -> Vec<String> {
    let config = WorkloadConfig {
        jobs: 1_500,
        ..WorkloadConfig::sample_day()
    };
    synth::generate(&config).events
}

fn parsing(c: &mut Criterion) {
    let events = sample_events();
    let bytes: u64 = events.iter().map(|e| e.len() as u64).sum();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("serde_json::Value (raw JSON baseline)", |b| {
        b.iter(|| {
            for event in &events {
                black_box(serde_json::from_str::<serde_json::Value>(event).unwrap());
            }
        });
    });
    group.bench_function("parse_event (typed, to facts)", |b| {
        b.iter(|| {
            for event in &events {
                black_box(parse_event(event.as_bytes()).unwrap());
            }
        });
    });
    group.bench_function("intake + fold (replay path)", |b| {
        b.iter(|| {
            let mut intake = Intake::new(true);
            let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
            for event in &events {
                if let Outcome::Fact(fact) = intake.offer(String::new, event.as_bytes()) {
                    ledger.apply(&fact);
                }
            }
            black_box(ledger.len())
        });
    });
    group.finish();
    eprintln!(
        "parse group: {} events, {} bytes ({} bytes/event)",
        events.len(),
        bytes,
        bytes / events.len() as u64
    );
}

fn folding(c: &mut Criterion) {
    let facts: Vec<Fact> = sample_events()
        .iter()
        .filter_map(|e| match parse_event(e.as_bytes()).unwrap() {
            Parsed::Fact(fact) => Some(fact),
            Parsed::Skipped(_) => None,
        })
        .collect();
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(facts.len() as u64));
    group.bench_function("apply parsed facts", |b| {
        b.iter(|| {
            let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
            for fact in &facts {
                ledger.apply(fact);
            }
            black_box(ledger.len())
        });
    });
    // The runtime-monitoring fold over the same facts (what `report` adds to a replay).
    let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    for fact in &facts {
        ledger.apply(fact);
    }
    let walk = ledger.walk(ledger.latest_instant().unwrap().floor_seconds() + 1);
    group.bench_function("activity (monitoring view)", |b| {
        b.iter(|| black_box(Activity::build(&facts, &walk).transitions.len()));
    });
    group.finish();
}

/// A ledger with `running` tasks, started one per second over the last `running` seconds,
/// none in the last minute (so the one-minute correction has nothing to do).
fn ledger_with_running(running: usize) -> (Ledger, i64) {
    let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    let start_ms = 1_795_413_600_000;
    for i in 0..running {
        let task = TaskObserved {
            task_arn: format!(
                "arn:aws:ecs:us-east-1:1:task/AWSBatch-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/{i}"
            ),
            compute_environment: Some("ce".into()),
            family: Some(format!("def-{}", i % 7)),
            version: 3,
            last_status: "RUNNING".into(),
            platform: Some(Platform::Fargate),
            capacity: Some(if i % 3 == 0 {
                Capacity::Spot
            } else {
                Capacity::OnDemand
            }),
            size: Some(TaskSize {
                vcpu: Decimal::ONE,
                memory_gib: Decimal::TWO,
                storage_gib: None,
                gpus: None,
            }),
            architecture: Some(Architecture::X86_64),
            operating_system: None,
            pull_started_at: Some(Millis(start_ms + i as i64 * 1000)),
            pull_stopped_at: None,
            started_at: None,
            stopped_at: None,
            stop_code: None,
            availability_zone: None,
            region: Some("us-east-1".into()),
            container_instance_arn: None,
        };
        ledger.apply(&Fact {
            event_id: format!("e{i}"),
            observed_at: None,
            body: FactBody::Task(task),
        });
    }
    let at = Millis(start_ms).floor_seconds() + running as i64 + 120;
    (ledger, at)
}

fn spend_query(c: &mut Criterion) {
    let mut group = c.benchmark_group("spend query (Total scope)");
    for running in [10_usize, 1_000, 100_000] {
        let (ledger, at) = ledger_with_running(running);
        assert_eq!(
            ledger.scope_spend(&Scope::Total, at).running_tasks,
            running as u64
        );
        group.bench_with_input(
            BenchmarkId::new("running sums", running),
            &running,
            |b, _| {
                b.iter(|| black_box(ledger.scope_spend(&Scope::Total, black_box(at))));
            },
        );
        if running <= 1_000 {
            group.bench_with_input(
                BenchmarkId::new("walk every unit", running),
                &running,
                |b, _| {
                    b.iter(|| black_box(ledger.walk(black_box(at)).scopes.len()));
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4)).warm_up_time(std::time::Duration::from_secs(1));
    targets = parsing, folding, spend_query
}
criterion_main!(benches);
