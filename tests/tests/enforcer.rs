//! The enforcer: its safety rules with an in-memory Batch (which can hold jobs in every
//! state, as the emulator cannot without Docker), then its effect on real queues in the
//! emulator through `aws-sdk-batch`, with notifications through `aws-sdk-sns`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batchguard_tests::{
    emulator_config, emulator_event_log, emulator_queue, queue_state, unique_prefix,
};
use proptest::prelude::*;
use shared::adapters::batch::AwsBatch;
use shared::adapters::memory::MemoryEventLog;
use shared::adapters::memory::{Fault, MemoryBatch, Outbox};
use shared::adapters::sns::SnsNotifier;
use shared::app::enforcer::{Enforcer, EnforcerSettings};
use shared::core::budget::BudgetPeriod;
use shared::core::facts::{EnforcementAction, JobStatus};
use shared::core::policy::Level;
use shared::ports::AuditTrail;

const AT_MS: i64 = 1_795_413_600_000; // 2026-11-23T06:00:00Z

fn settings(queues: &[&str], dry_run: bool) -> EnforcerSettings {
    EnforcerSettings {
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        dry_run,
        period: BudgetPeriod::Month,
    }
}

fn workload() -> MemoryBatch {
    MemoryBatch::with(
        &[("etl", true), ("other-team", true)],
        &[
            ("queued-1", "etl", JobStatus::Runnable, false),
            ("queued-protected", "etl", JobStatus::Pending, true),
            ("running-1", "etl", JobStatus::Running, false),
            ("starting-1", "etl", JobStatus::Starting, false),
            ("running-protected", "etl", JobStatus::Running, true),
            ("elsewhere", "other-team", JobStatus::Running, false),
        ],
    )
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn freeze_disables_the_scoped_queue_and_cancels_only_queued_unprotected_jobs() {
    let batch = workload();
    let outbox = Outbox::default();
    let log = MemoryEventLog::new();
    let enforcer = Enforcer::new(&batch, &log, &outbox, settings(&["etl"], false));
    let report = block_on(enforcer.enforce(Level::Freeze, "90% used", AT_MS)).unwrap();
    assert_eq!(
        batch.calls(),
        vec!["UpdateJobQueue etl false", "CancelJob queued-1"]
    );
    assert_eq!(report.protected_jobs, vec!["queued-protected"]);
    assert_eq!(outbox.0.lock().unwrap().as_slice(), ["batchguard: freeze"]);
}

#[test]
fn stop_terminates_started_jobs_in_scope_and_leaves_protected_and_other_queues_alone() {
    let batch = workload();
    let outbox = Outbox::default();
    let log = MemoryEventLog::new();
    let enforcer = Enforcer::new(&batch, &log, &outbox, settings(&["etl"], false));
    block_on(enforcer.enforce(Level::Stop, "budget exhausted", AT_MS)).unwrap();
    let calls = batch.calls();
    assert!(calls.contains(&"TerminateJob running-1".to_owned()));
    assert!(calls.contains(&"TerminateJob starting-1".to_owned()));
    for untouched in ["running-protected", "queued-protected", "elsewhere"] {
        assert!(
            !calls.iter().any(|c| c.ends_with(untouched)),
            "{untouched} was touched: {calls:?}"
        );
    }
    assert!(!calls.iter().any(|c| c.contains("other-team")));
}

/// A notifier whose every call fails (an SNS outage, a deleted topic).
struct BrokenNotifier;

impl shared::ports::Notifier for BrokenNotifier {
    async fn notify(&self, _: &str, _: &str) -> Result<(), shared::ports::ControlError> {
        Err(shared::ports::ControlError::Api {
            operation: "Publish",
            message: "NotFound: Topic does not exist".into(),
            source: None,
        })
    }
}

#[test]
fn a_failed_notice_is_reported_and_does_not_hold_up_the_stop() {
    let batch = workload();
    let log = MemoryEventLog::new();
    let enforcer = Enforcer::new(&batch, &log, &BrokenNotifier, settings(&["etl"], false));
    let report = block_on(enforcer.enforce(Level::Stop, "budget exhausted", AT_MS)).unwrap();
    // The stop went through …
    let calls = batch.calls();
    assert!(
        calls.contains(&"UpdateJobQueue etl false".to_owned()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"TerminateJob running-1".to_owned()),
        "{calls:?}"
    );
    // … the notice is reported as failed, and not recorded, so a later run sends it.
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(report.failures[0].action, "Notified");
    assert!(report.failures[0].error.contains("Topic does not exist"));
    let outbox = Outbox::default();
    let retry = Enforcer::new(&batch, &log, &outbox, settings(&["etl"], false));
    let again = block_on(retry.enforce(Level::Stop, "budget exhausted", AT_MS + 60_000)).unwrap();
    assert!(again.failures.is_empty());
    assert_eq!(outbox.0.lock().unwrap().as_slice(), ["batchguard: stop"]);
}

#[test]
fn a_second_invocation_changes_nothing() {
    let batch = workload();
    let outbox = Outbox::default();
    let log = MemoryEventLog::new();
    let enforcer = Enforcer::new(&batch, &log, &outbox, settings(&["etl"], false));
    block_on(enforcer.enforce(Level::Stop, "first", AT_MS)).unwrap();
    let calls = batch.calls().len();
    let audit = log.len();
    let again = block_on(enforcer.enforce(Level::Stop, "again", AT_MS + 60_000)).unwrap();
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    assert_eq!(batch.calls().len(), calls);
    assert_eq!(log.len(), audit);
    assert_eq!(
        outbox.0.lock().unwrap().len(),
        1,
        "notified once per level per period"
    );
}

#[test]
fn a_dry_run_records_and_notifies_but_makes_no_mutating_call() {
    let batch = workload();
    let outbox = Outbox::default();
    let log = MemoryEventLog::new();
    let enforcer = Enforcer::new(&batch, &log, &outbox, settings(&[], true));
    let report = block_on(enforcer.enforce(Level::Stop, "dry", AT_MS)).unwrap();
    assert!(batch.calls().is_empty(), "{:?}", batch.calls());
    // Nothing changed on Batch; the notice was sent (marked dry run), and says so.
    for action in &report.actions {
        let notice = matches!(action.action, EnforcementAction::Notified { .. });
        assert_eq!(action.carried_out, notice, "{action:?}");
    }
    assert!(report.actions.iter().any(|a| matches!(a.action, EnforcementAction::JobTerminated { ref job_id, .. } if job_id == "elsewhere")));
    let audit = block_on(log.audit_entries(BudgetPeriod::Month.bounds(AT_MS / 1000).0)).unwrap();
    assert_eq!(audit.len(), report.actions.len());
    assert!(audit.iter().all(|entry| entry.dry_run));
    assert_eq!(
        outbox.0.lock().unwrap().as_slice(),
        ["batchguard: stop (dry run)"]
    );
}

#[test]
fn restore_re_enables_exactly_what_batchguard_disabled() {
    let batch = MemoryBatch::with(&[("etl", true), ("disabled-by-a-person", false)], &[]);
    let outbox = Outbox::default();
    let log = MemoryEventLog::new();
    let enforcer = Enforcer::new(&batch, &log, &outbox, settings(&[], false));
    block_on(enforcer.enforce(Level::Freeze, "90%", AT_MS)).unwrap();
    assert_eq!(batch.calls(), vec!["UpdateJobQueue etl false"]);
    // The next budget period (December), on request or by the ticker.
    let report = block_on(enforcer.restore("new period", AT_MS + 9 * 86_400_000)).unwrap();
    assert_eq!(
        batch.calls(),
        vec!["UpdateJobQueue etl false", "UpdateJobQueue etl true"]
    );
    assert_eq!(report.actions.len(), 1);
    assert!(
        !batch.queues.lock().unwrap()["disabled-by-a-person"],
        "a queue batchguard did not disable stays disabled"
    );
    let again = block_on(enforcer.restore("again", AT_MS + 9 * 86_400_000 + 1_000)).unwrap();
    assert!(again.actions.is_empty());
}

/// GIVEN a stop that disables the queue and then hangs on a `TerminateJob` until the function
/// is killed at its timeout WHEN `restore` runs in the next period THEN it re-enables the
/// queue: each action was recorded as it was done, not at the end of the run.
#[test]
fn an_enforcer_killed_after_disabling_a_queue_leaves_what_restore_needs() {
    let batch = workload();
    batch.inject("TerminateJob running-1", Fault::Hangs);
    let (outbox, log) = (Outbox::default(), MemoryEventLog::new());
    let enforcer = Enforcer::new(&batch, &log, &outbox, settings(&["etl"], false));
    let killed = block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_millis(200),
            enforcer.enforce(Level::Stop, "budget exhausted", AT_MS),
        )
        .await
    });
    assert!(killed.is_err(), "the run was cut off");
    assert!(
        batch
            .calls()
            .contains(&"UpdateJobQueue etl false".to_owned())
    );
    batch.heal();
    let report = block_on(enforcer.restore("new period", AT_MS + 9 * 86_400_000)).unwrap();
    assert!(
        batch
            .calls()
            .contains(&"UpdateJobQueue etl true".to_owned()),
        "{:?} {report:?}",
        batch.calls()
    );
}

