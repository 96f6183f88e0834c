#!/usr/bin/env bash
# Runs a command until it succeeds, at most --attempts times, for what Azure makes true a little after it reports
# success (role assignments, new role definitions, a host that is still starting). Between attempts it waits with
# exponential backoff (--delay, doubling, at most --max-delay) and says what it waits for and what the command said.
# With --retry-on it retries only failures whose output matches that extended regular expression: any other failure
# is final at once, so a real error is not hidden behind minutes of retries.
#
#   scripts/with-retries.sh [--attempts 5] [--delay 15] [--max-delay 120] [--retry-on REGEX] [--stream] \
#     --waiting-for "what becomes true" -- COMMAND [ARGS...]
#
# The command's stdout and stderr are passed through after each attempt (with --stream, as they come, both on
# stderr: for long commands such as `azd provision`); the exit status is the command's.
set -euo pipefail
usage="usage: $0 [--attempts N] [--delay S] [--max-delay S] [--retry-on REGEX] [--stream] --waiting-for TEXT -- COMMAND..."

attempts=5
delay=15
max_delay=120
retry_on=""
waiting_for=""
stream=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --attempts) attempts="$2"; shift 2 ;;
    --delay) delay="$2"; shift 2 ;;
    --max-delay) max_delay="$2"; shift 2 ;;
    --retry-on) retry_on="$2"; shift 2 ;;
    --waiting-for) waiting_for="$2"; shift 2 ;;
    --stream) stream=1; shift ;;
    --) shift; break ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
[[ $# -gt 0 && -n "$waiting_for" ]] || { echo "$usage" >&2; exit 2; }
for number in "$attempts" "$delay" "$max_delay"; do
  [[ "$number" =~ ^[0-9]+$ ]] || { echo "with-retries: '$number' is not a whole number of attempts or seconds" >&2; exit 2; }
done

out="$(mktemp)"
err="$(mktemp)"
trap 'rm -f "$out" "$err"' EXIT
for ((attempt = 1; ; attempt++)); do
  status=0
  if ((stream)); then
    "$@" 2>&1 | tee "$err" >&2 || status="${PIPESTATUS[0]}"
  else
    "$@" >"$out" 2>"$err" || status=$?
    cat "$out"
    cat "$err" >&2
  fi
  ((status == 0)) && exit 0
  # What the command said: the line that made the failure retryable, else its last line of error output.
  if [[ -n "$retry_on" ]]; then
    said="$(grep -E -h -e "$retry_on" "$err" "$out" | head -n 1 || true)"
    if [[ -z "$said" ]]; then
      echo "with-retries: $1 failed (exit $status) with an error that waiting does not fix; not retrying" >&2
      exit "$status"
    fi
  else
    said="$(tail -n 1 "$err")"
  fi
  if ((attempt >= attempts)); then
    echo "with-retries: $1 still failing after $attempts attempts; gave up waiting for $waiting_for" >&2
    exit "$status"
  fi
  echo "with-retries: attempt $attempt/$attempts of $1 failed (${said:0:300}); waiting ${delay} s for" \
    "$waiting_for" >&2
  sleep "$delay"
  delay=$((delay * 2 > max_delay ? max_delay : delay * 2))
done
