//! *ECS Task State Change* → [`TaskObserved`] (`cpu` in CPU units, 1024 = 1 vCPU; `memory` in
//! MiB; architecture in `attributes`), and *ECS Container Instance State Change* →
//! [`InstanceObserved`] (registered CPU and memory, type and zone in `attributes`). A task or
//! instance of a cluster Batch does not manage is skipped.

use rust_decimal::Decimal;

use super::detail::EventDetail;
use super::error::{
    self, ECS_CONTAINER_INSTANCE_STATE_CHANGE, ECS_TASK_STATE_CHANGE, EventError, SkipReason,
};
use super::fields::millis;
use crate::core::facts::{
    Architecture, Capacity, InstanceObserved, InstanceSize, OperatingSystem, Platform,
    TaskObserved, TaskSize,
};
use crate::core::names;

const CPU_UNITS_PER_VCPU: u32 = 1024;
const MIB_PER_GIB: u32 = 1024;

fn invalid(field: &str, value: &str, reason: &'static str) -> EventError {
    error::invalid(ECS_TASK_STATE_CHANGE, field, value, reason)
}

impl EventDetail {
    /// The task this *ECS Task State Change* states, or why it is not ours (a cluster Batch
    /// does not manage).
    pub fn into_task(
        self,
        region: Option<String>,
    ) -> Result<Result<TaskObserved, SkipReason>, EventError> {
        let task_arn =
            self.task_arn
                .filter(|arn| !arn.is_empty())
                .ok_or(EventError::MissingField {
                    detail_type: ECS_TASK_STATE_CHANGE,
                    field: "taskArn",
                })?;
        let cluster = match self.cluster_arn.as_deref() {
            Some(cluster) => cluster,
            None => names::cluster_of_task_arn(&task_arn).ok_or(EventError::MissingField {
                detail_type: ECS_TASK_STATE_CHANGE,
                field: "clusterArn",
            })?,
        };
        let Some(compute_environment) = names::compute_environment_of_cluster(cluster) else {
            return Ok(Err(SkipReason::NotBatchCluster {
                cluster: names::last_segment(cluster).to_owned(),
            }));
        };

        let platform = match self.launch_type.as_deref() {
            Some("FARGATE") => Some(Platform::Fargate),
            Some("EC2" | "EXTERNAL") => Some(Platform::Ec2),
            _ => None,
        };
        let capacity = match self.capacity_provider_name.as_deref() {
            Some("FARGATE_SPOT") => Some(Capacity::Spot),
            Some("FARGATE") => Some(Capacity::OnDemand),
            // A Fargate task launched without a capacity provider is on-demand.
            None if platform == Some(Platform::Fargate) => Some(Capacity::OnDemand),
            _ => None,
        };
        let size = match (self.cpu.as_deref(), self.memory.as_deref()) {
            (Some(cpu), Some(memory)) => {
                let units: u32 = cpu
                    .parse()
                    .map_err(|_| invalid("cpu", cpu, "not a whole number of CPU units"))?;
                let mib: u32 = memory
                    .parse()
                    .map_err(|_| invalid("memory", memory, "not a whole number of MiB"))?;
                Some(TaskSize {
                    vcpu: Decimal::from(units) / Decimal::from(CPU_UNITS_PER_VCPU),
                    memory_gib: Decimal::from(mib) / Decimal::from(MIB_PER_GIB),
                    storage_gib: self.ephemeral_storage.as_ref().and_then(|s| s.size_in_gib),
                    gpus: None,
                })
            }
            _ => None,
        };
        let architecture = match self
            .attributes
            .iter()
            .find(|attribute| attribute.name == "ecs.cpu-architecture")
            .and_then(|attribute| attribute.value.as_deref())
        {
            Some(text) => Some(Architecture::parse(text).ok_or_else(|| {
                invalid(
                    "attributes[ecs.cpu-architecture]",
                    text,
                    "expected x86_64 or arm64",
                )
            })?),
            None => None,
        };
        let region = region.or_else(|| names::arn_region(&task_arn).map(str::to_owned));

        Ok(Ok(TaskObserved {
            compute_environment: Some(compute_environment.to_owned()),
            family: self
                .group
                .as_deref()
                .and_then(|group| group.strip_prefix("family:"))
                .map(str::to_owned),
            version: self.version.unwrap_or(0),
            last_status: self.last_status.unwrap_or_default(),
            platform,
            capacity,
            size,
            architecture,
            operating_system: self
                .platform_family
                .as_deref()
                .and_then(OperatingSystem::parse),
            pull_started_at: millis(self.pull_started_at),
            pull_stopped_at: millis(self.pull_stopped_at),
            started_at: millis(self.started_at),
            // `stoppedAt` is when the task left Fargate; `executionStoppedAt` (containers
            // exited) comes first and stands in when `stoppedAt` is missing.
            stopped_at: millis(self.stopped_at.or(self.execution_stopped_at)),
            stop_code: self.stop_code,
            availability_zone: self.availability_zone,
            region,
            container_instance_arn: self.container_instance_arn.filter(|arn| !arn.is_empty()),
            task_arn,
        }))
    }
}

