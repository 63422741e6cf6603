import {attachPrograms, interfacesWithPinion, resolveInterfaces} from '../datapath/attach.js'
import {mapPinPath} from '../datapath/catalogue.js'
import {endpointEntry, type MapEntry} from '../datapath/entries.js'
import {type MapTool, nodeMapTool} from '../datapath/maptool.js'
import {configIndex, endpointKey, pinionConfig} from '../datapath/structs.js'
import {nextFlowEpoch} from '../datapath/runtime-config.js'
import {type NodeShell, runChecked} from '../nodes/shell.js'
import {applyEntries, MANAGED_MAPS, type MapChanges, type NodeInterface} from '../sync/apply.js'
import type {EndpointPlan, NodePlan, PlanDelta} from '../sync/node-planner.js'

export interface EndpointState {
  endpoint: EndpointPlan
  /** Set once the pod's interface has Pinion's programs and its endpoint entry is written. */
  enforced?: {interface: string; ifindex: number}
  /** Why it is not enforced yet. */
  problem?: string
}

const podKey = (endpoint: {namespace: string; name: string}) => `${endpoint.namespace}/${endpoint.name}`

/**
 * The agent's hands on its own node: pinned maps written directly (the
 * native map tool on this host, no debug pod), programs attached to pod interfaces, and what
 * it did to each endpoint. Map writes follow the rule of the CLI path: rules,
 * identities and backends before what points at them, deletions in reverse.
 */
export class NodeDatapath {
  readonly endpoints = new Map<string, EndpointState>()
  /** Interfaces the CNI plugin named for pod IPs (found without a route scan). */
  private readonly hinted = new Map<string, NodeInterface>()
  /** Pod addresses whose endpoint entry is in the map. */
  private readonly written = new Set<string>()
  attachErrors = 0

  constructor(
    private readonly shell: NodeShell,
    readonly pinRoot: string,
  ) {}

  private maps(): Promise<MapTool> {
    return nodeMapTool(this.shell)
  }

  /** The CNI plugin's word on which host interface carries a pod's address. */
  async hint(ip: string, name: string): Promise<NodeInterface> {
    const [link] = JSON.parse((await runChecked(this.shell, ['ip', '-j', 'link', 'show', 'dev', name])).stdout.toString('utf8')) as {ifname: string; ifindex: number; address: string}[]
    const found = {name: link.ifname, ifindex: link.ifindex, mac: link.address}
    this.hinted.set(ip, found)
    return found
  }

  forget(ip: string): void {
    this.hinted.delete(ip)
  }

  /** Full reconciliation: the maps are read back and made to hold exactly the plan; every endpoint is (re)attached. */
  async reconcile(plan: NodePlan): Promise<MapChanges & {reattached: number}> {
    const attachedBefore = new Set(await interfacesWithPinion(this.shell))
    const interfaces = await this.interfaces(plan.endpoints)
    for (const key of [...this.endpoints.keys()]) if (!plan.endpoints.some((endpoint) => podKey(endpoint) === key)) this.endpoints.delete(key)
    const ready = this.prepare(plan.endpoints, interfaces)
    // Maps first, then programs: a pod's first packet finds its entries.
    const changes = await applyEntries(await this.maps(), this.pinRoot, [...plan.entries, ...ready.map((item) => item.entry)], {programsRunning: true})
    this.written.clear()
    for (const item of ready) this.written.add(item.endpoint.ip)
    await this.attach(ready)
    // Programs that had gone from an interface (a tc change behind our back) are back now.
    return {...changes, reattached: ready.filter((item) => !attachedBefore.has(item.link.name)).length}
  }

