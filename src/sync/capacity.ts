import {MAPS, mapSpec, shortMapName} from '../datapath/catalogue.js'
import {UsageError, UserError} from '../lib/errors.js'
import type {NodePlan} from './plan.js'

/** Entries a plan puts in each map (pinion_endpoint: one per local pod). */
export function planFill(plan: NodePlan): Map<string, number> {
  const fill = new Map<string, number>([['pinion_endpoint', plan.endpoints.length]])
  for (const entry of plan.entries) fill.set(entry.map, (fill.get(entry.map) ?? 0) + 1)
  return fill
}

/** Maps a plan overfills, as "MAP needs N entries, its limit is L". */
export function overCapacity(fill: ReadonlyMap<string, number>, sizes: ReadonlyMap<string, number> = new Map()): string[] {
  const over: string[] = []
  for (const [map, count] of fill) {
    const limit = sizes.get(map) ?? MAPS.find((spec) => spec.name === map)?.maxEntries
    if (limit !== undefined && count > limit) over.push(`${map} needs ${count} entries, its limit is ${limit}`)
  }
  return over
}

/** Refuse a plan that does not fit the datapath's maps, naming the map, the count and the limit. */
export function checkCapacity(plan: NodePlan, sizes: ReadonlyMap<string, number> = new Map()): void {
  const over = overCapacity(planFill(plan), sizes)
  if (over.length) throw new UserError(`the plan for node ${plan.node} does not fit: ${over.join('; ')}; nothing was changed`)
}

/** The largest map --map-size accepts (the kernel takes more, but memory for the tries and LRU grows with it). */
export const MAX_MAP_SIZE = 1 << 24

/**
 * `--map-size NAME=N` values (short names as `map dump` takes them: ct,
 * policy, polnames, ...). Only resizable maps; N from 1 to MAX_MAP_SIZE.
 */
export function parseMapSizes(values: readonly string[]): Map<string, number> {
  const aliases: Record<string, string> = {ct: 'pinion_ct4_v2', conntrack: 'pinion_ct4_v2'}
  const resizable = MAPS.filter((spec) => spec.resizable).map((spec) => shortMapName(spec.name))
  const sizes = new Map<string, number>()
  for (const value of values) {
    const match = /^([\w-]+)=(\d+)$/.exec(value)
    if (!match) throw new UsageError(`bad --map-size "${value}": use MAP=ENTRIES, e.g. ct=1048576`)
    const spec = mapSpec(aliases[match[1]] ?? match[1])
    if (!spec?.resizable) throw new UsageError(`--map-size ${value}: ${match[1]} cannot be sized; the maps that can are ${resizable.join(', ')} (ct = conntrack)`)
    const size = Number(match[2])
    if (!(size >= 1 && size <= MAX_MAP_SIZE)) throw new UsageError(`--map-size ${value}: entries must be from 1 to ${MAX_MAP_SIZE}`)
    sizes.set(spec.name, size)
  }
  return sizes
}

/**
 * The size each resizable map gets when it is created: the override, else
 * the object's default or twice what the plan needs (a power of two), whichever
 * is larger, so a node can double before it needs a bigger map.
 */
export function plannedSizes(fill: ReadonlyMap<string, number>, overrides: ReadonlyMap<string, number> = new Map()): Map<string, number> {
  const sizes = new Map<string, number>()
  for (const spec of MAPS) {
    if (!spec.resizable) continue
    const headroom = 2 ** Math.ceil(Math.log2(Math.max(1, (fill.get(spec.name) ?? 0) * 2)))
    sizes.set(spec.name, overrides.get(spec.name) ?? Math.min(MAX_MAP_SIZE, Math.max(spec.maxEntries!, headroom)))
  }
  return sizes
}

/**
 * The sizes a node's maps will have: what is pinned keeps its size (a map is
 * sized only when it is created); the rest as planned. An override that a
 * pinned map of another size would ignore is refused.
 */
export function effectiveSizes(node: string, pinned: ReadonlyMap<string, number>, planned: ReadonlyMap<string, number>, overrides: ReadonlyMap<string, number> = new Map()): Map<string, number> {
  for (const [map, size] of overrides) {
    const current = pinned.get(map)
    if (current !== undefined && current !== size) throw new UserError(`--map-size ${shortMapName(map)}=${size}: ${map} on ${node} already holds up to ${current} entries, and a pinned map keeps its size; uninstall and install again to resize it (conntrack starts empty then); nothing was changed`)
  }
  return new Map([...planned, ...pinned])
}
