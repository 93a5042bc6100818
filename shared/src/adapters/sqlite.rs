//! The embedded, file-backed event log (SQLite, bundled), for the `batchguard` CLI.
//!
//! One row per fact, keyed by event id (`INSERT OR IGNORE` makes redelivery a no-op); facts
//! are stored as their versioned JSON. A quarantined event is kept once per origin and body
//! (ingesting the same bad file again changes nothing). Writers wait for each other (a busy
//! timeout, as SQLite users expect of two `ingest`s at once); a store opened to be read
//! ([`SqliteEventLog::open_read_only`]) writes nothing, so a read-only file can be read. SQLite
//! calls block; the CLI runs them on a current-thread runtime with nothing else to do, so that
//! costs nothing there.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::core::facts::Fact;
use crate::ports::{
    Appended, Cursor, EventLog, IngestCounts, IngestLedger, Page, Quarantine, Quarantined, Record,
    StoreError,
};

/// The schema this code writes; a newer one in the file is refused rather than misread.
/// Version 2 keeps each quarantined event once (a unique index on origin and body).
const SCHEMA_VERSION: i64 = 2;
/// How long a writer waits for another process's write to finish.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS facts (
        seq  INTEGER PRIMARY KEY AUTOINCREMENT,
        key  TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS quarantine (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        origin TEXT NOT NULL,
        reason TEXT NOT NULL,
        body   TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS budgets (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        book    TEXT NOT NULL
    );
";

/// From schema 1: the quarantine's duplicates (same origin and body) go, the latest reason
/// stays, and an index keeps it so.
const MIGRATE_1_TO_2: &str = "
    UPDATE quarantine SET reason = (
        SELECT q.reason FROM quarantine q
        WHERE q.origin = quarantine.origin AND q.body = quarantine.body ORDER BY q.id DESC LIMIT 1
    );
    DELETE FROM quarantine WHERE id NOT IN (SELECT MIN(id) FROM quarantine GROUP BY origin, body);
    CREATE UNIQUE INDEX IF NOT EXISTS quarantine_entry ON quarantine (origin, body);
    UPDATE meta SET value = 2 WHERE name = 'schema_version';
";

/// A SQLite file holding the event log, the quarantine and the ingest counters.
#[derive(Debug)]
pub struct SqliteEventLog {
    path: String,
    connection: Mutex<Connection>,
}

fn backend(path: &str, error: rusqlite::Error) -> StoreError {
    StoreError::Backend {
        location: path.to_owned(),
        message: error.to_string(),
        source: Some(Box::new(error)),
    }
}

impl SqliteEventLog {
    /// Opens the file, creating it and its tables if needed.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        if path.as_os_str().is_empty() {
            // SQLite would make a private database in memory and forget it on exit.
            return Err(StoreError::Backend {
                location: "--store".into(),
                message: "a store needs a name: a SQLite file, or dynamodb:<prefix>".into(),
                source: None,
            });
        }
        let connection = Connection::open(path).map_err(|e| backend(&shown, e))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| backend(&shown, e))?;
        Self::init(shown, connection)
    }

    /// Opens an existing file to read it, writing nothing (a read-only file, or one on a
    /// read-only disk, can be read). A file of an older schema is read as it is.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(path, flags)
            .and_then(|connection| {
                connection.busy_timeout(BUSY_TIMEOUT)?;
                // A WAL database can only be read alongside its shared-memory file; where that
                // cannot be made (a read-only directory), read the file as it stands.
                connection.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
                Ok(connection)
            })
            .or_else(|_| {
                let uri = format!("file:{}?immutable=1", path.display());
                Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
            })
            .map_err(|e| backend(&shown, e))?;
        let version = schema_version(&connection).map_err(|e| backend(&shown, e))?;
        match version {
            Some(version) if version > SCHEMA_VERSION => Err(newer_schema(shown, version)),
            Some(_) => Ok(Self {
                path: shown,
                connection: Mutex::new(connection),
            }),
            None => Err(StoreError::Backend {
                location: shown,
                message: "not a batchguard store (no schema version)".into(),
                source: None,
            }),
        }
    }

    /// A private database in memory (tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let connection = Connection::open_in_memory().map_err(|e| backend(":memory:", e))?;
        Self::init(":memory:".into(), connection)
    }

    fn init(path: String, mut connection: Connection) -> Result<Self, StoreError> {
        // WAL keeps readers and the writer apart; NORMAL sync is durable across application
        // crashes, which is what a local replay store needs.
        use_write_ahead_log(&connection).map_err(|e| backend(&path, e))?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| backend(&path, e))?;
        // One writer at a time makes the tables and settles the schema version (two first
        // `ingest`s at once): an immediate transaction takes the write lock first, waiting
        // on the busy timeout, instead of reading and then finding another writer ahead.
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| backend(&path, e))?;
        transaction
            .execute_batch(SCHEMA)
            .map_err(|e| backend(&path, e))?;
        let version = schema_version(&transaction).map_err(|e| backend(&path, e))?;
        match version {
            None => transaction
                .execute(
                    "INSERT INTO meta (name, value) VALUES ('schema_version', 1)",
                    [],
                )
                .and_then(|_| transaction.execute_batch(MIGRATE_1_TO_2))
                .map_err(|e| backend(&path, e))?,
            Some(1) => transaction
                .execute_batch(MIGRATE_1_TO_2)
                .map_err(|e| backend(&path, e))?,
            Some(SCHEMA_VERSION) => {}
            Some(other) => return Err(newer_schema(path, other)),
        }
        transaction.commit().map_err(|e| backend(&path, e))?;
        Ok(Self {
            path,
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // SQLite keeps its own consistency; a poisoned guard only means another thread
        // panicked mid-call, and the transaction it held was rolled back.
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything in the quarantine, oldest first.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare("SELECT origin, reason, body FROM quarantine ORDER BY id")
            .map_err(|e| backend(&self.path, e))?;
        let rows = statement
            .query_map([], |row| {
                Ok(Quarantined {
                    origin: row.get(0)?,
                    reason: row.get(1)?,
                    body: row.get(2)?,
                })
            })
            .map_err(|e| backend(&self.path, e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| backend(&self.path, e))
    }
}

/// Puts the file in WAL mode. Turning a new file to WAL needs it to itself, and SQLite
/// answers "database is locked" at once, without waiting on the busy timeout, while another
/// connection holds it (two `ingest`s making one new store: CI saw it). So the change is
/// retried until [`BUSY_TIMEOUT`]; a file already in WAL mode is left as it is.
fn use_write_ahead_log(connection: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        let mode = connection
            .query_row("PRAGMA journal_mode", [], |row| row.get::<_, String>(0))
            .and_then(|mode| {
                if mode.eq_ignore_ascii_case("wal") {
                    Ok(mode)
                } else {
                    connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                }
            });
        match mode {
            Ok(_) => return Ok(()),
            Err(error) if is_busy(&error) && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(error) => return Err(error),
        }
    }
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn schema_version(connection: &Connection) -> rusqlite::Result<Option<i64>> {
    connection
        .query_row(
            "SELECT value FROM meta WHERE name = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()
        .or_else(|error| match error {
            // No `meta` table: not a store of ours (or an empty file).
            rusqlite::Error::SqliteFailure(_, Some(ref message))
                if message.contains("no such table") =>
            {
                Ok(None)
            }
            other => Err(other),
        })
}

fn newer_schema(path: String, version: i64) -> StoreError {
    StoreError::Backend {
        location: path,
        message: format!(
            "schema version {version} is newer than this batchguard ({SCHEMA_VERSION}): use a newer batchguard"
        ),
        source: None,
    }
}

impl EventLog for SqliteEventLog {
    async fn append(&self, records: &[Record]) -> Result<Appended, StoreError> {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| backend(&self.path, e))?;
        let mut appended = Appended::default();
        {
            let mut insert = transaction
                .prepare_cached("INSERT OR IGNORE INTO facts (key, body) VALUES (?1, ?2)")
                .map_err(|e| backend(&self.path, e))?;
            for record in records {
                let body =
                    serde_json::to_string(&record.fact).map_err(|e| StoreError::Corrupt {
                        key: record.key.clone(),
                        message: e.to_string(),
                    })?;
                let changed = insert
                    .execute(params![record.key, body])
                    .map_err(|e| backend(&self.path, e))?;
                if changed == 0 {
                    appended.duplicates += 1;
                } else {
                    appended.new += 1;
                }
            }
        }
        transaction.commit().map_err(|e| backend(&self.path, e))?;
        Ok(appended)
    }

    async fn read(&self, after: Option<&Cursor>, limit: usize) -> Result<Page, StoreError> {
        let after_seq: i64 = match after {
            None => 0,
            Some(cursor) => cursor.0.parse().map_err(|_| StoreError::Backend {
                location: self.path.clone(),
                message: format!("cursor {:?} is not a sequence number", cursor.0),
                source: None,
            })?,
        };
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached("SELECT seq, key, body FROM facts WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(|e| backend(&self.path, e))?;
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = statement
            .query(params![after_seq, limit_sql])
            .map_err(|e| backend(&self.path, e))?;
        let mut records = Vec::with_capacity(limit.min(4096));
        let mut last_seq = after_seq;
        while let Some(row) = rows.next().map_err(|e| backend(&self.path, e))? {
            let seq: i64 = row.get(0).map_err(|e| backend(&self.path, e))?;
            let key: String = row.get(1).map_err(|e| backend(&self.path, e))?;
            let body: String = row.get(2).map_err(|e| backend(&self.path, e))?;
            let fact: Fact = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                key: key.clone(),
                message: e.to_string(),
            })?;
            records.push(Record { key, fact });
            last_seq = seq;
        }
        let next = (records.len() == limit && limit > 0).then(|| Cursor(last_seq.to_string()));
        Ok(Page { records, next })
    }
}

