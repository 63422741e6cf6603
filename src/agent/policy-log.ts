import {appendFileSync, existsSync, mkdirSync, renameSync, statSync} from 'node:fs'
import {dirname} from 'node:path'
import {BpfTool} from '../datapath/bpftool.js'
import {mapPinPath} from '../datapath/catalogue.js'
import {decodeEvent} from '../datapath/events.js'
import {errorMessage} from '../lib/errors.js'
import type {NodeShell} from '../nodes/shell.js'
import {type PolicyLogContext, PolicyLogPipeline, type PolicyLogRecord, policyLogRecord} from '../datapath/policy-log-records.js'
export {POLICY_LOG_FILE} from '../datapath/policy-log-records.js'


/**
 * An append-only JSON-lines file rotated by size: past maxBytes the file
 * becomes .1 (.1 becomes .2, … up to `keep` files), so the logs on a node
 * stay bounded whatever the traffic.
 */
export class RotatingLog {
  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly keep: number,
  ) {
    mkdirSync(dirname(path), {recursive: true})
  }

  write(line: string): void {
    if (existsSync(this.path) && statSync(this.path).size + line.length > this.maxBytes) this.rotate()
    appendFileSync(this.path, line.endsWith('\n') ? line : `${line}\n`)
  }

  private rotate(): void {
    for (let index = this.keep - 1; index >= 1; index--) {
      if (existsSync(`${this.path}.${index}`)) renameSync(`${this.path}.${index}`, `${this.path}.${index + 1}`)
    }
    renameSync(this.path, `${this.path}.1`)
  }
}

export interface PolicyLoggerStats {
  records: number
  rateLimited: number
  lostEvents: number
  readerRestarts: number
}

/**
 * The agent's policy logging: reads the datapath's verdict events on its
 * node, keeps those the cluster's logging config asks for, aggregates
 * denies and rate-limits, and writes GKE-format records to the log file, so
 * the logs exist whether or not anyone runs the CLI.
 */
export class PolicyLogger {
  readonly stats: PolicyLoggerStats = {records: 0, rateLimited: 0, lostEvents: 0, readerRestarts: 0}
  private readonly pipeline: PolicyLogPipeline

  constructor(
    private readonly options: {shell: NodeShell; pinRoot: string; node: string; log: RotatingLog; ratePerSecond: number; denyWindowMs: number; context: () => PolicyLogContext; names: () => ReadonlyMap<number, string>; onError: (message: string) => void},
  ) {
    this.pipeline = new PolicyLogPipeline(options.ratePerSecond, options.denyWindowMs, (record: PolicyLogRecord) => {
      this.stats.records++
      options.log.write(JSON.stringify(record))
    })
  }

  /**
   * Read events until `signal` aborts; a failed reader is restarted with
   * back-off. The perf event array holds one reader per CPU: another reader
   * (a CLI `monitor`) takes the events over, and when it leaves, the slots are
   * empty; the agent then attaches again.
   */
  async run(signal: AbortSignal): Promise<void> {
    const bpftool = new BpfTool(this.options.shell)
    const path = mapPinPath(this.options.pinRoot, 'pinion_events')
    let backoff = 500
    while (!signal.aborted) {
      const pipe = new AbortController()
      const stop = () => pipe.abort()
      signal.addEventListener('abort', stop, {once: true})
      const watchdog = setInterval(() => {
        bpftool.eventReaderAttached(path).then((attached) => !attached && pipe.abort(), () => undefined)
      }, 5000)
      try {
        await bpftool.eventPipe(path, (record) => {
          if (record.kind === 'lost') {
            this.stats.lostEvents += record.count
            return
          }
          const logged = policyLogRecord(decodeEvent(record.data), this.options.node, this.options.names(), this.options.context())
          if (logged) this.pipeline.add(logged)
          this.stats.rateLimited = this.pipeline.summary.get(this.options.node)?.rateLimited ?? 0
        }, pipe.signal)
        backoff = 500
      } catch (error) {
        this.options.onError(`policy log reader: ${errorMessage(error)}`)
      } finally {
        clearInterval(watchdog)
        signal.removeEventListener('abort', stop)
      }
      if (signal.aborted) break
      this.stats.readerRestarts++
      await new Promise((resolve) => setTimeout(resolve, backoff))
      backoff = Math.min(backoff * 2, 30_000)
    }
    this.pipeline.flush()
  }
}
