import {createHash, randomBytes} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {errorMessage} from '../lib/errors.js'
import {SERVICE_CIDR} from './config.js'
import {type ContainerReport, type LabKubelet, SandboxError} from './kubelet.js'
import {DaemonSetController, toleratesTaints} from './daemonsets.js'
import {LAB_RESOURCES, type ResourceKind} from './api/resources.js'
import {matchesSelector} from '../lib/selectors.js'
import type {LabBackend} from './api/server.js'
import {ApiError, type KubeObject, type ObjectStore} from './api/store.js'

const R = LAB_RESOURCES

interface Container {
  name?: string
  image?: string
  ports?: {name?: string; containerPort: number; protocol?: string}[]
  securityContext?: {privileged?: boolean}
}
interface PodSpec {
  nodeName?: string
  hostNetwork?: boolean
  hostPID?: boolean
  containers?: Container[]
  tolerations?: {key?: string; operator?: string; value?: string; effect?: string}[]
  volumes?: {name: string; hostPath?: unknown}[]
  activeDeadlineSeconds?: number
}
interface ServicePort {
  name?: string
  port: number
  targetPort?: number | string
  protocol?: string
  nodePort?: number
}

const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z')

/** Images are not pulled in the lab; this tag stands for an image that cannot be. */
export const UNPULLABLE_TAG = ':nonexistent'

/**
 * The lab's control plane: admission (validation, defaults, Pod Security,
 * ClusterIP allocation), a scheduler, the pod lifecycle through the lab
 * kubelet, and the EndpointSlice controller.
 */
export class LabController implements LabBackend {
  private readonly pendingNamespaces = new Set<string>()
  private readonly deadlines = new Map<string, NodeJS.Timeout>()
  private readonly daemonSets: DaemonSetController
  /** Readiness of probed pods as the kubelet last reported it. */
  private readonly readiness = new Map<string, boolean>()

  constructor(
    private readonly store: ObjectStore,
    private readonly kubelet: LabKubelet,
  ) {
    this.daemonSets = new DaemonSetController(store, (pod) => void this.store.create(R.pods, this.admit(R.pods, 'create', pod), pod.metadata.namespace))
    kubelet.onReport = (uid, report) => this.reportContainer(uid, report)
  }

  /** Follow pods and services to run pods and keep EndpointSlices current; run DaemonSets. */
  run(): void {
    const since = this.store.resourceVersion
    this.store.watch(R.pods, since, (event) => {
      if (event.type === 'ADDED') void this.startPod(event.object)
      if (event.type === 'DELETED') void this.stopPod(event.object)
      this.reconcileSoon(event.object.metadata.namespace!)
    })
    this.store.watch(R.services, since, (event) => this.reconcileSoon(event.object.metadata.namespace!))
    this.daemonSets.run(since)
    // A node added to the lab (`lab add-node`) registers its Node object: its kubelet starts serving it.
    this.store.watch(R.nodes, since, (event) => {
      if (event.type === 'ADDED') this.kubelet.learnNode(event.object.metadata.name)
    })
  }

  // ---- admission ----

  admit(resource: ResourceKind, operation: 'create' | 'update', object: KubeObject, old?: KubeObject): KubeObject {
    switch (resource.plural) {
      case 'pods':
        return operation === 'create' ? this.admitPod(object) : object
      case 'services':
        return this.admitService(object, old)
      case 'networkpolicies':
        return this.admitPolicy(object)
      case 'daemonsets':
        return this.daemonSets.admit(object, old)
      default:
        return object
    }
  }

  private invalid(kind: string, name: string, field: string, message: string): ApiError {
    return new ApiError(422, 'Invalid', `${kind} "${name}" is invalid: ${field}: ${message}`, {name, kind: kind.toLowerCase() + 's', causes: [{reason: 'FieldValueInvalid', message, field}]})
  }

  private admitPod(pod: KubeObject): KubeObject {
    const spec = (pod.spec ?? {}) as PodSpec
    const name = pod.metadata.name || pod.metadata.generateName || ''
    if (!spec.containers?.length) throw this.invalid('Pod', name, 'spec.containers', 'Required value')
    spec.containers.forEach((container, index) => {
      if (!container.name) throw this.invalid('Pod', name, `spec.containers[${index}].name`, 'Required value')
      if (!container.image) throw this.invalid('Pod', name, `spec.containers[${index}].image`, 'Required value')
    })
    this.enforcePodSecurity(pod, spec)
    pod.spec = {restartPolicy: 'Always', dnsPolicy: 'ClusterFirst', schedulerName: 'default-scheduler', ...spec}
    pod.status = {phase: 'Pending', qosClass: 'BestEffort'}
    return pod
  }

