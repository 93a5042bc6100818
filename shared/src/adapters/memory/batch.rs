//! An in-memory AWS Batch: queues and jobs in any state (the emulator holds none without
//! Docker), every mutating call recorded; and the current state of jobs as the events AWS would
//! send, for the silent-job check.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::core::admission::JobShape;
use crate::core::enforcement::{PROTECT_TAG, STARTED};
use crate::core::facts::JobStatus;
use crate::ports::{BatchControl, ControlError, JobKind, JobSummary, QueueState};

/// Queues, jobs and the mutating calls made.
#[derive(Debug, Default)]
pub struct MemoryBatch {
    pub queues: Mutex<BTreeMap<String, bool>>,
    pub jobs: Mutex<Vec<JobSummary>>,
    /// Each queue's compute environments, in order (none unless placed).
    pub environments: Mutex<BTreeMap<String, Vec<String>>>,
    /// What each compute environment may launch (`None`: it does not say, as an unmanaged
    /// one); one not listed is not known to Batch.
    pub launches: Mutex<BTreeMap<String, Option<Vec<String>>>>,
    /// The names of each `DescribeComputeEnvironments` call, in order.
    pub environment_reads: Mutex<Vec<Vec<String>>>,
    pub mutating_calls: Mutex<Vec<String>>,
    /// What `current_state_events` answers for a job id (a *Batch Job State Change* event);
    /// ids without an entry are jobs Batch no longer knows.
    pub current_state: Mutex<BTreeMap<String, serde_json::Value>>,
    /// TerminateJob and CancelJob leave the job's status as it was (see `fail_job`).
    pub lagging: Mutex<bool>,
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
                        kind: JobKind::Single,
                        job_definition: None,
                        created_at_ms: None,
                        shape: JobShape::default(),
                        compute_environment: None,
                    })
                    .collect(),
            ),
            ..Self::default()
        }
    }

    /// Gives `queue` these compute environments, in order.
    pub fn place_queue(&self, queue: &str, environments: &[&str]) {
        lock(&self.environments).insert(
            queue.to_owned(),
            environments.iter().map(|ce| (*ce).to_owned()).collect(),
        );
    }

    /// Says what compute environment `environment` may launch (`None`: it does not say).
    pub fn launch(&self, environment: &str, instance_types: Option<&[&str]>) {
        lock(&self.launches).insert(
            environment.to_owned(),
            instance_types.map(|types| types.iter().map(|t| (*t).to_owned()).collect()),
        );
    }

    /// Makes `job_id` an array parent or a multi-node job; its children are the jobs named
    /// `<id>:<index>` or `<id>#<index>`, as AWS names them.
    pub fn set_kind(&self, job_id: &str, kind: JobKind) {
        for job in lock(&self.jobs).iter_mut().filter(|j| j.job_id == job_id) {
            job.kind = kind;
        }
    }

    /// Gives `job_id` these tags (besides the protect tag it may have), a job definition
    /// and a submission time.
    pub fn describe_job(
        &self,
        job_id: &str,
        tags: &[(&str, &str)],
        job_definition: &str,
        created_at_ms: i64,
    ) {
        for job in lock(&self.jobs).iter_mut().filter(|j| j.job_id == job_id) {
            let known = job.tags.get_or_insert_with(BTreeMap::new);
            for (key, value) in tags {
                known.insert((*key).to_owned(), (*value).to_owned());
            }
            job.job_definition = Some(job_definition.to_owned());
            job.created_at_ms = Some(created_at_ms);
        }
    }

    /// Gives `job_id` the platform, size and timeout `DescribeJobs` would say it has.
    pub fn shape_job(&self, job_id: &str, shape: JobShape) {
        for job in lock(&self.jobs).iter_mut().filter(|j| j.job_id == job_id) {
            job.shape = shape;
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

    /// Records the call and moves the job to FAILED, as CancelJob and TerminateJob do — at
    /// once, unless [`MemoryBatch::lagging`] (a terminated job stays RUNNING while its
    /// containers stop). As AWS's array-job guide says, a parent's children go with it:
    /// all of them on TerminateJob, those not yet started on CancelJob (which leaves the
    /// parent PENDING until its running children end). A multi-node job's nodes are left as
    /// they are: AWS's pages do not say what TerminateJob does to them.
    async fn fail_job(&self, call: &str, job_id: &str) -> Result<(), ControlError> {
        let terminate = call == "TerminateJob";
        let call = format!("{call} {job_id}");
        self.check(&call).await?;
        lock(&self.mutating_calls).push(call);
        if *lock(&self.lagging) {
            return Ok(());
        }
        let mut jobs = lock(&self.jobs);
        let is_parent = jobs
            .iter()
            .any(|j| j.job_id == job_id && j.kind == JobKind::ArrayParent);
        let child = format!("{job_id}:");
        let mut running_children = false;
        for job in jobs.iter_mut() {
            if is_parent && job.job_id.starts_with(&child) {
                if terminate || !STARTED.contains(&job.status) {
                    job.status = JobStatus::Failed;
                } else {
                    running_children = true;
                }
            }
        }
        for job in jobs.iter_mut().filter(|j| j.job_id == job_id) {
            if !running_children {
                job.status = JobStatus::Failed;
            }
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
                compute_environments: lock(&self.environments)
                    .get(name)
                    .cloned()
                    .unwrap_or_default(),
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
            // A queue's listing names no array children or nodes: AWS's pages promise them
            // only through `arrayJobId` / `multiNodeJobId`.
            .filter(|job| !job.job_id.contains([':', '#']))
            .filter(|job| job.queue == queue && statuses.contains(&job.status))
            .cloned()
            .collect())
    }

    async fn children(
        &self,
        parent: &JobSummary,
        statuses: &[JobStatus],
    ) -> Result<Vec<String>, ControlError> {
        self.check(&format!("ListJobs {}", parent.job_id)).await?;
        let prefix = match parent.kind {
            JobKind::Single => return Ok(Vec::new()),
            JobKind::ArrayParent => format!("{}:", parent.job_id),
            JobKind::MultiNode => format!("{}#", parent.job_id),
        };
        Ok(lock(&self.jobs)
            .iter()
            .filter(|job| job.job_id.starts_with(&prefix) && statuses.contains(&job.status))
            .map(|job| job.job_id.clone())
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

    async fn instance_types(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, Option<Vec<String>>>, ControlError> {
        self.check("DescribeComputeEnvironments").await?;
        lock(&self.environment_reads).push(names.to_vec());
        let launches = lock(&self.launches);
        Ok(names
            .iter()
            .filter_map(|name| {
                launches
                    .get(name)
                    .map(|types| (name.clone(), types.clone()))
            })
            .collect())
    }
}
