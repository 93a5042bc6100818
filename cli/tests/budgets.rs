//! Budgets files through the real binary (issue 17): `budgets check`, and `--budgets` on
//! `replay` and `status`, each budget's figures checked against the report's own scopes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

fn batchguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_batchguard"))
        .args(args)
        .output()
        .expect("batchguard runs")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn decimal(value: &Value) -> Decimal {
    Decimal::from_str(
        value
            .as_str()
            .unwrap_or_else(|| panic!("a decimal string: {value}")),
    )
    .unwrap()
}

/// `replay` of the sample day with `budgets`, as JSON.
fn replay_with(budgets: &Path) -> Value {
    replay_of(&example("sample-day.jsonl"), budgets)
}

/// `replay` of `events` with `budgets`, as JSON.
fn replay_of(events: &Path, budgets: &Path) -> Value {
    let output = batchguard(&[
        "replay",
        events.to_str().unwrap(),
        "--budgets",
        budgets.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn budget<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["name"] == name)
        .unwrap_or_else(|| panic!("budget {name} in {}", report["budgets"]))
}

#[test]
fn the_example_file_checks_and_a_bad_one_is_refused_with_every_error_named() {
    let good = batchguard(&[
        "budgets",
        "check",
        example("budgets.toml").to_str().unwrap(),
    ]);
    assert!(good.status.success());
    let text = String::from_utf8_lossy(&good.stdout);
    assert!(text.starts_with("4 budgets, valid"), "{text}");
    for name in ["org", "genomics", "etl-daily", "data-etl"] {
        assert!(text.contains(name), "{name}: {text}");
    }

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[budget]]\nname = \"ok\"\namount_usd = \"10\"\nperiod = \"day\"\nthresholds = [{ at_percent = \"100\", action = \"drain\" }]\n\n\
         [[budget]]\nname = \"team\"\nparent = \"nobody\"\namount_usd = 12.5\nperiod = \"month\"\n\
         scope = { queues = [\"arn:aws:batch:us-east-1:1:job-queue/q\"] }\n\
         thresholds = [{ at_percent = \"100\", action = \"terminate\" }, { at_percent = \"120\", action = \"notify\" }]\n",
    )
    .unwrap();
    let refused = batchguard(&["budgets", "check", bad.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(refused.stdout.is_empty(), "nothing is shown of a bad file");
    let errors = String::from_utf8_lossy(&refused.stderr);
    for expected in [
        "budget team: amount_usd: 12.5 is a TOML float",
        "budget team: scope.queues: \"arn:aws:batch:us-east-1:1:job-queue/q\": a name",
        "budget team: thresholds[1].action: notify: each threshold must do more",
    ] {
        assert!(errors.contains(expected), "{expected:?} in {errors}");
    }
    // A replay given the bad file stops before reading any event.
    let replay = batchguard(&[
        "replay",
        example("sample-day.jsonl").to_str().unwrap(),
        "--budgets",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(replay.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&replay.stderr).contains("budget team:"));
}

/// GIVEN the sample day and the example budgets WHEN replayed THEN the whole-bill budget is
/// the total, a tag's budget is that tag's scope, a queue's daily budget is the queue's
/// spend (the sample is one day), each child is within its parent, and the actions are the
/// thresholds' (a dry-run budget's included).
#[test]
fn each_budget_is_the_spend_of_the_jobs_it_counts() {
    let report = replay_with(&example("budgets.toml"));
    let org = budget(&report, "org");
    assert_eq!(org["counts"], "bill");
    assert_eq!(
        decimal(&org["period_spend_usd"]),
        decimal(&report["period_spend_usd"])
    );
    let genomics = budget(&report, "genomics");
    assert_eq!(
        decimal(&genomics["period_spend_usd"]),
        decimal(&report["by_tag"]["team=genomics"])
    );
    let etl = budget(&report, "etl-daily");
    assert_eq!(
        decimal(&etl["period_spend_usd"]),
        decimal(&report["by_queue"]["etl-spot"])
    );
    assert_eq!(etl["dry_run"], true);
    for line in report["budgets"].as_array().unwrap() {
        let spend = decimal(&line["period_spend_usd"]);
        let used = decimal(&line["used_percent"]);
        let amount = decimal(&line["amount_usd"]);
        assert_eq!(
            (spend * Decimal::ONE_HUNDRED / amount).round_dp(2),
            used.round_dp(2),
            "{line}"
        );
        if line["name"] != "org" {
            assert!(spend <= decimal(&org["period_spend_usd"]), "{line}");
        }
        // Committed: never below the spend; what is left uncommitted is the rest.
        let committed = decimal(&line["committed_usd"]);
        assert!(committed >= spend, "{line}");
        assert_eq!(
            decimal(&line["uncommitted_usd"]),
            amount - committed,
            "{line}"
        );
    }
    // The day ends with jobs running, some with a timeout (align-reads, render-frame) and some
    // without: the bill's budget is committed to more than it has spent, and says how many run
    // without a bound.
    assert!(
        decimal(&org["committed_usd"]) > decimal(&org["period_spend_usd"]),
        "{org}"
    );
    assert!(org["open_ended_tasks"].as_u64().unwrap() > 0, "{org}");
    // 148 % of etl-daily's $5: past cancel-queued (90 %) and shed (120 %).
    assert_eq!(etl["action"], "shed");
    assert_eq!(org["action"], Value::Null);
}

/// GIVEN budgets that split one queue by team (every job of the sample day has a team tag)
/// WHEN replayed THEN the teams' budgets add up to the queue's spend: a budget naming two
/// dimensions counts exactly the jobs matching both.
#[test]
fn budgets_on_a_queue_and_a_team_each_partition_the_queue() {
    let report = replay_with(&example("budgets.toml"));
    let teams: Vec<String> = report["by_tag"]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|tag| tag.strip_prefix("team=").map(str::to_owned))
        .collect();
    assert!(teams.len() >= 3, "{teams:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("split.toml");
    let mut text = String::new();
    for team in &teams {
        text.push_str(&format!(
            "[[budget]]\nname = \"etl-{team}\"\namount_usd = \"100\"\nperiod = \"month\"\n\
             scope = {{ queues = [\"etl-spot\"], tags = [\"team={team}\"] }}\n\
             thresholds = [{{ at_percent = \"100\", action = \"drain\" }}]\n\n"
        ));
    }
    std::fs::write(&file, text).unwrap();
    let split = replay_with(&file);
    let sum: Decimal = teams
        .iter()
        .map(|team| decimal(&budget(&split, &format!("etl-{team}"))["period_spend_usd"]))
        .sum();
    let queue = decimal(&split["by_queue"]["etl-spot"]);
    assert!(queue > Decimal::ZERO);
    // Each figure is rounded to 10 places: the sum is the queue's within their rounding.
    assert!(
        (sum - queue).abs() <= Decimal::new(teams.len() as i64, 10),
        "{sum} vs {queue}"
    );
    let with_tags: Vec<Decimal> = teams
        .iter()
        .map(|team| decimal(&budget(&split, &format!("etl-{team}"))["period_spend_usd"]))
        .collect();
    assert!(
        with_tags
            .iter()
            .filter(|spend| **spend > Decimal::ZERO)
            .count()
            >= 2,
        "the queue's spend is spread over teams: {with_tags:?}"
    );
}

/// GIVEN the sample day ingested into a store WHEN `status --budgets` reads it THEN each
/// budget shows the same figures as `replay --budgets` of the same events.
#[test]
fn status_shows_the_budgets_replay_shows() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.db");
    let store = store.to_str().unwrap();
    let ingest = batchguard(&[
        "ingest",
        "--store",
        store,
        example("sample-day.jsonl").to_str().unwrap(),
    ]);
    assert!(
        ingest.status.success(),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let status = batchguard(&[
        "status",
        "--store",
        store,
        "--budgets",
        example("budgets.toml").to_str().unwrap(),
        "--json",
    ]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let replay = replay_with(&example("budgets.toml"));
    assert_eq!(status["budgets"], replay["budgets"]);
    assert_eq!(status["budgets"].as_array().unwrap().len(), 4);
}

/// GIVEN the sample day and the example budgets WHEN `report --html` writes the page THEN it
/// has a budgets table with each budget and its action, and a chart of the share used.
#[test]
fn the_html_report_has_a_budgets_table_and_chart() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let output = batchguard(&[
        "report",
        "--html",
        page.to_str().unwrap(),
        example("sample-day.jsonl").to_str().unwrap(),
        "--budgets",
        example("budgets.toml").to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let table = html
        .split(r#"<table id="budgets">"#)
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .expect("a budgets table");
    for name in ["org", "genomics", "etl-daily", "data-etl"] {
        assert!(
            table.contains(&format!("<td>{name}</td>")),
            "{name}: {table}"
        );
    }
    assert!(table.contains("shed (dry run)"), "{table}");
    assert!(html.contains(r#"id="chart-budgets""#));
}

/// The README's example budgets file is one `budgets check` takes.
#[test]
fn the_readmes_example_checks() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let section = readme
        .split("### Budgets")
        .nth(1)
        .expect("a Budgets section");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("readme.toml");
    std::fs::write(&file, example).unwrap();
    let output = batchguard(&["budgets", "check", file.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("2 budgets, valid"));
}

/// `budgets apply` then `budgets list` on `store` holding `events`, as a user runs them: the
/// difference shown, the budgets replaced whole, a bad file changing nothing.
fn apply_and_list(store: &str, events: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let file = example("budgets.toml");
    let file = file.to_str().unwrap();
    let ingest = batchguard(&["ingest", "--store", store, events.to_str().unwrap()]);
    assert!(
        ingest.status.success(),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let none = batchguard(&["budgets", "list", "--store", store]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no budgets applied"));

    let dry = batchguard(&["budgets", "apply", file, "--store", store, "--dry-run"]);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains("+ genomics: added"), "{text}");
    assert!(text.contains("dry run: nothing written"), "{text}");
    let applied = batchguard(&["budgets", "apply", file, "--store", store]);
    assert!(
        String::from_utf8_lossy(&applied.stdout).contains("4 budgets, version 1"),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let list = batchguard(&["budgets", "list", "--store", store, "--json"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["version"], 1);
    assert_eq!(
        list["budgets"],
        replay_of(events, &example("budgets.toml"))["budgets"]
    );

    // A new file: genomics gone, org's amount changed, physics new.
    let edited = std::fs::read_to_string(example("budgets.toml"))
        .unwrap()
        .replace("amount_usd = \"1000\"", "amount_usd = \"1200\"")
        .replace("name = \"genomics\"", "name = \"physics\"")
        .replace("team=genomics", "team=physics");
    let edited_path = dir.path().join("edited.toml");
    std::fs::write(&edited_path, &edited).unwrap();
    let edited_path = edited_path.to_str().unwrap();
    let changes = batchguard(&["budgets", "apply", edited_path, "--store", store, "--json"]);
    let changes: Value = serde_json::from_slice(&changes.stdout).unwrap();
    assert_eq!(changes["version_before"], 1);
    assert_eq!(changes["version"], 2);
    let lines: Vec<String> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {} {}", c["budget"], c["change"], c["fields"]))
        .collect();
    assert_eq!(
        lines,
        [
            r#""genomics" "removed" []"#,
            r#""org" "changed" ["amount_usd"]"#,
            r#""physics" "added" []"#,
        ]
    );

    // A bad file is refused whole: the store keeps version 2.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        edited.replace("period = \"week\"", "period = \"fortnight\""),
    )
    .unwrap();
    let refused = batchguard(&["budgets", "apply", bad.to_str().unwrap(), "--store", store]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("budget data-etl: period"));
    let list = batchguard(&["budgets", "list", "--store", store, "--json"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["version"], 2);
    let names: Vec<&str> = list["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["data-etl", "etl-daily", "org", "physics"]);
}

#[test]
fn budgets_apply_and_list_on_a_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    apply_and_list(
        dir.path().join("store.db").to_str().unwrap(),
        &example("sample-day.jsonl"),
    );
}

/// The same on DynamoDB tables of the local emulator (the test command starts it), with the
/// sample day's first 400 events (the emulator projects each ingested event, slowly).
#[test]
fn budgets_apply_and_list_on_dynamodb_tables() {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        panic!("the emulator is not running: run the tests with scripts/test.sh");
    }
    let prefix = format!("budgets-cli-{}", std::process::id());
    let store = format!("dynamodb:{prefix}");
    let init = batchguard(&["init", "--store", &store]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("morning.jsonl");
    let day = std::fs::read_to_string(example("sample-day.jsonl")).unwrap();
    let morning: Vec<&str> = day.lines().take(400).collect();
    std::fs::write(&events, morning.join("\n")).unwrap();
    apply_and_list(&store, &events);
}

/// GIVEN a SQLite path with no store there (a typo) WHEN a budgets file is applied, or dry-run
/// THEN it is refused with the way to make one, and no file is created.
#[test]
fn an_apply_to_a_store_that_is_not_there_is_refused_and_makes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    let file = example("budgets.toml");
    for dry_run in [false, true] {
        let mut args = vec![
            "budgets",
            "apply",
            file.to_str().unwrap(),
            "--store",
            missing.to_str().unwrap(),
        ];
        if dry_run {
            args.push("--dry-run");
        }
        let output = batchguard(&args);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("no such store"),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!missing.exists(), "nothing is created");
    }
}

/// GIVEN a SQLite store whose applied budgets were edited by hand into a book that no longer
/// validates WHEN a good file is applied THEN the apply says the stored budgets are corrupt
/// and why, and replaces them whole (each budget of the file added): a corrupt book never
/// locks a store out of its budgets.
#[test]
fn an_apply_replaces_a_stored_book_that_no_longer_validates() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.db");
    let store_arg = store.to_str().unwrap();
    let events = example("sample-day.jsonl");
    let ingest = batchguard(&["ingest", "--store", store_arg, events.to_str().unwrap()]);
    assert!(
        ingest.status.success(),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let file = example("budgets.toml");
    let file = file.to_str().unwrap();
    let applied = batchguard(&["budgets", "apply", file, "--store", store_arg]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    // A threshold above the 1,000 % limit, written past batchguard.
    let connection = rusqlite::Connection::open(&store).unwrap();
    let changed = connection
        .execute(
            "UPDATE budgets SET book = replace(book, '\"110\"', '\"5000\"') WHERE id = 1",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(connection);
    let list = batchguard(&["budgets", "list", "--store", store_arg]);
    assert_eq!(list.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&list.stderr).contains("budget genomics"),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );

    let again = batchguard(&["budgets", "apply", file, "--store", store_arg, "--json"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["version_before"], 1);
    assert_eq!(again["version"], 2);
    assert!(
        again["replaces_corrupt"]
            .as_str()
            .unwrap()
            .contains("budget genomics"),
        "{again}"
    );
    assert_eq!(again["changes"].as_array().unwrap().len(), 4);
    let list = batchguard(&["budgets", "list", "--store", store_arg, "--json"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["version"], 2);
}

/// GIVEN the sample day in a SQLite store and a budgets file in which genomics is over its
/// amount (terminate) and imaging under its first threshold WHEN `enforce --budgets FILE` runs
/// (a dry run, on the emulator's Batch) THEN exactly genomics is ordered, with its figures in
/// the reason, and its action is recorded as a dry run under its name; `--applied-budgets`
/// before any apply is refused naming the apply to run, and after `budgets apply` gives the
/// same orders.
#[test]
fn enforce_acts_per_budget_from_a_file_or_the_applied_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.sqlite");
    let store = store.to_str().unwrap();
    let ingested = batchguard(&[
        "ingest",
        "--store",
        store,
        example("sample-day.jsonl").to_str().unwrap(),
    ]);
    assert!(ingested.status.success());
    let status = batchguard(&["status", "--json", "--store", store]);
    let as_of = serde_json::from_slice::<Value>(&status.stdout).unwrap()["as_of"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = dir.path().join("budgets.toml");
    std::fs::write(
        &file,
        r#"
[[budget]]
name = "genomics"
amount_usd = "0.05"
period = "day"
scope = { tags = ["team=genomics"] }
thresholds = [{ at_percent = "100", action = "terminate" }]

[[budget]]
name = "imaging"
amount_usd = "100000"
period = "day"
scope = { tags = ["team=imaging"] }
thresholds = [{ at_percent = "100", action = "terminate" }]
"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let enforce = |source: &[&str]| {
        let mut args = vec![
            "enforce",
            "--json",
            "--dry-run",
            "--store",
            store,
            "--period",
            "day",
            "--at",
            &as_of,
        ];
        args.extend_from_slice(source);
        batchguard(&args)
    };
    let output = enforce(&["--budgets", file]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    let orders = document["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["budget"], "genomics");
    assert_eq!(orders[0]["action"], "terminate");
    assert!(
        orders[0]["reason"]
            .as_str()
            .unwrap()
            .contains("of 0.05 USD this period"),
        "{orders:?}"
    );
    let actions = document["report"]["actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["action"] == "budget_reached" && a["budget"] == "genomics"),
        "{actions:?}"
    );
    assert_eq!(document["report"]["dry_run"], true);

    let refused = enforce(&["--applied-budgets"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("batchguard budgets apply"), "{stderr}");

    let applied = batchguard(&["budgets", "apply", file, "--store", store]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let output = enforce(&["--applied-budgets"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let again: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(again["orders"], document["orders"]);
}

/// GIVEN the sample day's first 400 events with `batchguard:max-usd` on three jobs — one that
/// ended over its cap of a tenth of a cent, one still running with a cap a dollar over its
/// cost, one whose tag is not an amount WHEN `replay --json` reads them THEN each is listed
/// with its cost against its cap: the first ended over it, the second running with the second
/// its cost reaches the cap (as a local replay works it out), the third not capped, with why.
#[test]
fn replay_lists_the_capped_jobs_with_their_cost_against_their_cap() {
    use shared::core::caps::{CAP_TAG, cap_reached_at, cost_at};
    use shared::core::projection::GroupProjection;

    let text = std::fs::read_to_string(example("sample-day.jsonl")).unwrap();
    let mut events: Vec<Value> = text
        .lines()
        .take(400)
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    let ledger = batchguard_tests::replay_ledger(&lines, shared::core::budget::BudgetPeriod::Month);
    let at = ledger.latest_instant().unwrap().ceil_seconds();
    let running = ledger.running_jobs()[0].to_owned();
    let ended = events
        .iter()
        .filter(|e| e["detail-type"] == "Batch Job State Change")
        .find(|e| e["detail"]["status"] == "SUCCEEDED")
        .unwrap()["detail"]["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let untyped = events
        .iter()
        .filter(|e| e["detail-type"] == "Batch Job State Change")
        .map(|e| e["detail"]["jobId"].as_str().unwrap().to_owned())
        .find(|id| *id != running && *id != ended)
        .unwrap();
    let running_cost = cost_at(&GroupProjection::of_job(&ledger, &running), at);
    let running_cap = (running_cost + Decimal::ONE).round_dp(2);
    for event in &mut events {
        if event["detail-type"] != "Batch Job State Change" {
            continue;
        }
        let id = event["detail"]["jobId"].as_str().unwrap().to_owned();
        let value = if id == ended {
            "0.001".to_owned()
        } else if id == running {
            running_cap.to_string()
        } else if id == untyped {
            "ten dollars".to_owned()
        } else {
            continue;
        };
        event["detail"]["tags"][CAP_TAG] = Value::String(value);
    }
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capped.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let tagged = batchguard_tests::replay_ledger(&lines, shared::core::budget::BudgetPeriod::Month);
    let crossing =
        cap_reached_at(&GroupProjection::of_job(&tagged, &running), running_cap).unwrap();

    let output = batchguard(&["replay", "--json", file.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let capped = report["capped_jobs"].as_array().unwrap();
    assert_eq!(capped.len(), 3, "{capped:?}");
    let line = |id: &str| capped.iter().find(|l| l["job_id"] == id).unwrap().clone();
    let over = line(&ended);
    assert_eq!(over["running"], false);
    assert_eq!(over["over_cap"], true);
    assert_eq!(decimal(&over["cap_usd"]), Decimal::new(1, 3));
    let under = line(&running);
    assert_eq!(under["running"], true);
    assert_eq!(under["over_cap"], false);
    assert_eq!(decimal(&under["cap_usd"]), running_cap);
    assert_eq!(
        under["reaches_cap_at"],
        shared::analysis::report::instant(crossing)
    );
    assert_eq!(capped[0]["job_id"], running, "running jobs first");
    let bad = line(&untyped);
    assert!(bad["cap_usd"].is_null());
    assert!(
        bad["cap_error"].as_str().unwrap().contains("ten dollars"),
        "{bad}"
    );
}
