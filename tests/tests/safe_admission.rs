//! Safe admission (issue 17, `core::admission`, `Enforcer::admit`): a budget with
//! `admission = "safe"` cancels a waiting job whose worst case (its size × its timeout × its
//! price) does not fit in what the budget has left after its committed spend. Through the
//! enforcer's handler, with the committed spend read from the in-memory projections of a
//! running job with a timeout, and the waiting jobs on the in-memory Batch (the emulator runs
//! a job to SUCCEEDED at once without Docker; what Batch's listing says of a job's size and
//! timeout is checked on the emulator in `budget_enforcement.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batchguard_tests::ledger::{HOUR, check, projections, settings, worst};

use batchguard_tests::T0;
use rust_decimal::Decimal;
use serde_json::json;
use shared::adapters::emf::EmfMemory;
use shared::adapters::memory::{Fault, MemoryBatch, MemoryEventLog, Outbox};
use shared::app::enforcer::Enforcer;
use shared::core::admission::JobShape;
use shared::core::budget::BudgetPeriod;
use shared::core::budgets::BudgetBook;
use shared::core::facts::{EnforcementAction, JobStatus, Platform, TaskSize};
use shared::core::prices::PriceTable;
use shared::handlers::enforcer;
use shared::ports::{AuditTrail, BudgetStore};

/// Genomics may spend 1 USD a month and admits safely; imaging's budget is open.
const BOOK: &str = r#"
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

const NOW_MS: i64 = T0 + 600_000;

/// A Fargate job of 1 vCPU / 2 GiB, x86, with `timeout`.
fn fargate(timeout: Option<u32>) -> JobShape {
    JobShape {
        platform: Some(Platform::Fargate),
        size: Some(TaskSize {
            vcpu: Decimal::ONE,
            memory_gib: Decimal::TWO,
            storage_gib: None,
            gpus: None,
        }),
        timeout_seconds: timeout,
        ..JobShape::default()
    }
}

/// The shared queue's waiting jobs (id, team, protected, shape), submitted a minute apart in
/// this order.
fn waiting(jobs: &[(&str, &str, bool, JobShape)]) -> MemoryBatch {
    let listed: Vec<(&str, &str, JobStatus, bool)> = jobs
        .iter()
        .map(|(id, _, protected, _)| (*id, "shared", JobStatus::Runnable, *protected))
        .collect();
    let batch = MemoryBatch::with(&[("shared", true)], &listed);
    for (i, (id, team, _, shape)) in jobs.iter().enumerate() {
        batch.describe_job(id, &[("team", team)], "pipeline", T0 + 60_000 * i as i64);
        batch.shape_job(id, *shape);
    }
    batch
}

/// GIVEN genomics (1 USD, safe) with a running job whose ten-hour timeout commits about
/// 0.49 USD, and waiting jobs: a 3-hour one, then an 8-hour one, one without a timeout, one on
/// EC2, a protected 8-hour one, and imaging's 20-hour one (its budget is open)
/// WHEN the enforcer is asked for safe admission THEN the 3-hour job is admitted, and the
/// 8-hour one — which fits in the amount, and in what the committed spend leaves, but not once
/// the 3-hour job is admitted before it — is cancelled, naming the budget and the figures;
/// the unbounded ones are admitted and named; the protected and imaging's jobs are untouched;
/// one message says so; and the audit trail names the budget.
#[tokio::test]
async fn a_waiting_job_whose_worst_case_does_not_fit_after_the_committed_spend_is_cancelled() {
    let book = BudgetBook::parse(BOOK).unwrap();
    assert!(worst(10) + worst(3) + worst(8) > Decimal::ONE);
    assert!(worst(10) + worst(8) <= Decimal::ONE && worst(3) + worst(8) <= Decimal::ONE);
    let projector = projections(&book).await;
    let log = MemoryEventLog::new();
    assert!(log.replace_budgets(&book, 0).await.unwrap());
    let mut ec2 = fargate(Some(HOUR));
    ec2.platform = Some(Platform::Ec2);
    let batch = waiting(&[
        ("g-small", "genomics", false, fargate(Some(3 * HOUR))),
        ("g-big", "genomics", false, fargate(Some(8 * HOUR))),
        ("g-open", "genomics", false, fargate(None)),
        ("g-ec2", "genomics", false, ec2),
        ("g-protected", "genomics", true, fargate(Some(8 * HOUR))),
        ("i-big", "imaging", false, fargate(Some(20 * HOUR))),
    ]);
    let outbox = Outbox::default();
    let enforcing = Enforcer::new(&batch, &log, &outbox, settings(false))
        .with_pricing(PriceTable::builtin(), "us-east-1");
    let sink = EmfMemory::default();

    let report = enforcer::handle(
        &enforcing,
        &check(&projector),
        &sink,
        json!({"action": "admit", "reason": "the tick"}),
        NOW_MS,
    )
    .await
    .unwrap()
    .unwrap();

    assert_eq!(batch.calls(), ["CancelJob g-big"]);
    let left = Decimal::ONE - worst(10) - worst(3);
    let audit = log
        .audit_entries(BudgetPeriod::Month.bounds(NOW_MS / 1000).0)
        .await
        .unwrap();
    let cancelled: Vec<_> = audit
        .iter()
        .filter(|e| matches!(&e.action, EnforcementAction::JobCancelled { job_id, .. } if job_id == "g-big"))
        .collect();
    assert_eq!(cancelled.len(), 1, "{audit:?}");
    assert_eq!(cancelled[0].level, "budget genomics: admission");
    let reason = &cancelled[0].reason;
    assert!(
        reason.contains(&worst(8).round_dp(6).normalize().to_string())
            && reason.contains(&left.round_dp(6).normalize().to_string())
            && reason.contains("budget genomics"),
        "{reason}"
    );
    assert_eq!(
        report.unbounded_jobs,
        [
            "g-open: it has no timeout",
            "g-ec2: queue shared names no compute environment"
        ]
    );
    assert_eq!(report.protected_jobs, ["g-protected"]);
    assert_eq!(
        *outbox.0.lock().unwrap(),
        ["batchguard: budget genomics turned away 1 job"]
    );
}

