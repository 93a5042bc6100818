//! Projections in DynamoDB (ADR 0004) against the local AWS emulator: concurrent collectors,
//! every event delivered twice in random order, and the sharded scope sums must give exactly
//! the local replay's spend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use batchguard_tests::{counted_emulator_event_log, emulator_event_log};
use shared::adapters::dynamodb::DynamoProjector;
use shared::adapters::memory::RecordingTrigger;
use shared::analysis::synth::{self, WorkloadConfig};
use shared::app::collector::{Collected, Collector};
use shared::core::budget::BudgetPeriod;
use shared::core::facts::Millis;
use shared::core::prices::PriceTable;
use shared::core::scope::Scope;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_collectors_with_redeliveries_project_exactly_the_replay_spend() {
    // GIVEN an unseen workload, some jobs still running at the end, every event delivered twice
    // in random order to four concurrent collectors
    let base = WorkloadConfig::sample_day();
    let config = WorkloadConfig {
        seed: 4321,
        jobs: 20,
        end_ms: base.start_ms + 3 * 3_600_000,
        span_seconds: 3 * 3600,
        ..base
    };
    let workload = synth::generate(&config);
    let delivered = synth::shuffle_with_duplicates(&workload.events, 100, 4322);
    let period = BudgetPeriod::Month;
    let (log, requests) = counted_emulator_event_log("projection").await;
    let before = requests.count();
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), period).with_shards(4);
    let collector = Arc::new(Collector::new(log, projector.clone()));

    // WHEN they collect at once
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for (worker, chunk) in delivered.chunks(delivered.len().div_ceil(4)).enumerate() {
        let collector = Arc::clone(&collector);
        let chunk = chunk.to_vec();
        workers.spawn(async move {
            let mut stored = 0;
            let mut settled = BTreeSet::new();
            for (i, event) in chunk.iter().enumerate() {
                match collector
                    .collect(event.as_bytes(), &format!("worker-{worker}:{i}"))
                    .await
                    .unwrap()
                {
                    Collected::Stored {
                        settled: Some(job), ..
                    } => {
                        stored += 1;
                        settled.insert(job.cost.job_id.clone());
                    }
                    Collected::Stored { .. } => stored += 1,
                    Collected::Skipped { .. } => {}
                    Collected::Quarantined { reason } => {
                        panic!("generated events are valid: {reason}")
                    }
                }
            }
            (stored, settled)
        });
    }
    let mut stored = 0;
    let mut settled = BTreeSet::new();
    while let Some(result) = workers.join_next().await {
        let (count, jobs) = result.unwrap();
        stored += count;
        settled.extend(jobs);
    }
    let elapsed = started.elapsed();
    let jobs = workload
        .tasks
        .iter()
        .map(|t| &t.job_id)
        .collect::<BTreeSet<_>>()
        .len();
    eprintln!(
        "collected {} events ({stored} facts, {jobs} jobs) in {:.1} s: {:.0} events/s through parse + append + project on the emulator; {} DynamoDB requests, {:.1} per job lifecycle (every event delivered twice)",
        delivered.len(),
        elapsed.as_secs_f64(),
        delivered.len() as f64 / elapsed.as_secs_f64(),
        requests.count() - before,
        (requests.count() - before) as f64 / jobs as f64,
    );

    // THEN every scope's sums (shards added, plus the one-minute correction) equal the replay
    let local = batchguard_tests::replay_ledger(&workload.events, period);
    let at = Millis(config.end_ms).ceil_seconds();
    let expected = local.all_scope_spend(at);
    assert!(
        expected[&Scope::Total].running_tasks > 0,
        "the workload should end with tasks running"
    );
    // Some of them with a timeout (committed spend above the spend) and some without.
    assert!(
        expected[&Scope::Total].committed_usd > expected[&Scope::Total].period_spend_usd,
        "some running job should have a timeout"
    );
    assert!(expected[&Scope::Total].open_ended_tasks > 0);
    batchguard_tests::assert_projected_spend_is(&projector, &expected, at, period).await;
    // Every job that ended was reported settled (its cost and timings go out as metrics), and
    // no other.
    let ended: BTreeSet<String> = local
        .walk(at)
        .jobs
        .into_iter()
        .filter(|j| j.status.is_some_and(|s| s.is_terminal()) && !j.running && !j.array_parent)
        .map(|j| j.job_id)
        .collect();
    assert!(!ended.is_empty());
    assert_eq!(settled, ended);
    let registered: BTreeSet<Scope> = projector.scopes().await.unwrap().into_iter().collect();
    for scope in expected.keys() {
        assert!(
            registered.contains(scope),
            "{scope:?} is not in the registry"
        );
    }
    for scope in registered.iter().filter(|s| !expected.contains_key(*s)) {
        assert_eq!(
            projector.scope_totals(scope).await.unwrap().units,
            0,
            "{scope:?} should hold nothing"
        );
    }
}

