#!/usr/bin/env bash
# `make demo`: Pinion end to end on this machine, in a private mount namespace
# with its own bpffs, so nothing it mounts or pins outlives it. The lab is
# always torn down, also when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PINION_DEMO_INNER:-}" ]; then
  exec unshare --mount --propagation private -- env PINION_DEMO_INNER=1 "$0" "$@"
fi
mount -t bpf bpf /sys/fs/bpf
LAB=demo
pinion() { ./bin/run.js "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
trap 'step "pinion lab down"; pinion lab down --name "$LAB"' EXIT

step "pinion version"
pinion version

step "pinion lab up: 3 nodes (network + mount namespaces), 2 web pods each, an API server on 127.0.0.1"
pinion lab down --name "$LAB" >/dev/null
pinion lab up --name "$LAB" --nodes 3 --pods-per-node 2
export KUBECONFIG="/run/pinion/lab/$LAB/kubeconfig"
kubectl get pods -o wide

step "pinion install: preflight, load, attach, fill maps from the cluster, then the agent on every node"
pinion install

step "pinion status"
pinion status

step "a NetworkPolicy: web pods accept only HTTP"
kubectl apply -f - <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-http-only}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{protocol: TCP, port: 80}]}]
YAML
# The agents enforce it on their own within milliseconds; sync has each reconcile now and report.
pinion sync

step "pinion traceflow: pod -> Service (DNAT to a backend), then a packet the policy denies"
pinion traceflow --source default/web-1-1 --destination-service default/web --dst-port 80 --expect delivered
pinion traceflow --source default/web-1-1 --destination default/web-2-1 --protocol udp --dst-port 53 --expect dropped

step "real traffic: pod -> ClusterIP"
VIP=$(kubectl get svc web -o jsonpath='{.spec.clusterIP}')
for i in 1 2 3; do kubectl exec web-1-1 -- "$(command -v node)" "$PWD/dist/lab/probe.js" tcp "$VIP" 80; done

step "pinion map dump: Services joined with backends, conntrack, policy"
pinion map dump services --node "$LAB-node-1"
pinion map dump ct --node "$LAB-node-1" --limit 6
pinion map dump policy --node "$LAB-node-2" --limit 6
pinion map list --node "$LAB-node-1"

step "pinion support-bundle"
pinion support-bundle -f "/tmp/pinion-demo-bundle.tar.gz"
# sed reads to the end, so tar never gets SIGPIPE (pipefail is on)
tar tzf /tmp/pinion-demo-bundle.tar.gz | sed -n '1,12p'
