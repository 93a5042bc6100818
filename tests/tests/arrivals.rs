//! Admission as each job's event arrives (issue 17, `core::arrival`): the enforcer's handler
//! stores the gates it verified (a budget's drain, safe admission's room), and the admitter's
//! handler judges each arriving job's real *Batch Job State Change* event against them and
//! cancels the jobs they turn away — on the in-memory Batch and stores, through both handlers
//! as the functions call them (the gates' DynamoDB round trip is in `budget_store.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batchguard_tests::ledger::{HOUR, check, projections, settings, worst};

use batchguard_tests::{T0, fixture_text};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shared::adapters::emf::EmfMemory;
use shared::adapters::memory::{MemoryBatch, MemoryEventLog, Outbox};
use shared::app::enforcer::Enforcer;
use shared::core::arrival::{GateKind, trusted_for_ms};
use shared::core::budget::BudgetPeriod;
use shared::core::budgets::{Action, BudgetBook};
use shared::core::facts::{EnforcementAction, JobStatus};
use shared::core::prices::PriceTable;
use shared::handlers::{admitter, enforcer};
use shared::ports::{AdmissionGates, AuditTrail, BudgetStore};

/// The real sample's queue, shared by both teams.
const QUEUE: &str = "PexjEHappyPathCanary2JobQueue";
const NOW_MS: i64 = T0 + 600_000;

/// Genomics has 0.01 USD a month and drains at half of it (its running job has spent about
/// 0.008 by `NOW_MS`); imaging's budget is open.
const DRAIN_BOOK: &str = r#"
[[budget]]
name = "genomics"
amount_usd = "0.01"
period = "month"
scope = { tags = ["team=genomics"] }
thresholds = [{ at_percent = "50", action = "drain" }]

[[budget]]
name = "imaging"
amount_usd = "100"
period = "month"
scope = { tags = ["team=imaging"] }
thresholds = [{ at_percent = "100", action = "drain" }]
"#;

/// Genomics may spend 1 USD a month and admits safely.
const SAFE_BOOK: &str = r#"
[[budget]]
name = "genomics"
amount_usd = "1"
period = "month"
admission = "safe"
scope = { tags = ["team=genomics"] }
thresholds = [{ at_percent = "100", action = "drain" }]

[[budget]]
name = "imaging"
amount_usd = "1"
period = "month"
scope = { tags = ["team=imaging"] }
thresholds = [{ at_percent = "100", action = "drain" }]
"#;

/// AWS's own RUNNABLE sample event (`tests/fixtures/events`) for job `id`, submitted at
/// `created_ms`, entering `status`, with the user tags `tags` (`None`: the event carries no
/// `tags` object), as a Fargate job of 1 vCPU / 2 GiB with a timeout of `timeout_hours`.
fn event(
    id: &str,
    status: &str,
    created_ms: i64,
    tags: Option<&[(&str, &str)]>,
    timeout_hours: u32,
) -> Value {
    let mut event: Value = serde_json::from_str(&fixture_text(
        "batch_job_state_change_RUNNABLE_awsdocs.json",
    ))
    .unwrap();
    let arn = format!("arn:aws:batch:us-east-1:123456789012:job/{id}");
    event["id"] = json!(format!("event-{id}-{status}"));
    event["resources"] = json!([arn]);
    let detail = &mut event["detail"];
    detail["jobId"] = json!(id);
    detail["jobArn"] = json!(arn);
    detail["status"] = json!(status);
    detail["createdAt"] = json!(created_ms);
    detail["platformCapabilities"] = json!(["FARGATE"]);
    detail["retryStrategy"] = json!({"attempts": 1, "evaluateOnExit": []});
    detail["timeout"] = json!({"attemptDurationSeconds": timeout_hours * HOUR});
    detail["container"]["resourceRequirements"] =
        json!([{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]);
    match tags {
        Some(tags) => {
            let mut object = serde_json::Map::from_iter([("resourceArn".to_owned(), json!(arn))]);
            for (key, value) in tags {
                object.insert((*key).to_owned(), json!(value));
            }
            detail["tags"] = Value::Object(object);
        }
        None => {
            detail.as_object_mut().unwrap().remove("tags");
        }
    }
    event
}

/// The audit entries cancelling `job_id` this period.
async fn cancels(log: &MemoryEventLog, job_id: &str) -> Vec<(String, bool)> {
    log.audit_entries(BudgetPeriod::Month.bounds(NOW_MS / 1000).0)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(&e.action, EnforcementAction::JobCancelled { job_id: id, .. } if id == job_id))
        .map(|e| (e.level, e.dry_run))
        .collect()
}

