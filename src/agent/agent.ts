import {setMaxListeners} from 'node:events'
import {mkdirSync, renameSync, writeFileSync} from 'node:fs'
import {dirname} from 'node:path'
import type * as k8s from '@kubernetes/client-node'
import {CoreV1Api} from '@kubernetes/client-node'
import {DEFAULT_INFORMER_OPTIONS, Informer, type InformerOptions, type KubeObjectLike} from '../cluster/informer.js'
import {nodeMapTool, pinnedMapInfo} from '../datapath/maptool.js'
import {mapPinPath} from '../datapath/catalogue.js'
import {METRICS_SLOTS, metricsSlotParts} from '../datapath/constants.js'
import {dropReasonId} from '../datapath/drop-reasons.js'
import {metricsValue} from '../datapath/structs.js'
import {installNode} from '../sync/node-install.js'
import {updateConfig} from '../datapath/runtime-config.js'
import {AGENT_STATUS_FILE, type AgentStatus, readNodeRecord} from '../datapath/node-state.js'

export {AGENT_SOCKET} from '../datapath/node-state.js'
import {errorMessage} from '../lib/errors.js'
import type {NodeShell} from '../nodes/shell.js'
import {AGENT_HOLDER_PREFIX, AGENT_LEASE, LEASE_NAMESPACE, NodeLease} from '../nodes/node-lease.js'
import {ClusterModel, objectKey, type ObjectKind} from '../sync/model.js'
import {checkCapacity, effectiveSizes, overCapacity, planFill, plannedSizes} from '../sync/capacity.js'
import {NodePlanner} from '../sync/node-planner.js'
import {NodeDatapath} from './datapath.js'
import {PolicyLogger, RotatingLog} from './policy-log.js'
import {DEFAULT_LOGGING, LOGGING_ANNOTATION, LOGGING_CONFIGMAP, type LoggingConfig} from '../cluster/logging-config.js'
import {type PolicyLogContext} from '../datapath/policy-log-records.js'
import {AGENT_NAMESPACE} from '../cluster/agent-objects.js'
import {type DatapathObject} from '../datapath/object.js'

export const DEFAULT_METRICS_PORT = 9965

export interface AgentOptions {
  node: string
  pinRoot: string
  config: k8s.KubeConfig
  shell: NodeShell
  object: DatapathObject
  /** Coalesce bursts of events into one write. */
  debounceMs: number
  /** Full read-back reconciliation at least this often. */
  resyncMs: number
  /** Retry endpoints whose interface is not there yet this often. */
  retryMs: number
  informer?: Partial<InformerOptions>
  /** Policy logging on the node (records per second, deny aggregation window, file); undefined: off. */
  policyLog?: {ratePerSecond: number; denyWindowMs: number; file: string; maxBytes: number; keep: number}
  log: (line: string) => void
  /** Hold the node's writer lease (shared with install/uninstall/sync); off only in unit set-ups without a cluster. */
  lease?: boolean
  /** --map-size as install was given it: how big this agent creates resizable maps on a node it loads. */
  mapSizes?: ReadonlyMap<string, number>
}

