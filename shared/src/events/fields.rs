//! The wire shapes inside an event's `detail`: the nested objects of *Batch Job State Change*
//! (the legacy `container` shape and the newer `ecsProperties.taskProperties[]`; resource
//! requirements as strings, memory in MiB) and of the ECS events (`attributes`,
//! `registeredResources`, `ephemeralStorage`), and the instants both write.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::core::facts::Millis;

/// An instant as Batch (epoch milliseconds) or ECS (RFC 3339 string) writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Timestamp(pub Millis);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("epoch milliseconds or an RFC 3339 timestamp")
            }

            fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(Millis(ms)))
            }

            fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Timestamp, E> {
                i64::try_from(ms)
                    .map(|ms| Timestamp(Millis(ms)))
                    .map_err(|_| E::custom(format!("{ms} ms is beyond any date")))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
                DateTime::parse_from_rfc3339(text)
                    .map(|t| Timestamp(Millis::from_datetime(t.with_timezone(&Utc))))
                    .map_err(|e| E::custom(format!("{text:?} is not an RFC 3339 timestamp: {e}")))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

pub(super) fn millis(at: Option<Timestamp>) -> Option<Millis> {
    at.map(|t| t.0)
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attempt {
    pub(super) container: Option<AttemptContainer>,
    pub(super) status_reason: Option<String>,
    #[serde(default)]
    pub(super) task_properties: Vec<AttemptTask>,
    pub(super) started_at: Option<Timestamp>,
    pub(super) stopped_at: Option<Timestamp>,
    pub(super) exit_code: Option<i64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttemptContainer {
    pub(super) task_arn: Option<String>,
    pub(super) exit_code: Option<i64>,
    pub(super) container_instance_arn: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttemptTask {
    pub(super) task_arn: Option<String>,
    pub(super) container_instance_arn: Option<String>,
    #[serde(default)]
    pub(super) containers: Vec<ExitCode>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExitCode {
    pub(super) exit_code: Option<i64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Container {
    #[serde(default)]
    pub(super) resource_requirements: Vec<ResourceRequirement>,
    /// Legacy shape: vCPUs as a number.
    pub(super) vcpus: Option<Decimal>,
    /// Legacy shape: MiB as a number.
    pub(super) memory: Option<u32>,
    pub(super) task_arn: Option<String>,
    pub(super) container_instance_arn: Option<String>,
    pub(super) runtime_platform: Option<RuntimePlatform>,
    pub(super) ephemeral_storage: Option<EphemeralStorage>,
    /// Present only on Fargate jobs.
    pub(super) fargate_platform_configuration: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EcsProperties {
    #[serde(default)]
    pub(super) task_properties: Vec<TaskProperties>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskProperties {
    pub(super) task_arn: Option<String>,
    pub(super) container_instance_arn: Option<String>,
    #[serde(default)]
    pub(super) containers: Vec<TaskContainer>,
    pub(super) runtime_platform: Option<RuntimePlatform>,
    pub(super) ephemeral_storage: Option<EphemeralStorage>,
    pub(super) platform_version: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskContainer {
    #[serde(default)]
    pub(super) resource_requirements: Vec<ResourceRequirement>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct ResourceRequirement {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) value: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RuntimePlatform {
    pub(super) cpu_architecture: Option<String>,
    pub(super) operating_system_family: Option<String>,
}

/// `timeout` of a job (AWS Batch API `JobTimeout`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobTimeout {
    pub(super) attempt_duration_seconds: Option<i64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct ArrayProperties {
    pub(super) size: Option<u32>,
    pub(super) index: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeDetails {
    pub(super) node_index: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct EphemeralStorage {
    #[serde(rename = "sizeInGiB")]
    pub(super) size_in_gib: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct Attribute {
    pub(super) name: String,
    pub(super) value: Option<String>,
}

/// One of a container instance's `registeredResources` (`CPU`, `MEMORY`, `PORTS`, …).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Resource {
    pub(super) name: String,
    pub(super) integer_value: Option<i64>,
}

/// `eksProperties` of a job on an Amazon EKS compute environment (the `JobDetail` shape of
/// `DescribeJobs`): the pod's containers and, while it runs, its pod and node names.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EksProperties {
    pub(super) pod_properties: Option<EksPodProperties>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EksPodProperties {
    #[serde(default)]
    pub(super) containers: Vec<EksContainer>,
    pub(super) node_name: Option<String>,
    pub(super) pod_name: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct EksContainer {
    pub(super) resources: Option<EksResources>,
}

/// Kubernetes resources: `cpu` ("1", "0.5"), `memory` ("1024Mi"), `nvidia.com/gpu` ("1").
/// AWS Batch uses `requests`, copied from `limits` when not given.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct EksResources {
    pub(super) requests: Option<std::collections::BTreeMap<String, String>>,
    pub(super) limits: Option<std::collections::BTreeMap<String, String>>,
}

/// One finished attempt of an EKS job (`eksAttempts[]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EksAttempt {
    pub(super) node_name: Option<String>,
    pub(super) started_at: Option<Timestamp>,
    pub(super) stopped_at: Option<Timestamp>,
    pub(super) status_reason: Option<String>,
    #[serde(default)]
    pub(super) containers: Vec<ExitCode>,
}
