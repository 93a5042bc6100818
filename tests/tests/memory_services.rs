//! The services on the in-memory adapters, no emulator: the ticker and the silent-job check
//! run on `shared::adapters::memory` exactly as they run on DynamoDB and AWS Batch.
#![allow(clippy::unwrap_used, clippy::panic)]

use rust_decimal::Decimal;
use shared::adapters::emf::EmfMemory;
use shared::adapters::memory::Fault;
use shared::adapters::memory::{
    MemoryBaseline, MemoryBatch, MemoryEventLog, MemoryProjector, RecordingTrigger,
};
use shared::app::collector::Collector;
use shared::app::silent_jobs::{self, SilentCheck};
use shared::app::ticker::{self, AwsBaseline, TickerSettings};
use shared::core::budget::{AwsBudget, Baseline, Budget, BudgetPeriod, BudgetStatus};
use shared::core::enforcement::EnforcerRequest;
use shared::core::facts::Millis;
use shared::core::policy::{BudgetPolicy, Level, decide};
use shared::core::prices::PriceTable;
use shared::core::scope::Scope;
use shared::handlers::ticker::TickerFunction;
use shared::ports::{BudgetSource, ControlError, SpendReader};

async fn collected(
    seed: u64,
    jobs: usize,
) -> (
    shared::analysis::synth::WorkloadConfig,
    Vec<String>,
    Collector<MemoryEventLog, MemoryProjector>,
) {
    let (config, workload) = batchguard_tests::workload_ending_with_running_tasks(seed, jobs);
    let collector = Collector::new(
        MemoryEventLog::new(),
        MemoryProjector::new(PriceTable::builtin(), BudgetPeriod::Month),
    );
    for event in &workload.events {
        collector.collect(event.as_bytes(), "test").await.unwrap();
    }
    (config, workload.events, collector)
}

/// GIVEN a workload collected in memory WHEN the ticker runs with a budget the burn rate
/// exhausts within 45 s THEN its figures are the replay's and it triggers a stop.
#[tokio::test]
async fn the_ticker_runs_on_the_in_memory_projections() {
    let (config, events, collector) = collected(99_001, 12).await;
    let period = BudgetPeriod::Month;
    let local = batchguard_tests::replay_ledger(&events, period);
    let at = Millis(config.end_ms).ceil_seconds();
    let total = local.scope_spend(&Scope::Total, at);
    assert!(total.burn_rate_usd_per_hour > Decimal::ZERO);
    let budget = Budget {
        amount_usd: total.period_spend_usd
            + total.burn_rate_usd_per_hour * Decimal::from(45) / Decimal::from(3600),
        period,
    };
    let settings = TickerSettings {
        budget: Some(budget),
        policy: BudgetPolicy::default(),
        period,
        scope_queues: vec![],
        max_scopes_read: shared::app::ticker::MAX_SCOPES_READ,
        budgets: Default::default(),
    };
    let (trigger, sink) = (RecordingTrigger::default(), EmfMemory::default());
    let report = ticker::tick(
        collector.projector(),
        collector.log(),
        &trigger,
        &sink,
        &settings,
        at * 1000,
    )
    .await
    .unwrap();
    assert_eq!(report.budget_spend_usd, total.period_spend_usd);
    let expected = decide(
        &BudgetStatus::evaluate(
            budget,
            at,
            total.period_spend_usd,
            total.burn_rate_usd_per_hour,
        ),
        &BudgetPolicy::default(),
        at,
    );
    assert_eq!(report.decision, Some(expected));
    assert!(matches!(
        trigger.0.lock().unwrap().as_slice(),
        [EnforcerRequest::Enforce {
            level: Level::Stop,
            ..
        }]
    ));
    let objects = sink.objects.lock().unwrap();
    // Every scope (all active: the workload ends with tasks running), the budget's document,
    // and the count of scopes over the cap (none).
    assert_eq!(objects.len(), local.all_scope_spend(at).len() + 2);
    assert!(objects.iter().any(|o| o["ScopesNotPublished"] == 0));
    for (scope, spend) in local.all_scope_spend(at) {
        let document = objects
            .iter()
            .find(|o| {
                o["ScopeKind"] == scope.kind() && o["Scope"] == ticker::dimension_value(&scope)
            })
            .unwrap_or_else(|| panic!("no document for {scope:?}"));
        assert_eq!(
            document["period_spend_usd_exact"],
            spend.period_spend_usd.to_string()
        );
    }
}

