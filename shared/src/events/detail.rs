//! The `detail` object of the three event types we read, as one struct: the union of their
//! fields, so one pass reads any event. Field names are AWS's (camelCase); the types share
//! `createdAt`, `startedAt` and `stoppedAt`, which Batch writes as epoch milliseconds and ECS
//! as ISO-8601 strings: [`Timestamp`] takes either.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fields::{
    ArrayProperties, Attempt, Attribute, Container, EcsProperties, EksAttempt, EksProperties,
    EphemeralStorage, JobTimeout, NodeDetails, Resource, Timestamp,
};

/// Fields of *Batch Job State Change* (`job*`, `attempts`, `container`, …) and *ECS Task
/// State Change* (`task*`, `cluster*`, `cpu`, …) details. All optional: which are required
/// depends on the detail type, and is checked when the detail becomes a fact.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetail {
    // Shared.
    pub(super) created_at: Option<Timestamp>,
    pub(super) started_at: Option<Timestamp>,
    pub(super) stopped_at: Option<Timestamp>,

    // Batch.
    pub(super) job_id: Option<String>,
    pub(super) job_name: Option<String>,
    pub(super) job_queue: Option<String>,
    pub(super) job_definition: Option<String>,
    pub(super) status: Option<String>,
    pub(super) status_reason: Option<String>,
    #[serde(default)]
    pub(super) attempts: Vec<Attempt>,
    pub(super) container: Option<Container>,
    pub(super) ecs_properties: Option<EcsProperties>,
    #[serde(default)]
    pub(super) platform_capabilities: Vec<String>,
    pub(super) tags: Option<BTreeMap<String, String>>,
    pub(super) array_properties: Option<ArrayProperties>,
    pub(super) timeout: Option<JobTimeout>,
    pub(super) node_details: Option<NodeDetails>,
    /// Jobs on Amazon EKS compute environments.
    pub(super) eks_properties: Option<EksProperties>,
    #[serde(default)]
    pub(super) eks_attempts: Vec<EksAttempt>,

    // ECS.
    pub(super) task_arn: Option<String>,
    pub(super) cluster_arn: Option<String>,
    pub(super) group: Option<String>,
    pub(super) version: Option<u64>,
    pub(super) last_status: Option<String>,
    pub(super) launch_type: Option<String>,
    pub(super) capacity_provider_name: Option<String>,
    /// `Linux`, or a Windows Server family.
    pub(super) platform_family: Option<String>,
    pub(super) cpu: Option<String>,
    pub(super) memory: Option<String>,
    pub(super) ephemeral_storage: Option<EphemeralStorage>,
    #[serde(default)]
    pub(super) attributes: Vec<Attribute>,
    pub(super) pull_started_at: Option<Timestamp>,
    pub(super) pull_stopped_at: Option<Timestamp>,
    pub(super) execution_stopped_at: Option<Timestamp>,
    pub(super) stop_code: Option<String>,
    pub(super) availability_zone: Option<String>,
    /// Also in *ECS Container Instance State Change*.
    pub(super) container_instance_arn: Option<String>,

    // ECS container instances (`status`, `version`, `clusterArn`, `attributes` shared).
    pub(super) ec2_instance_id: Option<String>,
    #[serde(default)]
    pub(super) registered_resources: Vec<Resource>,
    pub(super) registered_at: Option<Timestamp>,
    pub(super) updated_at: Option<Timestamp>,
}
