//! Drain disables a budget's own queues, and restore undoes exactly one holder's changes
//! (issue 17, ADR 0012): a queue batchguard disables is held by each holder that wants it
//! disabled (the stack's own budget, or an applied budget), and a holder's restore re-enables
//! it only when no other holder is left. In-memory Batch; the ledger from the sample day's
//! events where a budget's spend is judged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::json;
use shared::adapters::emf::EmfMemory;
use shared::adapters::memory::{MemoryBatch, MemoryEventLog, Outbox, RecordingTrigger};
use shared::app::enforcer::{Enforcer, EnforcerSettings};
use shared::app::ticker::{self, MAX_SCOPES_READ, TickerSettings};
use shared::app::verify::LedgerCheck;
use shared::core::budget::BudgetPeriod;
use shared::core::budgets::{Action, BudgetBook};
use shared::core::enforcement::{BudgetOrder, EnforcerRequest, queues_disabled_by_us};
use shared::core::facts::EnforcementAction;
use shared::core::policy::{BudgetPolicy, Level};
use shared::handlers::enforcer;
use shared::ports::{AuditTrail, BudgetStore};

const AT_MS: i64 = 1_795_413_600_000; // 2026-11-23T06:00:00Z
const MINUTE: i64 = 60_000;

fn order(budget: &str, action: Action) -> BudgetOrder {
    BudgetOrder {
        budget: budget.into(),
        action,
        reason: format!("{budget} at {action}"),
    }
}

fn queue_budget(name: &str, queue: &str, amount: &str) -> String {
    format!(
        "[[budget]]\nname = \"{name}\"\namount_usd = \"{amount}\"\nperiod = \"month\"\n\
         scope = {{ queues = [\"{queue}\"] }}\n\
         thresholds = [{{ at_percent = \"100\", action = \"drain\" }}]\n"
    )
}

/// The enforcer over in-memory Batch, log and notices, for the stack's `queues` (empty:
/// every queue), monthly, not in a dry run.
fn enforcer_on<'a>(
    batch: &'a MemoryBatch,
    log: &'a MemoryEventLog,
    outbox: &'a Outbox,
    queues: &[&str],
) -> Enforcer<&'a MemoryBatch, &'a MemoryEventLog, &'a Outbox> {
    Enforcer::new(
        batch,
        log,
        outbox,
        EnforcerSettings {
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            dry_run: false,
            period: BudgetPeriod::Month,
        },
    )
}

/// Whether each queue is enabled now.
fn enabled(batch: &MemoryBatch, queue: &str) -> bool {
    batch.queues.lock().unwrap()[queue]
}

