//! Admission as each job's event arrives (issue 17, ADR 0012): between two ticks, a job whose
//! SUBMITTED or RUNNABLE event arrives is judged against what the enforcer last verified on the
//! ledger — its **gates** — so a draining budget on a shared queue turns its new jobs away within
//! seconds, and a safe budget turns away a new job that cannot fit, instead of a minute later.
//!
//! A gate is written by the enforcer only after it checked the orders (or the committed spend)
//! itself, never from a request's word, and read by the admitter with every arriving event. A
//! gate older than its freshness bound, or of another period, is not acted on: the admitter
//! then admits, and the tick stays the bound (a late cancel, never a cancel on a stale word).
//!
//! - The **drain gate** names each budget at `drain` or more, with the instant its drain
//!   began: an arriving job it counts, submitted since, is cancelled (at `cancel-queued` or
//!   more, any waiting job), as the tick's plan would (`BudgetBook::plan`, the enforcing budgets
//!   first, then the dry-run ones).
//! - The **safe gate** holds, for each budget with `admission = "safe"`, what it had left
//!   after its committed spend and the worst cases of the waiting jobs the tick admitted, and
//!   the instant of that listing: a job submitted after it whose worst case alone is more than
//!   that is turned away (`BudgetBook::admit` on the one job). Two new jobs that each fit alone
//!   may both be admitted here; the next tick judges them in order.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::admission::{Waiting, WorstCase};
use super::budget::BudgetPeriod;
use super::budgets::{Action, BudgetBook, JobFacets, JobStage, JobView, Step};

/// Which gate: what the drain orders verified, or what safe admission left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    Drain,
    Safe,
}

impl GateKind {
    pub const ALL: [Self; 2] = [Self::Drain, Self::Safe];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drain => "drain",
            Self::Safe => "safe",
        }
    }
}

/// A budget at `drain` or more, as the enforcer carried it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draining {
    pub action: Action,
    /// When its drain began this period (Unix ms): the jobs submitted since are turned away.
    pub since_ms: i64,
    pub dry_run: bool,
    /// The order's reason, given to Batch and the audit trail with each job turned away.
    pub reason: String,
}

/// A gate is trusted within the UTC day it was written in: the shortest period a budget may
/// have, whose starts are those of every other.
const GATE_PERIOD: BudgetPeriod = BudgetPeriod::Day;

/// What the enforcer verified, for the jobs arriving before its next run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// When the enforcer wrote it (Unix ms).
    pub written_at_ms: i64,
    /// The start of the UTC day it was written in (Unix s): every budget's period, the
    /// stack's or an applied budget's own (day, week or month), begins at a UTC day's start, so
    /// a gate of another day may be of another period, and says nothing of this one.
    pub period_start: i64,
    /// The version of the applied budgets it was verified with: a gate of another version
    /// says nothing of the budgets applied now (an amount, a threshold or a scope changed).
    #[serde(default)]
    pub book_version: u64,
    /// The drain gate: each budget at `drain` or more, verified on the ledger.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub draining: BTreeMap<String, Draining>,
    /// The safe gate: each safe budget's amount less its committed spend and the worst cases
    /// of the waiting jobs admitted at `listed_at_ms`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub left: BTreeMap<String, Decimal>,
    /// The safe gate: the latest submission among the jobs that listing judged (or the run's
    /// instant, when later): a job submitted after it was not in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_at_ms: Option<i64>,
    /// The queues the run listed that place their jobs on a single compute environment, with
    /// it: an arriving job's compute environment, for budgets scoped by compute environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environments: BTreeMap<String, String>,
    /// The safe gate: what the compute environments of each listed queue may launch
    /// (`core::admission::Ec2Placement::InstanceTypes`), so an arriving EC2 job's worst case is
    /// bounded as the run bounds a waiting one's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance_types: BTreeMap<String, Vec<String>>,
}

