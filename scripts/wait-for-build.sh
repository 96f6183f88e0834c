#!/usr/bin/env bash
# After a deploy: polls GET <app url>/api/health until it reports the expected commit, and fails when it still
# reports another build (or nothing) after the time limit. A deployment task can report success while the
# old code keeps running (Flex Consumption), so "answers 200" is not enough: the answer must be the new build.
#
#   scripts/wait-for-build.sh APP_URL COMMIT [TIMEOUT_SECONDS=300] [INTERVAL_SECONDS=10]
set -euo pipefail
url="${1:?usage: $0 APP_URL COMMIT [TIMEOUT_SECONDS] [INTERVAL_SECONDS]}"
expected="${2:?usage: $0 APP_URL COMMIT [TIMEOUT_SECONDS] [INTERVAL_SECONDS]}"
timeout="${3:-300}"
interval="${4:-10}"

deadline=$((SECONDS + timeout))
reported="nothing"
while :; do
  if body="$(curl --fail --silent --show-error --max-time 10 "$url/api/health" 2>&1)"; then
    reported="$(printf '%s' "$body" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("commit", "no commit field"))' 2>/dev/null || echo "a body that is not JSON")"
    if [[ "$reported" == "$expected" ]]; then
      echo "wait-for-build: $url runs commit $expected: $body"
      exit 0
    fi
  else
    reported="an error ($body)"
  fi
  if ((SECONDS + interval > deadline)); then
    break
  fi
  echo "wait-for-build: $url/api/health reports $reported; waiting for commit $expected"
  sleep "$interval"
done
echo "wait-for-build: after ${timeout} s $url/api/health still reports $reported, not the deployed commit $expected" >&2
exit 1
