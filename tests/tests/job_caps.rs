//! Per-job caps (issue 17, `core::caps`): a job tagged `batchguard:max-usd=N` is terminated
//! once its own cost reaches N. On the emulator's DynamoDB through the real SDK, with the
//! sample day's events (`examples/sample-day.jsonl`): the collector indexes the running capped
//! job by the second a local replay says its cost reaches the cap, the ticker finds it then and
//! not a second before, and the enforcer reads its projection and Batch's answer before it
//! terminates it; once the job ends, it leaves the index. The enforcer's refusals and
//! protections on the in-memory projections.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batchguard_tests::{counted_emulator_event_log, emulator_event_log};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shared::adapters::dynamodb::{CAP_SHARDS, DynamoProjector};
use shared::adapters::emf::EmfMemory;
use shared::adapters::memory::{
    MemoryBatch, MemoryEventLog, MemoryProjector, Outbox, RecordingTrigger,
};
use shared::app::collector::Collector;
use shared::app::enforcer::{Enforcer, EnforcerSettings};
use shared::app::job_caps;
use shared::app::ticker::{MAX_SCOPES_READ, TickerSettings};
use shared::app::verify::LedgerCheck;
use shared::core::budget::BudgetPeriod;
use shared::core::caps::{CAP_TAG, CapOrder, burn_usd_per_hour, cap_reached_at, cost_at};
use shared::core::enforcement::EnforcerRequest;
use shared::core::facts::{EnforcementAction, JobStatus};
use shared::core::ledger::Ledger;
use shared::core::policy::BudgetPolicy;
use shared::core::prices::PriceTable;
use shared::core::projection::GroupProjection;
use shared::handlers::enforcer;
use shared::ports::{AuditTrail, JobProjections, Projector};

/// Lines of the sample day the emulator ingests.
const LINES: usize = 400;

fn sample_events() -> Vec<Value> {
    let text =
        std::fs::read_to_string(batchguard_tests::cfn::root().join("examples/sample-day.jsonl"))
            .unwrap();
    text.lines()
        .take(LINES)
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn replay(events: &[Value]) -> Ledger {
    let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Day);
    for event in events {
        if let Ok(shared::events::Parsed::Fact(fact)) =
            shared::events::parse_event(event.to_string().as_bytes())
        {
            ledger.apply(&fact);
        }
    }
    ledger
}

fn is_job_event(event: &Value, job_id: &str) -> bool {
    event["detail-type"] == "Batch Job State Change" && event["detail"]["jobId"] == job_id
}

/// The sample events with `tag` (key, value) added to every Batch event of `job_id`.
fn tagged(events: &[Value], job_id: &str, tag: (&str, &str)) -> Vec<Value> {
    events
        .iter()
        .cloned()
        .map(|mut event| {
            if is_job_event(&event, job_id) {
                event["detail"]["tags"][tag.0] = json!(tag.1);
            }
            event
        })
        .collect()
}

/// A job of the sample's first lines still running at their end, with its cost then; the
/// one that has cost the most, so its rate is not zero.
fn running_job(events: &[Value]) -> (String, i64, Decimal) {
    let ledger = replay(events);
    let at = ledger.latest_instant().unwrap().ceil_seconds();
    ledger
        .running_jobs()
        .into_iter()
        .map(|job| {
            let cost = cost_at(&GroupProjection::of_job(&ledger, job), at);
            (job.to_owned(), at, cost)
        })
        .max_by_key(|(_, _, cost)| *cost)
        .unwrap()
}