/// GIVEN genomics and imaging each owning a queue, team-a counted by tag on a shared queue,
/// and a queue an operator disabled by hand WHEN the three budgets drain, the stack freezes,
/// and then each holder restores in turn THEN the drain disables the two owned queues only
/// (the shared one stays open for the other teams); the freeze disables the shared queue and
/// holds the owned ones too; genomics' restore leaves its queue disabled while the stack
/// holds it; the stack's restore re-enables the shared queue and genomics' (nobody else holds
/// them) but not imaging's (imaging still does); imaging's restore re-enables its own; the
/// operator's queue is never touched; and every change is one `UpdateJobQueue`.
#[tokio::test]
async fn each_restore_undoes_exactly_its_own_holders_changes() {
    let book = BudgetBook::parse(&format!(
        "{}\n{}\n[[budget]]\nname = \"team-a\"\namount_usd = \"10\"\nperiod = \"month\"\n\
         scope = {{ queues = [\"shared\"], tags = [\"team=a\"] }}\n\
         thresholds = [{{ at_percent = \"100\", action = \"drain\" }}]\n",
        queue_budget("genomics", "genomics-q", "10"),
        queue_budget("imaging", "imaging-q", "10"),
    ))
    .unwrap();
    let batch = MemoryBatch::with(
        &[
            ("genomics-q", true),
            ("imaging-q", true),
            ("shared", true),
            ("maintenance", false),
        ],
        &[],
    );
    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    let enforcer = enforcer_on(&batch, &log, &outbox, &[]);
    let orders = [
        order("genomics", Action::Drain),
        order("imaging", Action::Drain),
        order("team-a", Action::Drain),
    ];
    let drained = enforcer
        .enforce_budgets(&book, &orders, AT_MS)
        .await
        .unwrap();
    assert!(drained.failures.is_empty(), "{drained:?}");
    assert_eq!(
        batch.calls(),
        [
            "UpdateJobQueue genomics-q false",
            "UpdateJobQueue imaging-q false"
        ]
    );
    assert!(enabled(&batch, "shared"), "a shared queue stays open");
    let disabled = drained
        .actions
        .iter()
        .find(|taken| taken.action.target() == "genomics-q")
        .unwrap();
    assert_eq!(
        disabled.action,
        EnforcementAction::QueueDisabled {
            queue: "genomics-q".into(),
            budget: Some("genomics".into())
        }
    );
    // A second tick at drain changes nothing more.
    enforcer
        .enforce_budgets(&book, &orders, AT_MS + MINUTE)
        .await
        .unwrap();
    assert_eq!(batch.calls().len(), 2);

    // The stack's own budget freezes: the shared queue is disabled, the owned ones held.
    let frozen = enforcer
        .enforce(Level::Freeze, "the stack's budget", AT_MS + 2 * MINUTE)
        .await
        .unwrap();
    assert_eq!(batch.calls().len(), 3);
    assert_eq!(batch.calls()[2], "UpdateJobQueue shared false");
    let held: Vec<&str> = frozen
        .actions
        .iter()
        .filter(|taken| matches!(taken.action, EnforcementAction::QueueHeld { .. }))
        .map(|taken| taken.action.target())
        .collect();
    assert_eq!(held, ["genomics-q", "imaging-q"]);

    // genomics restores: the stack still holds its queue.
    let released = enforcer
        .restore_holder(&Some("genomics".into()), "by hand", AT_MS + 3 * MINUTE)
        .await
        .unwrap();
    assert_eq!(batch.calls().len(), 3, "{:?}", batch.calls());
    assert!(!enabled(&batch, "genomics-q"));
    assert_eq!(
        released
            .actions
            .iter()
            .map(|taken| taken.action.clone())
            .collect::<Vec<_>>(),
        [EnforcementAction::QueueReleased {
            queue: "genomics-q".into(),
            budget: Some("genomics".into())
        }]
    );

    // The stack restores: its shared queue and genomics' come back; imaging's stays.
    enforcer
        .restore("a new period", AT_MS + 4 * MINUTE)
        .await
        .unwrap();
    let mut calls = batch.calls().split_off(3);
    calls.sort();
    assert_eq!(
        calls,
        [
            "UpdateJobQueue genomics-q true",
            "UpdateJobQueue shared true"
        ]
    );
    assert!(!enabled(&batch, "imaging-q"));

    enforcer
        .restore_holder(&Some("imaging".into()), "by hand", AT_MS + 5 * MINUTE)
        .await
        .unwrap();
    assert_eq!(
        batch.calls().last().map(String::as_str),
        Some("UpdateJobQueue imaging-q true")
    );
    assert_eq!(batch.calls().len(), 6);
    assert!(!enabled(&batch, "maintenance"), "not batchguard's to undo");
    let period_start = BudgetPeriod::Month.bounds(AT_MS / 1000).0;
    let trail = log.audit_entries(period_start).await.unwrap();
    assert!(queues_disabled_by_us(&trail).is_empty(), "nothing held");
    assert!(
        trail
            .iter()
            .all(|entry| entry.action.target() != "maintenance")
    );
}

