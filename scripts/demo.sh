#!/usr/bin/env bash
# `make demo`: Pinion end to end on this machine. Runs in a private mount
# namespace with its own bpffs so nothing it pins outlives it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PINION_DEMO_INNER:-}" ]; then
  exec unshare --mount --propagation private -- env PINION_DEMO_INNER=1 "$0" "$@"
fi
mount -t bpf bpf /sys/fs/bpf
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "pinion version"
./bin/run.js version