/// One failed call (a job that ended meanwhile, throttling beyond the retries) is reported and
/// not recorded; the run goes on, and a later run does what the failed call did not.
#[test]
fn a_failed_job_call_is_reported_and_the_others_still_stop() {
    let batch = workload();
    batch.inject("TerminateJob running-1", Fault::Fails);
    let (outbox, log) = (Outbox::default(), MemoryEventLog::new());
    let enforcer = Enforcer::new(&batch, &log, &outbox, settings(&["etl"], false));
    let report = block_on(enforcer.enforce(Level::Stop, "budget exhausted", AT_MS)).unwrap();
    assert!(
        batch
            .calls()
            .contains(&"TerminateJob starting-1".to_owned())
    );
    assert!(batch.calls().contains(&"CancelJob queued-1".to_owned()));
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(
        (
            report.failures[0].action,
            report.failures[0].target.as_str()
        ),
        ("JobTerminated", "running-1")
    );
    batch.heal();
    let again =
        block_on(enforcer.enforce(Level::Stop, "budget exhausted", AT_MS + 60_000)).unwrap();
    assert!(again.failures.is_empty(), "{again:?}");
    assert!(batch.calls().contains(&"TerminateJob running-1".to_owned()));
    assert_eq!(
        batch
            .calls()
            .iter()
            .filter(|c| c.starts_with("TerminateJob"))
            .count(),
        2,
        "each job terminated once"
    );
}

