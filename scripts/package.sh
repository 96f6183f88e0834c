#!/usr/bin/env bash
# Builds the deployment package of the Functions app: a zip of the app code (function_app.py, host.json,
# requirements.txt and the app packages) and build.json (commit and build time, reported by /api/health), and
# with --with-deps also its locked dependencies for Linux x64 / Python 3.11 under
# .python_packages/lib/site-packages, so the platform runs it without a remote build.
#
#   scripts/package.sh [--with-deps] [--output dist/app.zip]
#
# The CI pipelines deploy the --with-deps package they tested; `azd deploy` builds its own (remote build).
set -euo pipefail
cd "$(dirname "$0")/.."

output="dist/app.zip"
with_deps=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --with-deps) with_deps=1 ;;
    --output) output="$2"; shift ;;
    *) echo "usage: $0 [--with-deps] [--output FILE]" >&2; exit 2 ;;
  esac
  shift
done

# What runs in Azure. Tests, devhost (and local_hooks.py), training, benchmarks, docs, .venv and node_modules are left out.
app_files=(function_app.py host.json requirements.txt)
app_dirs=(shared triggers orchestrations activities models)

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

for file in "${app_files[@]}"; do
  [[ -f "$file" ]] || { echo "package: missing $file" >&2; exit 1; }
  cp "$file" "$stage/"
done
for dir in "${app_dirs[@]}"; do
  if [[ -d "$dir" ]]; then
    # Copy without caches; the app's own packages hold no symlinks or build output.
    (tar --exclude='__pycache__' --exclude='*.pyc' -cf - "$dir") | (cd "$stage" && tar -xf -)
  else
    echo "package: note: $dir/ does not exist yet, skipped" >&2
  fi
done

bash scripts/build-info.sh "$stage/build.json"

if ((with_deps)); then
  # Binary wheels for the Functions Linux image (x86_64, glibc, CPython 3.11), exactly the lock: every package
  # of requirements.txt at its pinned version, each file checked against its hash, whatever machine builds it.
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --require-hashes \
    --target "$stage/.python_packages/lib/site-packages" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --implementation cp --python-version 3.11 --only-binary=:all: \
    -r requirements.txt
fi

mkdir -p "$(dirname "$output")"
output="$(cd "$(dirname "$output")" && pwd)/$(basename "$output")"
rm -f "$output"
# Fixed timestamps and sorted entries: the same sources (and SOURCE_DATE_EPOCH for build.json) give the same zip.
find "$stage" -exec touch -h -d '1980-01-02T00:00:00Z' {} +
(cd "$stage" && find . -mindepth 1 -print | LC_ALL=C sort | sed 's#^\./##' | zip -q -X -y -@ "$output")
echo "package: $output ($(du -h "$output" | cut -f1))"
