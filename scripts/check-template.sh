#!/usr/bin/env bash
# Checks the SAM templates offline (called by scripts/test.sh; needs .venv-tools from it):
# cfn-lint on both templates, `sam validate --lint`, and `sam build`, which compiles the four
# functions for arm64 with cargo-lambda and zig and leaves the bootstrap files under .aws-sam/.
# `sam local` needs Docker, which is not assumed: the functions' runtime path is tested by
# scripts/e2e-lambda.sh instead.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=".venv-tools"
export PATH="$PWD/$venv/bin:$PATH" SAM_CLI_TELEMETRY=0
# sam validate reads a region (nothing is called); the test command's emulator region will do.
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_REGION:-us-east-1}"

cfn-lint template.yaml examples/batch-environment.yaml
sam validate --lint
started=$(date +%s)
sam build
for function in CollectorFunction TickerFunction EnforcerFunction AdmitterFunction; do
    bootstrap=".aws-sam/build/$function/bootstrap"
    [ -x "$bootstrap" ] || { echo "sam build left no $bootstrap" >&2; exit 1; }
    # An arm64 (aarch64) ELF executable, as provided.al2023 on Graviton runs.
    head -c 20 "$bootstrap" | od -An -tx1 | tr -d ' \n' | grep -q '^7f454c46.*b700$' ||
        { echo "$bootstrap is not an aarch64 ELF file" >&2; exit 1; }
    echo "$function: $(stat -c %s "$bootstrap") bytes"
done
echo "template checks passed; sam build took $(( $(date +%s) - started )) s"
