#!/usr/bin/env bash
# Ensures the Python toolchain that plugins need and prints where it is.
#
#   scripts/python-toolchain.sh [python]   print the path of a CPython >= 3.12
#   scripts/python-toolchain.sh uv         print the path of a `uv` binary
#   scripts/python-toolchain.sh build      (re)build CPython 3.13 from Debian's
#                                          source package into the cache, print it
#
# The Dify plugin SDK (dify_plugin >= 0.8) needs Python >= 3.12. The interpreter
# is chosen in this order, first match wins:
#   1. $DIFY_PLUGIN_PYTHON, if set (must be >= 3.12, else this script fails);
#   2. a previous build of this script in the cache directory;
#   3. python3.12 / python3.13 found on PATH that actually run;
#   4. an interpreter >= 3.12 installed by pyenv (if pyenv is present);
#   5. otherwise CPython 3.13 is built from Debian trixie's `python3.13` source
#      package (a few minutes on 2 cores, once per machine).
#
# Cache directory: ${DIFY_DAEMON_CACHE:-$HOME/.cache/dify-plugin-daemon-aws}
#   python/3.13/   the built interpreter (valid once python/3.13/.complete exists)
#   tools/         a venv holding the `uv` PyPI package (its wheel ships the binary)
#
# Only the path goes to stdout; progress and build logs go to stderr / log files,
# so callers can do PY="$(scripts/python-toolchain.sh python)".
set -euo pipefail

UV_VERSION="${DIFY_UV_VERSION:-0.13.9}"
CACHE_DIR="${DIFY_DAEMON_CACHE:-${HOME:-/tmp}/.cache/dify-plugin-daemon-aws}"
PY_PREFIX="$CACHE_DIR/python/3.13"
PY_BIN="$PY_PREFIX/bin/python3.13"
TOOLS_VENV="$CACHE_DIR/tools"

log() { printf '[python-toolchain] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Prints the real executable path of $1 if it runs and is CPython >= 3.12.
probe() {
  "$1" -c 'import sys
assert sys.implementation.name == "cpython" and sys.version_info >= (3, 12)
import ssl, ctypes, zlib, sqlite3
print(sys.executable)' 2>/dev/null
}

with_lock() {
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
}

cached_python() {
  [[ -f "$PY_PREFIX/.complete" && -x "$PY_BIN" ]] && probe "$PY_BIN"
}

# Reads URI and keyring of the machine's main Debian archive from apt's source
# lists (deb822 *.sources or one-line sources.list). Prints "URI<TAB>KEYRING".
debian_archive() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && uri != "" && uri !~ /security/ && found == "") found = uri "\t" key
        types = ""; uri = ""; key = ""
      }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "types:" { types = substr($0, index($0, ":") + 2) }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "signed-by:" { key = $2 }
      END { flush(); if (found != "") print found }
    ' "$f"
  done | head -n1 | grep . && return 0
  local line
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    line="$(grep -E '^[[:space:]]*deb[[:space:]]' "$f" | grep -v security | head -n1 || true)"
    [[ -n "$line" ]] || continue
    local key="" uri
    if [[ "$line" =~ signed-by=([^][:space:]]+) ]]; then key="${BASH_REMATCH[1]}"; fi
    uri="$(sed -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/' <<<"$line")"
    printf '%s\t%s\n' "$uri" "$key"
    return 0
  done
  return 1
}

ensure_build_deps() {
  local missing=() p
  for p in build-essential pkg-config libssl-dev libffi-dev zlib1g-dev libsqlite3-dev libbz2-dev \
    liblzma-dev libreadline-dev libncurses-dev uuid-dev xz-utils; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ "$(id -u)" == 0 ]]; then
    log "installing build dependencies: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
  else
    log "warning: missing build dependencies (not root, not installing): ${missing[*]}"
  fi
}

