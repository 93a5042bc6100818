//! The enforcer's gates for the admitter (issue 17, `core::arrival`), in the state table: one
//! item per gate (`GATE` / `drain`, `GATE` / `safe`) holding it as JSON (`gate`), replaced whole
//! by the enforcer's run that verified it, and both read by one consistent `Query` per arriving
//! event (a few hundred bytes: one read capacity unit).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::event_log::DynamoEventLog;
use super::keys::{backend, corrupt, partition_items};
use crate::core::arrival::{Gate, GateKind};
use crate::ports::StoreError;

/// The gates' partition; the IAM policy lets the enforcer write this partition only.
pub const GATE_PARTITION: &str = "GATE";

impl crate::ports::AdmissionGates for DynamoEventLog {
    async fn put_gate(&self, kind: GateKind, gate: &Gate) -> Result<(), StoreError> {
        let key = format!("{GATE_PARTITION}/{}", kind.as_str());
        let text = serde_json::to_string(gate).map_err(|e| corrupt(&key, e))?;
        self.client()
            .put_item()
            .table_name(&self.tables().state)
            .item("pk", AttributeValue::S(GATE_PARTITION.into()))
            .item("sk", AttributeValue::S(kind.as_str().into()))
            .item("gate", AttributeValue::S(text))
            .send()
            .await
            .map_err(|e| backend(&self.tables().state, e))?;
        Ok(())
    }

    async fn gates(&self) -> Result<BTreeMap<GateKind, Gate>, StoreError> {
        let items = partition_items(self.client(), &self.tables().state, GATE_PARTITION).await?;
        let mut gates = BTreeMap::new();
        for item in items {
            let sk = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            let key = format!("{}: {GATE_PARTITION}/{sk}", self.tables().state);
            let Some(kind) = GateKind::ALL.into_iter().find(|kind| kind.as_str() == sk) else {
                return Err(corrupt(&key, "not a gate's sort key (drain or safe)"));
            };
            let text = item
                .get("gate")
                .and_then(|v| v.as_s().ok())
                .ok_or_else(|| corrupt(&key, "no `gate` attribute"))?;
            let gate: Gate = serde_json::from_str(text).map_err(|e| corrupt(&key, e))?;
            gates.insert(kind, gate);
        }
        Ok(gates)
    }
}
