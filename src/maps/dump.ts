import {NotInstalledError} from '../datapath/node-state.js'
import type {Clients} from '../cluster/kubeconfig.js'
import {readSnapshot} from '../cluster/snapshot.js'
import {type MapSpec, MAPS, mapPinPath, mapSpec, shortMapName} from '../datapath/catalogue.js'
import type {Decoded} from '../datapath/codec.js'
import {protoName} from '../datapath/constants.js'
import * as S from '../datapath/structs.js'
import {UsageError} from '../lib/errors.js'
import {type NodeAccessOptions, withNodeAccess} from '../nodes/node-access.js'
import {type NodeShell, runChecked} from '../nodes/shell.js'
import {type ClusterNames, clusterNames, readPolicyNames} from '../sync/names.js'
import {decodeRow, type DumpContext, parseFilters, type Row} from './decode.js'
import {pendingConntrackCounts, withPendingCounts} from './flow-cache.js'
import {streamEntries} from './stream.js'
import {mapFill, type MapFill} from '../datapath/map-fill.js'

const ALIASES: Record<string, string> = {ct: 'pinion_ct4_v2', conntrack: 'pinion_ct4_v2', endpoints: 'pinion_endpoint', policies: 'pinion_policy', policynames: 'pinion_polnames', backend: 'pinion_backends', service: 'pinion_services_v2'}

/** A map by its name, short name or alias; unknown names list the valid ones. */
export function resolveMap(name: string): MapSpec {
  const spec = mapSpec(ALIASES[name] ?? name)
  if (!spec || spec.type === 'perf_event_array') {
    const valid = MAPS.filter((map) => map.type !== 'perf_event_array').map((map) => shortMapName(map.name))
    throw new UsageError(`unknown map "${name}": valid maps are ${valid.join(', ')}`)
  }
  return spec
}

export interface NodeMapList {
  node: string
  ok: boolean
  maps?: MapFill[]
  error?: string
}

export async function listMaps(api: Clients, access: NodeAccessOptions, nodes: readonly string[], pinRoot: string): Promise<NodeMapList[]> {
  return withNodeAccess(api, access, async (session) => {
    const results = await session.forEach(await session.nodes(nodes), async (shell) => {
      const maps = await mapFill(shell, pinRoot)
      if (maps.length === 0) throw new NotInstalledError(shell.node, pinRoot)
      return maps
    })
    return results.map((result) => ({node: result.item, ok: result.ok, maps: result.value, error: result.error}))
  })
}

export interface DumpOptions {
  map: string
  nodes: readonly string[]
  filters: readonly string[]
  limit?: number
  raw: boolean
  pinRoot: string
}

export interface NodeDump {
  node: string
  ok: boolean
  map: string
  rows?: Row[]
  /** More rows matched than --limit allowed. */
  truncated?: boolean
  error?: string
}

async function nodeContext(shell: NodeShell, pinRoot: string, base: Omit<DumpContext, 'policies' | 'endpoints' | 'uptimeSeconds'>): Promise<DumpContext> {
  const policies = await readPolicyNames(shell, pinRoot)
  const endpoints = new Map<number, string>()
  await streamEntries(shell, mapPinPath(pinRoot, 'pinion_endpoint'), (entry) => {
    const ip = S.endpointKey.decode(entry.key).ip4 as string
    endpoints.set(S.endpointInfo.decode(entry.value!).endpointId as number, base.pods.get(ip) ?? ip)
    return true
  })
  const uptime = (await runChecked(shell, ['cat', '/proc/uptime'])).stdout.toString('utf8')
  return {...base, policies, endpoints, uptimeSeconds: Math.floor(Number.parseFloat(uptime))}
}


export async function dumpNode(shell: NodeShell, spec: MapSpec, options: Omit<DumpOptions, 'map' | 'nodes'>, base: ClusterNames): Promise<{rows: Row[]; truncated: boolean}> {
  const path = mapPinPath(options.pinRoot, spec.name)
  if ((await shell.run(['test', '-e', path])).exitCode !== 0) throw new NotInstalledError(shell.node, options.pinRoot)
  const context = await nodeContext(shell, options.pinRoot, base)
  const filters = parseFilters(options.filters, spec)
  const rows: Row[] = []
  let truncated = false
  const backends = new Map<number, string>()
  const joinServices = spec.name === 'pinion_services_v2' && !options.raw
  if (joinServices) {
    await streamEntries(shell, mapPinPath(options.pinRoot, 'pinion_backends'), (entry) => {
      const backend = S.lb4Backend.decode(entry.value!)
      const pod = context.pods.get(backend.address as string)
      backends.set(S.backendId.decode(entry.key).id as number, `${backend.address}:${backend.port}${pod ? ` (${pod})` : ''}`)
      return true
    })
  }
  const slots = new Map<string, string[]>()
  // Raw rows show the map as it is; decoded conntrack adds what the flow cache holds.
  const pending = spec.name === 'pinion_ct4_v2' && !options.raw ? await pendingConntrackCounts(shell, options.pinRoot) : undefined
  await streamEntries(shell, path, (entry) => {
    const keyBytes = entry.key
    // Per-CPU arrays list every slot; the unused ones are all zero.
    if (spec.type === 'percpu_array' && entry.values?.every((perCpu) => perCpu.every((byte) => byte === 0))) return true
    let row: Row
    if (options.raw) {
      row = {key: keyBytes.toString('hex'), value: entry.value ? entry.value.toString('hex') : entry.values?.map((perCpu) => perCpu.toString('hex'))}
    } else {
      const key = spec.key.decode(keyBytes)
      let value: Decoded | Decoded[] | undefined = entry.values ? entry.values.map((perCpu) => spec.value!.decode(perCpu)) : entry.value && spec.value ? spec.value.decode(entry.value) : undefined
      if (pending && value) value = withPendingCounts(value as Decoded, pending.get(keyBytes.toString('hex')))
      if (joinServices && (key.backendSlot as number) > 0) {
        const frontend = `${key.address}:${key.dport}/${protoName(key.proto as number)}`
        slots.set(frontend, [...(slots.get(frontend) ?? []), backends.get((value as Decoded).backendId as number) ?? `backend ${(value as Decoded).backendId}`])
        return true
      }
      row = decodeRow(spec, key, value, context)
    }
    if (!filters.every((keep) => keep(row))) return true
    if (options.limit !== undefined && rows.length >= options.limit) {
      truncated = true
      return false
    }
    rows.push(row)
    return true
  })
  if (joinServices) {
    for (const row of rows) {
      row.backends = (slots.get(row.frontend as string) ?? []).sort()
      delete row.slot
    }
  }
  return {rows, truncated}
}

export async function dumpMap(api: Clients, access: NodeAccessOptions, options: DumpOptions): Promise<NodeDump[]> {
  const spec = resolveMap(options.map)
  parseFilters(options.filters, spec) // reject bad filters before touching nodes
  const names = clusterNames(await readSnapshot(api))
  return withNodeAccess(api, access, async (session) => {
    const results = await session.forEach(await session.nodes(options.nodes), (shell) => dumpNode(shell, spec, options, names))
    return results.map((result) => ({node: result.item, ok: result.ok, map: spec.name, rows: result.value?.rows, truncated: result.value?.truncated, error: result.error}))
  })
}
