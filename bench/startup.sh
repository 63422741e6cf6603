#!/bin/bash
# CLI start-up: wall time of `pinion --help` and `pinion version` against `node -e 1`, best of N runs each, in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-7}
best() {
  local best=999
  for _ in $(seq "$runs"); do
    local start end
    start=$(date +%s%N); "$@" >/dev/null 2>&1; end=$(date +%s%N)
    best=$(awk -v a="$best" -v b="$(( (end - start) / 1000000 ))" 'BEGIN { print (b < a) ? b : a }')
  done
  echo "$best"
}
floor=$(best node -e 1)
help=$(best ./bin/run.js --help)
version=$(best ./bin/run.js version)
printf 'node -e 1        %5d ms\n' "$floor"
printf 'pinion --help    %5d ms  %.1fx\n' "$help" "$(awk -v a="$help" -v b="$floor" 'BEGIN { print a / b }')"
printf 'pinion version   %5d ms  %.1fx\n' "$version" "$(awk -v a="$version" -v b="$floor" 'BEGIN { print a / b }')"
