//! The enforcer acting on applied budgets (issue 17, ADR 0012): only the jobs a budget counts
//! are touched, the strictest action reaching a job wins and is named, drain turns away what
//! arrives after it while cancel-queued and terminate reach what was already there, a budget's
//! dry run changes nothing, protection holds, and an order the ledger does not back is
//! refused. In-memory Batch (it holds jobs in every state, as the emulator cannot without
//! Docker); the ledger from the sample day's events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use serde_json::json;
use shared::adapters::emf::EmfMemory;
use shared::adapters::memory::{MemoryBatch, MemoryEventLog, MemoryProjector, Outbox};
use shared::app::enforcer::{Enforcer, EnforcerSettings};
use shared::app::ticker::{MAX_SCOPES_READ, TickerSettings};
use shared::app::verify::LedgerCheck;
use shared::core::budget::BudgetPeriod;
use shared::core::budgets::{Action, BudgetBook, BudgetFigures};
use shared::core::enforcement::BudgetOrder;
use shared::core::facts::{EnforcementAction, JobStatus};
use shared::core::policy::BudgetPolicy;
use shared::handlers::enforcer;
use shared::ports::{AuditTrail, BudgetStore, JobProjections};

const AT_MS: i64 = 1_795_413_600_000; // 2026-11-23T06:00:00Z
const MINUTE: i64 = 60_000;

/// Two teams' budgets on one shared queue; imaging's is a dry run.
fn book() -> BudgetBook {
    BudgetBook::parse(
        r#"
[[budget]]
name = "genomics"
amount_usd = "10"
period = "month"
scope = { tags = ["team=genomics"] }
thresholds = [
  { at_percent = "50", action = "drain" },
  { at_percent = "80", action = "cancel-queued" },
  { at_percent = "100", action = "terminate" },
]

[[budget]]
name = "imaging"
amount_usd = "10"
period = "month"
dry_run = true
scope = { tags = ["team=imaging"] }
thresholds = [{ at_percent = "100", action = "terminate" }]
"#,
    )
    .unwrap()
}

/// The shared queue holding `jobs` (id, status, protected, team), each of definition
/// `pipeline`, submitted an hour before `AT_MS`.
fn queue_with(jobs: &[(&str, JobStatus, bool, &str)]) -> MemoryBatch {
    let listed: Vec<(&str, &str, JobStatus, bool)> = jobs
        .iter()
        .map(|(id, status, protected, _)| (*id, "shared", *status, *protected))
        .collect();
    let batch = MemoryBatch::with(&[("shared", true)], &listed);
    for (id, _, _, team) in jobs {
        batch.describe_job(id, &[("team", team)], "pipeline", AT_MS - 3_600_000);
    }
    batch
}

/// The shared queue: each team's running and waiting jobs, submitted before `AT_MS`, and a
/// protected genomics job.
fn shared_queue() -> MemoryBatch {
    queue_with(&[
        ("g-run", JobStatus::Running, false, "genomics"),
        ("g-wait", JobStatus::Runnable, false, "genomics"),
        ("g-protected", JobStatus::Running, true, "genomics"),
        ("i-run", JobStatus::Running, false, "imaging"),
        ("i-wait", JobStatus::Runnable, false, "imaging"),
    ])
}

/// A monthly budget for one team's tagged jobs, acting at 100 % of `amount`.
fn team_budget(team: &str, amount: &str, action: &str) -> String {
    format!(
        "[[budget]]\nname = \"{team}\"\namount_usd = \"{amount}\"\nperiod = \"month\"\n\
         scope = {{ tags = [\"team={team}\"] }}\n\
         thresholds = [{{ at_percent = \"100\", action = \"{action}\" }}]\n"
    )
}

fn settings() -> EnforcerSettings {
    EnforcerSettings {
        queues: vec![],
        dry_run: false,
        period: BudgetPeriod::Month,
    }
}

fn order(budget: &str, action: Action) -> BudgetOrder {
    BudgetOrder {
        budget: budget.into(),
        action,
        reason: format!("{budget} at {action}"),
    }
}

/// What one enforcement of `orders` on the shared queue did.
struct Acted {
    /// The mutating calls made to Batch, sorted.
    calls: Vec<String>,
    log: MemoryEventLog,
    outbox: Outbox,
    report: shared::app::enforcer::EnforcementReport,
}

/// Enforces `orders` once, at `AT_MS`, on a fresh shared queue.
async fn act_once(book: &BudgetBook, orders: &[BudgetOrder], settings: EnforcerSettings) -> Acted {
    let batch = shared_queue();
    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    let report = Enforcer::new(&batch, &log, &outbox, settings)
        .enforce_budgets(book, orders, AT_MS)
        .await
        .unwrap();
    let mut calls = batch.calls();
    calls.sort();
    Acted {
        calls,
        log,
        outbox,
        report,
    }
}

