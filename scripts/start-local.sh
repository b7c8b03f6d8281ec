#!/usr/bin/env bash
# `npm start`: makes sure plugins have a Python >= 3.12 and uv (found, or built once into the
# cache by scripts/python-toolchain.sh), then runs the local daemon on port 5002.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHON_INTERPRETER_PATH="${PYTHON_INTERPRETER_PATH:-$(bash scripts/python-toolchain.sh python)}"
export UV_PATH="${UV_PATH:-$(bash scripts/python-toolchain.sh uv)}"
exec node --import tsx src/local/main.ts "$@"
