import {Writable} from 'node:stream'
import {JsonObjectStream} from '../datapath/json-stream.js'
import type {NodeShell} from '../nodes/shell.js'

export interface RawJsonEntry {
  key: string[]
  value?: string[]
  values?: {cpu: number; value: string[]}[]
}

export const bytes = (list: string[]) => Buffer.from(list.map((item) => Number.parseInt(item, 16)))

/**
 * Stream `bpftool -j map dump` through the decoder: entries are decoded and
 * filtered as they arrive, so a large map is never held as text and rows at once.
 */
export async function streamEntries(shell: NodeShell, path: string, onEntry: (entry: RawJsonEntry) => boolean): Promise<void> {
  const stop = new AbortController()
  const objects = new JsonObjectStream()
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      try {
        for (const text of objects.push(chunk.toString('utf8'))) {
          if (stop.signal.aborted) break
          const entry = JSON.parse(text) as RawJsonEntry & {error?: string}
          if (entry.error !== undefined) bpftoolError = entry.error // bpftool -j reports failures as {"error": …}
          else if (!onEntry(entry)) stop.abort()
        }
      } catch (error) {
        decodeError = error as Error
        stop.abort()
      }
      done()
    },
  })
  let bpftoolError: string | undefined
  let decodeError: Error | undefined
  const result = await shell.run(['bpftool', '-j', 'map', 'dump', 'pinned', path], {stdout: sink, signal: stop.signal})
  if (decodeError) throw decodeError
  if (result.exitCode !== 0 && !stop.signal.aborted) throw new Error(bpftoolError ?? (result.stderr.trim().split('\n').pop() || `bpftool exited ${result.exitCode}`))
}