/// GIVEN two teams sharing a queue WHEN genomics' budget drains, then cancels the queue, then
/// terminates THEN at drain only a genomics job submitted after the drain began is cancelled
/// (the waiting one from before stays, imaging's jobs are untouched and the queue stays
/// open); at cancel-queued the older waiting job goes too; at terminate its running job; the
/// protected job never; every action is in the audit trail under the budget's name, and each
/// budget is notified once per action.
#[tokio::test]
async fn drain_on_a_shared_queue_turns_away_only_the_runaway_teams_new_jobs() {
    let batch = shared_queue();
    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    let enforcer = Enforcer::new(&batch, &log, &outbox, settings());
    let book = book();

    // The first drain: nothing had arrived since it began.
    let first = enforcer
        .enforce_budgets(&book, &[order("genomics", Action::Drain)], AT_MS)
        .await
        .unwrap();
    assert!(batch.calls().is_empty(), "{:?}", batch.calls());
    assert_eq!(outbox.0.lock().unwrap().len(), 1);
    assert!(first.failures.is_empty(), "{first:?}");

    // A genomics job and an imaging job arrive after it; the next tick drains again.
    batch.jobs.lock().unwrap().extend(
        shared_queue()
            .jobs
            .lock()
            .unwrap()
            .iter()
            .filter(|j| j.job_id == "g-wait" || j.job_id == "i-wait")
            .map(|j| {
                let mut j = j.clone();
                j.job_id = format!("{}-new", j.job_id);
                j.created_at_ms = Some(AT_MS + 30_000);
                j
            }),
    );
    enforcer
        .enforce_budgets(&book, &[order("genomics", Action::Drain)], AT_MS + MINUTE)
        .await
        .unwrap();
    assert_eq!(batch.calls(), ["CancelJob g-wait-new"]);
    assert_eq!(
        outbox.0.lock().unwrap().len(),
        1,
        "one notice per budget and action a period"
    );
    assert!(
        batch.queues.lock().unwrap()["shared"],
        "the queue stays open"
    );

    enforcer
        .enforce_budgets(
            &book,
            &[order("genomics", Action::CancelQueued)],
            AT_MS + 2 * MINUTE,
        )
        .await
        .unwrap();
    assert_eq!(batch.calls(), ["CancelJob g-wait-new", "CancelJob g-wait"]);

    let last = enforcer
        .enforce_budgets(
            &book,
            &[order("genomics", Action::Terminate)],
            AT_MS + 3 * MINUTE,
        )
        .await
        .unwrap();
    assert_eq!(
        batch.calls(),
        [
            "CancelJob g-wait-new",
            "CancelJob g-wait",
            "TerminateJob g-run"
        ]
    );
    assert!(last.protected_jobs.contains(&"g-protected".to_owned()));
    assert_eq!(outbox.0.lock().unwrap().len(), 3);

    let period_start = BudgetPeriod::Month.bounds(AT_MS / 1000).0;
    let audit = log.audit_entries(period_start).await.unwrap();
    let terminated = audit
        .iter()
        .find(|e| matches!(&e.action, EnforcementAction::JobTerminated { job_id, .. } if job_id == "g-run"))
        .unwrap();
    assert_eq!(terminated.level, "budget genomics: terminate");
    assert!(!terminated.dry_run);
    assert!(
        audit
            .iter()
            .all(|e| e.action.target() != "i-run" && e.action.target() != "i-wait"),
        "imaging's jobs are not in the trail"
    );
}

/// GIVEN both budgets at terminate, imaging's a dry run WHEN the enforcer acts THEN genomics'
/// running job is terminated, imaging's are recorded as what its dry run would do and no call
/// touches them.
#[tokio::test]
async fn a_budgets_dry_run_records_and_changes_nothing() {
    let Acted {
        calls,
        outbox,
        report,
        ..
    } = act_once(
        &book(),
        &[
            order("genomics", Action::Terminate),
            order("imaging", Action::Terminate),
        ],
        settings(),
    )
    .await;
    assert_eq!(calls, ["CancelJob g-wait", "TerminateJob g-run"]);
    let imaging: Vec<(&str, bool)> = report
        .actions
        .iter()
        .filter(|a| a.action.target().starts_with("i-"))
        .map(|a| (a.action.target(), a.carried_out))
        .collect();
    assert_eq!(imaging, [("i-run", false), ("i-wait", false)]);
    let subjects = outbox.0.lock().unwrap().join("\n");
    assert!(
        subjects.contains("budget imaging at terminate (dry run)"),
        "{subjects}"
    );
}

/// Two budgets reaching one job: the strictest acts and is named. `team-all` counts every
/// job of the queue and only drains; `genomics` terminates.
#[tokio::test]
async fn when_two_budgets_reach_a_job_the_strictest_acts_and_is_named() {
    let book = BudgetBook::parse(
        r#"
[[budget]]
name = "queue"
amount_usd = "10"
period = "month"
scope = { queues = ["shared"] }
thresholds = [{ at_percent = "50", action = "cancel-queued" }]

[[budget]]
name = "genomics"
amount_usd = "10"
period = "month"
scope = { tags = ["team=genomics"] }
thresholds = [{ at_percent = "100", action = "terminate" }]
"#,
    )
    .unwrap();
    let Acted {
        calls, log, report, ..
    } = act_once(
        &book,
        &[
            order("queue", Action::CancelQueued),
            order("genomics", Action::Terminate),
        ],
        settings(),
    )
    .await;
    assert_eq!(
        calls,
        [
            "CancelJob g-wait",
            "CancelJob i-wait",
            "TerminateJob g-run",
            "UpdateJobQueue shared false"
        ],
        "imaging's running job is only in the queue's budget, which does not terminate; \
         that budget owns the queue (it counts every job in it), so it is disabled"
    );
    let period_start = BudgetPeriod::Month.bounds(AT_MS / 1000).0;
    let audit = log.audit_entries(period_start).await.unwrap();
    let level_of = |id: &str| {
        audit
            .iter()
            .find(|e| e.action.target() == id)
            .map(|e| e.level.clone())
            .unwrap()
    };
    assert_eq!(level_of("g-wait"), "budget genomics: terminate");
    assert_eq!(level_of("i-wait"), "budget queue: cancel-queued");
    assert!(report.failures.is_empty(), "{report:?}");
}