/// GIVEN the same stack with the stack's dry run WHEN asked for safe admission THEN the
/// refusal is recorded as a dry run and Batch is not called; and with no safe budget applied,
/// nothing is listed at all.
#[tokio::test]
async fn a_dry_run_records_only_and_without_a_safe_budget_nothing_is_read() {
    let book = BudgetBook::parse(BOOK).unwrap();
    let projector = projections(&book).await;
    let log = MemoryEventLog::new();
    assert!(log.replace_budgets(&book, 0).await.unwrap());
    let batch = waiting(&[("g-huge", "genomics", false, fargate(Some(100 * HOUR)))]);
    let outbox = Outbox::default();
    let dry = Enforcer::new(&batch, &log, &outbox, settings(true))
        .with_pricing(PriceTable::builtin(), "us-east-1");
    let sink = EmfMemory::default();
    enforcer::handle(
        &dry,
        &check(&projector),
        &sink,
        json!({"action": "admit"}),
        NOW_MS,
    )
    .await
    .unwrap();
    assert!(batch.calls().is_empty());
    let audit = log
        .audit_entries(BudgetPeriod::Month.bounds(NOW_MS / 1000).0)
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.dry_run
            && matches!(&e.action, EnforcementAction::JobCancelled { job_id, .. } if job_id == "g-huge")),
        "{audit:?}"
    );

    // No budget with safe admission: the queue is not even listed (a listing that fails
    // would fail the request).
    let open = BudgetBook::parse(&BOOK.replace("admission = \"safe\"\n", "")).unwrap();
    let log = MemoryEventLog::new();
    assert!(log.replace_budgets(&open, 0).await.unwrap());
    let batch = waiting(&[("g-huge", "genomics", false, fargate(Some(100 * HOUR)))]);
    batch.inject("ListJobs shared", Fault::Fails);
    let enforcing = Enforcer::new(&batch, &log, &outbox, settings(false))
        .with_pricing(PriceTable::builtin(), "us-east-1");
    let report = enforcer::handle(
        &enforcing,
        &check(&projector),
        &sink,
        json!({"action": "admit"}),
        NOW_MS,
    )
    .await
    .unwrap()
    .unwrap();
    assert!(report.failures.is_empty() && batch.calls().is_empty());
    // The same fault with the safe budget applied fails the request, naming the listing.
    let log = MemoryEventLog::new();
    assert!(log.replace_budgets(&book, 0).await.unwrap());
    let enforcing = Enforcer::new(&batch, &log, &outbox, settings(false))
        .with_pricing(PriceTable::builtin(), "us-east-1");
    let error = enforcer::handle(
        &enforcing,
        &check(&projector),
        &sink,
        json!({"action": "admit"}),
        NOW_MS,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("ListJobs shared"), "{error}");
}

