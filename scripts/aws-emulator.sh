#!/usr/bin/env bash
# Installs moto in server mode (an AWS-compatible S3/DynamoDB/Lambda endpoint for tests) into a
# private virtualenv and prints the path of its `moto_server` executable.
# Idempotent: when the pinned version is already installed it only prints the path.
# Concurrent callers (parallel test workers) serialise on a lock file instead of racing pip.
set -euo pipefail

MOTO_VERSION="5.2.5"
cache_root="${DIFY_DAEMON_CACHE:-$HOME/.cache/dify-plugin-daemon-aws}"
venv="$cache_root/moto"
stamp="$venv/.installed-moto-$MOTO_VERSION"
server="$venv/bin/moto_server"

if [[ -f "$stamp" && -x "$server" ]]; then
  echo "$server"
  exit 0
fi

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "aws-emulator: $python not found" >&2; exit 1; }

mkdir -p "$cache_root"
exec 9>"$cache_root/moto.lock"
flock 9

# Another caller may have finished the install while we waited for the lock.
if [[ ! -f "$stamp" || ! -x "$server" ]]; then
  echo "aws-emulator: installing moto[server]==$MOTO_VERSION into $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" >&2
  touch "$stamp"
fi

echo "$server"