fn invalid_instance(field: &str, value: &str, reason: &'static str) -> EventError {
    error::invalid(ECS_CONTAINER_INSTANCE_STATE_CHANGE, field, value, reason)
}

impl EventDetail {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|attribute| attribute.name == name)
            .and_then(|attribute| attribute.value.as_deref())
    }

    /// The EC2 instance this *ECS Container Instance State Change* states, or why it is not
    /// ours (a cluster Batch does not manage).
    pub fn into_instance(
        self,
        region: Option<String>,
    ) -> Result<Result<InstanceObserved, SkipReason>, EventError> {
        let arn = self
            .container_instance_arn
            .clone()
            .filter(|arn| !arn.is_empty())
            .ok_or(EventError::MissingField {
                detail_type: ECS_CONTAINER_INSTANCE_STATE_CHANGE,
                field: "containerInstanceArn",
            })?;
        let cluster = match self.cluster_arn.as_deref() {
            Some(cluster) => cluster,
            None => {
                names::cluster_of_container_instance_arn(&arn).ok_or(EventError::MissingField {
                    detail_type: ECS_CONTAINER_INSTANCE_STATE_CHANGE,
                    field: "clusterArn",
                })?
            }
        };
        let Some(compute_environment) = names::compute_environment_of_cluster(cluster) else {
            return Ok(Err(SkipReason::NotBatchCluster {
                cluster: names::last_segment(cluster).to_owned(),
            }));
        };
        let resource = |name: &str| {
            self.registered_resources
                .iter()
                .find(|resource| resource.name == name)
                .and_then(|resource| resource.integer_value)
        };
        let registered = match (resource("CPU"), resource("MEMORY")) {
            (Some(cpu), Some(memory)) if cpu > 0 && memory > 0 => Some(InstanceSize {
                vcpu: Decimal::from(cpu) / Decimal::from(CPU_UNITS_PER_VCPU),
                memory_gib: Decimal::from(memory) / Decimal::from(MIB_PER_GIB),
            }),
            (Some(cpu), Some(_)) if cpu <= 0 => {
                return Err(invalid_instance(
                    "registeredResources[CPU].integerValue",
                    &cpu.to_string(),
                    "an instance registers a positive number of CPU units",
                ));
            }
            (Some(_), Some(memory)) => {
                return Err(invalid_instance(
                    "registeredResources[MEMORY].integerValue",
                    &memory.to_string(),
                    "an instance registers a positive number of MiB",
                ));
            }
            _ => None,
        };
        let architecture = match self.attribute("ecs.cpu-architecture") {
            Some(text) => Some(Architecture::parse(text).ok_or_else(|| {
                invalid_instance(
                    "attributes[ecs.cpu-architecture]",
                    text,
                    "expected x86_64 or arm64",
                )
            })?),
            None => None,
        };
        Ok(Ok(InstanceObserved {
            ec2_instance_id: self.ec2_instance_id.clone(),
            compute_environment: Some(compute_environment.to_owned()),
            instance_type: self.attribute("ecs.instance-type").map(str::to_owned),
            availability_zone: self
                .attribute("ecs.availability-zone")
                .map(str::to_owned)
                .or_else(|| self.availability_zone.clone()),
            architecture,
            registered,
            status: self.status.clone().unwrap_or_default(),
            version: self.version.unwrap_or(0),
            registered_at: millis(self.registered_at),
            updated_at: millis(self.updated_at),
            region: region.or_else(|| names::arn_region(&arn).map(str::to_owned)),
            container_instance_arn: arn,
        }))
    }
}
