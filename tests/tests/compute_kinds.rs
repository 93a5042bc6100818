//! The bill on every compute kind batchguard meets beyond Linux Fargate and CPU-only EC2: jobs
//! reserving GPUs, Windows containers on Fargate, jobs on Amazon EKS compute environments.
//! Event shapes follow AWS's documents (named beside each test).
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use rust_decimal::Decimal;
use rust_decimal::dec;
use serde_json::{Value, json};
use shared::analysis::report::StatusReport;
use shared::core::budget::BudgetPeriod;
use shared::core::facts::{FactBody, OperatingSystem, Platform};
use shared::core::ledger::Ledger;
use shared::core::prices::{PriceTable, Unpriced};
use shared::core::scope::Scope;
use shared::events::{Parsed, parse_event};
use shared::ports::IngestCounts;

const T: i64 = 1_795_413_600_000; // 2026-11-23T06:00:00Z

fn fact_of(event: &Value) -> shared::core::facts::Fact {
    match parse_event(event.to_string().as_bytes()).unwrap() {
        Parsed::Fact(fact) => fact,
        other => panic!("not a fact: {other:?}"),
    }
}

fn batch_event(id: &str, detail: Value) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "Batch Job State Change", "source": "aws.batch",
        "account": "123456789012", "time": "2026-11-23T06:00:00Z", "region": "us-east-1",
        "resources": [], "detail": detail
    })
}

fn instance_event(id: &str, instance_type: &str, cpu: i64, memory_mib: i64) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "ECS Container Instance State Change", "source": "aws.ecs",
        "account": "123456789012", "time": "2026-11-23T06:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {
            "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/AWSBatch-gpu-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941",
            "containerInstanceArn": "arn:aws:ecs:us-east-1:123456789012:container-instance/AWSBatch-gpu-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/gpu1",
            "ec2InstanceId": "i-0gpu", "status": "ACTIVE", "version": 2,
            "registeredAt": "2026-11-23T05:59:00Z", "updatedAt": "2026-11-23T05:59:00Z",
            "registeredResources": [{"name": "CPU", "type": "INTEGER", "integerValue": cpu},
                                    {"name": "MEMORY", "type": "INTEGER", "integerValue": memory_mib}],
            "attributes": [{"name": "ecs.instance-type", "value": instance_type},
                           {"name": "ecs.availability-zone", "value": "us-east-1a"}]
        }
    })
}

