//! `detail` of *Batch Job State Change*: the legacy `container` shape and the newer
//! `ecsProperties.taskProperties[]` shape. Timestamps are epoch milliseconds;
//! `resourceRequirements` values are strings, memory in MiB.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::detail::{EventDetail, Timestamp, millis};
use super::ecs::EphemeralStorage;
use super::{BATCH_JOB_STATE_CHANGE, EventError};
use crate::core::facts::{
    Architecture, AttemptObserved, JobObserved, JobStatus, Platform, TaskSize,
};
use crate::core::names;

const MIB_PER_GIB: u32 = 1024;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attempt {
    container: Option<AttemptContainer>,
    status_reason: Option<String>,
    #[serde(default)]
    task_properties: Vec<AttemptTask>,
    started_at: Option<Timestamp>,
    stopped_at: Option<Timestamp>,
    exit_code: Option<i64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttemptContainer {
    task_arn: Option<String>,
    exit_code: Option<i64>,
    container_instance_arn: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttemptTask {
    task_arn: Option<String>,
    container_instance_arn: Option<String>,
    #[serde(default)]
    containers: Vec<ExitCode>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExitCode {
    exit_code: Option<i64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Container {
    #[serde(default)]
    resource_requirements: Vec<ResourceRequirement>,
    /// Legacy shape: vCPUs as a number.
    vcpus: Option<Decimal>,
    /// Legacy shape: MiB as a number.
    memory: Option<u32>,
    task_arn: Option<String>,
    container_instance_arn: Option<String>,
    runtime_platform: Option<RuntimePlatform>,
    ephemeral_storage: Option<EphemeralStorage>,
    /// Present only on Fargate jobs.
    fargate_platform_configuration: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EcsProperties {
    #[serde(default)]
    task_properties: Vec<TaskProperties>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskProperties {
    task_arn: Option<String>,
    container_instance_arn: Option<String>,
    #[serde(default)]
    containers: Vec<TaskContainer>,
    runtime_platform: Option<RuntimePlatform>,
    ephemeral_storage: Option<EphemeralStorage>,
    platform_version: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskContainer {
    #[serde(default)]
    resource_requirements: Vec<ResourceRequirement>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct ResourceRequirement {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RuntimePlatform {
    cpu_architecture: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct ArrayProperties {
    size: Option<u32>,
    index: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeDetails {
    node_index: Option<u32>,
}

/// Sums `VCPU` and `MEMORY` (MiB) requirements; other types (GPU) do not change the price.
#[derive(Default)]
struct SizeSum {
    vcpu: Option<Decimal>,
    memory_mib: Option<u32>,
}

impl SizeSum {
    fn add(&mut self, requirements: &[ResourceRequirement]) -> Result<(), EventError> {
        for requirement in requirements {
            match requirement.kind.as_ref() {
                "VCPU" => {
                    let vcpu: Decimal = requirement.value.parse().map_err(|_| {
                        invalid(
                            "resourceRequirements[VCPU].value",
                            &requirement.value,
                            "not a number of vCPUs",
                        )
                    })?;
                    self.vcpu = Some(self.vcpu.unwrap_or_default() + vcpu);
                }
                "MEMORY" => {
                    let mib: u32 = requirement.value.parse().map_err(|_| {
                        invalid(
                            "resourceRequirements[MEMORY].value",
                            &requirement.value,
                            "not a whole number of MiB",
                        )
                    })?;
                    self.memory_mib = Some(self.memory_mib.unwrap_or_default().saturating_add(mib));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn invalid(field: &str, value: &str, reason: &'static str) -> EventError {
    EventError::InvalidField {
        detail_type: BATCH_JOB_STATE_CHANGE,
        field: format!("detail.{field}"),
        value: value.to_owned(),
        reason,
    }
}

fn missing(field: &'static str) -> EventError {
    EventError::MissingField {
        detail_type: BATCH_JOB_STATE_CHANGE,
        field,
    }
}

fn arn_of(task: &Option<String>) -> Option<String> {
    task.as_deref()
        .filter(|arn| !arn.is_empty())
        .map(str::to_owned)
}

impl EventDetail {
    /// The job this *Batch Job State Change* states. `region` is the envelope's.
    pub fn into_job(self, region: Option<String>) -> Result<JobObserved, EventError> {
        let job_id = self
            .job_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| missing("jobId"))?;
        let status_text = self.status.ok_or_else(|| missing("status"))?;
        let status = JobStatus::parse(&status_text)
            .ok_or_else(|| invalid("status", &status_text, "not an AWS Batch job status"))?;

        let mut size = SizeSum::default();
        let mut architecture = None;
        let mut storage_gib = None;
        let mut current_task_arn = None;
        let mut current_instance_arn = None;
        let mut fargate_config = false;
        if let Some(container) = &self.container {
            size.add(&container.resource_requirements)?;
            if size.vcpu.is_none() {
                size.vcpu = container.vcpus;
            }
            if size.memory_mib.is_none() {
                size.memory_mib = container.memory;
            }
            architecture = container
                .runtime_platform
                .as_ref()
                .and_then(|p| p.cpu_architecture.as_deref())
                .map(str::to_owned);
            storage_gib = container
                .ephemeral_storage
                .as_ref()
                .and_then(|s| s.size_in_gib);
            current_task_arn = arn_of(&container.task_arn);
            current_instance_arn = arn_of(&container.container_instance_arn);
            fargate_config = container.fargate_platform_configuration.is_some();
        }
        if let Some(properties) = &self.ecs_properties {
            for task in &properties.task_properties {
                for container in &task.containers {
                    size.add(&container.resource_requirements)?;
                }
                architecture = architecture.or_else(|| {
                    task.runtime_platform
                        .as_ref()
                        .and_then(|p| p.cpu_architecture.as_deref())
                        .map(str::to_owned)
                });
                storage_gib =
                    storage_gib.or(task.ephemeral_storage.as_ref().and_then(|s| s.size_in_gib));
                current_task_arn = current_task_arn.or_else(|| arn_of(&task.task_arn));
                current_instance_arn =
                    current_instance_arn.or_else(|| arn_of(&task.container_instance_arn));
                fargate_config |= task.platform_version.is_some();
            }
        }
        let architecture = match architecture {
            Some(text) => Some(Architecture::parse(&text).ok_or_else(|| {
                invalid(
                    "container.runtimePlatform.cpuArchitecture",
                    &text,
                    "expected X86_64 or ARM64",
                )
            })?),
            None => None,
        };
        let size = match (size.vcpu, size.memory_mib) {
            (Some(vcpu), Some(mib)) => Some(TaskSize {
                vcpu,
                memory_gib: Decimal::from(mib) / Decimal::from(MIB_PER_GIB),
                storage_gib,
            }),
            _ => None,
        };

        let platform =
            if self.platform_capabilities.iter().any(|p| p == "FARGATE") || fargate_config {
                Some(Platform::Fargate)
            } else if self.platform_capabilities.iter().any(|p| p == "EC2") {
                Some(Platform::Ec2)
            } else {
                None
            };

        let mut attempts: Vec<AttemptObserved> = Vec::with_capacity(self.attempts.len() + 1);
        for (index, attempt) in self.attempts.iter().enumerate() {
            let from_task = attempt.task_properties.first();
            attempts.push(AttemptObserved {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                task_arn: attempt
                    .container
                    .as_ref()
                    .and_then(|c| arn_of(&c.task_arn))
                    .or_else(|| from_task.and_then(|t| arn_of(&t.task_arn))),
                started_at: millis(attempt.started_at),
                stopped_at: millis(attempt.stopped_at),
                exit_code: attempt
                    .exit_code
                    .or_else(|| attempt.container.as_ref().and_then(|c| c.exit_code))
                    .or_else(|| {
                        from_task
                            .and_then(|t| t.containers.first())
                            .and_then(|c| c.exit_code)
                    }),
                container_instance_arn: attempt
                    .container
                    .as_ref()
                    .and_then(|c| arn_of(&c.container_instance_arn))
                    .or_else(|| from_task.and_then(|t| arn_of(&t.container_instance_arn))),
                status_reason: attempt.status_reason.clone(),
            });
        }
        // While STARTING or RUNNING, the attempt in progress is not yet in `attempts[]`: its
        // task is `container.taskArn` (or `ecsProperties…taskArn`) and its start the job's
        // `startedAt`. In other states those fields describe an attempt already listed.
        // Multi-node parallel nodes (the `ecsProperties` shape) already list the attempt in
        // progress in `attempts[]`, without a stop: it is not a second attempt.
        let in_progress_listed = attempts.last().is_some_and(|last| {
            last.stopped_at.is_none()
                && (current_task_arn.is_none() || last.task_arn == current_task_arn)
        });
        if matches!(status, JobStatus::Starting | JobStatus::Running) && !in_progress_listed {
            attempts.push(AttemptObserved {
                index: u32::try_from(self.attempts.len()).unwrap_or(u32::MAX),
                task_arn: current_task_arn,
                started_at: millis(self.started_at).filter(|_| status == JobStatus::Running),
                stopped_at: None,
                exit_code: None,
                container_instance_arn: current_instance_arn,
                status_reason: None,
            });
        } else if status.is_terminal() && attempts.is_empty() && self.started_at.is_some() {
            // A terminal event whose attempts[] is empty but which says the job ran.
            attempts.push(AttemptObserved {
                index: 0,
                task_arn: current_task_arn,
                started_at: millis(self.started_at),
                stopped_at: millis(self.stopped_at),
                exit_code: None,
                container_instance_arn: current_instance_arn,
                status_reason: None,
            });
        }

        let tags = self
            .tags
            .unwrap_or_default()
            .into_iter()
            // EventBridge adds the job ARN as a pseudo-tag; it is not a user tag.
            .filter(|(key, _)| key != "resourceArn")
            .collect();

        let array_size = self
            .array_properties
            .as_ref()
            .filter(|a| a.index.is_none())
            .and_then(|a| a.size);
        Ok(JobObserved {
            job_id,
            job_name: self.job_name.unwrap_or_default(),
            queue: self
                .job_queue
                .as_deref()
                .map_or("(unknown)", names::last_segment)
                .to_owned(),
            job_definition: self
                .job_definition
                .as_deref()
                .map_or("(unknown)", names::job_definition_name)
                .to_owned(),
            status,
            status_reason: self.status_reason,
            created_at: millis(self.created_at),
            attempts,
            platform,
            size,
            architecture,
            tags,
            array_size,
            node_index: self.node_details.and_then(|n| n.node_index),
            region,
        })
    }
}
