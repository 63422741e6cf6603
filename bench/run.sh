#!/usr/bin/env bash
# `make bench`: every benchmark, each in a private mount namespace with its own bpffs.
set -euo pipefail
cd "$(dirname "$0")/.."
run() { echo; echo "== $*"; unshare --mount --propagation private -- node --import tsx "$@"; }
run bench/datapath-cost.ts
run bench/control-plane.ts
run bench/service-forwarding.ts
run bench/map-io.ts "${CT_ENTRIES:-1000000}"
run bench/scale.ts
run bench/agent.ts
echo; echo "== bench/startup.sh"; bench/startup.sh
