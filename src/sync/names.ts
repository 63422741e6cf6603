import type * as k8s from '@kubernetes/client-node'
import type {ClusterSnapshot} from '../cluster/snapshot.js'
import {mapPinPath} from '../datapath/catalogue.js'
import {nodeMapTool} from '../datapath/maptool.js'
import * as S from '../datapath/structs.js'
import type {NodeShell} from '../nodes/shell.js'
import {ClusterPlanner} from './plan.js'

/**
 * Names for what the datapath holds as numbers and addresses, shared by map
 * dumps, monitor, policy logs, traceflow and the support bundle.
 */
export interface ClusterNames {
  /** pod IP -> namespace/name */
  pods: Map<string, string>
  /** "VIP:port/PROTO" (and the bare VIP) -> namespace/name of the Service */
  services: Map<string, string>
  /** identity -> the pods (or CIDR) it stands for */
  identities: Map<number, string>
}

/** Pods with their own address (not hostNetwork), by that address. */
export function podsByIp(snapshot: Pick<ClusterSnapshot, 'pods'>): Map<string, k8s.V1Pod> {
  return new Map(snapshot.pods.filter((pod) => pod.status?.podIP && !pod.spec?.hostNetwork).map((pod) => [pod.status!.podIP!, pod]))
}

/** namespace/name of each pod, by its address. */
export function podNames(snapshot: Pick<ClusterSnapshot, 'pods'>): Map<string, string> {
  return new Map([...podsByIp(snapshot)].map(([ip, pod]) => [ip, `${pod.metadata!.namespace}/${pod.metadata!.name}`]))
}

/** Names for addresses, Services and identities, from one cluster snapshot. */
export function clusterNames(snapshot: ClusterSnapshot): ClusterNames {
  const planner = new ClusterPlanner(snapshot)
  const pods = podNames(snapshot)
  const services = new Map<string, string>()
  for (const service of snapshot.services) {
    const name = `${service.metadata!.namespace}/${service.metadata!.name}`
    for (const port of service.spec?.ports ?? []) services.set(`${service.spec?.clusterIP}:${port.port}/${port.protocol ?? 'TCP'}`, name)
    if (service.spec?.clusterIP) services.set(service.spec.clusterIP, name)
  }
  const identities = new Map<number, string>()
  for (const [pod, identity] of planner.podIdentity) identities.set(identity, identities.has(identity) ? `${identities.get(identity)}, ${pod}` : pod)
  for (const [cidr, identity] of planner.cidrIdentity) identities.set(identity, cidr)
  return {pods, services, identities}
}

/** Policy id -> namespace/name, from the node's own pinion_polnames. */
export async function readPolicyNames(shell: NodeShell, pinRoot: string): Promise<Map<number, string>> {
  const policies = new Map<number, string>()
  await (await nodeMapTool(shell)).stream(mapPinPath(pinRoot, 'pinion_polnames'), (entry) => {
    const name = S.policyName.decode(entry.value!)
    policies.set(S.policyId.decode(entry.key).id as number, `${name.namespace}/${name.name}`)
    return true
  })
  return policies
}
