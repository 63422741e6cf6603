import * as k8s from '@kubernetes/client-node'
import {apiErrorMessage, apiStatus, type Clients} from '../cluster/kubeconfig.js'
import {shortMapName} from '../datapath/catalogue.js'
import {UserError} from '../lib/errors.js'
import {PINION_VERSION} from '../lib/version-info.js'
import {waitFor} from '../lib/wait.js'
import {AGENT_METRICS_PORT, AGENT_NAME, AGENT_NAMESPACE, agentPods} from '../cluster/agent-objects.js'
import {ensureDebugNamespace} from '../nodes/debug-pods.js'

export const DEFAULT_AGENT_IMAGE = `ghcr.io/pinion-dev/agent:${PINION_VERSION}`
const LABELS = {'app.kubernetes.io/name': AGENT_NAME, 'app.kubernetes.io/part-of': 'pinion'}

/** Host paths the agent works on: the bpffs, its state, policy logs and the node's CNI chain. */
const HOST_PATHS: Record<string, string> = {
  bpffs: '/sys/fs/bpf',
  state: '/var/lib/pinion',
  'policy-log': '/var/log/network',
  'cni-conf': '/etc/cni/net.d',
  'cni-bin': '/opt/cni/bin',
}

/** ServiceAccount, a read-only ClusterRole (no Secrets), its binding, and the DaemonSet. */
export function agentManifests(options: {image: string; pinRoot: string; mapSizes?: ReadonlyMap<string, number>}): k8s.KubernetesObject[] {
  const metadata = {name: AGENT_NAME, namespace: AGENT_NAMESPACE, labels: LABELS}
  const read = ['get', 'list', 'watch']
  return [
    {apiVersion: 'v1', kind: 'ServiceAccount', metadata},
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: {name: AGENT_NAME, labels: LABELS},
      rules: [
        {apiGroups: [''], resources: ['pods', 'services', 'namespaces', 'nodes'], verbs: read},
        {apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: read},
        {apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: read},
      ],
    } as k8s.V1ClusterRole,
    // In pinion-system only: the policy logging ConfigMap (read) and the per-node writer leases (held and handed over).
    {apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata, rules: [{apiGroups: [''], resources: ['configmaps'], verbs: read}, {apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: [...read, 'create', 'update']}]} as k8s.V1Role,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata,
      roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: AGENT_NAME},
      subjects: [{kind: 'ServiceAccount', name: AGENT_NAME, namespace: AGENT_NAMESPACE}],
    } as k8s.V1RoleBinding,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: {name: AGENT_NAME, labels: LABELS},
      roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: AGENT_NAME},
      subjects: [{kind: 'ServiceAccount', name: AGENT_NAME, namespace: AGENT_NAMESPACE}],
    } as k8s.V1ClusterRoleBinding,
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata,
      spec: {
        selector: {matchLabels: {'app.kubernetes.io/name': AGENT_NAME}},
        updateStrategy: {type: 'RollingUpdate', rollingUpdate: {maxUnavailable: 1}},
        template: {
          metadata: {labels: LABELS},
          spec: {
            serviceAccountName: AGENT_NAME,
            hostNetwork: true,
            dnsPolicy: 'ClusterFirstWithHostNet',
            priorityClassName: 'system-node-critical',
            tolerations: [{operator: 'Exists'}],
            terminationGracePeriodSeconds: 30,
            containers: [{
              name: 'agent',
              image: options.image,
              command: ['pinion', 'agent'],
              // The agent sizes maps as install did when it loads the datapath on a new node.
              args: ['--pin-root', options.pinRoot, '--metrics-port', String(AGENT_METRICS_PORT), ...[...(options.mapSizes ?? [])].flatMap(([map, size]) => ['--map-size', `${shortMapName(map)}=${size}`])],
              env: [{name: 'NODE_NAME', valueFrom: {fieldRef: {fieldPath: 'spec.nodeName'}}}],
              ports: [{name: 'metrics', containerPort: AGENT_METRICS_PORT, hostPort: AGENT_METRICS_PORT, protocol: 'TCP'}],
              readinessProbe: {httpGet: {path: '/readyz', port: AGENT_METRICS_PORT}, periodSeconds: 2, failureThreshold: 3},
              livenessProbe: {httpGet: {path: '/healthz', port: AGENT_METRICS_PORT}, initialDelaySeconds: 10, periodSeconds: 10, failureThreshold: 6},
              resources: {requests: {cpu: '100m', memory: '128Mi'}, limits: {memory: '512Mi'}},
              securityContext: {privileged: true},
              volumeMounts: Object.entries(HOST_PATHS).map(([name, path]) => ({name, mountPath: path, ...(name === 'bpffs' ? {mountPropagation: 'Bidirectional'} : {})})),
            }],
            volumes: Object.entries(HOST_PATHS).map(([name, path]) => ({name, hostPath: {path, type: 'DirectoryOrCreate'}})),
          },
        },
      },
    } as k8s.V1DaemonSet,
  ]
}