/// GIVEN genomics over its drain threshold on the ledger and imaging well inside its own, both
/// on one shared queue WHEN the enforcer is asked to judge the budgets (the alarm's request)
/// THEN it stores a drain gate naming genomics from that instant (which a forged request with
/// no orders does not undo); and WHEN jobs' events arrive
/// at the admitter THEN only genomics' job submitted since is cancelled, naming the budget,
/// under the tick's label: imaging's job, genomics' job submitted before the drain, a
/// protected one, one whose event carries no tags and an array child are left alone; a
/// repeated event adds no audit entry; an event the parser refuses and an old array event are
/// left to the tick; a gate past its trust is not acted on; in a dry run nothing is cancelled
/// and the entry says so; and once other budgets are applied the gate is not acted on.
#[tokio::test]
async fn a_drain_on_a_shared_queue_cancels_only_its_own_new_jobs_as_their_events_arrive() {
    let book = BudgetBook::parse(DRAIN_BOOK).unwrap();
    let projector = projections(&book).await;
    let log = MemoryEventLog::new();
    assert!(log.replace_budgets(&book, 0).await.unwrap());
    let batch = MemoryBatch::with(&[(QUEUE, true)], &[]);
    let outbox = Outbox::default();
    let enforcing = Enforcer::new(&batch, &log, &outbox, settings(false))
        .with_pricing(PriceTable::builtin(), "us-east-1");
    let sink = EmfMemory::default();
    enforcer::handle(
        &enforcing,
        &check(&projector),
        &sink,
        json!({"action": "judge_budgets", "reason": "the budgets alarm"}),
        NOW_MS,
    )
    .await
    .unwrap()
    .unwrap();
    let gates = log.gates().await.unwrap();
    let drain = &gates[&GateKind::Drain];
    assert_eq!(drain.draining.keys().collect::<Vec<_>>(), ["genomics"]);
    assert_eq!(drain.draining["genomics"].action, Action::Drain);
    assert_eq!(drain.draining["genomics"].since_ms, NOW_MS);
    assert_eq!(drain.book_version, 1);
    assert!(batch.calls().is_empty(), "{:?}", batch.calls());
    // A forged (or late) request with no orders does not drop genomics from the gate: the
    // gate is the enforcer's own judgement of the ledger, with the drain's start from the
    // audit trail.
    enforcer::handle(
        &enforcing,
        &check(&projector),
        &sink,
        json!({"action": "budgets", "orders": []}),
        NOW_MS + 1_000,
    )
    .await
    .unwrap()
    .unwrap();
    let gates = log.gates().await.unwrap();
    let drain = &gates[&GateKind::Drain];
    assert_eq!(drain.draining.keys().collect::<Vec<_>>(), ["genomics"]);
    assert_eq!(drain.draining["genomics"].since_ms, NOW_MS);
    assert_eq!(drain.written_at_ms, NOW_MS + 1_000);

    let books = admitter::BookCache::default();
    let admit = |payload: Value, now_ms: i64| {
        admitter::handle(
            &enforcing,
            &books,
            &sink,
            payload,
            now_ms,
            trusted_for_ms(60),
        )
    };
    let later = NOW_MS + 5_000;
    let genomics: &[(&str, &str)] = &[("team", "genomics")];
    let answer = admit(
        event("g-new", "SUBMITTED", NOW_MS + 1_000, Some(genomics), 1),
        later,
    )
    .await
    .unwrap();
    assert!(answer.outcome.starts_with("turned away"), "{answer:?}");
    assert_eq!(batch.calls(), ["CancelJob g-new"]);
    assert_eq!(
        cancels(&log, "g-new").await,
        [("budget genomics: drain".to_owned(), false)]
    );
    // The same job's RUNNABLE event: the entry is the same, kept once.
    admit(
        event("g-new", "RUNNABLE", NOW_MS + 1_000, Some(genomics), 1),
        later,
    )
    .await
    .unwrap();
    assert_eq!(cancels(&log, "g-new").await.len(), 1);
    let calls_before = batch.calls().len();

    // Left alone: another team's job on the same queue; genomics' job submitted before the
    // drain began (waiting work: cancel-queued reaches it); a protected one; one whose event
    // carries no tags (protection fails closed); an array child.
    let imaging = admit(
        event(
            "i-new",
            "SUBMITTED",
            NOW_MS + 1_000,
            Some(&[("team", "imaging")]),
            1,
        ),
        later,
    )
    .await
    .unwrap();
    assert_eq!(imaging.outcome, "job i-new admitted");
    admit(
        event("g-old", "RUNNABLE", NOW_MS - 60_000, Some(genomics), 1),
        later,
    )
    .await
    .unwrap();
    let protected = admit(
        event(
            "g-protected",
            "SUBMITTED",
            NOW_MS + 1_000,
            Some(&[("team", "genomics"), ("batchguard:protect", "true")]),
            1,
        ),
        later,
    )
    .await
    .unwrap();
    assert_eq!(protected.report.unwrap().protected_jobs, ["g-protected"]);
    let untagged = admit(
        event("g-untagged", "SUBMITTED", NOW_MS + 1_000, None, 1),
        later,
    )
    .await
    .unwrap();
    assert_eq!(untagged.report.unwrap().unverified_jobs, ["g-untagged"]);
    let mut child = event("g-array:3", "RUNNABLE", NOW_MS + 1_000, Some(genomics), 1);
    child["detail"]["arrayProperties"] = json!({"index": 3});
    let child = admit(child, later).await.unwrap();
    assert_eq!(child.outcome, "not a waiting job's event");
    assert_eq!(batch.calls().len(), calls_before, "{:?}", batch.calls());

    // Past two ticks and a minute without a run renewing it, the gate is not acted on.
    // (The gate was last written at NOW_MS + 1 s, by the request with no orders.)
    let stale = NOW_MS + 1_000 + trusted_for_ms(60) + 1;
    let answer = admit(
        event("g-late", "SUBMITTED", stale - 1_000, Some(genomics), 1),
        stale,
    )
    .await
    .unwrap();
    assert!(
        answer.stale_gates[0].starts_with("drain: written 180 s ago"),
        "{answer:?}"
    );
    assert_eq!(batch.calls().len(), calls_before);

    // An event the parser refuses, and an array parent's event too old to say whether its
    // children have started, are left to the tick, not failed.
    let mut broken = event("g-broken", "SUBMITTED", NOW_MS + 1_000, Some(genomics), 1);
    broken["detail"].as_object_mut().unwrap().remove("jobId");
    let answer = admit(broken, later).await.unwrap();
    assert!(answer.outcome.starts_with("left to the tick"), "{answer:?}");
    let mut array = event("g-array", "SUBMITTED", NOW_MS + 1_000, Some(genomics), 1);
    array["detail"]["arrayProperties"] = json!({"size": 10, "statusSummary": {}});
    array["time"] = json!("2026-01-01T00:00:00Z");
    let answer = admit(array, later).await.unwrap();
    assert!(
        answer.outcome.contains("array's event too old"),
        "{answer:?}"
    );
    assert_eq!(batch.calls().len(), calls_before);
    // The same array's event sent a second before is judged: a new job of the draining team.
    let mut fresh = event("g-array", "SUBMITTED", NOW_MS + 1_000, Some(genomics), 1);
    fresh["detail"]["arrayProperties"] = json!({"size": 10, "statusSummary": {}});
    fresh["time"] = json!(
        chrono::DateTime::from_timestamp_millis(later - 1_000)
            .unwrap()
            .to_rfc3339()
    );
    let answer = admit(fresh, later).await.unwrap();
    assert!(answer.outcome.starts_with("turned away"), "{answer:?}");
    assert_eq!(batch.calls().last().unwrap(), "CancelJob g-array");
    let calls_before = batch.calls().len();

    // The stack's dry run: recorded as such, nothing cancelled.
    let dry = Enforcer::new(&batch, &log, &outbox, settings(true));
    let answer = admitter::handle(
        &dry,
        &books,
        &sink,
        event("g-dry", "SUBMITTED", NOW_MS + 2_000, Some(genomics), 1),
        later,
        trusted_for_ms(60),
    )
    .await
    .unwrap();
    assert!(answer.outcome.starts_with("turned away"), "{answer:?}");
    assert_eq!(batch.calls().len(), calls_before);
    assert_eq!(
        cancels(&log, "g-dry").await,
        [("budget genomics: drain".to_owned(), true)]
    );

    // A gate verified with other budgets than those applied now is not acted on.
    let raised = BudgetBook::parse(&DRAIN_BOOK.replace("\"0.01\"", "\"5\"")).unwrap();
    assert!(log.replace_budgets(&raised, 1).await.unwrap());
    let answer = admitter::handle(
        &enforcing,
        &admitter::BookCache::default(),
        &sink,
        event("g-after", "SUBMITTED", NOW_MS + 2_000, Some(genomics), 1),
        later,
        trusted_for_ms(60),
    )
    .await
    .unwrap();
    assert!(
        answer.stale_gates[0].contains("version 1, now version 2"),
        "{answer:?}"
    );
    assert_eq!(batch.calls().len(), calls_before);
    // A gate judged with the new budgets makes a warm admitter, whose copy of the budgets is
    // older than the gate, read them again at once, and act.
    let mut renewed = log.gates().await.unwrap()[&GateKind::Drain].clone();
    renewed.book_version = 2;
    log.put_gate(GateKind::Drain, &renewed).await.unwrap();
    let answer = admit(
        event("g-renewed", "SUBMITTED", NOW_MS + 2_000, Some(genomics), 1),
        later,
    )
    .await
    .unwrap();
    assert!(answer.outcome.starts_with("turned away"), "{answer:?}");
    assert_eq!(batch.calls().last().unwrap(), "CancelJob g-renewed");
}