/// GIVEN the stack frozen first WHEN a budget then drains its own queue, already disabled by
/// the stack THEN it holds it too, so the stack's restore leaves it disabled until the
/// budget's own; and a dry-run budget's drain records what it would do and holds nothing.
#[tokio::test]
async fn a_budget_draining_a_queue_the_stack_froze_holds_it_too() {
    let book = BudgetBook::parse(&format!(
        "{}\n{}dry_run = true\n",
        queue_budget("genomics", "genomics-q", "10"),
        queue_budget("imaging", "imaging-q", "10"),
    ))
    .unwrap();
    let batch = MemoryBatch::with(&[("genomics-q", true), ("imaging-q", true)], &[]);
    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    let enforcer = enforcer_on(&batch, &log, &outbox, &["genomics-q"]);
    enforcer
        .enforce(Level::Freeze, "the stack's budget", AT_MS)
        .await
        .unwrap();
    assert_eq!(batch.calls(), ["UpdateJobQueue genomics-q false"]);
    let drained = enforcer
        .enforce_budgets(
            &book,
            &[
                order("genomics", Action::Drain),
                order("imaging", Action::Drain),
            ],
            AT_MS + MINUTE,
        )
        .await
        .unwrap();
    assert_eq!(batch.calls().len(), 1, "nothing more to change");
    assert!(drained.actions.iter().any(|taken| taken.action
        == EnforcementAction::QueueHeld {
            queue: "genomics-q".into(),
            budget: Some("genomics".into())
        }));
    // imaging's queue is outside the stack's queues: never touched, dry run or not.
    assert!(
        drained
            .actions
            .iter()
            .all(|taken| taken.action.target() != "imaging-q")
    );
    enforcer
        .restore("a new period", AT_MS + 2 * MINUTE)
        .await
        .unwrap();
    assert!(!enabled(&batch, "genomics-q"), "genomics still holds it");
    enforcer
        .restore_holder(&Some("genomics".into()), "by hand", AT_MS + 3 * MINUTE)
        .await
        .unwrap();
    assert!(enabled(&batch, "genomics-q"));
    assert_eq!(
        batch.calls(),
        [
            "UpdateJobQueue genomics-q false",
            "UpdateJobQueue genomics-q true"
        ]
    );
}

