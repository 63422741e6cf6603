import type {NodeShell} from '../nodes/shell.js'
import {KERNEL_MAP_TYPE, mapPinPath} from './catalogue.js'
import {mapTypeName, nodeMapTool, pinnedMapInfo} from './maptool.js'

export interface MapFill {
  name: string
  type: string
  keySize: number
  valueSize: number
  entries: number
  maxEntries: number
}

/** Shape and entry count of every pinned Pinion map (none where nothing is pinned). */
export async function mapFill(shell: NodeShell, pinRoot: string): Promise<MapFill[]> {
  const infos = await pinnedMapInfo(shell, pinRoot)
  if (infos.size === 0) return []
  // A perf event array has no entries to count (its slots hold per-CPU ring buffers, not values).
  const counted = [...infos.keys()].filter((name) => infos.get(name)!.type !== KERNEL_MAP_TYPE.perf_event_array)
  const digests = await (await nodeMapTool(shell)).digests(counted.map((name) => mapPinPath(pinRoot, name)))
  const counts = new Map(counted.map((name, index) => [name, digests[index].count]))
  return [...infos].map(([name, info]) => ({name, type: mapTypeName(info.type), keySize: info.key, valueSize: info.value, entries: counts.get(name) ?? 0, maxEntries: info.max}))
}
