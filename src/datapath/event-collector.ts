import {BpfTool} from './bpftool.js'
import {mapPinPath} from './catalogue.js'
import {type DatapathEvent, decodeEvent} from './events.js'
import {requireInstalled} from './node-state.js'
import {errorMessage} from '../lib/errors.js'
import {waitFor} from '../lib/wait.js'
import type {NodeAccess} from '../nodes/node-access.js'

export type NodeEvent = {node: string} & ({kind: 'event'; event: DatapathEvent} | {kind: 'lost'; count: number; cpu: number} | {kind: 'error'; message: string})

/**
 * Stream datapath events from several nodes at once (one event pipe per node
 * through its shell). Lost-event notices and per-node failures (a node
 * without Pinion, a pipe that broke) are delivered too, never swallowed.
 * Resolves once every pipe has a reader attached, with how many stream and
 * `ended` (every pipe has stopped, e.g. Pinion was removed meanwhile);
 * `stop()` ends all pipes and waits for them.
 */
export async function collectEvents(access: NodeAccess, nodes: readonly string[], pinRoot: string, onEvent: (event: NodeEvent) => void): Promise<{streaming: number; ended: Promise<void>; stop: () => Promise<void>}> {
  const controller = new AbortController()
  const pipes = nodes.map(async (node) => {
    try {
      const shell = await access.shell(node)
      const path = mapPinPath(pinRoot, 'pinion_events')
      await requireInstalled(shell, pinRoot)
      const bpftool = new BpfTool(shell)
      const running = bpftool.eventPipe(path, (record) => {
        if (record.kind === 'lost') onEvent({node, kind: 'lost', count: record.count, cpu: record.cpu})
        else onEvent({node, kind: 'event', event: decodeEvent(record.data)})
      }, controller.signal)
      await waitFor(`the event reader on ${node}`, () => bpftool.eventReaderAttached(path), {timeoutMs: 15_000})
      return {node, running: running.catch((error) => onEvent({node, kind: 'error', message: errorMessage(error)}))}
    } catch (error) {
      onEvent({node, kind: 'error', message: errorMessage(error)})
      return undefined
    }
  })
  const started = (await Promise.all(pipes)).filter((pipe) => pipe !== undefined)
  return {
    streaming: started.length,
    ended: Promise.allSettled(started.map((pipe) => pipe.running)).then(() => undefined),
    stop: async () => {
      controller.abort()
      await Promise.allSettled(started.map((pipe) => pipe.running))
    },
  }
}

/** Until the caller stops, or no node streams any more (the run then ends rather than waiting on nothing). */
export function untilStoppedOrEnded(signal: AbortSignal, ended: Promise<void>): Promise<void> {
  const stopped = new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), {once: true})))
  return Promise.race([stopped, ended])
}