impl Quarantine for SqliteEventLog {
    async fn quarantine(&self, events: &[Quarantined]) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| backend(&self.path, e))?;
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO quarantine (origin, reason, body) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (origin, body) DO UPDATE SET reason = excluded.reason",
                )
                .map_err(|e| backend(&self.path, e))?;
            for event in events {
                insert
                    .execute(params![event.origin, event.reason, event.body])
                    .map_err(|e| backend(&self.path, e))?;
            }
        }
        transaction.commit().map_err(|e| backend(&self.path, e))
    }

    async fn list_quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        self.quarantined()
    }

    async fn release(&self, event: &Quarantined) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "DELETE FROM quarantine WHERE id = (SELECT id FROM quarantine \
                 WHERE origin = ?1 AND reason = ?2 AND body = ?3 ORDER BY id LIMIT 1)",
                rusqlite::params![event.origin, event.reason, event.body],
            )
            .map_err(|e| backend(&self.path, e))?;
        Ok(())
    }
}

const COUNT_NAMES: [&str; 4] = ["read", "duplicates", "skipped", "rejected"];

impl IngestLedger for SqliteEventLog {
    async fn add_counts(&self, counts: IngestCounts) -> Result<(), StoreError> {
        let mut connection = self.lock();
        // The four counters move together or not at all.
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| backend(&self.path, e))?;
        let values = [
            counts.read,
            counts.duplicates,
            counts.skipped,
            counts.rejected,
        ];
        for (name, value) in COUNT_NAMES.iter().zip(values) {
            transaction
                .execute(
                    "INSERT INTO meta (name, value) VALUES (?1, ?2)
                     ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    params![
                        format!("count_{name}"),
                        i64::try_from(value).unwrap_or(i64::MAX)
                    ],
                )
                .map_err(|e| backend(&self.path, e))?;
        }
        transaction.commit().map_err(|e| backend(&self.path, e))
    }

    async fn counts(&self) -> Result<IngestCounts, StoreError> {
        let connection = self.lock();
        let mut values = [0_u64; 4];
        for (slot, name) in values.iter_mut().zip(COUNT_NAMES) {
            let value: Option<i64> = connection
                .query_row(
                    "SELECT value FROM meta WHERE name = ?1",
                    [format!("count_{name}")],
                    |row| row.get(0),
                )
                .optional()
                .map_err(|e| backend(&self.path, e))?;
            *slot = value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
        }
        Ok(IngestCounts {
            read: values[0],
            duplicates: values[1],
            skipped: values[2],
            rejected: values[3],
        })
    }
}

