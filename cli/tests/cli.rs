//! The `batchguard` binary end to end, on workloads it has never seen.
//!
//! These live in the CLI package (not `tests/`) because Cargo gives the path of a binary
//! (`CARGO_BIN_EXE_batchguard`) only to its own package's integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use batchguard_tests::{IndependentPrices, independent_bill};
use rust_decimal::Decimal;
use serde_json::Value;
use shared::analysis::synth::{self, WorkloadConfig};
use shared::core::facts::Millis;

fn batchguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_batchguard"))
        .args(args)
        .output()
        .expect("batchguard runs")
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn money(value: &Value) -> Decimal {
    value
        .as_str()
        .unwrap_or_else(|| panic!("money as a string, got {value}"))
        .parse()
        .unwrap()
}

const MALFORMED: [&str; 4] = [
    "this is not json",
    r#"{"version":"0","id":"trunc","detail-type":"Batch Job State Change","source":"aws.batch","detail":{"jobId":"#,
    r#"{"version":"0","id":"no-job","detail-type":"Batch Job State Change","source":"aws.batch","region":"us-east-1","detail":{"status":"RUNNING","jobQueue":"q"}}"#,
    r#"{"version":"0","id":"bad-cpu","detail-type":"ECS Task State Change","source":"aws.ecs","region":"us-east-1","detail":{"taskArn":"arn:aws:ecs:us-east-1:1:task/AWSBatch-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/x","clusterArn":"arn:aws:ecs:us-east-1:1:cluster/AWSBatch-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941","cpu":"lots","memory":"512"}}"#,
];

/// An unseen workload (not the sample's seed), delivered shuffled and partly twice, split
/// into a JSON Lines file and a JSON array file in a directory, with malformed lines mixed in.
struct Scenario {
    _directory: tempfile::TempDir,
    events_dir: PathBuf,
    end_ms: i64,
    delivered: usize,
    duplicates: usize,
    workload: synth::Workload,
}

fn scenario(seed: u64, jobs: usize) -> Scenario {
    let base = WorkloadConfig::sample_day();
    let config = WorkloadConfig {
        seed,
        jobs,
        end_ms: base.start_ms + 10 * 3_600_000,
        ..base
    };
    let workload = synth::generate(&config);
    let delivered = synth::shuffle_with_duplicates(&workload.events, 25, seed ^ 0xA5A5);
    // A redelivered event batchguard skips (an ECS task outside Batch) counts as skipped again,
    // not as a duplicate: only facts are deduplicated.
    let foreign = |event: &String| event.contains("cluster/web-frontend");
    let duplicates = delivered.iter().filter(|e| !foreign(e)).count()
        - workload.events.iter().filter(|e| !foreign(e)).count();
    let directory = tempfile::tempdir().unwrap();
    let events_dir = directory.path().join("events");
    std::fs::create_dir_all(events_dir.join("nested")).unwrap();
    let (first, second) = delivered.split_at(delivered.len() / 2);
    let mut lines: Vec<String> = first.to_vec();
    for (i, bad) in MALFORMED.iter().enumerate() {
        let at = (i * 97 + 3).min(lines.len());
        lines.insert(at, (*bad).to_owned());
    }
    std::fs::write(events_dir.join("part-1.jsonl"), lines.join("\n") + "\n").unwrap();
    let array: Vec<Value> = second
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    std::fs::write(
        events_dir.join("nested/part-2.json"),
        serde_json::to_string_pretty(&array).unwrap(),
    )
    .unwrap();
    std::fs::write(
        events_dir.join("notes.txt"),
        "not read: only .json/.jsonl/.ndjson in directories",
    )
    .unwrap();
    Scenario {
        _directory: directory,
        events_dir,
        end_ms: config.end_ms,
        delivered: delivered.len(),
        duplicates,
        workload,
    }
}

fn rfc3339(ms: i64) -> String {
    Millis(ms).to_datetime().unwrap().to_rfc3339()
}

