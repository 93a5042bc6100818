//! Committed spend (issue 17): a budget's spend this period and what its running jobs with a
//! timeout may still cost before AWS Batch stops them. Batch measures a job's timeout
//! (`timeout.attemptDurationSeconds`) from the attempt's `startedAt` and terminates it after
//! (<https://docs.aws.amazon.com/batch/latest/APIReference/API_JobTimeout.html>); ECS then
//! allows the container 30 s to stop (its default stop timeout,
//! <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html>).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use batchguard_tests::{IndependentPrices, T0, at, attempt, fact, job};
use rust_decimal::Decimal;
use shared::analysis::budgets::budget_lines;
use shared::analysis::figures::money;
use shared::core::budget::BudgetPeriod;
use shared::core::budgets::BudgetBook;
use shared::core::facts::{FactBody, JobStatus};
use shared::core::ledger::Ledger;
use shared::core::prices::PriceTable;
use shared::core::scope::Scope;
use shared::events::{Parsed, parse_event};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/events")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn a_real_events_timeout_is_read_and_an_impossible_one_is_refused_by_name() {
    // GIVEN AWS Batch's RUNNABLE event of a job submitted with a one-hour timeout
    let text = fixture("rtm_batch-event-RUNNABLE.json");
    // WHEN it is parsed, THEN the job carries its timeout
    match parse_event(text.as_bytes()).unwrap() {
        Parsed::Fact(parsed) => match parsed.body {
            FactBody::Job(observed) => assert_eq!(observed.timeout_seconds, Some(3600)),
            other => panic!("expected a job, got {other:?}"),
        },
        other => panic!("expected a fact, got {other:?}"),
    }
    // AND a timeout Batch cannot have (under its 60 s minimum, or negative) is refused, naming
    // the field and the value, not read as no timeout
    for bad in ["30", "-5", "0"] {
        let edited = text.replace(
            "\"attemptDurationSeconds\": 3600",
            &format!("\"attemptDurationSeconds\": {bad}"),
        );
        assert_ne!(edited, text);
        let error = parse_event(edited.as_bytes()).unwrap_err().to_string();
        assert!(
            error.contains("timeout.attemptDurationSeconds") && error.contains(bad),
            "{error}"
        );
    }
}

/// One Fargate job of 1 vCPU / 2 GiB on queue `q` (tagged `team`), started at `started_s`
/// seconds after T0, still running, with `timeout`.
fn running(id: &str, team: &str, started_s: i64, timeout: Option<u32>) -> FactBody {
    let mut observed = job(
        id,
        JobStatus::Running,
        vec![attempt(0, None, Some(at(started_s * 1000)), None)],
    );
    observed.timeout_seconds = timeout;
    observed.tags.insert("team".into(), team.into());
    FactBody::Job(observed)
}

#[test]
fn committed_spend_is_the_spend_and_what_timed_jobs_may_still_run_to_the_cent() {
    // GIVEN a budget for team a and one for team b, each with one running Fargate job of
    // 1 vCPU / 2 GiB: team a's has a one-hour timeout, team b's none
    let book = Arc::new(
        BudgetBook::parse(
            r#"
[[budget]]
name = "a"
amount_usd = "1"
period = "day"
scope = { tags = ["team=a"] }
thresholds = [{ at_percent = "80", action = "notify" }]

[[budget]]
name = "b"
amount_usd = "1"
period = "day"
scope = { tags = ["team=b"] }
thresholds = [{ at_percent = "80", action = "notify" }]
"#,
        )
        .unwrap(),
    );
    let mut ledger =
        Ledger::new(PriceTable::builtin(), BudgetPeriod::Day).with_budgets(Arc::clone(&book));
    ledger.apply(&fact("a", running("job-a", "a", 10, Some(3600))));
    ledger.apply(&fact("b", running("job-b", "b", 10, None)));
    let prices = IndependentPrices::default();
    let rate = prices.x86_vcpu_hour + Decimal::TWO * prices.x86_gb_hour;
    let hour = Decimal::from(3600);
    let now = T0 / 1000 + 10 + 600;

    // WHEN each budget is read ten minutes after the jobs started
    let a = ledger.scope_spend(&Scope::Budget("a".into()), now);
    let b = ledger.scope_spend(&Scope::Budget("b".into()), now);

    // THEN team a has spent 600 s and is committed to the timeout and the stop's 30 s from
    // the start: 3630 s at the published rate, whenever it is read
    assert_eq!(a.period_spend_usd, rate * Decimal::from(600) / hour);
    assert_eq!(a.committed_usd, rate * Decimal::from(3630) / hour);
    assert_eq!(a.open_ended_tasks, 0);
    let later = ledger.scope_spend(&Scope::Budget("a".into()), now + 1200);
    assert_eq!(later.committed_usd, a.committed_usd);
    // AND team b's job has no timeout: committed is its spend, and it is counted as open-ended
    assert_eq!(b.committed_usd, b.period_spend_usd);
    assert_eq!(b.open_ended_tasks, 1);
    // AND past the deadline, with no stop seen yet, committed is never below the spend
    let overdue = ledger.scope_spend(&Scope::Budget("a".into()), now + 4000);
    assert_eq!(overdue.committed_usd, overdue.period_spend_usd);
    assert!(overdue.period_spend_usd > a.committed_usd);

    // AND the budgets' lines say the same, with what is left uncommitted
    let lines = budget_lines(&book, &[&ledger], now);
    let line_a = lines.iter().find(|l| l.name == "a").unwrap();
    assert_eq!(line_a.committed_usd, money(a.committed_usd));
    assert_eq!(
        line_a.uncommitted_usd,
        money(Decimal::ONE - a.committed_usd)
    );
    let line_b = lines.iter().find(|l| l.name == "b").unwrap();
    assert_eq!(line_b.open_ended_tasks, 1);
}
