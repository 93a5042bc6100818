//! The budgets file applied to a stack (issue 17, ADR 0012), in the state table: one item
//! (`BUDGETS` / `BOOK`) holding the book as JSON (`book`) and its version (`version`),
//! replaced whole by a conditional `PutItem`, so an apply takes all of a file or none of it.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::event_log::DynamoEventLog;
use super::keys::backend;
use crate::ports::StoreError;

const PK: &str = "BUDGETS";
const SK: &str = "BOOK";

impl crate::ports::BudgetStore for DynamoEventLog {
    async fn budgets(&self) -> Result<(u64, Option<crate::core::budgets::BudgetBook>), StoreError> {
        let output = self
            .client()
            .get_item()
            .table_name(&self.tables().state)
            .key("pk", AttributeValue::S(PK.into()))
            .key("sk", AttributeValue::S(SK.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(&self.tables().state, e))?;
        let Some(item) = output.item() else {
            return Ok((0, None));
        };
        let key = format!("{}: {PK}/{SK}", self.tables().state);
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| StoreError::Corrupt {
                key: key.clone(),
                message: "no `version` number".into(),
            })?;
        let text = item
            .get("book")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError::Corrupt {
                key: key.clone(),
                message: "no `book` attribute".into(),
            })?;
        Ok((version, Some(crate::ports::budgets_from_json(&key, text)?)))
    }

    async fn budgets_version(&self) -> Result<u64, StoreError> {
        let output = self
            .client()
            .get_item()
            .table_name(&self.tables().state)
            .key("pk", AttributeValue::S(PK.into()))
            .key("sk", AttributeValue::S(SK.into()))
            .projection_expression("version")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(&self.tables().state, e))?;
        Ok(output
            .item()
            .and_then(|item| item.get("version"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0))
    }

    async fn replace_budgets(
        &self,
        book: &crate::core::budgets::BudgetBook,
        expected: u64,
    ) -> Result<bool, StoreError> {
        let text = crate::ports::budgets_to_json(book)?;
        let mut put = self
            .client()
            .put_item()
            .table_name(&self.tables().state)
            .item("pk", AttributeValue::S(PK.into()))
            .item("sk", AttributeValue::S(SK.into()))
            .item(
                "version",
                AttributeValue::N(expected.saturating_add(1).to_string()),
            )
            .item("book", AttributeValue::S(text));
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(error))
                if error.err().is_conditional_check_failed_exception() =>
            {
                Ok(false)
            }
            Err(error) => Err(backend(&self.tables().state, error)),
        }
    }
}
