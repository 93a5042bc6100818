//! A workload generator: realistic Batch-on-Fargate event streams with their ground truth.
//!
//! Used for the bundled example (`examples/sample-day.jsonl`), the benchmarks and the tests.
//! Every job runs on Fargate or Fargate Spot, x86_64 or arm64, with a valid Fargate size;
//! some are interrupted on Spot and retried, some are array jobs, some still run at the end.
//! The ground truth ([`TrueTask`]) is what actually ran, so a test can bill it independently.
//!
//! Deterministic: the same [`WorkloadConfig`] always gives the same bytes.

use chrono::{SecondsFormat, TimeZone, Utc};
use serde_json::{Value, json};

/// What to generate.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub seed: u64,
    /// Top-level jobs (an array job counts once, its children extra).
    pub jobs: usize,
    /// Unix milliseconds of the first submission.
    pub start_ms: i64,
    /// Submissions spread over this many seconds.
    pub span_seconds: i64,
    /// Events after this instant are not emitted (tasks still running then stay running).
    pub end_ms: i64,
    pub region: String,
    /// Out of 100.
    pub spot_percent: u32,
    pub arm_percent: u32,
    pub array_percent: u32,
    /// Chance that a Spot task is interrupted (and retried), out of 100.
    pub interruption_percent: u32,
    /// ECS tasks on a non-Batch cluster (skipped by batchguard), per 100 jobs.
    pub foreign_tasks_percent: u32,
}

impl WorkloadConfig {
    /// The bundled sample day: 2026-11-23, 400 jobs submitted from 06:00 to 20:00 UTC,
    /// observed until 20:30, when some are still running.
    pub fn sample_day() -> Self {
        let start_ms = 1_795_413_600_000; // 2026-11-23T06:00:00Z
        Self {
            seed: 20_261_123,
            jobs: 400,
            start_ms,
            span_seconds: 14 * 3600,
            end_ms: start_ms + 14 * 3_600_000 + 1_800_000,
            region: "us-east-1".into(),
            spot_percent: 60,
            arm_percent: 30,
            array_percent: 8,
            interruption_percent: 10,
            foreign_tasks_percent: 3,
        }
    }
}

/// A task as it really ran: what an independent bill is computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrueTask {
    pub job_id: String,
    pub queue: String,
    pub task_arn: String,
    pub pull_started_ms: i64,
    /// When ECS first reports `pullStartedAt` (its RUNNING event): before then no event says
    /// the task is billing, so no monitor can know.
    pub first_reported_ms: i64,
    /// `None` if still running at the end of the workload.
    pub stopped_ms: Option<i64>,
    /// CPU units (1024 = 1 vCPU).
    pub cpu_units: u32,
    pub memory_mib: u32,
    pub storage_gib: u32,
    pub arm: bool,
    pub spot: bool,
}

/// Events in the order they happened, and the truth behind them.
#[derive(Clone, Debug)]
pub struct Workload {
    /// One compact JSON event per entry.
    pub events: Vec<String>,
    pub tasks: Vec<TrueTask>,
}

/// Valid Fargate (CPU units, memory MiB) combinations, a selection across the range.
pub const SIZES: [(u32, u32); 12] = [
    (256, 512),
    (256, 2048),
    (512, 1024),
    (512, 4096),
    (1024, 2048),
    (1024, 8192),
    (2048, 4096),
    (2048, 16384),
    (4096, 8192),
    (4096, 30720),
    (8192, 16384),
    (16384, 32768),
];
const QUEUES: [&str; 3] = ["genomics-high", "etl-spot", "render-default"];
const DEFINITIONS: [&str; 4] = ["align-reads", "nightly-etl", "render-frame", "score-model"];
/// The attempt timeout each definition's jobs carry (`timeout.attemptDurationSeconds`), or
/// none: long enough that no generated job reaches it.
fn timeout_of(definition: &str) -> Option<u32> {
    match definition {
        "align-reads" => Some(12 * 3600),
        "render-frame" => Some(6 * 3600),
        _ => None,
    }
}
const TEAMS: [&str; 3] = ["genomics", "data", "media"];
const ACCOUNT: &str = "123456789012";