  /** Baseline and restricted Pod Security levels refuse host namespaces, privilege and hostPath. */
  private enforcePodSecurity(pod: KubeObject, spec: PodSpec): void {
    const namespace = this.store.tryGet(R.namespaces, undefined, pod.metadata.namespace ?? 'default')
    const level = namespace?.metadata.labels?.['pod-security.kubernetes.io/enforce'] ?? 'privileged'
    if (level === 'privileged') return
    const violations: string[] = []
    if (spec.hostNetwork || spec.hostPID) violations.push(`host namespaces (${[spec.hostNetwork && 'hostNetwork=true', spec.hostPID && 'hostPID=true'].filter(Boolean).join(', ')})`)
    const privileged = (spec.containers ?? []).filter((container) => container.securityContext?.privileged)
    if (privileged.length) violations.push(`privileged (container "${privileged[0].name}" must not set securityContext.privileged=true)`)
    if ((spec.volumes ?? []).some((volume) => volume.hostPath)) violations.push('hostPath volumes')
    if (violations.length) {
      throw new ApiError(403, 'Forbidden', `pods "${pod.metadata.name || pod.metadata.generateName}" is forbidden: violates PodSecurity "${level}:latest": ${violations.join(', ')}`, {name: pod.metadata.name, kind: 'pods'})
    }
  }

  private allocateClusterIp(): string {
    const used = new Set(this.store.list(R.services).map((service) => (service.spec as {clusterIP?: string}).clusterIP))
    const [base] = SERVICE_CIDR.split('/')
    const [a, b] = base.split('.')
    for (let i = 10; i < 65000; i++) {
      const ip = `${a}.${b}.${Math.floor(i / 256)}.${i % 256}`
      if (!used.has(ip)) return ip
    }
    throw new ApiError(500, 'InternalError', 'the service IP range is full')
  }

  private admitService(service: KubeObject, old?: KubeObject): KubeObject {
    const spec = (service.spec ?? {}) as {type?: string; clusterIP?: string; clusterIPs?: string[]; ports?: ServicePort[]; selector?: Record<string, string>}
    const name = service.metadata.name
    spec.type ??= 'ClusterIP'
    if (!['ClusterIP', 'NodePort'].includes(spec.type)) throw this.invalid('Service', name, 'spec.type', `Unsupported value: "${spec.type}": supported values: "ClusterIP", "NodePort"`)
    if (!spec.ports?.length && spec.clusterIP !== 'None') throw this.invalid('Service', name, 'spec.ports', 'Required value')
    const seen = new Set<string>()
    for (const [index, port] of (spec.ports ?? []).entries()) {
      if (!(Number.isInteger(port.port) && port.port > 0 && port.port < 65536)) throw this.invalid('Service', name, `spec.ports[${index}].port`, `Invalid value: ${port.port}: must be between 1 and 65535, inclusive`)
      port.protocol ??= 'TCP'
      if (!['TCP', 'UDP', 'SCTP'].includes(port.protocol)) throw this.invalid('Service', name, `spec.ports[${index}].protocol`, `Unsupported value: "${port.protocol}"`)
      port.targetPort ??= port.port
      const key = `${port.port}/${port.protocol}`
      if (seen.has(key)) throw this.invalid('Service', name, `spec.ports[${index}]`, `Duplicate value: ${key}`)
      seen.add(key)
      if (spec.type === 'NodePort' && !port.nodePort) port.nodePort = 30000 + (createHash('sha256').update(`${service.metadata.namespace}/${name}/${key}`).digest().readUInt16BE(0) % 2768)
    }
    const oldIp = (old?.spec as {clusterIP?: string} | undefined)?.clusterIP
    if (old && spec.clusterIP && spec.clusterIP !== oldIp) throw this.invalid('Service', name, 'spec.clusterIP', 'Invalid value: field is immutable')
    spec.clusterIP = oldIp ?? (spec.clusterIP || this.allocateClusterIp())
    spec.clusterIPs = [spec.clusterIP]
    service.spec = {sessionAffinity: 'None', ipFamilies: ['IPv4'], ...spec}
    return service
  }