/// GIVEN an enforcing budget for the whole shared queue at cancel-queued and a dry-run budget
/// for one team inside it at terminate WHEN both act THEN the enforcing budget's cancels are
/// carried out on every waiting job, the team's included (a dry-run budget, however strict,
/// never takes an enforcing one's place on a job they share), and the dry run's terminate is
/// only recorded.
#[tokio::test]
async fn a_dry_run_budget_never_takes_an_enforcing_ones_place() {
    let book = BudgetBook::parse(
        r#"
[[budget]]
name = "org"
amount_usd = "10"
period = "month"
scope = { queues = ["shared"] }
thresholds = [{ at_percent = "80", action = "cancel-queued" }]

[[budget]]
name = "genomics-trial"
parent = "org"
amount_usd = "1"
period = "month"
dry_run = true
scope = { tags = ["team=genomics"] }
thresholds = [{ at_percent = "100", action = "terminate" }]
"#,
    )
    .unwrap();
    let Acted { calls, report, .. } = act_once(
        &book,
        &[
            order("org", Action::CancelQueued),
            order("genomics-trial", Action::Terminate),
        ],
        settings(),
    )
    .await;
    assert_eq!(
        calls,
        [
            "CancelJob g-wait",
            "CancelJob i-wait",
            "UpdateJobQueue shared false"
        ],
        "org owns the shared queue: its cancel-queued disables it too"
    );
    let g_run: Vec<bool> = report
        .actions
        .iter()
        .filter(|a| a.action.target() == "g-run")
        .map(|a| a.carried_out)
        .collect();
    assert_eq!(g_run, [false], "the dry run's terminate, recorded only");
}

/// GIVEN a stack scoped to other queues (`JobQueueArns`) WHEN a budget whose scope names no
/// queue terminates THEN no job outside the stack's queues is touched; scoped to the shared
/// queue, its jobs are.
#[tokio::test]
async fn budget_orders_stay_inside_the_stacks_queues() {
    for (queues, expected) in [
        (vec!["elsewhere".to_owned()], Vec::<&str>::new()),
        (
            vec!["shared".to_owned()],
            vec!["CancelJob g-wait", "TerminateJob g-run"],
        ),
    ] {
        let Acted { calls, .. } = act_once(
            &book(),
            &[order("genomics", Action::Terminate)],
            EnforcerSettings {
                queues: queues.clone(),
                ..settings()
            },
        )
        .await;
        assert_eq!(calls, expected, "stack queues {queues:?}");
    }
}

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

/// GIVEN notices that cannot be sent (a deleted topic) WHEN a budget drains on two ticks
/// THEN the drain still begins at the first: a job submitted between them is cancelled, and
/// the failed notices are reported.
#[tokio::test]
async fn a_drain_begins_when_it_is_first_ordered_whatever_the_notices_do() {
    let batch = shared_queue();
    let log = MemoryEventLog::new();
    let enforcer = Enforcer::new(&batch, &log, &BrokenNotifier, settings());
    let first = enforcer
        .enforce_budgets(&book(), &[order("genomics", Action::Drain)], AT_MS)
        .await
        .unwrap();
    assert_eq!(first.failures.len(), 1, "{first:?}");
    let mut late = batch
        .jobs
        .lock()
        .unwrap()
        .iter()
        .find(|j| j.job_id == "g-wait")
        .unwrap()
        .clone();
    late.job_id = "g-late".into();
    late.created_at_ms = Some(AT_MS + 30_000);
    batch.jobs.lock().unwrap().push(late);
    enforcer
        .enforce_budgets(&book(), &[order("genomics", Action::Drain)], AT_MS + MINUTE)
        .await
        .unwrap();
    assert_eq!(batch.calls(), ["CancelJob g-late"]);
}

/// The first 400 sample-day events in the in-memory projections, summed under genomics'
/// budget (0.05 USD: over, at terminate) and imaging's (100,000 USD: under); the book applied
/// to the log; the shared queue; and the last event's time.
struct LedgerBacked {
    projector: MemoryProjector,
    log: MemoryEventLog,
    batch: MemoryBatch,
    outbox: Outbox,
    last_ms: i64,
}

impl LedgerBacked {
    fn check(&self) -> LedgerCheck<&MemoryProjector> {
        LedgerCheck {
            reader: &self.projector,
            settings: TickerSettings {
                budget: None,
                policy: BudgetPolicy::default(),
                period: BudgetPeriod::Month,
                scope_queues: vec![],
                max_scopes_read: MAX_SCOPES_READ,
                budgets: Default::default(),
            },
            baseline: None::<shared::app::ticker::NoAwsBudget>,
        }
    }
}