#[test]
fn replay_matches_an_independent_fargate_bill_and_counts_malformed_lines() {
    let scenario = scenario(4242, 600);
    let at_ms = Millis(scenario.end_ms).ceil_seconds() * 1000;
    let output = batchguard(&[
        "replay",
        "--json",
        "--at",
        &rfc3339(at_ms),
        scenario.events_dir.to_str().unwrap(),
    ]);
    let report = stdout_json(&output);

    let expected = independent_bill(
        &scenario.workload.tasks,
        at_ms,
        &IndependentPrices::default(),
    );
    let reported: std::collections::HashMap<&str, Decimal> = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| (job["job_id"].as_str().unwrap(), money(&job["cost_usd"])))
        .collect();
    assert!(expected.len() > 400, "only {} jobs billed", expected.len());
    for (id, want) in &expected {
        let got = reported
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{id} is billed but not reported"));
        assert!(
            (got - want).abs() <= Decimal::new(1, 6),
            "{id}: reported {got}, bill {want}"
        );
    }
    for (id, got) in &reported {
        if !expected.contains_key(*id) {
            assert_eq!(*got, Decimal::ZERO, "{id} ran nothing billable yet");
        }
    }
    let bill: Decimal = expected.values().copied().sum();
    let spend = money(&report["spend_usd"]);
    assert!(
        (spend - bill).abs() <= Decimal::new(1, 6),
        "total {spend} vs {bill}"
    );
    let by_queue: Decimal = report["by_queue"]
        .as_object()
        .unwrap()
        .values()
        .map(money)
        .sum();
    assert!(
        (by_queue - spend).abs() <= Decimal::new(1, 8),
        "queues sum to the total"
    );

    let events = &report["events"];
    assert_eq!(events["rejected"], MALFORMED.len());
    assert_eq!(events["duplicates"], scenario.duplicates);
    let read = scenario.delivered + MALFORMED.len();
    assert_eq!(events["read"], read);
    assert!(
        events["skipped"].as_u64().unwrap() > 0,
        "non-Batch ECS tasks are skipped"
    );

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("rejected ").count(),
        MALFORMED.len(),
        "{stderr}"
    );
    assert!(stderr.contains("part-1.jsonl:4: not JSON"), "{stderr}");
    assert!(stderr.contains("missing field `jobId`"), "{stderr}");
    assert!(stderr.contains("field `detail.cpu` = \"lots\""), "{stderr}");
    for key in [
        "as_of",
        "by_compute_environment",
        "by_job_definition",
        "running_jobs",
        "burn_rate_usd_per_hour",
        "budget_usd",
        "budget_used_percent",
        "projected_exhaustion",
    ] {
        assert!(report.get(key).is_some(), "missing key {key}");
    }
}

#[test]
fn ingest_then_status_gives_the_replay_figures_and_a_second_ingest_stores_nothing() {
    let scenario = scenario(99, 600);
    let directory = tempfile::tempdir().unwrap();
    let store = directory.path().join("store.sqlite");
    let store = store.to_str().unwrap();
    let events = scenario.events_dir.to_str().unwrap();

    let first = stdout_json(&batchguard(&["ingest", "--json", "--store", store, events]));
    assert_eq!(first["events"]["rejected"], MALFORMED.len());
    let second = stdout_json(&batchguard(&["ingest", "--json", "--store", store, events]));
    assert_eq!(second["stored"], 0, "everything was a redelivery");

    let status = stdout_json(&batchguard(&[
        "status", "--json", "--budget", "150", "--store", store,
    ]));
    let replay = stdout_json(&batchguard(&[
        "replay", "--json", "--budget", "150", events,
    ]));
    for key in [
        "as_of",
        "spend_usd",
        "by_queue",
        "by_compute_environment",
        "by_job_definition",
        "by_tag",
        "jobs",
        "running_jobs",
        "burn_rate_usd_per_hour",
        "budget_used_percent",
        "projected_exhaustion",
        "outlook",
    ] {
        assert_eq!(
            status[key], replay[key],
            "{key} differs between status and replay"
        );
    }
    let counts = &status["events"];
    assert_eq!(
        counts["rejected"],
        2 * MALFORMED.len(),
        "counts add up over both ingests"
    );
    assert_eq!(
        counts["read"],
        2 * replay["events"]["read"].as_u64().unwrap()
    );
}

#[test]
fn a_budget_gives_percent_used_and_a_forecast() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-day.jsonl");
    let report = stdout_json(&batchguard(&[
        "replay",
        "--json",
        "--budget",
        "25",
        sample.to_str().unwrap(),
    ]));
    let spend = money(&report["period_spend_usd"]);
    let burn = money(&report["burn_rate_usd_per_hour"]);
    assert!(burn > Decimal::ZERO, "the sample ends with jobs running");
    assert_eq!(
        money(&report["budget_used_percent"]),
        (spend * Decimal::from(100) / Decimal::from(25)).round_dp(4)
    );
    assert_eq!(report["outlook"], "runs_out");
    let as_of = chrono::DateTime::parse_from_rfc3339(report["as_of"].as_str().unwrap()).unwrap();
    let runs_out =
        chrono::DateTime::parse_from_rfc3339(report["projected_exhaustion"].as_str().unwrap())
            .unwrap();
    let hours_left = (Decimal::from(25) - spend) / burn;
    let seconds = Decimal::from((runs_out - as_of).num_seconds());
    assert!(
        (seconds - hours_left * Decimal::from(3600)).abs() <= Decimal::ONE,
        "{seconds} s vs {hours_left} h"
    );
}

#[test]
fn the_human_report_has_the_queue_table_and_budget_line() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-day.jsonl");
    let output = batchguard(&["replay", "--budget", "25", sample.to_str().unwrap()]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "Spend by queue",
        "etl-spot",
        "genomics-high",
        "Burn rate",
        "runs out at",
        "Spend by compute environment",
        "fargate-spot-ce",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
    assert!(
        output.stderr.is_empty(),
        "no progress bar when stderr is not a terminal"
    );
}