/** Create or replace each object (a replace keeps the server's fields: resourceVersion taken from the live one). */
async function apply(client: k8s.KubernetesObjectApi, object: k8s.KubernetesObject): Promise<void> {
  try {
    const live = await client.read({apiVersion: object.apiVersion, kind: object.kind, metadata: {name: object.metadata!.name!, namespace: object.metadata!.namespace}})
    await client.replace({...object, metadata: {...object.metadata, resourceVersion: live.metadata?.resourceVersion}})
  } catch (error) {
    if (apiStatus(error) !== 404) throw new UserError(`cannot apply ${object.kind} ${object.metadata!.name}: ${apiErrorMessage(error)}`)
    await client.create(object).catch((createError) => {
      throw new UserError(`cannot create ${object.kind} ${object.metadata!.name}: ${apiErrorMessage(createError)}`)
    })
  }
}

export interface AgentRollout {
  desired: number
  ready: number
  updated: number
}

/** Apply the agent and wait until every node runs an up-to-date, ready agent. */
export async function applyAgent(api: Clients, options: {image: string; pinRoot: string; mapSizes?: ReadonlyMap<string, number>; timeoutMs: number; progress?: (text: string) => void}): Promise<AgentRollout> {
  await ensureDebugNamespace(api.core)
  const client = k8s.KubernetesObjectApi.makeApiClient(api.config)
  for (const object of agentManifests(options)) await apply(client, object)
  const apps = api.config.makeApiClient(k8s.AppsV1Api)
  let last = ''
  return waitFor('the Pinion agent to be ready on every node', async () => {
    const daemonSet = await apps.readNamespacedDaemonSet({name: AGENT_NAME, namespace: AGENT_NAMESPACE})
    const status = daemonSet.status
    const rollout = {desired: status?.desiredNumberScheduled ?? 0, ready: status?.numberReady ?? 0, updated: status?.updatedNumberScheduled ?? 0}
    const line = `agent: ${rollout.ready}/${rollout.desired} ready, ${rollout.updated} up to date`
    if (line !== last) options.progress?.(line)
    last = line
    const done = (status?.observedGeneration ?? 0) >= (daemonSet.metadata?.generation ?? 1) && rollout.desired > 0 && rollout.ready === rollout.desired && rollout.updated === rollout.desired
    return done ? rollout : undefined
  }, {timeoutMs: options.timeoutMs, intervalMs: 250})
}

/** Remove the agent: the DaemonSet first (and wait for its pods to go), then its RBAC objects. */
export async function removeAgent(api: Clients, timeoutMs: number): Promise<boolean> {
  const client = k8s.KubernetesObjectApi.makeApiClient(api.config)
  let existed = false
  for (const object of agentManifests({image: '', pinRoot: ''}).reverse()) {
    try {
      await client.delete({apiVersion: object.apiVersion, kind: object.kind, metadata: {name: object.metadata!.name!, namespace: object.metadata!.namespace}})
      existed = true
    } catch (error) {
      if (apiStatus(error) !== 404) throw new UserError(`cannot delete ${object.kind} ${object.metadata!.name}: ${apiErrorMessage(error)}`)
    }
  }
  if (existed) await waitFor('the agent pods to stop', async () => (await agentPods(api)).size === 0, {timeoutMs, intervalMs: 250})
  return existed
}
