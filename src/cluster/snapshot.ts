import type * as k8s from '@kubernetes/client-node'
import {UserError} from '../lib/errors.js'
import {apiErrorMessage, type Clients} from './kubeconfig.js'

/** The cluster objects the dataplane is computed from, read at one moment. */
export interface ClusterSnapshot {
  nodes: k8s.V1Node[]
  namespaces: k8s.V1Namespace[]
  pods: k8s.V1Pod[]
  services: k8s.V1Service[]
  slices: k8s.V1EndpointSlice[]
  policies: k8s.V1NetworkPolicy[]
}

export async function readSnapshot(api: Clients): Promise<ClusterSnapshot> {
  try {
    const [nodes, namespaces, pods, services, slices, policies] = await Promise.all([
      api.core.listNode(),
      api.core.listNamespace(),
      api.core.listPodForAllNamespaces(),
      api.core.listServiceForAllNamespaces(),
      api.discovery.listEndpointSliceForAllNamespaces(),
      api.networking.listNetworkPolicyForAllNamespaces(),
    ])
    return {nodes: nodes.items, namespaces: namespaces.items, pods: pods.items, services: services.items, slices: slices.items, policies: policies.items}
  } catch (error) {
    throw new UserError(`cannot read the cluster: ${apiErrorMessage(error)}`)
  }
}