/// A job holding all 8 GPUs of a p4d.24xlarge with 4 vCPUs and 16 GiB is charged what AWS
/// split cost allocation charges a pod on an accelerated instance: GPU 9 : vCPU 0.9 : memory
/// 0.1 of what the type offers ("Example of split cost allocation data for accelerated
/// instances", AWS Data Exports user guide) — not a sliver by vCPU and memory alone. The GPU
/// count comes from `resourceRequirements` of type `GPU` (AWS Batch "GPU jobs").
#[test]
fn a_gpu_job_is_charged_its_gpus_share_of_the_instance() {
    let instance = instance_event("i1", "p4d.24xlarge", 96 * 1024, 1_150_000);
    let job = batch_event(
        "j1",
        json!({
            "jobId": "gpu-1", "jobName": "train", "jobQueue": "gpu-q", "jobDefinition": "train:1",
            "status": "SUCCEEDED", "platformCapabilities": ["EC2"], "createdAt": T - 120_000,
            "attempts": [{"startedAt": T, "stoppedAt": T + 3_600_000, "container": {
                "containerInstanceArn": "arn:aws:ecs:us-east-1:123456789012:container-instance/AWSBatch-gpu-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/gpu1",
                "exitCode": 0}}],
            "container": {"resourceRequirements": [
                {"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "16384"}, {"type": "GPU", "value": "8"}]}
        }),
    );
    let job_fact = fact_of(&job);
    let FactBody::Job(observed) = &job_fact.body else {
        panic!()
    };
    assert_eq!(observed.size.unwrap().gpus, Some(8));
    let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    ledger.apply(&fact_of(&instance));
    ledger.apply(&job_fact);
    let walk = ledger.walk(T / 1000 + 3_600);
    let cost = walk.jobs[0].cost_usd.unwrap();
    // An hour of (9 × 8 GPU + 0.9 × 4 vCPU + 0.1 × 16 GiB) / (9 × 8 + 0.9 × 96 + 0.1 × 1152)
    // of $21.957642.
    let expected = dec!(21.957642) * dec!(77.2) / dec!(273.6);
    assert!(
        (cost - expected).abs() < dec!(0.000001),
        "{cost} vs {expected}"
    );
    // CPU and memory alone would have charged 4/96 and 16/1152 of it: a few percent.
    assert!(cost > dec!(21.957642) / Decimal::from(4));
    // The report says what the instance's bill was split by, weights included.
    let report = StatusReport::build(&ledger, T / 1000 + 3_600, None, IngestCounts::default());
    assert_eq!(
        report.ec2_instances[0].split_by.as_deref(),
        Some("96 vCPU, 1152 GiB, 8 GPU split GPU 9 : vCPU 0.9 : GiB 0.1")
    );
    // A type the price table does not know is split by what its instance registered, and
    // says so.
    let split_of_x9 = |prices: PriceTable| {
        let mut ledger = Ledger::new(prices, BudgetPeriod::Month);
        ledger.apply(&fact_of(&instance_event(
            "i2",
            "x9.huge",
            8 * 1024,
            32 * 1024,
        )));
        StatusReport::build(&ledger, T / 1000 + 3_600, None, IngestCounts::default()).ec2_instances
            [0]
        .split_by
        .clone()
    };
    let priced = PriceTable::builtin_with_overrides(
        "[[ec2]]\nregion = \"us-east-1\"\ninstance_type = \"x9.huge\"\non_demand_hour = \"1.5\"\n",
    )
    .unwrap();
    assert_eq!(
        split_of_x9(priced).as_deref(),
        Some("8 vCPU, 32 GiB split vCPU 9 : GiB 1 (registered)")
    );
    // Unpriced, it names no split.
    assert_eq!(
        split_of_x9(PriceTable::builtin()),
        None,
        "x9.huge has no price"
    );
}

/// A Windows job on Fargate (`runtimePlatform.operatingSystemFamily`, as AWS Batch job
/// definitions set it for Windows containers) is never priced at Linux rates: it is unpriced,
/// with the reason, and still counted as running.
#[test]
fn a_windows_task_on_fargate_is_unpriced_with_its_reason_never_a_linux_price() {
    let running = batch_event(
        "w1",
        json!({
            "jobId": "win-1", "jobName": "render", "jobQueue": "win-q", "jobDefinition": "render:1",
            "status": "RUNNING", "platformCapabilities": ["FARGATE"], "startedAt": T, "attempts": [],
            "container": {"resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}],
                          "runtimePlatform": {"operatingSystemFamily": "WINDOWS_SERVER_2019_CORE", "cpuArchitecture": "X86_64"},
                          "fargatePlatformConfiguration": {"platformVersion": "LATEST"}}
        }),
    );
    let fact = fact_of(&running);
    let FactBody::Job(observed) = &fact.body else {
        panic!()
    };
    assert_eq!(observed.operating_system, Some(OperatingSystem::Windows));
    let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    ledger.apply(&fact);
    let at = T / 1000 + 600;
    let walk = ledger.walk(at);
    assert_eq!(walk.jobs[0].unpriced, Some(Unpriced::WindowsOnFargate));
    assert_eq!(walk.jobs[0].cost_usd, None);
    assert!(walk.jobs[0].running);
    let total = ledger.scope_spend(&Scope::Total, at);
    assert_eq!(total.spend_usd, Decimal::ZERO, "no Linux price stands in");
    assert_eq!(total.running_tasks, 1);
    assert_eq!(total.running_vcpu, Decimal::TWO);
    // The ECS side says so too (`platformFamily`).
    let task = json!({
        "version": "0", "id": "wt", "detail-type": "ECS Task State Change", "source": "aws.ecs",
        "account": "123456789012", "time": "2026-11-23T06:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"taskArn": "arn:aws:ecs:us-east-1:123456789012:task/AWSBatch-win-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/w",
                   "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/AWSBatch-win-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941",
                   "launchType": "FARGATE", "platformFamily": "WINDOWS_SERVER_2019_FULL", "cpu": "2048", "memory": "4096",
                   "lastStatus": "RUNNING", "version": 2, "pullStartedAt": "2026-11-23T06:00:00Z"}
    });
    let FactBody::Task(task) = fact_of(&task).body else {
        panic!()
    };
    assert_eq!(task.operating_system, Some(OperatingSystem::Windows));
}

/// A job on an Amazon EKS compute environment, in the `JobDetail` shape AWS's "Map a running
/// job to a pod and a node" tutorial shows (`eksProperties.podProperties` with the node name
/// and the containers' `requests`), and finished as `eksAttempts[]`: counted as running with
/// its reservation in its queue while it runs, unpriced with a reason true for EKS, stopped
/// when it ends.
#[test]
fn an_eks_job_runs_in_its_queue_with_its_requests_and_an_eks_reason() {
    let pod = json!({"podProperties": {
        "nodeName": "ip-192-168-55-175.ec2.internal",
        "podName": "aws-batch.b0aca953-ba8f-3791-83e2-ed13af39428c",
        "containers": [{"image": "public.ecr.aws/amazonlinux/amazonlinux:2",
                        "resources": {"requests": {"cpu": "1", "memory": "1024Mi"}}}]
    }});
    let running = batch_event(
        "e1",
        json!({
            "jobArn": "arn:aws:batch:us-east-1:123456789012:job/2d044787-c663-4ce6-a6fe-f2baf7e51b04",
            "jobId": "2d044787-c663-4ce6-a6fe-f2baf7e51b04", "jobName": "sleep",
            "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/My-Eks-JQ1",
            "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/MyJobOnEks_SleepWithRequestsOnly:1",
            "status": "RUNNING", "startedAt": T, "attempts": [], "eksAttempts": [], "eksProperties": pod
        }),
    );
    let fact = fact_of(&running);
    let FactBody::Job(observed) = &fact.body else {
        panic!()
    };
    assert_eq!(observed.platform, Some(Platform::Eks));
    assert_eq!(observed.queue, "My-Eks-JQ1");
    assert_eq!(observed.size.unwrap().vcpu, Decimal::ONE);
    assert_eq!(observed.size.unwrap().memory_gib, Decimal::ONE);
    let mut ledger = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    ledger.apply(&fact);
    let at = T / 1000 + 300;
    let queue = ledger.scope_spend(&Scope::Queue("My-Eks-JQ1".into()), at);
    assert_eq!(queue.running_tasks, 1);
    assert_eq!(queue.running_vcpu, Decimal::ONE);
    assert_eq!(queue.running_memory_gib, Decimal::ONE);
    let walk = ledger.walk(at);
    assert_eq!(walk.running_jobs, 1);
    assert_eq!(walk.jobs[0].unpriced, Some(Unpriced::EksNode));
    assert!(
        Unpriced::EksNode.to_string().contains("EKS"),
        "the reason is about EKS, not ECS events"
    );
    assert!(
        ledger
            .scope_spend(&Scope::ComputeEnvironment("(unknown)".into()), at)
            .running_tasks
            == 1,
        "an EKS job's event does not name its compute environment"
    );
    // Ended: its attempt is in eksAttempts[] with its stop.
    let succeeded = batch_event(
        "e2",
        json!({
            "jobId": "2d044787-c663-4ce6-a6fe-f2baf7e51b04", "jobName": "sleep",
            "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/My-Eks-JQ1",
            "jobDefinition": "MyJobOnEks_SleepWithRequestsOnly:1", "status": "SUCCEEDED",
            "startedAt": T, "stoppedAt": T + 60_000, "attempts": [],
            "eksAttempts": [{"containers": [{"exitCode": 0, "reason": "Completed"}],
                             "podName": "aws-batch.b0aca953-ba8f-3791-83e2-ed13af39428c",
                             "nodeName": "ip-192-168-55-175.ec2.internal",
                             "startedAt": T, "stoppedAt": T + 60_000}],
            "eksProperties": pod
        }),
    );
    ledger.apply(&fact_of(&succeeded));
    let walk = ledger.walk(at);
    assert_eq!(walk.running_jobs, 0);
    assert_eq!(walk.jobs[0].attempts, 1);
}

/// GPUs out of any instance's range are rejected when read, naming the field.
#[test]
fn an_absurd_gpu_count_is_rejected() {
    let event = batch_event(
        "g",
        json!({"jobId": "g", "jobQueue": "q", "jobDefinition": "d", "status": "RUNNABLE",
               "container": {"resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "1024"}, {"type": "GPU", "value": "1000"}]}}),
    );
    let error = parse_event(event.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert!(error.contains("GPU"), "{error}");
}
