//! The event log on DynamoDB (`aws-sdk-dynamodb`). This adapter owns every `AttributeValue`.
//!
//! Two tables per deployment, named from a prefix:
//!
//! | table | key | items |
//! | --- | --- | --- |
//! | `<prefix>-events` | `pk` = `JOB#<job id>` or `TASK#<task ARN>`, `sk` = record key | one fact each: `fact` (JSON), `kind`, `expires_at` (TTL) |
//! | `<prefix>-state` | `pk`, `sk` | `QUARANTINE` / `<origin>#<digest>`: rejected events; `COUNTS` / `ingest`: ingest counters; `MARK#<period start>` / `<second>`: the ticker's spend marks (`expires_at`); `BUDGET` / `aws`: the AWS budget as last read |
//!
//! Facts are partitioned by the job or task they describe, so one job's history is one
//! `Query` and writes spread over as many partitions as there are jobs. A fact is put with
//! `attribute_not_exists(pk)`: a redelivery fails the condition and counts as a duplicate.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::core::facts::{Fact, FactBody};
use crate::ports::{
    Appended, Cursor, EventLog, IngestCounts, IngestLedger, Page, Quarantine, Quarantined, Record,
    StoreError,
};

/// Puts in flight at once during an append: enough to hide latency, well under the account's
/// default on-demand throughput.
pub const APPEND_CONCURRENCY: usize = 16;
/// DynamoDB's item size limit (400 KB), less room for the key and other attributes: a
/// quarantined body longer than this is truncated (and marked so).
pub const MAX_QUARANTINED_BODY_BYTES: usize = 350_000;
/// The TTL attribute of both tables (facts; spend marks).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Table names of one deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableNames {
    pub events: String,
    pub state: String,
}

impl TableNames {
    pub fn from_prefix(prefix: &str) -> Self {
        Self {
            events: format!("{prefix}-events"),
            state: format!("{prefix}-state"),
        }
    }
}

/// The DynamoDB event log, quarantine and ingest counters.
#[derive(Clone, Debug)]
pub struct DynamoEventLog {
    client: Client,
    tables: TableNames,
    /// Facts expire this long after the latest instant they mention (`None`: never).
    retention: Option<Duration>,
}

/// A DynamoDB call that failed, as a storage error naming the table.
pub(crate) fn backend<E>(table: &str, error: SdkError<E>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StoreError::Backend {
        location: format!("DynamoDB table {table}"),
        message: DisplayErrorContext(&error).to_string(),
        source: Some(Box::new(error)),
    }
}

fn build_error(table: &str, error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Backend {
        location: format!("DynamoDB table {table}"),
        message: error.to_string(),
        source: Some(Box::new(error)),
    }
}

/// Every item of one partition, read consistently, all pages.
pub(crate) async fn partition_items(
    client: &Client,
    table: &str,
    pk: &str,
) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
    client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| backend(table, e))
}

/// The partition a fact belongs to: the job or task it describes.
pub fn partition_key(fact: &Fact) -> String {
    match &fact.body {
        FactBody::Job(job) => format!("JOB#{}", job.job_id),
        FactBody::Task(task) => format!("TASK#{}", task.task_arn),
        FactBody::Instance(instance) => format!("INSTANCE#{}", instance.container_instance_arn),
        // The audit trail is one partition per budget period: small, and read whole.
        FactBody::Enforcement(entry) => format!("AUDIT#{}", entry.period_start),
    }
}

fn string_attribute<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|value| value.as_s().ok())
        .map(String::as_str)
}

fn number_attribute(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    item.get(name)
        .and_then(|value| value.as_n().ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

/// Attempts per DynamoDB call (throttling and 5xx are retried with backoff by the SDK).
pub const MAX_ATTEMPTS: u32 = 8;

/// A DynamoDB client with this adapter's retry policy.
pub fn client(config: &aws_config::SdkConfig) -> Client {
    let retry = aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS);
    Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(config)
            .retry_config(retry)
            .build(),
    )
}