build_python() {
  command -v apt-get >/dev/null || die "no apt-get: set DIFY_PLUGIN_PYTHON to a CPython >= 3.12"
  local archive uri key work start
  archive="$(debian_archive)" || die "no Debian archive found in the apt source lists"
  uri="${archive%%$'\t'*}"; key="${archive#*$'\t'}"
  start=$(date +%s)
  log "building CPython 3.13 from Debian trixie sources (archive $uri); this takes a few minutes"
  ensure_build_deps

  work="$CACHE_DIR/python/build"
  rm -rf "$work" "$PY_PREFIX"
  mkdir -p "$work/apt/lists/partial" "$work/apt/archives/partial" "$work/src"

  # A private apt configuration: only a trixie deb-src entry, own lists and
  # cache, so the machine's apt state is left untouched.
  {
    echo "Types: deb-src"
    echo "URIs: $uri"
    echo "Suites: trixie"
    echo "Components: main"
    [[ -n "$key" ]] && echo "Signed-By: $key"
  } >"$work/apt/trixie-src.sources"
  local aptopts=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$work/apt/sparts"
    -o "Dir::State::Lists=$work/apt/lists"
    -o "Dir::Cache=$work/apt/cache"
    -o "Dir::Cache::archives=$work/apt/archives"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
  )
  mkdir -p "$work/apt/sparts" "$work/apt/cache"
  mv "$work/apt/trixie-src.sources" "$work/apt/sparts/"
  apt-get "${aptopts[@]}" update >"$work/apt.log" 2>&1 || { tail -n 20 "$work/apt.log" >&2; die "apt-get update (trixie deb-src) failed"; }
  (cd "$work/src" && apt-get "${aptopts[@]}" source --download-only python3.13) >>"$work/apt.log" 2>&1 \
    || { tail -n 20 "$work/apt.log" >&2; die "apt-get source python3.13 failed"; }

  local orig
  orig="$(find "$work/src" -maxdepth 1 -name "python3.13_*.orig.tar.*" | head -n1)"
  [[ -n "$orig" ]] || die "no python3.13 orig tarball downloaded"
  log "downloaded $(basename "$orig"); configuring"
  tar -xf "$orig" -C "$work/src"
  local srcdir
  srcdir="$(find "$work/src" -maxdepth 1 -type d -name 'Python-3.13*' | head -n1)"
  [[ -n "$srcdir" ]] || die "unpacked source directory not found"

  (
    cd "$srcdir"
    ./configure --prefix="$PY_PREFIX" --with-ensurepip=install >"$work/configure.log" 2>&1 \
      || { tail -n 30 "$work/configure.log" >&2; exit 1; }
    log "compiling (make -j$(nproc 2>/dev/null || echo 2))"
    make -j"$(nproc 2>/dev/null || echo 2)" >"$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; exit 1; }
    make install >"$work/install.log" 2>&1 || { tail -n 30 "$work/install.log" >&2; exit 1; }
  ) || die "CPython build failed (logs in $work)"

  probe "$PY_BIN" >/dev/null || die "built interpreter does not import ssl/ctypes/zlib/sqlite3"
  touch "$PY_PREFIX/.complete"
  rm -rf "$work"
  log "built $("$PY_BIN" -V 2>&1) in $(( $(date +%s) - start )) s"
}

find_python() {
  local p
  if [[ -n "${DIFY_PLUGIN_PYTHON:-}" ]]; then
    probe "$DIFY_PLUGIN_PYTHON" || die "DIFY_PLUGIN_PYTHON=$DIFY_PLUGIN_PYTHON is not a working CPython >= 3.12"
    return 0
  fi
  cached_python && return 0
  for p in python3.12 python3.13; do
    command -v "$p" >/dev/null 2>&1 && probe "$p" && return 0
  done
  if command -v pyenv >/dev/null 2>&1; then
    local root v
    root="$(pyenv root 2>/dev/null || true)"
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9]|[2-9][0-9])\.[0-9]+$' | sort -t. -k2,2n -k3,3n); do
      probe "$root/versions/$v/bin/python3" && return 0
    done
  fi
  return 1
}

ensure_python() {
  find_python && return 0
  with_lock
  cached_python && return 0 # built meanwhile by a concurrent run
  build_python >&2
  cached_python
}

ensure_uv() {
  local uv="$TOOLS_VENV/bin/uv"
  if [[ -x "$uv" ]] && [[ "$("$uv" --version 2>/dev/null)" == "uv $UV_VERSION"* ]]; then
    echo "$uv"; return 0
  fi
  local py
  py="$(ensure_python)"
  with_lock
  if ! [[ -x "$uv" && "$("$uv" --version 2>/dev/null)" == "uv $UV_VERSION"* ]]; then
    log "installing uv $UV_VERSION into $TOOLS_VENV"
    rm -rf "$TOOLS_VENV"
    "$py" -m venv "$TOOLS_VENV" >&2
    "$TOOLS_VENV/bin/python" -m pip install --disable-pip-version-check -q "uv==$UV_VERSION" >&2
  fi
  "$uv" --version >/dev/null || die "uv did not install"
  echo "$uv"
}

case "${1:-python}" in
  python) ensure_python ;;
  uv) ensure_uv ;;
  build) with_lock; build_python >&2; cached_python ;;
  -h | --help | help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (expected: python | uv | build)" ;;
esac
