import * as k8s from '@kubernetes/client-node'
import {UserError} from '../lib/errors.js'
import {DEBUG_NAMESPACE} from '../nodes/debug-pods.js'
import {apiErrorMessage, apiStatus, type Clients} from './kubeconfig.js'

/** The node agent's DaemonSet and the objects that go with it. */
export const AGENT_NAME = 'pinion-agent'
export const AGENT_NAMESPACE = DEBUG_NAMESPACE
export const AGENT_METRICS_PORT = 9965

/** Whether the agent DaemonSet is installed (sync then asks the agents instead of writing maps itself). */
export async function agentInstalled(api: Clients): Promise<boolean> {
  try {
    await api.config.makeApiClient(k8s.AppsV1Api).readNamespacedDaemonSet({name: AGENT_NAME, namespace: AGENT_NAMESPACE})
    return true
  } catch (error) {
    if (apiStatus(error) === 404) return false
    throw new UserError(`cannot read the agent DaemonSet: ${apiErrorMessage(error)}`)
  }
}

/** The agent pod of each node, by node name. */
export async function agentPods(api: Clients): Promise<Map<string, k8s.V1Pod>> {
  const {items} = await api.core.listNamespacedPod({namespace: AGENT_NAMESPACE, labelSelector: `app.kubernetes.io/name=${AGENT_NAME}`})
  return new Map(items.filter((pod) => pod.spec?.nodeName && !pod.metadata?.deletionTimestamp).map((pod) => [pod.spec!.nodeName!, pod]))
}
