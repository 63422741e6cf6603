import type {NodeInterface} from '../datapath/attach.js'
import {mapPinPath} from '../datapath/catalogue.js'
import {endpointEntry, type MapEntry} from '../datapath/entries.js'
import {digestRecords, type MapIo, sameDigest} from '../datapath/maptool.js'
import {nextFlowEpoch, updateConfig} from '../datapath/runtime-config.js'
import type {NodePlan} from './plan.js'

/** Maps whose whole content the control plane owns (not conntrack, metrics, events or config). */
export const MANAGED_MAPS = ['pinion_backends', 'pinion_revnat_v2', 'pinion_services_v2', 'pinion_ipcache', 'pinion_polnames', 'pinion_policy', 'pinion_endpoint'] as const

export type {NodeInterface}

/** Endpoint entries need the node's interface of each pod (found by its /32 route). */
export function endpointEntries(plan: NodePlan, interfaces: ReadonlyMap<string, NodeInterface>): MapEntry[] {
  return plan.endpoints.flatMap((endpoint) => {
    const link = interfaces.get(endpoint.ip)
    if (!link) return []
    return [endpointEntry({ip: endpoint.ip, ifindex: link.ifindex, endpointId: endpoint.endpointId, identity: endpoint.identity, ingressDenyCookie: endpoint.ingressDenyCookie, egressDenyCookie: endpoint.egressDenyCookie, nodeMac: link.mac})]
  })
}

export interface MapChanges {
  updated: number
  deleted: number
  byMap: Record<string, {updated: number; deleted: number}>
}

/**
 * Make the managed maps hold exactly `entries`: read each map, write only
 * what differs (one native batch per map), delete what is no longer wanted.
 * A map whose digest (count and hash, a few bytes) already matches what is
 * wanted is not read at all, so a reconciliation with nothing to change
 * reads next to nothing from the node.
 * Rules and backends are written before the entries that point at them.
 * Any change makes the datapath's flow cache stale (flow epoch), unless no
 * programs run yet (programsRunning false: a fresh install).
 */
export async function applyEntries(maps: MapIo, pinRoot: string, entries: readonly MapEntry[], options: {dryRun?: boolean; programsRunning?: boolean} = {}): Promise<MapChanges> {
  const changes: MapChanges = {updated: 0, deleted: 0, byMap: {}}
  const deletions: {map: string; keys: Buffer[]}[] = []
  const wantedByMap = new Map<string, Map<string, MapEntry>>(MANAGED_MAPS.map((map) => [map, new Map()]))
  for (const entry of entries) wantedByMap.get(entry.map)?.set(entry.key.toString('hex'), entry)
  const digests = maps.digests ? await maps.digests(MANAGED_MAPS.map((map) => mapPinPath(pinRoot, map))) : undefined
  for (const [index, map] of MANAGED_MAPS.entries()) {
    const path = mapPinPath(pinRoot, map)
    const wanted = wantedByMap.get(map)!
    if (digests && sameDigest(digests[index], digestRecords(wanted.values()))) {
      changes.byMap[map] = {updated: 0, deleted: 0}
      continue
    }
    const current = new Map((await maps.dumpMap(path)).map((row) => [row.key.toString('hex'), row.value?.toString('hex')]))
    const updates = [...wanted].filter(([key, entry]) => current.get(key) !== entry.value.toString('hex')).map(([, entry]) => entry)
    const stale = [...current.keys()].filter((key) => !wanted.has(key)).map((key) => Buffer.from(key, 'hex'))
    if (!options.dryRun) await maps.batch(path, updates)
    deletions.push({map, keys: stale})
    changes.byMap[map] = {updated: updates.length, deleted: stale.length}
    changes.updated += updates.length
    changes.deleted += stale.length
  }
  if (!options.dryRun) {
    for (const {map, keys} of deletions.reverse()) await maps.batch(mapPinPath(pinRoot, map), [], keys)
    if (changes.updated + changes.deleted > 0 && options.programsRunning !== false) await updateConfig(maps, pinRoot, nextFlowEpoch)
  }
  return changes
}
