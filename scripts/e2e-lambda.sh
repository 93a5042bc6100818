#!/usr/bin/env bash
# End to end through the real Lambda runtime: `cargo lambda watch` (from the cargo-lambda
# wheel) serves the Lambda Runtime API and runs the collector binary; every real event in
# tests/fixtures/events, and one broken event, is invoked; the DynamoDB tables on the emulator
# must then report what a local replay of the same events reports.
# Expects AWS_ENDPOINT_URL (the emulator) and .venv-tools on PATH; called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="bg-e2e-$$"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
batchguard=target/debug/batchguard
cargo build --quiet -p batchguard-cli -p collector
"$batchguard" init --store "dynamodb:$prefix" >/dev/null

cargo lambda watch -A 127.0.0.1 -P "$port" -p collector \
    --env-var "EVENTS_TABLE=$prefix-events,STATE_TABLE=$prefix-state,AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" \
    >target/lambda-watch.log 2>&1 &
watch_pid=$!
trap 'kill "$watch_pid" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.2
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

"$batchguard" status --json --store "dynamodb:$prefix" >target/lambda-status.json
"$batchguard" replay --json tests/fixtures/events >target/lambda-replay.json 2>/dev/null

python3 - "$responses" target/lambda-status.json target/lambda-replay.json <<'PY'
import json, sys
responses = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
status, replay = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
checks = {
    "every invocation answered": len(responses) == 20,
    "12 facts stored (11 Batch, 1 ECS on a Batch cluster)": sum(r["stored"] + r["duplicates"] for r in responses) == 12,
    "7 events of other kinds skipped": sum(r["skipped"] for r in responses) == 7,
    "the broken event quarantined with its reason": responses[-1]["quarantined"] == 1 and "jobId" in responses[-1]["quarantine_reasons"][0],
    "spend from DynamoDB equals the local replay": status["spend_usd"] == replay["spend_usd"],
    "jobs from DynamoDB equal the local replay": status["jobs"] == replay["jobs"],
}
passed = sum(checks.values())
for name, ok in checks.items():
    print(("ok     " if ok else "FAILED ") + name)
print(f"lambda e2e: {passed} passed, {len(checks) - passed} failed")
sys.exit(0 if passed == len(checks) else 1)
PY
