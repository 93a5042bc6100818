//! Helpers shared by the integration tests: builders for facts, and an independent Fargate
//! bill of a generated workload's ground truth.
#![forbid(unsafe_code)]
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly"
)]

pub mod cfn;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use rust_decimal::Decimal;
use shared::core::facts::{
    Architecture, AttemptObserved, Capacity, Fact, FactBody, JobObserved, JobStatus, Millis,
    Platform, TaskObserved, TaskSize,
};
use shared::ports::{BatchControl, ControlError, JobSummary, Notifier, QueueState};
use shared::synth::TrueTask;

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
        }),
        architecture: Some(Architecture::X86_64),
        pull_started_at: None,
        pull_stopped_at: None,
        started_at: None,
        stopped_at: None,
        stop_code: None,
        availability_zone: None,
        region: Some("us-east-1".into()),
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
        }),
        architecture: None,
        tags: BTreeMap::new(),
        array_size: None,
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

/// The local AWS API emulator's endpoint, which `scripts/test.sh` starts and exports as
/// `AWS_ENDPOINT_URL`. Panics (failing the test, not skipping it) when it is missing or not on
/// the loopback interface: these tests must never reach a real AWS account.
pub fn emulator_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "AWS_ENDPOINT_URL is {endpoint:?}: run the tests with `bash scripts/test.sh`, which starts the local AWS emulator"
    );
    endpoint
}

/// AWS SDK configuration pointed at the emulator.
pub async fn emulator_config() -> aws_config::SdkConfig {
    let endpoint = emulator_endpoint();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await
}

/// A table prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("bg-{test}-{}-{nanos:x}", std::process::id())
}

/// A fresh DynamoDB event log (both tables created) on the emulator.
pub async fn emulator_event_log(test: &str) -> shared::adapters::dynamodb::DynamoEventLog {
    use shared::adapters::dynamodb::{DynamoEventLog, TableNames};
    let config = emulator_config().await;
    let log = DynamoEventLog::new(
        aws_sdk_dynamodb::Client::new(&config),
        TableNames::from_prefix(&unique_prefix(test)),
    );
    log.create_tables()
        .await
        .unwrap_or_else(|e| panic!("creating tables on the emulator: {e}"));
    log
}

