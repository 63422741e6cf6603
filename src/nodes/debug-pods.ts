import {randomBytes} from 'node:crypto'
import * as k8s from '@kubernetes/client-node'
import {apiErrorMessage, apiStatus} from '../cluster/kubeconfig.js'
import {UserError} from '../lib/errors.js'
import {waitFor} from '../lib/wait.js'

export const DEBUG_NAMESPACE = 'pinion-system'
/** Built from images/node-tools/Dockerfile (bpftool, iproute2, util-linux, tar). */
export const DEFAULT_IMAGE = 'ghcr.io/pinion-dev/node-tools:0.1.0'
export const DEBUG_CONTAINER = 'node-tools'
export const DEBUG_LABEL = 'pinion.dev/debug-pod'
export const RUN_LABEL = 'pinion.dev/run'
/** Safety net: the kubelet kills a debug pod the CLI failed to delete. */
export const DEBUG_POD_DEADLINE_SECONDS = 3600

export function newRunId(): string {
  return randomBytes(4).toString('hex')
}

const HOST_PATHS = {'bpffs': '/sys/fs/bpf', 'debugfs': '/sys/kernel/debug', 'proc': '/proc', 'modules': '/lib/modules', 'varlog': '/var/log'}

/** The privileged per-node pod (hostNetwork, hostPID, all taints tolerated, pinned by nodeName). */
export function debugPodSpec(node: string, runId: string, image: string): k8s.V1Pod {
  const podName = `pinion-debug-${node.replace(/[^a-z0-9-]/g, '-').slice(0, 40)}-${runId}`.replace(/--+/g, '-')
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {name: podName, namespace: DEBUG_NAMESPACE, labels: {[DEBUG_LABEL]: 'true', [RUN_LABEL]: runId, 'app.kubernetes.io/name': 'pinion', 'app.kubernetes.io/component': 'debug-pod'}},
    spec: {
      nodeName: node,
      hostNetwork: true,
      hostPID: true,
      restartPolicy: 'Never',
      activeDeadlineSeconds: DEBUG_POD_DEADLINE_SECONDS,
      terminationGracePeriodSeconds: 0,
      tolerations: [{operator: 'Exists'}],
      containers: [{
        name: DEBUG_CONTAINER,
        image,
        command: ['sleep', String(DEBUG_POD_DEADLINE_SECONDS)],
        securityContext: {privileged: true},
        volumeMounts: Object.entries(HOST_PATHS).map(([name, path]) => ({name, mountPath: path, ...(name === 'bpffs' ? {mountPropagation: 'Bidirectional'} : {})})),
      }],
      volumes: Object.entries(HOST_PATHS).map(([name, path]) => ({name, hostPath: {path}})),
    },
  }
}

/** pinion-system exists and allows privileged pods (Pod Security "privileged"). */
export async function ensureDebugNamespace(core: k8s.CoreV1Api): Promise<void> {
  const labels = {'pod-security.kubernetes.io/enforce': 'privileged', 'app.kubernetes.io/name': 'pinion'}
  try {
    const namespace = await core.readNamespace({name: DEBUG_NAMESPACE})
    if (namespace.metadata?.labels?.['pod-security.kubernetes.io/enforce'] !== 'privileged') {
      await core.patchNamespace({name: DEBUG_NAMESPACE, body: {metadata: {labels}}}, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch))
    }
  } catch (error) {
    if (apiStatus(error) !== 404) throw new UserError(`cannot read namespace ${DEBUG_NAMESPACE}: ${apiErrorMessage(error)}`)
    try {
      await core.createNamespace({body: {metadata: {name: DEBUG_NAMESPACE, labels}}})
    } catch (createError) {
      if (apiStatus(createError) !== 409) throw new UserError(`cannot create namespace ${DEBUG_NAMESPACE}: ${apiErrorMessage(createError)}`)
    }
  }
}

/** Why a pod will never run, from its own status; undefined while it may still start. */
export function podFailure(pod: k8s.V1Pod): string | undefined {
  const status = pod.status
  if (status?.phase === 'Failed' || status?.phase === 'Succeeded') return `pod ${status.phase.toLowerCase()}: ${status.reason ?? ''} ${status.message ?? ''}`.trim()
  for (const container of status?.containerStatuses ?? []) {
    const reason = container.state?.waiting?.reason
    if (reason && ['ImagePullBackOff', 'ErrImagePull', 'InvalidImageName', 'CreateContainerConfigError', 'CrashLoopBackOff'].includes(reason)) {
      return `${reason}: ${container.state?.waiting?.message ?? ''}`.trim()
    }
  }
  const scheduled = status?.conditions?.find((condition) => condition.type === 'PodScheduled')
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') return `Unschedulable: ${scheduled.message ?? ''}`.trim()
  return undefined
}

export async function createDebugPod(core: k8s.CoreV1Api, node: string, runId: string, image: string, timeoutMs: number): Promise<string> {
  const body = debugPodSpec(node, runId, image)
  try {
    await core.createNamespacedPod({namespace: DEBUG_NAMESPACE, body})
  } catch (error) {
    throw new Error(`cannot create debug pod on ${node}: ${apiErrorMessage(error)}`)
  }
  const name = body.metadata!.name!
  await waitFor(`debug pod ${name} on ${node} to run`, async () => {
    const pod = await core.readNamespacedPod({namespace: DEBUG_NAMESPACE, name})
    const failure = podFailure(pod)
    if (failure) throw new Error(`debug pod on ${node} cannot run: ${failure}`)
    return pod.status?.phase === 'Running'
  }, {timeoutMs, intervalMs: 200})
  return name
}

/** Delete debug pods of one run, or all of them (`pinion cleanup`); returns the names deleted. */
export async function deleteDebugPods(core: k8s.CoreV1Api, runId?: string): Promise<string[]> {
  const labelSelector = runId ? `${DEBUG_LABEL}=true,${RUN_LABEL}=${runId}` : `${DEBUG_LABEL}=true`
  let pods: k8s.V1Pod[]
  try {
    pods = (await core.listNamespacedPod({namespace: DEBUG_NAMESPACE, labelSelector})).items
  } catch (error) {
    if (apiStatus(error) === 404) return []
    throw error
  }
  const deleted: string[] = []
  for (const pod of pods) {
    try {
      await core.deleteNamespacedPod({namespace: DEBUG_NAMESPACE, name: pod.metadata!.name!, gracePeriodSeconds: 0})
      deleted.push(pod.metadata!.name!)
    } catch (error) {
      if (apiStatus(error) !== 404) throw error
    }
  }
  return deleted
}
