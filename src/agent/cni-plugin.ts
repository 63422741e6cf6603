/**
 * pinion-cni: the chained CNI plugin the agent installs as the last plugin of
 * the node's chain (as Cilium's chaining mode does). ADD asks the local agent
 * to write the pod's endpoint and attach the programs to its host interface,
 * and fails while the agent is not ready, so a pod never starts unenforced.
 * DEL and CHECK per spec; VERSION lists what it speaks.
 */
import {CNI_ERROR, type CniContext, CniError, type CniResult, runCniPlugin} from '../lib/cni.js'
import {AGENT_SOCKET} from '../datapath/node-state.js'
import {requestAgent} from './client.js'

function target(context: CniContext) {
  const namespace = context.args.K8S_POD_NAMESPACE
  const name = context.args.K8S_POD_NAME
  if (!namespace || !name) throw new CniError(CNI_ERROR.INVALID_ENV, 'CNI_ARGS must name the pod (K8S_POD_NAMESPACE, K8S_POD_NAME)')
  return {namespace, name, containerId: context.containerId}
}

function socketOf(context: CniContext): string {
  return typeof context.config.agentSocket === 'string' ? context.config.agentSocket : AGENT_SOCKET
}

async function call(context: CniContext, path: string, body: unknown, timeoutMs = 10_000) {
  try {
    return await requestAgent(socketOf(context), path, body, timeoutMs)
  } catch (error) {
    throw new CniError(CNI_ERROR.TRY_AGAIN_LATER, `the Pinion agent cannot be reached at ${socketOf(context)}`, (error as Error).message)
  }
}

await runCniPlugin({
  async ADD(context): Promise<CniResult> {
    const previous = context.config.prevResult
    if (!previous) throw new CniError(CNI_ERROR.INVALID_CONFIG, 'pinion-cni is a chained plugin: it needs the result of the plugin before it (prevResult)')
    const host = previous.interfaces?.find((item) => !item.sandbox)
    const address = previous.ips?.find((ip) => /^\d+\.\d+\.\d+\.\d+\//.test(ip.address))
    if (!host || !address) throw new CniError(CNI_ERROR.INVALID_CONFIG, 'prevResult names no host interface or no IPv4 address')
    const answer = await call(context, '/cni/add', {...target(context), ip: address.address.split('/')[0], interface: host.name})
    if (answer.status === 503) throw new CniError(CNI_ERROR.TRY_AGAIN_LATER, String(answer.body.error ?? 'the Pinion agent is not ready'))
    if (answer.status !== 200) throw new CniError(100, String(answer.body.error ?? `the Pinion agent answered ${answer.status}`))
    return previous // a chained plugin passes the result on
  },
  async DEL(context) {
    // DEL must succeed when there is nothing left to remove, agent or not.
    await requestAgent(socketOf(context), '/cni/del', target(context), 10_000).catch(() => undefined)
  },
  async CHECK(context) {
    const answer = await call(context, '/cni/check', target(context))
    if (answer.status !== 200) throw new CniError(100, String(answer.body.error ?? `the Pinion agent answered ${answer.status}`))
  },
})
