import {MAPS} from '../datapath/catalogue.js'
import {UserError} from '../lib/errors.js'
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