/// AWS Budgets, scripted: a fixed reading.
struct FixedBudget(AwsBudget);

impl BudgetSource for FixedBudget {
    async fn describe(&self) -> Result<AwsBudget, ControlError> {
        Ok(self.0)
    }
}

/// With an AWS budget, the marks and the reading are kept in memory: the budget's spend is
/// AWS's figure plus the ledger's spend after the mark at AWS's instant.
#[tokio::test]
async fn the_ticker_fuses_an_aws_baseline_in_memory() {
    let (config, _, collector) = collected(99_002, 8).await;
    let at = Millis(config.end_ms).ceil_seconds();
    let settings = TickerSettings {
        budget: None,
        policy: BudgetPolicy::default(),
        period: BudgetPeriod::Month,
        scope_queues: vec![],
        max_scopes_read: shared::app::ticker::MAX_SCOPES_READ,
        budgets: Default::default(),
    };
    let store = MemoryBaseline::default();
    let aws = AwsBaseline {
        source: FixedBudget(AwsBudget {
            limit_usd: Decimal::from(1_000_000),
            period: BudgetPeriod::Month,
            baseline: Baseline {
                spend_usd: Decimal::from(100),
                as_of: at - 60,
            },
        }),
        store: &store,
        refresh_seconds: 3_600,
    };
    let (trigger, sink) = (RecordingTrigger::default(), EmfMemory::default());
    // A tick a minute before AWS's instant leaves the mark AWS's figure is cut at …
    let first = ticker::tick_with_aws_budget(
        collector.projector(),
        collector.log(),
        &trigger,
        &sink,
        &settings,
        Some(&aws),
        (at - 60) * 1000,
    )
    .await
    .unwrap();
    // … and the next one counts AWS's $100 plus what the ledger added since.
    let second = ticker::tick_with_aws_budget(
        collector.projector(),
        collector.log(),
        &trigger,
        &sink,
        &settings,
        Some(&aws),
        at * 1000,
    )
    .await
    .unwrap();
    let fused = second.baseline.unwrap();
    assert_eq!(fused.baseline_usd, Decimal::from(100));
    let ledger_now = collector
        .projector()
        .scopes_totals(&[Scope::Total])
        .await
        .unwrap()[&Scope::Total]
        .spend_at(at, BudgetPeriod::Month, std::iter::empty())
        .period_spend_usd;
    assert!(ledger_now > first.budget_spend_usd - Decimal::from(100));
    assert_eq!(fused.spend_usd, second.budget_spend_usd);
    assert_eq!(fused.spend_usd, Decimal::from(100) + fused.ledger_after_usd);
}

