//! An in-memory AWS Batch: queues and jobs in any state (the emulator holds none without
//! Docker), every mutating call recorded; and the current state of jobs as the events AWS would
//! send, for the silent-job check.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::core::enforcement::PROTECT_TAG;
use crate::core::facts::JobStatus;
use crate::ports::{BatchControl, ControlError, JobSummary, QueueState};

/// Queues, jobs and the mutating calls made.
#[derive(Debug, Default)]
pub struct MemoryBatch {
    pub queues: Mutex<BTreeMap<String, bool>>,
    pub jobs: Mutex<Vec<JobSummary>>,
    pub mutating_calls: Mutex<Vec<String>>,
    /// What `current_state_events` answers for a job id (a *Batch Job State Change* event);
    /// ids without an entry are jobs Batch no longer knows.
    pub current_state: Mutex<BTreeMap<String, serde_json::Value>>,
    /// The job ids of each `DescribeJobs` call, in order.
    pub described: Mutex<Vec<Vec<String>>>,
    /// Calls that go wrong, by their text in [`MemoryBatch::calls`] (`TerminateJob j1`,
    /// `UpdateJobQueue etl true`, `ListJobs etl`, `DescribeJobs`).
    pub faults: Mutex<BTreeMap<String, Fault>>,
}

/// How a call goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// An error from the API; nothing changes.
    Fails,
    /// No answer: the call never returns (the function is killed at its timeout).
    Hangs,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryBatch {
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
                        tags: Some(if *protected {
                            BTreeMap::from([(PROTECT_TAG.0.to_owned(), PROTECT_TAG.1.to_owned())])
                        } else {
                            BTreeMap::new()
                        }),
                    })
                    .collect(),
            ),
            ..Self::default()
        }
    }

    /// Makes `call` (as [`MemoryBatch::calls`] writes it) go wrong from now on.
    pub fn inject(&self, call: &str, fault: Fault) {
        lock(&self.faults).insert(call.to_owned(), fault);
    }

    /// Clears every injected fault.
    pub fn heal(&self) {
        lock(&self.faults).clear();
    }

    /// Fails or hangs when `call` has a fault injected.
    async fn check(&self, call: &str) -> Result<(), ControlError> {
        let fault = lock(&self.faults).get(call).copied();
        match fault {
            None => Ok(()),
            Some(Fault::Fails) => Err(ControlError::Api {
                operation: "MemoryBatch",
                message: format!("{call}: injected failure"),
                source: None,
            }),
            Some(Fault::Hangs) => std::future::pending().await,
        }
    }

    /// Records the call and moves the job to FAILED, as CancelJob and TerminateJob do.
    async fn fail_job(&self, call: &str, job_id: &str) -> Result<(), ControlError> {
        let call = format!("{call} {job_id}");
        self.check(&call).await?;
        lock(&self.mutating_calls).push(call);
        for job in lock(&self.jobs).iter_mut().filter(|j| j.job_id == job_id) {
            job.status = JobStatus::Failed;
        }
        Ok(())
    }

    /// The mutating calls made so far, in order.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.mutating_calls).clone()
    }
}

impl BatchControl for MemoryBatch {
    async fn queues(&self, names: &[String]) -> Result<Vec<QueueState>, ControlError> {
        Ok(lock(&self.queues)
            .iter()
            .filter(|(name, _)| names.is_empty() || names.contains(name))
            .map(|(name, enabled)| QueueState {
                name: name.clone(),
                enabled: *enabled,
            })
            .collect())
    }

    async fn set_queue_enabled(&self, queue: &str, enabled: bool) -> Result<(), ControlError> {
        let call = format!("UpdateJobQueue {queue} {enabled}");
        self.check(&call).await?;
        lock(&self.mutating_calls).push(call);
        lock(&self.queues).insert(queue.to_owned(), enabled);
        Ok(())
    }

    async fn jobs(
        &self,
        queue: &str,
        statuses: &[JobStatus],
    ) -> Result<Vec<JobSummary>, ControlError> {
        self.check(&format!("ListJobs {queue}")).await?;
        Ok(lock(&self.jobs)
            .iter()
            .filter(|job| job.queue == queue && statuses.contains(&job.status))
            .cloned()
            .collect())
    }

    async fn cancel_job(&self, job_id: &str, _reason: &str) -> Result<(), ControlError> {
        self.fail_job("CancelJob", job_id).await
    }

    async fn terminate_job(&self, job_id: &str, _reason: &str) -> Result<(), ControlError> {
        self.fail_job("TerminateJob", job_id).await
    }

    async fn current_state_events(
        &self,
        job_ids: &[String],
    ) -> Result<Vec<serde_json::Value>, ControlError> {
        self.check("DescribeJobs").await?;
        lock(&self.described).push(job_ids.to_vec());
        let known = lock(&self.current_state);
        Ok(job_ids
            .iter()
            .filter_map(|id| known.get(id).cloned())
            .collect())
    }
}
