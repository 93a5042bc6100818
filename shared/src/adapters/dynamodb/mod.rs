//! DynamoDB (`aws-sdk-dynamodb`, feature `aws`): the event log, the baseline store and the
//! projector. This adapter owns every `AttributeValue`.
//!
//! Two tables per deployment:
//!
//! | table | `pk` | `sk` | items |
//! | --- | --- | --- | --- |
//! | events | `JOB#<job id>`, `TASK#<task ARN>`, `INSTANCE#<container instance ARN>`, `AUDIT#<period start>` | record key | one fact each: `fact` (JSON), `kind`, `expires_at` (TTL) |
//! | state | `QUARANTINE` | `<origin>#<digest>` | rejected events |
//! | state | `COUNTS` | `ingest` | ingest counters |
//! | state | `MARK#<period start>` | `<second>` | the ticker's spend marks (`expires_at`) |
//! | state | `BUDGET` | `aws` | the AWS budget as last read |
//! | state | `GATE` | `drain`, `safe` | what the enforcer verified for the admitter (`core::arrival`) |
//! | state | `PROJ#JOB#<id>`, `PROJ#TASK#<arn>`, `PROJ#INSTANCE#<arn>` | `PROJ` | a billing group's projection (GSIs `open`, `recent`) |
//! | state | `LINK#<task arn>` | `LINK` | the job that claimed a task |
//! | state | `PLACED#<container instance arn>` | group | the groups holding a share of an instance |
//! | state | `SCOPE#<kind>#<name>#<shard>` | `SUM` | a scope's running sums |
//! | state | `SCOPES` | `<kind>#<name>` | the registry of scopes |
//!
//! The rooms: `tables` (the tables' names, in every build), `schema` (tables, indexes, TTL), `keys` (keys, attribute values, errors),
//! `event_log` ([`DynamoEventLog`]: facts, quarantine, counters, audit trail), `baseline` (the
//! ticker's marks and AWS budget reading), `budget_book` (the budgets file applied), `gates` (the enforcer's gates for the admitter) and `projector` ([`DynamoProjector`]). The projector
//! reads the log; nothing here reads the projector.

#[cfg(feature = "aws")]
mod baseline;
#[cfg(feature = "aws")]
mod budget_book;
#[cfg(feature = "aws")]
mod event_log;
#[cfg(feature = "aws")]
mod gates;
#[cfg(feature = "aws")]
mod keys;
#[cfg(feature = "aws")]
mod projector;
#[cfg(feature = "aws")]
mod schema;
mod tables;

#[cfg(feature = "aws")]
pub use event_log::{
    APPEND_CONCURRENCY, DynamoEventLog, MAX_ATTEMPTS, MAX_QUARANTINED_BODY_BYTES, client,
};
#[cfg(feature = "aws")]
pub use gates::GATE_PARTITION;
#[cfg(feature = "aws")]
pub use keys::{FIXED_POINT_SCALE, partition_key};
#[cfg(feature = "aws")]
pub use projector::{
    BATCH_GET_LIMIT, BUDGETS_REFRESH_SECONDS, DEFAULT_SHARDS, DynamoProjector,
    MAX_PROJECTION_ATTEMPTS, MAX_TRANSACTION_ITEMS, Projected,
};
#[cfg(feature = "aws")]
pub use schema::{
    CAP_SHARDS, CAPS_INDEX, OPEN_INDEX, OPEN_SHARDS, RECENT_INDEX, RECENT_SHARDS, TTL_ATTRIBUTE,
    create_tables,
};
pub use tables::TableNames;
