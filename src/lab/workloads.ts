import type {Clients} from '../cluster/kubeconfig.js'

/**
 * The sample workload `lab up` creates: per node N pods labelled app=web that
 * answer on TCP 80 and UDP 53 (and echo on TCP 7), and a ClusterIP Service
 * "web" over ports 80 and 53.
 */
export function workloadPods(nodeNames: readonly string[], perNode: number) {
  return nodeNames.flatMap((node, n) =>
    Array.from({length: perNode}, (_, i) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {name: `web-${n + 1}-${i + 1}`, namespace: 'default', labels: {app: 'web'}},
      spec: {
        nodeName: node,
        containers: [{name: 'web', image: 'pinion.dev/lab-server:1', ports: [{name: 'http', containerPort: 80, protocol: 'TCP'}, {name: 'dns', containerPort: 53, protocol: 'UDP'}, {name: 'echo', containerPort: 7, protocol: 'TCP'}]}],
      },
    })),
  )
}

export const WEB_SERVICE = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: {name: 'web', namespace: 'default'},
  spec: {selector: {app: 'web'}, ports: [{name: 'http', port: 80, targetPort: 'http', protocol: 'TCP'}, {name: 'dns', port: 53, targetPort: 'dns', protocol: 'UDP'}]},
}

export async function createWorkloads(api: Clients, nodeNames: readonly string[], perNode: number): Promise<void> {
  for (const pod of workloadPods(nodeNames, perNode)) await api.core.createNamespacedPod({namespace: 'default', body: pod})
  if (perNode > 0) await api.core.createNamespacedService({namespace: 'default', body: WEB_SERVICE})
}