/// A job the projections still count as running, silent for two hours, is looked up in the
/// in-memory AWS Batch; its terminal state, fed back through the collector, stops it accruing.
/// A job Batch no longer knows is reported.
#[tokio::test]
async fn the_silent_job_check_runs_on_the_in_memory_batch() {
    let collector = Collector::new(
        MemoryEventLog::new(),
        MemoryProjector::new(PriceTable::builtin(), BudgetPeriod::Month),
    );
    let now_ms = batchguard_tests::T0 + 10 * 3_600_000;
    let running = |job: &str| {
        serde_json::json!({
            "id": format!("running-{job}"), "detail-type": "Batch Job State Change", "source": "aws.batch", "region": "us-east-1",
            "detail": {
                "jobId": job, "jobQueue": "q", "jobDefinition": "def", "status": "RUNNING",
                "platformCapabilities": ["FARGATE"], "startedAt": now_ms - 7_200_000, "attempts": [],
                "container": {"resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}
            }
        })
    };
    for job in ["ended", "forgotten"] {
        collector
            .collect(running(job).to_string().as_bytes(), "test")
            .await
            .unwrap();
    }
    let batch = MemoryBatch::default();
    let mut ended = running("ended");
    ended["id"] = "described".into();
    ended["detail"]["status"] = "SUCCEEDED".into();
    ended["detail"]["stoppedAt"] = (now_ms - 3_600_000).into();
    ended["detail"]["attempts"] = serde_json::json!([{
        "startedAt": now_ms - 7_200_000, "stoppedAt": now_ms - 3_600_000, "container": {"exitCode": 0}
    }]);
    batch
        .current_state
        .lock()
        .unwrap()
        .insert("ended".into(), ended);

    let limits = SilentCheck::after(60_000);
    let report = silent_jobs::check(&batch, collector.projector(), &collector, &limits, now_ms)
        .await
        .unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.updated, 1);
    assert_eq!(report.unknown_to_batch, vec!["forgotten".to_owned()]);
    // The job Batch no longer knows is closed at the last instant it was heard of (its start,
    // two hours ago): nothing runs on, and its spend no longer grows.
    let still_running = collector
        .projector()
        .with_ledger(|ledger| ledger.running_jobs().join(","));
    assert_eq!(still_running, "");
    let spend_at = |at_ms: i64| {
        collector.projector().with_ledger(|ledger| {
            ledger
                .scope_spend(&Scope::Total, Millis(at_ms).ceil_seconds())
                .period_spend_usd
        })
    };
    assert_eq!(spend_at(now_ms), spend_at(now_ms + 3_600_000));
    let flagged: Vec<String> = collector.projector().with_ledger(|ledger| {
        ledger
            .walk(Millis(now_ms).ceil_seconds())
            .jobs
            .into_iter()
            .filter(|job| job.closed_unknown_to_batch)
            .map(|job| job.job_id)
            .collect()
    });
    assert_eq!(flagged, vec!["forgotten".to_owned()]);
    // Counted in the run's metric, and written to the event log once, however often the
    // check runs.
    let documents = report.documents(now_ms);
    assert_eq!(documents[0].metrics[0].value, Decimal::ONE);
    assert_eq!(documents[0].metrics[0].name, "JobsUnknownToBatch");
    let again = silent_jobs::check(&batch, collector.projector(), &collector, &limits, now_ms)
        .await
        .unwrap();
    assert_eq!(again.checked, 0, "{again:?}");
    assert_eq!(again.documents(now_ms)[0].metrics[0].value, Decimal::ZERO);
}

