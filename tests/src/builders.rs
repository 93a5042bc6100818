//! Builders of facts and events, the generated and real workloads the tests run, and an
//! independent Fargate bill of a generated workload's ground truth.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use shared::analysis::synth::TrueTask;
use shared::core::facts::{
    Architecture, AttemptObserved, Capacity, Fact, FactBody, JobObserved, JobStatus, Millis,
    Platform, TaskObserved, TaskSize,
};

/// 2026-11-02T00:00:00Z: a quiet Monday to start test clocks from.
pub const T0: i64 = 1_793_577_600_000;

/// Milliseconds after [`T0`].
pub fn at(offset_ms: i64) -> Millis {
    Millis(T0 + offset_ms)
}

/// Whole seconds after [`T0`], as an evaluation instant.
pub fn at_seconds(offset_seconds: i64) -> i64 {
    T0 / 1000 + offset_seconds
}

/// An ECS task on the Batch compute environment `fargate-ce`, us-east-1, x86 on-demand.
pub fn task(arn: &str, version: u64) -> TaskObserved {
    TaskObserved {
        task_arn: arn.to_owned(),
        compute_environment: Some("fargate-ce".into()),
        family: Some("jobdef".into()),
        version,
        last_status: "RUNNING".into(),
        platform: Some(Platform::Fargate),
        capacity: Some(Capacity::OnDemand),
        size: Some(TaskSize {
            vcpu: Decimal::ONE,
            memory_gib: Decimal::TWO,
            storage_gib: None,
            gpus: None,
        }),
        architecture: Some(Architecture::X86_64),
        operating_system: None,
        pull_started_at: None,
        pull_stopped_at: None,
        started_at: None,
        stopped_at: None,
        stop_code: None,
        availability_zone: None,
        region: Some("us-east-1".into()),
        container_instance_arn: None,
    }
}

/// A Fargate job of 1 vCPU / 2 GiB on queue `q`, us-east-1.
pub fn job(job_id: &str, status: JobStatus, attempts: Vec<AttemptObserved>) -> JobObserved {
    JobObserved {
        job_id: job_id.to_owned(),
        job_name: format!("name-{job_id}"),
        queue: "q".into(),
        job_definition: "jobdef".into(),
        status,
        status_reason: None,
        created_at: Some(at(0)),
        attempts,
        platform: Some(Platform::Fargate),
        size: Some(TaskSize {
            vcpu: Decimal::ONE,
            memory_gib: Decimal::TWO,
            storage_gib: None,
            gpus: None,
        }),
        architecture: None,
        operating_system: None,
        tags: BTreeMap::new(),
        array_size: None,
        timeout_seconds: None,
        node_index: None,
        region: Some("us-east-1".into()),
    }
}

pub fn attempt(
    index: u32,
    task_arn: Option<&str>,
    started: Option<Millis>,
    stopped: Option<Millis>,
) -> AttemptObserved {
    AttemptObserved {
        index,
        task_arn: task_arn.map(str::to_owned),
        started_at: started,
        stopped_at: stopped,
        exit_code: None,
        container_instance_arn: None,
        status_reason: None,
    }
}

pub fn fact(event_id: &str, body: FactBody) -> Fact {
    Fact {
        event_id: event_id.to_owned(),
        observed_at: None,
        body,
    }
}

/// The published us-east-1 Fargate prices, written out here on purpose (not read from the
/// price table) so the bill below is independent of the code under test.
#[derive(Clone, Debug)]
pub struct IndependentPrices {
    pub x86_vcpu_hour: Decimal,
    pub x86_gb_hour: Decimal,
    pub arm_vcpu_hour: Decimal,
    pub arm_gb_hour: Decimal,
    pub storage_gb_hour: Decimal,
    pub spot_fraction: Decimal,
}

impl Default for IndependentPrices {
    fn default() -> Self {
        Self {
            x86_vcpu_hour: Decimal::new(4048, 5),
            x86_gb_hour: Decimal::new(4445, 6),
            arm_vcpu_hour: Decimal::new(3238, 5),
            arm_gb_hour: Decimal::new(356, 5),
            storage_gb_hour: Decimal::new(111, 6),
            spot_fraction: Decimal::new(30, 2),
        }
    }
}