#[tokio::test]
async fn a_task_seen_before_its_job_moves_to_the_jobs_queue_when_the_job_arrives() {
    let workload = synth::generate(&WorkloadConfig {
        jobs: 1,
        array_percent: 0,
        ..WorkloadConfig::sample_day()
    });
    let (tasks, jobs): (Vec<&String>, Vec<&String>) = workload
        .events
        .iter()
        .partition(|e| e.contains("\"ECS Task State Change\""));
    let period = BudgetPeriod::Month;
    let log = emulator_event_log("orphan").await;
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), period);
    let collector = Collector::new(log, projector.clone());
    for event in &tasks {
        collector.collect(event.as_bytes(), "test").await.unwrap();
    }
    let at = Millis(workload.tasks[0].stopped_ms.unwrap()).ceil_seconds() + 10;
    let unattributed = Scope::Queue("(unattributed)".into());
    let orphan_spend = projector
        .scope_totals(&unattributed)
        .await
        .unwrap()
        .spend_at(at, period, [])
        .spend_usd;
    assert!(
        orphan_spend > rust_decimal::Decimal::ZERO,
        "the task is billed before its job is known"
    );

    for event in &jobs {
        collector.collect(event.as_bytes(), "test").await.unwrap();
    }
    let moved = projector.scope_totals(&unattributed).await.unwrap();
    assert_eq!(moved.units, 0);
    assert_eq!(
        moved.spend_at(at, period, []).spend_usd,
        rust_decimal::Decimal::ZERO
    );
    let queue = Scope::Queue(workload.tasks[0].queue.as_str().into());
    let total = projector
        .scope_totals(&Scope::Total)
        .await
        .unwrap()
        .spend_at(at, period, [])
        .spend_usd;
    assert_eq!(
        projector
            .scope_totals(&queue)
            .await
            .unwrap()
            .spend_at(at, period, [])
            .spend_usd,
        total
    );
    assert_eq!(total, orphan_spend, "moved, not counted twice");
}

#[tokio::test]
async fn an_unreadable_event_is_quarantined_and_the_next_one_still_collected() {
    let log = emulator_event_log("collector-bad").await;
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), BudgetPeriod::Month);
    let collector = Collector::new(log.clone(), projector);
    let bad = br#"{"id":"x","detail-type":"Batch Job State Change","source":"aws.batch","detail":{"status":"RUNNING"}}"#;
    let outcome = collector.collect(bad, "request-1").await.unwrap();
    assert!(
        matches!(outcome, Collected::Quarantined { ref reason } if reason.contains("jobId")),
        "{outcome:?}"
    );
    let workload = synth::generate(&WorkloadConfig {
        jobs: 1,
        ..WorkloadConfig::sample_day()
    });
    let good = collector
        .collect(workload.events[0].as_bytes(), "request-2")
        .await
        .unwrap();
    assert!(
        matches!(good, Collected::Stored { new: true, .. }),
        "{good:?}"
    );
    let quarantined = log.quarantined().await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].origin, "request-1");
}