struct Emitter {
    events: Vec<(i64, u64, String)>,
    end_ms: i64,
    sequence: u64,
    region: String,
}

impl Emitter {
    fn emit(&mut self, at_ms: i64, detail_type: &str, source: &str, resource: &str, detail: Value) {
        if at_ms > self.end_ms {
            return;
        }
        self.sequence += 1;
        let mut envelope = json!({
            "version": "0",
            "id": format!("{:08x}-0000-4000-8000-{:012x}", self.sequence, at_ms),
            "detail-type": detail_type,
            "source": source,
            "account": ACCOUNT,
            "time": iso_seconds(at_ms),
            "region": self.region,
            "resources": [resource],
            "detail": detail,
        });
        // Keys in one fixed order whatever map serde_json was built with (a dependency's
        // feature can switch it to insertion order), so the same config gives the same bytes.
        envelope.sort_all_objects();
        self.events
            .push((at_ms, self.sequence, envelope.to_string()));
    }
}

fn iso_seconds(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms.div_euclid(1000) * 1000)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn iso_millis(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

struct JobPlan {
    job_id: String,
    queue: &'static str,
    definition: &'static str,
    size: (u32, u32),
    storage_gib: u32,
    arm: bool,
    spot: bool,
    compute_environment: &'static str,
    submitted_ms: i64,
    tags: Value,
    array_index: Option<u32>,
}

/// Generates a workload.
pub fn generate(config: &WorkloadConfig) -> Workload {
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let mut out = Emitter {
        events: Vec::new(),
        end_ms: config.end_ms,
        sequence: 0,
        region: config.region.clone(),
    };
    let mut tasks = Vec::new();
    let mut task_counter = 0_u64;
    for job_number in 0..config.jobs {
        let submitted_ms =
            config.start_ms + rng.i64(0..config.span_seconds.max(1)) * 1000 + rng.i64(0..1000);
        let spot = rng.u32(0..100) < config.spot_percent;
        let queue = QUEUES[rng.usize(0..QUEUES.len())];
        let definition = DEFINITIONS[rng.usize(0..DEFINITIONS.len())];
        let plan = JobPlan {
            job_id: format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                config.seed as u32,
                job_number,
                rng.u16(0..4096),
                rng.u16(0..4096),
                rng.u64(0..1 << 48)
            ),
            queue,
            definition,
            size: SIZES[rng.usize(0..SIZES.len())],
            storage_gib: if rng.u32(0..100) < 15 {
                rng.u32(21..=200)
            } else {
                20
            },
            arm: rng.u32(0..100) < config.arm_percent,
            spot,
            compute_environment: if spot {
                "fargate-spot-ce"
            } else {
                "fargate-ce"
            },
            submitted_ms,
            tags: json!({
                "resourceArn": job_arn(&config.region, &format!("job-{job_number}")),
                "team": TEAMS[job_number % TEAMS.len()],
                "project": format!("p{}", job_number % 5),
            }),
            array_index: None,
        };
        if rng.u32(0..100) < config.array_percent {
            let children = rng.u32(2..=6);
            emit_array_parent(&mut out, &plan, children);
            for index in 0..children {
                let child = JobPlan {
                    job_id: format!("{}:{index}", plan.job_id),
                    submitted_ms: plan.submitted_ms + i64::from(index) * 250,
                    array_index: Some(index),
                    tags: plan.tags.clone(),
                    ..plan
                };
                run_job(
                    &mut out,
                    &mut rng,
                    config,
                    &child,
                    &mut tasks,
                    &mut task_counter,
                );
            }
        } else {
            run_job(
                &mut out,
                &mut rng,
                config,
                &plan,
                &mut tasks,
                &mut task_counter,
            );
        }
        if rng.u32(0..100) < config.foreign_tasks_percent {
            emit_foreign_task(&mut out, &mut rng, submitted_ms, &mut task_counter);
        }
    }
    out.events.sort_by_key(|(at, sequence, _)| (*at, *sequence));
    Workload {
        events: out.events.into_iter().map(|(_, _, text)| text).collect(),
        tasks,
    }
}