impl DynamoEventLog {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self {
            client,
            tables,
            retention: None,
        }
    }

    /// Facts expire (DynamoDB TTL) this long after the latest instant they mention.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates both tables (on-demand, TTL on the events table) if they do not exist, and waits
    /// until they are active. For development and the CLI's `init`; deployments get theirs
    /// from the SAM template.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        for table in [&self.tables.events, &self.tables.state] {
            let exists = self.client.describe_table().table_name(table).send().await;
            match exists {
                Ok(_) => continue,
                Err(SdkError::ServiceError(error))
                    if error.err().is_resource_not_found_exception() => {}
                Err(error) => return Err(backend(table, error)),
            }
            let key = |name: &str, key_type| {
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(key_type)
                    .build()
                    .map_err(|e| build_error(table, e))
            };
            let attribute = |name: &str| {
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| build_error(table, e))
            };
            let mut create = self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attribute("pk")?)
                .attribute_definitions(attribute("sk")?)
                .key_schema(key("pk", KeyType::Hash)?)
                .key_schema(key("sk", KeyType::Range)?);
            if table == &self.tables.state {
                // Open projections by their latest event: the reconciler's index.
                create = create
                    .attribute_definitions(attribute("open_shard")?)
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name("last_event_ms")
                            .attribute_type(ScalarAttributeType::N)
                            .build()
                            .map_err(|e| build_error(table, e))?,
                    )
                    .global_secondary_indexes(
                        GlobalSecondaryIndex::builder()
                            .index_name(super::dynamodb_projection::OPEN_INDEX)
                            .key_schema(key("open_shard", KeyType::Hash)?)
                            .key_schema(key("last_event_ms", KeyType::Range)?)
                            .projection(
                                Projection::builder()
                                    .projection_type(ProjectionType::KeysOnly)
                                    .build(),
                            )
                            .build()
                            .map_err(|e| build_error(table, e))?,
                    );
                // Projections by the minute of their latest running start (ADR 0004).
                create = create
                    .attribute_definitions(attribute("recent_minute")?)
                    .global_secondary_indexes(
                        GlobalSecondaryIndex::builder()
                            .index_name(super::dynamodb_projection::RECENT_INDEX)
                            .key_schema(key("recent_minute", KeyType::Hash)?)
                            .key_schema(key("pk", KeyType::Range)?)
                            .projection(
                                Projection::builder()
                                    .projection_type(ProjectionType::All)
                                    .build(),
                            )
                            .build()
                            .map_err(|e| build_error(table, e))?,
                    );
            }
            create.send().await.map_err(|e| backend(table, e))?;
            self.client
                .wait_until_table_exists()
                .table_name(table)
                .wait(Duration::from_secs(120))
                .await
                .map_err(|e| StoreError::Backend {
                    location: format!("DynamoDB table {table}"),
                    message: format!("did not become active: {}", DisplayErrorContext(&e)),
                    source: Some(Box::new(e)),
                })?;
        }
        // Facts expire in the events table, spend marks in the state table.
        for table in [&self.tables.events, &self.tables.state] {
            let ttl = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(|e| build_error(table, e))?;
            let described = self
                .client
                .describe_time_to_live()
                .table_name(table)
                .send()
                .await
                .map_err(|e| backend(table, e))?;
            let enabled = described
                .time_to_live_description()
                .and_then(|d| d.attribute_name())
                .is_some_and(|name| name == TTL_ATTRIBUTE);
            if !enabled {
                self.client
                    .update_time_to_live()
                    .table_name(table)
                    .time_to_live_specification(ttl)
                    .send()
                    .await
                    .map_err(|e| backend(table, e))?;
            }
        }
        Ok(())
    }

    fn expires_at(&self, fact: &Fact) -> Option<i64> {
        let retention = self.retention?;
        let base = fact
            .latest_instant()
            .map(|m| m.floor_seconds())
            .unwrap_or_else(|| {
                // A fact that names no instant expires counting from when it was stored.
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            });
        Some(base.saturating_add(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX)))
    }

    /// Puts one record; `Ok(false)` when the log already had it.
    async fn put_record(&self, record: &Record) -> Result<bool, StoreError> {
        let body = serde_json::to_string(&record.fact).map_err(|e| StoreError::Corrupt {
            key: record.key.clone(),
            message: e.to_string(),
        })?;
        let kind = match record.fact.body {
            FactBody::Job(_) => "job",
            FactBody::Task(_) => "task",
            FactBody::Instance(_) => "instance",
            FactBody::Enforcement(_) => "audit",
        };
        let mut put = self
            .client
            .put_item()
            .table_name(&self.tables.events)
            .item("pk", AttributeValue::S(partition_key(&record.fact)))
            .item("sk", AttributeValue::S(record.key.clone()))
            .item("kind", AttributeValue::S(kind.into()))
            .item("fact", AttributeValue::S(body))
            .condition_expression("attribute_not_exists(pk)");
        if let Some(expires_at) = self.expires_at(&record.fact) {
            put = put.item(TTL_ATTRIBUTE, AttributeValue::N(expires_at.to_string()));
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(error))
                if matches!(
                    error.err(),
                    PutItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(backend(&self.tables.events, error)),
        }
    }

    /// Every fact of one job or task (its whole history), for projections.
    pub async fn entity_history(&self, partition: &str) -> Result<Vec<Record>, StoreError> {
        let items = partition_items(&self.client, &self.tables.events, partition).await?;
        items.iter().map(record_of).collect()
    }
}

