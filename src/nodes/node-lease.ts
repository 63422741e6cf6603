import {createHash} from 'node:crypto'
import {hostname, userInfo} from 'node:os'
import * as k8s from '@kubernetes/client-node'
import {apiErrorMessage, apiStatus, type Clients} from '../cluster/kubeconfig.js'
import {UserError} from '../lib/errors.js'
import {DEBUG_NAMESPACE, ensureDebugNamespace} from './debug-pods.js'

/** Leases live with the agent and the debug pods. */
export const LEASE_NAMESPACE = DEBUG_NAMESPACE
export const LEASE_LABEL = 'pinion.dev/node-lease'
/** Set on the lease by a CLI that wants a node the agent holds; the agent hands the lease over to it. */
export const HANDOVER_ANNOTATION = 'pinion.dev/handover-to'
/** Holders whose identity starts with this hand over on request; others are waited for. */
export const AGENT_HOLDER_PREFIX = 'agent:'

/** `pinion.dev/node-<name>` as a Lease name (names are DNS subdomains: no slash; very long node names are hashed). */
export function leaseName(node: string): string {
  const name = `pinion.dev.node-${node}`
  return name.length <= 253 ? name : `pinion.dev.node-${createHash('sha256').update(node).digest('hex').slice(0, 16)}`
}

/** Who holds a lease, as errors name it: the command, user, host and process. */
export function cliIdentity(command: string): string {
  let user = 'unknown'
  try {
    user = userInfo().username
  } catch {
    // no passwd entry (containers)
  }
  return `pinion ${command} (${user}@${hostname()}, pid ${process.pid})`
}

/**
 * Give back every node lease still held by one of these identities (a run's
 * last step of clean-up): read fresh from the API, so whatever a run's own
 * bookkeeping missed (a take that landed while it was ending) is not left held.
 */
