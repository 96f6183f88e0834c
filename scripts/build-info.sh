#!/usr/bin/env bash
# Writes build.json, the identity of a deployment package: the commit it was built from and when.
# GET /api/health reports it, and both CI pipelines (scripts/wait-for-build.sh) compare it with the commit
# they deployed, so a deployment that reported success but left the old code running fails the pipeline.
#
#   scripts/build-info.sh OUTPUT      # BUILD_COMMIT overrides `git rev-parse HEAD`;
#                                     # SOURCE_DATE_EPOCH (seconds) overrides the build time;
#                                     # BUILD_FUNCTIONS (names, one a line) lists the functions the package indexes
#
# `functions` is what scripts/package.sh --with-deps found by indexing the package in isolation: what the running
# app must report on /api/health (scripts/wait-for-build.sh --package compares them).
set -euo pipefail
out="${1:?usage: $0 OUTPUT}"
root="$(cd "$(dirname "$0")/.." && pwd)"

commit="${BUILD_COMMIT:-$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)}"
if [[ ! "$commit" =~ ^([0-9a-f]{7,64}|unknown)$ ]]; then
  echo "build-info: BUILD_COMMIT must be a hexadecimal commit id, got '$commit'" >&2
  exit 2
fi
if [[ -n "${SOURCE_DATE_EPOCH:-}" ]]; then
  built_at="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
else
  built_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
fi
functions=()
while read -r name; do
  [[ -z "$name" ]] && continue
  if [[ ! "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    echo "build-info: BUILD_FUNCTIONS must hold function names, one a line, got '$name'" >&2
    exit 2
  fi
  functions+=("\"$name\"")
done <<<"${BUILD_FUNCTIONS:-}"
if ((${#functions[@]})); then
  printf -v listed '%s, ' "${functions[@]}"
  printf '{"commit": "%s", "built_at": "%s", "functions": [%s]}\n' "$commit" "$built_at" "${listed%, }" > "$out"
else
  printf '{"commit": "%s", "built_at": "%s"}\n' "$commit" "$built_at" > "$out"
fi
echo "build-info: $out: commit $commit, built $built_at, ${#functions[@]} functions listed"
