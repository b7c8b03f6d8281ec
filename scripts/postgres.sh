#!/usr/bin/env bash
# Prints the directory that holds PostgreSQL's server programs (initdb, pg_ctl), installing
# Debian's postgresql package first when none is found. Only the Go daemon migration test needs
# a PostgreSQL server (test/support/postgres.ts starts a throwaway one from these programs).
#
# The package is installed without its default cluster (create_main_cluster = false), so the
# install starts no server of its own; apt's output goes to stderr, stdout is only the path.
set -euo pipefail

find_bindir() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    echo "$dir"
    return 0
  fi
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  return 1
}

if find_bindir; then exit 0; fi

echo "PostgreSQL server programs not found: installing Debian's postgresql package" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
apt_install() { $sudo apt-get install -y --no-install-recommends "$@" >&2; }
# A fresh machine has no package lists yet; refresh them only when the first attempt fails.
apt_install postgresql-common || { $sudo apt-get update >&2 && apt_install postgresql-common; }
# Like the official postgres image: no default cluster, so installing the server starts none.
$sudo sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*$/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
apt_install postgresql

find_bindir || { echo "postgresql was installed but initdb/pg_ctl are still not found" >&2; exit 1; }
