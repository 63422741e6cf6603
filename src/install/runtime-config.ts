import {BpfTool} from '../datapath/bpftool.js'
import {mapPinPath} from '../datapath/catalogue.js'
import type {Decoded} from '../datapath/codec.js'
import {configIndex, pinionConfig} from '../datapath/structs.js'
import type {NodeShell} from '../nodes/shell.js'

/** Read-modify-write of a node's pinion_config entry (logging switches, tracing). */
export async function updateNodeConfig(shell: NodeShell, pinRoot: string, change: (config: Decoded) => void): Promise<Decoded> {
  const bpftool = new BpfTool(shell)
  const path = mapPinPath(pinRoot, 'pinion_config')
  const [row] = await bpftool.dumpMap(path)
  const config = row?.value ? pinionConfig.decode(row.value) : {}
  change(config)
  await bpftool.batch(path, [{key: configIndex.encode({index: 0}), value: pinionConfig.encode(config)}])
  return config
}