/// A job whose tags cannot be read might be protected: it is left alone and reported.
#[test]
fn a_job_whose_tags_cannot_be_read_is_not_touched() {
    let batch = workload();
    for job in batch.jobs.lock().unwrap().iter_mut() {
        if job.job_id == "running-1" {
            job.tags = None;
        }
    }
    let (outbox, log) = (Outbox::default(), MemoryEventLog::new());
    let enforcer = Enforcer::new(&batch, &log, &outbox, settings(&["etl"], false));
    let report = block_on(enforcer.enforce(Level::Stop, "budget exhausted", AT_MS)).unwrap();
    assert_eq!(report.unverified_jobs, vec!["running-1"]);
    assert!(!batch.calls().iter().any(|c| c.ends_with("running-1")));
    assert!(
        batch
            .calls()
            .contains(&"TerminateJob starting-1".to_owned())
    );
}

/// A restore goes on past a queue it cannot re-enable, and records queues someone else
/// re-enabled or deleted as released, so the ticker does not ask for them again every tick.
#[test]
fn restore_releases_queues_others_changed_and_goes_on_past_a_failure() {
    let queues = ["a-reenabled", "b-deleted", "c-refused", "d-plain"];
    let batch = MemoryBatch::with(&queues.map(|q| (q, true)), &[]);
    let (outbox, log) = (Outbox::default(), MemoryEventLog::new());
    let enforcer = Enforcer::new(&batch, &log, &outbox, settings(&[], false));
    block_on(enforcer.enforce(Level::Freeze, "90%", AT_MS)).unwrap();
    {
        let mut states = batch.queues.lock().unwrap();
        states.insert("a-reenabled".into(), true);
        states.remove("b-deleted");
    }
    batch.inject("UpdateJobQueue c-refused true", Fault::Fails);
    let next_period = AT_MS + 9 * 86_400_000;
    let report = block_on(enforcer.restore("new period", next_period)).unwrap();
    assert!(
        batch
            .calls()
            .contains(&"UpdateJobQueue d-plain true".to_owned())
    );
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(report.failures[0].target, "c-refused");
    let released: Vec<&str> = report
        .actions
        .iter()
        .filter_map(|a| match &a.action {
            EnforcementAction::QueueReleased { queue, .. } => Some(queue.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(released, vec!["a-reenabled", "b-deleted"]);
    // Only the refused queue is still batchguard's to restore.
    let period = BudgetPeriod::Month.bounds(next_period / 1000).0;
    let mut trail =
        block_on(log.audit_entries(BudgetPeriod::Month.bounds(AT_MS / 1000).0)).unwrap();
    trail.extend(block_on(log.audit_entries(period)).unwrap());
    assert_eq!(
        shared::core::enforcement::queues_disabled_by_us(&trail),
        ["c-refused".to_owned()].into()
    );
    // Healed, the next restore re-enables it and releases nothing again.
    batch.heal();
    let again = block_on(enforcer.restore("retry", next_period + 60_000)).unwrap();
    assert_eq!(again.actions.len(), 1, "{again:?}");
    assert!(
        batch
            .calls()
            .contains(&"UpdateJobQueue c-refused true".to_owned())
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Safety, for any mix of jobs, scope, level and dry-run: nothing is terminated below stop,
    /// protected and out-of-scope jobs are never touched, a dry run makes no mutating call.
    #[test]
    fn enforcement_never_oversteps(
        jobs in prop::collection::vec((0_usize..3, 0_usize..5, any::<bool>()), 0..25),
        level in prop::sample::select(vec![Level::Ok, Level::Notify, Level::Freeze, Level::Stop]),
        scoped in any::<bool>(),
        dry_run in any::<bool>(),
    ) {
        let statuses = [JobStatus::Submitted, JobStatus::Runnable, JobStatus::Starting, JobStatus::Running, JobStatus::Succeeded];
        let queues = ["a", "b", "c"];
        let spec: Vec<(String, &str, JobStatus, bool)> = jobs
            .iter()
            .enumerate()
            .map(|(i, (q, s, p))| (format!("job-{i}"), queues[*q], statuses[*s], *p))
            .collect();
        let borrowed: Vec<(&str, &str, JobStatus, bool)> = spec.iter().map(|(id, q, s, p)| (id.as_str(), *q, *s, *p)).collect();
        let batch = MemoryBatch::with(&[("a", true), ("b", true), ("c", false)], &borrowed);
        let outbox = Outbox::default();
        let log = MemoryEventLog::new();
        let scope: &[&str] = if scoped { &["a"] } else { &[] };
        let enforcer = Enforcer::new(&batch, &log, &outbox, settings(scope, dry_run));
        block_on(enforcer.enforce(level, "test", AT_MS)).unwrap();
        let calls = batch.calls();
        if dry_run || level < Level::Freeze {
            prop_assert!(calls.is_empty(), "{:?}", calls);
        }
        for (id, queue, status, protected) in &spec {
            let touched = calls.iter().any(|c| c.ends_with(&format!(" {id}")));
            if *protected || (scoped && *queue != "a") {
                prop_assert!(!touched, "{} touched: {:?}", id, calls);
            }
            if calls.contains(&format!("TerminateJob {id}")) {
                prop_assert!(level == Level::Stop && matches!(status, JobStatus::Starting | JobStatus::Running));
            }
            if calls.contains(&format!("CancelJob {id}")) {
                prop_assert!(level >= Level::Freeze && matches!(status, JobStatus::Submitted | JobStatus::Pending | JobStatus::Runnable));
            }
        }
    }
}

#[tokio::test]
async fn on_the_emulator_freeze_disables_only_the_scoped_queue_and_restore_undoes_it() {
    let config = emulator_config().await;
    let client = aws_sdk_batch::Client::new(&config);
    let prefix = unique_prefix("enf");
    let (mine, theirs) = (format!("{prefix}-mine"), format!("{prefix}-theirs"));
    emulator_queue(&client, &mine).await;
    emulator_queue(&client, &theirs).await;
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns
        .create_topic()
        .name(format!("{prefix}-alerts"))
        .send()
        .await
        .unwrap();
    let notifier = SnsNotifier::new(sns, topic.topic_arn().unwrap().to_owned());
    let log = emulator_event_log("enforcer").await;

    // A dry run first: recorded, nothing disabled.
    let dry = Enforcer::new(
        AwsBatch::from_config(&config),
        log.clone(),
        notifier.clone(),
        EnforcerSettings {
            queues: vec![mine.clone()],
            dry_run: true,
            period: BudgetPeriod::Month,
        },
    );
    let report = dry.enforce(Level::Freeze, "dry run", AT_MS).await.unwrap();
    assert!(
        report
            .actions
            .iter()
            .any(|a| matches!(a.action, EnforcementAction::QueueDisabled { .. }) && !a.carried_out)
    );
    assert_eq!(queue_state(&client, &mine).await, "ENABLED");

    // Then for real.
    let live = Enforcer::new(
        AwsBatch::from_config(&config),
        log.clone(),
        notifier,
        EnforcerSettings {
            queues: vec![mine.clone()],
            dry_run: false,
            period: BudgetPeriod::Month,
        },
    );
    live.enforce(Level::Freeze, "90% used", AT_MS)
        .await
        .unwrap();
    assert_eq!(queue_state(&client, &mine).await, "DISABLED");
    assert_eq!(
        queue_state(&client, &theirs).await,
        "ENABLED",
        "out of scope"
    );
    let again = live
        .enforce(Level::Freeze, "90% used", AT_MS + 60_000)
        .await
        .unwrap();
    assert!(
        again.actions.is_empty(),
        "a second invocation changes nothing: {:?}",
        again.actions
    );

    let period_start = BudgetPeriod::Month.bounds(AT_MS / 1000).0;
    let audit = log.audit_entries(period_start).await.unwrap();
    assert!(audit.iter().any(|e| !e.dry_run
        && e.action
            == EnforcementAction::QueueDisabled {
                queue: mine.clone(),
                budget: None,
            }));

    let restored = live.restore("on request", AT_MS + 120_000).await.unwrap();
    assert_eq!(restored.actions.len(), 1);
    assert_eq!(queue_state(&client, &mine).await, "ENABLED");
}

fn alarm_fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/fixtures/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn an_alarm_in_alarm_state_enforces_the_level_its_description_names() {
    use shared::core::enforcement::EnforcerRequest;
    use shared::handlers::enforcer::read_request;
    let mut alarm =
        alarm_fixture("cloudwatch_alarm_lambda_action_metric_aws_lambda_events_fixture.json");
    alarm["alarmData"]["configuration"]["description"] =
        serde_json::json!("Budget used ≥ 100 %. batchguard:level=stop");
    let request = read_request(alarm).unwrap();
    assert!(
        matches!(request, Some(EnforcerRequest::Enforce { level: Level::Stop, ref reason }) if reason.contains("lambda-demo-metric-alarm")),
        "{request:?}"
    );
}

#[test]
fn an_alarm_without_a_level_is_refused_and_a_recovered_alarm_does_nothing() {
    use shared::handlers::enforcer::read_request;
    let alarm =
        alarm_fixture("cloudwatch_alarm_lambda_action_metric_aws_lambda_events_fixture.json");
    let error = read_request(alarm.clone()).unwrap_err();
    assert!(error.to_string().contains("batchguard:level="), "{error}");
    assert_eq!(error.error_type(), "NonRetryable");
    let mut recovered = alarm;
    recovered["alarmData"]["state"]["value"] = serde_json::json!("OK");
    assert_eq!(read_request(recovered).unwrap(), None);
    // The composite alarm fixture is in ALARM with no description: refused, naming the marker.
    let composite =
        alarm_fixture("cloudwatch_alarm_lambda_action_composite_aws_lambda_events_fixture.json");
    assert!(
        read_request(composite)
            .unwrap_err()
            .to_string()
            .contains("names no level")
    );
}

#[test]
fn manual_requests_parse_and_nonsense_is_refused() {
    use shared::core::enforcement::EnforcerRequest;
    use shared::handlers::enforcer::read_request;
    assert_eq!(
        read_request(serde_json::json!({"action": "restore"})).unwrap(),
        Some(EnforcerRequest::Restore {
            reason: String::new(),
            budget: None,
        })
    );
    assert_eq!(
        read_request(
            serde_json::json!({"action": "enforce", "level": "freeze", "reason": "by hand"})
        )
        .unwrap(),
        Some(EnforcerRequest::Enforce {
            level: Level::Freeze,
            reason: "by hand".into()
        })
    );
    assert!(read_request(serde_json::json!({"action": "explode"})).is_err());
    assert!(read_request(serde_json::json!({"hello": 1})).is_err());
}

/// The ticker hands enforcement to the enforcer function with an asynchronous `Invoke`. The
/// emulator cannot run Lambda functions without Docker, so the request is checked with the
/// SDK's own mock layer (`aws-smithy-mocks`): function, invocation type and payload.
#[tokio::test]
async fn the_ticker_invokes_the_enforcer_asynchronously_with_the_request_as_payload() {
    use aws_sdk_lambda::operation::invoke::InvokeOutput;
    use aws_sdk_lambda::types::InvocationType;
    use aws_smithy_mocks::{mock, mock_client};
    use shared::adapters::lambda::LambdaTrigger;
    use shared::core::enforcement::EnforcerRequest;
    use shared::ports::EnforcerTrigger;

    let invoke = mock!(aws_sdk_lambda::Client::invoke)
        .match_requests(|request| {
            let payload: serde_json::Value =
                serde_json::from_slice(request.payload().map(|p| p.as_ref()).unwrap_or_default()).unwrap_or_default();
            request.function_name() == Some("batchguard-enforcer")
                && request.invocation_type() == Some(&InvocationType::Event)
                && payload == serde_json::json!({"action": "enforce", "level": "stop", "reason": "runs out in 40 s"})
        })
        .then_output(|| InvokeOutput::builder().status_code(202).build());
    let client = mock_client!(aws_sdk_lambda, [&invoke]);
    let trigger = LambdaTrigger::new(client, "batchguard-enforcer".into());
    trigger
        .trigger(&EnforcerRequest::Enforce {
            level: Level::Stop,
            reason: "runs out in 40 s".into(),
        })
        .await
        .unwrap();
    assert_eq!(invoke.num_calls(), 1);
}

/// The ledger of a workload still running at its end, collected in memory, and the instant
/// (ms) it ends.
fn running_ledger() -> (
    shared::app::collector::Collector<MemoryEventLog, shared::adapters::memory::MemoryProjector>,
    i64,
) {
    use shared::adapters::memory::MemoryProjector;
    use shared::app::collector::Collector;
    use shared::core::prices::PriceTable;
    let (config, workload) = batchguard_tests::workload_ending_with_running_tasks(77_015, 12);
    let collector = Collector::new(
        MemoryEventLog::new(),
        MemoryProjector::new(PriceTable::builtin(), BudgetPeriod::Month),
    );
    block_on(async {
        for event in &workload.events {
            collector.collect(event.as_bytes(), "test").await.unwrap();
        }
    });
    (collector, config.end_ms)
}

/// GIVEN spend well under the budget WHEN a forged alarm (anyone with
/// `cloudwatch:PutMetricData` can drive `BudgetUsedPercent` to 1000) or a forged invocation asks
/// for a stop THEN nothing is stopped, the refusal is recorded with its reason and notified once
/// — and a real stop, with the ledger over the budget, goes through.
#[test]
fn a_forged_stop_is_refused_when_the_ledger_does_not_agree() {
    use shared::adapters::emf::EmfMemory;
    use shared::app::ticker::{NoAwsBudget, TickerSettings};
    use shared::app::verify::LedgerCheck;
    use shared::core::budget::Budget;
    use shared::core::facts::Millis;
    use shared::core::policy::BudgetPolicy;
    use shared::handlers::enforcer::handle;
    use shared::ports::SpendReader;

    let (collector, end_ms) = running_ledger();
    let now_ms = Millis(end_ms).ceil_seconds() * 1000;
    let spend = block_on(
        collector
            .projector()
            .scopes_totals(&[shared::core::scope::Scope::Total]),
    )
    .unwrap()[&shared::core::scope::Scope::Total]
        .spend_at(now_ms / 1000, BudgetPeriod::Month, vec![]);
    assert!(spend.period_spend_usd > rust_decimal::Decimal::ZERO);
    let check = |budget_usd| LedgerCheck {
        reader: collector.projector(),
        settings: TickerSettings {
            budget: Some(Budget {
                amount_usd: budget_usd,
                period: BudgetPeriod::Month,
            }),
            policy: BudgetPolicy::default(),
            period: BudgetPeriod::Month,
            scope_queues: vec![],
            max_scopes_read: shared::app::ticker::MAX_SCOPES_READ,
            budgets: Default::default(),
        },
        baseline: None::<NoAwsBudget>,
    };
    let mut alarm =
        alarm_fixture("cloudwatch_alarm_lambda_action_metric_aws_lambda_events_fixture.json");
    alarm["alarmData"]["configuration"]["description"] =
        serde_json::json!("Budget used ≥ 100 %. batchguard:level=stop");

    let batch = workload();
    let (outbox, log, sink) = (
        Outbox::default(),
        MemoryEventLog::new(),
        EmfMemory::default(),
    );
    let enforcer = Enforcer::new(&batch, &log, &outbox, settings(&[], false));
    let roomy = check(spend.period_spend_usd * rust_decimal::Decimal::from(1000));
    for payload in [
        alarm.clone(),
        serde_json::json!({"action": "enforce", "level": "stop", "reason": "forged"}),
        alarm.clone(),
    ] {
        let report = block_on(handle(&enforcer, &roomy, &sink, payload, now_ms))
            .unwrap()
            .unwrap();
        assert!(
            matches!(report.actions.as_slice(), [a] if matches!(a.action, EnforcementAction::Refused { ref request } if request == "stop")),
            "{report:?}"
        );
        assert!(
            report.reason.contains("the ledger is at ok"),
            "{}",
            report.reason
        );
    }
    assert!(batch.calls().is_empty(), "{:?}", batch.calls());
    assert_eq!(
        outbox.0.lock().unwrap().as_slice(),
        ["batchguard: refused stop"],
        "notified once per period, not once per forged request"
    );
    let trail = block_on(log.audit_entries(BudgetPeriod::Month.bounds(now_ms / 1000).0)).unwrap();
    assert!(
        trail
            .iter()
            .any(|e| matches!(e.action, EnforcementAction::Refused { .. })
                && e.reason.contains("the ledger is at ok")),
        "{trail:?}"
    );
    // A restore while the ledger is over freeze is refused too.
    let exhausted = check(spend.period_spend_usd / rust_decimal::Decimal::TWO);
    let report = block_on(handle(
        &enforcer,
        &exhausted,
        &sink,
        serde_json::json!({"action": "restore"}),
        now_ms,
    ))
    .unwrap()
    .unwrap();
    assert!(
        matches!(report.actions[0].action, EnforcementAction::Refused { ref request } if request == "restore")
    );
    // The same alarm with the ledger over the budget: the stop is carried out.
    let report = block_on(handle(&enforcer, &exhausted, &sink, alarm, now_ms))
        .unwrap()
        .unwrap();
    assert!(
        batch.calls().contains(&"TerminateJob running-1".to_owned()),
        "{report:?}"
    );
}

/// The shapes AWS documents: an array parent is PENDING while its children (`<id>:<n>`) run;
/// a multi-node parallel job is RUNNING with nodes `<id>#<n>`; ListJobs names children and
/// nodes through `arrayJobId` / `multiNodeJobId`
/// (<https://docs.aws.amazon.com/batch/latest/APIReference/API_ListJobs.html>,
/// <https://docs.aws.amazon.com/batch/latest/userguide/array_jobs.html>,
/// <https://docs.aws.amazon.com/batch/latest/userguide/multi-node-parallel-jobs.html>).
fn arrays_and_nodes() -> MemoryBatch {
    let batch = MemoryBatch::with(
        &[("hpc", true)],
        &[
            ("arr", "hpc", JobStatus::Pending, false),
            ("arr:0", "hpc", JobStatus::Running, false),
            ("arr:1", "hpc", JobStatus::Starting, false),
            ("arr:2", "hpc", JobStatus::Runnable, false),
            ("mnp", "hpc", JobStatus::Running, false),
            ("mnp#0", "hpc", JobStatus::Running, false),
            ("mnp#1", "hpc", JobStatus::Running, false),
            ("kept", "hpc", JobStatus::Pending, true),
            ("kept:0", "hpc", JobStatus::Running, false),
            ("solo", "hpc", JobStatus::Running, false),
        ],
    );
    batch.set_kind("arr", shared::ports::JobKind::ArrayParent);
    batch.set_kind("kept", shared::ports::JobKind::ArrayParent);
    batch.set_kind("mnp", shared::ports::JobKind::MultiNode);
    batch
}

/// GIVEN an array whose children run and a multi-node job WHEN the budget is exhausted THEN
/// stop terminates every running child and node, the array parent (taking its waiting child
/// with it) and the multi-node job; a protected array's children are left alone. (Before, the
/// PENDING parent was only cancelled, which leaves running children running.)
#[test]
fn stop_reaches_every_running_array_child_and_node() {
    let batch = arrays_and_nodes();
    let log = MemoryEventLog::new();
    let enforcer = Enforcer::new(&batch, &log, Outbox::default(), settings(&["hpc"], false));
    let report = block_on(enforcer.enforce(Level::Stop, "budget exhausted", AT_MS)).unwrap();
    let mut terminated: Vec<String> = batch
        .calls()
        .iter()
        .filter_map(|c| c.strip_prefix("TerminateJob ").map(str::to_owned))
        .collect();
    terminated.sort();
    assert_eq!(
        terminated,
        ["arr", "arr:0", "arr:1", "mnp", "mnp#0", "mnp#1", "solo"]
    );
    assert!(!batch.calls().iter().any(|c| c.starts_with("CancelJob arr")));
    assert_eq!(report.protected_jobs, vec!["kept"]);
    assert!(report.failures.is_empty(), "{report:?}");
    let still_running: Vec<String> = batch
        .jobs
        .lock()
        .unwrap()
        .iter()
        .filter(|j| matches!(j.status, JobStatus::Running | JobStatus::Starting))
        .map(|j| j.job_id.clone())
        .collect();
    assert_eq!(still_running, vec!["kept:0"]);
    let period_start = BudgetPeriod::Month.bounds(AT_MS / 1000).0;
    let recorded = block_on(log.audit_entries(period_start)).unwrap();
    for job in ["arr:0", "mnp#1", "arr"] {
        assert!(
            recorded.iter().any(|e| matches!(&e.action,
                EnforcementAction::JobTerminated { job_id, .. } if job_id == job)),
            "{job} not in the audit trail"
        );
    }
}

/// GIVEN the same jobs WHEN the budget reaches freeze THEN the array parent is cancelled
/// (its waiting child goes with it) and running children and nodes keep running.
#[test]
fn freeze_lets_running_children_and_nodes_finish() {
    let batch = arrays_and_nodes();
    let enforcer = Enforcer::new(
        &batch,
        MemoryEventLog::new(),
        Outbox::default(),
        settings(&["hpc"], false),
    );
    block_on(enforcer.enforce(Level::Freeze, "90% used", AT_MS)).unwrap();
    assert_eq!(
        batch.calls(),
        vec!["UpdateJobQueue hpc false", "CancelJob arr"]
    );
    let status = |id: &str| {
        batch
            .jobs
            .lock()
            .unwrap()
            .iter()
            .find(|j| j.job_id == id)
            .unwrap()
            .status
    };
    assert_eq!(status("arr:2"), JobStatus::Failed);
    assert_eq!(status("arr:0"), JobStatus::Running);
    assert_eq!(status("mnp#0"), JobStatus::Running);
}

/// GIVEN jobs that stay RUNNING for a while after TerminateJob (their containers are
/// stopping) WHEN the ticker asks for a stop every minute, and two invocations run back to
/// back (as reserved concurrency 1 makes overlapping ones) THEN each job is terminated once;
/// ten minutes on, a job Batch still lists is asked again.
#[test]
fn each_job_is_terminated_once_while_batch_stops_it() {
    let batch = workload();
    *batch.lagging.lock().unwrap() = true;
    let log = MemoryEventLog::new();
    let enforcer = Enforcer::new(&batch, &log, Outbox::default(), settings(&["etl"], false));
    let terminations = || {
        batch
            .calls()
            .iter()
            .filter(|c| c.starts_with("TerminateJob "))
            .count()
    };
    block_on(enforcer.enforce(Level::Stop, "budget exhausted", AT_MS)).unwrap();
    assert_eq!(terminations(), 2, "{:?}", batch.calls());
    let again = block_on(enforcer.enforce(Level::Stop, "budget exhausted", AT_MS + 1)).unwrap();
    let later =
        block_on(enforcer.enforce(Level::Stop, "budget exhausted", AT_MS + 60_000)).unwrap();
    assert_eq!(terminations(), 2, "{:?}", batch.calls());
    let mut stopping = later.stopping_jobs.clone();
    stopping.sort();
    assert_eq!(stopping, ["queued-1", "running-1", "starting-1"]);
    assert_eq!(again.stopping_jobs.len(), 3);
    block_on(enforcer.enforce(Level::Stop, "budget exhausted", AT_MS + 600_000)).unwrap();
    assert_eq!(terminations(), 4, "asked again after ten minutes");
}

/// GIVEN an array job of two children submitted to the emulator's Batch WHEN the AWS adapter
/// lists the queue and then the parent's children THEN the parent is known as an array parent
/// (its `arrayProperties.size`) and its children are listed through `arrayJobId`, named
/// `<parent>:<index>` as AWS names them.
#[test]
fn on_the_emulator_an_array_parent_lists_its_children() {
    use shared::ports::{BatchControl, JobKind};
    block_on(async {
        let config = emulator_config().await;
        let client = aws_sdk_batch::Client::new(&config);
        let queue = unique_prefix("array");
        emulator_queue(&client, &queue).await;
        let definition =
            batchguard_tests::emulator_job_definition(&client, &format!("{queue}-def")).await;
        let parent = client
            .submit_job()
            .job_name("array")
            .job_queue(&queue)
            .job_definition(&definition)
            .array_properties(
                aws_sdk_batch::types::ArrayProperties::builder()
                    .size(2)
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .job_id()
            .unwrap()
            .to_owned();
        let batch = AwsBatch::from_config(&config);
        let every = JobStatus::ALL;
        let listed = batch.jobs(&queue, &every).await.unwrap();
        let summary = listed
            .iter()
            .find(|j| j.job_id == parent)
            .unwrap_or_else(|| panic!("{parent} not in {listed:?}"));
        assert_eq!(summary.kind, JobKind::ArrayParent);
        let mut children = batch.children(summary, &every).await.unwrap();
        children.sort();
        assert_eq!(children, [format!("{parent}:0"), format!("{parent}:1")]);
    });
}