fn record_of(item: &HashMap<String, AttributeValue>) -> Result<Record, StoreError> {
    let key = string_attribute(item, "sk").unwrap_or_default().to_owned();
    let body = string_attribute(item, "fact").ok_or_else(|| StoreError::Corrupt {
        key: key.clone(),
        message: "no `fact` attribute".into(),
    })?;
    let fact: Fact = serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        key: key.clone(),
        message: e.to_string(),
    })?;
    Ok(Record { key, fact })
}

impl EventLog for DynamoEventLog {
    async fn append(&self, records: &[Record]) -> Result<Appended, StoreError> {
        // Owned futures (a cheap client clone each): a stream of futures borrowing `records`
        // trips the compiler's higher-ranked lifetime check on `Send`.
        let outcomes: Vec<bool> = stream::iter(records.iter().cloned())
            .map(|record| {
                let log = self.clone();
                async move { log.put_record(&record).await }
            })
            .buffer_unordered(APPEND_CONCURRENCY)
            .try_collect()
            .await?;
        let new = outcomes.iter().filter(|&&new| new).count() as u64;
        Ok(Appended {
            new,
            duplicates: outcomes.len() as u64 - new,
        })
    }

    async fn read(&self, after: Option<&Cursor>, limit: usize) -> Result<Page, StoreError> {
        let mut scan = self
            .client
            .scan()
            .table_name(&self.tables.events)
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX).max(1));
        if let Some(cursor) = after {
            let (pk, sk) = cursor
                .0
                .split_once('\n')
                .ok_or_else(|| StoreError::Backend {
                    location: format!("DynamoDB table {}", self.tables.events),
                    message: format!("cursor {:?} is not a position in this log", cursor.0),
                    source: None,
                })?;
            scan = scan
                .exclusive_start_key("pk", AttributeValue::S(pk.to_owned()))
                .exclusive_start_key("sk", AttributeValue::S(sk.to_owned()));
        }
        let output = scan
            .send()
            .await
            .map_err(|e| backend(&self.tables.events, e))?;
        let records = output
            .items()
            .iter()
            .map(record_of)
            .collect::<Result<Vec<_>, _>>()?;
        let next = output.last_evaluated_key().and_then(|key| {
            let pk = string_attribute(key, "pk")?;
            let sk = string_attribute(key, "sk")?;
            Some(Cursor(format!("{pk}\n{sk}")))
        });
        Ok(Page { records, next })
    }
}