/// GIVEN the sample day's first 400 events, genomics over its amount on its own queue and
/// ops far under on another, and both queues disabled by their budgets' drains WHEN the
/// ticker judges the budgets THEN it asks to restore ops only (genomics still calls for
/// drain); through the enforcer's handler ops' restore re-enables its queue, a forged restore
/// of genomics is refused and recorded, naming why, and the stack's own restore (the stack
/// holds nothing here) leaves genomics' queue disabled.
#[tokio::test]
async fn the_ticker_asks_to_restore_only_budgets_that_no_longer_drain() {
    let book = BudgetBook::parse(&format!(
        "{}\n{}",
        queue_budget("genomics", "genomics-high", "0.05"),
        queue_budget("ops", "render-default", "100000"),
    ))
    .unwrap();
    let (projector, last_ms) = batchguard_tests::sample_day_projector(&book, 400).await;
    let log = MemoryEventLog::new();
    assert!(log.replace_budgets(&book, 0).await.unwrap());
    let batch = MemoryBatch::with(&[("genomics-high", true), ("render-default", true)], &[]);
    let outbox = Outbox::default();
    let enforcing = enforcer_on(&batch, &log, &outbox, &[]);
    let settings = TickerSettings {
        budget: None,
        policy: BudgetPolicy::default(),
        period: BudgetPeriod::Month,
        scope_queues: vec![],
        max_scopes_read: MAX_SCOPES_READ,
        budgets: Arc::new(book.clone()),
    };
    let check = LedgerCheck {
        reader: &projector,
        settings: settings.clone(),
        baseline: None::<ticker::NoAwsBudget>,
    };
    let sink = EmfMemory::default();
    let now = last_ms + 1_000;
    // genomics' drain, through the handler (the ledger agrees); ops' drained earlier.
    enforcer::handle(
        &enforcing,
        &check,
        &sink,
        json!({"action": "budgets", "orders": [{"budget": "genomics", "action": "drain"}]}),
        now,
    )
    .await
    .unwrap();
    enforcing
        .enforce_budgets(&book, &[order("ops", Action::Drain)], now)
        .await
        .unwrap();
    assert_eq!(
        batch.calls(),
        [
            "UpdateJobQueue genomics-high false",
            "UpdateJobQueue render-default false"
        ]
    );

    let trigger = RecordingTrigger::default();
    let tick = ticker::tick(&projector, &log, &trigger, &sink, &settings, now + MINUTE)
        .await
        .unwrap();
    assert_eq!(tick.restored_budgets, ["ops"]);
    let restore = trigger.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        restore,
        EnforcerRequest::Restore {
            reason: "budget ops no longer calls for drain".into(),
            budget: Some("ops".into())
        }
    );

    let payload = serde_json::to_value(&restore).unwrap();
    enforcer::handle(&enforcing, &check, &sink, payload, now + MINUTE)
        .await
        .unwrap();
    assert_eq!(
        batch.calls().last().map(String::as_str),
        Some("UpdateJobQueue render-default true")
    );
    let forged = enforcer::handle(
        &enforcing,
        &check,
        &sink,
        json!({"action": "restore", "budget": "genomics"}),
        now + MINUTE,
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        forged.actions.iter().any(|taken| taken.action
            == EnforcementAction::Refused {
                request: "budget genomics: restore".into()
            }),
        "{forged:?}"
    );
    assert!(
        forged.reason.contains("its spend still calls for drain"),
        "{}",
        forged.reason
    );
    enforcer::handle(
        &enforcing,
        &check,
        &sink,
        json!({"action": "restore"}),
        now + MINUTE,
    )
    .await
    .unwrap();
    assert!(!enabled(&batch, "genomics-high"), "genomics still drains");
    assert_eq!(batch.calls().len(), 3, "{:?}", batch.calls());
}

/// GIVEN a budget's drain in a dry run WHEN it drains its own queue twice THEN what it would
/// do is recorded once, nothing is changed and nothing is held, so no restore is asked.
#[tokio::test]
async fn a_dry_run_drain_records_once_and_holds_nothing() {
    let book = BudgetBook::parse(&format!(
        "{}dry_run = true\n",
        queue_budget("genomics", "genomics-q", "10")
    ))
    .unwrap();
    let batch = MemoryBatch::with(&[("genomics-q", true)], &[]);
    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    let enforcer = enforcer_on(&batch, &log, &outbox, &[]);
    for tick in 0..2 {
        enforcer
            .enforce_budgets(
                &book,
                &[order("genomics", Action::Drain)],
                AT_MS + tick * MINUTE,
            )
            .await
            .unwrap();
    }
    assert!(batch.calls().is_empty());
    let trail = log
        .audit_entries(BudgetPeriod::Month.bounds(AT_MS / 1000).0)
        .await
        .unwrap();
    let would: Vec<_> = trail
        .iter()
        .filter(|entry| matches!(entry.action, EnforcementAction::QueueDisabled { .. }))
        .collect();
    assert_eq!(would.len(), 1, "{trail:?}");
    assert!(would[0].dry_run);
    assert!(queues_disabled_by_us(&trail).is_empty());
}