/// The Fargate bill of what really ran, straight from the pricing page's rules:
/// `max(60, ceil(stop − pullStartedAt))` seconds at the task's hourly price; a task still
/// running is billed up to `at_ms` (which must be a whole second). Tasks no event has yet
/// reported as pulling are left out: nothing can know of them.
pub fn independent_bill(
    tasks: &[TrueTask],
    at_ms: i64,
    prices: &IndependentPrices,
) -> HashMap<String, Decimal> {
    let mut per_job: HashMap<String, Decimal> = HashMap::new();
    for task in tasks {
        if task.first_reported_ms > at_ms {
            continue;
        }
        let stop = task
            .stopped_ms
            .filter(|&stop| stop <= at_ms)
            .unwrap_or(at_ms);
        let elapsed_ms = stop - task.pull_started_ms;
        let seconds = ((elapsed_ms + 999) / 1000).max(60);
        let (vcpu_price, gb_price) = if task.arm {
            (prices.arm_vcpu_hour, prices.arm_gb_hour)
        } else {
            (prices.x86_vcpu_hour, prices.x86_gb_hour)
        };
        let discount = if task.spot {
            prices.spot_fraction
        } else {
            Decimal::ONE
        };
        let vcpu = Decimal::from(task.cpu_units) / Decimal::from(1024);
        let gib = Decimal::from(task.memory_mib) / Decimal::from(1024);
        let extra_storage = Decimal::from(task.storage_gib.saturating_sub(20));
        let hourly = (vcpu * vcpu_price + gib * gb_price) * discount
            + extra_storage * prices.storage_gb_hour;
        *per_job.entry(task.job_id.clone()).or_default() +=
            hourly * Decimal::from(seconds) / Decimal::from(3600);
    }
    per_job
}

/// A generated two-hour workload of `jobs` jobs whose events stop while tasks still run (so
/// there is a burn rate at its end), and its configuration.
pub fn workload_ending_with_running_tasks(
    seed: u64,
    jobs: usize,
) -> (
    shared::analysis::synth::WorkloadConfig,
    shared::analysis::synth::Workload,
) {
    let base = shared::analysis::synth::WorkloadConfig::sample_day();
    let config = shared::analysis::synth::WorkloadConfig {
        seed,
        jobs,
        span_seconds: 2 * 3600,
        end_ms: base.start_ms + 2 * 3_600_000,
        ..base
    };
    let workload = shared::analysis::synth::generate(&config);
    (config, workload)
}

/// The ledger a local replay of `events` (EventBridge JSON) gives, with the built-in prices.
pub fn replay_ledger(
    events: &[String],
    period: shared::core::budget::BudgetPeriod,
) -> shared::core::ledger::Ledger {
    let mut ledger =
        shared::core::ledger::Ledger::new(shared::core::prices::PriceTable::builtin(), period);
    for event in events {
        if let Ok(shared::events::Parsed::Fact(fact)) =
            shared::events::parse_event(event.as_bytes())
        {
            ledger.apply(&fact);
        }
    }
    ledger
}

/// A mixed Fargate / EC2 workload with its bill worked out independently of the ledger
/// (prices written out here, the EC2 rule — per second, one-minute minimum — and AWS split
/// cost allocation's weighting, 9 per vCPU and 1 per GiB of what the instance type offers,
/// applied by hand).
#[derive(Clone, Debug)]
pub struct MixedWorkload {
    pub facts: Vec<Fact>,
    /// The price file the workload needs (a Spot compute environment and its price).
    pub prices: &'static str,
    /// Evaluation instant (whole seconds).
    pub at: i64,
    /// Each instance's bill at `at`, by container instance ARN.
    pub instance_bills: BTreeMap<String, Decimal>,
    /// Each EC2 job's share of its instances at `at`.
    pub ec2_job_costs: BTreeMap<String, Decimal>,
    /// Each EC2 task's share of its instance at `at`, by task ARN (a split cost export's
    /// `split_line_item_split_cost`, summed over its hours).
    pub ec2_task_costs: BTreeMap<String, Decimal>,
    /// Each EC2 task's instance (its `split_line_item_parent_resource_id`).
    pub ec2_task_instances: BTreeMap<String, String>,
    /// Each Fargate job's cost at `at`.
    pub fargate_job_costs: BTreeMap<String, Decimal>,
    /// Compute environment of each instance.
    pub instance_compute_environments: BTreeMap<String, String>,
}

pub const MIXED_PRICES: &str = r#"
ec2_spot_compute_environments = ["ec2-spot"]
[[ec2]]
region = "us-east-1"
instance_type = "m5.large"
on_demand_hour = "0.096"
spot_hour = "0.0361"
"#;

