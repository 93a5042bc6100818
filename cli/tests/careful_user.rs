//! The command line as a careful (or tired) user meets it: no panic on any argument or store
//! content, no silent loss, errors that say what to do (issue 18). Every test runs the real
//! binary; the AWS ones run against the local emulator the test command starts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use proptest::prelude::*;
use serde_json::{Value, json};

fn batchguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_batchguard"))
        .args(args)
        .output()
        .expect("batchguard runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn sample_day() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-day.jsonl")
}

/// Exit 0 (done), 1 (an error the command reports) or 2 (a usage error): never a panic (101)
/// nor a signal.
fn assert_no_panic(args: &[&str], output: &Output) {
    let code = output.status.code();
    assert!(
        matches!(code, Some(0..=2)),
        "{args:?} exited with {code:?}: {}",
        stderr(output)
    );
    assert!(
        !stderr(output).contains("panicked"),
        "{args:?}: {}",
        stderr(output)
    );
}

#[test]
fn a_budget_out_of_range_is_refused_by_name() {
    let sample = sample_day();
    for budget in ["1e26", "1e-28", "-5", "lots", "1000000000001"] {
        let budget = format!("--budget={budget}");
        let output = batchguard(&["replay", &budget, sample.to_str().unwrap()]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{budget}: {}",
            stderr(&output)
        );
        assert!(stderr(&output).contains("--budget"), "{}", stderr(&output));
    }
    // In range, however small, it is a budget.
    let output = batchguard(&[
        "replay",
        "--budget",
        "0.0000000001",
        sample.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    for (flag, value) in [("--tick-seconds", "0"), ("--stop-delay-seconds", "-1")] {
        let argument = format!("{flag}={value}");
        let output = batchguard(&["simulate", "--scenario", "steady", &argument]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(flag), "{}", stderr(&output));
    }
}

const HUGE_VCPU_JOB: &str = r#"{"version":"0","id":"huge","detail-type":"Batch Job State Change","source":"aws.batch","account":"1","time":"2026-11-23T10:00:00Z","region":"us-east-1","resources":[],"detail":{"jobId":"huge-1","jobName":"huge","jobQueue":"q","jobDefinition":"d:1","status":"RUNNING","startedAt":1795428000000,"attempts":[],"platformCapabilities":["FARGATE"],"container":{"resourceRequirements":[{"type":"VCPU","value":"1000000000000000000000000000"},{"type":"MEMORY","value":"2048"}]}}}"#;

const YEAR_9999_TASK: &str = r#"{"version":"0","id":"far","detail-type":"ECS Task State Change","source":"aws.ecs","account":"1","time":"2026-11-23T10:00:00Z","region":"us-east-1","resources":[],"detail":{"taskArn":"arn:aws:ecs:us-east-1:1:task/AWSBatch-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/far","clusterArn":"arn:aws:ecs:us-east-1:1:cluster/AWSBatch-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941","cpu":"1024","memory":"2048","launchType":"FARGATE","lastStatus":"STOPPED","pullStartedAt":"2026-11-23T09:00:00Z","stoppedAt":"9999-01-01T00:00:00Z","version":3}}"#;

#[test]
fn a_value_no_aws_event_has_is_rejected_with_its_reason_and_nothing_panics() {
    let directory = tempfile::tempdir().unwrap();
    let events = directory.path().join("absurd.jsonl");
    std::fs::write(&events, format!("{HUGE_VCPU_JOB}\n{YEAR_9999_TASK}\n")).unwrap();
    let events = events.to_str().unwrap();
    let replay = batchguard(&["replay", "--json", events]);
    assert!(replay.status.success(), "{}", stderr(&replay));
    let report: Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(report["events"]["rejected"], 2);
    assert!(
        stderr(&replay).contains("detail.vCPU"),
        "{}",
        stderr(&replay)
    );
    assert!(
        stderr(&replay).contains("detail.stoppedAt"),
        "{}",
        stderr(&replay)
    );
    // Stored, they are quarantined; status, report and redrive run on the store.
    let store = directory.path().join("store.db");
    let store = store.to_str().unwrap();
    let ingest = batchguard(&["ingest", "--json", "--store", store, events]);
    assert!(ingest.status.success(), "{}", stderr(&ingest));
    for args in [
        vec!["status", "--store", store, "--budget", "10"],
        vec!["redrive", "--json", "--store", store],
    ] {
        let output = batchguard(&args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }
}

/// A store written by a batchguard that did not check ranges: the facts are there, the
/// figures leave them out and say so.
#[test]
fn a_stored_fact_out_of_range_is_left_out_and_reported() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("old.db");
    let fact: shared::core::facts::Fact = serde_json::from_value(json!({
        "event_id": "old", "type": "JobObserved.v1", "job_id": "j", "job_name": "n", "queue": "q",
        "job_definition": "d", "status": "RUNNING", "attempts": [{"index": 0, "started_at": 1_795_428_000_000_i64}],
        "platform": "fargate", "region": "us-east-1",
        "size": {"vcpu": "1000000000000000000000000000", "memory_gib": "2"}
    }))
    .unwrap();
    block_on(async {
        use shared::ports::EventLog;
        let log = shared::adapters::sqlite::SqliteEventLog::open(&path).unwrap();
        log.append(&[shared::ports::Record::new(fact)])
            .await
            .unwrap();
    });
    let path = path.to_str().unwrap();
    let human = batchguard(&["status", "--store", path, "--budget", "10"]);
    assert!(human.status.success(), "{}", stderr(&human));
    assert!(stdout(&human).contains("1 stored events have a value out of range"));
    let json = batchguard(&["status", "--json", "--store", path]);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["refused_facts"], 1);
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn an_empty_store_name_is_refused() {
    let sample = sample_day();
    let output = batchguard(&["ingest", "--store", "", sample.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("a store needs a name"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_truncated_array_keeps_its_whole_events_and_empty_input_says_so() {
    let directory = tempfile::tempdir().unwrap();
    let lines: Vec<&str> = std::fs::read_to_string(sample_day())
        .unwrap()
        .leak()
        .lines()
        .take(50)
        .collect();
    let whole = format!("[\n{}\n]\n", lines.join(",\n"));
    let truncated = directory.path().join("truncated.json");
    std::fs::write(&truncated, &whole[..whole.len() - 40]).unwrap();
    let output = batchguard(&["replay", "--json", truncated.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["events"]["read"], 50);
    assert_eq!(report["events"]["rejected"], 1);
    assert!(
        stderr(&output).contains("the JSON array breaks off here"),
        "{}",
        stderr(&output)
    );

    let empty_file = directory.path().join("empty.jsonl");
    std::fs::write(&empty_file, "").unwrap();
    let empty_directory = directory.path().join("nothing");
    std::fs::create_dir(&empty_directory).unwrap();
    for path in [&empty_file, &empty_directory] {
        let output = batchguard(&["replay", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("no events found"),
            "{}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "no report as of 1970");
    }
}

#[test]
fn two_ingests_into_one_new_store_at_once_both_land() {
    let directory = tempfile::tempdir().unwrap();
    let store = directory.path().join("shared.db");
    let store = store.to_str().unwrap();
    let sample = sample_day();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_batchguard"))
            .args([
                "ingest",
                "--json",
                "--store",
                store,
                sample.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    for _ in 0..3 {
        std::fs::remove_file(store).ok();
        let (first, second) = (spawn(), spawn());
        let outputs = [
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
        ];
        for output in &outputs {
            assert!(output.status.success(), "{}", stderr(output));
        }
        let stored: u64 = outputs
            .iter()
            .map(|o| {
                serde_json::from_slice::<Value>(&o.stdout).unwrap()["stored"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        let events = std::fs::read_to_string(&sample).unwrap().lines().count() as u64;
        let skipped = 21; // the sample's foreign events
        assert_eq!(stored, events - skipped, "every fact stored once");
    }
}

#[test]
fn status_reads_a_read_only_store_and_ingesting_bad_lines_twice_quarantines_them_once() {
    let directory = tempfile::tempdir().unwrap();
    let events = directory.path().join("mixed.jsonl");
    let good = std::fs::read_to_string(sample_day()).unwrap();
    std::fs::write(
        &events,
        format!(
            "not json\n{}\n{{\"broken\":\n",
            good.lines().next().unwrap()
        ),
    )
    .unwrap();
    let store = directory.path().join("store.db");
    let (events, store_text) = (events.to_str().unwrap(), store.to_str().unwrap());
    for _ in 0..2 {
        let output = batchguard(&["ingest", "--store", store_text, events]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let redrive = batchguard(&["redrive", "--json", "--store", store_text]);
    let report: Value = serde_json::from_slice(&redrive.stdout).unwrap();
    assert_eq!(report["still_quarantined"].as_array().unwrap().len(), 2);

    // Read-only, and (as root ignores permissions) byte for byte unchanged by reading.
    let mut permissions = std::fs::metadata(&store).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&store, permissions).unwrap();
    let before = std::fs::read(&store).unwrap();
    let status = batchguard(&["status", "--json", "--store", store_text]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(
        std::fs::read(&store).unwrap() == before,
        "status wrote to the store"
    );
    let report: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        report["events"]["rejected"], 4,
        "the store's totals over both ingests"
    );
}

#[test]
fn output_to_dash_is_standard_output() {
    let directory = tempfile::tempdir().unwrap();
    let generated = batchguard(&["generate", "--jobs", "3", "--out", "-"]);
    assert!(generated.status.success(), "{}", stderr(&generated));
    assert!(stdout(&generated).lines().count() > 3);
    assert!(!Path::new("-").exists() && !directory.path().join("-").exists());
    let page = batchguard(&["report", "--html", "-", sample_day().to_str().unwrap()]);
    assert!(page.status.success(), "{}", stderr(&page));
    assert!(stdout(&page).starts_with("<!DOCTYPE html>"));
    let both = batchguard(&[
        "report",
        "--html",
        "-",
        "--json",
        sample_day().to_str().unwrap(),
    ]);
    assert_eq!(both.status.code(), Some(1));
    assert!(stderr(&both).contains("both write to standard output"));
}

#[test]
fn an_instant_far_past_the_events_is_warned_about() {
    let sample = sample_day();
    let output = batchguard(&[
        "replay",
        "--at",
        "2100-01-01T00:00:00Z",
        sample.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("warning: --at is"),
        "{}",
        stderr(&output)
    );
    let near = batchguard(&[
        "replay",
        "--at",
        "2026-11-24T00:00:00Z",
        sample.to_str().unwrap(),
    ]);
    assert!(!stderr(&near).contains("warning"), "{}", stderr(&near));
}

/// Every option of every command says what it is for (clap prints nothing after an option
/// without help).
#[test]
fn every_flag_has_help_text() {
    let commands: [&[&str]; 16] = [
        &["replay"],
        &["init"],
        &["ingest"],
        &["status"],
        &["report"],
        &["redrive"],
        &["enforce"],
        &["doctor"],
        &["generate"],
        &["simulate"],
        &["prices", "fetch"],
        &["reconcile"],
        &["budgets", "check"],
        &["budgets", "apply"],
        &["budgets", "list"],
        &[],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("-h");
        let help = stdout(&batchguard(&args));
        let lines: Vec<&str> = help.lines().collect();
        let mut options = 0;
        for (index, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let is_option =
                trimmed.starts_with('-') || trimmed.starts_with('[') || trimmed.starts_with('<');
            if !is_option || indent == 0 {
                continue;
            }
            options += 1;
            // Help on the same line, or (clap's layout when some help is long) on the next,
            // indented deeper.
            let same_line = trimmed
                .split("  ")
                .filter(|part| !part.trim().is_empty())
                .count()
                >= 2;
            let next_line = lines.get(index + 1).is_some_and(|next| {
                let text = next.trim_start();
                next.len() - text.len() > indent && !text.is_empty()
            });
            assert!(
                same_line || next_line,
                "{command:?}: `{trimmed}` has no help text"
            );
        }
        assert!(options >= 1, "{command:?}: {help}");
    }
    // The top level lists each command in one short line.
    let top = stdout(&batchguard(&["--help"]));
    for line in top
        .lines()
        .filter(|line| line.starts_with("  ") && !line.trim_start().starts_with('-'))
    {
        assert!(line.len() <= 100, "too long for one line: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_failures_are_one_line_with_a_hint_and_the_whole_error_behind_verbose() {
    let missing = batchguard(&["status", "--store", "dynamodb:no-such-tables"]);
    assert_eq!(missing.status.code(), Some(1));
    let text = stderr(&missing);
    assert!(text.contains("ResourceNotFoundException"), "{text}");
    assert!(
        text.contains("hint:") && text.contains("batchguard init"),
        "{text}"
    );
    assert!(text.len() < 600, "{} bytes: {text}", text.len());
    let verbose = batchguard(&["status", "--verbose", "--store", "dynamodb:no-such-tables"]);
    assert!(stderr(&verbose).len() > text.len(), "{}", stderr(&verbose));
    // Nothing listening: the hint names the endpoint.
    let unreachable = Command::new(env!("CARGO_BIN_EXE_batchguard"))
        .args(["doctor", "--stack", "any"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(
        unreachable.status.code(),
        Some(1),
        "{}",
        stderr(&unreachable)
    );
    assert!(
        stderr(&unreachable).contains("AWS_ENDPOINT_URL=http://127.0.0.1:9"),
        "{}",
        stderr(&unreachable)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_names_unknown_queues_and_reports_a_failed_notice_after_doing_the_rest() {
    use batchguard_tests::{emulator_config, emulator_queue, queue_state};
    let config = emulator_config().await;
    let batch = aws_sdk_batch::Client::new(&config);
    // One of the sample day's queues, so a budget over it has spend to measure.
    let queue = "genomics-high".to_owned();
    emulator_queue(&batch, &queue).await;
    let directory = tempfile::tempdir().unwrap();
    let store = directory.path().join("store.db");
    let store = store.to_str().unwrap();
    let ingest = batchguard(&["ingest", "--store", store, sample_day().to_str().unwrap()]);
    assert!(ingest.status.success(), "{}", stderr(&ingest));
    let at = "2026-11-23T20:13:36Z";

    let typo = batchguard(&[
        "enforce",
        "--store",
        store,
        "--budget",
        "5",
        "--queues",
        "nosuchqueue",
        "--at",
        at,
    ]);
    assert_eq!(typo.status.code(), Some(1), "{}", stderr(&typo));
    assert!(
        stderr(&typo).contains("no such job queue: nosuchqueue"),
        "{}",
        stderr(&typo)
    );

    // A dry run says the notice was sent (it is, marked dry run), and changes nothing.
    let dry = batchguard(&[
        "enforce",
        "--store",
        store,
        "--budget",
        "0.01",
        "--queues",
        &queue,
        "--at",
        at,
        "--dry-run",
    ]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        stdout(&dry).contains("yes (sent, marked dry run)"),
        "{}",
        stdout(&dry)
    );
    assert_eq!(queue_state(&batch, &queue).await, "ENABLED");

    // A topic that does not exist: the stop still goes through, and the failure is listed.
    let bad_topic = "arn:aws:sns:us-east-1:123456789012:no-such-topic";
    let stop = batchguard(&[
        "enforce",
        "--json",
        "--store",
        store,
        "--budget",
        "0.01",
        "--queues",
        &queue,
        "--at",
        at,
        "--topic-arn",
        bad_topic,
    ]);
    assert_eq!(stop.status.code(), Some(1), "{}", stderr(&stop));
    let report: Value = serde_json::from_slice(&stop.stdout).unwrap();
    assert_eq!(
        report["report"]["failures"][0]["action"], "Notified",
        "{report}"
    );
    assert_eq!(queue_state(&batch, &queue).await, "DISABLED");
    assert!(
        stderr(&stop).contains("everything else was done"),
        "{}",
        stderr(&stop)
    );
    let restore = batchguard(&["enforce", "--store", store, "--restore", "--at", at]);
    assert!(restore.status.success(), "{}", stderr(&restore));
    assert_eq!(queue_state(&batch, &queue).await, "ENABLED");

    // A budget that owns the queue drains it: disabled for that budget, which the stack's
    // restore leaves alone and the budget's own restore undoes.
    let file = directory.path().join("budgets.toml");
    std::fs::write(
        &file,
        format!(
            "[[budget]]\nname = \"genomics\"\namount_usd = \"0.01\"\nperiod = \"month\"\n\
             admission = \"safe\"\nscope = {{ queues = [\"{queue}\"] }}\n\
             thresholds = [{{ at_percent = \"100\", action = \"drain\" }}]\n"
        ),
    )
    .unwrap();
    let drain = batchguard(&[
        "enforce",
        "--json",
        "--store",
        store,
        "--budgets",
        file.to_str().unwrap(),
        "--at",
        at,
    ]);
    assert!(drain.status.success(), "{}", stderr(&drain));
    assert_eq!(queue_state(&batch, &queue).await, "DISABLED");
    let drained: Value = serde_json::from_slice(&drain.stdout).unwrap();
    assert_eq!(
        drained["report"]["actions"][2]["action"], "queue_disabled",
        "{drained}"
    );
    assert_eq!(drained["report"]["actions"][2]["budget"], "genomics");
    // Safe admission ran on the same fold, as the stack's enforcer runs it each tick.
    assert_eq!(
        drained["admission"]["reason"], "safe admission for genomics",
        "{drained}"
    );
    let restore = batchguard(&["enforce", "--store", store, "--restore", "--at", at]);
    assert!(restore.status.success(), "{}", stderr(&restore));
    assert_eq!(
        queue_state(&batch, &queue).await,
        "DISABLED",
        "the stack's restore leaves a budget's hold"
    );
    let restore = batchguard(&[
        "enforce",
        "--store",
        store,
        "--restore-budget",
        "genomics",
        "--at",
        at,
    ]);
    assert!(restore.status.success(), "{}", stderr(&restore));
    assert_eq!(queue_state(&batch, &queue).await, "ENABLED");
}

fn arbitrary_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (any::<i32>(), -40_i32..40).prop_map(|(m, e)| format!("{m}e{e}")),
        (any::<u64>(), 0_u32..30).prop_map(|(m, s)| format!(
            "{}.{:0>width$}",
            m / 7,
            m % 1000,
            width = s as usize
        )),
        Just(String::new()),
        "[ -~]{0,12}",
    ]
}

fn arbitrary_instant() -> impl Strategy<Value = String> {
    prop_oneof![
        (1_u32..=9999, 1_u32..=12, 1_u32..=28)
            .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}T00:00:00Z")),
        "[ -~]{0,25}",
    ]
}

/// A stored fact with arbitrary sizes and instants, as an older or broken batchguard might have
/// written it.
fn arbitrary_fact() -> impl Strategy<Value = Value> {
    let decimal = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (any::<i64>(), 0_u32..28).prop_map(|(m, s)| rust_decimal::Decimal::new(m, s).to_string()),
        Just("79228162514264337593543950335".to_owned()),
    ];
    let instant = prop_oneof![any::<i64>(), 1_700_000_000_000_i64..1_900_000_000_000];
    (
        0_u8..3,
        decimal.clone(),
        decimal,
        prop::option::of(instant.clone()),
        prop::option::of(instant),
        "[a-c]",
    )
        .prop_map(|(kind, vcpu, memory, start, stop, id)| match kind {
            0 => json!({"event_id": format!("e-{id}-{vcpu}"), "type": "JobObserved.v1", "job_id": id, "job_name": "n",
                "queue": "q", "job_definition": "d", "status": "RUNNING", "platform": "fargate", "region": "us-east-1",
                "attempts": [{"index": 0, "started_at": start, "stopped_at": stop}],
                "size": {"vcpu": vcpu, "memory_gib": memory}}),
            1 => json!({"event_id": format!("t-{id}-{vcpu}"), "type": "TaskObserved.v1",
                "task_arn": format!("arn:aws:ecs:us-east-1:1:task/AWSBatch-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/{id}"),
                "platform": "fargate", "capacity": "on_demand", "region": "us-east-1", "version": 1,
                "pull_started_at": start, "stopped_at": stop, "size": {"vcpu": vcpu, "memory_gib": memory}}),
            _ => json!({"event_id": format!("i-{id}-{vcpu}"), "type": "InstanceObserved.v1",
                "container_instance_arn": format!("arn:aws:ecs:us-east-1:1:container-instance/AWSBatch-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941/{id}"),
                "compute_environment": "ce", "instance_type": "m5.large", "region": "us-east-1", "status": "ACTIVE",
                "registered_at": start, "updated_at": stop, "registered": {"vcpu": vcpu, "memory_gib": memory}}),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any argument value, any store content: exit 0, 1 or 2, never a panic.
    #[test]
    fn no_argument_and_no_stored_fact_makes_a_command_panic(
        budget in arbitrary_number(),
        percent in arbitrary_number(),
        tick in arbitrary_number(),
        jobs in arbitrary_number(),
        at in arbitrary_instant(),
        period in prop_oneof![Just("month"), Just("week"), Just("day"), Just("year")],
        facts in prop::collection::vec(arbitrary_fact(), 0..6),
    ) {
        let directory = tempfile::tempdir().unwrap();
        let store = directory.path().join("store.db");
        let stored: Vec<shared::core::facts::Fact> = facts
            .into_iter()
            .filter_map(|fact| serde_json::from_value(fact).ok())
            .collect();
        block_on(async {
            use shared::ports::EventLog;
            let log = shared::adapters::sqlite::SqliteEventLog::open(&store).unwrap();
            let records: Vec<_> = stored.into_iter().map(shared::ports::Record::new).collect();
            log.append(&records).await.unwrap();
        });
        let store = store.to_str().unwrap();
        let html = directory.path().join("page.html");
        let sample = sample_day();
        let runs: Vec<Vec<&str>> = vec![
            vec!["status", "--store", store, "--budget", &budget, "--at", &at, "--period", period],
            vec!["status", "--json", "--store", store, "--budget", &budget],
            vec!["report", "--html", html.to_str().unwrap(), "--store", store, "--budget", &budget, "--at", &at],
            vec!["replay", "--budget", &budget, "--at", &at, "--period", period, sample.to_str().unwrap()],
            vec!["simulate", "--scenario", "burst", "--tick-seconds", &tick, "--stop-delay-seconds", &tick],
            vec!["generate", "--jobs", &jobs, "--out", "-"],
            vec!["enforce", "--store", store, "--budget", &budget, "--notify-percent", &percent, "--at", &at, "--restore"],
        ];
        for args in runs {
            let output = batchguard(&args);
            assert_no_panic(&args, &output);
        }
    }
}
