import {Writable} from 'node:stream'
import {type NodeShell, runChecked} from '../nodes/shell.js'
import {EventPipeParser, type PipeRecord} from './events.js'

/** One raw map entry as bpftool shows it; per-CPU maps carry one value per CPU. */
export interface RawEntry {
  key: Buffer
  value?: Buffer
  values?: Buffer[]
}

export interface ProgRunResult {
  retval: number
  durationNs: number
  dataOut: Buffer
  ctxOut: Buffer
}

function hexWords(bytes: Buffer): string {
  return [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join(' ')
}

function fromHexList(list: string[]): Buffer {
  return Buffer.from(list.map((item) => Number.parseInt(item, 16)))
}

/**
 * bpftool through a NodeShell: the node-side half of the datapath. Map updates
 * go in one `bpftool batch` per call, never one process per entry.
 */
export class BpfTool {
  constructor(private readonly shell: NodeShell) {}

  /** Load every program of an object, pin programs and maps; reuse names existing pinned maps. */
  async loadAll(object: string, progDir: string, mapDir: string, reuse: Record<string, string> = {}): Promise<void> {
    const reuseArgs = Object.entries(reuse).flatMap(([name, path]) => ['map', 'name', name, 'pinned', path])
    await runChecked(this.shell, ['bpftool', 'prog', 'loadall', object, progDir, ...reuseArgs, 'pinmaps', mapDir])
  }

  async dumpMap(pinPath: string): Promise<RawEntry[]> {
    const {stdout} = await runChecked(this.shell, ['bpftool', '-j', 'map', 'dump', 'pinned', pinPath])
    const rows = JSON.parse(stdout.toString('utf8') || '[]') as {key: string[]; value?: string[]; values?: {value: string[]}[]}[]
    return rows.map((row) => ({
      key: fromHexList(row.key),
      value: row.value ? fromHexList(row.value) : undefined,
      values: row.values?.map((perCpu) => fromHexList(perCpu.value)),
    }))
  }

  /** Apply updates and deletes in one bpftool process. */
  async batch(pinPath: string, updates: {key: Buffer; value: Buffer}[], deletes: Buffer[] = []): Promise<void> {
    await this.batchMany([{pinPath, updates, deletes}])
  }

  /** Updates and deletes of several maps, in the order given, in one bpftool process. */
  async batchMany(steps: {pinPath: string; updates?: {key: Buffer; value: Buffer}[]; deletes?: Buffer[]}[]): Promise<void> {
    const lines = steps.flatMap(({pinPath, updates = [], deletes = []}) => [
      ...updates.map(({key, value}) => `map update pinned ${pinPath} key hex ${hexWords(key)} value hex ${hexWords(value)}`),
      ...deletes.map((key) => `map delete pinned ${pinPath} key hex ${hexWords(key)}`),
    ])
    if (lines.length === 0) return
    await runChecked(this.shell, ['bpftool', 'batch', 'file', '-'], {stdin: lines.join('\n') + '\n'})
  }

  /**
   * BPF_PROG_TEST_RUN: run a pinned program on one packet with a given
   * __sk_buff context, in the shell's network namespace.
   */
  async progRun(pinPath: string, data: Buffer, ctx: Buffer, repeat = 1): Promise<ProgRunResult> {
    // Inputs travel as base64 arguments and outputs come back the same way, so the
    // run needs nothing but a temp dir on the node, removed by the trap.
    const script = [
      'set -e',
      'dir=$(mktemp -d)',
      'trap \'rm -rf "$dir"\' EXIT',
      'printf %s "$2" | base64 -d > "$dir/data"',
      'printf %s "$3" | base64 -d > "$dir/ctx"',
      'bpftool prog run pinned "$1" data_in "$dir/data" data_out "$dir/data_out" ctx_in "$dir/ctx" ctx_out "$dir/ctx_out" repeat "$4"',
      'echo "data_out $(base64 -w0 < "$dir/data_out")"',
      'echo "ctx_out $(base64 -w0 < "$dir/ctx_out")"',
    ].join('\n')
    const {stdout} = await runChecked(this.shell, ['sh', '-c', script, 'prog-run', pinPath, data.toString('base64'), ctx.toString('base64'), String(repeat)])
    const text = stdout.toString('utf8')
    const ret = /Return value: (\d+), duration(?: \(average\))?: (\d+)ns/.exec(text)
    const dataOut = /^data_out (\S*)$/m.exec(text)
    const ctxOut = /^ctx_out (\S*)$/m.exec(text)
    if (!ret || !dataOut || !ctxOut) throw new Error(`unexpected bpftool prog run output: ${text.slice(0, 200)}`)
    return {
      retval: Number(ret[1]),
      durationNs: Number(ret[2]),
      dataOut: Buffer.from(dataOut[1], 'base64'),
      ctxOut: Buffer.from(ctxOut[1], 'base64'),
    }
  }

  /**
   * Several BPF_PROG_TEST_RUNs of one program back to back in one bpftool
   * process (`bpftool batch`): microseconds apart, as packets of one flow are,
   * whatever the machine's load (the flow cache's refresh is time-based).
   */
  async progRunMany(pinPath: string, runs: readonly {data: Buffer; ctx: Buffer}[]): Promise<ProgRunResult[]> {
    const script = [
      'set -e',
      'dir=$(mktemp -d)',
      'trap \'rm -rf "$dir"\' EXIT',
      'prog="$1"; shift; i=0',
      'while [ $# -gt 0 ]; do printf %s "$1" | base64 -d > "$dir/data$i"; printf %s "$2" | base64 -d > "$dir/ctx$i"; echo "prog run pinned $prog data_in $dir/data$i data_out $dir/out$i ctx_in $dir/ctx$i ctx_out $dir/cout$i" >> "$dir/batch"; shift 2; i=$((i + 1)); done',
      'bpftool batch file "$dir/batch"',
      'j=0; while [ $j -lt $i ]; do echo "data_out$j $(base64 -w0 < "$dir/out$j")"; echo "ctx_out$j $(base64 -w0 < "$dir/cout$j")"; j=$((j + 1)); done',
    ].join('\n')
    const {stdout} = await runChecked(this.shell, ['sh', '-c', script, 'prog-run-many', pinPath, ...runs.flatMap((run) => [run.data.toString('base64'), run.ctx.toString('base64')])])
    const text = stdout.toString('utf8')
    const returns = [...text.matchAll(/Return value: (\d+), duration(?: \(average\))?: (\d+)ns/g)]
    if (returns.length !== runs.length) throw new Error(`bpftool batch ran ${returns.length} of ${runs.length} programs: ${text.slice(0, 200)}`)
    return runs.map((_, index) => ({
      retval: Number(returns[index][1]),
      durationNs: Number(returns[index][2]),
      dataOut: Buffer.from(new RegExp(`^data_out${index} (\\S*)$`, 'm').exec(text)![1], 'base64'),
      ctxOut: Buffer.from(new RegExp(`^ctx_out${index} (\\S*)$`, 'm').exec(text)![1], 'base64'),
    }))
  }

  /**
   * Stream the perf event array until `signal` aborts, calling onRecord for
   * every sample and every lost-events notice.
   */
  async eventPipe(pinPath: string, onRecord: (record: PipeRecord) => void, signal: AbortSignal): Promise<void> {
    const parser = new EventPipeParser()
    // Never throw from a stream callback: the first failure (an error line, an undecodable record) ends the read and is thrown below.
    let failure: unknown
    const stop = new AbortController()
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        if (failure === undefined) {
          try {
            for (const record of parser.push(chunk.toString('utf8'))) onRecord(record)
          } catch (error) {
            failure = error
            stop.abort()
          }
        }
        done()
      },
    })
    const result = await this.shell.run(// bpftool block-buffers a pipe: unbuffer it so events arrive as they happen.
      ['stdbuf', '-o0', 'bpftool', '-j', 'map', 'event_pipe', 'pinned', pinPath], {stdout: sink, signal: AbortSignal.any([signal, stop.signal])})
    if (failure !== undefined) throw failure
    if (result.exitCode !== 0 && !signal.aborted) throw new Error(`event_pipe exited ${result.exitCode}: ${result.stderr.trim().split('\n').pop() || 'no output'}`)
  }

  /** True once some reader has attached a perf buffer to the event array. */
  async eventReaderAttached(pinPath: string): Promise<boolean> {
    const {stdout} = await runChecked(this.shell, ['bpftool', '-j', 'map', 'dump', 'pinned', pinPath])
    return (JSON.parse(stdout.toString('utf8') || '[]') as unknown[]).length > 0
  }
}
