#!/usr/bin/env bash
# Assembles the plugin-runtime Lambda layer as a directory.
#
#   layers/build-layer.sh <outdir> [arch] [python-version]
#
#   arch            x86_64 | amd64 | arm64 | aarch64    (default x86_64)
#   python-version  Lambda runtime's Python, e.g. 3.12 (default 3.12, or $LAYER_PYTHON_VERSION)
#
# Result (zip the directory's contents, keeping file modes, to publish the layer):
#   <outdir>/dify-plugin-bootstrap       -> /opt/dify-plugin-bootstrap (AWS_LAMBDA_EXEC_WRAPPER)
#   <outdir>/python/dify_lambda_bootstrap -> /opt/python/dify_lambda_bootstrap
#   <outdir>/python/<SDK and its deps>   -> /opt/python, wheels for the Lambda platform
#
# The CDK app adds <outdir>/dify-sdk-speedups (the daemon's SDK savings, written from
# src/adapters/sdk-speedups.ts) after this script; a layer published without it runs
# plugins as well, without those savings.
#
# The packages come from layers/requirements.txt (or $LAYER_REQUIREMENTS) as binary
# wheels for manylinux/<arch>/CPython <python-version>, whatever the build machine
# is. Bytecode is compiled with a matching local interpreter when one is found
# (unchecked-hash .pyc files, valid without source timestamps); otherwise Lambda
# compiles in memory at every cold start, which is slower.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="${1:?usage: build-layer.sh <outdir> [arch] [python-version]}"
arch="${2:-x86_64}"
pyver="${3:-${LAYER_PYTHON_VERSION:-3.12}}"
reqs="${LAYER_REQUIREMENTS:-$here/requirements.txt}"

case "$arch" in
  x86_64 | amd64) march=x86_64 ;;
  arm64 | aarch64) march=aarch64 ;;
  *) echo "build-layer: unknown arch '$arch' (x86_64|amd64|arm64|aarch64)" >&2; exit 2 ;;
esac
[[ "$pyver" =~ ^3\.[0-9]+$ ]] || { echo "build-layer: python version must look like 3.12" >&2; exit 2; }

marker=".dify-plugin-layer"
if [[ -e "$out" ]]; then
  if [[ -n "$(ls -A "$out")" && ! -e "$out/$marker" ]]; then
    echo "build-layer: $out exists, is not empty and was not made by this script; refusing to overwrite" >&2
    exit 2
  fi
  rm -rf "${out:?}"/* "${out:?}/$marker"
fi
mkdir -p "$out/python"
started=$(date +%s)

# Any CPython >= 3.12 with pip can download wheels for another platform.
py="$("$repo/scripts/python-toolchain.sh" python)"

echo "build-layer: installing $(grep -m1 -E '^dify_plugin' "$reqs") for cp${pyver/./} manylinux $march" >&2
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore "$py" -m pip install --quiet \
  --target "$out/python" \
  --platform "manylinux2014_$march" \
  --platform "manylinux_2_28_$march" \
  --platform "manylinux_2_34_$march" \
  --implementation cp \
  --python-version "$pyver" \
  --only-binary=:all: \
  --no-compile \
  -r "$reqs" >&2
# console scripts carry this machine's interpreter path; nothing in the layer uses them
rm -rf "$out/python/bin"

install -m 0755 "$here/plugin-runtime/bootstrap" "$out/dify-plugin-bootstrap"
mkdir -p "$out/python/dify_lambda_bootstrap"
install -m 0644 "$here"/plugin-runtime/dify_lambda_bootstrap/*.py "$out/python/dify_lambda_bootstrap/"

# Bytecode for the target Python, if an interpreter of that version is at hand.
compiler=""
for cand in "python$pyver" "$(command -v pyenv >/dev/null 2>&1 && pyenv root 2>/dev/null)/versions/$pyver"*/bin/python3; do
  if "$cand" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$pyver' else 1)" >/dev/null 2>&1; then
    compiler="$cand"; break
  fi
done
if [[ -z "$compiler" ]] && "$py" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$pyver' else 1)"; then
  compiler="$py"
fi
if [[ -n "$compiler" ]]; then
  "$compiler" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$out/python" >/dev/null
else
  echo "build-layer: warning: no local Python $pyver found, layer ships without bytecode" >&2
fi

touch "$out/$marker"
size=$(du -sm "$out" | cut -f1)
echo "build-layer: $out ready (${size} MiB unzipped, $(( $(date +%s) - started )) s)" >&2
