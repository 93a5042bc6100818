//! AWS Batch through `aws-sdk-batch`: the enforcer's hands.
//!
//! `ListJobs` is paginated to the end (never a first page taken for the whole); tags come from
//! `DescribeJobs`, at most 100 jobs a call (the API's limit). The Batch API allows about 50
//! requests a second per account; throttled calls (`TooManyRequestsException`) are retried by
//! the SDK's adaptive retry mode, which also slows the client down (see [`AwsBatch::from_config`]).

use std::collections::BTreeMap;

use aws_sdk_batch::Client;
use aws_sdk_batch::error::SdkError;
use aws_sdk_batch::types::{CeType, CrType, JobStatus as BatchStatus, JqState};

use aws_sdk_batch::types::{JobDetail, ResourceRequirement};
use serde_json::{Map, Value, json};

use crate::core::admission::JobShape;
use crate::core::facts::JobStatus;
use crate::core::names;
use crate::ports::{BatchControl, ControlError, JobKind, JobSummary, QueueState};

/// `DescribeJobs` takes at most this many job ids.
pub const DESCRIBE_JOBS_LIMIT: usize = 100;
/// Compute environments one `DescribeComputeEnvironments` call may name ("A list of up to 100
/// compute environment names or full Amazon Resource Name (ARN) entries":
/// <https://docs.aws.amazon.com/batch/latest/APIReference/API_DescribeComputeEnvironments.html>).
pub const DESCRIBE_COMPUTE_ENVIRONMENTS_LIMIT: usize = 100;
/// Attempts per call, throttling included.
pub const MAX_ATTEMPTS: u32 = 10;

fn api<E>(operation: &'static str, error: SdkError<E>) -> ControlError
where
    E: aws_sdk_batch::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    ControlError::Api {
        operation,
        message: super::sdk_error::summary(&error),
        source: Some(Box::new(error)),
    }
}

fn batch_status(status: JobStatus) -> BatchStatus {
    match status {
        JobStatus::Submitted => BatchStatus::Submitted,
        JobStatus::Pending => BatchStatus::Pending,
        JobStatus::Runnable => BatchStatus::Runnable,
        JobStatus::Starting => BatchStatus::Starting,
        JobStatus::Running => BatchStatus::Running,
        JobStatus::Succeeded => BatchStatus::Succeeded,
        JobStatus::Failed => BatchStatus::Failed,
    }
}

/// The Batch API of one account and region.
#[derive(Clone, Debug)]
pub struct AwsBatch {
    client: Client,
}

impl AwsBatch {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A client with adaptive retries (client-side rate limiting on throttling).
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        let retry = aws_config::retry::RetryConfig::adaptive().with_max_attempts(MAX_ATTEMPTS);
        let batch = aws_sdk_batch::config::Builder::from(config)
            .retry_config(retry)
            .build();
        Self::new(Client::from_conf(batch))
    }
}

/// Every page of a `ListJobs` request.
async fn list_all(
    request: aws_sdk_batch::operation::list_jobs::builders::ListJobsFluentBuilder,
) -> Result<Vec<aws_sdk_batch::types::JobSummary>, ControlError> {
    request
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| api("ListJobs", e))
}