/// Counts the DynamoDB operations a client sends (an SDK interceptor), to report requests per
/// job lifecycle.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl RequestCounter {
    pub fn count(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl aws_sdk_dynamodb::config::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_execution(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<
            '_,
        >,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// As [`emulator_event_log`], with every operation its client sends counted.
pub async fn counted_emulator_event_log(
    test: &str,
) -> (shared::adapters::dynamodb::DynamoEventLog, RequestCounter) {
    use shared::adapters::dynamodb::{DynamoEventLog, TableNames};
    let config = emulator_config().await;
    let counter = RequestCounter::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(counter.clone())
            .build(),
    );
    let log = DynamoEventLog::new(client, TableNames::from_prefix(&unique_prefix(test)));
    log.create_tables()
        .await
        .unwrap_or_else(|e| panic!("creating tables on the emulator: {e}"));
    (log, counter)
}

/// A job queue on the emulator, on an unmanaged compute environment (whose service role
/// `scripts/test.sh` creates in the emulator's IAM).
pub async fn emulator_queue(batch: &aws_sdk_batch::Client, name: &str) {
    let environment = format!("{name}-ce");
    let exists = batch
        .describe_job_queues()
        .job_queues(name)
        .send()
        .await
        .map(|d| !d.job_queues().is_empty())
        .unwrap_or(false);
    if exists {
        // Left by an earlier run on the same emulator: start from an enabled queue.
        batch
            .update_job_queue()
            .job_queue(name)
            .state(aws_sdk_batch::types::JqState::Enabled)
            .send()
            .await
            .unwrap();
        return;
    }
    batch
        .create_compute_environment()
        .compute_environment_name(&environment)
        .r#type(aws_sdk_batch::types::CeType::Unmanaged)
        .service_role(
            std::env::var("BATCHGUARD_TEST_BATCH_ROLE").expect(
                "BATCHGUARD_TEST_BATCH_ROLE: scripts/test.sh creates the role on the emulator",
            ),
        )
        .state(aws_sdk_batch::types::CeState::Enabled)
        .send()
        .await
        .unwrap();
    batch
        .create_job_queue()
        .job_queue_name(name)
        .priority(1)
        .state(aws_sdk_batch::types::JqState::Enabled)
        .compute_environment_order(
            aws_sdk_batch::types::ComputeEnvironmentOrder::builder()
                .order(1)
                .compute_environment(&environment)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

pub async fn queue_state(batch: &aws_sdk_batch::Client, name: &str) -> String {
    let described = batch
        .describe_job_queues()
        .job_queues(name)
        .send()
        .await
        .unwrap();
    described.job_queues()[0]
        .state()
        .unwrap()
        .as_str()
        .to_owned()
}

/// An in-memory AWS Batch that holds jobs in every state (the emulator cannot without Docker)
/// and records every mutating call.
#[derive(Debug, Default)]
pub struct FakeBatch {
    pub queues: Mutex<BTreeMap<String, bool>>,
    pub jobs: Mutex<Vec<JobSummary>>,
    pub mutating_calls: Mutex<Vec<String>>,
}

impl FakeBatch {
    /// Queues `(name, enabled)` and jobs `(id, queue, status, protected)`.
    pub fn with(queues: &[(&str, bool)], jobs: &[(&str, &str, JobStatus, bool)]) -> Self {
        Self {
            queues: Mutex::new(queues.iter().map(|(q, e)| ((*q).to_owned(), *e)).collect()),
            jobs: Mutex::new(
                jobs.iter()
                    .map(|(id, queue, status, protected)| JobSummary {
                        job_id: (*id).to_owned(),
                        queue: (*queue).to_owned(),
                        status: *status,
                        tags: if *protected {
                            BTreeMap::from([("batchguard:protect".to_owned(), "true".to_owned())])
                        } else {
                            BTreeMap::new()
                        },
                    })
                    .collect(),
            ),
            mutating_calls: Mutex::default(),
        }
    }

    /// Records the call and moves the job to FAILED, as CancelJob and TerminateJob do.
    fn fail_job(&self, call: &str, job_id: &str) {
        self.mutating_calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(format!("{call} {job_id}"));
        for job in self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter_mut()
            .filter(|j| j.job_id == job_id)
        {
            job.status = JobStatus::Failed;
        }
    }

    /// The mutating calls made so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.mutating_calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl BatchControl for FakeBatch {
    async fn queues(&self, names: &[String]) -> Result<Vec<QueueState>, ControlError> {
        Ok(self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(name, _)| names.is_empty() || names.contains(name))
            .map(|(name, enabled)| QueueState {
                name: name.clone(),
                enabled: *enabled,
            })
            .collect())
    }

    async fn set_queue_enabled(&self, queue: &str, enabled: bool) -> Result<(), ControlError> {
        self.mutating_calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(format!("UpdateJobQueue {queue} {enabled}"));
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(queue.to_owned(), enabled);
        Ok(())
    }

    async fn jobs(
        &self,
        queue: &str,
        statuses: &[JobStatus],
    ) -> Result<Vec<JobSummary>, ControlError> {
        Ok(self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|job| job.queue == queue && statuses.contains(&job.status))
            .cloned()
            .collect())
    }

    async fn cancel_job(&self, job_id: &str, _reason: &str) -> Result<(), ControlError> {
        self.fail_job("CancelJob", job_id);
        Ok(())
    }

    async fn current_state_events(
        &self,
        _job_ids: &[String],
    ) -> Result<Vec<serde_json::Value>, ControlError> {
        Ok(Vec::new())
    }

    async fn terminate_job(&self, job_id: &str, _reason: &str) -> Result<(), ControlError> {
        self.fail_job("TerminateJob", job_id);
        Ok(())
    }
}

/// Notifications, kept.
#[derive(Debug, Default)]
pub struct Outbox(pub Mutex<Vec<String>>);

impl Notifier for Outbox {
    async fn notify(&self, subject: &str, _message: &str) -> Result<(), ControlError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(subject.to_owned());
        Ok(())
    }
}

/// An enforcer trigger that keeps the requests (the ticker's tests).
#[derive(Debug, Default)]
pub struct RecordingTrigger(pub Mutex<Vec<shared::handlers::enforcer::EnforcerRequest>>);

impl shared::ports::EnforcerTrigger for RecordingTrigger {
    async fn trigger(
        &self,
        request: &shared::handlers::enforcer::EnforcerRequest,
    ) -> Result<(), ControlError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(request.clone());
        Ok(())
    }
}

/// A generated two-hour workload of `jobs` jobs whose events stop while tasks still run (so
/// there is a burn rate at its end), and its configuration.
pub fn workload_ending_with_running_tasks(
    seed: u64,
    jobs: usize,
) -> (shared::synth::WorkloadConfig, shared::synth::Workload) {
    let base = shared::synth::WorkloadConfig::sample_day();
    let config = shared::synth::WorkloadConfig {
        seed,
        jobs,
        span_seconds: 2 * 3600,
        end_ms: base.start_ms + 2 * 3_600_000,
        ..base
    };
    let workload = shared::synth::generate(&config);
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

/// Asserts that every scope's spend read from the DynamoDB projections (shard sums plus the
/// one-minute correction of recent starts) equals `expected`, the local replay's, at `at`.
pub async fn assert_projected_spend_is(
    projector: &shared::adapters::dynamodb_projection::DynamoProjector,
    expected: &std::collections::BTreeMap<
        shared::core::scope::Scope,
        shared::core::scope::ScopeSpend,
    >,
    at: i64,
    period: shared::core::budget::BudgetPeriod,
) {
    let recent = projector.recent_starts(at).await.unwrap();
    for (scope, spend) in expected {
        let totals = projector.scope_totals(scope).await.unwrap();
        let corrections = recent
            .iter()
            .filter(|(s, _, _)| s == scope)
            .map(|(_, anchor, rate)| (*anchor, *rate));
        assert_eq!(
            &totals.spend_at(at, period, corrections),
            spend,
            "scope {scope:?}"
        );
    }
}