const WATCHES: {kind: ObjectKind; path: string}[] = [
  {kind: 'Namespace', path: '/api/v1/namespaces'},
  {kind: 'Node', path: '/api/v1/nodes'},
  {kind: 'Pod', path: '/api/v1/pods'},
  {kind: 'Service', path: '/api/v1/services'},
  {kind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices'},
  {kind: 'NetworkPolicy', path: '/apis/networking.k8s.io/v1/networkpolicies'},
]


export interface CniRequest {
  namespace: string
  name: string
  containerId: string
  ip?: string
  interface?: string
}

export class AgentError extends Error {
  constructor(
    message: string,
    /** 503: not ready, try again; 400: bad request; 500: failed. */
    readonly status: number,
  ) {
    super(message)
  }
}

/**
 * The node agent: watches the cluster, keeps this node's plan with the
 * incremental planner and writes only what changed to the local maps, in
 * debounced batches; attaches programs to pod interfaces (also on the CNI
 * plugin's request, before a pod starts); reconciles fully now and then.
 * It never unloads the datapath: when it stops, or loses the API server, the
 * maps and programs stay as they are, and a restarted agent adopts them.
 */
export class Agent {
  readonly model = new ClusterModel()
  private planner?: NodePlanner
  readonly datapath: NodeDatapath
  private readonly informers: Informer<KubeObjectLike>[] = []
  private readonly localPods = new Map<string, k8s.V1Pod>()
  /** Addresses the CNI plugin reported for pods whose status does not show them yet. */
  private readonly cniAddresses = new Map<string, {ip: string; containerId: string}>()
  private queue: Promise<unknown> = Promise.resolve()
  private timer?: NodeJS.Timeout
  private pendingSince?: number
  private readonly controller = new AbortController()
  private readonly startedAt = new Date().toISOString()
  private readonly errors: {time: string; message: string}[] = []
  private ready = false
  private syncs = 0
  private fullReconciles = 0
  private lastSyncAt?: string
  private lastSyncMs?: number
  private appliedVersion = ''
  private readonly synced = new Set<string>()
  private syncedWaiters: (() => void)[] = []
  private podWaiters: (() => void)[] = []
  private logging: LoggingConfig = DEFAULT_LOGGING
  private readonly namespacesLogging = new Set<string>()
  private readonly policiesLogging = new Set<string>()
  private policyNames?: Map<number, string>
  private logger?: PolicyLogger
  private overfull = false
  /** How many entries each of the node's maps holds at most (read once the datapath is there). */
  private mapSizes = new Map<string, number>()
  private retaking = false
  private readonly cniAddMs: number[] = []
  /** The node's writer lease: the agent writes only while it holds it, and hands it to a CLI that asks. */
  private readonly lease?: NodeLease
  private leaseWaiters: (() => void)[] = []
  private handingOver = false
  /** Who had the node while the agent did not (a full reconcile follows when it is back). */
  private pausedFor?: string

  constructor(private readonly options: AgentOptions) {
    // Informers, the lease and the policy logger all wait on this signal.
    setMaxListeners(64, this.controller.signal)
    this.datapath = new NodeDatapath(options.shell, options.pinRoot)
    if (options.lease !== false) {
      const config = options.config
      this.lease = new NodeLease({config, core: config.makeApiClient(CoreV1Api)}, options.node, `${AGENT_HOLDER_PREFIX}${options.node}`, AGENT_LEASE)
    }
  }

  get isReady(): boolean {
    return this.ready
  }

  /** Watch, converge, then follow; resolves once the node is enforced from the first plan. */
  async start(): Promise<void> {
    const informerOptions = {...DEFAULT_INFORMER_OPTIONS, ...this.options.informer}
    for (const {kind, path} of WATCHES) {
      const informer = new Informer<KubeObjectLike>(this.options.config, path, {
        upsert: (object) => this.upsert(kind, object),
        remove: (object) => this.remove(kind, object),
        synced: () => this.markSynced(path),
        state: (message) => this.options.log(message),
      }, informerOptions)
      informer.start(this.controller.signal)
      this.informers.push(informer)
    }
    const configMaps = new Informer<KubeObjectLike>(this.options.config, `/api/v1/namespaces/${AGENT_NAMESPACE}/configmaps`, {
      upsert: (object) => object.metadata?.name === LOGGING_CONFIGMAP && void this.setLogging(object as k8s.V1ConfigMap),
      remove: (object) => object.metadata?.name === LOGGING_CONFIGMAP && void this.setLogging(undefined),
      synced: () => this.markSynced('configmaps'),
      state: (message) => this.options.log(message),
    }, informerOptions)
    configMaps.start(this.controller.signal)
    this.informers.push(configMaps)
    if (this.lease) {
      const leases = new Informer<KubeObjectLike>(this.options.config, `/apis/coordination.k8s.io/v1/namespaces/${LEASE_NAMESPACE}/leases?fieldSelector=${encodeURIComponent(`metadata.name=${this.lease.name}`)}`, {
        upsert: (object) => this.onLease(object as k8s.V1Lease),
        remove: () => {},
        state: (message) => this.options.log(message),
      }, informerOptions)
      leases.start(this.controller.signal)
      this.informers.push(leases)
      await this.lease.acquire(this.controller.signal, (holder) => this.options.log(`waiting for ${holder}, which is changing this node`))
      this.options.log(`holding the writer lease ${LEASE_NAMESPACE}/${this.lease.name}`)
    }
    if (this.synced.size < WATCHES.length + 1) await new Promise<void>((resolve) => this.syncedWaiters.push(resolve))
    this.planner = new NodePlanner(this.model, this.options.node)
    await this.enqueue(() => this.converge())
    this.ready = true
    this.options.log(`ready: ${this.planner.endpoints().length} endpoints on ${this.options.node}, resourceVersion ${this.appliedVersion}`)
    await this.enqueue(() => this.applyLoggingSwitches())
    if (this.options.policyLog) this.startPolicyLog(this.options.policyLog)
    this.writeStatus()
    const resync = setInterval(() => void this.enqueue(() => this.reconcile('periodic resync')), this.options.resyncMs)
    const retry = setInterval(() => {
      if (this.datapath.unenforced().length) void this.enqueue(() => this.retryUnenforced())
    }, this.options.retryMs)
    this.controller.signal.addEventListener('abort', () => {
      clearInterval(resync)
      clearInterval(retry)
      clearTimeout(this.timer)
    }, {once: true})
  }

  private markSynced(what: string): void {
    this.synced.add(what)
    if (this.synced.size === WATCHES.length + 1) for (const wake of this.syncedWaiters.splice(0)) wake()
  }

  /** Stop watching; the datapath stays as it is. The lease is given up so the next writer need not wait. */
  async stop(): Promise<void> {
    this.controller.abort()
    for (const wake of this.leaseWaiters.splice(0)) wake()
    await Promise.all(this.informers.map((informer) => informer.stopped()))
    await this.queue.catch(() => {})
    await this.lease?.release()
  }

  // ---- the writer lease ----

  /** A change of the node's lease: hand it over when a CLI asks; take it back (and reconcile) once it is free. */
  private onLease(object: k8s.V1Lease): void {
    const lease = this.lease!
    lease.observe(object)
    const asker = lease.handoverRequest(object)
    if (asker && !this.handingOver) {
      this.handingOver = true
      // After the write in progress, never during it.
      void this.serialize(async () => {
        if (lease.held && (await lease.handOver(asker))) {
          this.pausedFor = asker
          this.options.log(`handed this node over to ${asker}; writes wait until it is done`)
        }
      }).finally(() => (this.handingOver = false))
      return
    }
    if (!lease.held && lease.free(object) && !this.controller.signal.aborted) void this.retake()
  }

  private async retake(): Promise<void> {
    if (this.retaking) return
    this.retaking = true
    try {
      await this.lease!.acquire(this.controller.signal)
      const after = this.pausedFor
      this.pausedFor = undefined
      this.options.log(`holding the writer lease again${after ? ` (after ${after})` : ''}`)
      for (const wake of this.leaseWaiters.splice(0)) wake()
      // Someone else wrote the node meanwhile: read it back and make it right.
      if (this.ready) void this.enqueue(() => this.reconcile(`the node was changed by ${after ?? 'another writer'}`))
    } catch (error) {
      if (!this.controller.signal.aborted) this.recordError(`cannot take the writer lease back: ${errorMessage(error)}`)
    } finally {
      this.retaking = false
    }
  }

  /** Resolves once the agent may write the node (it holds the lease). */
  private async writable(): Promise<void> {
    while (this.lease && !this.lease.held && !this.controller.signal.aborted) {
      // Renewal failed for a while (API gone) or the lease is someone else's: wait to get it back.
      if (!this.retaking && this.lease.free()) void this.retake()
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000)
        this.leaseWaiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    if (this.lease && !this.lease.held) throw new Error('the agent is stopping: nothing more is written')
  }

  // ---- events ----

  private upsert(kind: ObjectKind, object: KubeObjectLike): void {
    this.trackLogging(kind, object, true)
    if (kind === 'Pod') {
      const pod = object as k8s.V1Pod
      const key = objectKey(pod)
      if (pod.spec?.nodeName === this.options.node) this.localPods.set(key, pod)
      else this.localPods.delete(key)
      for (const wake of this.podWaiters.splice(0)) wake()
      this.model.upsert('Pod', this.withCniAddress(pod))
    } else {
      this.model.upsert(kind, object)
    }
    this.changed()
  }

  private remove(kind: ObjectKind, object: KubeObjectLike): void {
    this.trackLogging(kind, object, false)
    if (kind === 'Pod') {
      this.localPods.delete(objectKey(object))
      this.cniAddresses.delete(objectKey(object))
    }
    this.model.remove(kind, object)
    this.changed()
  }

  /** A local pod the CNI plugin has plumbed, with that address until its status shows one. */
  private withCniAddress(pod: k8s.V1Pod): k8s.V1Pod {
    const cni = this.cniAddresses.get(objectKey(pod))
    if (!cni || pod.status?.podIP) return pod
    return {...pod, status: {...pod.status, podIP: cni.ip, podIPs: [{ip: cni.ip}]}}
  }

  private changed(): void {
    if (!this.planner) return
    this.pendingSince ??= Date.now()
    if (this.timer) return
    // Under a stream of events, batches grow with the time a write takes, so the agent never spends all its time writing.
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.enqueue(() => this.flush())
    }, Math.max(this.options.debounceMs, Math.min(this.lastSyncMs ?? 0, 1000)))
  }

  /** One writer at a time: flushes, reconciliations and CNI requests run in order. */
  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    return this.serialize(async () => {
      await this.writable()
      return work()
    })
  }

  /** In the one queue of writes, without waiting for the lease (handing it over is itself a step in that queue). */
  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work)
    this.queue = next.catch((error) => this.recordError(errorMessage(error)))
    return next
  }

  private recordError(message: string): void {
    this.errors.push({time: new Date().toISOString(), message})
    if (this.errors.length > 20) this.errors.shift()
    this.options.log(`error: ${message}`)
  }

  private newestVersion(): string {
    return this.informers.map((informer) => informer.resourceVersion).reduce((newest, version) => (/^\d+$/.test(version) && /^\d+$/.test(newest) ? (BigInt(version) > BigInt(newest) ? version : newest) : version || newest), '')
  }

  private finished(started: number): void {
    this.syncs++
    this.lastSyncAt = new Date().toISOString()
    this.lastSyncMs = Date.now() - started
    if (this.planner!.pending === 0) this.pendingSince = undefined
    this.writeStatus()
  }

  // ---- writing the node ----

  /** First convergence: load the datapath if this node has none (or an older one), else adopt what is pinned. */
  private async converge(): Promise<void> {
    const started = Date.now()
    const version = this.newestVersion()
    const record = await readNodeRecord(this.options.shell)
    const pinned = (await this.options.shell.run(['test', '-e', `${this.options.pinRoot}/progs/from_pod`])).exitCode === 0
    const plan = this.planner!.plan()
    const pinnedSizes = new Map([...(await pinnedMapInfo(this.options.shell, this.options.pinRoot))].map(([name, info]) => [name, info.max]))
    const sizes = effectiveSizes(this.options.node, pinnedSizes, plannedSizes(planFill(plan), this.options.mapSizes))
    checkCapacity(plan, sizes)
    if (!record || !pinned || record.objectSha !== this.options.object.sha) {
      this.options.log(record && pinned ? `upgrading the datapath (${record.version} -> ${this.options.object.version})` : 'loading the datapath on this node')
      await installNode(this.options.shell, plan, this.options.object, this.options.pinRoot, (step) => this.options.log(step), {sizes})
    }
    this.mapSizes = sizes
    const changes = await this.datapath.reconcile(plan)
    this.fullReconciles++
    this.appliedVersion = version
    this.options.log(`converged: +${changes.updated}/-${changes.deleted} entries`)
    this.finished(started)
  }

  /** Why the current plan cannot be written (a map it overfills), remembered until a full reconcile; undefined when it fits. */
  private overfullMessage(): string | undefined {
    const over = overCapacity(this.planner!.fill(), this.mapSizes)
    if (!over.length) return undefined
    this.overfull = true
    return `the plan does not fit, nothing written: ${over.join('; ')}`
  }

  private async flush(): Promise<{updated: number; deleted: number}> {
    const started = Date.now()
    const version = this.newestVersion()
    const delta = this.planner!.flush()
    // A plan that does not fit is not written at all; once it fits again, a full reconcile catches up.
    const overfull = this.overfullMessage()
    if (overfull) {
      this.recordError(overfull)
      return {updated: 0, deleted: 0}
    }
    if (this.overfull) {
      this.overfull = false
      const changes = await this.reconcile('the plan fits again')
      return {updated: changes.updated, deleted: changes.deleted}
    }
    try {
      const result = await this.datapath.apply(delta)
      this.appliedVersion = version
      this.finished(started)
      return result
    } catch (error) {
      // The maps may now differ from the plan: read them back and make them right.
      this.recordError(`incremental write failed (${errorMessage(error)}); reconciling fully`)
      const changes = await this.reconcile('after a failed write')
      return {updated: changes.updated, deleted: changes.deleted}
    }
  }

  /** Read the maps back and make them hold exactly this node's plan. */
  async reconcile(reason: string): Promise<{updated: number; deleted: number; reattached: number; durationMs: number}> {
    const started = Date.now()
    const version = this.newestVersion()
    // Pending events first, the usual way; what the read-back then still finds is drift.
    const delta = this.planner!.flush()
    const overfull = this.overfullMessage()
    if (overfull) throw new Error(overfull)
    await this.datapath.apply(delta).catch((error) => this.recordError(`write before reconcile failed: ${errorMessage(error)}`))
    const changes = await this.datapath.reconcile(this.planner!.plan())
    this.fullReconciles++
    this.appliedVersion = version
    if (changes.updated + changes.deleted + changes.reattached > 0) this.options.log(`${reason}: the node had drifted: corrected +${changes.updated}/-${changes.deleted} entries, re-attached ${changes.reattached} interfaces`)
    this.finished(started)
    return {updated: changes.updated, deleted: changes.deleted, reattached: changes.reattached, durationMs: Date.now() - started}
  }

  private async retryUnenforced(): Promise<void> {
    const waiting = this.datapath.unenforced().map((state) => state.endpoint)
    if (waiting.length) await this.datapath.apply({upserts: [], deletes: [], endpoints: {changed: waiting, removed: []}})
  }

  /** `pinion sync` with an agent: reconcile now, on request. */
  async syncNow(): Promise<{updated: number; deleted: number; reattached: number; durationMs: number; endpoints: number; unenforced: number}> {
    if (!this.ready) throw new AgentError('the agent is not ready yet', 503)
    const result = await this.enqueue(() => this.reconcile('sync requested'))
    return {...result, endpoints: this.datapath.endpoints.size, unenforced: this.datapath.unenforced().length}
  }

  // ---- CNI ----

  private async localPod(key: string, timeoutMs: number): Promise<k8s.V1Pod | undefined> {
    const deadline = Date.now() + timeoutMs
    while (!this.localPods.has(key) && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))
        this.podWaiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return this.localPods.get(key)
  }

  /** CNI ADD: the pod's interface gets its programs and endpoint entry before the pod starts. */
  async cniAdd(request: CniRequest): Promise<{endpointId: number; identity: number}> {
    const started = Date.now()
    try {
      return await this.enforcePod(request)
    } finally {
      this.cniAddMs.push(Date.now() - started)
      if (this.cniAddMs.length > 1000) this.cniAddMs.shift()
    }
  }

  private async enforcePod(request: CniRequest): Promise<{endpointId: number; identity: number}> {
    if (!this.ready) throw new AgentError('the Pinion agent is not ready yet', 503)
    if (this.lease && !this.lease.held) throw new AgentError(`the node is being changed by ${this.lease.holder ?? 'another writer'}: try again shortly`, 503)
    if (!request.ip || !request.interface) throw new AgentError('ADD needs the pod address and its host interface (prevResult)', 400)
    const key = `${request.namespace}/${request.name}`
    const pod = await this.localPod(key, 5000)
    if (!pod) throw new AgentError(`pod ${key} is not known on ${this.options.node} yet`, 503)
    this.cniAddresses.set(key, {ip: request.ip, containerId: request.containerId})
    await this.datapath.hint(request.ip, request.interface)
    this.model.upsert('Pod', this.withCniAddress(pod))
    await this.enqueue(() => this.flush())
    const state = this.datapath.endpoints.get(key)
    if (!state?.enforced) throw new AgentError(`pod ${key} is not enforced: ${state?.problem ?? 'it has no endpoint in the plan'}`, 500)
    return {endpointId: state.endpoint.endpointId, identity: state.endpoint.identity}
  }

  async cniDel(request: CniRequest): Promise<void> {
    const key = `${request.namespace}/${request.name}`
    const cni = this.cniAddresses.get(key)
    this.cniAddresses.delete(key)
    if (cni) this.datapath.forget(cni.ip)
    const pod = this.localPods.get(key)
    if (pod && !pod.status?.podIP) {
      this.model.upsert('Pod', pod)
      this.changed()
    }
  }

  cniCheck(request: CniRequest): void {
    const key = `${request.namespace}/${request.name}`
    const state = this.datapath.endpoints.get(key)
    if (!state?.enforced) throw new AgentError(`pod ${key} is not enforced: ${state?.problem ?? 'unknown to the agent'}`, 500)
  }

  // ---- policy logging ----

  /** Namespaces and policies that opt in under delegated logging; policy names by id are rebuilt when policies change. */
  private trackLogging(kind: ObjectKind, object: KubeObjectLike, present: boolean): void {
    const key = kind === 'Namespace' ? object.metadata?.name ?? '' : objectKey(object)
    const set = kind === 'Namespace' ? this.namespacesLogging : kind === 'NetworkPolicy' ? this.policiesLogging : undefined
    if (!set) return
    if (present && object.metadata?.annotations?.[LOGGING_ANNOTATION] === 'true') set.add(key)
    else set.delete(key)
    if (kind === 'NetworkPolicy') this.policyNames = undefined
  }

  private setLogging(configMap: k8s.V1ConfigMap | undefined): void {
    try {
      this.logging = (JSON.parse(configMap?.data?.['config.json'] ?? 'null') as LoggingConfig | null) ?? DEFAULT_LOGGING
    } catch {
      this.recordError(`${LOGGING_CONFIGMAP}: config.json is not valid JSON; policy logging keeps its previous setting`)
      return
    }
    if (this.ready) void this.enqueue(() => this.applyLoggingSwitches())
  }

  /** The datapath emits verdict events only for what is logged. */
  private async applyLoggingSwitches(): Promise<void> {
    await updateConfig(await nodeMapTool(this.options.shell), this.options.pinRoot, (current) => {
      current.policyLogAllow = this.logging.allow.log ? 1 : 0
      current.policyLogDeny = this.logging.deny.log ? 1 : 0
    })
  }

  private startPolicyLog(options: NonNullable<AgentOptions['policyLog']>): void {
    const podInfo = (ip: string) => {
      const key = this.model.podsByIp.get(ip)
      return key ? this.model.pods.get(key) : undefined
    }
    const context: PolicyLogContext = {
      config: DEFAULT_LOGGING,
      endpoint: (ip: string) => {
        const pod = podInfo(ip)
        if (!pod) return {instance: ip}
        const owner = this.localPods.get(pod.key)?.metadata?.ownerReferences?.find((reference) => reference.controller)
        return {pod_name: pod.name, pod_namespace: pod.namespace, namespace: pod.namespace, workload_kind: owner?.kind, workload_name: owner?.name}
      },
      namespaceOf: (ip: string) => podInfo(ip)?.namespace,
      namespaceLogging: this.namespacesLogging,
      policyLogging: this.policiesLogging,
    }
    this.logger = new PolicyLogger({
      shell: this.options.shell,
      pinRoot: this.options.pinRoot,
      node: this.options.node,
      log: new RotatingLog(options.file, options.maxBytes, options.keep),
      ratePerSecond: options.ratePerSecond,
      denyWindowMs: options.denyWindowMs,
      context: () => ({...context, config: this.logging}),
      names: () => (this.policyNames ??= new Map([...this.model.policies.values()].map((policy) => [policy.id, policy.key]))),
      onError: (message) => this.recordError(message),
    })
    void this.logger.run(this.controller.signal)
  }

  // ---- reporting ----

  status(): AgentStatus {
    const fill: Record<string, number> = {}
    for (const [map, count] of this.planner?.fill() ?? []) fill[map] = count
    fill.pinion_endpoint = [...this.datapath.endpoints.values()].filter((state) => state.enforced).length
    return {
      node: this.options.node,
      pid: process.pid,
      version: this.options.object.version,
      startedAt: this.startedAt,
      ready: this.ready,
      appliedResourceVersion: this.appliedVersion,
      lastSyncAt: this.lastSyncAt,
      lastSyncMs: this.lastSyncMs,
      lagMs: this.pendingSince ? Date.now() - this.pendingSince : 0,
      syncs: this.syncs,
      fullReconciles: this.fullReconciles,
      endpoints: this.datapath.endpoints.size,
      unenforced: this.datapath.unenforced().map((state) => ({pod: `${state.endpoint.namespace}/${state.endpoint.name}`, problem: state.problem ?? 'not enforced'})),
      policyErrors: this.model.policyErrors(),
      planErrors: this.planner?.errors() ?? [],
      attachErrors: this.datapath.attachErrors,
      errors: [...this.errors],
      lease: this.lease ? {name: `${LEASE_NAMESPACE}/${this.lease.name}`, held: this.lease.held, holder: this.lease.holder} : undefined,
      fill,
      cniAdd: this.cniAddMs.length ? (() => {
        const sorted = [...this.cniAddMs].sort((a, b) => a - b)
        const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
        return {count: sorted.length, p50Ms: at(50), p99Ms: at(99), maxMs: sorted[sorted.length - 1]}
      })() : undefined,
    }
  }

  private writeStatus(): void {
    try {
      mkdirSync(dirname(AGENT_STATUS_FILE), {recursive: true})
      writeFileSync(`${AGENT_STATUS_FILE}.tmp`, JSON.stringify(this.status(), null, 2))
      renameSync(`${AGENT_STATUS_FILE}.tmp`, AGENT_STATUS_FILE)
    } catch (error) {
      this.options.log(`cannot write ${AGENT_STATUS_FILE}: ${errorMessage(error)}`)
    }
  }

  /** Prometheus exposition of the agent and the datapath counters. */
  async metrics(): Promise<string> {
    const status = this.status()
    const lines: string[] = []
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`)
    }
    metric('pinion_agent_ready', 'gauge', 'Whether the agent has converged and follows the cluster.', [['', status.ready ? 1 : 0]])
    metric('pinion_agent_syncs_total', 'counter', 'Writes of changes to the node (incremental and full).', [['', status.syncs]])
    metric('pinion_agent_full_reconciles_total', 'counter', 'Full read-back reconciliations.', [['', status.fullReconciles]])
    metric('pinion_agent_last_sync_timestamp_seconds', 'gauge', 'When the node was last brought up to date.', [['', status.lastSyncAt ? Date.parse(status.lastSyncAt) / 1000 : 0]])
    metric('pinion_agent_sync_lag_seconds', 'gauge', 'How long the oldest change not yet on the node has waited.', [['', status.lagMs / 1000]])
    metric('pinion_agent_endpoints', 'gauge', 'Pods of this node the agent manages.', [['', status.endpoints]])
    metric('pinion_agent_unenforced_endpoints', 'gauge', 'Pods of this node without programs or endpoint entry.', [['', status.unenforced.length]])
    metric('pinion_agent_attach_errors_total', 'counter', 'Failed program attachments.', [['', status.attachErrors]])
    metric('pinion_agent_policy_errors', 'gauge', 'NetworkPolicies that cannot be compiled (they fail closed).', [['', status.policyErrors.length]])
    if (this.logger) {
      metric('pinion_policy_log_records_total', 'counter', 'Policy log records written on this node.', [['', this.logger.stats.records]])
      metric('pinion_policy_log_rate_limited_total', 'counter', 'Policy log records dropped by the rate limit.', [['', this.logger.stats.rateLimited]])
      metric('pinion_events_lost_total', 'counter', 'Datapath events lost before the agent read them.', [['', this.logger.stats.lostEvents]])
    }
    metric('pinion_map_entries', 'gauge', 'Entries the control plane keeps in each map.', Object.entries(status.fill).map(([map, count]) => [`{map="${map}"}`, count]))
    try {
      const tool = await nodeMapTool(this.options.shell)
      const rows = await tool.dumpMap(mapPinPath(this.options.pinRoot, 'pinion_metrics_v2'))
      const packets: [string, number][] = []
      const bytes: [string, number][] = []
      for (const row of rows) {
        const slot = row.key.readUInt32LE(0)
        if (slot >= METRICS_SLOTS) continue
        let sumPackets = 0n
        let sumBytes = 0n
        for (const value of row.values ?? []) {
          const decoded = metricsValue.decode(value) as {packets: bigint | number; bytes: bigint | number}
          sumPackets += BigInt(decoded.packets)
          sumBytes += BigInt(decoded.bytes)
        }
        if (sumPackets === 0n) continue
        const {reason, direction} = metricsSlotParts(slot)
        const labels = `{reason="${dropReasonId(reason)}",direction="${direction === 1 ? 'egress' : 'ingress'}"}`
        packets.push([labels, Number(sumPackets)])
        bytes.push([labels, Number(sumBytes)])
      }
      metric('pinion_datapath_packets_total', 'counter', 'Packets by verdict reason (FORWARDED or a drop reason) and direction.', packets)
      metric('pinion_datapath_bytes_total', 'counter', 'Bytes by verdict reason and direction.', bytes)
      const [conntrack] = await tool.digests([mapPinPath(this.options.pinRoot, 'pinion_ct4_v2')])
      metric('pinion_conntrack_entries', 'gauge', 'Connection tracking entries (egress, ingress and Service affinity).', [['', conntrack.count]])
      metric('pinion_conntrack_limit', 'gauge', 'Entries pinion_ct4_v2 holds at most (least recently used ones are evicted beyond).', [['', this.mapSizes.get('pinion_ct4_v2') ?? 0]])
    } catch (error) {
      metric('pinion_datapath_read_errors', 'gauge', `Reading the datapath counters failed: ${errorMessage(error).replace(/\n/g, ' ')}`, [['', 1]])
    }
    return lines.join('\n') + '\n'
  }
}