#[tokio::test]
async fn the_collector_handler_counts_each_state_change_once_at_the_events_own_time() {
    use shared::adapters::emf::EmfMemory;
    use shared::handlers::collector::handle;
    let log = emulator_event_log("handler").await;
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), BudgetPeriod::Month);
    let collector = Collector::new(log, projector);
    let sink = EmfMemory::default();
    let event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/events/rtm_batch-event-RUNNING.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let broken = serde_json::json!({"id": "b", "detail-type": "Batch Job State Change", "source": "aws.batch", "detail": {"status": "RUNNING"}});
    // An hour after the event (CloudWatch takes data points up to two weeks old; older ones
    // are stamped with the invocation's clock: `metrics::acceptable_timestamp`).
    const NOW_MS: i64 = 1_760_707_431_000 + 3_600_000;

    let first = handle(
        &collector,
        &sink,
        serde_json::json!([event.clone(), broken]),
        "req-1",
        NOW_MS,
    )
    .await
    .unwrap();
    let again = handle(&collector, &sink, event, "req-2", NOW_MS)
        .await
        .unwrap();

    assert_eq!(
        (first.stored, first.quarantined, again.duplicates),
        (1, 1, 1)
    );
    let objects = sink.objects.lock().unwrap();
    let transitions: Vec<_> = objects
        .iter()
        .filter(|o| o.get("JobStateTransitions").is_some())
        .collect();
    assert_eq!(
        transitions.len(),
        1,
        "a redelivery is not a second transition"
    );
    let transition = transitions[0];
    // One log line, published under three dimension sets: queue, job definition, and the
    // compute environment the task's cluster names.
    assert_eq!(
        transition["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([
            ["JobQueue", "Status"],
            ["JobDefinition", "Status"],
            ["ComputeEnvironment", "Status"]
        ])
    );
    assert_eq!(transition["JobQueue"], "batch-job-queue-dev");
    assert_eq!(transition["JobDefinition"], "cpu-stress-test-dev");
    assert_eq!(transition["ComputeEnvironment"], "batch-compute-env-dev");
    // The event's envelope time, 2025-10-17T13:23:51Z, not the invocation's clock.
    assert_eq!(transition["_aws"]["Timestamp"], 1_760_707_431_000_i64);
    assert_eq!(transition["Status"], "RUNNING");
    assert_eq!(
        objects
            .iter()
            .filter(|o| o.get("QuarantinedEvents").is_some())
            .count(),
        1
    );
}

#[tokio::test]
async fn the_ticker_reports_every_scope_and_triggers_a_stop_before_the_budget_runs_out() {
    use rust_decimal::Decimal;
    use shared::adapters::emf::EmfMemory;
    use shared::app::ticker::{TickerSettings, tick};
    use shared::core::budget::{Budget, BudgetStatus};
    use shared::core::enforcement::EnforcerRequest;
    use shared::core::policy::{BudgetPolicy, Level, decide};

    // GIVEN a workload that ends with tasks running, collected into DynamoDB
    let (config, workload) = batchguard_tests::workload_ending_with_running_tasks(99_001, 12);
    let period = BudgetPeriod::Month;
    let log = emulator_event_log("ticker").await;
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), period);
    let collector = Collector::new(log.clone(), projector.clone());
    for event in &workload.events {
        collector.collect(event.as_bytes(), "test").await.unwrap();
    }
    let local = batchguard_tests::replay_ledger(&workload.events, period);
    let at = Millis(config.end_ms).ceil_seconds();
    let total = local.scope_spend(&Scope::Total, at);
    assert!(total.burn_rate_usd_per_hour > Decimal::ZERO);

    // WHEN the ticker runs with a budget that the burn rate exhausts within 45 s, though only
    // ~99 % of it is spent
    let seconds_left = Decimal::from(45);
    let budget = Budget {
        amount_usd: total.period_spend_usd
            + total.burn_rate_usd_per_hour * seconds_left / Decimal::from(3600),
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
    let trigger = RecordingTrigger::default();
    let sink = EmfMemory::default();
    let report = tick(&projector, &log, &trigger, &sink, &settings, at * 1000)
        .await
        .unwrap();

    // THEN the budget figures are the replay's, and the enforcer is told to stop now
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
    assert_eq!(expected.level, Level::Stop);
    assert_eq!(report.decision.as_ref().map(|d| d.level), Some(Level::Stop));
    assert!(matches!(
        trigger.0.lock().unwrap().as_slice(),
        [EnforcerRequest::Enforce {
            level: Level::Stop,
            ..
        }]
    ));
    let objects = sink.objects.lock().unwrap();
    assert_eq!(
        objects.len(),
        local.all_scope_spend(at).len() + 2,
        "one document per scope, plus the budget's and the count of scopes over the cap"
    );
    assert!(objects.iter().any(|o| o["ScopesNotPublished"] == 0));
    let budget_doc = objects.iter().find(|o| o["ScopeKind"] == "budget").unwrap();
    assert!(budget_doc["SecondsToExhaustion"].as_f64().unwrap() <= 45.0);
    // Every scope's figure (shards read 100 keys a call, across scopes) is the replay's.
    let scopes = local.all_scope_spend(at);
    let keys = scopes.len() * shared::adapters::dynamodb::DEFAULT_SHARDS as usize;
    assert!(
        keys > shared::adapters::dynamodb::BATCH_GET_LIMIT,
        "{keys} keys: one batch only"
    );
    for (scope, spend) in scopes {
        let document = objects
            .iter()
            .find(|o| {
                o["ScopeKind"] == scope.kind()
                    && o["Scope"] == shared::app::ticker::dimension_value(&scope)
            })
            .unwrap_or_else(|| panic!("no document for {scope:?}"));
        assert_eq!(
            document["spend_usd_exact"],
            spend.spend_usd.to_string(),
            "{scope:?}"
        );
    }
}