/// GIVEN the sample day's first events, one running job tagged with a cap a cent over its
/// cost at the last event WHEN they are collected on the emulator THEN the caps index lists
/// the job from the second a local replay says its cost reaches the cap, not a second before;
/// the ticker function sends it to the enforcer then; the enforcer reads its projection (at or
/// over the cap, running) and Batch's answer, and terminates it once with the reason in its
/// status and the audit trail, notified once; and when its terminal event arrives it leaves
/// the index.
#[tokio::test]
async fn a_capped_job_is_stopped_from_the_second_its_cost_reaches_the_cap() {
    let sample = sample_events();
    let (job_id, last_at, cost) = running_job(&sample);
    let cap = (cost + Decimal::new(1, 2)).round_dp(2);
    let events = tagged(&sample, &job_id, (CAP_TAG, &cap.to_string()));
    let local = replay(&events);
    let crossing = cap_reached_at(&GroupProjection::of_job(&local, &job_id), cap).unwrap();
    assert!(
        crossing > last_at,
        "the cap is reached after the last event"
    );

    let log = emulator_event_log("job-caps").await;
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), BudgetPeriod::Day);
    let collector = Collector::new(log.clone(), projector.clone());
    for event in &events {
        collector
            .collect(event.to_string().as_bytes(), "test")
            .await
            .unwrap();
    }
    assert!(
        projector
            .due_caps(crossing - 1, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let due = projector.due_caps(crossing, 100).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|d| (d.job_id.as_str(), d.reached_at))
            .collect::<Vec<_>>(),
        [(job_id.as_str(), crossing)]
    );
    let reading = projector
        .cap_reading(&job_id, crossing)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reading.cap_usd, Some(Ok(cap)));
    assert!(reading.running);
    assert!(reading.cost_usd >= cap, "{reading:?}");
    assert!(
        projector
            .cap_reading(&job_id, crossing - 1)
            .await
            .unwrap()
            .unwrap()
            .cost_usd
            < cap
    );

    // A running job's burn rate and compute environment, as a shedding budget and a budget
    // scoped by compute environment read them: its projection's, the same as a local
    // replay's; a job not projected is left out.
    let readings = projector
        .job_readings(&[job_id.clone(), "no-such-job".to_owned()])
        .await
        .unwrap();
    let local_burn = burn_usd_per_hour(&GroupProjection::of_job(&local, &job_id));
    assert!(local_burn > Decimal::ZERO);
    let local_environment = local.job_compute_environment(&job_id).map(str::to_owned);
    assert!(
        local_environment.is_some(),
        "the sample names where it runs"
    );
    assert_eq!(
        readings,
        std::collections::BTreeMap::from([(
            job_id.clone(),
            shared::ports::JobReading {
                burn_usd_per_hour: local_burn,
                compute_environment: local_environment,
            }
        )])
    );

    // The ticker's search, as the function runs it.
    let trigger = RecordingTrigger::default();
    let sent = job_caps::check(&projector, &trigger, (crossing - 1) * 1000)
        .await
        .unwrap();
    assert!(sent.sent.is_empty());
    assert!(trigger.0.lock().unwrap().is_empty(), "nothing sent early");
    let sent = job_caps::check(&projector, &trigger, crossing * 1000)
        .await
        .unwrap();
    assert_eq!(sent.sent, std::slice::from_ref(&job_id));
    let request = trigger.0.lock().unwrap()[0].clone();
    assert_eq!(
        request,
        EnforcerRequest::Caps {
            jobs: vec![CapOrder {
                job_id: job_id.clone()
            }]
        }
    );

    // The enforcer, on Batch's answer for the job (its latest event, as DescribeJobs gives it).
    let current = events
        .iter()
        .rev()
        .find(|event| is_job_event(event, &job_id))
        .unwrap()
        .clone();
    assert_eq!(current["detail"]["status"], "RUNNING");
    let queue = current["detail"]["jobQueue"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let batch = MemoryBatch::with(
        &[(queue.as_str(), true)],
        &[(job_id.as_str(), queue.as_str(), JobStatus::Running, false)],
    );
    batch
        .current_state
        .lock()
        .unwrap()
        .insert(job_id.clone(), current.clone());
    let outbox = Outbox::default();
    let enforcer_at = Enforcer::new(
        &batch,
        &log,
        &outbox,
        EnforcerSettings {
            queues: vec![],
            dry_run: false,
            period: BudgetPeriod::Day,
        },
    );
    let check = LedgerCheck {
        reader: &projector,
        settings: ticker_settings(),
        baseline: None::<shared::app::ticker::NoAwsBudget>,
    };
    let payload = serde_json::to_value(&request).unwrap();
    let sink = EmfMemory::default();
    let report = enforcer::handle(
        &enforcer_at,
        &check,
        &sink,
        payload.clone(),
        crossing * 1000,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(batch.calls(), [format!("TerminateJob {job_id}")]);
    assert!(
        report.actions.iter().any(|taken| taken.action
            == EnforcementAction::JobTerminated {
                job_id: job_id.clone(),
                queue: queue.clone()
            }),
        "{report:?}"
    );
    let notices = outbox.0.lock().unwrap().clone();
    assert_eq!(
        notices,
        [format!("batchguard: job {job_id} reached its cap")]
    );
    let trail = log
        .audit_entries(BudgetPeriod::Day.bounds(crossing).0)
        .await
        .unwrap();
    assert!(trail.iter().any(|entry| entry.level == "job cap"
        && entry.reason.contains(&format!("{CAP_TAG}={cap}"))
        && matches!(&entry.action, EnforcementAction::JobTerminated { job_id: id, .. } if *id == job_id)));
    // Asked again within the tick after (Batch still lists it as running): not asked again.
    batch
        .current_state
        .lock()
        .unwrap()
        .insert(job_id.clone(), current.clone());
    enforcer::handle(
        &enforcer_at,
        &check,
        &sink,
        payload,
        crossing * 1000 + 60_000,
    )
    .await
    .unwrap();
    assert_eq!(batch.calls().len(), 1, "{:?}", batch.calls());
    assert_eq!(outbox.0.lock().unwrap().len(), 1);
    // Judged, it is out of the search for the ten minutes Batch is given to stop it.
    assert!(
        projector
            .due_caps(crossing + 60, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        projector.due_caps(crossing + 660, 100).await.unwrap().len(),
        1
    );

    // Its terminal event: the job leaves the index.
    let mut failed = current.clone();
    failed["id"] = json!("job-caps-terminal-event");
    failed["detail"]["status"] = json!("FAILED");
    failed["detail"]["statusReason"] = json!("batchguard job cap");
    let stopped_ms = crossing * 1000 + 30_000;
    failed["detail"]["stoppedAt"] = json!(stopped_ms);
    failed["time"] = json!("2026-11-23T23:59:59Z");
    if let Some(attempts) = failed["detail"]["attempts"].as_array_mut() {
        for attempt in attempts {
            attempt["stoppedAt"] = json!(stopped_ms);
        }
    }
    if let Some(container) = failed["detail"].get_mut("container") {
        container["exitCode"] = json!(137);
    }
    collector
        .collect(failed.to_string().as_bytes(), "test")
        .await
        .unwrap();
    let reading = projector
        .cap_reading(&job_id, crossing + 600)
        .await
        .unwrap()
        .unwrap();
    assert!(!reading.running, "{reading:?}");
    assert!(
        projector
            .due_caps(crossing + 600, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

fn ticker_settings() -> TickerSettings {
    TickerSettings {
        budget: None,
        policy: BudgetPolicy::default(),
        period: BudgetPeriod::Day,
        scope_queues: vec![],
        max_scopes_read: MAX_SCOPES_READ,
        budgets: Default::default(),
    }
}

/// GIVEN an empty stack and one that has collected the sample day's first 400 events with a
/// cap of a cent on every job (those that ended have left the caps index; those running are
/// past their cap) WHEN the ticker looks for capped jobs THEN both cost the same DynamoDB
/// requests: one `Query` per shard of the caps index, whatever the history; and the search
/// takes at most its limit, from every shard.
#[tokio::test]
async fn the_search_for_capped_jobs_costs_the_same_whatever_the_history() {
    let (empty_log, empty_requests) = counted_emulator_event_log("caps-empty").await;
    let empty = DynamoProjector::new(empty_log, PriceTable::builtin(), BudgetPeriod::Day);
    let before = empty_requests.count();
    assert!(empty.due_caps(i64::MAX / 2, 100).await.unwrap().is_empty());
    let on_empty = empty_requests.count() - before;

    let (log, requests) = counted_emulator_event_log("caps-history").await;
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), BudgetPeriod::Day);
    let collector = Collector::new(log, projector.clone());
    let mut events = sample_events();
    for event in &mut events {
        if event["detail-type"] == "Batch Job State Change" {
            event["detail"]["tags"][CAP_TAG] = json!("0.01");
        }
    }
    let running = replay(&events).running_jobs().len();
    for event in &events {
        collector
            .collect(event.to_string().as_bytes(), "test")
            .await
            .unwrap();
    }
    let before = requests.count();
    let due = projector.due_caps(i64::MAX / 2, 100).await.unwrap();
    let on_history = requests.count() - before;
    assert_eq!(on_empty, u64::from(CAP_SHARDS));
    assert_eq!(on_history, on_empty);
    assert!(running > 8, "{running} running jobs");
    assert_eq!(due.len(), running.min(100));
    let few = projector.due_caps(i64::MAX / 2, 8).await.unwrap();
    assert!(!few.is_empty() && few.len() <= 8, "{few:?}");
}

/// The sample's first events in the in-memory projections, with a cap under their cost at
/// the last event on each of the `capped` running jobs (so each is past it), and Batch's
/// answer for each job: its latest event, as `DescribeJobs` gives it.
async fn memory_stack(capped: usize) -> (MemoryProjector, Vec<String>, MemoryBatch, i64, String) {
    let sample = sample_events();
    let ledger = replay(&sample);
    let at = ledger.latest_instant().unwrap().ceil_seconds();
    let running: Vec<String> = ledger
        .running_jobs()
        .into_iter()
        .filter(|job| cost_at(&GroupProjection::of_job(&ledger, job), at) > Decimal::new(1, 2))
        .take(capped + 1)
        .map(str::to_owned)
        .collect();
    assert_eq!(
        running.len(),
        capped + 1,
        "enough running jobs in the sample"
    );
    let mut events = sample;
    for job in &running[..capped] {
        events = tagged(&events, job, (CAP_TAG, "0.01"));
    }
    let projector = MemoryProjector::new(PriceTable::builtin(), BudgetPeriod::Day);
    for event in &events {
        if let Ok(shared::events::Parsed::Fact(fact)) =
            shared::events::parse_event(event.to_string().as_bytes())
        {
            projector.project(&fact).await.unwrap();
        }
    }
    let queue = "shared".to_owned();
    let listed: Vec<(&str, &str, JobStatus, bool)> = running
        .iter()
        .map(|job| (job.as_str(), queue.as_str(), JobStatus::Running, false))
        .collect();
    let batch = MemoryBatch::with(&[(queue.as_str(), true)], &listed);
    for job in &running {
        let mut current = events
            .iter()
            .rev()
            .find(|event| is_job_event(event, job))
            .unwrap()
            .clone();
        current["detail"]["jobQueue"] = json!(format!(
            "arn:aws:batch:us-east-1:123456789012:job-queue/{queue}"
        ));
        batch
            .current_state
            .lock()
            .unwrap()
            .insert(job.clone(), current);
    }
    (projector, running, batch, at, queue)
}

fn settings(queues: &[&str], dry_run: bool) -> EnforcerSettings {
    EnforcerSettings {
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        dry_run,
        period: BudgetPeriod::Day,
    }
}

fn caps_request(jobs: &[&str]) -> Value {
    serde_json::to_value(EnforcerRequest::Caps {
        jobs: jobs
            .iter()
            .map(|job| CapOrder {
                job_id: (*job).to_owned(),
            })
            .collect(),
    })
    .unwrap()
}

/// GIVEN four running jobs past their caps and one running job with no cap WHEN the enforcer
/// is asked to stop all five THEN it terminates the one Batch answers for as running, capped
/// and in scope; leaves alone the one Batch's answer says is protected, the one on a queue
/// outside the stack's and the one Batch does not answer for; and refuses the uncapped job,
/// recorded under its name, with no Batch call for it: a request's word stops nothing.
#[tokio::test]
async fn the_enforcer_stops_only_what_the_projections_and_batch_back() {
    let (projector, jobs, batch, at, queue) = memory_stack(4).await;
    let [stopped, protected, elsewhere, unanswered, uncapped] = jobs.as_slice() else {
        panic!("{jobs:?}");
    };
    {
        let mut current = batch.current_state.lock().unwrap();
        current.get_mut(protected).unwrap()["detail"]["tags"]["batchguard:protect"] = json!("true");
        current.get_mut(elsewhere).unwrap()["detail"]["jobQueue"] =
            json!("arn:aws:batch:us-east-1:123456789012:job-queue/another-team");
        current.remove(unanswered);
    }
    // The ticker's search finds the four capped ones, not the uncapped one.
    let mut due: Vec<String> = projector
        .due_caps(at, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|cap| cap.job_id)
        .collect();
    due.sort();
    let mut expected = jobs[..4].to_vec();
    expected.sort();
    assert_eq!(due, expected);

    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    let enforcer_at = Enforcer::new(&batch, &log, &outbox, settings(&[&queue], false));
    let check = LedgerCheck {
        reader: &projector,
        settings: ticker_settings(),
        baseline: None::<shared::app::ticker::NoAwsBudget>,
    };
    let sink = EmfMemory::default();
    let report = enforcer::handle(
        &enforcer_at,
        &check,
        &sink,
        caps_request(&[stopped, protected, elsewhere, unanswered, uncapped]),
        at * 1000,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(batch.calls(), [format!("TerminateJob {stopped}")]);
    // The four judged are out of the search until Batch has had time to stop a job, so the
    // ones left running do not come back every tick (or crowd out others); then back.
    assert!(projector.due_caps(at + 599, 100).await.unwrap().is_empty());
    assert_eq!(projector.due_caps(at + 600, 100).await.unwrap().len(), 4);
    assert_eq!(report.protected_jobs, std::slice::from_ref(protected));
    assert_eq!(report.unverified_jobs, std::slice::from_ref(unanswered));
    assert!(
        report.actions.iter().any(|taken| taken.action
            == EnforcementAction::Refused {
                request: format!("job cap: {uncapped}")
            }),
        "{report:?}"
    );
    let trail = log
        .audit_entries(BudgetPeriod::Day.bounds(at).0)
        .await
        .unwrap();
    let refusal = trail
        .iter()
        .find(|entry| matches!(entry.action, EnforcementAction::Refused { .. }))
        .unwrap();
    assert!(
        refusal
            .reason
            .contains(&format!("job {uncapped} has no {CAP_TAG} tag")),
        "{refusal:?}"
    );
}

/// GIVEN a job past its cap WHEN the stack is in dry run THEN the enforcer records and
/// notifies what it would do and makes no Batch call; WHEN the job's cap is raised over its
/// cost in Batch since it was projected THEN it is left running.
#[tokio::test]
async fn a_dry_run_records_only_and_a_raised_cap_is_honoured() {
    let (projector, jobs, batch, at, queue) = memory_stack(1).await;
    let job = &jobs[0];
    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    let check = LedgerCheck {
        reader: &projector,
        settings: ticker_settings(),
        baseline: None::<shared::app::ticker::NoAwsBudget>,
    };
    let sink = EmfMemory::default();
    let dry = Enforcer::new(&batch, &log, &outbox, settings(&[], true));
    let report = enforcer::handle(&dry, &check, &sink, caps_request(&[job]), at * 1000)
        .await
        .unwrap()
        .unwrap();
    assert!(batch.calls().is_empty(), "{:?}", batch.calls());
    assert!(report.dry_run);
    assert!(
        report.actions.iter().any(|taken| !taken.carried_out
            && taken.action
                == EnforcementAction::JobTerminated {
                    job_id: job.clone(),
                    queue: queue.clone()
                }),
        "{report:?}"
    );
    assert_eq!(
        outbox.0.lock().unwrap().clone(),
        [format!("batchguard: job {job} reached its cap (dry run)")]
    );

    batch.current_state.lock().unwrap().get_mut(job).unwrap()["detail"]["tags"][CAP_TAG] =
        json!("1000000");
    let live = Enforcer::new(&batch, &log, &outbox, settings(&[], false));
    enforcer::handle(&live, &check, &sink, caps_request(&[job]), at * 1000)
        .await
        .unwrap();
    assert!(batch.calls().is_empty(), "{:?}", batch.calls());
}
