#!/usr/bin/env bash
# `npm start`: makes sure plugins have a Python >= 3.12 and uv (found, or built once into the
# cache by scripts/python-toolchain.sh), bundles the local daemon, and runs it on port 5002 with
# the node options scripts/build-local.mjs prints before the entry (its NODE_FLAGS).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHON_INTERPRETER_PATH="${PYTHON_INTERPRETER_PATH:-$(bash scripts/python-toolchain.sh python)}"
export UV_PATH="${UV_PATH:-$(bash scripts/python-toolchain.sh uv)}"
built="$(node scripts/build-local.mjs)"
mapfile -t node_args <<<"$built"
exec node "${node_args[@]}" "$@"
