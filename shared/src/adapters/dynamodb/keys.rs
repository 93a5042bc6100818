//! Keys and attribute values: the partition each fact and item lives in, the scope and minute
//! keys of the state table, the fixed-point numbers scope sums are stored as, and the
//! translation of a failed DynamoDB call into a [`StoreError`] naming the table.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;

use crate::core::facts::{Fact, FactBody};
use crate::core::scope::Scope;
use crate::ports::StoreError;

/// A DynamoDB call that failed, as a storage error naming the table.
pub(super) fn backend<E>(table: &str, error: SdkError<E>) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    StoreError::Backend {
        location: format!("DynamoDB table {table}"),
        message: crate::adapters::sdk_error::summary(&error),
        source: Some(Box::new(error)),
    }
}

pub(super) fn build_error(table: &str, error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Backend {
        location: format!("DynamoDB table {table}"),
        message: error.to_string(),
        source: Some(Box::new(error)),
    }
}

pub(super) fn corrupt(key: &str, message: impl ToString) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        message: message.to_string(),
    }
}

pub(super) fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The key of a scope in item keys and the registry: `<kind>#<name>`. A tag's is
/// `tag#<key>=<value>` with `%` and `=` in the key written `%25` and `%3D`: AWS allows `=` in
/// tag keys, and `a=b` = `c` must not share its sums with `a` = `b=c`. (Keys without either
/// character keep the key they always had.) A budget summed by a period other than the
/// stack's is `budget@<period>#<name>`: its buckets must not share an item with those of the
/// same name summed by the stack's period (a budget whose period was changed).
pub(super) fn scope_key(scope: &Scope) -> String {
    match scope {
        Scope::PeriodBudget(name, period) => format!("budget@{}#{name}", period.name()),
        Scope::Tag(key, value) => format!(
            "{}#{}={value}",
            scope.kind(),
            key.replace('%', "%25").replace('=', "%3D")
        ),
        _ => format!("{}#{}", scope.kind(), scope.value()),
    }
}

/// Every item of one partition, read consistently, all pages.
pub(super) async fn partition_items(
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
        FactBody::Abandoned(abandoned) => format!("JOB#{}", abandoned.job_id),
        FactBody::Task(task) => format!("TASK#{}", task.task_arn),
        FactBody::Instance(instance) => format!("INSTANCE#{}", instance.container_instance_arn),
        // The audit trail is one partition per budget period: small, and read whole.
        FactBody::Enforcement(entry) => format!("AUDIT#{}", entry.period_start),
    }
}

pub(super) fn string_attribute<'a>(
    item: &'a HashMap<String, AttributeValue>,
    name: &str,
) -> Option<&'a str> {
    item.get(name)
        .and_then(|value| value.as_s().ok())
        .map(String::as_str)
}

pub(super) fn number_attribute(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    item.get(name)
        .and_then(|value| value.as_n().ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

/// Sums are stored as integers in units of 10⁻¹⁶: DynamoDB adds integers exactly everywhere
/// (an emulator's decimal arithmetic turns tiny or zero results into exponent notation it then
/// cannot read), and every price in AWS's list, times any task size, has at most 16 decimal
/// places. A figure with more is rounded to 10⁻¹⁶ of a USD·second/hour.
pub const FIXED_POINT_SCALE: u32 = 16;

pub(super) fn to_fixed(name: &str, value: Decimal) -> Result<String, StoreError> {
    let scaled = value
        .checked_mul(Decimal::from(10_i64.pow(FIXED_POINT_SCALE)))
        .map(|v| v.round())
        .ok_or_else(|| corrupt(name, format!("{value} is too large to store")))?;
    Ok(scaled.normalize().to_string())
}

pub(super) fn from_fixed(name: &str, text: &str) -> Result<Decimal, StoreError> {
    let units: i128 = text.parse().map_err(|e| corrupt(name, e))?;
    Decimal::try_from_i128_with_scale(units, FIXED_POINT_SCALE)
        .map(|d| d.normalize())
        .map_err(|e| corrupt(name, e))
}

pub(super) fn minute_of(unix_seconds: i64) -> String {
    format!("m{}", unix_seconds.div_euclid(60))
}

/// A JSON document kept in a string attribute.
pub(super) fn json_attribute<T: serde::de::DeserializeOwned>(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_scope_keys_are_unambiguous_and_unchanged_for_plain_keys() {
        let key = |k: &str, v: &str| scope_key(&Scope::Tag(k.into(), v.into()));
        assert_ne!(key("a=b", "c"), key("a", "b=c"));
        assert_ne!(key("a%3D", "c"), key("a=", "c"));
        assert_eq!(key("team", "ml=gpu"), "tag#team=ml=gpu");
        assert_eq!(scope_key(&Scope::Queue("etl".into())), "queue#etl");
    }
}