export async function releaseLeasesHeldBy(api: Pick<Clients, 'config'>, identities: ReadonlySet<string>): Promise<void> {
  if (identities.size === 0) return
  const coordination = api.config.makeApiClient(k8s.CoordinationV1Api)
  const {items} = await coordination.listNamespacedLease({namespace: LEASE_NAMESPACE, labelSelector: `${LEASE_LABEL}=true`})
  await Promise.allSettled(items.filter((lease) => identities.has(lease.spec?.holderIdentity ?? '')).map((lease) => {
    lease.spec = {...lease.spec, holderIdentity: undefined, renewTime: microTime(new Date(0)) as unknown as Date}
    return coordination.replaceNamespacedLease({name: lease.metadata!.name!, namespace: LEASE_NAMESPACE, body: lease})
  }))
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
function microTime(date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z')
}

export class NodeBusyError extends UserError {
  constructor(node: string, holder: string, since: string | undefined, waitedMs: number) {
    super(`node ${node} is being changed by ${holder}${since ? ` (since ${since})` : ''}; gave up after waiting ${Math.round(waitedMs / 1000)} s`)
    this.name = 'NodeBusyError'
  }
}

interface LeaseOptions {
  /** How long the lease holds without renewal; renewed every third of it. */
  durationSeconds: number
  /** Poll interval while waiting for another holder. */
  pollMs: number
  /** A holder that has not renewed for this long past its duration is taken over at once (clock skew allowance). */
  staleAfterMs: number
}

const CLI_LEASE: LeaseOptions = {durationSeconds: 15, pollMs: 500, staleAfterMs: 60_000}
export const AGENT_LEASE: LeaseOptions = {durationSeconds: 30, pollMs: 1000, staleAfterMs: 60_000}

type Lease = k8s.V1Lease

/**
 * One writer per node: a coordination.k8s.io Lease per node, named
 * `pinion.dev.node-<node>` in pinion-system, held with renewal by whoever
 * changes the node (install, uninstall, sync, the agent). A holder that stops
 * renewing loses it after its duration, judged by this process's own clock
 * from when it last saw the record change (as client-go's leader election
 * does), so clocks need not agree; a record far past its renewal is taken at
 * once. An agent holder hands the lease over when a CLI asks (HANDOVER_ANNOTATION).
 */
export class NodeLease {
  readonly name: string
  private current?: Lease
  /** When this process last saw the record change, and the record then. */
  private observed?: {at: number; version: string}
  private renewTimer?: NodeJS.Timeout
  private lastRenewed = 0
  private lost = false
  /** An acquire in progress (settled, never rejecting). */
  private acquiring?: Promise<void>
  /** The timer's renewal in flight (settled, never rejecting). */
  private renewing?: Promise<void>
  /** The release under way or done since the last acquire (an acquire in progress stops on it). */
  private released?: Promise<void>

  private readonly coordination: k8s.CoordinationV1Api

  constructor(
    private readonly api: Pick<Clients, 'config' | 'core'>,
    readonly node: string,
    readonly identity: string,
    private readonly options: LeaseOptions = CLI_LEASE,
  ) {
    this.name = leaseName(node)
    this.coordination = api.config.makeApiClient(k8s.CoordinationV1Api)
  }

  /** True while this process holds the lease with time to spare (writers check before each write). */
  get held(): boolean {
    return !this.lost && this.current?.spec?.holderIdentity === this.identity && Date.now() < this.lastRenewed + this.options.durationSeconds * 1000 - 2000
  }

  get holder(): string | undefined {
    return this.current?.spec?.holderIdentity ?? undefined
  }

  /**
   * Take the lease, waiting while another live holder has it (an agent is
   * asked to hand over). `onWait` hears each new holder waited for once.
   */
  acquire(signal: AbortSignal, onWait?: (holder: string) => void): Promise<void> {
    this.released = undefined
    const taking = this.take(signal, onWait)
    this.acquiring = taking.catch(() => undefined)
    return taking
  }

  private async take(signal: AbortSignal, onWait?: (holder: string) => void): Promise<void> {
    const started = Date.now()
    let announced = ''
    let askedHandover = false
    for (;;) {
      // A release asked for meanwhile (a run's clean-up): take nothing more.
      if (this.released) throw new Error(`${this.node}: the lease was given up while waiting for it`)
      if (signal.aborted) throw new NodeBusyError(this.node, this.holder ?? 'another run', this.current?.spec?.acquireTime as unknown as string, Date.now() - started)
      const lease = await this.read()
      const holder = lease?.spec?.holderIdentity
      if (!lease) {
        if (await this.tryCreate()) return this.startRenewing()
      } else if (!holder || holder === this.identity || this.expired(lease)) {
        if (await this.tryTake(lease)) return this.startRenewing()
      } else {
        if (holder !== announced) onWait?.(holder)
        announced = holder
        if (holder.startsWith(AGENT_HOLDER_PREFIX) && !askedHandover && !this.identity.startsWith(AGENT_HOLDER_PREFIX)) {
          askedHandover = await this.askHandover(lease)
        }
      }
      await sleep(this.options.pollMs, signal)
    }
  }

  /**
   * Give the lease up (only if still ours); the next writer need not wait for
   * it to expire. An acquire still in flight is let finish first, so a lease
   * taken by a request already on the wire is given back, never left held.
   */
  release(): Promise<void> {
    // One release at a time: a run's clean-up and its own finally may both ask, and both wait for the same one.
    this.released ??= this.giveUp()
    return this.released
  }

  private async giveUp(): Promise<void> {
    await this.acquiring
    clearInterval(this.renewTimer)
    this.renewTimer = undefined
    // A renewal on the wire would change the record under us: let it land first.
    await this.renewing
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!this.current || this.current.spec?.holderIdentity !== this.identity) break
      const lease = structuredClone(this.current)
      lease.spec = {...lease.spec, holderIdentity: undefined, renewTime: microTime(new Date(0)) as unknown as Date}
      try {
        this.current = await this.coordination.replaceNamespacedLease({name: this.name, namespace: LEASE_NAMESPACE, body: lease})
        break
      } catch (error) {
        // Changed since we read it (a handover request, a late renewal): read it again and retry while it is ours.
        if (apiStatus(error) !== 409) break // the API is gone: it expires by itself
        const current = await this.read().catch(() => undefined)
        if (!current) break
      }
    }
    this.lastRenewed = 0
  }

  /** The agent's side of a handover: give the lease straight to the CLI that asked. */
  async handOver(to: string): Promise<boolean> {
    clearInterval(this.renewTimer)
    this.renewTimer = undefined
    const lease = structuredClone(this.current!)
    const annotations = {...lease.metadata?.annotations}
    delete annotations[HANDOVER_ANNOTATION]
    lease.metadata = {...lease.metadata, annotations}
    lease.spec = {...lease.spec, holderIdentity: to, acquireTime: microTime() as unknown as Date, renewTime: microTime() as unknown as Date, leaseDurationSeconds: CLI_LEASE.durationSeconds, leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1}
    try {
      this.current = await this.coordination.replaceNamespacedLease({name: this.name, namespace: LEASE_NAMESPACE, body: lease})
      this.lastRenewed = 0
      return true
    } catch {
      this.startRenewing()
      return false
    }
  }

  /** The handover asked of this holder, if any (the agent checks on each lease event). */
  handoverRequest(lease: Lease | undefined = this.current): string | undefined {
    return lease?.spec?.holderIdentity === this.identity ? lease?.metadata?.annotations?.[HANDOVER_ANNOTATION] : undefined
  }

  /** Feed a newer copy of the lease (from a watch). */
  observe(lease: Lease): void {
    this.note(lease)
    if (this.current?.spec?.holderIdentity === this.identity && lease.spec?.holderIdentity !== this.identity) this.lost = true
    this.current = lease
  }

  /** Whether the record says nobody holds it, or its holder has stopped renewing. */
  free(lease: Lease | undefined = this.current): boolean {
    return !lease?.spec?.holderIdentity || lease.spec.holderIdentity === this.identity || this.expired(lease)
  }

  private note(lease: Lease): void {
    const version = lease.metadata?.resourceVersion ?? ''
    if (this.observed?.version !== version) this.observed = {at: Date.now(), version}
  }

  private expired(lease: Lease): boolean {
    const durationMs = (lease.spec?.leaseDurationSeconds ?? this.options.durationSeconds) * 1000
    const renewed = Date.parse(String(lease.spec?.renewTime ?? lease.spec?.acquireTime ?? 0))
    if (!Number.isFinite(renewed) || Date.now() > renewed + durationMs + this.options.staleAfterMs) return true
    return this.observed !== undefined && this.observed.version === lease.metadata?.resourceVersion && Date.now() > this.observed.at + durationMs
  }

  private async read(): Promise<Lease | undefined> {
    try {
      const lease = await this.coordination.readNamespacedLease({name: this.name, namespace: LEASE_NAMESPACE})
      this.note(lease)
      this.current = lease
      return lease
    } catch (error) {
      if (apiStatus(error) === 404) return undefined
      throw new UserError(`cannot read lease ${LEASE_NAMESPACE}/${this.name}: ${apiErrorMessage(error)}`)
    }
  }

  private spec(previous?: k8s.V1LeaseSpec): k8s.V1LeaseSpec {
    const now = microTime() as unknown as Date
    const transitions = previous?.leaseTransitions ?? 0
    return {holderIdentity: this.identity, leaseDurationSeconds: this.options.durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: previous?.holderIdentity === this.identity ? transitions : transitions + 1}
  }

  private async tryCreate(): Promise<boolean> {
    const body: Lease = {metadata: {name: this.name, namespace: LEASE_NAMESPACE, labels: {[LEASE_LABEL]: 'true', 'app.kubernetes.io/name': 'pinion'}}, spec: this.spec()}
    try {
      this.current = await this.coordination.createNamespacedLease({namespace: LEASE_NAMESPACE, body})
    } catch (error) {
      const status = apiStatus(error)
      if (status === 409) return false // another writer created it first
      if (status === 404) {
        // The namespace is not there yet (a first install).
        await ensureDebugNamespace(this.api.core)
        return false
      }
      throw new UserError(`cannot create lease ${LEASE_NAMESPACE}/${this.name}: ${apiErrorMessage(error)}`)
    }
    this.lastRenewed = Date.now()
    this.lost = false
    return true
  }

  /** Update with the read resourceVersion: of two writers racing, exactly one wins. */
  private async tryTake(lease: Lease): Promise<boolean> {
    const body = structuredClone(lease)
    const annotations = {...body.metadata?.annotations}
    delete annotations[HANDOVER_ANNOTATION]
    body.metadata = {...body.metadata, annotations}
    body.spec = this.spec(lease.spec)
    if (!(await this.replaceUnlessChanged(body, 'take'))) return false
    this.lastRenewed = Date.now()
    this.lost = false
    return true
  }

  private askHandover(lease: Lease): Promise<boolean> {
    const body = structuredClone(lease)
    body.metadata = {...body.metadata, annotations: {...body.metadata?.annotations, [HANDOVER_ANNOTATION]: this.identity}}
    return this.replaceUnlessChanged(body, 'ask for')
  }

  /** Replace the lease; false when it changed since it was read (409): the caller reads it again. */
  private async replaceUnlessChanged(body: Lease, what: string): Promise<boolean> {
    try {
      this.current = await this.coordination.replaceNamespacedLease({name: this.name, namespace: LEASE_NAMESPACE, body})
      return true
    } catch (error) {
      if (apiStatus(error) === 409) return false
      throw new UserError(`cannot ${what} lease ${LEASE_NAMESPACE}/${this.name}: ${apiErrorMessage(error)}`)
    }
  }

  private startRenewing(): void {
    clearInterval(this.renewTimer)
    this.renewTimer = setInterval(() => {
      this.renewing = this.renew().then(() => undefined, () => undefined)
    }, (this.options.durationSeconds * 1000) / 3)
    this.renewTimer.unref()
  }

  /** Renew now; false when the lease is no longer ours (the writer must stop). */
  async renew(): Promise<boolean> {
    if (!this.current || this.current.spec?.holderIdentity !== this.identity) return false
    const body = structuredClone(this.current)
    body.spec = {...body.spec, renewTime: microTime() as unknown as Date, leaseDurationSeconds: this.options.durationSeconds}
    try {
      this.current = await this.coordination.replaceNamespacedLease({name: this.name, namespace: LEASE_NAMESPACE, body})
      this.lastRenewed = Date.now()
      return true
    } catch (error) {
      if (apiStatus(error) === 409) {
        // Changed under us: a handover request keeps us holder; anything else means it is gone.
        const lease = await this.read().catch(() => undefined)
        if (lease?.spec?.holderIdentity === this.identity) return this.renew()
        this.lost = true
      }
      return false
    }
  }

  stop(): void {
    clearInterval(this.renewTimer)
    this.renewTimer = undefined
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, {once: true})
  })
}
