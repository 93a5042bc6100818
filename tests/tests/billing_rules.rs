//! Each Fargate billing rule, given / when / then, through the ledger.
//! Prices are the published us-east-1 figures, written out in each expectation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use batchguard_tests::{T0, at, at_seconds, attempt, fact, job, task};
use rust_decimal::Decimal;
use rust_decimal::dec;
use shared::core::budget::BudgetPeriod;
use shared::core::facts::{
    Architecture, Capacity, FactBody, JobStatus, Millis, Platform, TaskSize,
};
use shared::core::ledger::{JobCost, Ledger, UNATTRIBUTED};
use shared::core::prices::{PriceTable, Unpriced};
use shared::core::scope::Scope;

const ARN: &str =
    "arn:aws:ecs:us-east-1:1:task/AWSBatch-fargate-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/t1";
const ARN2: &str =
    "arn:aws:ecs:us-east-1:1:task/AWSBatch-fargate-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/t2";

/// 1 vCPU and 2 GiB, x86 on-demand, us-east-1, per hour.
fn x86_1vcpu_2gib() -> Decimal {
    dec!(0.04048) + dec!(2) * dec!(0.004445)
}

fn ledger() -> Ledger {
    Ledger::new(PriceTable::builtin(), BudgetPeriod::Month)
}

fn stopped_task(arn: &str, pull_ms: i64, stop_ms: i64) -> FactBody {
    let mut t = task(arn, 5);
    t.last_status = "STOPPED".into();
    t.pull_started_at = Some(at(pull_ms));
    t.started_at = Some(at(pull_ms + 5_000));
    t.stopped_at = Some(at(stop_ms));
    FactBody::Task(t)
}

fn succeeded_job(job_id: &str, attempts: Vec<shared::core::facts::AttemptObserved>) -> FactBody {
    FactBody::Job(job(job_id, JobStatus::Succeeded, attempts))
}

fn the_job(ledger: &Ledger, at_s: i64, job_id: &str) -> JobCost {
    ledger
        .walk(at_s)
        .jobs
        .into_iter()
        .find(|j| j.job_id == job_id)
        .expect("job in the walk")
}

fn total(ledger: &Ledger, at_s: i64) -> Decimal {
    ledger.scope_spend(&Scope::Total, at_s).spend_usd
}

#[test]
fn a_ten_second_task_is_billed_the_one_minute_minimum() {
    // GIVEN a task that pulled at 0 s and stopped at 10 s
    let mut ledger = ledger();
    ledger.apply(&fact("e1", stopped_task(ARN, 0, 10_000)));
    ledger.apply(&fact(
        "e2",
        succeeded_job(
            "j1",
            vec![attempt(0, Some(ARN), Some(at(5_000)), Some(at(9_000)))],
        ),
    ));
    // WHEN it is billed
    let job = the_job(&ledger, at_seconds(3600), "j1");
    // THEN 60 s are charged
    assert_eq!(job.billed_seconds, 60);
    assert_eq!(job.cost_usd, Some(x86_1vcpu_2gib() * dec!(60) / dec!(3600)));
    assert!(!job.estimated);
    assert_eq!(total(&ledger, at_seconds(3600)), job.cost_usd.unwrap());
}

#[test]
fn the_image_pull_is_billed_and_partial_seconds_round_up() {
    // GIVEN Batch says the container ran 100 s, but the pull started 30.5 s earlier
    let mut ledger = ledger();
    ledger.apply(&fact("e1", stopped_task(ARN, 0, 130_001)));
    ledger.apply(&fact(
        "e2",
        succeeded_job(
            "j1",
            vec![attempt(0, Some(ARN), Some(at(30_500)), Some(at(130_000)))],
        ),
    ));
    // THEN billing runs from pullStartedAt: ceil(130.001 s) = 131 s
    let job = the_job(&ledger, at_seconds(3600), "j1");
    assert_eq!(job.billed_seconds, 131);
    assert_eq!(
        job.cost_usd,
        Some(x86_1vcpu_2gib() * dec!(131) / dec!(3600))
    );
}