/// GIVEN genomics' running job committing about 0.49 of its 1 USD, a job already STARTING
/// with an eight-hour timeout (placed, so it will run, but in no committed spend until Batch
/// gives its `startedAt`), listed twice as Batch may list a job that moves on between two
/// `ListJobs` (RUNNABLE, then STARTING), and an older waiting three-hour job WHEN the enforcer
/// is asked for safe admission THEN the starting job is kept once, its worst case taken first
/// and the job left alone, and the waiting job, which would fit without it, is cancelled.
#[tokio::test]
async fn a_starting_jobs_worst_case_is_taken_before_any_waiting_job_is_judged() {
    let book = BudgetBook::parse(BOOK).unwrap();
    assert!(worst(10) + worst(3) <= Decimal::ONE);
    assert!(worst(10) + worst(8) <= Decimal::ONE);
    assert!(worst(10) + worst(8) + worst(3) > Decimal::ONE);
    let projector = projections(&book).await;
    let log = MemoryEventLog::new();
    assert!(log.replace_budgets(&book, 0).await.unwrap());
    let batch = MemoryBatch::with(
        &[("shared", true)],
        &[
            ("g-small", "shared", JobStatus::Runnable, false),
            ("g-starting", "shared", JobStatus::Runnable, false),
            ("g-starting", "shared", JobStatus::Starting, false),
        ],
    );
    batch.describe_job("g-small", &[("team", "genomics")], "pipeline", T0);
    batch.shape_job("g-small", fargate(Some(3 * HOUR)));
    batch.describe_job(
        "g-starting",
        &[("team", "genomics")],
        "pipeline",
        T0 + 60_000,
    );
    batch.shape_job("g-starting", fargate(Some(8 * HOUR)));
    let outbox = Outbox::default();
    let enforcing = Enforcer::new(&batch, &log, &outbox, settings(false))
        .with_pricing(PriceTable::builtin(), "us-east-1");
    enforcer::handle(
        &enforcing,
        &check(&projector),
        &EmfMemory::default(),
        json!({"action": "admit"}),
        NOW_MS,
    )
    .await
    .unwrap();
    assert_eq!(batch.calls(), ["CancelJob g-small"]);
}

/// An EC2 job of `vcpu` vCPUs and twice as many GiB with a timeout of `hours`.
fn ec2(vcpu: u32, hours: u32) -> JobShape {
    JobShape {
        platform: Some(Platform::Ec2),
        size: Some(TaskSize {
            vcpu: Decimal::from(vcpu),
            memory_gib: Decimal::from(2 * vcpu),
            storage_gib: None,
            gpus: None,
        }),
        timeout_seconds: Some(hours * HOUR),
        ..JobShape::default()
    }
}