#[test]
fn an_unreadable_path_is_an_error_with_a_non_zero_exit() {
    let output = batchguard(&["replay", "/no/such/events.jsonl"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/no/such/events.jsonl"), "{stderr}");
}

#[test]
fn a_price_file_overrides_the_built_in_prices_and_a_bad_one_is_named() {
    let directory = tempfile::tempdir().unwrap();
    let prices = directory.path().join("prices.toml");
    // Spot at exactly the on-demand price: spend must rise.
    std::fs::write(&prices, "spot_fraction_of_on_demand = \"1\"\n").unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-day.jsonl");
    let sample = sample.to_str().unwrap();
    let base = money(&stdout_json(&batchguard(&["replay", "--json", sample]))["spend_usd"]);
    let dearer = money(
        &stdout_json(&batchguard(&[
            "replay",
            "--json",
            "--prices",
            prices.to_str().unwrap(),
            sample,
        ]))["spend_usd"],
    );
    assert!(dearer > base, "{dearer} vs {base}");

    std::fs::write(&prices, "[[fargate]]\nregion = \"us-east-1\"\n").unwrap();
    let output = batchguard(&["replay", "--prices", prices.to_str().unwrap(), sample]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("prices.toml") && stderr.contains("missing field `architecture`"),
        "{stderr}"
    );
}

#[test]
fn the_dynamodb_store_gives_the_same_report_as_the_embedded_one() {
    // The emulator scripts/test.sh started; the child inherits AWS_ENDPOINT_URL.
    batchguard_tests::emulator_endpoint();
    let scenario = scenario(31337, 50);
    let events = scenario.events_dir.to_str().unwrap();
    let store = format!("dynamodb:{}", batchguard_tests::unique_prefix("cli"));

    let init = batchguard(&["init", "--store", &store]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let first = stdout_json(&batchguard(&[
        "ingest",
        "--json",
        "--retention-days",
        "400",
        "--store",
        &store,
        events,
    ]));
    // The same tables named in full, as a SAM stack's outputs give them.
    let prefix = store.trim_start_matches("dynamodb:");
    let named = format!("dynamodb:{prefix}-events,{prefix}-state");
    let second = stdout_json(&batchguard(&[
        "ingest", "--json", "--store", &named, events,
    ]));
    assert_eq!(second["stored"], 0, "a second ingest is all redeliveries");
    assert_eq!(first["events"]["rejected"], MALFORMED.len());

    let status = stdout_json(&batchguard(&[
        "status", "--json", "--budget", "150", "--store", &store,
    ]));
    let replay = stdout_json(&batchguard(&[
        "replay", "--json", "--budget", "150", events,
    ]));
    for key in [
        "as_of",
        "spend_usd",
        "by_queue",
        "by_compute_environment",
        "by_job_definition",
        "jobs",
        "running_jobs",
        "burn_rate_usd_per_hour",
        "budget_used_percent",
        "projected_exhaustion",
    ] {
        assert_eq!(
            status[key], replay[key],
            "{key} differs between DynamoDB status and replay"
        );
    }
    assert_eq!(status["events"]["rejected"], 2 * MALFORMED.len());

    // The backfill kept the projections current: the sums the ticker reads give the same spend.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let projected = runtime.block_on(async {
        use shared::adapters::dynamodb::DynamoProjector;
        use shared::adapters::dynamodb::{DynamoEventLog, TableNames};
        let config = batchguard_tests::emulator_config().await;
        let prefix = store.trim_start_matches("dynamodb:");
        let log = DynamoEventLog::new(
            aws_sdk_dynamodb::Client::new(&config),
            TableNames::from_prefix(prefix),
        );
        let projector = DynamoProjector::new(
            log,
            shared::core::prices::PriceTable::builtin(),
            shared::core::budget::BudgetPeriod::Month,
        );
        let at = chrono::DateTime::parse_from_rfc3339(replay["as_of"].as_str().unwrap())
            .unwrap()
            .timestamp();
        let recent: Vec<(i64, Decimal)> = projector
            .recent_starts(at)
            .await
            .unwrap()
            .into_iter()
            .filter(|(scope, _, _)| *scope == shared::core::scope::Scope::Total)
            .map(|(_, anchor, rate)| (anchor, rate))
            .collect();
        let totals = projector
            .scope_totals(&shared::core::scope::Scope::Total)
            .await
            .unwrap();
        totals
            .spend_at(at, shared::core::budget::BudgetPeriod::Month, recent)
            .spend_usd
    });
    assert_eq!(
        shared::analysis::report::money(projected),
        money(&replay["spend_usd"])
    );
}

#[test]
fn a_bad_store_name_is_refused_before_anything_runs() {
    let output = batchguard(&["status", "--store", "dynamodb:"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs a table prefix"));
    let output = batchguard(&["status", "--store", "dynamodb:bad name"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a DynamoDB table prefix"));
    let output = batchguard(&["status", "--store", "dynamodb:events,"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs a state table name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_runs_the_ladder_on_the_emulators_batch_dry_run_first() {
    use batchguard_tests::{emulator_config, emulator_queue, queue_state};
    let config = emulator_config().await;
    let batch = aws_sdk_batch::Client::new(&config);
    // The sample's queue, so the budget scope has spend ($7.40 of the day's $20.66).
    let queue = "etl-spot".to_owned();
    emulator_queue(&batch, &queue).await;
    let directory = tempfile::tempdir().unwrap();
    let store = directory.path().join("store.sqlite");
    let store = store.to_str().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-day.jsonl");
    let sample = sample.to_str().unwrap().to_owned();
    let run = |args: Vec<String>| {
        let output = Command::new(env!("CARGO_BIN_EXE_batchguard"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    run(vec![
        "ingest".into(),
        "--store".into(),
        store.into(),
        sample.clone(),
    ]);
    let as_of = stdout_json(&batchguard(&["status", "--json", "--store", store]))["as_of"]
        .as_str()
        .unwrap()
        .to_owned();
    let enforce = |extra: &[&str]| {
        let mut args: Vec<String> = [
            "enforce", "--json", "--store", store, "--budget", "5", "--queues", &queue, "--at",
            &as_of,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        serde_json::from_slice::<Value>(&run(args).stdout).unwrap()
    };

    // $7.40 spent on etl-spot against a $5 budget: stop. A dry run changes nothing on Batch.
    let dry = enforce(&["--dry-run"]);
    assert_eq!(dry["decision"]["level"], "stop");
    let actions = dry["report"]["actions"].as_array().unwrap();
    assert!(
        actions.iter().any(|a| a["action"] == "queue_disabled"
            && a["queue"] == queue
            && a["carried_out"] == false),
        "{actions:?}"
    );
    assert_eq!(queue_state(&batch, &queue).await, "ENABLED");

    let live = enforce(&[]);
    assert!(
        live["report"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "queue_disabled" && a["carried_out"] == true)
    );
    assert_eq!(queue_state(&batch, &queue).await, "DISABLED");
    assert!(
        enforce(&[])["report"]["actions"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a second run changes nothing"
    );

    let restored = serde_json::from_slice::<Value>(
        &run([
            "enforce",
            "--json",
            "--store",
            store,
            "--restore",
            "--queues",
            &queue,
            "--at",
            &as_of,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect())
        .stdout,
    )
    .unwrap();
    assert_eq!(restored["report"]["actions"][0]["action"], "queue_enabled");
    assert_eq!(queue_state(&batch, &queue).await, "ENABLED");
}

#[test]
fn simulate_prints_each_strategys_overshoot_as_json() {
    let report = stdout_json(&batchguard(&[
        "simulate",
        "--scenario",
        "runaway",
        "--json",
    ]));
    assert_eq!(report["scenario"], "runaway");
    assert_eq!(report["budget_usd"], "1000");
    let strategies = report["strategies"].as_array().unwrap();
    let names: Vec<&str> = strategies
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["batchguard", "poll", "budgets"]);
    for strategy in strategies {
        for key in [
            "final_spend_usd",
            "overshoot_usd",
            "overshoot_percent",
            "breach_to_stop_seconds",
            "jobs_stopped",
        ] {
            assert!(strategy.get(key).is_some(), "{key} in {strategy}");
        }
    }
    assert_eq!(strategies[0]["overshoot_usd"], "0");
    assert!(strategies[0]["breach_to_stop_seconds"].is_null());
    assert!(strategies[1]["breach_to_stop_seconds"].as_i64().unwrap() > 0);

    let human = batchguard(&["simulate", "--scenario", "runaway"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("batchguard") && text.contains("overshoot"),
        "{text}"
    );

    let unknown = batchguard(&["simulate", "--scenario", "sideways"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("sideways"));
}

#[test]
fn redrive_leaves_what_is_still_unreadable_in_the_quarantine() {
    let directory = tempfile::tempdir().unwrap();
    let events = directory.path().join("events.jsonl");
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/events/rtm_batch-event-RUNNING.json"),
    )
    .unwrap();
    let good: Value = serde_json::from_str(&good).unwrap();
    std::fs::write(&events, format!("{good}\n{{\"detail-type\": \"Batch Job State Change\", \"source\": \"aws.batch\", \"detail\": {{}}}}\n")).unwrap();
    let store = directory.path().join("store.sqlite");
    let store = store.to_str().unwrap();
    let ingested = stdout_json(&batchguard(&[
        "ingest",
        "--json",
        "--store",
        store,
        events.to_str().unwrap(),
    ]));
    assert_eq!(ingested["events"]["rejected"], 1);
    let redriven = stdout_json(&batchguard(&["redrive", "--json", "--store", store]));
    assert_eq!(redriven["stored"], 0);
    let still = redriven["still_quarantined"].as_array().unwrap();
    assert_eq!(still.len(), 1);
    assert!(
        still[0]["reason"].as_str().unwrap().contains("jobId"),
        "{still:?}"
    );
}

#[test]
fn report_writes_one_self_contained_page_that_chromium_renders_with_its_charts() {
    let directory = tempfile::tempdir().unwrap();
    let page = directory.path().join("report.html");
    let output = batchguard(&[
        "report",
        "--html",
        page.to_str().unwrap(),
        "--budget",
        "25",
        sample_day().to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch (the only URL is SVG's namespace name).
    for fetch in ["<script", "src=", "href=", "url(", "@import", "<link"] {
        assert!(!html.contains(fetch), "the page fetches something: {fetch}");
    }
    assert_eq!(
        html.matches("http").count(),
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    for id in [
        "chart-spend",
        "chart-queues",
        "chart-vcpu",
        "chart-states",
        "chart-transitions",
        "transitions-by-queue",
        "timings",
        "chart-timing-queue-wait",
        "chart-timing-image-pull",
        "chart-timing-run",
        "chart-timing-total",
        "interruptions",
        "parents",
        "costliest-jobs",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("budget $25.00"));

    // Rendered once in headless Chromium (Debian's package; scripts/test.sh installs it).
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is installed (scripts/test.sh installs Debian's package)");
    let profile = directory.path().join("profile");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ];
    let profile_flag = format!("--user-data-dir={}", profile.display());
    let url = format!("file://{}", page.display());
    let dom = Command::new(chromium)
        .args(flags)
        .arg(&profile_flag)
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The browser parsed every chart: nine SVG elements (spend, queues, vCPU, states,
    // transitions, four timing distributions), the two time series as polylines of many
    // points, bars for each queue, state and timing bucket, and the tables.
    assert_eq!(dom.matches("<svg").count(), 9, "{dom}");
    let polylines: Vec<&str> = dom.split("<polyline").skip(1).collect();
    assert_eq!(polylines.len(), 3, "spend, forecast, vCPU");
    assert!(
        polylines[0]
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .split(' ')
            .count()
            > 100
    );
    assert_eq!(
        dom.matches("<rect class=\"bar\"").count(),
        3 + 4 + 4 * 8,
        "3 queues, 4 states, 4 timings × 8 duration buckets"
    );
    // Transitions stacked by state: every state the sample day goes through is drawn.
    for state in ["runnable", "starting", "running", "succeeded", "failed"] {
        assert!(
            dom.contains(&format!("<rect class=\"seg s-{state}\"")),
            "{state}"
        );
    }
    let rows = |id: &str| {
        dom.split(&format!("id=\"{id}\""))
            .nth(1)
            .unwrap()
            .split("<tbody>")
            .nth(1)
            .unwrap()
            .split("</tbody>")
            .next()
            .unwrap()
            .matches("<tr>")
            .count()
    };
    assert_eq!(rows("costliest-jobs"), 15);
    assert_eq!(rows("transitions-by-queue"), 3);
    assert_eq!(rows("timings"), 4, "queue wait, image pull, run, total");
    assert!(
        rows("interruptions") >= 1,
        "the sample day has Spot interruptions"
    );
    assert!(rows("parents") >= 1, "and array jobs");
    let png = directory.path().join("report.png");
    let shot = Command::new(chromium)
        .args(flags)
        .arg(&profile_flag)
        .args([
            "--window-size=900,2200",
            &format!("--screenshot={}", png.display()),
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    assert!(
        std::fs::metadata(&png).unwrap().len() > 50_000,
        "a page with charts, not a blank one"
    );
}

fn sample_day() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-day.jsonl")
}

/// A day of Fargate work that is over by the end (so the bill and the ledger both see every
/// stop), its events without one job's (a lost event stream), and its CUR export gzipped.
struct BilledDay {
    _directory: tempfile::TempDir,
    events: PathBuf,
    cur: PathBuf,
    cur_bytes: Vec<u8>,
    dropped_tasks: std::collections::BTreeSet<String>,
    spot_tasks: std::collections::BTreeSet<String>,
    all_tasks: usize,
}

fn billed_day() -> BilledDay {
    use std::io::Write as _;
    let base = WorkloadConfig::sample_day();
    let config = WorkloadConfig {
        seed: 4_242,
        jobs: 80,
        span_seconds: 4 * 3600,
        end_ms: base.start_ms + 17 * 3_600_000,
        foreign_tasks_percent: 0,
        ..base
    };
    let workload = synth::generate(&config);
    assert!(workload.tasks.iter().all(|t| t.stopped_ms.is_some()));
    let dropped_job = workload.tasks[0].job_id.clone();
    let dropped_tasks: std::collections::BTreeSet<String> = workload
        .tasks
        .iter()
        .filter(|t| t.job_id == dropped_job)
        .map(|t| t.task_arn.clone())
        .collect();
    let directory = tempfile::tempdir().unwrap();
    let events = directory.path().join("events.jsonl");
    let kept: Vec<&String> = workload
        .events
        .iter()
        .filter(|e| {
            !e.contains(&dropped_job) && !dropped_tasks.iter().any(|arn| e.contains(arn.as_str()))
        })
        .collect();
    std::fs::write(
        &events,
        kept.iter().map(|e| format!("{e}\n")).collect::<String>(),
    )
    .unwrap();
    let csv = batchguard_tests::cur_csv(&workload.tasks, config.end_ms);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(csv.as_bytes()).unwrap();
    let cur_bytes = encoder.finish().unwrap();
    let cur = directory.path().join("cur/BILLING_PERIOD=2026-11");
    std::fs::create_dir_all(&cur).unwrap();
    std::fs::write(cur.join("report-00001.csv.gz"), &cur_bytes).unwrap();
    BilledDay {
        events,
        cur: directory.path().join("cur"),
        cur_bytes,
        dropped_tasks,
        spot_tasks: workload
            .tasks
            .iter()
            .filter(|t| t.spot)
            .map(|t| t.task_arn.clone())
            .collect(),
        all_tasks: workload.tasks.len(),
        _directory: directory,
    }
}

fn check_reconciliation(day: &BilledDay, report: &Value) {
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), day.all_tasks);
    for task in tasks {
        let arn = task["task_arn"].as_str().unwrap();
        let outcome = task["match"].as_str().unwrap();
        let expected = if day.dropped_tasks.contains(arn) {
            "missing_from_ledger"
        } else if day.spot_tasks.contains(arn) {
            // Billed at the Spot price actually paid, not the ledger's 30 % assumption.
            "drift"
        } else {
            "matched"
        };
        assert_eq!(outcome, expected, "{task}");
        if expected == "matched" {
            assert!(
                money(&task["difference_usd"]).abs() <= Decimal::new(1, 4),
                "{task}"
            );
        }
    }
    // The Spot price the bill shows, learnt exactly.
    let x86 = report["effective_spot_prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["architecture"] == "x86_64")
        .unwrap();
    assert_eq!(
        money(&x86["vcpu_hour"]),
        batchguard_tests::BILLED_SPOT_X86.0
    );
    assert_eq!(money(&x86["gb_hour"]), batchguard_tests::BILLED_SPOT_X86.1);
    // Per-queue sums add up to the total.
    let by_queue: Decimal = report["by_queue"]
        .as_object()
        .unwrap()
        .values()
        .map(|q| money(&q["difference_usd"]))
        .sum();
    assert_eq!(by_queue, money(&report["total"]["difference_usd"]));
    assert!(
        report["by_queue"]["(not in the ledger)"]["tasks"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[test]
fn reconcile_matches_the_bill_task_by_task_and_learns_the_spot_price() {
    let day = billed_day();
    let directory = tempfile::tempdir().unwrap();
    let spot_prices = directory.path().join("spot.toml");
    let output = batchguard(&[
        "reconcile",
        "--cur",
        day.cur.to_str().unwrap(),
        "--day",
        "2026-11-23",
        "--spot-prices-out",
        spot_prices.to_str().unwrap(),
        // A billionth of a dollar: every Spot task differs by more.
        "--tolerance",
        "0.000000001",
        "--json",
        day.events.to_str().unwrap(),
    ]);
    check_reconciliation(&day, &stdout_json(&output));

    // The learnt Spot prices are a price file: replayed with it, the Spot tasks match too.
    let again = stdout_json(&batchguard(&[
        "reconcile",
        "--cur",
        day.cur.to_str().unwrap(),
        "--day",
        "2026-11-23",
        "--prices",
        spot_prices.to_str().unwrap(),
        "--tolerance",
        "0.000000001",
        "--json",
        day.events.to_str().unwrap(),
    ]));
    let drifting: Vec<&Value> = again["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["match"] == "drift")
        .collect();
    assert!(drifting.is_empty(), "{drifting:?}");

    // For people: a table per queue, and the Spot price.
    let human = batchguard(&[
        "reconcile",
        "--cur",
        day.cur.to_str().unwrap(),
        "--day",
        "2026-11-23",
        day.events.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("missing_from_ledger")
            && text.contains("Spot paid in us-east-1 (x86_64): 0.0125"),
        "{text}"
    );

    // A day with nothing billed is all "missing from the bill".
    let other = stdout_json(&batchguard(&[
        "reconcile",
        "--cur",
        day.cur.to_str().unwrap(),
        "--day",
        "2026-11-22",
        "--json",
        day.events.to_str().unwrap(),
    ]));
    assert_eq!(other["tasks"].as_array().unwrap().len(), 0);
}

/// The same export in Parquet (Snappy, typed columns, as AWS writes it): the same
/// reconciliation, line for line.
#[test]
fn reconcile_reads_a_parquet_export_as_it_reads_csv() {
    use std::io::Read;
    let day = billed_day();
    let mut csv = String::new();
    flate2::read::GzDecoder::new(day.cur_bytes.as_slice())
        .read_to_string(&mut csv)
        .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let cur = directory.path().join("data/BILLING_PERIOD=2026-11");
    std::fs::create_dir_all(&cur).unwrap();
    std::fs::write(
        cur.join("batch-00001.snappy.parquet"),
        batchguard_tests::cur_parquet(&csv),
    )
    .unwrap();
    let reconcile = |export: &Path| {
        stdout_json(&batchguard(&[
            "reconcile",
            "--cur",
            export.to_str().unwrap(),
            "--day",
            "2026-11-23",
            "--tolerance",
            "0.000000001",
            "--json",
            day.events.to_str().unwrap(),
        ]))
    };
    let from_parquet = reconcile(directory.path());
    check_reconciliation(&day, &from_parquet);
    assert_eq!(from_parquet, reconcile(&day.cur));

    // Not Parquet after all: an error naming the file.
    std::fs::write(cur.join("broken.parquet"), b"PAR1 truncated").unwrap();
    let output = batchguard(&[
        "reconcile",
        "--cur",
        directory.path().to_str().unwrap(),
        "--day",
        "2026-11-23",
        day.events.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("broken.parquet: not a Parquet file"),
        "{error}"
    );
}

#[tokio::test]
async fn reconcile_reads_the_export_from_s3() {
    let day = billed_day();
    let config = batchguard_tests::emulator_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = batchguard_tests::unique_prefix("cur").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key("exports/batch/data/BILLING_PERIOD=2026-11/batch-00001.csv.gz")
        .body(day.cur_bytes.clone().into())
        .send()
        .await
        .unwrap();
    // Not a CUR file: left alone.
    s3.put_object()
        .bucket(&bucket)
        .key("exports/batch/metadata/manifest.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    let url = format!("s3://{bucket}/exports/batch/");
    let output = batchguard(&[
        "reconcile",
        "--cur",
        &url,
        "--day",
        "2026-11-23",
        "--tolerance",
        "0.000000001",
        "--json",
        day.events.to_str().unwrap(),
    ]);
    check_reconciliation(&day, &stdout_json(&output));
    let missing = batchguard(&[
        "reconcile",
        "--cur",
        &format!("s3://{bucket}/nothing-here/"),
        "--day",
        "2026-11-23",
        day.events.to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no CUR files"));
}

/// `--budget-name`: the limit, the period and AWS's actual spend come from AWS Budgets
/// (the emulator); the budget is measured against that spend plus what the ledger saw after
/// AWS last updated it.
#[tokio::test]
async fn a_budget_named_in_aws_budgets_is_its_limit_and_baseline() {
    let config = batchguard_tests::emulator_config().await;
    let budgets = aws_sdk_budgets::Client::new(&config);
    let name = batchguard_tests::unique_prefix("budget");
    batchguard_tests::emulator_budget(&budgets, &name, "1000", "120.50").await;
    // Evaluated an hour from now: the sample day's still-running tasks accrue after the
    // baseline (taken when the budget was made), and only that part is added.
    let at = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let report = stdout_json(&batchguard(&[
        "replay",
        "--budget-name",
        &name,
        "--account-id",
        "123456789012",
        "--at",
        &at,
        "--json",
        sample_day().to_str().unwrap(),
    ]));
    assert_eq!(money(&report["budget_usd"]), Decimal::from(1000));
    assert_eq!(report["budget_period"], "month");
    let baseline = &report["baseline"];
    assert_eq!(money(&baseline["aws_spend_usd"]), Decimal::new(1205, 1));
    let as_of = chrono::DateTime::parse_from_rfc3339(baseline["aws_as_of"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let until = chrono::DateTime::parse_from_rfc3339(&at)
        .unwrap()
        .timestamp();
    let burn = money(&report["burn_rate_usd_per_hour"]);
    assert!(burn > Decimal::ZERO);
    // Every task running at `at` ran through the whole window after the baseline.
    let expected_after = burn * Decimal::from(until - as_of) / Decimal::from(3600);
    let after = money(&baseline["ledger_after_usd"]);
    assert!(
        (after - expected_after).abs() < Decimal::new(1, 6),
        "{after} vs {expected_after}"
    );
    assert_eq!(
        money(&baseline["budget_spend_usd"]),
        Decimal::new(1205, 1) + after
    );
    let percent = money(&report["budget_used_percent"]);
    assert_eq!(
        percent,
        ((Decimal::new(1205, 1) + after) / Decimal::from(10)).round_dp(4)
    );

    // A budget that does not exist is an error naming it.
    let missing = batchguard(&[
        "replay",
        "--budget-name",
        "no-such-budget",
        "--account-id",
        "123456789012",
        sample_day().to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    let error = String::from_utf8_lossy(&missing.stderr);
    assert!(
        error.contains("\"no-such-budget\" of account 123456789012"),
        "{error}"
    );
}

/// The registry's instance on the human output: type, bill, shares, idle.
#[test]
fn the_human_report_lists_ec2_instances_with_their_bill_and_idle_part() {
    let directory = tempfile::tempdir().unwrap();
    let events = directory.path().join("instance.json");
    std::fs::write(&events, batchguard_tests::batch_instance_event()).unwrap();
    let output = batchguard(&["replay", events.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let row = text
        .lines()
        .find(|line| line.contains("i-f3a8506b"))
        .unwrap_or_else(|| panic!("no instance row: {text}"));
    // Registered and seen once: the one-minute minimum of an m5.large, all of it idle.
    for cell in ["m5.large", "ec2-ce", "60 s", "$0.0016"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    let json = stdout_json(&batchguard(&["replay", "--json", events.to_str().unwrap()]));
    let instance = &json["ec2_instances"][0];
    assert_eq!(money(&instance["cost_usd"]), Decimal::new(16, 4));
    assert_eq!(money(&instance["idle_usd"]), Decimal::new(16, 4));
}

/// `doctor` end to end: the checklist as JSON and as text, exit status 1 when a check fails,
/// and an error naming a stack that does not exist. The stack here is a bare one on the
/// emulator (two tables, nothing else), so the checks of what it lacks fail, each saying what.
#[tokio::test]
async fn doctor_prints_a_checklist_and_fails_on_a_broken_stack() {
    let config = batchguard_tests::emulator_config().await;
    let stack = batchguard_tests::unique_prefix("doctor-cli");
    let table = batchguard_tests::cfn_pk_sk_table();
    let template = serde_json::json!({
        "Resources": {"EventsTable": table, "StateTable": table},
        "Outputs": {
            "EventsTableName": {"Value": {"Ref": "EventsTable"}},
            "StateTableName": {"Value": {"Ref": "StateTable"}}
        }
    });
    aws_sdk_cloudformation::Client::new(&config)
        .create_stack()
        .stack_name(&stack)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();

    let output = batchguard(&["doctor", "--stack", &stack, "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["healthy"], false);
    let check = |id: &str| -> Value {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no check {id}: {report:#}"))
    };
    assert_eq!(check("stack")["status"], "ok");
    assert_eq!(check("table:EventsTableName")["status"], "ok");
    assert_eq!(check("quarantine")["status"], "ok");
    // A bare table, without the indexes the functions query: named, with the redeploy.
    let indexes = check("indexes");
    assert_eq!(indexes["status"], "fail");
    assert!(
        indexes["detail"]
            .as_str()
            .unwrap()
            .contains("has no index open, recent, caps"),
        "{indexes}"
    );
    let dlq = check("dlq:EventDeadLetterQueueUrl");
    assert_eq!(dlq["status"], "fail");
    assert!(
        dlq["detail"]
            .as_str()
            .unwrap()
            .contains("no output EventDeadLetterQueueUrl"),
        "{dlq}"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("check(s) failed"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let text = batchguard(&["doctor", "--stack", &stack]);
    assert_eq!(text.status.code(), Some(1));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.lines().any(|l| l.starts_with("ok    stack")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL  dlq:EventDeadLetterQueueUrl")),
        "{text}"
    );
    assert!(text.contains("fix: "), "{text}");

    let missing = batchguard(&["doctor", "--stack", "no-such-stack"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("\"no-such-stack\""),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

/// `--cost-explorer`: the baseline is Cost Explorer's cost of the period's whole days up to a
/// day before `--at` (the emulator's Cost Explorer), and the ledger counts from there.
#[test]
fn a_baseline_from_cost_explorer_is_added_to_what_the_ledger_saw_after_it() {
    batchguard_tests::set_emulator_cost_and_usage();
    let report = stdout_json(&batchguard(&[
        "replay",
        "--budget",
        "100",
        "--cost-explorer",
        "--ce-tag",
        "team=genomics",
        "--at",
        "2026-11-24T06:00:00Z",
        "--json",
        sample_day().to_str().unwrap(),
    ]));
    let baseline = &report["baseline"];
    assert_eq!(money(&baseline["aws_spend_usd"]), Decimal::new(1975, 2));
    assert_eq!(baseline["aws_as_of"], "2026-11-23T00:00:00Z");
    // The sample day is all on the 23rd: all of it is after Cost Explorer's cut.
    let after = money(&baseline["ledger_after_usd"]);
    assert!(after > Decimal::ZERO);
    assert_eq!(after, money(&report["period_spend_usd"]));
    assert_eq!(
        money(&baseline["budget_spend_usd"]),
        Decimal::new(1975, 2) + after
    );

    // The limit is the user's: without --budget it is refused by name.
    let refused = batchguard(&["replay", "--cost-explorer", sample_day().to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--budget"));
}