async fn ledger_backed() -> LedgerBacked {
    let applied = BudgetBook::parse(&format!(
        "{}\n{}",
        team_budget("genomics", "0.05", "terminate"),
        team_budget("imaging", "100000", "terminate")
    ))
    .unwrap();
    let (projector, last_ms) = batchguard_tests::sample_day_projector(&applied, 400).await;
    let log = MemoryEventLog::new();
    assert!(log.replace_budgets(&applied, 0).await.unwrap());
    let batch = shared_queue();
    let outbox = Outbox::default();
    LedgerBacked {
        projector,
        log,
        batch,
        outbox,
        last_ms,
    }
}

/// GIVEN the sample day's first 400 events in the ledger, with the budgets applied to the
/// store WHEN the enforcer is asked, through its handler, to terminate for genomics (over its
/// amount on the ledger), for imaging (under its first threshold) and for a budget nobody
/// applied THEN the genomics order is carried out and the other two are refused and recorded,
/// touching nothing.
#[tokio::test]
async fn orders_the_ledger_does_not_back_are_refused() {
    let stack = ledger_backed().await;
    let (batch, log, last_ms) = (&stack.batch, &stack.log, stack.last_ms);
    let enforcing = Enforcer::new(batch, log, &stack.outbox, settings());
    let check = stack.check();
    let payload = json!({"action": "budgets", "orders": [
        {"budget": "genomics", "action": "terminate", "reason": "over"},
        {"budget": "imaging", "action": "terminate", "reason": "forged"},
        {"budget": "nobody", "action": "drain", "reason": "forged"},
    ]});
    let sink = EmfMemory::default();
    let report = enforcer::handle(&enforcing, &check, &sink, payload, last_ms + 1_000)
        .await
        .unwrap()
        .unwrap();
    let mut calls = batch.calls();
    calls.sort();
    assert_eq!(calls, ["CancelJob g-wait", "TerminateJob g-run"]);
    let refused: Vec<&str> = report
        .actions
        .iter()
        .filter_map(|a| match &a.action {
            EnforcementAction::Refused { request } => Some(request.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        ["budget imaging: terminate", "budget nobody: drain"]
    );
    let period_start = BudgetPeriod::Month.bounds(last_ms / 1000).0;
    let audit = log.audit_entries(period_start).await.unwrap();
    let reasons: Vec<&str> = audit
        .iter()
        .filter(|e| matches!(e.action, EnforcementAction::Refused { .. }))
        .map(|e| e.reason.as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("budget imaging asked to terminate, but its spend is below")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("no budget named nobody is applied")),
        "{reasons:?}"
    );
}

/// GIVEN the same ledger WHEN the alarm on the applied budgets' highest action level goes to
/// ALARM (its description says `batchguard:budgets`) THEN the enforcer judges every applied
/// budget on the ledger itself and carries out genomics' terminate, as the ticker's order
/// would be (imaging, under its threshold, is not touched), with the alarm named in the
/// reason; the same alarm back to OK does nothing.
#[tokio::test]
async fn the_alarm_on_the_applied_budgets_has_the_enforcer_judge_them_itself() {
    let stack = ledger_backed().await;
    let enforcing = Enforcer::new(&stack.batch, &stack.log, &stack.outbox, settings());
    let check = stack.check();
    let mut alarm: serde_json::Value = serde_json::from_str(&batchguard_tests::fixture_text(
        "cloudwatch_alarm_lambda_action_metric_aws_lambda_events_fixture.json",
    ))
    .unwrap();
    alarm["alarmData"]["configuration"]["description"] =
        json!("An applied budget calls for shed or terminate. batchguard:budgets");
    let mut recovered = alarm.clone();
    recovered["alarmData"]["state"]["value"] = json!("OK");
    let sink = EmfMemory::default();
    let nothing = enforcer::handle(&enforcing, &check, &sink, recovered, stack.last_ms + 1_000)
        .await
        .unwrap();
    assert!(nothing.is_none());
    assert!(stack.batch.calls().is_empty());

    let report = enforcer::handle(&enforcing, &check, &sink, alarm, stack.last_ms + 1_000)
        .await
        .unwrap()
        .unwrap();
    let mut calls = stack.batch.calls();
    calls.sort();
    assert_eq!(calls, ["CancelJob g-wait", "TerminateJob g-run"]);
    assert!(
        report
            .actions
            .iter()
            .all(|a| !matches!(a.action, EnforcementAction::Refused { .. })),
        "{report:?}"
    );
    assert!(
        report.reason.contains("lambda-demo-metric-alarm") && report.reason.contains("genomics"),
        "{}",
        report.reason
    );
}

/// GIVEN the alarm on the applied budgets in ALARM WHEN no applied budget is at a threshold on
/// the ledger (a forged metric, or one that has fallen back) THEN nothing is done to any job,
/// and the alarm is refused, recorded and notified.
#[tokio::test]
async fn an_alarm_on_the_applied_budgets_the_ledger_does_not_back_is_refused() {
    let stack = ledger_backed().await;
    let under = BudgetBook::parse(&team_budget("imaging", "100000", "terminate")).unwrap();
    let version = stack.log.budgets_version().await.unwrap();
    assert!(stack.log.replace_budgets(&under, version).await.unwrap());
    let enforcing = Enforcer::new(&stack.batch, &stack.log, &stack.outbox, settings());
    let check = stack.check();
    let mut alarm: serde_json::Value = serde_json::from_str(&batchguard_tests::fixture_text(
        "cloudwatch_alarm_lambda_action_metric_aws_lambda_events_fixture.json",
    ))
    .unwrap();
    alarm["alarmData"]["configuration"]["description"] = json!("batchguard:budgets");
    let sink = EmfMemory::default();
    let report = enforcer::handle(&enforcing, &check, &sink, alarm, stack.last_ms + 1_000)
        .await
        .unwrap()
        .unwrap();
    assert!(stack.batch.calls().is_empty(), "{:?}", stack.batch.calls());
    assert_eq!(
        report
            .actions
            .iter()
            .map(|a| a.action.clone())
            .collect::<Vec<_>>(),
        [EnforcementAction::Refused {
            request: "budgets alarm".into()
        }]
    );
    assert_eq!(
        stack.outbox.0.lock().unwrap().clone(),
        ["batchguard: refused budgets alarm"]
    );
}

/// On the emulator's Batch through the real SDK: GIVEN one genomics and one imaging job on a
/// shared queue WHEN the enforcer's listing reads them THEN each carries what a budget matches
/// on — its queue, its definition's name without the revision, its tags (`DescribeJobs`) and
/// when it was submitted (`ListJobs`) — and the genomics budget counts only the genomics job;
/// and what safe admission prices it by (its size and timeout, `DescribeJobs`).
/// (The emulator runs a job to SUCCEEDED at once without Docker, and ignores `dependsOn`, so
/// the cancelling itself is tested on the in-memory Batch above.)
#[tokio::test]
async fn on_the_emulator_the_job_listing_carries_what_a_budget_matches_on() {
    use shared::adapters::batch::AwsBatch;
    use shared::core::budgets::JobFacets;
    use shared::ports::BatchControl;
    let config = batchguard_tests::emulator_config().await;
    let client = aws_sdk_batch::Client::new(&config);
    let queue = batchguard_tests::unique_prefix("budget-shared");
    batchguard_tests::emulator_queue(&client, &queue).await;
    let definition =
        batchguard_tests::emulator_job_definition(&client, &format!("{queue}-pipeline")).await;
    let mut ids = Vec::new();
    for team in ["genomics", "imaging"] {
        // Genomics' job has a 15-minute timeout (safe admission's bound), imaging's none.
        let timeout = (team == "genomics").then(|| {
            aws_sdk_batch::types::JobTimeout::builder()
                .attempt_duration_seconds(900)
                .build()
        });
        let id = client
            .submit_job()
            .job_name(team)
            .job_queue(&queue)
            .job_definition(&definition)
            .tags("team", team)
            .set_timeout(timeout)
            .send()
            .await
            .unwrap()
            .job_id()
            .unwrap()
            .to_owned();
        ids.push(id);
    }
    let book = BudgetBook::parse(&format!(
        r#"
[[budget]]
name = "genomics"
amount_usd = "10"
period = "month"
scope = {{ queues = ["{queue}"], job_definitions = ["{queue}-pipeline"], tags = ["team=genomics"] }}
thresholds = [{{ at_percent = "80", action = "cancel-queued" }}]
"#
    ))
    .unwrap();
    let listed = AwsBatch::from_config(&config)
        .jobs(&queue, &JobStatus::ALL)
        .await
        .unwrap();
    // The queue names its compute environment (from its ARN in `computeEnvironmentOrder`):
    // a budget scoped by compute environment reaches the jobs of a queue with one.
    let queues = AwsBatch::from_config(&config)
        .queues(std::slice::from_ref(&queue))
        .await
        .unwrap();
    assert_eq!(queues.len(), 1);
    assert_eq!(queues[0].compute_environments, [format!("{queue}-ce")]);
    let mut counted = Vec::new();
    let mut shapes = Vec::new();
    for id in &ids {
        let job = listed
            .iter()
            .find(|j| &j.job_id == id)
            .unwrap_or_else(|| panic!("{id} not in {listed:?}"));
        assert!(job.created_at_ms.is_some(), "{job:?}");
        let tags: Vec<(String, String)> = job
            .tags
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let facets = JobFacets {
            queue: &job.queue,
            compute_environment: None,
            job_definition: job.job_definition.as_deref().unwrap(),
            tags: &tags,
        };
        counted.push(book.budgets_of(&facets).len());
        shapes.push(job.shape);
    }
    assert_eq!(counted, [1, 0], "{listed:?}");
    // AND each carries its size (the definition's 1 vCPU, 2048 MiB) and its timeout, read
    // through the event parser, for safe admission. (The emulator's DescribeJobs leaves out
    // `platformCapabilities`, which AWS's includes: the platform is then unknown, and the
    // job unpriced.)
    let size = Some(shared::core::facts::TaskSize {
        vcpu: Decimal::ONE,
        memory_gib: Decimal::TWO,
        storage_gib: None,
        gpus: None,
    });
    assert_eq!(shapes[0].timeout_seconds, Some(900), "{:?}", shapes[0]);
    assert_eq!(shapes[1].timeout_seconds, None, "{:?}", shapes[1]);
    assert_eq!((shapes[0].size, shapes[1].size), (size, size));
}

/// What the projections would say of each job (a stand-in for the projector: the in-memory
/// Batch's job ids are not those of any events), and the reads asked of it.
#[derive(Default)]
struct Burns {
    readings: BTreeMap<String, shared::ports::JobReading>,
    reads: std::sync::Mutex<Vec<Vec<String>>>,
}

impl JobProjections for Burns {
    async fn due_caps(
        &self,
        _at: i64,
        _limit: usize,
    ) -> Result<Vec<shared::ports::DueCap>, shared::ports::StoreError> {
        Ok(Vec::new())
    }

    async fn cap_reading(
        &self,
        _job_id: &str,
        _at: i64,
    ) -> Result<Option<shared::core::caps::CapReading>, shared::ports::StoreError> {
        Ok(None)
    }

    async fn defer_cap(
        &self,
        _job_id: &str,
        _version: u64,
        _until: i64,
    ) -> Result<bool, shared::ports::StoreError> {
        Ok(false)
    }

    async fn job_readings(
        &self,
        job_ids: &[String],
    ) -> Result<BTreeMap<String, shared::ports::JobReading>, shared::ports::StoreError> {
        self.reads.lock().unwrap().push(job_ids.to_vec());
        Ok(job_ids
            .iter()
            .filter_map(|job| self.readings.get(job).map(|r| (job.clone(), r.clone())))
            .collect())
    }
}

/// Three running genomics jobs, a protected one and an imaging one on the shared queue, and
/// genomics shedding at 100 % of 10 USD.
fn shedding() -> (BudgetBook, MemoryBatch) {
    let book = BudgetBook::parse(&team_budget("genomics", "10", "shed")).unwrap();
    let batch = queue_with(&[
        ("g1", JobStatus::Running, false, "genomics"),
        ("g2", JobStatus::Running, false, "genomics"),
        ("g3", JobStatus::Running, false, "genomics"),
        ("g-protected", JobStatus::Running, true, "genomics"),
        ("i1", JobStatus::Running, false, "imaging"),
    ]);
    (book, batch)
}

fn burns(known: &[(&str, Decimal)]) -> Burns {
    placed(
        &known
            .iter()
            .map(|(job, burn)| (*job, *burn, None))
            .collect::<Vec<_>>(),
    )
}

/// Jobs' projections: (job, burn rate, compute environment).
fn placed(known: &[(&str, Decimal, Option<&str>)]) -> Burns {
    Burns {
        readings: known
            .iter()
            .map(|(job, burn, environment)| {
                let reading = shared::ports::JobReading {
                    burn_usd_per_hour: *burn,
                    compute_environment: environment.map(str::to_owned),
                };
                ((*job).to_owned(), reading)
            })
            .collect(),
        reads: std::sync::Mutex::default(),
    }
}

/// GIVEN a budget scoped by the on-demand compute environment at `terminate` and a queue
/// that places jobs on Spot first and on-demand after, running jobs whose projections place
/// them on each, one projected with no placement and one not projected, and a waiting job
/// WHEN the enforcer carries its order out THEN it terminates only the job its events placed
/// on on-demand, reading the running jobs' projections once (Batch's listing does not say
/// where a job runs; where it is not known, the job is in no budget scoped by compute
/// environment, and a waiting job has no place yet), a job listed under two statuses once;
/// AT `shed` THEN the same reading gives the burn rates, not read again, and the job listed
/// twice burns once.
#[tokio::test]
async fn a_budget_scoped_by_compute_environment_reaches_running_jobs_where_their_events_placed_them()
 {
    let book = BudgetBook::parse(
        r#"
[[budget]]
name = "ondemand"
amount_usd = "10"
period = "month"
scope = { compute_environments = ["ce-ondemand"] }
thresholds = [{ at_percent = "90", action = "shed" }, { at_percent = "100", action = "terminate" }]
"#,
    )
    .unwrap();
    let readings = || {
        placed(&[
            ("r-spot", Decimal::ONE, Some("ce-spot")),
            ("r-od", Decimal::ONE, Some("ce-ondemand")),
            ("r-od-2", Decimal::new(5, 1), Some("ce-ondemand")),
            ("r-unplaced", Decimal::ONE, None),
        ])
    };
    let batch = || {
        let batch = queue_with(&[
            ("r-spot", JobStatus::Running, false, "genomics"),
            // Listed twice, as a job that moved from STARTING to RUNNING between two
            // `ListJobs` is: read and counted once.
            ("r-od", JobStatus::Starting, false, "genomics"),
            ("r-od", JobStatus::Running, false, "genomics"),
            ("r-od-2", JobStatus::Running, false, "imaging"),
            ("r-unplaced", JobStatus::Running, false, "genomics"),
            ("r-unknown", JobStatus::Starting, false, "genomics"),
            ("w-wait", JobStatus::Runnable, false, "genomics"),
        ]);
        batch.place_queue("shared", &["ce-spot", "ce-ondemand"]);
        batch
    };

    let terminating = batch();
    let projections = readings();
    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    Enforcer::new(&terminating, &log, &outbox, settings())
        .with_projections(&projections)
        .enforce_budgets(&book, &[order("ondemand", Action::Terminate)], AT_MS)
        .await
        .unwrap();
    let mut calls = terminating.calls();
    calls.sort();
    assert_eq!(calls, ["TerminateJob r-od", "TerminateJob r-od-2"]);
    let reads = projections.reads.lock().unwrap().clone();
    assert_eq!(reads.len(), 1, "{reads:?}");
    let mut read = reads[0].clone();
    read.sort();
    assert_eq!(
        read,
        ["r-od", "r-od-2", "r-spot", "r-unknown", "r-unplaced"]
    );

    // Shedding: 9 USD spent, 2 hours left, 1.5 USD an hour burning on on-demand (its two
    // jobs): the forecast is 9 + 1.5 × 2 = 12; stopping the costlier (1 an hour) leaves
    // 9 + 0.5 × 2 = 10, inside the amount.
    let figures = BTreeMap::from([(
        "ondemand".to_owned(),
        BudgetFigures {
            spend_usd: Decimal::from(9),
            burn_usd_per_hour: Decimal::new(15, 1),
            hours_left: Decimal::TWO,
        },
    )]);
    let shedding = batch();
    let projections = readings();
    let log = MemoryEventLog::new();
    Enforcer::new(&shedding, &log, &outbox, settings())
        .with_projections(&projections)
        .enforce_budgets_with_figures(&book, &[order("ondemand", Action::Shed)], &figures, AT_MS)
        .await
        .unwrap();
    assert_eq!(shedding.calls(), ["TerminateJob r-od"]);
    assert_eq!(
        projections.reads.lock().unwrap().len(),
        1,
        "the placements' reading gives the burn rates too"
    );
}

/// GIVEN genomics at its shed threshold with 8 USD spent, 2 hours left, and running jobs
/// burning 1, 0.5 and 0.25 USD an hour besides a protected one burning 0.5 (the ledger's burn
/// for the budget: 2.25) WHEN the enforcer sheds THEN it terminates the costliest two, g1 and
/// g2: keeping them all forecasts 8 + 2.25 × 2 = 12.5, stopping g1 10.5, stopping g2 too
/// 9.5 ≤ 10 (the protected job burns on, and counts); imaging's job and g3 run on. With a
/// running job whose burn is not known, or no projections at all, it stops every running
/// genomics job, the safe side.
#[tokio::test]
async fn shed_on_the_stack_stops_the_fewest_jobs_that_bring_the_forecast_inside() {
    let figures = BTreeMap::from([(
        "genomics".to_owned(),
        BudgetFigures {
            spend_usd: Decimal::from(8),
            burn_usd_per_hour: Decimal::new(225, 2),
            hours_left: Decimal::TWO,
        },
    )]);
    let every_burn = [
        ("g1", Decimal::ONE),
        ("g2", Decimal::new(5, 1)),
        ("g3", Decimal::new(25, 2)),
        ("g-protected", Decimal::new(5, 1)),
        ("i1", Decimal::from(3)),
    ];
    let orders = [order("genomics", Action::Shed)];
    let shed_with = |known: Burns| async {
        let (book, batch) = shedding();
        let log = MemoryEventLog::new();
        let outbox = Outbox::default();
        let report = Enforcer::new(&batch, &log, &outbox, settings())
            .with_projections(known)
            .enforce_budgets_with_figures(&book, &orders, &figures, AT_MS)
            .await
            .unwrap();
        let mut calls = batch.calls();
        calls.sort();
        (calls, report, log)
    };

    let (calls, report, log) = shed_with(burns(&every_burn)).await;
    assert_eq!(calls, ["TerminateJob g1", "TerminateJob g2"]);
    assert_eq!(report.protected_jobs, ["g-protected"]);
    let trail = log
        .audit_entries(BudgetPeriod::Month.bounds(AT_MS / 1000).0)
        .await
        .unwrap();
    let terminated: Vec<&str> = trail
        .iter()
        .filter(|entry| matches!(entry.action, EnforcementAction::JobTerminated { .. }))
        .map(|entry| entry.level.as_str())
        .collect();
    assert_eq!(
        terminated,
        ["budget genomics: shed", "budget genomics: shed"],
        "{trail:?}"
    );

    // Without the protected job's burn counted, stopping g1 alone would look enough.
    let unprotected = BudgetFigures {
        burn_usd_per_hour: Decimal::new(175, 2),
        ..figures["genomics"]
    };
    assert_eq!(
        unprotected
            .for_shed(Decimal::new(175, 2))
            .unwrap()
            .spend_usd,
        Decimal::from(8)
    );

    let (calls, _, _) = shed_with(burns(&every_burn[1..])).await;
    assert_eq!(
        calls,
        ["TerminateJob g1", "TerminateJob g2", "TerminateJob g3"],
        "g1's burn is not known: all of genomics' running jobs stop"
    );
    let (book, batch) = shedding();
    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    Enforcer::new(&batch, &log, &outbox, settings())
        .enforce_budgets_with_figures(&book, &orders, &figures, AT_MS)
        .await
        .unwrap();
    let mut calls = batch.calls();
    calls.sort();
    assert_eq!(
        calls,
        ["TerminateJob g1", "TerminateJob g2", "TerminateJob g3"],
        "no projections: all stop"
    );
}

/// GIVEN on the emulator a managed EC2 compute environment launching `optimal`, `c5.large`
/// and the `m5` family, a managed Spot one launching `c5`, and an unmanaged one WHEN the Batch
/// adapter asks what they may launch (with a name Batch does not know) THEN it answers each
/// managed one's instance types as Batch describes them, that the unmanaged one does not say,
/// and leaves the unknown name out: what safe admission bounds an EC2 job by.
#[tokio::test]
async fn on_the_emulator_the_compute_environments_say_what_they_may_launch() {
    use aws_sdk_batch::types::{CeState, CeType, ComputeResource, CrType};
    use shared::adapters::batch::AwsBatch;
    use shared::ports::BatchControl;
    let config = batchguard_tests::emulator_config().await;
    let client = aws_sdk_batch::Client::new(&config);
    let prefix = batchguard_tests::unique_prefix("launch");
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name}: scripts/test.sh creates it"))
    };
    let mut names = Vec::new();
    for (kind, types) in [
        (CrType::Ec2, vec!["optimal", "c5.large", "m5"]),
        (CrType::Spot, vec!["c5"]),
    ] {
        let name = format!("{prefix}-{}", kind.as_str().to_lowercase());
        let mut resources = ComputeResource::builder()
            .r#type(kind.clone())
            .minv_cpus(0)
            .maxv_cpus(16)
            .subnets(var("BATCHGUARD_TEST_SUBNET"))
            .security_group_ids(var("BATCHGUARD_TEST_SECURITY_GROUP"))
            .instance_role(var("BATCHGUARD_TEST_INSTANCE_ROLE"));
        for instance_type in &types {
            resources = resources.instance_types(*instance_type);
        }
        if kind == CrType::Spot {
            resources = resources.bid_percentage(100);
        }
        client
            .create_compute_environment()
            .compute_environment_name(&name)
            .r#type(CeType::Managed)
            .state(CeState::Enabled)
            .service_role(var("BATCHGUARD_TEST_BATCH_ROLE"))
            .compute_resources(resources.build())
            .send()
            .await
            .unwrap();
        names.push((name, Some(types)));
    }
    let unmanaged = format!("{prefix}-unmanaged");
    client
        .create_compute_environment()
        .compute_environment_name(&unmanaged)
        .r#type(CeType::Unmanaged)
        .state(CeState::Enabled)
        .service_role(var("BATCHGUARD_TEST_BATCH_ROLE"))
        .send()
        .await
        .unwrap();
    names.push((unmanaged, None));

    let mut asked: Vec<String> = names.iter().map(|(name, _)| name.clone()).collect();
    asked.push(format!("{prefix}-no-such"));
    let launches = AwsBatch::from_config(&config)
        .instance_types(&asked)
        .await
        .unwrap();
    let expected: BTreeMap<String, Option<Vec<String>>> = names
        .into_iter()
        .map(|(name, types)| {
            let types = types.map(|types| types.into_iter().map(str::to_owned).collect());
            (name, types)
        })
        .collect();
    assert_eq!(launches, expected);
}