/// GIVEN genomics (1 USD, safe, about 0.51 USD left after its running job's commitment) and
/// waiting EC2 jobs on a queue whose compute environment launches the `c5` and `m5` families,
/// and one on a queue whose compute environment is unmanaged WHEN the enforcer is asked for
/// safe admission THEN each EC2 job's worst case is its split-cost share on the costlier
/// family (c5: $0.085 an hour for a c5.large's 2 vCPU / 4 GiB; a job of 1 vCPU / 2 GiB weighs
/// 9 + 2 = 11 of its 22) for its timeout: the 1-vCPU, 1-hour job (≈ 0.04 USD) is admitted,
/// the 4-vCPU, 4-hour one (0.17 USD an hour, ≈ 0.68) cancelled with its figures; the job on
/// the unmanaged queue is admitted and named; the compute environments are described once for
/// all; WHEN that description fails THEN the EC2 jobs are admitted and named, and the failure
/// reported.
#[tokio::test]
async fn an_ec2_jobs_worst_case_is_its_share_of_the_costliest_instance_its_queue_may_launch() {
    let book = BudgetBook::parse(BOOK).unwrap();
    let projector = projections(&book).await;
    let placed = || {
        let batch = MemoryBatch::with(
            &[("shared", true), ("byo", true)],
            &[
                ("g-small", "shared", JobStatus::Runnable, false),
                ("g-large", "shared", JobStatus::Runnable, false),
                ("g-byo", "byo", JobStatus::Runnable, false),
            ],
        );
        for (i, (id, shape)) in [
            ("g-small", ec2(1, 1)),
            ("g-large", ec2(4, 4)),
            ("g-byo", ec2(1, 1)),
        ]
        .into_iter()
        .enumerate()
        {
            batch.describe_job(
                id,
                &[("team", "genomics")],
                "pipeline",
                T0 + 60_000 * i as i64,
            );
            batch.shape_job(id, shape);
        }
        batch.place_queue("shared", &["ce-ec2"]);
        batch.place_queue("byo", &["ce-byo"]);
        batch.launch("ce-ec2", Some(&["c5", "m5"]));
        batch.launch("ce-byo", None);
        batch
    };
    async fn admit(
        batch: &MemoryBatch,
        projector: &shared::adapters::memory::MemoryProjector,
        book: &BudgetBook,
    ) -> (
        shared::app::enforcer::EnforcementReport,
        Vec<shared::core::facts::EnforcementRecorded>,
    ) {
        let log = MemoryEventLog::new();
        assert!(log.replace_budgets(book, 0).await.unwrap());
        let outbox = Outbox::default();
        let enforcing = Enforcer::new(batch, &log, &outbox, settings(false))
            .with_pricing(PriceTable::builtin(), "us-east-1");
        let report = enforcer::handle(
            &enforcing,
            &check(projector),
            &EmfMemory::default(),
            json!({"action": "admit", "reason": "the tick"}),
            NOW_MS,
        )
        .await
        .unwrap()
        .unwrap();
        let audit = log
            .audit_entries(BudgetPeriod::Month.bounds(NOW_MS / 1000).0)
            .await
            .unwrap();
        (report, audit)
    }

    let batch = placed();
    let (report, audit) = admit(&batch, &projector, &book).await;
    assert_eq!(batch.calls(), ["CancelJob g-large"]);
    let c5_hour =
        |vcpu: u32| Decimal::new(85, 3) * Decimal::from(9 * vcpu + 2 * vcpu) / Decimal::from(22);
    let large = c5_hour(4) * Decimal::from(4 * HOUR + 30) / Decimal::from(HOUR);
    let small = c5_hour(1) * Decimal::from(HOUR + 30) / Decimal::from(HOUR);
    assert!(small < Decimal::ONE - worst(10) && large > Decimal::ONE - worst(10) - small);
    let refused = audit
        .iter()
        .find(|entry| matches!(&entry.action, EnforcementAction::JobCancelled { job_id, .. } if job_id == "g-large"))
        .unwrap();
    assert!(
        refused
            .reason
            .contains(&large.round_dp(6).normalize().to_string()),
        "{refused:?}"
    );
    assert_eq!(
        report.unbounded_jobs,
        [
            "g-byo: compute environment ce-byo does not say which instance types it launches (unmanaged)"
        ]
    );
    assert_eq!(
        *batch.environment_reads.lock().unwrap(),
        [vec!["ce-byo".to_owned(), "ce-ec2".to_owned()]]
    );

    let failing = placed();
    failing.inject("DescribeComputeEnvironments", Fault::Fails);
    // The enforcer itself, with what the ledger leaves genomics: the handler answers a run
    // with a failure as one to retry.
    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    let left =
        std::collections::BTreeMap::from([("genomics".to_owned(), Decimal::ONE - worst(10))]);
    let report = Enforcer::new(&failing, &log, &outbox, settings(false))
        .with_pricing(PriceTable::builtin(), "us-east-1")
        .admit(&book, &left, NOW_MS)
        .await
        .unwrap();
    assert!(failing.calls().is_empty());
    assert_eq!(
        report.unbounded_jobs.len(),
        3,
        "{:?}",
        report.unbounded_jobs
    );
    assert!(
        report
            .failures
            .iter()
            .any(|failure| failure.action == "DescribeComputeEnvironments"),
        "{:?}",
        report.failures
    );

    // With no EC2 job waiting, the same failure fails nothing (a stack of Fargate queues
    // does not depend on it): the safe gate just carries no instance types.
    let fargate_only = MemoryBatch::with(
        &[("shared", true)],
        &[("g-fargate", "shared", JobStatus::Runnable, false)],
    );
    fargate_only.describe_job("g-fargate", &[("team", "genomics")], "pipeline", T0);
    fargate_only.shape_job("g-fargate", fargate(Some(HOUR)));
    fargate_only.place_queue("shared", &["ce-fargate"]);
    fargate_only.inject("DescribeComputeEnvironments", Fault::Fails);
    let report = Enforcer::new(&fargate_only, &log, &outbox, settings(false))
        .with_pricing(PriceTable::builtin(), "us-east-1")
        .admit(&book, &left, NOW_MS)
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(report.unbounded_jobs.is_empty());
    assert!(report.gate.unwrap().instance_types.is_empty());
}
