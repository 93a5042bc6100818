//! The `detail` object of the two event types we read, as one struct: the union of their
//! fields, so one pass reads any event. Field names are AWS's (camelCase); both types share
//! `createdAt`, `startedAt` and `stoppedAt`, which Batch writes as epoch milliseconds and ECS
//! as ISO-8601 strings: [`Timestamp`] takes either.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::batch::{ArrayProperties, Attempt, Container, EcsProperties, NodeDetails};
use super::ecs::{Attribute, EphemeralStorage, Resource};
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
    pub(super) node_details: Option<NodeDetails>,

    // ECS.
    pub(super) task_arn: Option<String>,
    pub(super) cluster_arn: Option<String>,
    pub(super) group: Option<String>,
    pub(super) version: Option<u64>,
    pub(super) last_status: Option<String>,
    pub(super) launch_type: Option<String>,
    pub(super) capacity_provider_name: Option<String>,
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

pub(super) fn millis(at: Option<Timestamp>) -> Option<Millis> {
    at.map(|t| t.0)
}