/// GIVEN a job whose first attempt ran on the Spot compute environment (its task's cluster
/// names it) WHEN the ledger is asked where the job runs THEN while that attempt runs, Spot;
/// once it stopped and the retry's events have not arrived (Batch may already list the job
/// running again), nowhere known — not Spot, where it no longer is; once the retry's task
/// runs on the on-demand compute environment, there.
#[test]
fn a_jobs_placement_is_its_running_attempts_never_a_stopped_ones() {
    use batchguard_tests::{at, attempt, fact, job};
    use shared::core::facts::FactBody;
    use shared::core::ledger::Ledger;
    use shared::core::prices::PriceTable;
    let task = |ce: &str, id: &str| {
        format!(
            "arn:aws:ecs:us-east-1:123456789012:task/AWSBatch-{ce}-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/{id}"
        )
    };
    let (spot, ondemand) = (task("ce-spot", "t0"), task("ce-ondemand", "t1"));
    let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    assert_eq!(ledger.job_compute_environment("j"), None, "not known");
    let first = job(
        "j",
        JobStatus::Running,
        vec![attempt(0, Some(&spot), Some(at(0)), None)],
    );
    ledger.apply(&fact("e1", FactBody::Job(first)));
    assert_eq!(ledger.job_compute_environment("j"), Some("ce-spot"));
    let interrupted = job(
        "j",
        JobStatus::Runnable,
        vec![attempt(0, Some(&spot), Some(at(0)), Some(at(60_000)))],
    );
    ledger.apply(&fact("e2", FactBody::Job(interrupted)));
    assert_eq!(ledger.job_compute_environment("j"), None);
    let retried = job(
        "j",
        JobStatus::Running,
        vec![
            attempt(0, Some(&spot), Some(at(0)), Some(at(60_000))),
            attempt(1, Some(&ondemand), Some(at(120_000)), None),
        ],
    );
    ledger.apply(&fact("e3", FactBody::Job(retried)));
    assert_eq!(ledger.job_compute_environment("j"), Some("ce-ondemand"));
}
