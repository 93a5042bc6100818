//! Re-driving the quarantine: an event an older version could not read (quarantined whole) is
//! read now, stored, projected and taken out; an event still unreadable stays, once. On the
//! SQLite store and on DynamoDB (the emulator).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use shared::adapters::dynamodb::DynamoProjector;
use shared::adapters::memory::NoProjection;
use shared::adapters::sqlite::SqliteEventLog;
use shared::app::collector::Collector;
use shared::core::budget::BudgetPeriod;
use shared::core::prices::PriceTable;
use shared::ports::Projector;
use shared::ports::{EventLog, Quarantine, Quarantined};

fn readable_now() -> Quarantined {
    let body = std::fs::read_to_string(
        batchguard_tests::cfn::root().join("tests/fixtures/events/rtm_batch-event-SUCCEEDED.json"),
    )
    .unwrap();
    Quarantined {
        origin: "lambda:old-version".into(),
        reason: "missing field `jobId` (a parser bug since fixed)".into(),
        body,
    }
}

fn still_broken() -> Quarantined {
    Quarantined {
        origin: "lambda:broken".into(),
        reason: "expected value".into(),
        body: r#"{"detail-type": "Batch Job State Change", "source": "aws.batch", "detail": {"jobId": 7"#
            .into(),
    }
}

async fn redrive_twice<L, P>(collector: &Collector<L, P>)
where
    L: EventLog + Quarantine + Sync,
    P: Projector + Sync,
{
    collector
        .log()
        .quarantine(&[readable_now(), still_broken()])
        .await
        .unwrap();
    let first = collector.redrive().await.unwrap();
    assert_eq!(first.stored, 1);
    assert_eq!(first.still_quarantined.len(), 1);
    assert_eq!(first.still_quarantined[0].origin, "lambda:broken");
    let left = collector.log().list_quarantined().await.unwrap();
    assert_eq!(
        left,
        [still_broken()],
        "the re-driven event is out, the broken one stays once"
    );
    let page = collector.log().read(None, 100).await.unwrap();
    assert_eq!(page.records.len(), 1, "the re-driven event is in the log");

    let second = collector.redrive().await.unwrap();
    assert_eq!(second.stored, 0);
    assert_eq!(second.still_quarantined.len(), 1);
    assert_eq!(collector.log().list_quarantined().await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_quarantine_is_re_driven() {
    let directory = tempfile::tempdir().unwrap();
    let log = SqliteEventLog::open(&directory.path().join("store.sqlite")).unwrap();
    redrive_twice(&Collector::new(log, NoProjection)).await;
}

#[tokio::test]
async fn dynamodb_quarantine_is_re_driven_and_projected() {
    let log = batchguard_tests::emulator_event_log("redrive").await;
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), BudgetPeriod::Month);
    redrive_twice(&Collector::new(log, projector.clone())).await;
    // The job's projection exists: its queue is a registered scope now.
    let scopes = projector.scopes().await.unwrap();
    assert!(
        scopes
            .iter()
            .any(|s| matches!(s, shared::core::scope::Scope::Queue(q) if q.contains("batch-job-queue-dev"))),
        "{scopes:?}"
    );
}
