//! An in-memory event log: the test double, and a first-class adapter for replays.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::ports::{
    Appended, Cursor, EventLog, IngestCounts, IngestLedger, Page, Quarantine, Quarantined, Record,
    StoreError,
};

#[derive(Debug, Default)]
struct Inner {
    records: Vec<Record>,
    keys: HashMap<String, usize>,
    quarantined: Vec<Quarantined>,
    counts: IngestCounts,
    /// The applied budgets and their version.
    budgets: (u64, Option<crate::core::budgets::BudgetBook>),
    /// The enforcer's gates for the admitter.
    gates: std::collections::BTreeMap<crate::core::arrival::GateKind, crate::core::arrival::Gate>,
}

/// Holds everything in a `Vec` behind a mutex.
#[derive(Debug, Default)]
pub struct MemoryEventLog {
    inner: Mutex<Inner>,
}

impl MemoryEventLog {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated in a way that
        // matters to a test double; keep going with what is there.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn quarantined(&self) -> Vec<Quarantined> {
        self.lock().quarantined.clone()
    }

    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl EventLog for MemoryEventLog {
    async fn append(&self, records: &[Record]) -> Result<Appended, StoreError> {
        let mut inner = self.lock();
        let mut appended = Appended::default();
        for record in records {
            if inner.keys.contains_key(&record.key) {
                appended.duplicates += 1;
            } else {
                let position = inner.records.len();
                inner.keys.insert(record.key.clone(), position);
                inner.records.push(record.clone());
                appended.new += 1;
            }
        }
        Ok(appended)
    }

    async fn read(&self, after: Option<&Cursor>, limit: usize) -> Result<Page, StoreError> {
        let inner = self.lock();
        let start = match after {
            None => 0,
            Some(cursor) => cursor.0.parse::<usize>().map_err(|_| StoreError::Backend {
                location: "memory".into(),
                message: format!("cursor {:?} is not a position", cursor.0),
                source: None,
            })?,
        };
        let end = start.saturating_add(limit).min(inner.records.len());
        let records = inner.records.get(start..end).unwrap_or_default().to_vec();
        let next = (end < inner.records.len()).then(|| Cursor(end.to_string()));
        Ok(Page { records, next })
    }
}

impl Quarantine for MemoryEventLog {
    async fn quarantine(&self, events: &[Quarantined]) -> Result<(), StoreError> {
        self.lock().quarantined.extend_from_slice(events);
        Ok(())
    }

    async fn list_quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        Ok(self.quarantined())
    }

    async fn release(&self, event: &Quarantined) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(index) = inner.quarantined.iter().position(|q| q == event) {
            inner.quarantined.remove(index);
        }
        Ok(())
    }
}

impl IngestLedger for MemoryEventLog {
    async fn add_counts(&self, counts: IngestCounts) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.counts.read += counts.read;
        inner.counts.duplicates += counts.duplicates;
        inner.counts.skipped += counts.skipped;
        inner.counts.rejected += counts.rejected;
        Ok(())
    }

    async fn counts(&self) -> Result<IngestCounts, StoreError> {
        Ok(self.lock().counts)
    }
}

impl crate::ports::AuditTrail for MemoryEventLog {
    async fn audit_entries(
        &self,
        period_start: i64,
    ) -> Result<Vec<crate::core::facts::EnforcementRecorded>, StoreError> {
        Ok(self
            .lock()
            .records
            .iter()
            .filter_map(|record| match &record.fact.body {
                crate::core::facts::FactBody::Enforcement(entry)
                    if entry.period_start == period_start =>
                {
                    Some(entry.clone())
                }
                _ => None,
            })
            .collect())
    }
}

impl crate::ports::BudgetStore for MemoryEventLog {
    async fn budgets(&self) -> Result<(u64, Option<crate::core::budgets::BudgetBook>), StoreError> {
        Ok(self.lock().budgets.clone())
    }

    async fn budgets_version(&self) -> Result<u64, StoreError> {
        Ok(self.lock().budgets.0)
    }

    async fn replace_budgets(
        &self,
        book: &crate::core::budgets::BudgetBook,
        expected: u64,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if inner.budgets.0 != expected {
            return Ok(false);
        }
        inner.budgets = (expected.saturating_add(1), Some(book.clone()));
        Ok(true)
    }
}

impl crate::ports::AdmissionGates for MemoryEventLog {
    async fn put_gate(
        &self,
        kind: crate::core::arrival::GateKind,
        gate: &crate::core::arrival::Gate,
    ) -> Result<(), StoreError> {
        self.lock().gates.insert(kind, gate.clone());
        Ok(())
    }

    async fn gates(
        &self,
    ) -> Result<
        std::collections::BTreeMap<crate::core::arrival::GateKind, crate::core::arrival::Gate>,
        StoreError,
    > {
        Ok(self.lock().gates.clone())
    }
}
