import {mapPinPath} from '../datapath/catalogue.js'
import type {Decoded} from '../datapath/codec.js'
import {ct4Key, flowSlot} from '../datapath/structs.js'
import type {NodeShell} from '../nodes/shell.js'
import {streamEntries} from './stream.js'

/** What the flow cache has counted for one conntrack entry and not yet added to it. */
export interface PendingCounts {
  txPackets: number
  txBytes: number
  txTcpFlags: number
  rxPackets: number
  rxBytes: number
  rxTcpFlags: number
}

const CT_KEY_OFFSET = flowSlot.fields.find((field) => field.name === 'ct')!.offset

/**
 * The datapath counts an established flow's packets in its per-CPU flow cache
 * slot and adds them to the conntrack entry when the full pipeline next runs
 * for the flow (pinion_abi.h, struct flow_slot). Readers of conntrack add
 * them here: conntrack key (hex) -> counts over all CPUs.
 */
export async function pendingConntrackCounts(shell: NodeShell, pinRoot: string): Promise<Map<string, PendingCounts>> {
  const pending = new Map<string, PendingCounts>()
  const path = mapPinPath(pinRoot, 'pinion_flowcache')
  if ((await shell.run(['test', '-e', path])).exitCode !== 0) return pending // datapath from before the flow cache
  await streamEntries(shell, path, (entry) => {
    for (const raw of entry.values ?? []) {
      const slot = flowSlot.decode(raw)
      if (!slot.packets) continue
      const key = raw.subarray(CT_KEY_OFFSET, CT_KEY_OFFSET + ct4Key.size).toString('hex')
      const counts = pending.get(key) ?? {txPackets: 0, txBytes: 0, txTcpFlags: 0, rxPackets: 0, rxBytes: 0, rxTcpFlags: 0}
      if (slot.reply) {
        counts.rxPackets += slot.packets as number
        counts.rxBytes += slot.bytes as number
        counts.rxTcpFlags |= slot.tcpFlags as number
      } else {
        counts.txPackets += slot.packets as number
        counts.txBytes += slot.bytes as number
        counts.txTcpFlags |= slot.tcpFlags as number
      }
      pending.set(key, counts)
    }
    return true
  })
  return pending
}

/** A decoded ct_entry with its pending counts added. */
export function withPendingCounts(entry: Decoded, counts: PendingCounts | undefined): Decoded {
  if (!counts) return entry
  return {
    ...entry,
    txPackets: (entry.txPackets as number) + counts.txPackets,
    txBytes: (entry.txBytes as number) + counts.txBytes,
    txTcpFlags: (entry.txTcpFlags as number) | counts.txTcpFlags,
    rxPackets: (entry.rxPackets as number) + counts.rxPackets,
    rxBytes: (entry.rxBytes as number) + counts.rxBytes,
    rxTcpFlags: (entry.rxTcpFlags as number) | counts.rxTcpFlags,
  }
}
