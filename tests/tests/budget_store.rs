//! The budgets a store keeps (issue 17): the same contract on SQLite and, through the real
//! SDK, on DynamoDB against the local emulator. A book is replaced whole, only over the
//! version it was read at, and read back re-validated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batchguard_tests::emulator_event_log;
use shared::adapters::sqlite::SqliteEventLog;
use shared::core::budgets::BudgetBook;
use shared::ports::{BudgetStore, StoreError};

fn book(amount: &str, names: &[&str]) -> BudgetBook {
    let text: String = names
        .iter()
        .map(|name| {
            format!(
                "[[budget]]\nname = \"{name}\"\namount_usd = \"{amount}\"\nperiod = \"month\"\n\
                 scope = {{ tags = [\"team={name}\"] }}\n\
                 thresholds = [{{ at_percent = \"90\", action = \"notify\" }}, {{ at_percent = \"100\", action = \"drain\" }}]\n"
            )
        })
        .collect();
    BudgetBook::parse(&text).unwrap()
}

/// GIVEN an empty store WHEN books are applied THEN each is read back as written, with its
/// version; an apply over a version another apply moved past writes nothing.
async fn the_contract(store: &impl BudgetStore) {
    assert_eq!(store.budgets().await.unwrap(), (0, None));
    let first = book("100", &["a", "b"]);
    assert!(store.replace_budgets(&first, 0).await.unwrap());
    assert_eq!(store.budgets().await.unwrap(), (1, Some(first.clone())));
    // A second apply that read version 0 (before the first landed) is refused.
    let late = book("200", &["c"]);
    assert!(!store.replace_budgets(&late, 0).await.unwrap());
    assert_eq!(store.budgets().await.unwrap(), (1, Some(first)));
    assert!(store.replace_budgets(&late, 1).await.unwrap());
    assert_eq!(store.budgets().await.unwrap(), (2, Some(late.clone())));
    assert!(
        !store
            .replace_budgets(&book("300", &["d"]), 1)
            .await
            .unwrap()
    );
    assert_eq!(store.budgets().await.unwrap(), (2, Some(late)));
}

#[tokio::test]
async fn a_sqlite_store_keeps_one_book_replaced_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteEventLog::open(&dir.path().join("store.db")).unwrap();
    the_contract(&store).await;
}

#[tokio::test]
async fn a_dynamodb_store_keeps_one_book_replaced_whole() {
    let log = emulator_event_log("budgets").await;
    the_contract(&log).await;
}

/// GIVEN a stored book edited by hand into one that does not validate (a threshold above the
/// limit) WHEN it is read THEN the read fails as corrupt, naming the budget and field; its
/// version alone can still be read, and an apply over it replaces it.
#[tokio::test]
async fn a_stored_book_that_no_longer_validates_is_named_not_used() {
    let log = emulator_event_log("budgets-corrupt").await;
    let good = book("100", &["a"]);
    assert!(log.replace_budgets(&good, 0).await.unwrap());
    let client = aws_sdk_dynamodb::Client::new(&batchguard_tests::emulator_config().await);
    let stored = shared::ports::budgets_to_json(&good).unwrap().replace(
        "\"100\",\"action\":\"drain\"",
        "\"5000\",\"action\":\"drain\"",
    );
    use aws_sdk_dynamodb::types::AttributeValue;
    client
        .put_item()
        .table_name(&log.tables().state)
        .item("pk", AttributeValue::S("BUDGETS".into()))
        .item("sk", AttributeValue::S("BOOK".into()))
        .item("version", AttributeValue::N("1".into()))
        .item("book", AttributeValue::S(stored))
        .send()
        .await
        .unwrap();
    match log.budgets().await {
        Err(StoreError::Corrupt { key, message }) => {
            assert!(key.contains("BUDGETS/BOOK"), "{key}");
            assert!(
                message.contains("budget a: thresholds[1].at_percent"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Its version is still read, so an apply replaces it whole over that version.
    assert_eq!(log.budgets_version().await.unwrap(), 1);
    assert!(!log.replace_budgets(&good, 0).await.unwrap());
    assert!(log.replace_budgets(&good, 1).await.unwrap());
    assert_eq!(log.budgets().await.unwrap(), (2, Some(good)));
}

#[tokio::test]
async fn a_memory_store_keeps_one_book_replaced_whole() {
    the_contract(&shared::adapters::memory::MemoryEventLog::new()).await;
}

/// The enforcer's gates for the admitter (`core::arrival`), on DynamoDB through the real SDK
/// and in memory: each kind is one record, replaced whole by the next run that writes it, and
/// both are read back as written in one read.
async fn the_gates_contract(store: &impl shared::ports::AdmissionGates) {
    use rust_decimal::Decimal;
    use shared::core::arrival::{Draining, GateKind, drain_gate, safe_gate};
    use shared::core::budgets::Action;
    let at = 1_793_577_600_000;
    assert!(store.gates().await.unwrap().is_empty());
    let draining = Draining {
        action: Action::CancelQueued,
        since_ms: at - 60_000,
        dry_run: false,
        reason: "budget genomics used 120 %".to_owned(),
    };
    let drain = drain_gate(at, [("genomics".to_owned(), draining)]);
    let safe = safe_gate(
        at,
        Some(at + 5),
        [("imaging".to_owned(), Decimal::new(35_712_345, 8))].into(),
    );
    store.put_gate(GateKind::Drain, &drain).await.unwrap();
    store.put_gate(GateKind::Safe, &safe).await.unwrap();
    let read = store.gates().await.unwrap();
    assert_eq!(read[&GateKind::Drain], drain);
    assert_eq!(read[&GateKind::Safe], safe);
    assert_eq!(read[&GateKind::Safe].listed_at_ms, Some(at + 5));
    // The next run's gate replaces the last one whole: a budget no longer draining is gone.
    let cleared = drain_gate(at + 60_000, []);
    store.put_gate(GateKind::Drain, &cleared).await.unwrap();
    let read = store.gates().await.unwrap();
    assert_eq!(read[&GateKind::Drain], cleared);
    assert_eq!(read[&GateKind::Safe], safe);
}

#[tokio::test]
async fn the_enforcers_gates_are_kept_one_record_each_on_dynamodb_and_in_memory() {
    let log = emulator_event_log("gates").await;
    the_gates_contract(&log).await;
    the_gates_contract(&shared::adapters::memory::MemoryEventLog::new()).await;
    // A record that does not read as a gate is named, never acted on.
    use aws_sdk_dynamodb::types::AttributeValue;
    let client = aws_sdk_dynamodb::Client::new(&batchguard_tests::emulator_config().await);
    client
        .put_item()
        .table_name(&log.tables().state)
        .item("pk", AttributeValue::S("GATE".into()))
        .item("sk", AttributeValue::S("drain".into()))
        .item(
            "gate",
            AttributeValue::S("{\"written_at_ms\": \"soon\"}".into()),
        )
        .send()
        .await
        .unwrap();
    use shared::ports::AdmissionGates;
    match log.gates().await {
        Err(StoreError::Corrupt { key, .. }) => assert!(key.contains("GATE/drain"), "{key}"),
        other => panic!("{other:?}"),
    }
}
