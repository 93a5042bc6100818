//! The DynamoDB event log against a local AWS API emulator (moto_server, started by
//! `scripts/test.sh`), through the real `aws-sdk-dynamodb` client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use aws_sdk_dynamodb::types::TimeToLiveStatus;
use batchguard_tests::{emulator_config, emulator_event_log};
use shared::adapters::dynamodb::{DynamoEventLog, TTL_ATTRIBUTE, partition_key};
use shared::analysis::synth::{self, WorkloadConfig};
use shared::core::budget::BudgetPeriod;
use shared::core::facts::{Fact, Millis};
use shared::core::ledger::Ledger;
use shared::core::prices::PriceTable;
use shared::events::{Parsed, parse_event};
use shared::ports::{EventLog, IngestCounts, IngestLedger, Quarantine, Quarantined, Record};

fn facts_of(events: &[String]) -> Vec<Fact> {
    events
        .iter()
        .filter_map(|event| match parse_event(event.as_bytes()).unwrap() {
            Parsed::Fact(fact) => Some(fact),
            Parsed::Skipped(_) => None,
        })
        .collect()
}

async fn load_all(log: &DynamoEventLog, page_size: usize) -> Vec<Record> {
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let page = log.read(cursor.as_ref(), page_size).await.unwrap();
        records.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return records,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_delivering_every_event_twice_give_the_replay_totals() {
    // GIVEN a workload this test has never seen, every event delivered twice, shuffled, and
    // split between four concurrent writers
    let base = WorkloadConfig::sample_day();
    let config = WorkloadConfig {
        seed: 777,
        jobs: 60,
        end_ms: base.start_ms + 12 * 3_600_000,
        ..base
    };
    let workload = synth::generate(&config);
    let unique = facts_of(&workload.events);
    let delivered = synth::shuffle_with_duplicates(&workload.events, 100, 778);
    let records: Vec<Record> = facts_of(&delivered).into_iter().map(Record::new).collect();
    assert_eq!(records.len(), 2 * unique.len());
    let log = Arc::new(emulator_event_log("concurrent").await);

    // WHEN the writers append at once
    let mut writers = tokio::task::JoinSet::new();
    for chunk in records.chunks(records.len().div_ceil(4)) {
        let log = Arc::clone(&log);
        let chunk = chunk.to_vec();
        writers.spawn(async move { log.append(&chunk).await.unwrap() });
    }
    let mut new = 0;
    let mut duplicates = 0;
    while let Some(appended) = writers.join_next().await {
        let appended = appended.unwrap();
        new += appended.new;
        duplicates += appended.duplicates;
    }

    // THEN each fact is stored once, and the log folds to exactly the local replay's figures
    assert_eq!(new as usize, unique.len());
    assert_eq!(duplicates as usize, unique.len());
    let stored = load_all(&log, 100).await;
    assert_eq!(stored.len(), unique.len());
    let mut from_log = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    for record in &stored {
        from_log.apply(&record.fact);
    }
    let mut local = Ledger::new(PriceTable::builtin(), BudgetPeriod::Month);
    for fact in &unique {
        local.apply(fact);
    }
    let at = Millis(config.end_ms).ceil_seconds();
    assert_eq!(from_log.walk(at), local.walk(at));
    assert_eq!(from_log.all_scope_spend(at), local.all_scope_spend(at));
}

#[tokio::test]
async fn a_redelivered_fact_is_a_no_op_and_one_jobs_history_is_one_query() {
    let workload = synth::generate(&WorkloadConfig {
        jobs: 3,
        ..WorkloadConfig::sample_day()
    });
    let facts = facts_of(&workload.events);
    let log = emulator_event_log("redelivery").await;
    let records: Vec<Record> = facts.iter().cloned().map(Record::new).collect();
    let first = log.append(&records).await.unwrap();
    let again = log.append(&records).await.unwrap();
    assert_eq!((first.new as usize, first.duplicates), (facts.len(), 0));
    assert_eq!((again.new, again.duplicates as usize), (0, facts.len()));

    let job = facts
        .iter()
        .find(|f| partition_key(f).starts_with("JOB#"))
        .unwrap();
    let partition = partition_key(job);
    let history = log.entity_history(&partition).await.unwrap();
    let expected = facts
        .iter()
        .filter(|f| partition_key(f) == partition)
        .count();
    assert_eq!(history.len(), expected);
    assert!(history.iter().all(|r| partition_key(&r.fact) == partition));
}

#[tokio::test]
async fn quarantine_keeps_reason_and_body_and_counters_accumulate() {
    let log = emulator_event_log("quarantine").await;
    let bad = Quarantined {
        origin: "events.jsonl:7".into(),
        reason: "Batch Job State Change: missing field `jobId`".into(),
        body: r#"{"detail-type":"Batch Job State Change"}"#.into(),
    };
    log.quarantine(std::slice::from_ref(&bad)).await.unwrap();
    log.quarantine(std::slice::from_ref(&bad)).await.unwrap();
    assert_eq!(
        log.quarantined().await.unwrap(),
        vec![bad],
        "the same event quarantined twice is kept once"
    );

    let counts = IngestCounts {
        read: 10,
        duplicates: 2,
        skipped: 1,
        rejected: 1,
    };
    log.add_counts(counts).await.unwrap();
    log.add_counts(counts).await.unwrap();
    assert_eq!(
        log.counts().await.unwrap(),
        IngestCounts {
            read: 20,
            duplicates: 4,
            skipped: 2,
            rejected: 2
        }
    );
}

#[tokio::test]
async fn tables_are_created_once_with_ttl_on_the_events_table() {
    let log = emulator_event_log("tables").await;
    log.create_tables()
        .await
        .expect("creating existing tables again is a no-op");
    let client = aws_sdk_dynamodb::Client::new(&emulator_config().await);
    let ttl = client
        .describe_time_to_live()
        .table_name(&log.tables().events)
        .send()
        .await
        .unwrap();
    let description = ttl.time_to_live_description().unwrap();
    assert_eq!(description.attribute_name(), Some(TTL_ATTRIBUTE));
    assert_eq!(
        description.time_to_live_status(),
        Some(&TimeToLiveStatus::Enabled)
    );
}

#[tokio::test]
async fn facts_carry_an_expiry_after_the_retention() {
    let workload = synth::generate(&WorkloadConfig {
        jobs: 1,
        ..WorkloadConfig::sample_day()
    });
    let fact = facts_of(&workload.events).remove(0);
    let log = emulator_event_log("retention")
        .await
        .with_retention(std::time::Duration::from_secs(7 * 86_400));
    log.append(&[Record::new(fact.clone())]).await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&emulator_config().await);
    let item = client
        .get_item()
        .table_name(&log.tables().events)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(partition_key(&fact)),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(Record::new(fact.clone()).key),
        )
        .send()
        .await
        .unwrap();
    let expires: i64 = item.item().unwrap()[TTL_ATTRIBUTE]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        expires,
        fact.latest_instant().unwrap().floor_seconds() + 7 * 86_400
    );
}