/// GIVEN a budget that drains its queue in November and still drains in December WHEN its
/// restore comes in January (holds are read from two periods: December's and January's) THEN
/// its hold, carried into December by that month's drain, is still found and the queue is
/// re-enabled; without the carry it would be stranded disabled.
#[tokio::test]
async fn a_hold_is_carried_into_each_period_its_holder_still_drains() {
    let book = BudgetBook::parse(&queue_budget("genomics", "genomics-q", "10")).unwrap();
    let batch = MemoryBatch::with(&[("genomics-q", true)], &[]);
    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    let enforcer = enforcer_on(&batch, &log, &outbox, &[]);
    let drain = [order("genomics", Action::Drain)];
    enforcer
        .enforce_budgets(&book, &drain, AT_MS)
        .await
        .unwrap();
    let december = AT_MS + 10 * 86_400_000; // 2026-12-03
    let carried = enforcer
        .enforce_budgets(&book, &drain, december)
        .await
        .unwrap();
    assert!(
        carried.actions.iter().any(|taken| taken.action
            == EnforcementAction::QueueHeld {
                queue: "genomics-q".into(),
                budget: Some("genomics".into())
            }),
        "{carried:?}"
    );
    // A second December tick carries nothing more.
    let again = enforcer
        .enforce_budgets(&book, &drain, december + MINUTE)
        .await
        .unwrap();
    assert!(
        again
            .actions
            .iter()
            .all(|taken| !matches!(taken.action, EnforcementAction::QueueHeld { .. }))
    );
    let january = AT_MS + 40 * 86_400_000; // 2027-01-02
    enforcer
        .restore_holder(&Some("genomics".into()), "a new period", january)
        .await
        .unwrap();
    assert_eq!(
        batch.calls(),
        [
            "UpdateJobQueue genomics-q false",
            "UpdateJobQueue genomics-q true"
        ]
    );
}

/// An audit trail that counts its reads.
struct CountedAudit<'a> {
    log: &'a MemoryEventLog,
    reads: std::sync::atomic::AtomicUsize,
}

impl AuditTrail for CountedAudit<'_> {
    async fn audit_entries(
        &self,
        period_start: i64,
    ) -> Result<Vec<shared::core::facts::EnforcementRecorded>, shared::ports::StoreError> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.log.audit_entries(period_start).await
    }
}

/// GIVEN the stack's own budget far below notify and applied budgets, one of which holds a
/// queue WHEN the ticker ticks THEN it reads the audit trail twice (this period's and the
/// previous one's) for both the stack's restore and the budgets', whatever the number of
/// budgets, and asks for the one budget's restore.
#[tokio::test]
async fn a_tick_reads_the_audit_trail_twice_for_every_restore() {
    let mut text = queue_budget("genomics", "genomics-q", "100000");
    for team in 0..20 {
        text.push_str(&queue_budget(
            &format!("team-{team}"),
            &format!("q-{team}"),
            "100000",
        ));
    }
    let book = BudgetBook::parse(&text).unwrap();
    let (projector, last_ms) = batchguard_tests::sample_day_projector(&book, 50).await;
    let batch = MemoryBatch::with(&[("genomics-q", true)], &[]);
    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    enforcer_on(&batch, &log, &outbox, &[])
        .enforce_budgets(&book, &[order("genomics", Action::Drain)], last_ms)
        .await
        .unwrap();
    let settings = TickerSettings {
        budget: Some(shared::core::budget::Budget {
            amount_usd: rust_decimal::Decimal::from(1_000_000),
            period: BudgetPeriod::Month,
        }),
        policy: BudgetPolicy::default(),
        period: BudgetPeriod::Month,
        scope_queues: vec![],
        max_scopes_read: MAX_SCOPES_READ,
        budgets: Arc::new(book),
    };
    let audit = CountedAudit {
        log: &log,
        reads: std::sync::atomic::AtomicUsize::new(0),
    };
    let trigger = RecordingTrigger::default();
    let tick = ticker::tick(
        &projector,
        &audit,
        &trigger,
        &EmfMemory::default(),
        &settings,
        last_ms + MINUTE,
    )
    .await
    .unwrap();
    assert_eq!(tick.restored_budgets, ["genomics"]);
    assert_eq!(audit.reads.load(std::sync::atomic::Ordering::Relaxed), 2);
}