fn job_arn(config_region: &str, job_id: &str) -> String {
    format!("arn:aws:batch:{config_region}:{ACCOUNT}:job/{job_id}")
}

fn batch_detail(
    out: &Emitter,
    plan: &JobPlan,
    status: &str,
    attempts: &[Value],
    extra: &[(&str, Value)],
) -> Value {
    let (cpu, memory) = plan.size;
    let vcpu = match cpu {
        256 => "0.25".to_owned(),
        512 => "0.5".to_owned(),
        units => (units / 1024).to_string(),
    };
    let mut container = json!({
        "image": format!("{ACCOUNT}.dkr.ecr.{}.amazonaws.com/{}:latest", out.region, plan.definition),
        "command": ["run", "--input", "s3://bucket/input"],
        "environment": [],
        "resourceRequirements": [{"value": vcpu, "type": "VCPU"}, {"value": memory.to_string(), "type": "MEMORY"}],
        "runtimePlatform": {"cpuArchitecture": if plan.arm { "ARM64" } else { "X86_64" }, "operatingSystemFamily": "LINUX"},
        "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
        "networkInterfaces": [],
    });
    if plan.storage_gib != 20 {
        container["ephemeralStorage"] = json!({"sizeInGiB": plan.storage_gib});
    }
    let mut detail = json!({
        "jobArn": job_arn(&out.region, &plan.job_id),
        "jobName": format!("{}-{}", plan.definition, &plan.job_id[..8]),
        "jobId": plan.job_id,
        "jobQueue": format!("arn:aws:batch:{}:{ACCOUNT}:job-queue/{}", out.region, plan.queue),
        "status": status,
        "attempts": attempts,
        "createdAt": plan.submitted_ms,
        "retryStrategy": {"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}]},
        "dependsOn": [],
        "jobDefinition": format!("arn:aws:batch:{}:{ACCOUNT}:job-definition/{}:3", out.region, plan.definition),
        "parameters": {},
        "container": container,
        "tags": plan.tags,
        "propagateTags": true,
        "platformCapabilities": ["FARGATE"],
    });
    if let Some(index) = plan.array_index {
        detail["arrayProperties"] = json!({"index": index});
    }
    if let Some(seconds) = timeout_of(plan.definition) {
        detail["timeout"] = json!({"attemptDurationSeconds": seconds});
    }
    if let Some(object) = detail.as_object_mut() {
        for (key, value) in extra {
            object.insert((*key).to_owned(), value.clone());
        }
    }
    detail
}

fn emit_array_parent(out: &mut Emitter, plan: &JobPlan, children: u32) {
    let mut detail = batch_detail(out, plan, "SUBMITTED", &[], &[]);
    detail["arrayProperties"] = json!({"size": children, "statusSummary": {}});
    let resource = job_arn(&out.region, &plan.job_id);
    out.emit(
        plan.submitted_ms,
        "Batch Job State Change",
        "aws.batch",
        &resource,
        detail.clone(),
    );
    detail["status"] = json!("PENDING");
    out.emit(
        plan.submitted_ms + 1_000,
        "Batch Job State Change",
        "aws.batch",
        &resource,
        detail,
    );
}

#[allow(clippy::too_many_lines, reason = "one job's whole lifecycle, in order")]
fn run_job(
    out: &mut Emitter,
    rng: &mut fastrand::Rng,
    config: &WorkloadConfig,
    plan: &JobPlan,
    tasks: &mut Vec<TrueTask>,
    task_counter: &mut u64,
) {
    let resource = job_arn(&out.region, &plan.job_id);
    let mut t = plan.submitted_ms;
    for status in ["SUBMITTED", "PENDING", "RUNNABLE"] {
        out.emit(
            t,
            "Batch Job State Change",
            "aws.batch",
            &resource,
            batch_detail(out, plan, status, &[], &[]),
        );
        t += rng.i64(200..3_000);
    }
    let mut attempts: Vec<Value> = Vec::new();
    let max_attempts = 3;
    for attempt in 0..max_attempts {
        *task_counter += 1;
        let cluster = format!(
            "AWSBatch-{}-{:08x}-1111-2222-3333-{:012x}",
            plan.compute_environment, config.seed as u32, config.seed
        );
        let task_arn = format!(
            "arn:aws:ecs:{}:{ACCOUNT}:task/{cluster}/{:032x}",
            out.region, *task_counter
        );
        let queued_ms = rng.i64(5_000..240_000);
        let created = t + queued_ms;
        let pull_started = created + rng.i64(3_000..25_000);
        let pull_stopped = pull_started + rng.i64(2_000..60_000);
        let started = pull_stopped + rng.i64(500..4_000);
        // Durations from 5 s to ~3 h, most of them short.
        let run_ms = match rng.u32(0..10) {
            0..=2 => rng.i64(5_000..60_000),
            3..=7 => rng.i64(60_000..1_800_000),
            _ => rng.i64(1_800_000..10_800_000),
        };
        let interrupted = plan.spot
            && attempt + 1 < max_attempts
            && rng.u32(0..100) < config.interruption_percent;
        let stopping = started + if interrupted { run_ms / 3 } else { run_ms };
        let execution_stopped = stopping + rng.i64(100..3_000);
        let stopped = execution_stopped + rng.i64(1_000..30_000);
        let (cpu, memory) = plan.size;
        tasks.push(TrueTask {
            job_id: plan.job_id.clone(),
            queue: plan.queue.to_owned(),
            task_arn: task_arn.clone(),
            pull_started_ms: pull_started,
            first_reported_ms: started,
            stopped_ms: (stopped <= config.end_ms).then_some(stopped),
            cpu_units: cpu,
            memory_mib: memory,
            storage_gib: plan.storage_gib,
            arm: plan.arm,
            spot: plan.spot,
        });

        let container_now = |detail: &mut Value| {
            detail["container"]["taskArn"] = json!(task_arn);
            detail["container"]["logStreamName"] = json!(format!(
                "{}/default/{:032x}",
                plan.definition, *task_counter
            ));
        };
        let mut starting = batch_detail(out, plan, "STARTING", &attempts, &[]);
        container_now(&mut starting);
        out.emit(
            created + 200,
            "Batch Job State Change",
            "aws.batch",
            &resource,
            starting,
        );

        let region = out.region.clone();
        let task_number = *task_counter;
        let ecs = |status: &str,
                   version: u64,
                   times: &[(&str, i64)],
                   stop: Option<(&str, &str)>| {
            let mut detail = json!({
                "attachments": [{"id": "eni-attachment", "type": "eni", "status": "ATTACHED", "details": []}],
                "attributes": [{"name": "ecs.cpu-architecture", "value": if plan.arm { "arm64" } else { "x86_64" }}],
                "availabilityZone": format!("{region}{}", ["a", "b", "c"][(task_number % 3) as usize]),
                "capacityProviderName": if plan.spot { "FARGATE_SPOT" } else { "FARGATE" },
                "clusterArn": format!("arn:aws:ecs:{region}:{ACCOUNT}:cluster/{cluster}"),
                "containers": [{"name": "default", "lastStatus": status, "taskArn": task_arn}],
                "cpu": cpu.to_string(),
                "memory": memory.to_string(),
                "createdAt": iso_millis(created),
                "desiredStatus": if status == "STOPPED" { "STOPPED" } else { "RUNNING" },
                "group": format!("family:{}", plan.definition),
                "launchType": "FARGATE",
                "lastStatus": status,
                "platformVersion": "1.4.0",
                "taskArn": task_arn,
                "taskDefinitionArn": format!("arn:aws:ecs:{region}:{ACCOUNT}:task-definition/{}:3", plan.definition),
                "version": version,
            });
            if plan.storage_gib != 20 {
                detail["ephemeralStorage"] = json!({"sizeInGiB": plan.storage_gib});
            }
            for (key, at) in times {
                detail[*key] = json!(iso_millis(*at));
            }
            if let Some((code, reason)) = stop {
                detail["stopCode"] = json!(code);
                detail["stoppedReason"] = json!(reason);
            }
            detail
        };
        out.emit(
            created,
            "ECS Task State Change",
            "aws.ecs",
            &task_arn,
            ecs("PROVISIONING", 1, &[], None),
        );
        out.emit(
            pull_started - 500,
            "ECS Task State Change",
            "aws.ecs",
            &task_arn,
            ecs("PENDING", 2, &[], None),
        );
        let running_times = [
            ("pullStartedAt", pull_started),
            ("pullStoppedAt", pull_stopped),
            ("startedAt", started),
        ];
        out.emit(
            started,
            "ECS Task State Change",
            "aws.ecs",
            &task_arn,
            ecs("RUNNING", 3, &running_times, None),
        );

        let mut running = batch_detail(
            out,
            plan,
            "RUNNING",
            &attempts,
            &[("startedAt", json!(started))],
        );
        container_now(&mut running);
        out.emit(
            started + 300,
            "Batch Job State Change",
            "aws.batch",
            &resource,
            running,
        );

        let stop = if interrupted {
            ("SpotInterruption", "Your Spot Task was interrupted.")
        } else {
            (
                "EssentialContainerExited",
                "Essential container in task exited",
            )
        };
        let stopped_times = [
            ("pullStartedAt", pull_started),
            ("pullStoppedAt", pull_stopped),
            ("startedAt", started),
            ("stoppingAt", stopping),
            ("executionStoppedAt", execution_stopped),
            ("stoppedAt", stopped),
        ];
        out.emit(
            stopped,
            "ECS Task State Change",
            "aws.ecs",
            &task_arn,
            ecs("STOPPED", 5, &stopped_times, Some(stop)),
        );

        let exit_code = if interrupted {
            json!(null)
        } else if rng.u32(0..10) == 0 {
            json!(1)
        } else {
            json!(0)
        };
        attempts.push(json!({
            "container": {"taskArn": task_arn, "exitCode": exit_code, "logStreamName": "default"},
            "startedAt": started,
            "stoppedAt": execution_stopped,
            "statusReason": stop.1,
        }));
        t = stopped + rng.i64(500..5_000);
        if interrupted {
            out.emit(
                t,
                "Batch Job State Change",
                "aws.batch",
                &resource,
                batch_detail(out, plan, "RUNNABLE", &attempts, &[]),
            );
            t += rng.i64(1_000..10_000);
            continue;
        }
        let final_status = if exit_code == json!(0) {
            "SUCCEEDED"
        } else {
            "FAILED"
        };
        let extra = [
            ("startedAt", json!(started)),
            ("stoppedAt", json!(execution_stopped)),
        ];
        let mut done = batch_detail(out, plan, final_status, &attempts, &extra);
        container_now(&mut done);
        out.emit(t, "Batch Job State Change", "aws.batch", &resource, done);
        break;
    }
}

/// An ECS service task on a cluster Batch does not manage: batchguard must skip it.
fn emit_foreign_task(
    out: &mut Emitter,
    rng: &mut fastrand::Rng,
    at_ms: i64,
    task_counter: &mut u64,
) {
    *task_counter += 1;
    let task_arn = format!(
        "arn:aws:ecs:{}:{ACCOUNT}:task/web-frontend/{:032x}",
        out.region, *task_counter
    );
    let detail = json!({
        "clusterArn": format!("arn:aws:ecs:{}:{ACCOUNT}:cluster/web-frontend", out.region),
        "taskArn": task_arn,
        "lastStatus": "RUNNING",
        "launchType": "FARGATE",
        "cpu": "512",
        "memory": "1024",
        "group": "service:web",
        "version": 3,
        "pullStartedAt": iso_millis(at_ms),
        "startedAt": iso_millis(at_ms + rng.i64(1_000..5_000)),
    });
    out.emit(at_ms, "ECS Task State Change", "aws.ecs", &task_arn, detail);
}

/// Shuffles events and delivers `duplicate_percent` of them a second time (EventBridge
/// delivers at least once and keeps no order).
pub fn shuffle_with_duplicates(
    events: &[String],
    duplicate_percent: u32,
    seed: u64,
) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut delivered: Vec<String> = events.to_vec();
    for event in events {
        if rng.u32(0..100) < duplicate_percent {
            delivered.push(event.clone());
        }
    }
    rng.shuffle(&mut delivered);
    delivered
}