impl BatchControl for AwsBatch {
    async fn queues(&self, names: &[String]) -> Result<Vec<QueueState>, ControlError> {
        let mut request = self.client.describe_job_queues();
        for name in names {
            request = request.job_queues(name);
        }
        let details: Vec<_> = request
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| api("DescribeJobQueues", e))?;
        Ok(details
            .into_iter()
            .map(|queue| QueueState {
                name: queue.job_queue_name().unwrap_or_default().to_owned(),
                enabled: queue.state() == Some(&JqState::Enabled),
                // Named by ARN or name; the name is the ARN's last segment.
                compute_environments: queue
                    .compute_environment_order()
                    .iter()
                    .filter_map(|order| order.compute_environment())
                    .map(|ce| ce.rsplit('/').next().unwrap_or(ce).to_owned())
                    .collect(),
            })
            .collect())
    }

    async fn set_queue_enabled(&self, queue: &str, enabled: bool) -> Result<(), ControlError> {
        self.client
            .update_job_queue()
            .job_queue(queue)
            .state(if enabled {
                JqState::Enabled
            } else {
                JqState::Disabled
            })
            .send()
            .await
            .map_err(|e| api("UpdateJobQueue", e))?;
        Ok(())
    }

    async fn jobs(
        &self,
        queue: &str,
        statuses: &[JobStatus],
    ) -> Result<Vec<JobSummary>, ControlError> {
        let mut listed = Vec::new();
        for &status in statuses {
            let summaries = list_all(
                self.client
                    .list_jobs()
                    .job_queue(queue)
                    .job_status(batch_status(status)),
            )
            .await?;
            listed.extend(summaries.into_iter().filter_map(|s| {
                // An array parent carries `arrayProperties.size`; a multi-node job
                // `nodeProperties.numNodes` without a node index (its nodes have one).
                let kind = if s.array_properties().and_then(|a| a.size()).is_some() {
                    JobKind::ArrayParent
                } else if s
                    .node_properties()
                    .is_some_and(|n| n.num_nodes().is_some() && n.node_index().is_none())
                {
                    JobKind::MultiNode
                } else {
                    JobKind::Single
                };
                // An array's children and a multi-node job's nodes are reached through their
                // parent (and judged by its protection), should a queue's listing name them.
                s.job_id()
                    .filter(|id| !id.contains([':', '#']))
                    .map(|id| (id.to_owned(), status, kind, s.created_at()))
            }));
        }
        // Tags decide protection: a job whose tags cannot be read (a failed `DescribeJobs`, a
        // job it leaves out) gets `None`, and the enforcer leaves it alone.
        let mut tags: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut described_kinds: BTreeMap<String, JobKind> = BTreeMap::new();
        let mut definitions: BTreeMap<String, String> = BTreeMap::new();
        let mut shapes: BTreeMap<String, JobShape> = BTreeMap::new();
        for chunk in listed.chunks(DESCRIBE_JOBS_LIMIT) {
            let described = match self
                .client
                .describe_jobs()
                .set_jobs(Some(chunk.iter().map(|(id, _, _, _)| id.clone()).collect()))
                .send()
                .await
            {
                Ok(described) => described,
                Err(error) => {
                    tracing::warn!(error = %api("DescribeJobs", error), "job tags unreadable; those jobs are left alone");
                    continue;
                }
            };
            for job in described.jobs() {
                let job_tags = job
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                if let Some(id) = job.job_id() {
                    tags.insert(id.to_owned(), job_tags);
                    shapes.insert(id.to_owned(), job_shape(job));
                    if let Some(definition) = job.job_definition() {
                        definitions.insert(
                            id.to_owned(),
                            crate::core::names::job_definition_name(definition).to_owned(),
                        );
                    }
                    // The job's own description says what it is too (a listing may leave
                    // `arrayProperties` out).
                    if job.array_properties().and_then(|a| a.size()).is_some() {
                        described_kinds.insert(id.to_owned(), JobKind::ArrayParent);
                    } else if job.node_properties().is_some() && job.node_details().is_none() {
                        described_kinds.insert(id.to_owned(), JobKind::MultiNode);
                    }
                }
            }
        }
        Ok(listed
            .into_iter()
            .map(|(job_id, status, kind, created_at_ms)| JobSummary {
                tags: tags.remove(&job_id),
                kind: described_kinds.remove(&job_id).unwrap_or(kind),
                job_definition: definitions.remove(&job_id),
                shape: shapes.remove(&job_id).unwrap_or_default(),
                created_at_ms,
                job_id,
                queue: queue.to_owned(),
                status,
                compute_environment: None,
            })
            .collect())
    }

    /// `ListJobs` with `arrayJobId` (an array's children) or `multiNodeJobId` (a multi-node
    /// job's nodes), once per status: <https://docs.aws.amazon.com/batch/latest/APIReference/API_ListJobs.html>.
    async fn children(
        &self,
        parent: &JobSummary,
        statuses: &[JobStatus],
    ) -> Result<Vec<String>, ControlError> {
        let mut children = Vec::new();
        for &status in statuses {
            let request = self.client.list_jobs().job_status(batch_status(status));
            let request = match parent.kind {
                JobKind::Single => return Ok(Vec::new()),
                JobKind::ArrayParent => request.array_job_id(&parent.job_id),
                JobKind::MultiNode => request.multi_node_job_id(&parent.job_id),
            };
            let summaries = list_all(request).await?;
            children.extend(
                summaries
                    .iter()
                    .filter_map(|s| s.job_id().map(str::to_owned)),
            );
        }
        Ok(children)
    }

    async fn cancel_job(&self, job_id: &str, reason: &str) -> Result<(), ControlError> {
        self.client
            .cancel_job()
            .job_id(job_id)
            .reason(reason)
            .send()
            .await
            .map_err(|e| api("CancelJob", e))?;
        Ok(())
    }

    async fn current_state_events(&self, job_ids: &[String]) -> Result<Vec<Value>, ControlError> {
        let mut events = Vec::new();
        for chunk in job_ids.chunks(DESCRIBE_JOBS_LIMIT) {
            let described = self
                .client
                .describe_jobs()
                .set_jobs(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| api("DescribeJobs", e))?;
            events.extend(described.jobs().iter().filter_map(state_change_event));
        }
        Ok(events)
    }

    /// `DescribeComputeEnvironments`, 100 names a call (its limit): a managed compute
    /// environment's `computeResources.instanceTypes` when its resources are EC2 or Spot;
    /// `None` for the others (unmanaged: its instances are the user's; Fargate: no instances).
    async fn instance_types(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, Option<Vec<String>>>, ControlError> {
        let mut launches = BTreeMap::new();
        for chunk in names.chunks(DESCRIBE_COMPUTE_ENVIRONMENTS_LIMIT) {
            let described: Vec<_> = self
                .client
                .describe_compute_environments()
                .set_compute_environments(Some(chunk.to_vec()))
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| api("DescribeComputeEnvironments", e))?;
            for environment in described {
                let Some(name) = environment.compute_environment_name() else {
                    continue;
                };
                let types = environment
                    .compute_resources()
                    .filter(|_| environment.r#type() == Some(&CeType::Managed))
                    .filter(|resources| {
                        matches!(resources.r#type(), Some(CrType::Ec2 | CrType::Spot))
                    })
                    .map(|resources| resources.instance_types().to_vec());
                launches.insert(name.to_owned(), types);
            }
        }
        Ok(launches)
    }

    async fn terminate_job(&self, job_id: &str, reason: &str) -> Result<(), ControlError> {
        self.client
            .terminate_job()
            .job_id(job_id)
            .reason(reason)
            .send()
            .await
            .map_err(|e| api("TerminateJob", e))?;
        Ok(())
    }
}

fn requirements(requirements: &[ResourceRequirement]) -> Value {
    Value::Array(
        requirements
            .iter()
            .map(|r| json!({"type": r.r#type().map(|t| t.as_str()), "value": r.value()}))
            .collect(),
    )
}

/// What safe admission needs of a job `DescribeJobs` described: read through the event
/// parser from [`state_change_event`], so the sizes, platform and timeout are checked as an
/// event's are; a description the parser refuses is `unreadable` (the job is then unpriced,
/// and the parser's reason logged). Retries and an array's progress are read from the
/// description.
pub fn job_shape(job: &JobDetail) -> JobShape {
    let unreadable = JobShape {
        unreadable: true,
        ..JobShape::default()
    };
    let Some(event) = state_change_event(job) else {
        return unreadable;
    };
    let parsed = match crate::events::parse_event(event.to_string().as_bytes()) {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::warn!(job_id = ?job.job_id(), %error, "a job's description the parser refuses");
            return unreadable;
        }
    };
    match parsed {
        crate::events::Parsed::Fact(fact) => match fact.body {
            crate::core::facts::FactBody::Job(observed) => JobShape {
                platform: observed.platform,
                size: observed.size,
                architecture: observed.architecture,
                operating_system: observed.operating_system,
                timeout_seconds: observed.timeout_seconds,
                array_size: observed.array_size,
                array_started: array_started(job),
                attempts: job
                    .retry_strategy()
                    .and_then(|r| r.attempts())
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| (1..=10).contains(n)),
                unreadable: false,
            },
            _ => unreadable,
        },
        crate::events::Parsed::Skipped(_) => unreadable,
    }
}

/// Whether an array parent's `statusSummary` counts a child past waiting (STARTING, RUNNING,
/// SUCCEEDED or FAILED).
fn array_started(job: &JobDetail) -> bool {
    job.array_properties()
        .and_then(|a| a.status_summary())
        .is_some_and(|summary| {
            ["STARTING", "RUNNING", "SUCCEEDED", "FAILED"]
                .iter()
                .any(|status| summary.get(*status).is_some_and(|&count| count > 0))
        })
}

/// A job as `DescribeJobs` gives it, written as the *Batch Job State Change* event AWS sends
/// for its current state. No `time`: the event is a restatement, not an observation, so
/// restating the same state twice gives the same fact (a no-op in the event log).
pub fn state_change_event(job: &JobDetail) -> Option<Value> {
    let job_id = job.job_id()?;
    let mut detail = Map::new();
    let mut put = |key: &str, value: Value| {
        if !value.is_null() {
            detail.insert(key.to_owned(), value);
        }
    };
    put("jobId", json!(job_id));
    put("jobArn", json!(job.job_arn()));
    put("jobName", json!(job.job_name()));
    put("jobQueue", json!(job.job_queue()));
    put("jobDefinition", json!(job.job_definition()));
    put("status", json!(job.status().map(|s| s.as_str())));
    put("statusReason", json!(job.status_reason()));
    put("createdAt", json!(job.created_at()));
    put("startedAt", json!(job.started_at()));
    put("stoppedAt", json!(job.stopped_at()));
    put(
        "platformCapabilities",
        json!(
            job.platform_capabilities()
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
        ),
    );
    put("tags", json!(job.tags()));
    put(
        "attempts",
        Value::Array(
            job.attempts()
                .iter()
                .map(|attempt| {
                    json!({
                        "container": attempt.container().map(|c| json!({"taskArn": c.task_arn(), "exitCode": c.exit_code()})),
                        "taskProperties": attempt.task_properties().iter().map(|t| json!({"taskArn": t.task_arn()})).collect::<Vec<_>>(),
                        "startedAt": attempt.started_at(),
                        "stoppedAt": attempt.stopped_at(),
                    })
                })
                .collect(),
        ),
    );
    if let Some(container) = job.container() {
        put(
            "container",
            json!({
                "taskArn": container.task_arn(),
                "vcpus": container.vcpus(),
                "memory": container.memory(),
                "resourceRequirements": requirements(container.resource_requirements()),
                "runtimePlatform": container.runtime_platform().map(|p| json!({"cpuArchitecture": p.cpu_architecture()})),
                "ephemeralStorage": container.ephemeral_storage().map(|e| json!({"sizeInGiB": e.size_in_gib()})),
                "fargatePlatformConfiguration": container.fargate_platform_configuration().map(|f| json!({"platformVersion": f.platform_version()})),
            }),
        );
    }
    if let Some(timeout) = job.timeout() {
        put(
            "timeout",
            json!({"attemptDurationSeconds": timeout.attempt_duration_seconds()}),
        );
    }
    if let Some(array) = job.array_properties() {
        put(
            "arrayProperties",
            json!({"size": array.size(), "index": array.index()}),
        );
    }
    if let Some(node) = job.node_details() {
        put(
            "nodeDetails",
            json!({"nodeIndex": node.node_index(), "isMainNode": node.is_main_node()}),
        );
    }
    let region = job.job_arn().and_then(names::arn_region);
    Some(json!({
        "version": "0",
        "id": format!("batchguard-reconciler:{job_id}"),
        "detail-type": crate::events::BATCH_JOB_STATE_CHANGE,
        "source": "aws.batch",
        "region": region,
        "resources": [job.job_arn()],
        "detail": Value::Object(detail),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use aws_sdk_batch::types::{JobStatus, JobTimeout, PlatformCapability};

    use super::*;
    use crate::core::admission::{WorstCase, worst_case};

    fn waiting(timeout_seconds: i32) -> JobDetail {
        JobDetail::builder()
            .job_id("j-1")
            .job_arn("arn:aws:batch:us-east-1:123456789012:job/j-1")
            .job_name("n")
            .job_queue("arn:aws:batch:us-east-1:123456789012:job-queue/q")
            .job_definition("arn:aws:batch:us-east-1:123456789012:job-definition/d:1")
            .status(JobStatus::Runnable)
            .created_at(1_795_413_600_000)
            .platform_capabilities(PlatformCapability::Fargate)
            .timeout(
                JobTimeout::builder()
                    .attempt_duration_seconds(timeout_seconds)
                    .build(),
            )
            .build()
    }

    /// GIVEN a description with a timeout Batch cannot have (30 s; its minimum is 60) WHEN
    /// safe admission reads it THEN the job is unpriced because its description was refused,
    /// not "no timeout" or "no platform"; one with a valid timeout reads it.
    #[test]
    fn a_description_the_parser_refuses_is_named_as_such() {
        let shape = job_shape(&waiting(30));
        assert!(shape.unreadable);
        let prices = crate::core::prices::PriceTable::builtin();
        match worst_case(&shape, &prices, "us-east-1", None) {
            WorstCase::Unpriced { why } => assert!(why.contains("refused"), "{why}"),
            other => panic!("{other:?}"),
        }
        let shape = job_shape(&waiting(900));
        assert!(!shape.unreadable);
        assert_eq!(shape.timeout_seconds, Some(900));
        assert_eq!(shape.platform, Some(crate::core::facts::Platform::Fargate));
    }
}
