import {mapPinPath} from './catalogue.js'
import type {Decoded} from './codec.js'
import {type MapIo, nodeMapTool} from './maptool.js'
import {configIndex, pinionConfig} from './structs.js'
import type {NodeShell} from '../nodes/shell.js'

/** Read-modify-write of a node's pinion_config entry (logging switches, tracing, flow epoch). */
export async function updateConfig(maps: MapIo, pinRoot: string, change: (config: Decoded) => void): Promise<Decoded> {
  const path = mapPinPath(pinRoot, 'pinion_config')
  const [row] = await maps.dumpMap(path)
  const config = row?.value ? pinionConfig.decode(row.value) : {}
  change(config)
  await maps.batch(path, [{key: configIndex.encode({index: 0}), value: pinionConfig.encode(config)}])
  return config
}

export async function updateNodeConfig(shell: NodeShell, pinRoot: string, change: (config: Decoded) => void): Promise<Decoded> {
  return updateConfig(await nodeMapTool(shell), pinRoot, change)
}

/**
 * Make every flow cache slot stale: the datapath caches what its maps said
 * about an established flow (backend, reverse NAT, interface) and trusts it
 * only while flow_epoch is unchanged. Called after any map change.
 */
export function nextFlowEpoch(config: Decoded): void {
  config.flowEpoch = (((config.flowEpoch as number | undefined) ?? 0) + 1) >>> 0
}
