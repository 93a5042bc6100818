#!/usr/bin/env bash
# A newcomer's walk through batchguard on the local AWS emulator, no AWS account needed:
# a job queue on the emulator, then generate → ingest → status → report → enforce --dry-run →
# enforce → status (the audit trail) → enforce --restore. Each command is printed before it
# runs; the queue's state is checked after each enforcement. The test command runs it too.
#
#   bash scripts/walkthrough.sh
#
# It installs the emulator (moto) into .venv-tools and starts it on a free loopback port unless
# AWS_ENDPOINT_URL is set; BATCHGUARD names the binary (default: a release build of the CLI).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=".venv-tools"
bg="${BATCHGUARD:-target/release/batchguard}"
if [ ! -x "$bg" ]; then
    cargo build --release -p batchguard-cli
fi
if [ ! -x "$venv/bin/moto_server" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    moto=$!
    trap 'kill "$moto" 2>/dev/null || true' EXIT
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/moto-api/" && break; sleep 0.1; done
    export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
    export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
fi
# Without Docker, the emulator must not try to run Batch jobs in containers.
curl -sf -X POST -H 'Content-Type: application/json' -d '{"batch":{"use_docker":false}}' \
    "$AWS_ENDPOINT_URL/moto-api/config" >/dev/null

work=$(mktemp -d)
step() {
    echo "+ $*" >&2
    "$@"
}
# The state of the generated day's `etl-spot` queue on the emulator (boto3 comes with moto).
queue() {
    "$venv/bin/python" - "$@" <<'PY'
import os, sys, boto3
region = os.environ.get("AWS_REGION", "us-east-1")
batch = boto3.client("batch", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=region)
if sys.argv[1:] == ["create"]:
    iam = boto3.client("iam", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=region)
    try:
        role = iam.create_role(RoleName="walkthrough-batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName="walkthrough-batch")["Role"]["Arn"]
    if not batch.describe_job_queues(jobQueues=["etl-spot"])["jobQueues"]:
        batch.create_compute_environment(computeEnvironmentName="walkthrough-ce", type="UNMANAGED", state="ENABLED", serviceRole=role)
        batch.create_job_queue(jobQueueName="etl-spot", priority=1, state="ENABLED",
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "walkthrough-ce"}])
    batch.update_job_queue(jobQueue="etl-spot", state="ENABLED")
print(batch.describe_job_queues(jobQueues=["etl-spot"])["jobQueues"][0]["state"])
PY
}
expect_queue() {
    local state
    state=$(queue)
    echo "  queue etl-spot is $state" >&2
    [ "$state" = "$1" ] || { echo "walkthrough: expected etl-spot $1, found $state" >&2; exit 1; }
}

echo "+ a job queue on the emulator: etl-spot" >&2
queue create >/dev/null
step "$bg" generate --out "$work/day.jsonl"
step "$bg" ingest --store "$work/day.db" "$work/day.jsonl"
step "$bg" status --store "$work/day.db" --budget 25
step "$bg" report --html "$work/day.html" --store "$work/day.db" --budget 25
# Enforce as of the day's last event (by default enforce evaluates now, a day the sample never saw).
at=$("$bg" status --json --store "$work/day.db" | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["as_of"])')
step "$bg" enforce --store "$work/day.db" --budget 5 --queues etl-spot --at "$at" --dry-run
expect_queue ENABLED
step "$bg" enforce --store "$work/day.db" --budget 5 --queues etl-spot --at "$at"
expect_queue DISABLED
step "$bg" status --store "$work/day.db" --budget 5 --at "$at"
step "$bg" enforce --store "$work/day.db" --restore --at "$at"
expect_queue ENABLED
rm -rf "$work"
echo "walkthrough: done" >&2