/// GIVEN a stack summing by month and a budget of a day owning its queue WHEN it drains on one
/// day, is restored on the next (its new day's spend calls for nothing), and drains again the
/// day after, then is restored again THEN each drain disables the queue, begins its drain and
/// notifies, once a day (a second tick the same day adds nothing), the drain gate dates the
/// second drain from its own day, and each restore re-enables the queue. (Before, the second
/// drain was not begun or notified: the month's trail already had the first.)
#[tokio::test]
async fn a_days_budget_on_a_monthly_stack_drains_and_is_restored_every_day() {
    const DAY: i64 = 86_400_000;
    let book = BudgetBook::parse(
        "[[budget]]\nname = \"nightly\"\namount_usd = \"10\"\nperiod = \"day\"\n\
         scope = { queues = [\"nightly-q\"] }\n\
         thresholds = [{ at_percent = \"100\", action = \"drain\" }]\n",
    )
    .unwrap();
    let batch = MemoryBatch::with(&[("nightly-q", true)], &[]);
    let log = MemoryEventLog::new();
    let outbox = Outbox::default();
    let enforcer = enforcer_on(&batch, &log, &outbox, &[]);
    let orders = [order("nightly", Action::Drain)];
    let reached = |report: &shared::app::enforcer::EnforcementReport| {
        report
            .actions
            .iter()
            .filter(|taken| matches!(taken.action, EnforcementAction::BudgetReached { .. }))
            .count()
    };

    let first = enforcer
        .enforce_budgets(&book, &orders, AT_MS)
        .await
        .unwrap();
    assert!(!enabled(&batch, "nightly-q"));
    assert_eq!(reached(&first), 1);
    let again = enforcer
        .enforce_budgets(&book, &orders, AT_MS + MINUTE)
        .await
        .unwrap();
    assert!(again.actions.is_empty(), "{again:?}");
    assert_eq!(outbox.0.lock().unwrap().len(), 1);

    let restored = enforcer
        .restore_holder(&Some("nightly".into()), "a new day", AT_MS + DAY)
        .await
        .unwrap();
    assert!(restored.failures.is_empty(), "{restored:?}");
    assert!(enabled(&batch, "nightly-q"));

    // Two days on, in the same month: a new day of the budget's.
    let second = enforcer
        .enforce_budgets(&book, &orders, AT_MS + 2 * DAY)
        .await
        .unwrap();
    assert!(!enabled(&batch, "nightly-q"), "{second:?}");
    assert_eq!(reached(&second), 1, "its drain begins again on its new day");
    assert_eq!(
        outbox.0.lock().unwrap().len(),
        2,
        "notified again on its new day"
    );
    let gate = second.gate.as_ref().unwrap();
    assert_eq!(gate.draining["nightly"].since_ms, AT_MS + 2 * DAY);
    let later = enforcer
        .enforce_budgets(&book, &orders, AT_MS + 2 * DAY + MINUTE)
        .await
        .unwrap();
    assert!(later.actions.is_empty(), "{later:?}");
    assert_eq!(
        later.gate.as_ref().unwrap().draining["nightly"].since_ms,
        AT_MS + 2 * DAY
    );

    let restored = enforcer
        .restore_holder(&Some("nightly".into()), "a new day", AT_MS + 3 * DAY)
        .await
        .unwrap();
    assert!(restored.failures.is_empty(), "{restored:?}");
    assert!(
        enabled(&batch, "nightly-q"),
        "the second hold is restored too"
    );
    let month = BudgetPeriod::Month.bounds(AT_MS / 1000).0;
    let entries = log.audit_entries(month).await.unwrap();
    let disabled = entries
        .iter()
        .filter(|e| matches!(e.action, EnforcementAction::QueueDisabled { .. }))
        .count();
    assert_eq!(disabled, 2, "{entries:?}");
    assert_eq!(batch.calls().len(), 4, "{:?}", batch.calls());
}