impl Quarantine for DynamoEventLog {
    async fn quarantine(&self, events: &[Quarantined]) -> Result<(), StoreError> {
        for event in events {
            let digest = xxhash_rust::xxh3::xxh3_64(event.body.as_bytes());
            let truncated = event.body.len() > MAX_QUARANTINED_BODY_BYTES;
            let mut end = event.body.len().min(MAX_QUARANTINED_BODY_BYTES);
            while !event.body.is_char_boundary(end) {
                end -= 1;
            }
            self.client
                .put_item()
                .table_name(&self.tables.state)
                .item("pk", AttributeValue::S("QUARANTINE".into()))
                .item(
                    "sk",
                    AttributeValue::S(format!("{}#{digest:016x}", event.origin)),
                )
                .item("origin", AttributeValue::S(event.origin.clone()))
                .item("reason", AttributeValue::S(event.reason.clone()))
                .item("body", AttributeValue::S(event.body[..end].to_owned()))
                .item("truncated", AttributeValue::Bool(truncated))
                .send()
                .await
                .map_err(|e| backend(&self.tables.state, e))?;
        }
        Ok(())
    }

    async fn list_quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        self.quarantined().await
    }

    async fn release(&self, event: &Quarantined) -> Result<(), StoreError> {
        let digest = xxhash_rust::xxh3::xxh3_64(event.body.as_bytes());
        self.client
            .delete_item()
            .table_name(&self.tables.state)
            .key("pk", AttributeValue::S("QUARANTINE".into()))
            .key(
                "sk",
                AttributeValue::S(format!("{}#{digest:016x}", event.origin)),
            )
            .send()
            .await
            .map_err(|e| backend(&self.tables.state, e))?;
        Ok(())
    }
}

impl DynamoEventLog {
    /// Everything in the quarantine, in key order.
    pub async fn quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        let items = partition_items(&self.client, &self.tables.state, "QUARANTINE").await?;
        Ok(items
            .iter()
            .map(|item| Quarantined {
                origin: string_attribute(item, "origin")
                    .unwrap_or_default()
                    .to_owned(),
                reason: string_attribute(item, "reason")
                    .unwrap_or_default()
                    .to_owned(),
                body: string_attribute(item, "body")
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect())
    }
}

const COUNTS: [&str; 4] = ["read", "duplicates", "skipped", "rejected"];

impl IngestLedger for DynamoEventLog {
    async fn add_counts(&self, counts: IngestCounts) -> Result<(), StoreError> {
        let values = [
            counts.read,
            counts.duplicates,
            counts.skipped,
            counts.rejected,
        ];
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.state)
            .key("pk", AttributeValue::S("COUNTS".into()))
            .key("sk", AttributeValue::S("ingest".into()))
            .update_expression(
                "ADD #read :read, #duplicates :duplicates, #skipped :skipped, #rejected :rejected",
            );
        for (name, value) in COUNTS.iter().zip(values) {
            update = update
                .expression_attribute_names(format!("#{name}"), *name)
                .expression_attribute_values(
                    format!(":{name}"),
                    AttributeValue::N(value.to_string()),
                );
        }
        update
            .send()
            .await
            .map_err(|e| backend(&self.tables.state, e))?;
        Ok(())
    }

    async fn counts(&self) -> Result<IngestCounts, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.state)
            .key("pk", AttributeValue::S("COUNTS".into()))
            .key("sk", AttributeValue::S("ingest".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(&self.tables.state, e))?;
        let Some(item) = output.item() else {
            return Ok(IngestCounts::default());
        };
        Ok(IngestCounts {
            read: number_attribute(item, COUNTS[0]),
            duplicates: number_attribute(item, COUNTS[1]),
            skipped: number_attribute(item, COUNTS[2]),
            rejected: number_attribute(item, COUNTS[3]),
        })
    }
}

