//! Where a command keeps or reads the event log: `--store` as given ([`StoreSpec`]) and the
//! store it opens ([`Store`]), one type for a SQLite file and DynamoDB tables alike, so each
//! command is written once over the ports.

use std::path::PathBuf;

use shared::adapters::dynamodb::TableNames;
use shared::adapters::sqlite::SqliteEventLog;
use shared::core::facts::{EnforcementRecorded, Fact};
use shared::core::ledger::Ledger;
use shared::ports::{
    Appended, AuditTrail, Cursor, EventLog, IngestCounts, IngestLedger, Page, Quarantine,
    Quarantined, Record, StoreError,
};

use crate::error::CliError;

/// Records per page when loading a store.
const READ_PAGE: usize = 10_000;

/// `--store`: a SQLite file, DynamoDB tables `<prefix>-events` and `<prefix>-state`
/// (`dynamodb:<prefix>`), or two tables named in full (`dynamodb:<events table>,<state table>`,
/// a SAM stack's outputs), reached with the usual AWS variables (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    File(PathBuf),
    Dynamo(TableNames),
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Dynamo(tables) => write!(f, "dynamodb:{},{}", tables.events, tables.state),
        }
    }
}

fn table_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!(
            "dynamodb: needs a {what}, e.g. dynamodb:batchguard-dev or dynamodb:<events table>,<state table>"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{name:?} is not a DynamoDB {what} (letters, digits, '-', '_', '.')"
        ));
    }
    Ok(())
}

/// Reads `--store` (clap's value parser).
pub fn parse_store(text: &str) -> Result<StoreSpec, String> {
    if text.trim().is_empty() {
        // SQLite would take an empty name for a private database in memory, forgotten at exit.
        return Err(
            "a store needs a name: a SQLite file, dynamodb:<prefix> or dynamodb:<events table>,<state table>".into(),
        );
    }
    let Some(rest) = text.strip_prefix("dynamodb:") else {
        return Ok(StoreSpec::File(PathBuf::from(text)));
    };
    match rest.split_once(',') {
        Some((events, state)) => {
            table_name(events, "events table name")?;
            table_name(state, "state table name")?;
            Ok(StoreSpec::Dynamo(TableNames {
                events: events.to_owned(),
                state: state.to_owned(),
            }))
        }
        None => {
            table_name(rest, "table prefix")?;
            Ok(StoreSpec::Dynamo(TableNames::from_prefix(rest)))
        }
    }
}

/// An open store.
#[derive(Debug)]
pub enum Store {
    Sqlite(SqliteEventLog),
    #[cfg(feature = "aws")]
    Dynamo(shared::adapters::dynamodb::DynamoEventLog),
}

impl Store {
    /// Opens the store (a missing SQLite file is created); DynamoDB facts written through it
    /// expire `retention_days` after the latest instant they name.
    pub async fn open(spec: &StoreSpec, retention_days: Option<u32>) -> Result<Self, CliError> {
        match spec {
            StoreSpec::File(path) => Ok(Self::Sqlite(SqliteEventLog::open(path)?)),
            #[cfg(feature = "aws")]
            StoreSpec::Dynamo(tables) => {
                let config = crate::adapters::sdk_config(None).await;
                let log = shared::adapters::dynamodb::DynamoEventLog::new(
                    shared::adapters::dynamodb::client(&config),
                    tables.clone(),
                );
                Ok(Self::Dynamo(match retention_days {
                    Some(days) => {
                        log.with_retention(std::time::Duration::from_secs(u64::from(days) * 86_400))
                    }
                    None => log,
                }))
            }
            #[cfg(not(feature = "aws"))]
            StoreSpec::Dynamo(_) => {
                let _ = retention_days;
                Err(CliError::NeedsAws {
                    what: format!("the store {spec}"),
                })
            }
        }
    }

    /// Opens a store that must exist already, to read it: a SQLite file is neither created
    /// nor written (a read-only file can be read).
    pub async fn open_to_read(spec: &StoreSpec) -> Result<Self, CliError> {
        match spec {
            StoreSpec::File(path) if !path.exists() => {
                Err(CliError::Input(shared::adapters::files::InputError {
                    path: path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such store (run `batchguard ingest` first)",
                    ),
                }))
            }
            StoreSpec::File(path) => Ok(Self::Sqlite(SqliteEventLog::open_read_only(path)?)),
            StoreSpec::Dynamo(_) => Self::open(spec, None).await,
        }
    }

    /// Every fact of the store, a page at a time.
    pub async fn facts(&self) -> Result<Vec<Fact>, CliError> {
        let mut facts = Vec::new();
        self.each_fact(|fact| facts.push(fact)).await?;
        Ok(facts)
    }

    /// Folds every fact of the store into the ledger, a page at a time.
    pub async fn fold_into(&self, ledger: &mut Ledger) -> Result<(), CliError> {
        self.each_fact(|fact| ledger.apply(&fact)).await
    }

    async fn each_fact(&self, mut each: impl FnMut(Fact)) -> Result<(), CliError> {
        let mut cursor = None;
        loop {
            let page = self.read(cursor.as_ref(), READ_PAGE).await?;
            for record in page.records {
                each(record.fact);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }
}

/// The same call on whichever store is open.
macro_rules! on_store {
    ($store:expr, $log:ident => $call:expr) => {
        match $store {
            Store::Sqlite($log) => $call,
            #[cfg(feature = "aws")]
            Store::Dynamo($log) => $call,
        }
    };
}

impl EventLog for Store {
    async fn append(&self, records: &[Record]) -> Result<Appended, StoreError> {
        on_store!(self, log => log.append(records).await)
    }

    async fn read(&self, after: Option<&Cursor>, limit: usize) -> Result<Page, StoreError> {
        on_store!(self, log => log.read(after, limit).await)
    }
}

impl Quarantine for Store {
    async fn quarantine(&self, events: &[Quarantined]) -> Result<(), StoreError> {
        on_store!(self, log => log.quarantine(events).await)
    }

    async fn list_quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        on_store!(self, log => log.list_quarantined().await)
    }

    async fn release(&self, event: &Quarantined) -> Result<(), StoreError> {
        on_store!(self, log => log.release(event).await)
    }
}

impl IngestLedger for Store {
    async fn add_counts(&self, counts: IngestCounts) -> Result<(), StoreError> {
        on_store!(self, log => log.add_counts(counts).await)
    }

    async fn counts(&self) -> Result<IngestCounts, StoreError> {
        on_store!(self, log => log.counts().await)
    }
}

impl AuditTrail for Store {
    async fn audit_entries(
        &self,
        period_start: i64,
    ) -> Result<Vec<EnforcementRecorded>, StoreError> {
        on_store!(self, log => log.audit_entries(period_start).await)
    }
}

impl shared::ports::BudgetStore for Store {
    async fn budgets(
        &self,
    ) -> Result<(u64, Option<shared::core::budgets::BudgetBook>), StoreError> {
        on_store!(self, log => log.budgets().await)
    }

    async fn budgets_version(&self) -> Result<u64, StoreError> {
        on_store!(self, log => log.budgets_version().await)
    }

    async fn replace_budgets(
        &self,
        book: &shared::core::budgets::BudgetBook,
        expected: u64,
    ) -> Result<bool, StoreError> {
        on_store!(self, log => log.replace_budgets(book, expected).await)
    }
}