/// GIVEN genomics (1 USD, safe) with a running job whose ten-hour timeout commits about 0.49
/// USD and a waiting three-hour job WHEN the enforcer runs safe admission THEN it stores what
/// genomics has left once that job's worst case is taken; and WHEN a new eight-hour genomics
/// job arrives THEN it is cancelled, naming the budget and the figures, while a new one-hour
/// job that fits, imaging's job and a job the listing already judged are admitted; on EC2
/// (the gate carries what the queue's compute environment launches: the c5 family), a new
/// 4-vCPU, 4-hour job (its share of a c5: 0.17 USD an hour) is turned away and a 1-vCPU,
/// 1-hour one admitted.
#[tokio::test]
async fn safe_admission_turns_away_a_new_job_that_cannot_fit_as_its_event_arrives() {
    let book = BudgetBook::parse(SAFE_BOOK).unwrap();
    let left = Decimal::ONE - worst(10) - worst(3);
    assert!(worst(8) > left && worst(1) <= left);
    let projector = projections(&book).await;
    let log = MemoryEventLog::new();
    assert!(log.replace_budgets(&book, 0).await.unwrap());
    let batch = MemoryBatch::with(
        &[(QUEUE, true)],
        &[("g-small", QUEUE, JobStatus::Runnable, false)],
    );
    batch.describe_job("g-small", &[("team", "genomics")], "pipeline", T0);
    // No EC2 job waits: the gate still says what the queue's compute environment launches,
    // so the first EC2 job to arrive is bounded.
    batch.place_queue(QUEUE, &["ce-ec2"]);
    batch.launch("ce-ec2", Some(&["c5"]));
    batch.shape_job(
        "g-small",
        shared::core::admission::JobShape {
            platform: Some(shared::core::facts::Platform::Fargate),
            size: Some(shared::core::facts::TaskSize {
                vcpu: Decimal::ONE,
                memory_gib: Decimal::TWO,
                storage_gib: None,
                gpus: None,
            }),
            timeout_seconds: Some(3 * HOUR),
            ..Default::default()
        },
    );
    let outbox = Outbox::default();
    let enforcing = Enforcer::new(&batch, &log, &outbox, settings(false))
        .with_pricing(PriceTable::builtin(), "us-east-1");
    let sink = EmfMemory::default();
    enforcer::handle(
        &enforcing,
        &check(&projector),
        &sink,
        json!({"action": "admit", "reason": "the tick"}),
        NOW_MS,
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        batch.calls().is_empty(),
        "g-small fits: {:?}",
        batch.calls()
    );
    let gate = log.gates().await.unwrap()[&GateKind::Safe].clone();
    assert_eq!(gate.left["genomics"], left);
    assert_eq!(gate.listed_at_ms, Some(NOW_MS));
    assert_eq!(
        gate.instance_types,
        std::collections::BTreeMap::from([(QUEUE.to_owned(), vec!["c5".to_owned()])])
    );

    let books = admitter::BookCache::default();
    let admit = |payload: Value| {
        admitter::handle(
            &enforcing,
            &books,
            &sink,
            payload,
            NOW_MS + 5_000,
            trusted_for_ms(60),
        )
    };
    let genomics: &[(&str, &str)] = &[("team", "genomics")];
    let answer = admit(event(
        "g-big",
        "SUBMITTED",
        NOW_MS + 1_000,
        Some(genomics),
        8,
    ))
    .await
    .unwrap();
    assert!(answer.outcome.starts_with("turned away"), "{answer:?}");
    assert_eq!(batch.calls(), ["CancelJob g-big"]);
    let entries = cancels(&log, "g-big").await;
    assert_eq!(entries, [("budget genomics: admission".to_owned(), false)]);
    let reason = answer.report.unwrap().reason;
    assert!(
        reason.contains(&worst(8).round_dp(6).normalize().to_string())
            && reason.contains(&left.round_dp(6).normalize().to_string()),
        "{reason}"
    );
    for payload in [
        event("g-fits", "SUBMITTED", NOW_MS + 1_000, Some(genomics), 1),
        event(
            "i-big",
            "SUBMITTED",
            NOW_MS + 1_000,
            Some(&[("team", "imaging")]),
            8,
        ),
        // Submitted before the listing: the tick judged it (or will), not this gate.
        event("g-listed", "RUNNABLE", NOW_MS, Some(genomics), 8),
    ] {
        let answer = admit(payload).await.unwrap();
        assert!(answer.outcome.ends_with("admitted"), "{answer:?}");
    }
    assert_eq!(batch.calls(), ["CancelJob g-big"]);

    // On EC2: the share of a c5 (a c5.large is 0.085 USD an hour for 2 vCPU / 4 GiB; a job
    // of v vCPU / 2v GiB weighs 11v of its 22).
    let on_ec2 = |id: &str, vcpu: u32, hours: u32| {
        let mut payload = event(id, "SUBMITTED", NOW_MS + 1_000, Some(genomics), hours);
        let detail = &mut payload["detail"];
        detail["platformCapabilities"] = json!(["EC2"]);
        detail["container"]["resourceRequirements"] = json!([
            {"type": "VCPU", "value": vcpu.to_string()},
            {"type": "MEMORY", "value": (2048 * vcpu).to_string()},
        ]);
        payload
    };
    let c5 = |vcpu: u32, hours: u32| {
        Decimal::new(85, 3) * Decimal::from(11 * vcpu) / Decimal::from(22)
            * Decimal::from(hours * HOUR + 30)
            / Decimal::from(HOUR)
    };
    assert!(c5(4, 4) > left && c5(1, 1) <= left);
    let answer = admit(on_ec2("g-ec2-big", 4, 4)).await.unwrap();
    assert!(answer.outcome.starts_with("turned away"), "{answer:?}");
    let reason = answer.report.unwrap().reason;
    assert!(
        reason.contains(&c5(4, 4).round_dp(6).normalize().to_string()),
        "{reason}"
    );
    let answer = admit(on_ec2("g-ec2-fits", 1, 1)).await.unwrap();
    assert!(answer.outcome.ends_with("admitted"), "{answer:?}");
    assert_eq!(batch.calls(), ["CancelJob g-big", "CancelJob g-ec2-big"]);
}

