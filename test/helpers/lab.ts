import * as k8s from '@kubernetes/client-node'
import {clients, type Clients} from '../../src/cluster/kubeconfig.js'
import {labDown, labUp, type LabSummary} from '../../src/lab/lab.js'
import {waitFor} from '../../src/lib/wait.js'
import {requireSystem} from './system.js'

/** A lab for one test file, named after the file and the process so parallel files never collide. */
export async function startLab(tag: string, nodes = 3, podsPerNode = 2): Promise<{lab: LabSummary; api: Clients}> {
  requireSystem(['ip', 'openssl', 'nsenter', 'unshare'])
  const name = `${tag}${process.pid % 10000}`.slice(0, 12)
  const lab = await labUp({name, nodes, podsPerNode})
  return {lab, api: clients({kubeconfig: lab.kubeconfig})}
}

export async function stopLab(lab: LabSummary | undefined): Promise<void> {
  if (lab) await labDown(lab.name)
}

/** A pod in the nodes' namespaces, like Pinion's debug pods. */
export async function hostPod(api: Clients, name: string, node: string): Promise<k8s.V1Pod> {
  await api.core.createNamespacedPod({namespace: 'default', body: {metadata: {name}, spec: {nodeName: node, hostNetwork: true, hostPID: true, tolerations: [{operator: 'Exists'}], containers: [{name: 'tools', image: 'pinion.dev/node-tools:1', command: ['sleep', 'infinity'], securityContext: {privileged: true}}]}}})
  return waitFor(`pod ${name} to run`, async () => {
    const pod = await api.core.readNamespacedPod({namespace: 'default', name})
    return pod.status?.phase === 'Running' ? pod : undefined
  })
}