impl Gate {
    /// Why this gate may not be acted on at `now_ms`, when older than `max_age_ms` or
    /// written on another UTC day (perhaps in another period of some budget: a day's budget
    /// drained before midnight has its whole amount after it); `None` when it may.
    pub fn stale(&self, now_ms: i64, max_age_ms: i64) -> Option<String> {
        let start = GATE_PERIOD.bounds(now_ms.div_euclid(1000)).0;
        if self.period_start != start {
            return Some(format!(
                "written on the UTC day beginning {} (now {start}): perhaps in another period",
                self.period_start
            ));
        }
        let age = now_ms.saturating_sub(self.written_at_ms);
        if age > max_age_ms {
            return Some(format!(
                "written {} s ago, more than the {} s it is trusted for",
                age / 1000,
                max_age_ms / 1000
            ));
        }
        None
    }
}

/// How long a gate is trusted on a stack that ticks every `tick_seconds`: two ticks and a
/// minute, so one missed or slow tick does not stop admission by event, and a gate no run has
/// renewed (the budget fell back, the enforcer cannot run) stops being acted on soon after.
pub fn trusted_for_ms(tick_seconds: i64) -> i64 {
    tick_seconds
        .max(1)
        .saturating_mul(2)
        .saturating_add(60)
        .saturating_mul(1000)
}

/// A job whose waiting event has just arrived, as the gates see it.
#[derive(Clone, Debug)]
pub struct Arriving<'a> {
    pub job_id: &'a str,
    pub facets: JobFacets<'a>,
    /// When it was submitted (Unix ms); `None`: not said, so not judged against a drain's
    /// start or a listing (only `cancel-queued` and above reach it).
    pub created_at_ms: Option<i64>,
    pub worst: WorstCase,
}

/// A job to turn away, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnAway {
    pub budget: String,
    /// The audit trail's label: `budget <name>: <action>` for a drain (the tick's label for
    /// the same job, so the trail keeps one entry), `budget <name>: admission` for safe.
    pub label: String,
    pub reason: String,
    /// Recorded only: the budget's dry run (in the gate or the book now).
    pub dry_run: bool,
}

/// What the live gates say of one arriving job: the drain gate first (the strictest action
/// reaching the job, an enforcing budget before a dry-run one), then the safe gate. `None`:
/// admitted. Pass `None` for a gate that is missing or stale.
pub fn judge(
    book: &BudgetBook,
    drain: Option<&Gate>,
    safe: Option<&Gate>,
    job: &Arriving<'_>,
) -> Option<TurnAway> {
    let dry_run = |name: &str, gate_dry: bool| gate_dry || book.get(name).is_none_or(|s| s.dry_run);
    if let Some(gate) = drain {
        let draining: BTreeMap<&String, &Draining> = gate
            .draining
            .iter()
            .filter(|(name, d)| d.action >= Action::Drain && book.get(name).is_some())
            .collect();
        // Submitted since the earliest drain of a budget it counts in: arriving; before it,
        // waiting (only `cancel-queued` and above reach it), as on the tick.
        let since = book
            .budgets_of(&job.facets)
            .into_iter()
            .filter_map(|name| draining.get(&name.to_owned()).map(|d| d.since_ms))
            .min();
        let stage = match (job.created_at_ms, since) {
            (Some(created), Some(since)) if created >= since => JobStage::Arriving,
            _ => JobStage::Waiting,
        };
        let view = [JobView {
            job_id: job.job_id,
            facets: job.facets,
            stage,
            burn_usd_per_hour: Decimal::ZERO,
        }];
        let (live, dry): (BTreeMap<String, Action>, BTreeMap<String, Action>) = draining
            .iter()
            .map(|(name, d)| ((*name).clone(), d.action))
            .partition(|(name, _)| !dry_run(name, draining[name].dry_run));
        let none = BTreeMap::new();
        let step = book
            .plan(&live, &none, &view)
            .into_iter()
            .chain(book.plan(&dry, &none, &view))
            .next();
        if let Some(Step::Cancel { budget, .. } | Step::Terminate { budget, .. }) = step
            && let Some(d) = gate.draining.get(&budget)
        {
            return Some(TurnAway {
                label: format!("budget {budget}: {}", d.action),
                reason: d.reason.clone(),
                dry_run: dry_run(&budget, d.dry_run),
                budget,
            });
        }
    }
    let gate = safe?;
    let listed = gate.listed_at_ms?;
    // A job the tick listed took its worst case from `left` already (or was refused there).
    if job.created_at_ms.is_none_or(|created| created <= listed) {
        return None;
    }
    let waiting = [Waiting {
        job_id: job.job_id,
        facets: job.facets,
        created_at_ms: job.created_at_ms,
        worst: job.worst.clone(),
        starting: false,
    }];
    let refusal = book
        .admit(&gate.left, &waiting)
        .refused
        .into_iter()
        .next()?;
    Some(TurnAway {
        label: format!("budget {}: admission", refusal.budget),
        reason: format!(
            "{} (as the enforcer read it at {})",
            refusal.reason(),
            gate.written_at_ms
        ),
        dry_run: dry_run(&refusal.budget, false),
        budget: refusal.budget,
    })
}