impl crate::ports::AuditTrail for DynamoEventLog {
    async fn audit_entries(
        &self,
        period_start: i64,
    ) -> Result<Vec<crate::core::facts::EnforcementRecorded>, StoreError> {
        let records = self
            .entity_history(&format!("AUDIT#{period_start}"))
            .await?;
        Ok(records
            .into_iter()
            .filter_map(|record| match record.fact.body {
                FactBody::Enforcement(entry) => Some(entry),
                _ => None,
            })
            .collect())
    }
}

/// Spend marks and the cached AWS budget live in the state table: `MARK#<period start>` /
/// `<tick second, 20 digits>` (expiring with the TTL attribute), and `BUDGET` / `aws`.
impl crate::ports::BaselineStore for DynamoEventLog {
    async fn put_mark(
        &self,
        period_start: i64,
        mark: &crate::core::budget::SpendMark,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.put_state_json(
            &format!("MARK#{period_start}"),
            &format!("{:020}", mark.at),
            ("mark", mark),
            Some(expires_at),
        )
        .await
    }

    async fn mark_at_or_before(
        &self,
        period_start: i64,
        at: i64,
    ) -> Result<Option<crate::core::budget::SpendMark>, StoreError> {
        if at < 0 {
            return Ok(None); // sort keys are zero-padded non-negative seconds
        }
        let output = self
            .client
            .query()
            .table_name(&self.tables.state)
            .key_condition_expression("pk = :pk AND sk <= :at")
            .expression_attribute_values(":pk", AttributeValue::S(format!("MARK#{period_start}")))
            .expression_attribute_values(":at", AttributeValue::S(format!("{at:020}")))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(&self.tables.state, e))?;
        output
            .items()
            .first()
            .map(|item| json_attribute(item, "mark"))
            .transpose()
    }

    async fn cached_budget(&self) -> Result<Option<crate::ports::CachedBudget>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.state)
            .key("pk", AttributeValue::S("BUDGET".into()))
            .key("sk", AttributeValue::S("aws".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(&self.tables.state, e))?;
        output
            .item()
            .map(|item| json_attribute(item, "budget"))
            .transpose()
    }

    async fn put_cached_budget(
        &self,
        cached: &crate::ports::CachedBudget,
    ) -> Result<(), StoreError> {
        self.put_state_json("BUDGET", "aws", ("budget", cached), None)
            .await
    }
}

impl DynamoEventLog {
    /// Puts a state-table item holding one JSON document in a string attribute (read back
    /// with [`json_attribute`]), expiring at `expires_at` when given.
    async fn put_state_json<T: serde::Serialize>(
        &self,
        pk: &str,
        sk: &str,
        (name, value): (&str, &T),
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
            key: format!("{pk}/{sk}"),
            message: e.to_string(),
        })?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.tables.state)
            .item("pk", AttributeValue::S(pk.to_owned()))
            .item("sk", AttributeValue::S(sk.to_owned()))
            .item(name, AttributeValue::S(body));
        if let Some(expires_at) = expires_at {
            put = put.item(TTL_ATTRIBUTE, AttributeValue::N(expires_at.to_string()));
        }
        put.send()
            .await
            .map_err(|e| backend(&self.tables.state, e))?;
        Ok(())
    }
}

/// A JSON document kept in a string attribute.
fn json_attribute<T: serde::de::DeserializeOwned>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
) -> Result<T, StoreError> {
    let key = format!(
        "{}/{}",
        string_attribute(item, "pk").unwrap_or_default(),
        string_attribute(item, "sk").unwrap_or_default()
    );
    let text = string_attribute(item, name).ok_or_else(|| StoreError::Corrupt {
        key: key.clone(),
        message: format!("no `{name}` attribute"),
    })?;
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        key,
        message: e.to_string(),
    })
}