  /** Apply what changed since the last flush; returns how many entries were written and deleted. */
  async apply(delta: PlanDelta): Promise<{updated: number; deleted: number}> {
    const endpointDeletes: Buffer[] = []
    for (const endpoint of delta.endpoints.removed) {
      const state = this.endpoints.get(podKey(endpoint))
      this.endpoints.delete(podKey(endpoint))
      if (state && this.written.delete(state.endpoint.ip)) endpointDeletes.push(endpointKey.encode({ip4: state.endpoint.ip}))
    }
    // A changed endpoint whose address moved leaves its old entry behind.
    for (const endpoint of delta.endpoints.changed) {
      const previous = this.endpoints.get(podKey(endpoint))
      if (previous && previous.endpoint.ip !== endpoint.ip && this.written.delete(previous.endpoint.ip)) endpointDeletes.push(endpointKey.encode({ip4: previous.endpoint.ip}))
    }
    const interfaces = delta.endpoints.changed.length ? await this.interfaces(delta.endpoints.changed) : new Map<string, NodeInterface>()
    const ready = this.prepare(delta.endpoints.changed, interfaces)
    const upserts = [...delta.upserts, ...ready.map((item) => item.entry)]
    const deletes: {map: string; key: Buffer}[] = [...delta.deletes, ...endpointDeletes.map((key) => ({map: 'pinion_endpoint', key}))]
    if (upserts.length + deletes.length > 0) {
      // One process: writes in dependency order, deletions in reverse, the flow epoch last.
      const config = await this.nextConfig()
      await (await this.maps()).batchMany([
        ...MANAGED_MAPS.map((map) => ({pinPath: mapPinPath(this.pinRoot, map), updates: upserts.filter((entry) => entry.map === map)})),
        ...[...MANAGED_MAPS].reverse().map((map) => ({pinPath: mapPinPath(this.pinRoot, map), deletes: deletes.filter((entry) => entry.map === map).map((entry) => entry.key)})),
        {pinPath: mapPinPath(this.pinRoot, 'pinion_config'), updates: [config]},
      ])
    }
    for (const item of ready) this.written.add(item.endpoint.ip)
    await this.attach(ready)
    return {updated: upserts.length, deleted: deletes.length}
  }

  /** pinion_config as it is now, with the next flow epoch (read back each time: the CLI may switch logging). */
  private async nextConfig(): Promise<{key: Buffer; value: Buffer}> {
    const [row] = await (await this.maps()).dumpMap(mapPinPath(this.pinRoot, 'pinion_config'))
    const config = row?.value ? pinionConfig.decode(row.value) : {}
    nextFlowEpoch(config)
    return {key: configIndex.encode({index: 0}), value: pinionConfig.encode(config)}
  }

  /** Endpoints still waiting for their interface. */
  unenforced(): EndpointState[] {
    return [...this.endpoints.values()].filter((state) => !state.enforced)
  }

  private async interfaces(endpoints: readonly EndpointPlan[]): Promise<Map<string, NodeInterface>> {
    const found = new Map<string, NodeInterface>()
    for (const endpoint of endpoints) {
      const hinted = this.hinted.get(endpoint.ip)
      if (hinted) found.set(endpoint.ip, hinted)
    }
    if (endpoints.every((endpoint) => found.has(endpoint.ip))) return found
    for (const [ip, link] of await resolveInterfaces(this.shell)) if (!found.has(ip)) found.set(ip, link)
    return found
  }

  /** Endpoint entries for the endpoints whose interface is known; the others wait (and say why). */
  private prepare(endpoints: readonly EndpointPlan[], interfaces: ReadonlyMap<string, NodeInterface>): Prepared[] {
    const ready: Prepared[] = []
    for (const endpoint of endpoints) {
      const link = interfaces.get(endpoint.ip)
      if (!link) {
        this.endpoints.set(podKey(endpoint), {endpoint, problem: 'no interface with its address on this node yet'})
        continue
      }
      ready.push({endpoint, link, entry: endpointEntry({ip: endpoint.ip, ifindex: link.ifindex, endpointId: endpoint.endpointId, identity: endpoint.identity, ingressDenyCookie: endpoint.ingressDenyCookie, egressDenyCookie: endpoint.egressDenyCookie, nodeMac: link.mac})})
    }
    return ready
  }

  /** Attach programs to the prepared endpoints' interfaces (their entries are written already). */
  private async attach(ready: readonly Prepared[]): Promise<void> {
    if (ready.length === 0) return
    const failed = new Map<string, string>()
    try {
      await attachPrograms(this.shell, ready.map((item) => item.link.name), `${this.pinRoot}/progs`)
    } catch {
      // One vanished interface fails the batch: attach one by one to find it.
      for (const item of ready) {
        try {
          await attachPrograms(this.shell, [item.link.name], `${this.pinRoot}/progs`)
        } catch (error) {
          this.attachErrors++
          failed.set(item.endpoint.ip, `cannot attach to ${item.link.name}: ${(error as Error).message}`)
        }
      }
    }
    for (const item of ready) {
      const problem = failed.get(item.endpoint.ip)
      this.endpoints.set(podKey(item.endpoint), problem ? {endpoint: item.endpoint, problem} : {endpoint: item.endpoint, enforced: {interface: item.link.name, ifindex: item.link.ifindex}})
    }
  }
}

interface Prepared {
  endpoint: EndpointPlan
  link: NodeInterface
  entry: MapEntry
}