#[test]
fn spot_and_arm_tasks_use_their_own_rates() {
    let mut ledger = ledger();
    let mut spot = task(ARN, 5);
    spot.capacity = Some(Capacity::Spot);
    spot.pull_started_at = Some(at(0));
    spot.stopped_at = Some(at(3_600_000));
    let mut arm = task(ARN2, 5);
    arm.architecture = Some(Architecture::Arm64);
    arm.pull_started_at = Some(at(0));
    arm.stopped_at = Some(at(3_600_000));
    ledger.apply(&fact("e1", FactBody::Task(spot)));
    ledger.apply(&fact("e2", FactBody::Task(arm)));
    ledger.apply(&fact(
        "e3",
        succeeded_job("spot", vec![attempt(0, Some(ARN), None, None)]),
    ));
    ledger.apply(&fact(
        "e4",
        succeeded_job("arm", vec![attempt(0, Some(ARN2), None, None)]),
    ));
    let when = at_seconds(7200);
    // Spot: 30 % of on-demand for vCPU and memory; one hour.
    assert_eq!(
        the_job(&ledger, when, "spot").cost_usd,
        Some(x86_1vcpu_2gib() * dec!(0.30))
    );
    assert_eq!(
        the_job(&ledger, when, "arm").cost_usd,
        Some(dec!(0.03238) + dec!(2) * dec!(0.00356))
    );
}

#[test]
fn ephemeral_storage_above_twenty_gib_is_charged() {
    let mut ledger = ledger();
    let mut big = task(ARN, 5);
    big.size = Some(TaskSize {
        vcpu: dec!(1),
        memory_gib: dec!(2),
        storage_gib: Some(50),
        gpus: None,
    });
    big.pull_started_at = Some(at(0));
    big.stopped_at = Some(at(3_600_000));
    ledger.apply(&fact("e1", FactBody::Task(big)));
    ledger.apply(&fact(
        "e2",
        succeeded_job("j1", vec![attempt(0, Some(ARN), None, None)]),
    ));
    let expected = x86_1vcpu_2gib() + dec!(30) * dec!(0.000111);
    assert_eq!(
        the_job(&ledger, at_seconds(7200), "j1").cost_usd,
        Some(expected)
    );
}

#[test]
fn every_attempt_of_a_retried_job_is_billed() {
    // GIVEN a job whose first task was interrupted after 10 min and whose retry ran 20 min
    let mut ledger = ledger();
    ledger.apply(&fact("e1", stopped_task(ARN, 0, 600_000)));
    ledger.apply(&fact("e2", stopped_task(ARN2, 700_000, 1_900_000)));
    ledger.apply(&fact(
        "e3",
        succeeded_job(
            "j1",
            vec![
                attempt(0, Some(ARN), Some(at(5_000)), Some(at(599_000))),
                attempt(1, Some(ARN2), Some(at(705_000)), Some(at(1_899_000))),
            ],
        ),
    ));
    // THEN both tasks are on the job's bill
    let job = the_job(&ledger, at_seconds(3600), "j1");
    assert_eq!(job.billed_seconds, 600 + 1200);
    assert_eq!(job.attempts, 2);
    assert_eq!(
        job.cost_usd,
        Some(x86_1vcpu_2gib() * dec!(1800) / dec!(3600))
    );
}

#[test]
fn a_running_task_accrues_up_to_the_evaluation_time() {
    // GIVEN a task that started pulling at 0.250 s and has not stopped
    let mut ledger = ledger();
    let mut running = task(ARN, 3);
    running.pull_started_at = Some(at(250));
    ledger.apply(&fact("e1", FactBody::Task(running)));
    ledger.apply(&fact(
        "e2",
        FactBody::Job(job(
            "j1",
            JobStatus::Running,
            vec![attempt(0, Some(ARN), Some(at(4_000)), None)],
        )),
    ));
    // THEN at 30 s it has cost the minute, at 600 s ceil(599.75) = 600 s
    let rate = x86_1vcpu_2gib();
    assert_eq!(total(&ledger, at_seconds(30)), rate * dec!(60) / dec!(3600));
    assert_eq!(
        total(&ledger, at_seconds(600)),
        rate * dec!(600) / dec!(3600)
    );
    let spend = ledger.scope_spend(&Scope::Total, at_seconds(600));
    assert_eq!(spend.burn_rate_usd_per_hour, rate);
    assert_eq!(spend.running_tasks, 1);
    assert!(the_job(&ledger, at_seconds(600), "j1").running);
}

