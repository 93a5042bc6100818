//! *Batch Job State Change* → [`JobObserved`]: sizes from `resourceRequirements` (or the legacy
//! `vcpus` / `memory`), the attempts made and the one in progress, tags, array and multi-node
//! positions.

use rust_decimal::Decimal;

use super::detail::EventDetail;
use super::error::{self, BATCH_JOB_STATE_CHANGE, EventError};
use super::fields::{EksResources, ResourceRequirement, millis};
use crate::core::facts::{
    Architecture, AttemptObserved, JobObserved, JobStatus, MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS, OperatingSystem, Platform, TaskSize,
};
use crate::core::names;

const MIB_PER_GIB: u32 = 1024;

/// Sums `VCPU`, `MEMORY` (MiB) and `GPU` requirements (a GPU's share of an EC2 instance is
/// part of a job's price).
#[derive(Default)]
struct SizeSum {
    vcpu: Option<Decimal>,
    memory_mib: Option<u32>,
    gpus: Option<u32>,
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
                "GPU" => {
                    let gpus: u32 = requirement.value.parse().map_err(|_| {
                        invalid(
                            "resourceRequirements[GPU].value",
                            &requirement.value,
                            "not a whole number of GPUs",
                        )
                    })?;
                    self.gpus = Some(self.gpus.unwrap_or_default().saturating_add(gpus));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl SizeSum {
    /// Adds a Kubernetes container's resources: `requests`, or `limits` where a request is
    /// not given (AWS Batch copies limits to requests), `cpu` in vCPUs, `memory` in MiB
    /// (`Mi`; `Gi` also read), `nvidia.com/gpu` whole GPUs.
    fn add_kubernetes(&mut self, resources: Option<&EksResources>) -> Result<(), EventError> {
        let Some(resources) = resources else {
            return Ok(());
        };
        let value = |name: &str| {
            resources
                .requests
                .as_ref()
                .and_then(|r| r.get(name))
                .or_else(|| resources.limits.as_ref().and_then(|l| l.get(name)))
        };
        if let Some(cpu) = value("cpu") {
            let vcpu: Decimal = cpu.parse().map_err(|_| {
                invalid(
                    "eksProperties.podProperties.containers[].resources.cpu",
                    cpu,
                    "not a number of vCPUs",
                )
            })?;
            self.vcpu = Some(self.vcpu.unwrap_or_default() + vcpu);
        }
        if let Some(memory) = value("memory") {
            let mib = memory
                .strip_suffix("Mi")
                .and_then(|n| n.parse::<u32>().ok())
                .or_else(|| {
                    memory
                        .strip_suffix("Gi")
                        .and_then(|n| n.parse::<u32>().ok())
                        .map(|gib| gib.saturating_mul(MIB_PER_GIB))
                })
                .ok_or_else(|| {
                    invalid(
                        "eksProperties.podProperties.containers[].resources.memory",
                        memory,
                        "not a whole number of MiB with an Mi suffix",
                    )
                })?;
            self.memory_mib = Some(self.memory_mib.unwrap_or_default().saturating_add(mib));
        }
        if let Some(gpus) = value("nvidia.com/gpu") {
            let gpus: u32 = gpus.parse().map_err(|_| {
                invalid(
                    "eksProperties.podProperties.containers[].resources.nvidia.com/gpu",
                    gpus,
                    "not a whole number of GPUs",
                )
            })?;
            self.gpus = Some(self.gpus.unwrap_or_default().saturating_add(gpus));
        }
        Ok(())
    }
}

fn invalid(field: &str, value: &str, reason: &'static str) -> EventError {
    error::invalid(BATCH_JOB_STATE_CHANGE, field, value, reason)
}

fn missing(field: &'static str) -> EventError {
    error::missing(BATCH_JOB_STATE_CHANGE, field)
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
        let mut operating_system = None;
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
            operating_system = container
                .runtime_platform
                .as_ref()
                .and_then(|p| p.operating_system_family.as_deref())
                .and_then(OperatingSystem::parse);
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
                operating_system = operating_system.or_else(|| {
                    task.runtime_platform
                        .as_ref()
                        .and_then(|p| p.operating_system_family.as_deref())
                        .and_then(OperatingSystem::parse)
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
        // A job on an Amazon EKS compute environment: its pod's requests (limits when there are
        // none) are the reservation; no ECS event will follow.
        if let Some(pod) = self
            .eks_properties
            .as_ref()
            .and_then(|p| p.pod_properties.as_ref())
        {
            for container in &pod.containers {
                size.add_kubernetes(container.resources.as_ref())?;
            }
        }
        let size = match (size.vcpu, size.memory_mib) {
            (Some(vcpu), Some(mib)) => Some(TaskSize {
                vcpu,
                memory_gib: Decimal::from(mib) / Decimal::from(MIB_PER_GIB),
                storage_gib,
                gpus: size.gpus.filter(|&gpus| gpus > 0),
            }),
            _ => None,
        };

        let platform = if self.eks_properties.is_some() {
            Some(Platform::Eks)
        } else if self.platform_capabilities.iter().any(|p| p == "FARGATE") || fargate_config {
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
        // An EKS job's finished attempts are `eksAttempts[]` (its pod, node, start and stop).
        for attempt in &self.eks_attempts {
            attempts.push(AttemptObserved {
                index: u32::try_from(attempts.len()).unwrap_or(u32::MAX),
                task_arn: None,
                started_at: millis(attempt.started_at),
                stopped_at: millis(attempt.stopped_at),
                exit_code: attempt.containers.first().and_then(|c| c.exit_code),
                container_instance_arn: None,
                status_reason: attempt.status_reason.clone(),
            });
        }
        let listed = attempts.len();
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
                index: u32::try_from(listed).unwrap_or(u32::MAX),
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

        // AWS's `JobTimeout`: at least 60 s, an Integer
        // (https://docs.aws.amazon.com/batch/latest/APIReference/API_JobTimeout.html).
        let timeout_seconds = match self.timeout.and_then(|t| t.attempt_duration_seconds) {
            None => None,
            Some(seconds) => Some(
                u32::try_from(seconds)
                    .ok()
                    .filter(|s| (MIN_TIMEOUT_SECONDS..=MAX_TIMEOUT_SECONDS).contains(s))
                    .ok_or_else(|| {
                        invalid(
                            "timeout.attemptDurationSeconds",
                            &seconds.to_string(),
                            "AWS Batch timeouts are 60 to 2147483647 seconds",
                        )
                    })?,
            ),
        };
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
                .map(names::last_segment)
                .filter(|name| !name.is_empty())
                .unwrap_or("(unknown)")
                .to_owned(),
            job_definition: self
                .job_definition
                .as_deref()
                .map(names::job_definition_name)
                .filter(|name| !name.is_empty())
                .unwrap_or("(unknown)")
                .to_owned(),
            status,
            status_reason: self.status_reason,
            created_at: millis(self.created_at),
            attempts,
            platform,
            size,
            architecture,
            operating_system,
            tags,
            array_size,
            timeout_seconds,
            node_index: self.node_details.and_then(|n| n.node_index),
            region,
        })
    }
}
