#!/usr/bin/env bash
# After a deploy: polls GET <app url>/api/health until it reports the expected commit and, with --package, exactly
# the functions that package indexed when it was built (its build.json, written by scripts/package.sh --with-deps),
# and fails when it still reports something else (or nothing) after the time limit. A deployment task can report
# success while the old code keeps running (Flex Consumption), and an app that answers HTTP may still have lost its
# Durable, Event Grid or timer functions: the answer must be the new build, with every function.
#
#   scripts/wait-for-build.sh [--package APP_ZIP|DIR] APP_URL COMMIT [TIMEOUT_SECONDS=300] [INTERVAL_SECONDS=10]
#
# The package is the zip CI deploys or the directory azd ships (dist/azd-package).
set -euo pipefail
usage="usage: $0 [--package APP_ZIP|DIR] APP_URL COMMIT [TIMEOUT_SECONDS] [INTERVAL_SECONDS]"

expected_functions=""
if [[ "${1:-}" == "--package" ]]; then
  package="${2:?$usage}"
  shift 2
  expected_functions="$(python3 -c 'import json, pathlib, sys, zipfile
path = pathlib.Path(sys.argv[1])
text = (path / "build.json").read_text() if path.is_dir() else zipfile.ZipFile(path).read("build.json")
print("\n".join(json.loads(text).get("functions") or []))' "$package")" || {
    echo "wait-for-build: cannot read build.json from the package $package" >&2
    exit 2
  }
  if [[ -z "$expected_functions" ]]; then
    echo "wait-for-build: $package lists no functions in its build.json: build it with scripts/package.sh" \
      "--with-deps on CPython 3.11 x86-64, which indexes it" >&2
    exit 2
  fi
fi
url="${1:?$usage}"
expected="${2:?$usage}"
timeout="${3:-300}"
interval="${4:-10}"

# Prints what the health answer reports; exits 0 when that is the expected commit (and functions, if given).
describe='import json, os, sys
try:
    data = json.load(sys.stdin)
except ValueError:
    print("a body that is not JSON")
    sys.exit(1)
commit = data.get("commit", "no commit field") if isinstance(data, dict) else "no commit field"
if commit != os.environ["EXPECTED"]:
    print(commit)
    sys.exit(1)
wanted = set(os.environ["FUNCTIONS"].split())
if not wanted:
    print(commit)
    sys.exit(0)
got = set(data.get("functions") or [])
if got == wanted:
    print(f"{commit} with its {len(got)} functions")
    sys.exit(0)
print(f"{commit} without the functions {sorted(wanted - got)}" + (f" and with {sorted(got - wanted)}" if got - wanted else ""))
sys.exit(1)'

what="commit $expected"
[[ -n "$expected_functions" ]] && what+=" with the $(wc -l <<<"$expected_functions") functions of the package"
deadline=$((SECONDS + timeout))
reported="nothing"
while :; do
  if body="$(curl --fail --silent --show-error --max-time 10 "$url/api/health" 2>&1)"; then
    if reported="$(printf '%s' "$body" | EXPECTED="$expected" FUNCTIONS="$expected_functions" python3 -c "$describe")"; then
      echo "wait-for-build: $url runs $what: $reported"
      exit 0
    fi
  else
    reported="an error ($body)"
  fi
  if ((SECONDS + interval > deadline)); then
    break
  fi
  echo "wait-for-build: $url/api/health reports $reported; waiting for $what"
  sleep "$interval"
done
echo "wait-for-build: after ${timeout} s $url/api/health still reports $reported, not the deployed $what" >&2
exit 1
