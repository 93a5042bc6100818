//! EC2 compute environments: the instance registry, each job's share of its instance (AWS split
//! cost allocation: 9 per vCPU, 1 per GiB of what the type offers) and the idle part, on a
//! mixed Fargate / EC2 workload whose bill is worked out independently
//! (`batchguard_tests::mixed_ec2_workload`).
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::path::PathBuf;

use batchguard_tests::{MixedWorkload, mixed_ec2_workload};
use rust_decimal::Decimal;
use shared::core::budget::BudgetPeriod;
use shared::core::facts::{FactBody, Platform};
use shared::core::ledger::{Ledger, Walk};
use shared::core::prices::{PriceTable, Unpriced};
use shared::core::scope::Scope;
use shared::events::{Parsed, SkipReason, parse_event};

fn fixture(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/events");
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn walk_of(workload: &MixedWorkload, order: &[usize]) -> Walk {
    let prices = PriceTable::builtin_with_overrides(workload.prices).unwrap();
    let mut ledger = Ledger::new(prices, BudgetPeriod::Month);
    for &i in order {
        ledger.apply(&workload.facts[i]);
    }
    ledger.walk(workload.at)
}

/// Within a billionth of a dollar: a share's hourly rate is rounded to 10⁻¹² USD
/// (`SHARE_RATE_DECIMAL_PLACES`), over an hour or so of run time here.
fn close(a: Decimal, b: Decimal) -> bool {
    (a - b).abs() < Decimal::new(1, 9)
}

#[test]
fn the_documented_container_instance_event_is_read_once_on_a_batch_cluster() {
    let text = fixture("ecs_container_instance_state_change_awsdocs.json");
    // As published it is on cluster `default`, which Batch does not manage.
    assert!(matches!(
        parse_event(text.as_bytes()).unwrap(),
        Parsed::Skipped(SkipReason::NotBatchCluster { cluster }) if cluster == "default"
    ));
    let on_batch = text.replace(
        "cluster/default",
        "cluster/AWSBatch-ec2-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941",
    );
    let Parsed::Fact(fact) = parse_event(on_batch.as_bytes()).unwrap() else {
        panic!("not a fact")
    };
    let FactBody::Instance(instance) = fact.body else {
        panic!("not an instance")
    };
    assert_eq!(instance.compute_environment.as_deref(), Some("ec2-ce"));
    assert_eq!(instance.ec2_instance_id.as_deref(), Some("i-f3a8506b"));
    assert_eq!(instance.status, "ACTIVE");
    assert_eq!(instance.version, 14801);
    assert_eq!(instance.region.as_deref(), Some("us-east-1"));
    let registered = instance.registered.unwrap();
    assert_eq!(registered.vcpu, Decimal::TWO);
    assert_eq!(
        registered.memory_gib,
        Decimal::from(3767) / Decimal::from(1024)
    );
    // The 2016 sample predates the `ecs.instance-type` attribute: the registry says so
    // instead of guessing a price.
    assert_eq!(instance.instance_type, None);
    let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    ledger.apply(&fact_of(&on_batch));
    let walk = ledger.walk(1_481_042_466 + 3600);
    assert_eq!(walk.instances.len(), 1);
    assert_eq!(
        walk.instances[0].unpriced,
        Some(Unpriced::UnknownInstanceType)
    );

    // With the attributes AWS sends today it is priced.
    let typed = batchguard_tests::batch_instance_event();
    let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    ledger.apply(&fact_of(&typed));
    let walk = ledger.walk(1_481_042_466 + 3600);
    let instance = &walk.instances[0];
    assert_eq!(instance.instance_type.as_deref(), Some("m5.large"));
    assert_eq!(instance.availability_zone.as_deref(), Some("us-east-1b"));
    // Registered at 16:41:06.991 (no registeredAt: the first updatedAt), running an hour
    // later: 3,600 s − 0.991 s rounds to 3,600 billed seconds of $0.096/h.
    assert_eq!(instance.billed_seconds, 3600);
    assert_eq!(instance.cost_usd, Some(Decimal::new(96, 3)));
    assert_eq!(instance.idle_usd, Some(Decimal::new(96, 3)));
}

fn fact_of(text: &str) -> shared::core::facts::Fact {
    match parse_event(text.as_bytes()).unwrap() {
        Parsed::Fact(fact) => fact,
        other => panic!("{other:?}"),
    }
}

#[test]
fn batch_ec2_events_name_the_container_instance_of_each_attempt() {
    let Parsed::Fact(fact) =
        parse_event(fixture("rtm_batch-event-SUCCEEDED.json").as_bytes()).unwrap()
    else {
        panic!("not a fact")
    };
    let FactBody::Job(job) = fact.body else {
        panic!("not a job")
    };
    assert_eq!(
        job.attempts[0].container_instance_arn.as_deref(),
        Some(
            "arn:aws:ecs:us-east-1:123456789012:container-instance/AWSBatch-batch-compute-env-dev-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/f711cf81b719480385a66cc3329704b1"
        )
    );
    assert_eq!(
        job.attempts[0].status_reason.as_deref(),
        Some("Essential container in task exited")
    );
}

#[test]
fn ec2_job_shares_plus_idle_add_up_to_the_instances_bill() {
    let workload = mixed_ec2_workload();
    let order: Vec<usize> = (0..workload.facts.len()).collect();
    let walk = walk_of(&workload, &order);

    // Each instance's bill, as worked out by hand.
    assert_eq!(walk.instances.len(), workload.instance_bills.len());
    for instance in &walk.instances {
        let expected = workload.instance_bills[&instance.container_instance_arn];
        assert!(
            close(instance.cost_usd.unwrap(), expected),
            "{}: {:?} vs {expected}",
            instance.container_instance_arn,
            instance.cost_usd
        );
        assert_eq!(instance.unpriced, None);
    }
    // Each EC2 job's share, by hand.
    for (job_id, expected) in &workload.ec2_job_costs {
        let job = walk.jobs.iter().find(|j| &j.job_id == job_id).unwrap();
        assert_eq!(job.platform, Some(Platform::Ec2), "{job_id}");
        assert!(
            close(job.cost_usd.unwrap(), *expected),
            "{job_id}: {:?} vs {expected}",
            job.cost_usd
        );
    }
    // The identity the issue asks for: job shares + idle = the instances' bill.
    let shares: Decimal = walk
        .jobs
        .iter()
        .filter(|j| j.platform == Some(Platform::Ec2))
        .filter_map(|j| j.cost_usd)
        .sum();
    let idle: Decimal = walk.instances.iter().filter_map(|i| i.idle_usd).sum();
    let bill: Decimal = workload.instance_bills.values().sum();
    assert!(close(shares + idle, bill), "{shares} + {idle} vs {bill}");
    assert!(idle > Decimal::ZERO && shares > Decimal::ZERO);
    // Idle per compute environment is never negative here (tasks fit their instances).
    for instance in &walk.instances {
        assert!(instance.idle_usd.unwrap() >= Decimal::ZERO, "{instance:?}");
    }

    // Scopes: the total and compute environments count what AWS bills (Fargate tasks and EC2
    // instances); queues count the work (Fargate tasks and EC2 shares).
    let fargate: Decimal = workload.fargate_job_costs.values().sum();
    let total = walk.scopes[&Scope::Total].spend_usd;
    assert!(
        close(total, bill + fargate),
        "total {total} vs {}",
        bill + fargate
    );
    let ec2_od: Decimal = workload
        .instance_bills
        .iter()
        .filter(|(arn, _)| workload.instance_compute_environments[*arn] == "ec2-od")
        .map(|(_, bill)| *bill)
        .sum();
    assert!(close(
        walk.scopes[&Scope::ComputeEnvironment("ec2-od".into())].spend_usd,
        ec2_od
    ));
    let ec2_queue = walk.scopes[&Scope::Queue("q-ec2".into())].spend_usd;
    let ec2_jobs: Decimal = workload.ec2_job_costs.values().sum();
    assert!(close(ec2_queue, ec2_jobs), "{ec2_queue} vs {ec2_jobs}");
    let queues: Decimal = walk
        .scopes
        .iter()
        .filter(|(scope, _)| matches!(scope, Scope::Queue(_)))
        .map(|(_, spend)| spend.spend_usd)
        .sum();
    assert!(
        close(queues + idle, total),
        "queues {queues} + idle {idle} vs total {total}"
    );

    // The fast path (running sums) agrees with the walk.
    let prices = PriceTable::builtin_with_overrides(workload.prices).unwrap();
    let mut ledger = Ledger::new(prices, BudgetPeriod::Month);
    for fact in &workload.facts {
        ledger.apply(fact);
    }
    assert_eq!(
        ledger.scope_spend(&Scope::Total, workload.at).spend_usd,
        total
    );

    // Spot: the interrupted job ran partly on a Spot instance, cheaper than on-demand.
    let e3 = walk.jobs.iter().find(|j| j.job_id == "e3").unwrap();
    assert!(e3.on_demand_usd.unwrap() > e3.cost_usd.unwrap(), "{e3:?}");
    let f2 = walk.jobs.iter().find(|j| j.job_id == "f2").unwrap();
    assert_eq!(
        f2.on_demand_usd.unwrap(),
        workload.fargate_job_costs["f2"] / Decimal::new(3, 1)
    );
}

#[test]
fn any_order_and_duplicates_give_the_same_ec2_bill() {
    let workload = mixed_ec2_workload();
    let reference = walk_of(&workload, &(0..workload.facts.len()).collect::<Vec<_>>());
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..50 {
        let mut order: Vec<usize> = (0..workload.facts.len()).collect();
        // Duplicates: a third of the facts twice.
        order.extend((0..workload.facts.len()).filter(|_| rng.u8(0..3) == 0));
        rng.shuffle(&mut order);
        let walk = walk_of(&workload, &order);
        assert_eq!(walk.instances, reference.instances);
        assert_eq!(walk.jobs, reference.jobs);
        assert_eq!(walk.scopes, reference.scopes);
    }
}

/// `reconcile` against a split cost export whose EC2 lines carry AWS's split of each instance
/// (`split_line_item_split_cost`, worked out by AWS's method independently of the ledger in
/// `mixed_ec2_workload`): every EC2 task matches.
#[test]
fn reconcile_matches_every_ec2_task_of_a_split_cost_export() {
    use shared::analysis::bill::{BillLine, Match, reconcile};
    let workload = mixed_ec2_workload();
    let prices = PriceTable::builtin_with_overrides(workload.prices).unwrap();
    let mut ledger = Ledger::new(prices, BudgetPeriod::Month);
    for fact in &workload.facts {
        ledger.apply(fact);
    }
    let day_start = workload.at - workload.at.rem_euclid(86_400);
    let lines: Vec<BillLine> = workload
        .ec2_task_costs
        .iter()
        .map(|(arn, cost)| BillLine {
            resource_id: arn.clone(),
            product_code: "AmazonEC2".into(),
            usage_type: "USE1-ECS-EC2-vCPU-Hours".into(),
            line_item_type: "Usage".into(),
            usage_start: day_start,
            usage_amount: Decimal::ONE,
            cost_usd: *cost,
            region: "us-east-1".into(),
            parent_resource_id: Some(workload.ec2_task_instances[arn].clone()),
        })
        .collect();
    assert!(lines.len() >= 4, "{} EC2 tasks", lines.len());
    // What the ledger says of the day up to the workload's instant (a task still running at
    // it is the export's up to then).
    let ours = ledger.task_costs_between(day_start, workload.at);
    let result = reconcile(day_start, &lines, &ours, Decimal::new(1, 4));
    for arn in workload.ec2_task_costs.keys() {
        let task = result.tasks.iter().find(|t| &t.task_arn == arn).unwrap();
        assert_eq!(task.outcome, Match::Matched, "{task:?}");
    }
}
