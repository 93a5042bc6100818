//! What the ticker keeps to join an AWS baseline with the ledger, in the state table: its
//! spend marks (`MARK#<period start>` / `<tick second, 20 digits>`, expiring with the TTL
//! attribute) and the AWS budget as last read (`BUDGET` / `aws`).

use aws_sdk_dynamodb::types::AttributeValue;

use super::event_log::DynamoEventLog;
use super::keys::{backend, json_attribute};
use super::schema::TTL_ATTRIBUTE;
use crate::ports::StoreError;

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
            .client()
            .query()
            .table_name(&self.tables().state)
            .key_condition_expression("pk = :pk AND sk <= :at")
            .expression_attribute_values(":pk", AttributeValue::S(format!("MARK#{period_start}")))
            .expression_attribute_values(":at", AttributeValue::S(format!("{at:020}")))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(&self.tables().state, e))?;
        output
            .items()
            .first()
            .map(|item| json_attribute(item, "mark"))
            .transpose()
    }

    async fn cached_budget(&self) -> Result<Option<crate::ports::CachedBudget>, StoreError> {
        let output = self
            .client()
            .get_item()
            .table_name(&self.tables().state)
            .key("pk", AttributeValue::S("BUDGET".into()))
            .key("sk", AttributeValue::S("aws".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(&self.tables().state, e))?;
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
            .client()
            .put_item()
            .table_name(&self.tables().state)
            .item("pk", AttributeValue::S(pk.to_owned()))
            .item("sk", AttributeValue::S(sk.to_owned()))
            .item(name, AttributeValue::S(body));
        if let Some(expires_at) = expires_at {
            put = put.item(TTL_ATTRIBUTE, AttributeValue::N(expires_at.to_string()));
        }
        put.send()
            .await
            .map_err(|e| backend(&self.tables().state, e))?;
        Ok(())
    }
}
