//! CPU per event of the collector function's handler, storage excluded: the real handler
//! (`shared::handlers::collector::handle`: parse, record key, append, project, EMF), on an
//! in-memory log, with a projector doing the DynamoDB projector's CPU work — fold the billing
//! group's facts, build its projection, the delta against the previous one, the JSON it
//! stores, and a settled job's cost and activity — without the network round trips. `cargo bench -p shared --bench collector`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shared::adapters::dynamodb::partition_key;
use shared::adapters::emf::EmfMemory;
use shared::adapters::memory::MemoryEventLog;
use shared::analysis::synth::{self, WorkloadConfig};
use shared::app::collector::Collector;
use shared::core::activity::SettledJob;
use shared::core::budget::BudgetPeriod;
use shared::core::facts::Fact;
use shared::core::facts::FactBody;
use shared::core::ledger::Ledger;
use shared::core::prices::PriceTable;
use shared::core::projection::GroupProjection;
use shared::ports::Projector;
use shared::ports::StoreError;

struct CpuProjector {
    prices: PriceTable,
    groups: Mutex<HashMap<String, (Vec<Fact>, GroupProjection)>>,
}

impl Default for CpuProjector {
    fn default() -> Self {
        Self {
            prices: PriceTable::builtin(),
            groups: Mutex::default(),
        }
    }
}

impl Projector for CpuProjector {
    async fn project(&self, fact: &Fact) -> Result<Option<SettledJob>, StoreError> {
        let mut groups = self.groups.lock().unwrap();
        let (history, stored) = groups.entry(partition_key(fact)).or_default();
        history.push(fact.clone());
        // As the DynamoDB projector does: the price table is read once and shared.
        let mut ledger = Ledger::new(self.prices.clone(), BudgetPeriod::Month);
        for fact in history.iter() {
            ledger.apply(fact);
        }
        let next = GroupProjection::of(&ledger);
        black_box(stored.delta_to(&next, BudgetPeriod::Month));
        black_box(serde_json::to_string(&next).unwrap());
        *stored = next;
        Ok(match &fact.body {
            FactBody::Job(job) => SettledJob::of(&ledger, history.iter(), &job.job_id),
            _ => None,
        })
    }
}

fn collector(c: &mut Criterion) {
    let events: Vec<serde_json::Value> = synth::generate(&WorkloadConfig {
        jobs: 300,
        ..WorkloadConfig::sample_day()
    })
    .events
    .iter()
    .map(|e| serde_json::from_str(e).unwrap())
    .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("collector handler");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(20);
    group.bench_function(
        "one invocation per event (as EventBridge invokes it)",
        |b| {
            b.iter(|| {
                let log = MemoryEventLog::new();
                let collector = Collector::new(&log, CpuProjector::default());
                let sink = EmfMemory::default();
                runtime.block_on(async {
                    for event in &events {
                        black_box(
                            shared::handlers::collector::handle(
                                &collector,
                                &sink,
                                event.clone(),
                                "bench",
                                1_795_413_600_000,
                            )
                            .await
                            .unwrap(),
                        );
                    }
                });
            });
        },
    );
    group.finish();
}

criterion_group!(benches, collector);
criterion_main!(benches);
