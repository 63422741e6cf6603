import {BpfTool} from '../datapath/bpftool.js'
import {mapPinPath} from '../datapath/catalogue.js'
import {type DatapathEvent, decodeEvent} from '../datapath/events.js'
import {errorMessage} from '../lib/errors.js'
import {waitFor} from '../lib/wait.js'
import type {NodeAccess} from '../nodes/node-access.js'

export type NodeEvent = {node: string} & ({kind: 'event'; event: DatapathEvent} | {kind: 'lost'; count: number; cpu: number} | {kind: 'error'; message: string})

/**
 * Stream datapath events from several nodes at once (one event pipe per node
 * through its shell). Lost-event notices and per-node failures are delivered
 * too, never swallowed. Resolves once every pipe has a reader attached;
 * `stop()` ends all pipes and waits for them.
 */
export async function collectEvents(access: NodeAccess, nodes: readonly string[], pinRoot: string, onEvent: (event: NodeEvent) => void): Promise<{stop: () => Promise<void>}> {
  const controller = new AbortController()
  const pipes = nodes.map(async (node) => {
    try {
      const shell = await access.shell(node)
      const path = mapPinPath(pinRoot, 'pinion_events')
      if ((await shell.run(['test', '-e', path])).exitCode !== 0) throw new Error(`Pinion is not installed (no ${path})`)
      const bpftool = new BpfTool(shell)
      const running = bpftool.eventPipe(path, (record) => {
        if (record.kind === 'lost') onEvent({node, kind: 'lost', count: record.count, cpu: record.cpu})
        else onEvent({node, kind: 'event', event: decodeEvent(record.data)})
      }, controller.signal)
      await waitFor(`the event reader on ${node}`, () => bpftool.eventReaderAttached(path), {timeoutMs: 15_000})
      return {node, running}
    } catch (error) {
      onEvent({node, kind: 'error', message: errorMessage(error)})
      return {node, running: Promise.resolve()}
    }
  })
  const started = await Promise.all(pipes)
  return {
    stop: async () => {
      controller.abort()
      await Promise.allSettled(started.map((pipe) => pipe.running))
    },
  }
}
