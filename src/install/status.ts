import type {Clients} from '../cluster/kubeconfig.js'
import {interfacesWithPinion} from '../datapath/attach.js'
import {MAPS} from '../datapath/catalogue.js'
import {type NodeAccessOptions, withNodeAccess} from '../nodes/node-access.js'
import {type NodeShell, runChecked} from '../nodes/shell.js'
import {readNodeRecord} from './node-state.js'

export interface MapFill {
  name: string
  type: string
  keySize: number
  valueSize: number
  entries: number
  maxEntries: number
}

export interface NodeStatus {
  node: string
  installed: boolean
  health: 'healthy' | 'degraded' | 'not installed' | 'unreachable'
  problems: string[]
  version?: string
  programs: string[]
  attachedInterfaces: number
  endpoints: number
  lastSync?: string
  maps: MapFill[]
  error?: string
}

/** Shape and entry count of every pinned Pinion map, gathered on the node in one command. */
export async function mapFill(shell: NodeShell, pinRoot: string): Promise<MapFill[]> {
  const names = MAPS.map((map) => map.name)
  const script = 'root="$1"; shift; for m in "$@"; do p="$root/maps/$m"; [ -e "$p" ] || continue; echo "$m $(bpftool -j map dump pinned "$p" 2>/dev/null | grep -o \'"key":\\[\' | wc -l)"; bpftool -j map show pinned "$p"; echo; done'
  const {stdout} = await runChecked(shell, ['sh', '-c', script, 'fill', pinRoot, ...names])
  const lines = stdout.toString('utf8').split('\n').filter(Boolean)
  const fills: MapFill[] = []
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [name, entries] = lines[i].split(' ')
    const shown = JSON.parse(lines[i + 1]) as {type: string; bytes_key: number; bytes_value: number; max_entries: number}
    fills.push({name, type: shown.type, keySize: shown.bytes_key, valueSize: shown.bytes_value, entries: Number(entries), maxEntries: shown.max_entries})
  }
  return fills
}

export async function nodeStatus(shell: NodeShell, node: string, pinRoot: string): Promise<NodeStatus> {
  const record = await readNodeRecord(shell)
  const programs = (await shell.run(['ls', `${pinRoot}/progs`])).stdout.toString('utf8').split('\n').filter(Boolean)
  const attached = await interfacesWithPinion(shell)
  const maps = await mapFill(shell, pinRoot)
  const problems: string[] = []
  if (record) {
    if (!programs.includes('from_pod') || !programs.includes('to_pod')) problems.push('programs are not pinned')
    const missing = record.interfaces.filter((iface) => !attached.includes(iface))
    if (missing.length) problems.push(`not attached to ${missing.join(', ')}`)
    // Arrays are always full; LRU conntrack evicts by design but a full one drops state early, so it counts.
    const arrays = new Set(MAPS.filter((spec) => spec.type.endsWith('array')).map((spec) => spec.name))
    for (const map of maps) if (!arrays.has(map.name) && map.maxEntries && map.entries / map.maxEntries > 0.9) problems.push(`${map.name} is ${Math.round((100 * map.entries) / map.maxEntries)}% full`)
  }
  return {
    node,
    installed: Boolean(record),
    health: !record ? 'not installed' : problems.length ? 'degraded' : 'healthy',
    problems,
    version: record?.version,
    programs,
    attachedInterfaces: attached.length,
    endpoints: maps.find((map) => map.name === 'pinion_endpoint')?.entries ?? 0,
    lastSync: record?.lastSync,
    maps,
  }
}

export async function clusterStatus(api: Clients, access: NodeAccessOptions, nodes: readonly string[], pinRoot: string): Promise<NodeStatus[]> {
  return withNodeAccess(api, access, async (session) => {
    const names = await session.nodes(nodes)
    const results = await session.forEach(names, (shell, node) => nodeStatus(shell, node, pinRoot))
    return results.map((result) => result.value ?? {node: result.item, installed: false, health: 'unreachable', problems: [result.error ?? 'unreachable'], programs: [], attachedInterfaces: 0, endpoints: 0, maps: [], error: result.error})
  })
}
