//! Fault injection against the emulator: collectors talk to DynamoDB through
//! `scripts/fault-proxy.py`, which fails a share of the requests (throttling and 5xx, some of
//! them after the emulator has already carried the request out) and, mid-stream, drops every
//! connection for a few seconds as if the emulator were restarting. After the SDK's retries —
//! and Lambda's, emulated by collecting a failed event again — the event log and every scope's
//! projected spend must equal the fault-free local replay: nothing lost, nothing doubled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use batchguard_tests::{emulator_config, emulator_event_log};
use shared::adapters::dynamodb::DynamoEventLog;
use shared::adapters::dynamodb::DynamoProjector;
use shared::app::collector::{Collected, Collector};
use shared::core::budget::BudgetPeriod;
use shared::core::facts::Millis;
use shared::core::prices::PriceTable;
use shared::events::{Parsed, parse_event};
use shared::ports::EventLog;

/// Kills the proxy when the test ends, however it ends.
struct Proxy(Child, u16);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_proxy(target: &str, extra: &[&str]) -> Proxy {
    let script = batchguard_tests::cfn::root().join("scripts/fault-proxy.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["--target", target])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs scripts/fault-proxy.py");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the proxy prints its port");
    Proxy(child, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_5xx_lost_responses_and_an_outage_lose_and_double_nothing() {
    // GIVEN a workload with tasks still running at the end, every event delivered twice
    let (config, workload) = batchguard_tests::workload_ending_with_running_tasks(77_001, 8);
    let delivered = shared::analysis::synth::shuffle_with_duplicates(&workload.events, 100, 77_002);
    let period = BudgetPeriod::Month;
    let direct = emulator_event_log("faults").await;

    // and collectors whose DynamoDB calls go through the fault proxy: 10 % of requests fail,
    // and after 300 requests every connection is dropped for 3 s
    let proxy = start_proxy(
        &batchguard_tests::emulator_endpoint(),
        &[
            "--fail-percent",
            "10",
            "--outage-after",
            "300",
            "--outage-seconds",
            "3",
            "--seed",
            "7",
        ],
    );
    let faulty_config = emulator_config()
        .await
        .to_builder()
        .endpoint_url(format!("http://127.0.0.1:{}", proxy.1))
        .build();
    let faulty = DynamoEventLog::new(
        shared::adapters::dynamodb::client(&faulty_config),
        direct.tables().clone(),
    );
    let projector = DynamoProjector::new(faulty.clone(), PriceTable::builtin(), period);
    let collector = Arc::new(Collector::new(faulty, projector));

    // WHEN two collectors take the events, an event whose collection fails after the SDK's
    // retries being collected again (as Lambda retries an invocation)
    let mut workers = tokio::task::JoinSet::new();
    for chunk in delivered.chunks(delivered.len().div_ceil(2)) {
        let collector = Arc::clone(&collector);
        let chunk = chunk.to_vec();
        workers.spawn(async move {
            let mut redelivered = 0;
            for (i, event) in chunk.iter().enumerate() {
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    match collector
                        .collect(event.as_bytes(), &format!("fault:{i}"))
                        .await
                    {
                        Ok(Collected::Quarantined { reason }) => panic!("valid event: {reason}"),
                        Ok(_) => break,
                        Err(error) if attempts < 5 => {
                            redelivered += 1;
                            eprintln!("collect failed after the SDK's retries ({error}); again");
                        }
                        Err(error) => panic!("still failing after 5 deliveries: {error}"),
                    }
                }
            }
            redelivered
        });
    }
    let mut redelivered = 0;
    while let Some(count) = workers.join_next().await {
        redelivered += count.unwrap();
    }
    let stats: serde_json::Value = {
        let url = format!("http://127.0.0.1:{}/__fault-proxy/stats", proxy.1);
        let output = Command::new("curl").args(["-sf", &url]).output().unwrap();
        serde_json::from_slice(&output.stdout).expect("the proxy's stats")
    };
    drop(proxy);
    eprintln!("fault proxy: {stats}");
    for (kind, count) in stats["by_kind"].as_object().unwrap() {
        assert!(
            count.as_u64().unwrap() > 0,
            "no fault of kind {kind} was injected"
        );
    }
    assert!(
        stats["dropped"].as_u64().unwrap() > 0,
        "the outage dropped no connection"
    );
    eprintln!(
        "{} events collected through the fault proxy ({redelivered} collected again)",
        delivered.len()
    );

    // THEN the log holds each distinct fact once
    let mut distinct = BTreeSet::new();
    for event in &workload.events {
        if let Parsed::Fact(fact) = parse_event(event.as_bytes()).unwrap() {
            distinct.insert(shared::ports::Record::new(fact).key);
        }
    }
    let mut stored = Vec::new();
    let mut cursor = None;
    loop {
        let page = direct.read(cursor.as_ref(), 500).await.unwrap();
        stored.extend(page.records.into_iter().map(|r| r.key));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let stored_set: BTreeSet<_> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), stored_set.len(), "no fact is stored twice");
    assert_eq!(stored_set, distinct, "no fact is lost");

    // and every scope's projected spend is the fault-free replay's
    let local = batchguard_tests::replay_ledger(&workload.events, period);
    let at = Millis(config.end_ms).ceil_seconds();
    let reader = DynamoProjector::new(direct, PriceTable::builtin(), period);
    batchguard_tests::assert_projected_spend_is(&reader, &local.all_scope_spend(at), at, period)
        .await;
}