/// GIVEN a budget scoped by compute environment (`ce-spot`) at `cancel-queued`, a queue whose
/// only compute environment is `ce-spot` and one that also places jobs on `ce-ondemand`, each
/// with a waiting job WHEN the enforcer carries its order out THEN the job of the single-CE
/// queue is cancelled (it will run on `ce-spot`), the other left (Batch does not say where it
/// will run), and the drain gate carries the single-CE queue's environment; WHEN jobs of both
/// queues arrive THEN the admitter turns away only the single-CE queue's.
#[tokio::test]
async fn a_budget_scoped_by_compute_environment_reaches_the_jobs_of_its_single_environment_queues()
{
    use shared::core::enforcement::BudgetOrder;
    let book = BudgetBook::parse(
        r#"
[[budget]]
name = "spot"
amount_usd = "10"
period = "month"
scope = { compute_environments = ["ce-spot"] }
thresholds = [{ at_percent = "100", action = "cancel-queued" }]
"#,
    )
    .unwrap();
    let log = MemoryEventLog::new();
    assert!(log.replace_budgets(&book, 0).await.unwrap());
    let batch = MemoryBatch::with(
        &[(QUEUE, true), ("mixed", true)],
        &[
            ("w-single", QUEUE, JobStatus::Runnable, false),
            ("w-mixed", "mixed", JobStatus::Runnable, false),
        ],
    );
    batch.place_queue(QUEUE, &["ce-spot"]);
    batch.place_queue("mixed", &["ce-spot", "ce-ondemand"]);
    for id in ["w-single", "w-mixed"] {
        batch.describe_job(id, &[], "pipeline", T0);
    }
    let outbox = Outbox::default();
    let enforcing = Enforcer::new(&batch, &log, &outbox, settings(false));
    let order = BudgetOrder {
        budget: "spot".to_owned(),
        action: Action::CancelQueued,
        reason: "spot at cancel-queued".to_owned(),
    };
    let report = enforcing
        .enforce_budgets(&book, &[order], NOW_MS)
        .await
        .unwrap();
    assert_eq!(batch.calls(), ["CancelJob w-single"]);
    let mut gate = report.gate.unwrap();
    assert_eq!(
        gate.environments,
        std::collections::BTreeMap::from([(QUEUE.to_owned(), "ce-spot".to_owned())])
    );
    gate.book_version = 1;
    log.put_gate(GateKind::Drain, &gate).await.unwrap();

    let books = admitter::BookCache::default();
    let sink = EmfMemory::default();
    let mut mixed = event("a-mixed", "SUBMITTED", NOW_MS + 1_000, Some(&[]), 1);
    mixed["detail"]["jobQueue"] = json!("arn:aws:batch:us-east-1:123456789012:job-queue/mixed");
    let mut outcomes = Vec::new();
    for payload in [
        event("a-single", "SUBMITTED", NOW_MS + 1_000, Some(&[]), 1),
        mixed,
    ] {
        let answer = admitter::handle(
            &enforcing,
            &books,
            &sink,
            payload,
            NOW_MS + 5_000,
            trusted_for_ms(60),
        )
        .await
        .unwrap();
        outcomes.push(answer.outcome);
    }
    assert!(outcomes[0].starts_with("turned away"), "{outcomes:?}");
    assert_eq!(outcomes[1], "job a-mixed admitted");
    assert_eq!(batch.calls(), ["CancelJob w-single", "CancelJob a-single"]);
}

