//! The event log on DynamoDB: one item per fact in the events table, put with
//! `attribute_not_exists` (a redelivery is a no-op), partitioned by the job, task, instance or
//! audit period it describes so one history is one `Query`; the quarantine and the ingest
//! counters in the state table; the audit trail read back.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::keys::{backend, number_attribute, partition_items, partition_key, string_attribute};
use super::schema::{self, TTL_ATTRIBUTE};
use super::tables::TableNames;
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

/// The DynamoDB event log, quarantine and ingest counters.
#[derive(Clone, Debug)]
pub struct DynamoEventLog {
    client: Client,
    tables: TableNames,
    /// Facts expire this long after the latest instant they mention (`None`: never).
    retention: Option<Duration>,
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

    /// Creates both tables if they do not exist (see [`schema::create_tables`]).
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        schema::create_tables(&self.client, &self.tables).await
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
            FactBody::Job(_) | FactBody::Abandoned(_) => "job",
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