  private admitPolicy(policy: KubeObject): KubeObject {
    const spec = (policy.spec ?? {}) as {podSelector?: unknown; policyTypes?: string[]; ingress?: {ports?: {protocol?: string}[]}[]; egress?: {ports?: {protocol?: string}[]}[]}
    if (!spec.podSelector) throw this.invalid('NetworkPolicy', policy.metadata.name, 'spec.podSelector', 'Required value')
    // API server defaulting: Ingress always, Egress when egress rules are given.
    spec.policyTypes ??= spec.egress?.length ? ['Ingress', 'Egress'] : ['Ingress']
    for (const rule of [...(spec.ingress ?? []), ...(spec.egress ?? [])]) for (const port of rule.ports ?? []) port.protocol ??= 'TCP'
    policy.spec = spec
    return policy
  }

  // ---- pods ----

  private recordEvent(pod: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string, component = 'kubelet'): void {
    try {
      this.store.create(R.events, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: {name: `${pod.metadata.name}.${randomBytes(8).toString('hex')}`, namespace: pod.metadata.namespace},
        involvedObject: {kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid, apiVersion: 'v1'},
        reason,
        message,
        type,
        count: 1,
        firstTimestamp: now(),
        lastTimestamp: now(),
        source: {component},
      }, pod.metadata.namespace)
    } catch {
      // the namespace is being deleted
    }
  }

  /** Mutate the stored pod with `change`; ignores a pod deleted meanwhile. */
  private patchPod(pod: KubeObject, change: (current: KubeObject) => void): KubeObject | undefined {
    const current = this.store.tryGet(R.pods, pod.metadata.namespace, pod.metadata.name)
    if (!current || current.metadata.uid !== pod.metadata.uid) return undefined
    change(current)
    delete current.metadata.resourceVersion
    return this.store.update(R.pods, current)
  }

  private schedule(pod: KubeObject): string | undefined {
    const spec = pod.spec as PodSpec
    if (spec.nodeName) return spec.nodeName
    const nodes = this.store.list(R.nodes).filter((node) => toleratesTaints(spec.tolerations, ((node.spec as {taints?: never[]}).taints ?? [])))
    if (nodes.length === 0) {
      const total = this.store.list(R.nodes).length
      this.patchPod(pod, (current) => {
        current.status = {...(current.status as object), conditions: [{type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: `0/${total} nodes are available: ${total} node(s) had untolerated taint.`, lastTransitionTime: now()}]}
      })
      this.recordEvent(pod, 'Warning', 'FailedScheduling', `0/${total} nodes are available`, 'default-scheduler')
      return undefined
    }
    const load = (name: string) => this.store.list(R.pods).filter((candidate) => (candidate.spec as PodSpec).nodeName === name).length
    nodes.sort((a, b) => load(a.metadata.name) - load(b.metadata.name) || a.metadata.name.localeCompare(b.metadata.name))
    const chosen = nodes[0].metadata.name
    this.patchPod(pod, (current) => void ((current.spec as PodSpec).nodeName = chosen))
    this.recordEvent(pod, 'Normal', 'Scheduled', `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${chosen}`, 'default-scheduler')
    return chosen
  }

  private async startPod(pod: KubeObject): Promise<void> {
    const nodeName = this.schedule(pod)
    if (!nodeName) return
    const scheduled = {...pod, spec: {...(pod.spec as object), nodeName}} as KubeObject
    const spec = scheduled.spec as PodSpec
    const containers = spec.containers ?? []
    const unpullable = containers.find((container) => container.image!.endsWith(UNPULLABLE_TAG))
    if (unpullable) {
      this.patchPod(pod, (current) => {
        current.status = {...(current.status as object), phase: 'Pending', containerStatuses: containers.map((container) => ({name: container.name, image: container.image, ready: false, restartCount: 0, started: false, state: {waiting: {reason: 'ImagePullBackOff', message: `Back-off pulling image "${unpullable.image}"`}}}))}
      })
      this.recordEvent(pod, 'Warning', 'Failed', `Failed to pull image "${unpullable.image}": not found`)
      return
    }
    if (!this.kubelet.node(nodeName)) return // not a lab node: stays Pending, like a node without a kubelet
    await this.runPod(pod, scheduled, nodeName, 1000)
  }

  /** Start the pod's sandbox; a CNI failure is retried with back-off while the pod exists (it stays Pending). */
  private async runPod(pod: KubeObject, scheduled: KubeObject, nodeName: string, backoffMs: number): Promise<void> {
    const containers = (scheduled.spec as PodSpec).containers ?? []
    const probed = containers.some((container) => (container as {readinessProbe?: unknown}).readinessProbe)
    try {
      const {podIP, hostIP} = await this.kubelet.start(scheduled)
      const started = now()
      const updated = this.patchPod(pod, (current) => {
        const ready = probed ? this.readiness.get(pod.metadata.uid!) === true : true
        current.status = {
          phase: 'Running',
          qosClass: 'BestEffort',
          podIP,
          podIPs: [{ip: podIP}],
          hostIP,
          hostIPs: [{ip: hostIP}],
          startTime: started,
          conditions: ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({type, status: type === 'PodScheduled' || type === 'Initialized' || ready ? 'True' : 'False', lastTransitionTime: started})),
          containerStatuses: containers.map((container) => ({name: container.name, image: container.image, imageID: `lab://${container.image}`, containerID: `lab://${pod.metadata.uid}`, ready, started: true, restartCount: 0, state: {running: {startedAt: started}}})),
        }
      })
      if (!updated) {
        await this.kubelet.stop(pod.metadata.uid!) // deleted while starting
        return
      }
      this.recordEvent(pod, 'Normal', 'Started', `Started pod on ${nodeName}`)
      const spec = scheduled.spec as PodSpec
      if (spec.activeDeadlineSeconds) {
        this.deadlines.set(pod.metadata.uid!, setTimeout(() => void this.expire(pod), spec.activeDeadlineSeconds * 1000))
      }
    } catch (error) {
      if (error instanceof SandboxError) {
        const exists = this.patchPod(pod, (current) => {
          current.status = {...(current.status as object), phase: 'Pending', containerStatuses: containers.map((container) => ({name: container.name, image: container.image, ready: false, restartCount: 0, started: false, state: {waiting: {reason: 'ContainerCreating'}}}))}
        })
        this.recordEvent(pod, 'Warning', 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${errorMessage(error)}`)
        if (exists) setTimeout(() => void this.runPod(pod, scheduled, nodeName, Math.min(backoffMs * 2, 10_000)), backoffMs)
        else await this.kubelet.stop(pod.metadata.uid!)
        return
      }
      await this.kubelet.stop(pod.metadata.uid!)
      this.patchPod(pod, (current) => {
        current.status = {...(current.status as object), phase: 'Failed', reason: 'SandboxFailed', message: errorMessage(error)}
      })
      this.recordEvent(pod, 'Warning', 'FailedCreatePodSandBox', errorMessage(error))
    }
  }

  /** Readiness and restarts of a local-image container, as the kubelet saw them. */
  private reportContainer(uid: string, report: ContainerReport): void {
    this.readiness.set(uid, report.ready)
    const pod = this.store.list(R.pods).find((candidate) => candidate.metadata.uid === uid)
    if (!pod) return
    this.patchPod(pod, (current) => {
      const status = (current.status ?? {}) as {phase?: string; conditions?: {type: string; status: string; lastTransitionTime?: string}[]; containerStatuses?: Record<string, unknown>[]}
      if (status.phase !== 'Running') return
      const value = report.ready ? 'True' : 'False'
      status.conditions = (status.conditions ?? []).map((condition) => (condition.type === 'Ready' || condition.type === 'ContainersReady') && condition.status !== value ? {...condition, status: value, lastTransitionTime: now()} : condition)
      status.containerStatuses = (status.containerStatuses ?? []).map((container) => ({
        ...container,
        ready: report.ready,
        restartCount: report.restartCount,
        state: report.running ? {running: {startedAt: now()}} : {waiting: {reason: 'CrashLoopBackOff', message: 'back-off restarting failed container'}},
        ...(report.lastExitCode !== undefined ? {lastState: {terminated: {exitCode: report.lastExitCode, finishedAt: now()}}} : {}),
      }))
      current.status = status
    })
  }

  private async expire(pod: KubeObject): Promise<void> {
    this.deadlines.delete(pod.metadata.uid!)
    await this.kubelet.stop(pod.metadata.uid!)
    this.patchPod(pod, (current) => {
      current.status = {...(current.status as object), phase: 'Failed', reason: 'DeadlineExceeded', message: 'Pod was active on the node longer than the specified deadline'}
    })
    this.recordEvent(pod, 'Normal', 'DeadlineExceeded', 'Pod was active on the node longer than the specified deadline')
  }

  private async stopPod(pod: KubeObject): Promise<void> {
    this.readiness.delete(pod.metadata.uid!)
    clearTimeout(this.deadlines.get(pod.metadata.uid!))
    this.deadlines.delete(pod.metadata.uid!)
    await this.kubelet.stop(pod.metadata.uid!)
  }

  execPrefix(pod: KubeObject): string[] {
    return this.kubelet.execPrefix(pod)
  }

  execCommand(pod: KubeObject, command: string[]): string[] {
    return this.kubelet.execCommand(pod, command)
  }

  podLog(pod: KubeObject, options: {sinceSeconds?: number; tailLines?: number; timestamps: boolean}): string {
    const path = this.kubelet.logPath(pod)
    if (!existsSync(path)) return ''
    const cutoff = options.sinceSeconds ? Date.now() - options.sinceSeconds * 1000 : 0
    let lines = readFileSync(path, 'utf8').split('\n').filter((line) => /^\d{4}-\d\d-\d\dT/.test(line))
    lines = lines.filter((line) => Date.parse(line.slice(0, line.indexOf(' '))) >= cutoff)
    if (options.tailLines !== undefined) lines = lines.slice(-options.tailLines)
    if (!options.timestamps) lines = lines.map((line) => line.slice(line.indexOf(' ') + 1))
    return lines.map((line) => `${line}\n`).join('')
  }

  deleteNamespaceContents(namespace: string): void {
    for (const resource of [R.daemonsets, R.pods, R.services, R.slices, R.policies, R.events]) {
      for (const object of this.store.list(resource, namespace)) this.store.delete(resource, namespace, object.metadata.name)
    }
  }

  // ---- EndpointSlices ----

  private reconcileSoon(namespace: string): void {
    if (this.pendingNamespaces.has(namespace)) return
    this.pendingNamespaces.add(namespace)
    setImmediate(() => {
      this.pendingNamespaces.delete(namespace)
      this.reconcileSlices(namespace)
    })
  }

  /** One slice per Service and distinct resolved port set, like the endpoint-slice controller. */
  private reconcileSlices(namespace: string): void {
    const pods = this.store.list(R.pods, namespace).filter((pod) => (pod.status as {podIP?: string})?.podIP && !['Failed', 'Succeeded'].includes((pod.status as {phase: string}).phase))
    const desired = new Map<string, KubeObject>()
    for (const service of this.store.list(R.services, namespace)) {
      const spec = service.spec as {selector?: Record<string, string>; ports?: ServicePort[]}
      if (!spec.selector) continue // Services without selectors keep hand-made slices
      const groups = new Map<string, {ports: unknown[]; endpoints: unknown[]}>()
      for (const pod of pods) {
        if (!matchesSelector({matchLabels: spec.selector}, pod.metadata.labels)) continue
        const containerPorts = ((pod.spec as PodSpec).containers ?? []).flatMap((container) => container.ports ?? [])
        const ports = (spec.ports ?? []).flatMap((port) => {
          const target = typeof port.targetPort === 'string' ? containerPorts.find((candidate) => candidate.name === port.targetPort)?.containerPort : port.targetPort
          return target ? [{name: port.name ?? '', port: target, protocol: port.protocol}] : []
        })
        const key = JSON.stringify(ports)
        const group = groups.get(key) ?? {ports, endpoints: []}
        const status = pod.status as {podIP: string; phase: string}
        const ready = status.phase === 'Running'
        group.endpoints.push({addresses: [status.podIP], conditions: {ready, serving: ready, terminating: false}, nodeName: (pod.spec as PodSpec).nodeName, targetRef: {kind: 'Pod', namespace, name: pod.metadata.name, uid: pod.metadata.uid}})
        groups.set(key, group)
      }
      if (groups.size === 0) groups.set('[]', {ports: [], endpoints: []})
      for (const [key, group] of groups) {
        const name = `${service.metadata.name}-${createHash('sha256').update(key).digest('hex').slice(0, 5)}`
        desired.set(name, {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: {name, namespace, labels: {'kubernetes.io/service-name': service.metadata.name, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io'}, ownerReferences: [{apiVersion: 'v1', kind: 'Service', name: service.metadata.name, uid: service.metadata.uid, controller: true, blockOwnerDeletion: true}]},
          addressType: 'IPv4',
          endpoints: group.endpoints,
          ports: group.ports,
        })
      }
    }
    for (const slice of this.store.list(R.slices, namespace)) {
      if (slice.metadata.labels?.['endpointslice.kubernetes.io/managed-by'] !== 'endpointslice-controller.k8s.io') continue
      const want = desired.get(slice.metadata.name)
      if (!want) this.store.delete(R.slices, namespace, slice.metadata.name)
      else if (JSON.stringify([want.endpoints, want.ports]) !== JSON.stringify([slice.endpoints, slice.ports])) this.store.update(R.slices, {...slice, endpoints: want.endpoints, ports: want.ports})
      desired.delete(slice.metadata.name)
    }
    for (const slice of desired.values()) this.store.create(R.slices, slice, namespace)
  }
}