/// An *ECS Container Instance State Change* as the event parser leaves it.
#[allow(clippy::too_many_arguments)]
pub fn instance_fact(
    event_id: &str,
    arn: &str,
    ce: &str,
    instance_type: &str,
    (cpu_units, memory_mib): (i64, i64),
    status: &str,
    version: u64,
    registered_at: Millis,
    updated_at: Millis,
) -> Fact {
    fact(
        event_id,
        FactBody::Instance(shared::core::facts::InstanceObserved {
            container_instance_arn: arn.to_owned(),
            ec2_instance_id: Some(format!("i-{}", arn.len())),
            compute_environment: Some(ce.to_owned()),
            instance_type: Some(instance_type.to_owned()),
            availability_zone: Some("us-east-1a".into()),
            architecture: Some(Architecture::X86_64),
            registered: Some(shared::core::facts::InstanceSize {
                vcpu: Decimal::from(cpu_units) / Decimal::from(1024),
                memory_gib: Decimal::from(memory_mib) / Decimal::from(1024),
            }),
            status: status.to_owned(),
            version,
            registered_at: Some(registered_at),
            updated_at: Some(updated_at),
            region: Some("us-east-1".into()),
        }),
    )
}

pub fn mixed_ec2_workload() -> MixedWorkload {
    let hour = Decimal::from(3600);
    let eval = 4_000; // seconds after T0
    let billed = |from_ms: i64, to_ms: Option<i64>| -> i64 {
        let to_ms = to_ms.map_or(eval * 1000, |to| to.min(eval * 1000));
        let seconds = match to_ms - from_ms {
            ms if ms % 1000 == 0 => ms / 1000,
            ms => ms / 1000 + 1,
        };
        seconds.max(60)
    };
    let ci = |id: &str, ce: &str| {
        format!(
            "arn:aws:ecs:us-east-1:123456789012:container-instance/AWSBatch-{ce}-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/{id}"
        )
    };
    let (a, b, c) = (ci("a", "ec2-od"), ci("b", "ec2-spot"), ci("c", "ec2-od"));
    // m5.xlarge registers 4 vCPU and 15,580 MiB; m5.large 2 vCPU and 7,680 MiB.
    let xl = (4096, 15_580);
    let large = (2048, 7_680);
    let mut facts = vec![
        instance_fact(
            "ia1",
            &a,
            "ec2-od",
            "m5.xlarge",
            xl,
            "ACTIVE",
            1,
            at(0),
            at(0),
        ),
        instance_fact(
            "ia2",
            &a,
            "ec2-od",
            "m5.xlarge",
            xl,
            "INACTIVE",
            9,
            at(0),
            at(3_600_500),
        ),
        instance_fact(
            "ib1",
            &b,
            "ec2-spot",
            "m5.large",
            large,
            "ACTIVE",
            1,
            at(100_000),
            at(100_000),
        ),
        instance_fact(
            "ib2",
            &b,
            "ec2-spot",
            "m5.large",
            large,
            "DRAINING",
            5,
            at(100_000),
            at(1_800_000),
        ),
        instance_fact(
            "ib3",
            &b,
            "ec2-spot",
            "m5.large",
            large,
            "INACTIVE",
            7,
            at(100_000),
            at(1_900_000),
        ),
        instance_fact(
            "ic1",
            &c,
            "ec2-od",
            "m5.large",
            large,
            "ACTIVE",
            1,
            at(1_000_000),
            at(1_000_000),
        ),
    ];
    let mut instance_bills = BTreeMap::new();
    instance_bills.insert(
        a.clone(),
        Decimal::new(192, 3) * Decimal::from(billed(0, Some(3_600_500))) / hour,
    );
    instance_bills.insert(
        b.clone(),
        Decimal::new(361, 4) * Decimal::from(billed(100_000, Some(1_900_000))) / hour,
    );
    instance_bills.insert(
        c.clone(),
        Decimal::new(96, 3) * Decimal::from(billed(1_000_000, None)) / hour,
    );
    let instance_compute_environments = BTreeMap::from([
        (a.clone(), "ec2-od".to_owned()),
        (b.clone(), "ec2-spot".to_owned()),
        (c.clone(), "ec2-od".to_owned()),
    ]);

    // EC2 jobs: (job, attempts as (instance, its price, its registered size, vCPU, GiB,
    // start ms, stop ms, stop code)).
    type Run<'a> = (
        &'a str,
        Decimal,
        (i64, i64),
        Option<i64>,
        Option<&'a str>,
        i64,
    );
    let ec2_jobs: Vec<(&str, Decimal, Decimal, Vec<Run<'_>>)> = vec![
        (
            "e1",
            Decimal::TWO,
            Decimal::from(8),
            vec![(&a, Decimal::new(192, 3), xl, Some(1_260_000), None, 60_000)],
        ),
        (
            "e2",
            Decimal::ONE,
            Decimal::TWO,
            vec![(&a, Decimal::new(192, 3), xl, Some(90_000), None, 60_000)],
        ),
        (
            "e3",
            Decimal::ONE,
            Decimal::from(4),
            vec![
                (
                    &b,
                    Decimal::new(361, 4),
                    large,
                    Some(1_750_250),
                    Some("SpotInterruption"),
                    200_000,
                ),
                (&c, Decimal::new(96, 3), large, None, None, 1_100_000),
            ],
        ),
    ];
    let mut ec2_job_costs = BTreeMap::new();
    let mut ec2_task_costs = BTreeMap::new();
    let mut ec2_task_instances = BTreeMap::new();
    let mut event = 0;
    for (job_id, vcpu, gib, runs) in &ec2_jobs {
        let mut attempts = Vec::new();
        let mut cost = Decimal::ZERO;
        for (index, (instance, price, (cpu, _), stop, stop_code, start)) in runs.iter().enumerate()
        {
            // AWS split cost allocation: the reservation's vCPU × 9 + GiB over the instance
            // type's (an m5.xlarge offers 4 vCPU and 16 GiB, an m5.large 2 and 8), not the
            // registered (`cpu`, `mem`) and not 0.9 / 0.1 of the fractions.
            let (type_vcpu, type_gib) = if *cpu == 4096 { (4, 16) } else { (2, 8) };
            let share = (Decimal::from(9) * vcpu + gib) / Decimal::from(9 * type_vcpu + type_gib);
            let task_cost = price * share * Decimal::from(billed(*start, *stop)) / hour;
            cost += task_cost;
            let arn = format!(
                "arn:aws:ecs:us-east-1:123456789012:task/AWSBatch-ec2-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/{job_id}-{index}"
            );
            ec2_task_costs.insert(arn.clone(), task_cost);
            ec2_task_instances.insert(arn.clone(), (*instance).to_owned());
            let mut observed = task(&arn, 3);
            observed.platform = Some(Platform::Ec2);
            observed.capacity = None;
            observed.compute_environment = Some("ec2".into());
            observed.size = None; // EC2 task events often carry no task-level size
            observed.container_instance_arn = Some((*instance).to_owned());
            observed.pull_started_at = Some(at(*start));
            observed.stopped_at = stop.map(at);
            observed.stop_code = stop_code.map(str::to_owned);
            observed.last_status = if stop.is_some() { "STOPPED" } else { "RUNNING" }.into();
            observed.availability_zone = Some("us-east-1a".into());
            event += 1;
            facts.push(fact(&format!("t{event}"), FactBody::Task(observed)));
            let mut attempt = attempt(
                index as u32,
                Some(&arn),
                Some(at(*start + 5_000)),
                stop.map(at),
            );
            attempt.container_instance_arn = Some((*instance).to_owned());
            attempts.push(attempt);
        }
        ec2_job_costs.insert((*job_id).to_owned(), cost);
        let running = runs.last().is_some_and(|run| run.3.is_none());
        let mut observed = job(
            job_id,
            if running {
                JobStatus::Running
            } else {
                JobStatus::Succeeded
            },
            attempts,
        );
        observed.platform = Some(Platform::Ec2);
        observed.queue = "q-ec2".into();
        observed.size = Some(TaskSize {
            vcpu: *vcpu,
            memory_gib: *gib,
            storage_gib: None,
            gpus: None,
        });
        event += 1;
        facts.push(fact(&format!("j{event}"), FactBody::Job(observed)));
    }

    // Fargate jobs: on-demand and Spot, 1 vCPU / 2 GiB x86, us-east-1.
    let on_demand_rate = Decimal::new(4048, 5) + Decimal::TWO * Decimal::new(4445, 6);
    let mut fargate_job_costs = BTreeMap::new();
    for (job_id, capacity, rate, start, stop) in [
        ("f1", Capacity::OnDemand, on_demand_rate, 0, 600_000),
        (
            "f2",
            Capacity::Spot,
            on_demand_rate * Decimal::new(3, 1),
            30_000,
            30_500,
        ),
    ] {
        let arn = format!(
            "arn:aws:ecs:us-east-1:123456789012:task/AWSBatch-fargate-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/{job_id}"
        );
        let mut observed = task(&arn, 2);
        observed.capacity = Some(capacity);
        observed.pull_started_at = Some(at(start));
        observed.stopped_at = Some(at(stop));
        observed.last_status = "STOPPED".into();
        event += 1;
        facts.push(fact(&format!("t{event}"), FactBody::Task(observed)));
        event += 1;
        facts.push(fact(
            &format!("j{event}"),
            FactBody::Job(job(
                job_id,
                JobStatus::Succeeded,
                vec![attempt(
                    0,
                    Some(&arn),
                    Some(at(start + 1_000)),
                    Some(at(stop)),
                )],
            )),
        ));
        fargate_job_costs.insert(
            job_id.to_owned(),
            rate * Decimal::from(billed(start, Some(stop))) / hour,
        );
    }
    MixedWorkload {
        facts,
        prices: MIXED_PRICES,
        at: at_seconds(eval),
        instance_bills,
        ec2_job_costs,
        ec2_task_costs,
        ec2_task_instances,
        fargate_job_costs,
        instance_compute_environments,
    }
}

