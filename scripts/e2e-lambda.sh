#!/usr/bin/env bash
# End to end through the real Lambda runtime: `cargo lambda watch` (from the cargo-lambda
# wheel) serves the Lambda Runtime API and runs the collector binary; every real event in
# tests/fixtures/events, and one broken event, is invoked; the DynamoDB tables on the emulator
# must then report what a local replay of the same events reports. The admitter binary is run
# the same way on the Batch events, over a budgets file applied to the same tables and a drain
# gate written there for a budget none of the sample jobs counts in: it must read both and
# admit every waiting job (the cancelling is tested on the in-memory Batch: tests/tests/arrivals.rs).
# Expects AWS_ENDPOINT_URL (the emulator) and .venv-tools on PATH; called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="bg-e2e-$$"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
batchguard=target/debug/batchguard
cargo build --quiet -p batchguard-cli -p collector -p admitter
"$batchguard" init --store "dynamodb:$prefix" >/dev/null

cargo lambda watch -A 127.0.0.1 -P "$port" -p collector \
    --env-var "EVENTS_TABLE=$prefix-events,STATE_TABLE=$prefix-state,AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" \
    >target/lambda-watch.log 2>&1 &
watch_pid=$!
admitter_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
cargo lambda watch -A 127.0.0.1 -P "$admitter_port" -p admitter \
    --env-var "EVENTS_TABLE=$prefix-events,STATE_TABLE=$prefix-state,AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" \
    >target/lambda-watch-admitter.log 2>&1 &
admitter_pid=$!
trap 'kill "$watch_pid" "$admitter_pid" 2>/dev/null || true' EXIT
for listening in "$port" "$admitter_port"; do
    for _ in $(seq 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$listening") 2>/dev/null; then break; fi
        sleep 0.2
    done
done

responses=target/lambda-responses.jsonl
: >"$responses"
for event in tests/fixtures/events/*.json; do
    cargo lambda invoke collector -A 127.0.0.1 -P "$port" --data-file "$event" >>"$responses"
    echo >>"$responses"
done
cargo lambda invoke collector -A 127.0.0.1 -P "$port" \
    --data-ascii '{"id":"broken-1","detail-type":"Batch Job State Change","source":"aws.batch","detail":{"status":"RUNNING"}}' >>"$responses"
echo >>"$responses"

# The admitter: a budget for a team none of the samples' jobs belongs to, applied with the
# command line, and a drain gate for it as the enforcer writes one (now, today in UTC: a gate
# is trusted within the UTC day it was written in).
cat >target/lambda-budgets.toml <<'TOML'
[[budget]]
name = "nobody"
amount_usd = "1"
period = "month"
scope = { tags = ["team=nobody"] }
thresholds = [{ at_percent = "100", action = "drain" }]
TOML
"$batchguard" budgets apply --store "dynamodb:$prefix" target/lambda-budgets.toml >/dev/null
python3 - "$prefix-state" <<'PY'
import calendar, datetime, json, os, sys, time, boto3
now = datetime.datetime.now(datetime.timezone.utc)
start = calendar.timegm(datetime.datetime(now.year, now.month, now.day).timetuple())
# Judged with the budgets just applied: version 1 of a new store.
gate = {"written_at_ms": int(time.time() * 1000), "period_start": start, "book_version": 1,
        "draining": {"nobody": {"action": "drain", "since_ms": int(time.time() * 1000) - 60000,
                                "dry_run": False, "reason": "e2e"}}}
region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
boto3.client("dynamodb", region_name=region).put_item(TableName=sys.argv[1], Item={
    "pk": {"S": "GATE"}, "sk": {"S": "drain"}, "gate": {"S": json.dumps(gate)}})
PY
admitted=target/lambda-admitter.jsonl
: >"$admitted"
for event in tests/fixtures/events/batch_job_state_change_*.json tests/fixtures/events/rtm_batch-event-*.json; do
    cargo lambda invoke admitter -A 127.0.0.1 -P "$admitter_port" --data-file "$event" >>"$admitted"
    echo >>"$admitted"
done

"$batchguard" status --json --store "dynamodb:$prefix" >target/lambda-status.json
"$batchguard" replay --json tests/fixtures/events >target/lambda-replay.json 2>/dev/null

python3 - "$responses" target/lambda-status.json target/lambda-replay.json "$admitted" <<'PY'
import json, sys
responses = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
status, replay = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
admitted = [json.loads(line) for line in open(sys.argv[4]) if line.strip()]
waiting = [a for a in admitted if "job_id" in a]
checks = {
    "every invocation answered": len(responses) == 20,
    "12 facts stored (11 Batch, 1 ECS on a Batch cluster)": sum(r["stored"] + r["duplicates"] for r in responses) == 12,
    "7 events of other kinds skipped": sum(r["skipped"] for r in responses) == 7,
    "the broken event quarantined with its reason": responses[-1]["quarantined"] == 1 and "jobId" in responses[-1]["quarantine_reasons"][0],
    "spend from DynamoDB equals the local replay": status["spend_usd"] == replay["spend_usd"],
    "jobs from DynamoDB equal the local replay": status["jobs"] == replay["jobs"],
    "the admitter answered every Batch event": len(admitted) == 11,
    "the admitter judged the two RUNNABLE jobs on the live gate and the book, and admitted them":
        len(waiting) == 2 and all(a["outcome"] == f"job {a['job_id']} admitted" and not a.get("stale_gates") for a in waiting),
    "the admitter left the other Batch events alone":
        all(a["outcome"] == "not a waiting job's event" for a in admitted if "job_id" not in a),
}
passed = sum(checks.values())
for name, ok in checks.items():
    print(("ok     " if ok else "FAILED ") + name)
print(f"lambda e2e: {passed} passed, {len(checks) - passed} failed")
sys.exit(0 if passed == len(checks) else 1)
PY