/// `count` Fargate jobs, each running since two hours before `now_ms`, collected in memory;
/// and an AWS Batch that says each of them is still running.
async fn long_running(
    count: usize,
    now_ms: i64,
) -> (Collector<MemoryEventLog, MemoryProjector>, MemoryBatch) {
    let collector = Collector::new(
        MemoryEventLog::new(),
        MemoryProjector::new(PriceTable::builtin(), BudgetPeriod::Month),
    );
    let batch = MemoryBatch::default();
    for index in 0..count {
        let job = format!("long-{index:04}");
        let event = serde_json::json!({
            "id": format!("running-{job}"), "detail-type": "Batch Job State Change", "source": "aws.batch", "region": "us-east-1",
            "detail": {
                "jobId": job, "jobQueue": "q", "jobDefinition": "def", "status": "RUNNING",
                "platformCapabilities": ["FARGATE"], "startedAt": now_ms - 7_200_000, "attempts": [],
                "container": {"resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}
            }
        });
        collector
            .collect(event.to_string().as_bytes(), "test")
            .await
            .unwrap();
        batch.current_state.lock().unwrap().insert(job, event);
    }
    (collector, batch)
}

/// GIVEN a job AWS Batch said was still running an hour after its start WHEN Batch no longer
/// knows it at the next check THEN it is closed at that answer, not at its start: the hour it
/// was confirmed running is billed.
#[tokio::test]
async fn a_job_batch_forgets_is_closed_at_its_last_still_running_answer() {
    let now_ms = batchguard_tests::T0 + 10 * 3_600_000;
    let (collector, batch) = long_running(1, now_ms).await;
    let limits = SilentCheck::after(1_800_000);
    let confirmed_at = now_ms - 3_600_000;
    let report = silent_jobs::check(
        &batch,
        collector.projector(),
        &collector,
        &limits,
        confirmed_at,
    )
    .await
    .unwrap();
    assert_eq!((report.checked, report.unknown_to_batch.len()), (1, 0));
    batch.current_state.lock().unwrap().clear();
    let report = silent_jobs::check(
        &batch,
        collector.projector(),
        &collector,
        &limits,
        now_ms + 1,
    )
    .await
    .unwrap();
    assert_eq!(report.unknown_to_batch, vec!["long-0000".to_owned()]);
    let billed = collector.projector().with_ledger(|ledger| {
        ledger
            .walk(Millis(now_ms).ceil_seconds())
            .jobs
            .into_iter()
            .find(|job| job.job_id == "long-0000")
            .unwrap()
            .billed_seconds
    });
    // Started two hours before `now_ms`, confirmed running one hour before it.
    assert_eq!(billed, 3_600);
}

/// GIVEN 1,000 jobs running longer than the silence window (an hour) WHEN the check runs every
/// minute THEN each job is asked about within ⌈1000 / 500⌉ = 2 runs, five `DescribeJobs` calls
/// a run, and not again until it has been silent for a whole window (before, the same 500 were
/// asked about on every tick and the other 500 never).
#[tokio::test]
async fn a_thousand_long_running_jobs_are_each_checked_within_two_runs() {
    let now_ms = batchguard_tests::T0 + 10 * 3_600_000;
    let (collector, batch) = long_running(1_000, now_ms).await;
    let limits = SilentCheck::after(3_600_000);
    let mut checked = std::collections::BTreeSet::new();
    for run in 0..3 {
        let calls_before = batch.described.lock().unwrap().len();
        let at = now_ms + run * 60_000;
        let report = silent_jobs::check(&batch, collector.projector(), &collector, &limits, at)
            .await
            .unwrap();
        let described = batch.described.lock().unwrap()[calls_before..].to_vec();
        assert!(described.len() <= 5, "run {run}: {} calls", described.len());
        assert!(described.iter().all(|ids| ids.len() <= 100));
        let expected = if run < 2 { 500 } else { 0 };
        assert_eq!(report.checked, expected, "run {run}: {report:?}");
        assert_eq!(report.updated, 0, "Batch said nothing new");
        assert!(report.unknown_to_batch.is_empty());
        for id in described.into_iter().flatten() {
            assert!(
                checked.insert(id.clone()),
                "{id} asked about twice in a window"
            );
        }
    }
    assert_eq!(checked.len(), 1_000);
    // A window after the first run, its jobs are silent again: asked about once more.
    let report = silent_jobs::check(
        &batch,
        collector.projector(),
        &collector,
        &limits,
        now_ms + 3_600_000 + 1,
    )
    .await
    .unwrap();
    assert_eq!(report.checked, 500);
    let running = collector
        .projector()
        .with_ledger(|ledger| ledger.running_jobs().len());
    assert_eq!(running, 1_000, "jobs Batch says are running stay running");
}

/// GIVEN 1,000 silent jobs and an AWS Batch that never answers WHEN the ticker function runs
/// THEN the tick's metrics and decision are out first, and the check gives up at its time
/// budget, leaving its 500 jobs for the next run; the function returns.
#[tokio::test]
async fn a_hung_describe_jobs_costs_the_check_its_budget_and_not_the_tick() {
    let now_ms = batchguard_tests::T0 + 10 * 3_600_000;
    let (collector, batch) = long_running(1_000, now_ms).await;
    batch.inject("DescribeJobs", Fault::Hangs);
    let period = BudgetPeriod::Month;
    let spend = collector
        .projector()
        .scopes_totals(&[Scope::Total])
        .await
        .unwrap()[&Scope::Total]
        .spend_at(Millis(now_ms).ceil_seconds(), period, vec![])
        .period_spend_usd;
    let sink = EmfMemory::default();
    let trigger = RecordingTrigger::default();
    let function: TickerFunction<_, _, _, _, _> = TickerFunction {
        batch: &batch,
        projector: collector.projector(),
        collector: Collector::new(collector.log(), collector.projector()),
        audit: collector.log(),
        trigger: &trigger,
        sink: &sink,
        settings: TickerSettings {
            budget: Some(Budget {
                amount_usd: spend / Decimal::TWO,
                period,
            }),
            policy: BudgetPolicy::default(),
            period,
            scope_queues: vec![],
            max_scopes_read: shared::app::ticker::MAX_SCOPES_READ,
            budgets: Default::default(),
        },
        aws_budget: None,
        silent: SilentCheck {
            time_budget: std::time::Duration::from_millis(200),
            ..SilentCheck::after(3_600_000)
        },
        last_budgets: Default::default(),
    };
    let answer = function.invoke(now_ms).await.unwrap();
    assert_eq!(answer["reconciled"]["checked"], 0, "{answer}");
    assert_eq!(answer["reconciled"]["left_for_next_run"], 500, "{answer}");
    let requests = trigger.0.lock().unwrap();
    assert_eq!(requests.len(), 1, "the stop was triggered");
    let objects = sink.objects.lock().unwrap();
    assert!(
        objects
            .iter()
            .any(|o| o["ScopeKind"] == "budget" && o["BudgetUsedPercent"].as_f64() >= Some(200.0))
    );
    assert!(objects.iter().any(|o| o["JobsUnknownToBatch"] == 0));
}

/// An enforcer trigger that always fails (Lambda throttled, the function deleted).
struct FailingTrigger;

impl shared::ports::EnforcerTrigger for FailingTrigger {
    async fn trigger(&self, _: &EnforcerRequest) -> Result<(), ControlError> {
        Err(ControlError::Api {
            operation: "Invoke",
            message: "Rate exceeded (TooManyRequestsException)".into(),
            source: None,
        })
    }
}

/// GIVEN a budget at its stop level WHEN the enforcer cannot be triggered THEN the tick still
/// publishes every metric (the budget's percent used and seconds to exhaustion are the alarms'
/// inputs, the second path to the enforcer) and then fails with the trigger's error.
#[tokio::test]
async fn a_failed_trigger_still_publishes_every_metric() {
    let (config, _events, collector) = collected(99_002, 12).await;
    let period = BudgetPeriod::Month;
    let at = Millis(config.end_ms).ceil_seconds();
    let total = collector
        .projector()
        .scopes_totals(&[Scope::Total])
        .await
        .unwrap()[&Scope::Total]
        .spend_at(at, period, vec![]);
    assert!(total.period_spend_usd > Decimal::ZERO);
    let settings = TickerSettings {
        budget: Some(Budget {
            amount_usd: total.period_spend_usd / Decimal::TWO,
            period,
        }),
        policy: BudgetPolicy::default(),
        period,
        scope_queues: vec![],
        max_scopes_read: shared::app::ticker::MAX_SCOPES_READ,
        budgets: Default::default(),
    };
    let sink = EmfMemory::default();
    let error = ticker::tick(
        collector.projector(),
        collector.log(),
        &FailingTrigger,
        &sink,
        &settings,
        at * 1000,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("Rate exceeded"), "{error}");
    let objects = sink.objects.lock().unwrap();
    let budget = objects
        .iter()
        .find(|o| o["ScopeKind"] == "budget")
        .expect("the budget's document was published");
    assert!(budget["BudgetUsedPercent"].as_f64().unwrap() >= 200.0);
    assert!(objects.len() > 1, "the scopes' documents too");
}

/// GIVEN 250 jobs running under 250 job definitions, and one that ran last month under its own
/// WHEN the ticker runs THEN it publishes the total and the 199 costliest other scopes (the
/// cap of 200), counts the rest in `ScopesNotPublished`, and says nothing of last month's
/// idle scope.
#[tokio::test]
async fn a_tick_publishes_at_most_the_cap_of_scopes_and_counts_the_rest() {
    use batchguard_tests::{attempt, fact, job};
    use shared::core::facts::{FactBody, JobStatus};
    let projector = MemoryProjector::new(PriceTable::builtin(), BudgetPeriod::Month);
    let now_ms = batchguard_tests::T0 + 3_600_000;
    for index in 0..250 {
        let mut running = job(
            &format!("many-{index}"),
            JobStatus::Running,
            vec![attempt(
                0,
                None,
                Some(Millis(now_ms - 60_000 * (index + 1))),
                None,
            )],
        );
        running.job_definition = format!("def-{index:03}");
        shared::ports::Projector::project(
            &projector,
            &fact(&running.job_id.clone(), FactBody::Job(running)),
        )
        .await
        .unwrap();
    }
    let last_month = now_ms - 40 * 86_400_000;
    let mut old = job(
        "old",
        JobStatus::Succeeded,
        vec![attempt(
            0,
            None,
            Some(Millis(last_month)),
            Some(Millis(last_month + 600_000)),
        )],
    );
    old.job_definition = "def-last-month".into();
    shared::ports::Projector::project(&projector, &fact("old", FactBody::Job(old)))
        .await
        .unwrap();
    let sink = EmfMemory::default();
    let settings = TickerSettings {
        budget: None,
        policy: BudgetPolicy::default(),
        period: BudgetPeriod::Month,
        scope_queues: vec![],
        max_scopes_read: shared::app::ticker::MAX_SCOPES_READ,
        budgets: Default::default(),
    };
    ticker::tick(
        &projector,
        &MemoryEventLog::new(),
        &RecordingTrigger::default(),
        &sink,
        &settings,
        Millis(now_ms).ceil_seconds() * 1000,
    )
    .await
    .unwrap();
    let objects = sink.objects.lock().unwrap();
    let scopes: Vec<&serde_json::Value> = objects
        .iter()
        .filter(|o| o.get("ScopeKind").is_some() && o["ScopeKind"] != "budget")
        .collect();
    assert_eq!(scopes.len(), ticker::MAX_SCOPES_PUBLISHED);
    assert!(scopes.iter().any(|o| o["ScopeKind"] == "total"));
    assert!(!scopes.iter().any(|o| o["Scope"] == "def-last-month"));
    // 253 active (250 definitions, the queue, the compute environment, the total): 53 left out,
    // the cheapest (the jobs that started last).
    let over = objects
        .iter()
        .find(|o| o.get("ScopesNotPublished").is_some())
        .unwrap();
    assert_eq!(over["ScopesNotPublished"], 53);
    assert!(scopes.iter().any(|o| o["Scope"] == "def-249"));
    assert!(!scopes.iter().any(|o| o["Scope"] == "def-000"));
}

/// Projections whose active-scope index refuses every write (a throttled or failing
/// `PutItem`); everything else is the in-memory projector's.
struct IndexWritesFail<'a>(&'a MemoryProjector);