#[tokio::test]
async fn the_reconciler_closes_a_job_whose_terminal_event_was_lost() {
    use batchguard_tests::{emulator_config, emulator_queue};
    use shared::adapters::batch::AwsBatch;
    use shared::app::silent_jobs;

    // GIVEN a job Batch has finished (the emulator runs jobs at once) …
    let config = emulator_config().await;
    let batch = aws_sdk_batch::Client::new(&config);
    let queue = batchguard_tests::unique_prefix("recon");
    emulator_queue(&batch, &queue).await;
    let definition =
        batchguard_tests::emulator_job_definition(&batch, &format!("{queue}-def")).await;
    let submitted = batch
        .submit_job()
        .job_name("lost-terminal-event")
        .job_queue(&queue)
        .job_definition(&definition)
        .send()
        .await
        .unwrap();
    let job_id = submitted.job_id().unwrap().to_owned();

    // … but whose last event batchguard saw says RUNNING on Fargate since two hours ago
    let log = emulator_event_log("reconciler").await;
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), BudgetPeriod::Month);
    let collector = Collector::new(log, projector.clone());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let running = serde_json::json!({
        "id": "last-seen", "detail-type": "Batch Job State Change", "source": "aws.batch", "region": "us-east-1",
        "detail": {
            "jobId": job_id, "jobQueue": queue, "jobDefinition": "def", "status": "RUNNING",
            "platformCapabilities": ["FARGATE"], "startedAt": now_ms - 7_200_000, "attempts": [],
            "container": {"taskArn": "arn:aws:ecs:us-east-1:1:task/AWSBatch-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/t1",
                          "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}
        }
    });
    collector
        .collect(running.to_string().as_bytes(), "test")
        .await
        .unwrap();
    // … and a job the emulator's Batch has never heard of, running as long
    let mut forgotten = running.clone();
    forgotten["id"] = "forgotten-last-seen".into();
    forgotten["detail"]["jobId"] = "forgotten-0000".into();
    forgotten["detail"]["container"]["taskArn"] =
        "arn:aws:ecs:us-east-1:1:task/AWSBatch-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/t2".into();
    collector
        .collect(forgotten.to_string().as_bytes(), "test")
        .await
        .unwrap();
    let before = projector.scope_totals(&Scope::Total).await.unwrap();
    assert_eq!(
        before
            .running_by_period
            .values()
            .map(|b| b.units)
            .sum::<i64>(),
        2
    );

    // WHEN the reconciler runs
    let report = silent_jobs::check(
        &AwsBatch::from_config(&config),
        &projector,
        &collector,
        &silent_jobs::SilentCheck::after(60_000),
        now_ms,
    )
    .await
    .unwrap();

    // THEN it asked Batch, recorded the job's real state, and the job stops accruing; the job
    // Batch does not know is closed at the last instant it was heard of
    assert_eq!(report.checked, 2);
    assert_eq!(report.updated, 1, "{report:?}");
    assert_eq!(report.unknown_to_batch, vec!["forgotten-0000".to_owned()]);
    let after = projector.scope_totals(&Scope::Total).await.unwrap();
    assert_eq!(
        after
            .running_by_period
            .values()
            .map(|b| b.units)
            .sum::<i64>(),
        0,
        "{after:?}"
    );
    let again = silent_jobs::check(
        &AwsBatch::from_config(&config),
        &projector,
        &collector,
        &silent_jobs::SilentCheck::after(60_000),
        now_ms + 60_000,
    )
    .await
    .unwrap();
    assert_eq!(again.checked, 0, "nothing left silent");
}