/// The drain gate for the orders the enforcer carried out at `at_ms`: each at `drain` or more
/// with the start of its drain (`since`: budget → Unix ms) and whether it is a dry run.
pub fn drain_gate(at_ms: i64, draining: impl IntoIterator<Item = (String, Draining)>) -> Gate {
    Gate {
        written_at_ms: at_ms,
        period_start: GATE_PERIOD.bounds(at_ms.div_euclid(1000)).0,
        draining: draining.into_iter().collect(),
        ..Gate::default()
    }
}

/// The safe gate for what admission left at `at_ms`, over jobs submitted up to `latest_ms`.
pub fn safe_gate(at_ms: i64, latest_ms: Option<i64>, left: BTreeMap<String, Decimal>) -> Gate {
    Gate {
        written_at_ms: at_ms,
        period_start: GATE_PERIOD.bounds(at_ms.div_euclid(1000)).0,
        left,
        listed_at_ms: Some(latest_ms.map_or(at_ms, |latest| latest.max(at_ms))),
        ..Gate::default()
    }
}

/// The budgets a gate acts for (for the answer and the log).
pub fn acting(gate: &Gate) -> BTreeSet<&str> {
    gate.draining
        .keys()
        .chain(gate.left.keys())
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use rust_decimal::dec;

    use super::*;

    const BOOK: &str = r#"
[[budget]]
name = "genomics"
amount_usd = "100"
period = "month"
scope = { queues = ["shared"], tags = ["team=genomics"] }
thresholds = [{ at_percent = "90", action = "drain" }, { at_percent = "100", action = "cancel-queued" }]

[[budget]]
name = "imaging"
amount_usd = "100"
period = "month"
admission = "safe"
scope = { queues = ["shared"], tags = ["team=imaging"] }
thresholds = [{ at_percent = "100", action = "drain" }]

[[budget]]
name = "trial"
amount_usd = "10"
period = "month"
dry_run = true
scope = { queues = ["shared"], tags = ["team=trial"] }
thresholds = [{ at_percent = "100", action = "drain" }]
"#;

    const NOW: i64 = 1_764_000_000_000;

    fn book() -> BudgetBook {
        BudgetBook::parse(BOOK).unwrap()
    }

    fn draining(action: Action, since_ms: i64) -> Draining {
        Draining {
            action,
            since_ms,
            dry_run: false,
            reason: "over".to_owned(),
        }
    }

    fn arriving<'a>(tags: &'a [(String, String)], created: i64, worst: WorstCase) -> Arriving<'a> {
        Arriving {
            job_id: "job-1",
            facets: JobFacets {
                queue: "shared",
                compute_environment: None,
                job_definition: "align",
                tags,
            },
            created_at_ms: Some(created),
            worst,
        }
    }

    fn team(name: &str) -> Vec<(String, String)> {
        vec![("team".to_owned(), name.to_owned())]
    }

    #[test]
    fn a_drain_on_a_shared_queue_turns_away_only_its_own_new_jobs() {
        let gate = drain_gate(
            NOW,
            [("genomics".to_owned(), draining(Action::Drain, NOW - 60_000))],
        );
        let (genomics, imaging) = (team("genomics"), team("imaging"));
        let unbounded = WorstCase::NoTimeout;
        let turned = judge(
            &book(),
            Some(&gate),
            None,
            &arriving(&genomics, NOW, unbounded.clone()),
        )
        .unwrap();
        assert_eq!(turned.budget, "genomics");
        assert_eq!(turned.label, "budget genomics: drain");
        assert!(!turned.dry_run);
        // Another team's job on the same queue is admitted.
        assert_eq!(
            judge(
                &book(),
                Some(&gate),
                None,
                &arriving(&imaging, NOW, unbounded.clone())
            ),
            None
        );
        // A job submitted before the drain began is waiting work: only cancel-queued reaches
        // it.
        let old = arriving(&genomics, NOW - 120_000, unbounded.clone());
        assert_eq!(judge(&book(), Some(&gate), None, &old), None);
        let gate = drain_gate(
            NOW,
            [(
                "genomics".to_owned(),
                draining(Action::CancelQueued, NOW - 60_000),
            )],
        );
        assert_eq!(
            judge(&book(), Some(&gate), None, &old).unwrap().label,
            "budget genomics: cancel-queued"
        );
    }

    #[test]
    fn a_dry_run_budget_records_and_a_budget_gone_from_the_book_does_nothing() {
        let trial = team("trial");
        let gate = drain_gate(
            NOW,
            [
                ("trial".to_owned(), draining(Action::Drain, NOW - 1)),
                ("removed".to_owned(), draining(Action::Terminate, NOW - 1)),
            ],
        );
        let turned = judge(
            &book(),
            Some(&gate),
            None,
            &arriving(&trial, NOW, WorstCase::NoTimeout),
        )
        .unwrap();
        assert!(turned.dry_run, "the book says trial is a dry run");
        // A gate naming a budget the book no longer has reaches no job.
        let genomics = team("genomics");
        assert_eq!(
            judge(
                &book(),
                Some(&gate),
                None,
                &arriving(&genomics, NOW, WorstCase::NoTimeout)
            ),
            None
        );
    }

    #[test]
    fn safe_admission_turns_away_a_new_job_that_alone_does_not_fit() {
        let imaging = team("imaging");
        let gate = safe_gate(
            NOW,
            Some(NOW - 5_000),
            BTreeMap::from([("imaging".to_owned(), dec!(3))]),
        );
        let big = WorstCase::Bounded { usd: dec!(3.01) };
        let small = WorstCase::Bounded { usd: dec!(3) };
        let turned = judge(
            &book(),
            None,
            Some(&gate),
            &arriving(&imaging, NOW + 1, big.clone()),
        )
        .unwrap();
        assert_eq!(turned.label, "budget imaging: admission");
        assert!(turned.reason.contains("3.01"), "{}", turned.reason);
        assert_eq!(
            judge(
                &book(),
                None,
                Some(&gate),
                &arriving(&imaging, NOW + 1, small)
            ),
            None,
            "a job that fits exactly is admitted"
        );
        // A job the tick's listing judged already is not judged again on what it left.
        assert_eq!(
            judge(
                &book(),
                None,
                Some(&gate),
                &arriving(&imaging, NOW, big.clone())
            ),
            None
        );
        // Jobs without a bound are admitted.
        assert_eq!(
            judge(
                &book(),
                None,
                Some(&gate),
                &arriving(&imaging, NOW + 1, WorstCase::NoTimeout)
            ),
            None
        );
        // Another team's job is not in the safe budget.
        let genomics = team("genomics");
        assert_eq!(
            judge(
                &book(),
                None,
                Some(&gate),
                &arriving(&genomics, NOW + 1, big)
            ),
            None
        );
    }

    #[test]
    fn a_gate_is_trusted_for_two_ticks_and_a_minute() {
        assert_eq!(trusted_for_ms(60), 180_000);
        assert_eq!(trusted_for_ms(600), 1_260_000);
    }

    #[test]
    fn a_gate_is_trusted_for_its_period_and_its_age_only() {
        let gate = drain_gate(NOW, []);
        assert_eq!(gate.stale(NOW + 180_000, 180_000), None);
        assert!(
            gate.stale(NOW + 180_001, 180_000)
                .unwrap()
                .contains("180 s")
        );
        // The first instant of the next UTC day: perhaps another budget's period (a day's
        // budget has its whole amount again), whatever the age; the last of this one is not.
        let (_, end) = BudgetPeriod::Day.bounds(NOW / 1000);
        assert!(
            gate.stale(end * 1000, i64::MAX)
                .unwrap()
                .contains("another period")
        );
        assert_eq!(gate.stale(end * 1000 - 1, i64::MAX), None);
    }
}
