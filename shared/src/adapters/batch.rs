//! AWS Batch through `aws-sdk-batch`: the enforcer's hands.
//!
//! `ListJobs` is paginated to the end (never a first page taken for the whole); tags come from
//! `DescribeJobs`, at most 100 jobs a call (the API's limit). The Batch API allows about 50
//! requests a second per account; throttled calls (`TooManyRequestsException`) are retried by
//! the SDK's adaptive retry mode, which also slows the client down (see [`AwsBatch::from_config`]).

use std::collections::BTreeMap;

use aws_sdk_batch::Client;
use aws_sdk_batch::error::{DisplayErrorContext, SdkError};
use aws_sdk_batch::types::{JobStatus as BatchStatus, JqState};

use crate::core::facts::JobStatus;
use crate::ports::{BatchControl, ControlError, JobSummary, QueueState};

/// `DescribeJobs` takes at most this many job ids.
pub const DESCRIBE_JOBS_LIMIT: usize = 100;
/// Attempts per call, throttling included.
pub const MAX_ATTEMPTS: u32 = 10;

fn api<E>(operation: &'static str, error: SdkError<E>) -> ControlError
where
    E: std::error::Error + Send + Sync + 'static,
{
    ControlError::Api {
        operation,
        message: DisplayErrorContext(&error).to_string(),
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
            let summaries: Vec<_> = self
                .client
                .list_jobs()
                .job_queue(queue)
                .job_status(batch_status(status))
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| api("ListJobs", e))?;
            listed.extend(
                summaries
                    .into_iter()
                    .filter_map(|s| s.job_id().map(|id| (id.to_owned(), status))),
            );
        }
        let mut tags: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for chunk in listed.chunks(DESCRIBE_JOBS_LIMIT) {
            let described = self
                .client
                .describe_jobs()
                .set_jobs(Some(chunk.iter().map(|(id, _)| id.clone()).collect()))
                .send()
                .await
                .map_err(|e| api("DescribeJobs", e))?;
            for job in described.jobs() {
                let job_tags = job
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                if let Some(id) = job.job_id() {
                    tags.insert(id.to_owned(), job_tags);
                }
            }
        }
        Ok(listed
            .into_iter()
            .map(|(job_id, status)| JobSummary {
                tags: tags.remove(&job_id).unwrap_or_default(),
                job_id,
                queue: queue.to_owned(),
                status,
            })
            .collect())
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