#[test]
fn without_ecs_data_the_batch_attempt_is_billed_and_marked_estimated() {
    // GIVEN only Batch events: the attempt ran 0 s → 100 s on a 1 vCPU / 2 GiB job
    let mut ledger = ledger();
    ledger.apply(&fact(
        "e1",
        succeeded_job(
            "j1",
            vec![attempt(0, Some(ARN), Some(at(0)), Some(at(100_000)))],
        ),
    ));
    let job = the_job(&ledger, at_seconds(3600), "j1");
    // THEN the job's size and Batch's times are billed at on-demand, marked estimated
    assert_eq!(job.billed_seconds, 100);
    assert_eq!(
        job.cost_usd,
        Some(x86_1vcpu_2gib() * dec!(100) / dec!(3600))
    );
    assert!(job.estimated);
    // AND once the ECS task arrives, its exact figures replace the estimate
    ledger.apply(&fact("e2", stopped_task(ARN, -20_000, 101_000)));
    let job = the_job(&ledger, at_seconds(3600), "j1");
    assert_eq!(job.billed_seconds, 121);
    assert!(!job.estimated);
}

#[test]
fn a_region_without_prices_is_unpriced_never_zero() {
    let mut ledger = ledger();
    let mut observed = job(
        "j1",
        JobStatus::Succeeded,
        vec![attempt(0, None, Some(at(0)), Some(at(100_000)))],
    );
    observed.region = Some("eu-west-1".into());
    ledger.apply(&fact("e1", FactBody::Job(observed)));
    let job = the_job(&ledger, at_seconds(3600), "j1");
    assert_eq!(job.cost_usd, None);
    assert!(
        matches!(job.unpriced, Some(Unpriced::NoPriceForRegion { ref region, .. }) if region == "eu-west-1")
    );
    let spend = ledger.scope_spend(&Scope::Total, at_seconds(3600));
    assert_eq!((spend.spend_usd, spend.unpriced_tasks), (Decimal::ZERO, 1));
}

#[test]
fn an_ec2_job_on_an_instance_no_event_described_is_unpriced() {
    let mut ledger = ledger();
    let mut observed = job(
        "j1",
        JobStatus::Succeeded,
        vec![attempt(0, None, Some(at(0)), Some(at(100_000)))],
    );
    observed.platform = Some(Platform::Ec2);
    ledger.apply(&fact("e1", FactBody::Job(observed)));
    assert_eq!(
        the_job(&ledger, at_seconds(3600), "j1").unpriced,
        Some(Unpriced::UnknownInstance)
    );
}

#[test]
fn an_array_parent_is_never_billed_itself() {
    let mut ledger = ledger();
    let mut parent = job("p", JobStatus::Pending, vec![]);
    parent.array_size = Some(3);
    ledger.apply(&fact("e1", FactBody::Job(parent)));
    ledger.apply(&fact(
        "e2",
        succeeded_job(
            "p:0",
            vec![attempt(0, Some(ARN), Some(at(0)), Some(at(60_000)))],
        ),
    ));
    let walk = ledger.walk(at_seconds(3600));
    let parent = walk.jobs.iter().find(|j| j.job_id == "p").unwrap();
    assert!(parent.array_parent);
    assert_eq!(
        (parent.cost_usd, parent.billed_seconds),
        (Some(Decimal::ZERO), 0)
    );
    assert_eq!(
        walk.jobs
            .iter()
            .find(|j| j.job_id == "p:0")
            .unwrap()
            .billed_seconds,
        60
    );
}