#[tokio::test]
async fn ec2_instances_and_shares_project_exactly_the_ledger_in_any_order() {
    // GIVEN the mixed Fargate / EC2 workload, its facts shuffled so jobs often arrive before
    // the instances they ran on
    let workload = batchguard_tests::mixed_ec2_workload();
    let prices = PriceTable::builtin_with_overrides(workload.prices).unwrap();
    let period = BudgetPeriod::Month;
    let mut expected_ledger = shared::core::ledger::Ledger::new(prices.clone(), period);
    for fact in &workload.facts {
        expected_ledger.apply(fact);
    }
    let expected = expected_ledger.all_scope_spend(workload.at);
    for seed in [1_u64, 2] {
        let log = emulator_event_log(&format!("ec2-{seed}")).await;
        let projector = DynamoProjector::new(log.clone(), prices.clone(), period);
        let mut facts = workload.facts.clone();
        fastrand::Rng::with_seed(seed).shuffle(&mut facts);
        // WHEN each is appended and projected
        for fact in &facts {
            use shared::ports::{EventLog, Record};
            log.append(&[Record::new(fact.clone())]).await.unwrap();
            projector.project(fact).await.unwrap();
        }
        // THEN every scope — instances in the total and compute environments, shares in the
        // queues — equals the ledger's
        batchguard_tests::assert_projected_spend_is(&projector, &expected, workload.at, period)
            .await;
    }
}

/// GIVEN a job running for two hours in the projections on the emulator WHEN AWS Batch says it
/// is still running (`heard_from`) THEN it leaves the silent jobs until a whole window has
/// passed again; a job no longer open is left alone.
#[tokio::test]
async fn a_job_batch_answered_for_is_not_silent_again_for_a_window() {
    use shared::ports::SilentJobs;
    let log = emulator_event_log("heard-from").await;
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), BudgetPeriod::Month);
    let collector = Collector::new(log, projector.clone());
    let now_ms = batchguard_tests::T0 + 10 * 3_600_000;
    let running = serde_json::json!({
        "id": "heard-running", "detail-type": "Batch Job State Change", "source": "aws.batch", "region": "us-east-1",
        "detail": {
            "jobId": "heard-1", "jobQueue": "q", "jobDefinition": "def", "status": "RUNNING",
            "platformCapabilities": ["FARGATE"], "startedAt": now_ms - 7_200_000, "attempts": [],
            "container": {"resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}
        }
    });
    collector
        .collect(running.to_string().as_bytes(), "test")
        .await
        .unwrap();
    let window = 3_600_000;
    let silent = projector.silent_jobs(now_ms - window, 500).await.unwrap();
    assert_eq!(
        silent,
        vec![shared::ports::SilentJob {
            job_id: "heard-1".to_owned(),
            heard_ms: now_ms - 7_200_000,
        }]
    );
    projector
        .heard_from(
            &["heard-1".to_owned(), "never-projected".to_owned()],
            now_ms,
        )
        .await
        .unwrap();
    assert!(
        projector
            .silent_jobs(now_ms + 60_000 - window, 500)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        projector
            .silent_jobs(now_ms + window + 1 - window, 500)
            .await
            .unwrap(),
        vec![shared::ports::SilentJob {
            job_id: "heard-1".to_owned(),
            heard_ms: now_ms,
        }]
    );
}
