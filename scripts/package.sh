#!/usr/bin/env bash
# Builds the deployment package of the Functions app: the app code (function_app.py, host.json, requirements.txt
# and the app packages) and build.json (commit, build time, and with --with-deps the functions it indexes, which
# /api/health and scripts/wait-for-build.sh compare), as a zip or as a directory.
#
#   scripts/package.sh [--with-deps] [--output dist/app.zip | --dir DIR]
#
# --with-deps adds the locked dependencies for Linux x64 / CPython 3.11 under .python_packages/lib/site-packages,
# where the platform looks for them, so the package runs as built, with no remote build: this is what every
# deployment ships (CI's zip, and `azd deploy` through the prepackage hook in azure.yaml, which asks for --dir).
# The dependencies are cached under $PACKAGE_CACHE_DIR (default dist/cache), keyed by the hash of requirements.txt,
# so only the first build of a lock downloads them. When the interpreter is CPython 3.11 on x86-64 Linux, the
# package is then indexed in isolation (scripts/index_functions.py) and a package that does not index is refused.
set -euo pipefail
cd "$(dirname "$0")/.."

output="dist/app.zip"
out_dir=""
with_deps=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --with-deps) with_deps=1 ;;
    --output) output="$2"; shift ;;
    --dir) out_dir="$2"; shift ;;
    *) echo "usage: $0 [--with-deps] [--output FILE | --dir DIR]" >&2; exit 2 ;;
  esac
  shift
done

# What runs in Azure. Tests, devhost (and local_hooks.py), training, benchmarks, docs, .venv and node_modules are left out.
app_files=(function_app.py host.json requirements.txt)
app_dirs=(shared triggers orchestrations activities models)
site_packages=".python_packages/lib/site-packages"
# Binary wheels for the Functions Linux image (x86_64, glibc, CPython 3.11), exactly the lock: every package of
# requirements.txt at its pinned version, each file checked against its hash, whatever machine builds it.
pip_target_args=(--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64
  --implementation cp --python-version 3.11 --only-binary=:all:)
cache_dir="${PACKAGE_CACHE_DIR:-dist/cache}"

# Staged next to the dependency cache, so the dependencies can be hard-linked rather than copied (500 MB).
mkdir -p "$cache_dir"
stage="$(mktemp -d "$cache_dir/.stage.XXXXXX")"
chmod 755 "$stage"
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

# The locked dependencies, installed once per lock into the cache (atomically: a concurrent build keeps its own).
cached_dependencies() {
  local key deps tmp
  key="$( (sha256sum requirements.txt; echo "${pip_target_args[*]}") | sha256sum | cut -c1-16)"
  deps="$cache_dir/python-packages-$key"
  if [[ ! -d "$deps" ]]; then
    tmp="$(mktemp -d "$cache_dir/.install.XXXXXX")"
    echo "package: installing requirements.txt for Linux x64 / CPython 3.11 into $deps (once per lock)" >&2
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --require-hashes \
      --target "$tmp/$site_packages" "${pip_target_args[@]}" -r requirements.txt
    mv -T "$tmp" "$deps" 2>/dev/null || rm -rf "$tmp"
  fi
  printf '%s\n' "$deps"
}

runs_the_package() {
  python3 -c 'import platform, sys; sys.exit(not (sys.implementation.name == "cpython" and sys.version_info[:2] ==
    (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"))'
}

functions=""
if ((with_deps)); then
  deps="$(cached_dependencies)"
  mkdir -p "$stage/.python_packages/lib"
  # Hard links when the cache is on the same file system (instant), a copy otherwise.
  cp -al "$deps/$site_packages" "$stage/.python_packages/lib/" 2>/dev/null ||
    cp -a "$deps/$site_packages" "$stage/.python_packages/lib/"
  if runs_the_package; then
    # -I -S: the package and the standard library only, as in Azure; -B: leave no bytecode in the package.
    functions="$(python3 -I -S -B scripts/index_functions.py "$stage")"
    echo "package: the package indexes $(wc -l <<<"$functions") functions in isolation" >&2
  else
    echo "package: note: not indexed (its Linux wheels load on CPython 3.11 x86-64 only); build.json lists no functions" >&2
  fi
fi

BUILD_FUNCTIONS="$functions" bash scripts/build-info.sh "$stage/build.json"

# Fixed timestamps and sorted entries: the same sources (and SOURCE_DATE_EPOCH for build.json) give the same zip.
find "$stage" -exec touch -h -d '1980-01-02T00:00:00Z' {} +

if [[ -n "$out_dir" ]]; then
  rm -rf "$out_dir"
  mkdir -p "$(dirname "$out_dir")"
  mv -T "$stage" "$out_dir"
  trap - EXIT
  # azd zips this directory with the .funcignore it finds there; without one it would apply its own default
  # exclusions (__pycache__ among them). This one excludes nothing, so azd ships exactly what is here.
  printf '# Written by scripts/package.sh: azd ships this directory as is.\n' >"$out_dir/.funcignore"
  echo "package: $out_dir ($(du -sh "$out_dir" | cut -f1))"
  exit 0
fi

mkdir -p "$(dirname "$output")"
output="$(cd "$(dirname "$output")" && pwd)/$(basename "$output")"
rm -f "$output"
zip_sorted() { LC_ALL=C sort | sed 's#^\./##' | zip -q -X -y -@ "$1"; }
if ((with_deps)); then
  # The dependencies are compressed once per lock (about 35 s) and the app is added to a copy of that layer.
  layer="$(cd "$(dirname "$deps")" && pwd)/$(basename "$deps").zip"
  if [[ ! -f "$layer" ]]; then
    (cd "$stage" && find .python_packages -print | zip_sorted "$layer.tmp.$$") && mv -f "$layer.tmp.$$" "$layer"
  fi
  cp "$layer" "$output"
  (cd "$stage" && find . -mindepth 1 -path ./.python_packages -prune -o -print | zip_sorted "$output")
else
  (cd "$stage" && find . -mindepth 1 -print | zip_sorted "$output")
fi
echo "package: $output ($(du -h "$output" | cut -f1))"
