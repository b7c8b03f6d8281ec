#!/usr/bin/env bash
# `npm run start:aws-local`: the daemon's AWS stack on this machine, without an AWS account.
# Makes sure of the Python toolchain (plugins and the plugin builder need CPython >= 3.12 and uv)
# and of moto (S3, DynamoDB, Secrets Manager), then runs src/aws-local/main.ts, which bundles the
# handlers, synthesises the stack and deploys it onto local stand-ins. Options: see --help.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHON_INTERPRETER_PATH="${PYTHON_INTERPRETER_PATH:-$(bash scripts/python-toolchain.sh python)}"
export UV_PATH="${UV_PATH:-$(bash scripts/python-toolchain.sh uv)}"
bash scripts/aws-emulator.sh >/dev/null
exec node --import tsx src/aws-local/main.ts "$@"
