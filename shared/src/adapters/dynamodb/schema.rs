//! The schema of both tables — the events table and the state table with its `open`,
//! `recent` and `caps` indexes, TTL on both — and their creation for development (`batchguard init`, the
//! tests); a deployment gets the same from the SAM template.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

use super::keys::{backend, build_error};
use super::tables::TableNames;
use crate::ports::StoreError;

/// The TTL attribute of both tables (facts; spend marks).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// The GSI of projection items by the minute of their latest running start.
pub const RECENT_INDEX: &str = "recent";
/// The GSI of projection items with a running unit, by the time of their latest event.
pub const OPEN_INDEX: &str = "open";
/// Partitions of the open index (its writes spread over this many keys).
pub const OPEN_SHARDS: u32 = 8;
/// The GSI of running capped jobs by the second their cost reaches the cap (`core::caps`).
pub const CAPS_INDEX: &str = "caps";
/// Partitions of the caps index.
pub const CAP_SHARDS: u32 = 8;
/// Partitions of the recent index per minute: a 10,000-child array starting in one minute
/// writes this many index keys instead of one (DynamoDB takes 1,000 write units a second per
/// partition, an index's included).
pub const RECENT_SHARDS: u32 = 8;

/// Creates both tables (on-demand, TTL on both) if they do not exist, and waits until they are
/// active. For development and the CLI's `init`; deployments get theirs from the SAM template.
pub async fn create_tables(client: &Client, tables: &TableNames) -> Result<(), StoreError> {
    for table in [&tables.events, &tables.state] {
        let exists = client.describe_table().table_name(table).send().await;
        match exists {
            Ok(_) => continue,
            Err(SdkError::ServiceError(error)) if error.err().is_resource_not_found_exception() => {
            }
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
        let mut create = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk")?)
            .attribute_definitions(attribute("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?);
        if table == &tables.state {
            // A keys-only index of a string shard and a number: the open projections by their
            // latest event (the reconciler's), and the running capped jobs by the second their
            // cost reaches the cap (`core::caps`).
            for (index, shard, number) in [
                (OPEN_INDEX, "open_shard", "last_event_ms"),
                (CAPS_INDEX, "cap_shard", "cap_at"),
            ] {
                create = create
                    .attribute_definitions(attribute(shard)?)
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name(number)
                            .attribute_type(ScalarAttributeType::N)
                            .build()
                            .map_err(|e| build_error(table, e))?,
                    )
                    .global_secondary_indexes(
                        GlobalSecondaryIndex::builder()
                            .index_name(index)
                            .key_schema(key(shard, KeyType::Hash)?)
                            .key_schema(key(number, KeyType::Range)?)
                            .projection(
                                Projection::builder()
                                    .projection_type(ProjectionType::KeysOnly)
                                    .build(),
                            )
                            .build()
                            .map_err(|e| build_error(table, e))?,
                    );
            }
            // Projections by the minute of their latest running start (ADR 0004).
            create = create
                .attribute_definitions(attribute("recent_minute")?)
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(RECENT_INDEX)
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
        client
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
    for table in [&tables.events, &tables.state] {
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(TTL_ATTRIBUTE)
            .build()
            .map_err(|e| build_error(table, e))?;
        let described = client
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
            client
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