impl SpendReader for IndexWritesFail<'_> {
    async fn scopes(&self) -> Result<Vec<Scope>, shared::ports::StoreError> {
        self.0.scopes().await
    }

    async fn scopes_totals(
        &self,
        scopes: &[Scope],
    ) -> Result<
        std::collections::BTreeMap<Scope, shared::core::sums::ScopeTotals>,
        shared::ports::StoreError,
    > {
        self.0.scopes_totals(scopes).await
    }

    async fn recent_starts(
        &self,
        at: i64,
    ) -> Result<Vec<(Scope, i64, Decimal)>, shared::ports::StoreError> {
        self.0.recent_starts(at).await
    }

    async fn keep_active(&self, _: &[Scope], _: i64) -> Result<(), shared::ports::StoreError> {
        Err(shared::ports::StoreError::Backend {
            location: "the active-scope index".into(),
            message: "throttled".into(),
            source: None,
        })
    }
}

/// GIVEN running work and an active-scope index that cannot be written WHEN the ticker runs
/// THEN it still publishes the budget's figures and triggers the stop: keeping the index is
/// bookkeeping, and its failure is logged, never the reason a tick goes blind.
#[tokio::test]
async fn a_failing_active_scope_index_does_not_blind_the_tick() {
    let (config, events, collector) = collected(99_002, 12).await;
    let period = BudgetPeriod::Month;
    let local = batchguard_tests::replay_ledger(&events, period);
    let at = Millis(config.end_ms).ceil_seconds();
    let total = local.scope_spend(&Scope::Total, at);
    let settings = TickerSettings {
        budget: Some(Budget {
            amount_usd: total.period_spend_usd / Decimal::TWO,
            period,
        }),
        policy: BudgetPolicy::default(),
        period,
        scope_queues: vec![],
        max_scopes_read: shared::app::ticker::MAX_SCOPES_READ,
        budgets: Default::default(),
    };
    let reader = IndexWritesFail(collector.projector());
    assert!(reader.keep_active(&[Scope::Total], at).await.is_err());
    let (trigger, sink) = (RecordingTrigger::default(), EmfMemory::default());
    let report = ticker::tick(
        &reader,
        collector.log(),
        &trigger,
        &sink,
        &settings,
        at * 1000,
    )
    .await
    .unwrap();
    assert_eq!(report.budget_spend_usd, total.period_spend_usd);
    assert!(
        sink.objects
            .lock()
            .unwrap()
            .iter()
            .any(|o| o["BudgetUsedPercent"].is_number()),
        "the budget's figures are published"
    );
    assert!(
        !trigger.0.lock().unwrap().is_empty(),
        "the stop is triggered"
    );
}