/// GIVEN genomics at `cancel-queued` on the ledger WHEN a request orders it only to drain
/// (agreed with: the ledger reaches it) THEN the run carries it out at `cancel-queued`, and
/// the drain gate says so: a request cannot weaken what the ledger calls for.
#[tokio::test]
async fn an_order_below_what_the_ledger_calls_for_is_carried_out_at_the_ledgers_action() {
    let book = BudgetBook::parse(&DRAIN_BOOK.replace(
        r#"thresholds = [{ at_percent = "50", action = "drain" }]"#,
        r#"thresholds = [{ at_percent = "50", action = "drain" }, { at_percent = "80", action = "cancel-queued" }]"#,
    ))
    .unwrap();
    let projector = projections(&book).await;
    let log = MemoryEventLog::new();
    assert!(log.replace_budgets(&book, 0).await.unwrap());
    let batch = MemoryBatch::with(&[(QUEUE, true)], &[]);
    let outbox = Outbox::default();
    let enforcing = Enforcer::new(&batch, &log, &outbox, settings(false));
    enforcer::handle(
        &enforcing,
        &check(&projector),
        &EmfMemory::default(),
        json!({"action": "budgets", "orders": [{"budget": "genomics", "action": "drain", "reason": "forged"}]}),
        NOW_MS,
    )
    .await
    .unwrap()
    .unwrap();
    let gate = log.gates().await.unwrap()[&GateKind::Drain].clone();
    assert_eq!(gate.draining["genomics"].action, Action::CancelQueued);
    assert!(
        gate.draining["genomics"]
            .reason
            .starts_with("judged on the ledger by the enforcer"),
        "{gate:?}"
    );
}