/// The projections of the sample day's first `events` events (`examples/sample-day.jsonl`)
/// with `book` applied, monthly at the built-in prices, and the last instant they observed
/// (Unix ms).
pub async fn sample_day_projector(
    book: &shared::core::budgets::BudgetBook,
    events: usize,
) -> (shared::adapters::memory::MemoryProjector, i64) {
    use shared::ports::Projector;
    let projector = shared::adapters::memory::MemoryProjector::with_budgets(
        shared::core::prices::PriceTable::builtin(),
        shared::core::budget::BudgetPeriod::Month,
        std::sync::Arc::new(book.clone()),
    );
    let text = std::fs::read_to_string(crate::cfn::root().join("examples/sample-day.jsonl"))
        .unwrap_or_else(|e| panic!("the sample day: {e}"));
    let mut last_ms = 0;
    for line in text.lines().take(events) {
        if let Ok(shared::events::Parsed::Fact(fact)) = shared::events::parse_event(line.as_bytes())
        {
            last_ms = last_ms.max(fact.observed_at.map_or(0, |m| m.0));
            if let Err(error) = projector.project(&fact).await {
                panic!("projecting {}: {error}", fact.event_id);
            }
        }
    }
    (projector, last_ms)
}

/// A real sample event from `tests/fixtures/events`, as text.
pub fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(crate::cfn::root().join("tests/fixtures/events").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The Fargate job of the FAILED sample and its task, reclaimed by Fargate Spot as AWS
/// documents it (`capacityProviderName` `FARGATE_SPOT`, `stopCode` `SpotInterruption`,
/// "Your Spot Task was interrupted."): the ECS sample is another task, so it is renamed to
/// the job's.
pub fn spot_interrupted_job_events() -> [String; 2] {
    let job = fixture_text(
        "batch_job_state_change_FAILED_fargate_python_fixture_NOTE_event_time_key.json",
    );
    let task = fixture_text(
        "ecs_task_state_change_batch_fargate_STOPPED_python_fixture_NOTE_event_time_key.json",
    );
    let replacements = [
        (
            "arn:aws:ecs:us-east-1:121169888995:task/AWSBatch-fargate-batch-compute-13af15fe-\"",
            "arn:aws:ecs:us-east-1:963685750466:task/AWSBatch-fargate-batch-compute-a9b789f0-f35e-396f-9c0f-50e00abf809f/332089cce2794bfeb27186563687041f\"",
        ),
        (
            "\"capacityProviderName\": \"FARGATE\"",
            "\"capacityProviderName\": \"FARGATE_SPOT\"",
        ),
        (
            "\"stopCode\": \"EssentialContainerExited\"",
            "\"stopCode\": \"SpotInterruption\"",
        ),
        (
            "Essential container in task exited",
            "Your Spot Task was interrupted.",
        ),
    ];
    let mut task = task;
    for (from, to) in replacements {
        assert!(task.contains(from), "the ECS sample changed: {from}");
        task = task.replace(from, to);
    }
    [job, task]
}

/// The documented *ECS Container Instance State Change*, on a Batch cluster (the sample is on
/// `default`) and with the attributes the ECS agent sets today (instance type, zone).
pub fn batch_instance_event() -> String {
    let text = fixture_text("ecs_container_instance_state_change_awsdocs.json");
    let last_attribute = r#"{ "name": "com.amazonaws.ecs.capability.task-iam-role" }"#;
    assert!(text.contains("cluster/default") && text.contains(last_attribute));
    text.replace(
        "cluster/default",
        "cluster/AWSBatch-ec2-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941",
    )
    .replace(
        last_attribute,
        r#"{ "name": "com.amazonaws.ecs.capability.task-iam-role" }, { "name": "ecs.instance-type", "value": "m5.large" }, { "name": "ecs.availability-zone", "value": "us-east-1b" }"#,
    )
}
