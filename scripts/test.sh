#!/usr/bin/env bash
# The project's test command (README, "Set up"). CI (.ci/run) runs exactly this.
#
# 1. Installs the local AWS API emulator (moto_server), cargo-lambda (its Lambda Runtime API
#    emulator, `cargo lambda watch`, and the arm64 builds `sam build` runs, with zig), the SAM CLI
#    and cfn-lint from PyPI into .venv-tools if missing (in one pip command: installing sam-cli
#    on its own afterwards would downgrade moto's boto3), and jsonschema (AWS's EMF schema is
#    checked with it: scripts/validate-emf.py; moto and cfn-lint depend on it too, so pip
#    keeps the version they agree on).
# 2. Starts it on a free loopback port; tests reach it through AWS_ENDPOINT_URL and never
#    touch a real AWS account.
# 3. Formatting, lints as errors, then every test of the workspace, the functions through the
#    real Lambda runtime (scripts/e2e-lambda.sh), README's walkthrough (scripts/walkthrough.sh),
#    and the SAM templates (scripts/check-template.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"
CARGO_LAMBDA_VERSION="1.9.2"
SAM_VERSION="1.170.0"
CFN_LINT_VERSION="1.58.0"
venv=".venv-tools"
installed() {
    "$venv/bin/moto_server" --help >/dev/null 2>&1 &&
        "$venv/bin/cargo-lambda" lambda --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION" &&
        "$venv/bin/sam" --version 2>/dev/null | grep -q "$SAM_VERSION" &&
        "$venv/bin/cfn-lint" --version 2>/dev/null | grep -q "$CFN_LINT_VERSION" &&
        "$venv/bin/python" -c 'import jsonschema' 2>/dev/null
}
if ! installed; then
    echo "installing moto[server]==$MOTO_VERSION, cargo-lambda==$CARGO_LAMBDA_VERSION, aws-sam-cli==$SAM_VERSION, cfn-lint==$CFN_LINT_VERSION and jsonschema into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "moto[server]==$MOTO_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION" \
        "aws-sam-cli==$SAM_VERSION" "cfn-lint==$CFN_LINT_VERSION" jsonschema
fi

# Headless Chromium renders the HTML report once in a test (Debian's package).
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium (the HTML report's rendering test)" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The README's quick start builds the CLI without its default features (no AWS SDK, no Parquet).
cargo clippy -p batchguard-cli --no-default-features --locked -- -D warnings

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
mkdir -p target
# moto_server, serialising requests (scripts/moto-serial.py says why).
"$venv/bin/python" scripts/moto-serial.py -H 127.0.0.1 -p "$port" >target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 200); do
    if curl -sf -o /dev/null "http://127.0.0.1:$port/moto-api/"; then break; fi
    sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/moto-api/" || { echo "moto_server did not start:" >&2; cat target/moto.log >&2; exit 1; }
# No Docker engine here: moto must not try to run Batch jobs in containers.
curl -sf -X POST -H 'Content-Type: application/json' -d '{"batch":{"use_docker":false}}' \
    "http://127.0.0.1:$port/moto-api/config" >/dev/null

# A Batch compute environment on the emulator needs a service role that exists in its IAM.
curl -sf -X POST "http://127.0.0.1:$port/" \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0" \
    --data-urlencode "Action=CreateRole" --data-urlencode "Version=2010-05-08" \
    --data-urlencode "RoleName=batchguard-test-batch-service" \
    --data-urlencode 'AssumeRolePolicyDocument={"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"batch.amazonaws.com"},"Action":"sts:AssumeRole"}]}' \
    >/dev/null
export BATCHGUARD_TEST_BATCH_ROLE="arn:aws:iam::123456789012:role/batchguard-test-batch-service"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
# A managed EC2 compute environment on the emulator needs an instance profile, a subnet and a
# security group that exist there.
network=$("$venv/bin/python" scripts/emulator-network.py)
eval "$network"

cargo test --workspace --locked
PATH="$PWD/$venv/bin:$PATH" bash scripts/e2e-lambda.sh
# README's walkthrough on the emulator, with the CLI the tests built.
BATCHGUARD=target/debug/batchguard bash scripts/walkthrough.sh
bash scripts/check-template.sh
