//! A budget's spend from AWS's baseline plus the ledger's spend after it: every second of a
//! task counted once — before the baseline's time in AWS's figure, after it in the ledger's.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use batchguard_tests::{T0, at, at_seconds, fact, task};
use rust_decimal::Decimal;
use shared::analysis::report::StatusReport;
use shared::core::budget::{Baseline, BudgetPeriod};
use shared::core::facts::FactBody;
use shared::core::ledger::Ledger;
use shared::core::prices::PriceTable;
use shared::core::scope::Scope;
use shared::ports::IngestCounts;

/// 1 vCPU, 2 GiB, x86 on-demand in us-east-1, per hour.
fn rate() -> Decimal {
    Decimal::new(4048, 5) + Decimal::TWO * Decimal::new(4445, 6)
}

#[test]
fn the_ledger_adds_only_what_accrued_after_the_baseline() {
    let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    // Three tasks around a baseline taken at T0 + 1 h: one over before it, one across it, one
    // after it.
    let arn = |n: u32| {
        format!(
            "arn:aws:ecs:us-east-1:1:task/AWSBatch-fargate-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/{n}"
        )
    };
    for (n, start_ms, stop_ms) in [
        (1, 0, 1_800_000),
        (2, 1_800_000, 9_000_000),
        (3, 5_400_000, 7_200_000),
    ] {
        let mut observed = task(&arn(n), 2);
        observed.pull_started_at = Some(at(start_ms));
        observed.stopped_at = Some(at(stop_ms));
        ledger.apply(&fact(&format!("e{n}"), FactBody::Task(observed)));
    }
    let baseline = Baseline {
        spend_usd: Decimal::new(5000, 2),
        as_of: at_seconds(3600),
    };
    let now = at_seconds(3 * 3600);
    // After the baseline: task 2 from 1 h to 2.5 h (1.5 h), task 3 for its 0.5 h.
    let after = ledger.spend_between(&Scope::Total, baseline.as_of, now);
    assert_eq!(after, rate() * Decimal::new(2, 0));
    // Before + after = everything, to the second.
    let before = ledger.spend_between(&Scope::Total, T0 / 1000, baseline.as_of);
    assert_eq!(
        before + after,
        ledger.scope_spend(&Scope::Total, now).spend_usd
    );

    let report = StatusReport::build_with_baseline(
        &ledger,
        now,
        Some(Decimal::from(100)),
        Some(baseline),
        IngestCounts::default(),
    );
    let line = report.baseline.unwrap();
    assert_eq!(line.aws_spend_usd, Decimal::from(50));
    assert_eq!(line.ledger_after_usd, rate() * Decimal::TWO);
    assert_eq!(
        line.budget_spend_usd,
        Decimal::from(50) + rate() * Decimal::TWO
    );
    // The budget is measured against the fused figure, not the ledger's own period spend.
    assert_eq!(
        report.budget_used_percent.unwrap(),
        (Decimal::from(50) + rate() * Decimal::TWO).round_dp(4)
    );
}
