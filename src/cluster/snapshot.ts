import type * as k8s from '@kubernetes/client-node'
import {UserError} from '../lib/errors.js'
import {apiErrorMessage, apiStatus, type Clients} from './kubeconfig.js'

/** The cluster objects the dataplane is computed from, read at one moment. */
export interface ClusterSnapshot {
  nodes: k8s.V1Node[]
  namespaces: k8s.V1Namespace[]
  pods: k8s.V1Pod[]
  services: k8s.V1Service[]
  slices: k8s.V1EndpointSlice[]
  policies: k8s.V1NetworkPolicy[]
}

/** Objects per LIST page: large clusters are read in pages, as client-go's pager does. */
export const SNAPSHOT_PAGE_SIZE = 500

type Page<T> = {items: T[]; metadata?: {_continue?: string}}

/**
 * Every object of a LIST, page by page (limit/continue). A continue token that
 * expired (410 Gone: the server compacted past the list's resourceVersion)
 * starts the list again, so the result is always one consistent list.
 */
export async function listAll<T>(list: (page: {limit: number; _continue?: string}) => Promise<Page<T>>, pageSize = SNAPSHOT_PAGE_SIZE): Promise<T[]> {
  for (let attempt = 0; ; attempt++) {
    const items: T[] = []
    let next: string | undefined
    try {
      do {
        const page = await list({limit: pageSize, ...(next ? {_continue: next} : {})})
        items.push(...page.items)
        next = page.metadata?._continue || undefined
      } while (next)
      return items
    } catch (error) {
      if (apiStatus(error) !== 410 || attempt >= 2) throw error
    }
  }
}

export async function readSnapshot(api: Clients, pageSize = SNAPSHOT_PAGE_SIZE): Promise<ClusterSnapshot> {
  try {
    const [nodes, namespaces, pods, services, slices, policies] = await Promise.all([
      listAll((page) => api.core.listNode(page), pageSize),
      listAll((page) => api.core.listNamespace(page), pageSize),
      listAll((page) => api.core.listPodForAllNamespaces(page), pageSize),
      listAll((page) => api.core.listServiceForAllNamespaces(page), pageSize),
      listAll((page) => api.discovery.listEndpointSliceForAllNamespaces(page), pageSize),
      listAll((page) => api.networking.listNetworkPolicyForAllNamespaces(page), pageSize),
    ])
    return {nodes, namespaces, pods, services, slices, policies}
  } catch (error) {
    throw new UserError(`cannot read the cluster: ${apiErrorMessage(error)}`)
  }
}