#[test]
fn a_task_seen_before_its_job_moves_from_unattributed_to_the_job_queue() {
    let mut ledger = ledger();
    ledger.apply(&fact("e1", stopped_task(ARN, 0, 120_000)));
    let when = at_seconds(3600);
    let unattributed = Scope::Queue(UNATTRIBUTED.into());
    let cost = x86_1vcpu_2gib() * dec!(120) / dec!(3600);
    assert_eq!(ledger.scope_spend(&unattributed, when).spend_usd, cost);
    ledger.apply(&fact(
        "e2",
        succeeded_job("j1", vec![attempt(0, Some(ARN), None, None)]),
    ));
    assert_eq!(
        ledger.scope_spend(&unattributed, when).spend_usd,
        Decimal::ZERO
    );
    assert_eq!(
        ledger
            .scope_spend(&Scope::Queue("q".into()), when)
            .spend_usd,
        cost
    );
    assert_eq!(total(&ledger, when), cost, "moved, not counted twice");
    assert!(ledger.scopes().all(|scope| *scope != unattributed));
}

#[test]
fn a_duplicate_event_changes_nothing() {
    let mut once = ledger();
    let mut twice = ledger();
    let events = [
        fact("e1", stopped_task(ARN, 0, 120_000)),
        fact(
            "e2",
            succeeded_job("j1", vec![attempt(0, Some(ARN), None, None)]),
        ),
    ];
    for event in &events {
        once.apply(event);
        twice.apply(event);
        twice.apply(event);
    }
    assert_eq!(once.walk(at_seconds(3600)), twice.walk(at_seconds(3600)));
}

#[test]
fn period_spend_counts_only_the_seconds_inside_the_month() {
    // GIVEN a task running from 23:00 on 31 October to 01:00 on 1 November
    let october_31_23h = T0 - 25 * 3_600_000; // T0 is 2026-11-02T00:00Z
    let mut ledger = ledger();
    let mut t = task(ARN, 5);
    t.pull_started_at = Some(Millis(october_31_23h));
    t.stopped_at = Some(Millis(october_31_23h + 2 * 3_600_000));
    ledger.apply(&fact("e1", FactBody::Task(t)));
    let spend = ledger.scope_spend(&Scope::Total, at_seconds(0));
    // THEN all two hours are spend, one of them in November's budget
    assert_eq!(spend.spend_usd, x86_1vcpu_2gib() * dec!(2));
    assert_eq!(spend.period_spend_usd, x86_1vcpu_2gib());
    // AND a walk of every unit agrees
    assert_eq!(ledger.walk(at_seconds(0)).scopes[&Scope::Total], spend);
}

/// The figures a user adds up agree: the report's total (the exact total, rounded to 10
/// places) is the sum of its listed figures — jobs, tasks no job names, idle EC2 capacity —
/// each within a ten-billionth of its exact value (on the mixed Fargate / EC2 workload).
#[test]
fn the_reported_total_is_the_sum_of_the_reported_figures() {
    use shared::analysis::report::StatusReport;
    let workload = batchguard_tests::mixed_ec2_workload();
    let prices = PriceTable::builtin_with_overrides(workload.prices).unwrap();
    let mut ledger = Ledger::new(prices, BudgetPeriod::Month);
    for fact in &workload.facts {
        ledger.apply(fact);
    }
    let report = StatusReport::build(&ledger, workload.at, None, Default::default());
    let listed: Decimal = report
        .jobs
        .iter()
        .filter_map(|j| j.cost_usd)
        .sum::<Decimal>()
        + report
            .unattributed_tasks
            .iter()
            .filter_map(|t| t.cost_usd)
            .sum::<Decimal>()
        + report
            .ec2_instances
            .iter()
            .filter_map(|i| i.idle_usd)
            .sum::<Decimal>();
    assert_eq!(report.spend_usd, listed);
    let exact = ledger.scope_spend(&Scope::Total, workload.at).spend_usd;
    assert_eq!(report.spend_usd, shared::analysis::report::money(exact));
    let walk = ledger.walk(workload.at);
    for (line, job) in report.jobs.iter().zip(&walk.jobs) {
        if let (Some(shown), Some(exact)) = (line.cost_usd, job.cost_usd) {
            assert!(
                (shown - exact).abs() < Decimal::new(1, 10),
                "{shown} vs {exact}"
            );
        }
    }
}