impl crate::ports::AuditTrail for SqliteEventLog {
    async fn audit_entries(
        &self,
        period_start: i64,
    ) -> Result<Vec<crate::core::facts::EnforcementRecorded>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached("SELECT key, body FROM facts WHERE body LIKE '%\"EnforcementRecorded.v1\"%' ORDER BY seq")
            .map_err(|e| backend(&self.path, e))?;
        let mut rows = statement.query([]).map_err(|e| backend(&self.path, e))?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next().map_err(|e| backend(&self.path, e))? {
            let key: String = row.get(0).map_err(|e| backend(&self.path, e))?;
            let body: String = row.get(1).map_err(|e| backend(&self.path, e))?;
            let fact: Fact = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                key,
                message: e.to_string(),
            })?;
            if let crate::core::facts::FactBody::Enforcement(entry) = fact.body
                && entry.period_start == period_start
            {
                entries.push(entry);
            }
        }
        Ok(entries)
    }
}

impl SqliteEventLog {
    /// Whether the file has the `budgets` table (a file from before it has none).
    fn has_budgets_table(&self, connection: &rusqlite::Connection) -> Result<bool, StoreError> {
        Ok(connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'budgets'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map_err(|e| backend(&self.path, e))?
            > 0)
    }
}

/// The budgets file applied to this store: one row (`budgets`, id 1) holding the book as JSON
/// and its version. A file from before the table has none (it is made at the next writable
/// open).
impl crate::ports::BudgetStore for SqliteEventLog {
    async fn budgets(&self) -> Result<(u64, Option<crate::core::budgets::BudgetBook>), StoreError> {
        let connection = self.lock();
        if !self.has_budgets_table(&connection)? {
            return Ok((0, None));
        }
        let row: Option<(i64, String)> = connection
            .query_row(
                "SELECT version, book FROM budgets WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| backend(&self.path, e))?;
        match row {
            None => Ok((0, None)),
            Some((version, text)) => {
                let book =
                    crate::ports::budgets_from_json(&format!("{}: budgets", self.path), &text)?;
                Ok((u64::try_from(version).unwrap_or(0), Some(book)))
            }
        }
    }

    async fn budgets_version(&self) -> Result<u64, StoreError> {
        let connection = self.lock();
        if !self.has_budgets_table(&connection)? {
            return Ok(0);
        }
        let version: Option<i64> = connection
            .query_row("SELECT version FROM budgets WHERE id = 1", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| backend(&self.path, e))?;
        Ok(version.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
    }

    async fn replace_budgets(
        &self,
        book: &crate::core::budgets::BudgetBook,
        expected: u64,
    ) -> Result<bool, StoreError> {
        let text = crate::ports::budgets_to_json(book)?;
        let next = i64::try_from(expected.saturating_add(1)).map_err(|_| StoreError::Corrupt {
            key: format!("{}: budgets", self.path),
            message: format!("version {expected} out of range"),
        })?;
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| backend(&self.path, e))?;
        let stored: i64 = transaction
            .query_row("SELECT version FROM budgets WHERE id = 1", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| backend(&self.path, e))?
            .unwrap_or(0);
        if u64::try_from(stored).ok() != Some(expected) {
            return Ok(false);
        }
        transaction
            .execute(
                "INSERT OR REPLACE INTO budgets (id, version, book) VALUES (1, ?1, ?2)",
                params![next, text],
            )
            .map_err(|e| backend(&self.path, e))?;
        transaction.commit().map_err(|e| backend(&self.path, e))?;
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// Several writers making one new store at once, as several `batchguard ingest`s do: each
    /// opens it (creating the file, turning it to WAL, making the tables) and writes to it.
    /// SQLite answers the journal-mode change with "database is locked" without waiting on
    /// the busy timeout; no such answer may reach the user, and every write must land.
    #[test]
    fn writers_opening_one_new_store_at_once_all_land() {
        const WRITERS: usize = 6;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let directory = tempfile::tempdir().unwrap();
        for round in 0..40 {
            let path = directory.path().join(format!("round-{round}.db"));
            let barrier = std::sync::Barrier::new(WRITERS);
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..WRITERS)
                    .map(|writer| {
                        let (path, barrier) = (&path, &barrier);
                        scope.spawn(move || -> Result<(), StoreError> {
                            barrier.wait();
                            let log = SqliteEventLog::open(path)?;
                            let runtime = tokio::runtime::Builder::new_current_thread()
                                .build()
                                .unwrap();
                            runtime.block_on(async {
                                log.quarantine(&[Quarantined {
                                    origin: format!("writer {writer}"),
                                    reason: "test".into(),
                                    body: "{}".into(),
                                }])
                                .await?;
                                log.add_counts(IngestCounts {
                                    read: 1,
                                    ..IngestCounts::default()
                                })
                                .await
                            })
                        })
                    })
                    .collect();
                for handle in handles {
                    if let Err(error) = handle.join().unwrap() {
                        panic!("round {round}: {error}");
                    }
                }
            });
            let log = SqliteEventLog::open_read_only(&path).unwrap();
            let counts = runtime.block_on(log.counts()).unwrap();
            assert_eq!(counts.read, WRITERS as u64, "round {round}");
            assert_eq!(log.quarantined().unwrap().len(), WRITERS, "round {round}");
        }
    }
}
