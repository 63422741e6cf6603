import type {ClusterSnapshot} from '../cluster/snapshot.js'
import {ClusterModel} from './model.js'
import {type NodePlan, NodePlanner} from './node-planner.js'

export {cidrContains, normalizeCidr} from './model.js'
export type {EndpointPlan, NodePlan} from './node-planner.js'

export interface PolicyRef {
  id: number
  namespace: string
  name: string
}

/**
 * The dataplane computed from one snapshot of the cluster: a model of it
 * (identities, selector cache, Service frontends) and, per node, that node's
 * plan. Nodes are planned one at a time, each plan released before the next,
 * so memory stays bounded by one node's plan plus the shared model.
 */
export class ClusterPlanner {
  readonly model: ClusterModel

  constructor(private readonly snapshot: ClusterSnapshot) {
    this.model = ClusterModel.fromObjects(snapshot)
  }

  /** Pod (namespace/name) -> identity. */
  get podIdentity(): Map<string, number> {
    return new Map([...this.model.pods.values()].map((pod) => [pod.key, pod.identity]))
  }

  get cidrIdentity(): Map<string, number> {
    return new Map(this.model.cidrIds.entries())
  }

  get policyIds(): Map<string, number> {
    return new Map([...this.model.policies.values()].map((policy) => [policy.key, policy.id]))
  }

  policies(): PolicyRef[] {
    return [...this.model.policies.values()].map((policy) => ({id: policy.id, namespace: policy.namespace, name: policy.name}))
  }

  nodeNames(): string[] {
    return this.snapshot.nodes.map((node) => node.metadata!.name!)
  }

  /** One node's whole plan. */
  planNode(node: string): NodePlan {
    const planner = new NodePlanner(this.model, node)
    try {
      return planner.plan()
    } finally {
      planner.close()
    }
  }

  /** Plans for the named nodes (default: all). */
  plan(nodeNames?: readonly string[]): NodePlan[] {
    return this.nodeNames().filter((name) => !nodeNames || nodeNames.includes(name)).map((name) => this.planNode(name))
  }
}
