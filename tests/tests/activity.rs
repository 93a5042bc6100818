//! Runtime monitoring from the real events in `tests/fixtures/events`: transitions, timings,
//! exit codes and retries, multi-node parents, Spot interruptions; any order, any duplicates.
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::path::PathBuf;

use rust_decimal::Decimal;
use shared::core::activity::{Activity, By, ParentKind};
use shared::core::budget::BudgetPeriod;
use shared::core::facts::{Fact, JobStatus};
use shared::core::ledger::Ledger;
use shared::core::prices::PriceTable;
use shared::events::{Parsed, parse_event};

fn fixture(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/events");
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn fact(text: &str) -> Fact {
    match parse_event(text.as_bytes()).unwrap() {
        Parsed::Fact(fact) => fact,
        other => panic!("{other:?}"),
    }
}

fn activity(facts: &[Fact]) -> Activity {
    let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    for fact in facts {
        ledger.apply(fact);
    }
    let at = ledger.latest_instant().unwrap().floor_seconds() + 1;
    Activity::build(facts, &ledger.walk(at))
}

const RTM: [&str; 7] = [
    "rtm_batch-event-RUNNABLE.json",
    "rtm_batch-event-STARTING.json",
    "rtm_batch-event-RUNNING.json",
    "rtm_batch-event-SUCCEEDED.json",
    "rtm_batch-event-MNP-MAIN-NODE.json",
    "rtm_batch-event-MNP-CHILD-NODE.json",
    "rtm_batch-event-MNP-CHILD-NODE-FAILED.json",
];

fn rtm_facts() -> Vec<Fact> {
    RTM.iter().map(|name| fact(&fixture(name))).collect()
}

#[test]
fn transitions_are_counted_by_queue_definition_and_compute_environment_at_event_time() {
    let activity = activity(&rtm_facts());
    assert_eq!(activity.transitions.len(), 7);
    let by_queue = activity.transition_counts(By::Queue);
    for status in [
        JobStatus::Runnable,
        JobStatus::Starting,
        JobStatus::Running,
        JobStatus::Succeeded,
    ] {
        assert_eq!(
            by_queue[&("batch-job-queue-dev".to_owned(), status)],
            1,
            "{status:?}"
        );
    }
    let mnp_queue = "BatchJobQueue-aPDxM4zSFaWt2rp0".to_owned();
    assert_eq!(by_queue[&(mnp_queue.clone(), JobStatus::Running)], 2);
    assert_eq!(by_queue[&(mnp_queue, JobStatus::Failed)], 1);
    // Stamped with the event's own time (the envelope `time`).
    let runnable = activity
        .transitions
        .iter()
        .find(|t| t.status == JobStatus::Runnable)
        .unwrap();
    assert_eq!(
        runnable.at.to_datetime().unwrap().to_rfc3339(),
        "2025-10-17T13:17:39+00:00"
    );
    // The compute environment comes from the task's cluster once a task exists.
    let by_ce = activity.transition_counts(By::ComputeEnvironment);
    assert_eq!(
        by_ce[&("batch-compute-env-dev".to_owned(), JobStatus::Succeeded)],
        1
    );
    assert_eq!(
        by_ce[&(
            "BatchComputeEnvironment-oHxuMlOqgBoID4mL".to_owned(),
            JobStatus::Failed
        )],
        1
    );
    let by_definition = activity.transition_counts(By::JobDefinition);
    assert_eq!(
        by_definition[&(
            "RayClusterJobDefinition-GUn4UK5Y9AGHo0pI".to_owned(),
            JobStatus::Running
        )],
        2
    );
}

#[test]
fn timings_exit_codes_and_retries_come_from_the_events() {
    let activity = activity(&rtm_facts());
    let job = |id: &str| activity.jobs.iter().find(|j| j.job_id == id).unwrap();
    // RUNNABLE at 13:17:39, STARTING at 13:19:25.
    assert_eq!(
        job("a58812f1-a6bc-4791-a0ba-26618d74bb33")
            .timings
            .queue_wait_ms,
        Some(106_000)
    );
    let done = job("7419bcec-23b4-4a65-981b-857c5a9040a5");
    assert_eq!(
        done.timings.run_ms,
        Some(1_760_707_731_125 - 1_760_707_430_919)
    );
    assert_eq!(
        done.timings.total_ms,
        Some(1_760_707_731_125 - 1_760_707_294_698)
    );
    assert_eq!(
        (done.exit_code, done.attempts, done.retries),
        (Some(0), 1, 0)
    );
    // A multi-node node lists its running attempt in attempts[]: one attempt, not two.
    let node = job("b0814c91-61c2-4a2b-a790-44781b182ef9#1");
    assert_eq!(
        (node.attempts, node.retries, node.exit_code),
        (1, 0, Some(1))
    );
    assert_eq!(node.status, Some(JobStatus::Failed));
    assert_eq!(
        activity.exit_codes(),
        [(0, 1), (1, 1)].into_iter().collect()
    );
    let run = activity.distribution(|t| t.run_ms).unwrap();
    assert_eq!(run.count, 2);
    // The MNP node ran 300.000 s, the single job 300.206 s.
    assert_eq!(run.p50, 1_761_137_920_069 - 1_761_137_620_069);
    assert_eq!(run.max, 1_760_707_731_125 - 1_760_707_430_919);
}

#[test]
fn a_multi_node_job_is_summarised_from_its_nodes() {
    let activity = activity(&rtm_facts());
    let parent = activity
        .parents
        .iter()
        .find(|p| p.job_id == "b0814c91-61c2-4a2b-a790-44781b182ef9")
        .unwrap();
    assert_eq!(parent.kind, ParentKind::MultiNode);
    assert_eq!(parent.children, 2);
    assert_eq!(parent.by_status[&JobStatus::Running], 1);
    assert_eq!(parent.by_status[&JobStatus::Failed], 1);
}

fn interrupted_job() -> Vec<Fact> {
    batchguard_tests::spot_interrupted_job_events()
        .iter()
        .map(|text| fact(text))
        .collect()
}

#[test]
fn spot_interruptions_are_counted_by_queue_and_zone_with_their_cost_and_savings() {
    let activity = activity(&interrupted_job());
    assert_eq!(
        activity.interruption_counts(),
        [(
            ("fargate-tasks-queue".to_owned(), "us-east-1a".to_owned()),
            1
        )]
        .into_iter()
        .collect()
    );
    let interruption = &activity.interruptions[0];
    let job = &activity.jobs[0];
    assert_eq!(interruption.attempt, 0);
    assert_eq!(job.interrupted_attempts, 1);
    assert!(job.spot);
    // The interrupted attempt is the job's only billed one: its cost is the job's.
    assert_eq!(interruption.cost_usd, job.cost_usd);
    assert_eq!(Some(job.interrupted_cost_usd), job.cost_usd);
    assert!(job.cost_usd.unwrap() > Decimal::ZERO);
    // Spot at 30 % of on-demand: the saving is 70 % of the on-demand price of the same time
    // (storage above 20 GiB is charged at the same price either way).
    let savings = activity.spot_savings_usd();
    assert!(
        savings > Decimal::ZERO && savings < job.on_demand_usd.unwrap(),
        "{savings}"
    );
    assert_eq!(savings, job.on_demand_usd.unwrap() - job.cost_usd.unwrap());
    // Image pull from the ECS task: 16:36:31.210 → 16:36:41.153.
    assert_eq!(job.timings.image_pull_ms, Some(9_943));
    assert_eq!(job.availability_zone.as_deref(), Some("us-east-1a"));
    assert_eq!(
        activity.placements(),
        [(("us-east-1a".to_owned(), "fargate".to_owned()), 1)]
            .into_iter()
            .collect()
    );
}

#[test]
fn any_order_and_duplicates_give_the_same_activity() {
    let mut facts = rtm_facts();
    facts.extend(interrupted_job());
    let reference = activity(&facts);
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..50 {
        let mut shuffled = facts.clone();
        shuffled.extend(facts.iter().filter(|_| rng.bool()).cloned());
        rng.shuffle(&mut shuffled);
        assert_eq!(activity(&shuffled), reference);
    }
}

/// The collector's metrics for the Spot and EC2 samples, through the real handler.
#[tokio::test]
async fn the_collector_reports_interruptions_savings_and_instances_from_the_samples() {
    use shared::adapters::emf::EmfMemory;
    use shared::adapters::memory::MemoryEventLog;
    use shared::app::collector::Collector;
    let collector = Collector::new(
        MemoryEventLog::new(),
        shared::adapters::memory::MemoryProjector::new(
            PriceTable::builtin(),
            shared::core::budget::BudgetPeriod::Month,
        ),
    );
    let sink = EmfMemory::default();
    let [job, task] = batchguard_tests::spot_interrupted_job_events();
    let instance = batchguard_tests::batch_instance_event();
    let payload: Vec<serde_json::Value> = [job, task, instance]
        .iter()
        .map(|text| serde_json::from_str(text).unwrap())
        .collect();
    let response = shared::handlers::collector::handle(
        &collector,
        &sink,
        serde_json::Value::Array(payload),
        "test",
        1_800_000_000_000,
    )
    .await
    .unwrap();
    assert_eq!(response.stored, 3);
    let objects = sink.objects.lock().unwrap();
    let with = |metric: &str| -> Vec<&serde_json::Value> {
        objects.iter().filter(|o| o.get(metric).is_some()).collect()
    };
    // The interruption, counted when the ECS event arrives, by compute environment and zone.
    let interruptions = with("SpotInterruptions");
    assert_eq!(interruptions.len(), 1);
    // The sample's cluster name has a truncated UUID, kept as it stands.
    assert_eq!(
        interruptions[0]["ComputeEnvironment"],
        "fargate-batch-compute-13af15fe-56c9-3"
    );
    assert_eq!(interruptions[0]["AvailabilityZone"], "us-east-1a");
    // The job, once its task's event settles it: what the interrupted attempt cost (all of
    // it, here) and what Spot saved.
    let settled = with("InterruptedAttemptsCostUSD");
    let last = settled.last().unwrap();
    assert_eq!(last["InterruptedAttemptsCostUSD"], last["JobCostUSD"]);
    assert!(last["SpotSavingsUSD"].as_f64().unwrap() > 0.0);
    assert_eq!(last["JobQueue"], "fargate-tasks-queue");
    assert_eq!(last["interrupted_attempts"], 1);
    assert_eq!(last["exit_code"], 1);
    assert_eq!(last["image_pull_seconds"], "9.943");
    assert_eq!(last["availability_zone"], "us-east-1a");
    // The instance registry.
    let instances = with("InstanceStateChanges");
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0]["ComputeEnvironment"], "ec2-ce");
    assert_eq!(instances[0]["Status"], "ACTIVE");
    assert_eq!(instances[0]["instance_type"], "m5.large");
    assert_eq!(instances[0]["ec2_instance_id"], "i-f3a8506b");
    assert_eq!(instances[0]["registered_vcpu"], "2");
}
