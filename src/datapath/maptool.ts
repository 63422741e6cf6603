import {createHash} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {Writable} from 'node:stream'
import {fileURLToPath} from 'node:url'
import {copyIn} from '../nodes/copy.js'
import {CommandFailedError, type NodeShell, runChecked} from '../nodes/shell.js'
import type {RawEntry} from './bpftool.js'
import {MAPS, mapPinPath, NODE_STATE_DIR} from './catalogue.js'

/** Map reads and writes in the shape both bpftool and the native tool offer. */
export interface MapIo {
  dumpMap(pinPath: string): Promise<RawEntry[]>
  /** Count and hash of each map (native tool only): a map whose digest matches what is wanted need not be read. */
  digests?(pinPaths: readonly string[]): Promise<MapDigest[]>
  batch(pinPath: string, updates: readonly {key: Buffer; value: Buffer}[], deletes?: readonly Buffer[]): Promise<void>
  batchMany(steps: readonly MapStep[]): Promise<void>
}

export interface MapStep {
  pinPath: string
  updates?: readonly {key: Buffer; value: Buffer}[]
  deletes?: readonly Buffer[]
}

export interface MapInfo {
  name: string
  /** The kernel's enum bpf_map_type. */
  type: number
  key: number
  value: number
  /** Value bytes per record: per-CPU maps carry round_up(value, 8) for every possible CPU. */
  stride: number
  max: number
  flags: number
  cpus: number
}

/**
 * What is pinned of Pinion's maps under pinRoot, by catalogue name (none
 * where nothing is pinned; the tool is only copied to a node that has maps).
 */
export async function pinnedMapInfo(shell: NodeShell, pinRoot: string): Promise<Map<string, MapInfo>> {
  if ((await shell.run(['test', '-d', `${pinRoot}/maps`])).exitCode !== 0) return new Map()
  const tool = await nodeMapTool(shell)
  const script = 'tool="$1"; shift; set -- $(for p in "$@"; do [ -e "$p" ] && echo "$p"; done); [ $# -eq 0 ] || exec "$tool" info "$@"'
  const {stdout} = await runChecked(shell, ['sh', '-c', script, 'info', tool.binary, ...MAPS.map((map) => mapPinPath(pinRoot, map.name))])
  const found = new Map<string, MapInfo>()
  for (const line of stdout.toString('utf8').split('\n').filter(Boolean)) {
    const info = JSON.parse(line) as MapInfo
    // The kernel keeps 15 characters of a map's name: the catalogue has them whole.
    found.set(MAPS.find((map) => map.name.slice(0, 15) === info.name)?.name ?? info.name, info)
  }
  return found
}

/** The kernel's enum bpf_map_type, for the types Pinion uses, by bpftool's names. */
const MAP_TYPE_NAMES: Record<number, string> = {1: 'hash', 2: 'array', 4: 'perf_event_array', 5: 'percpu_hash', 6: 'percpu_array', 9: 'lru_hash', 11: 'lpm_trie'}

export function mapTypeName(type: number): string {
  return MAP_TYPE_NAMES[type] ?? `type ${type}`
}

/** Entry count and an order-independent hash of a map's key|value records. */
export interface MapDigest {
  count: number
  a: number
  b: number
}

export const sameDigest = (left: MapDigest, right: MapDigest) => left.count === right.count && left.a === right.a && left.b === right.b

export interface DumpSummary {
  count: number
  /** batch: BPF_MAP_LOOKUP_BATCH; iteration: key by key (map types without batch lookup). */
  method: 'batch' | 'iteration'
}

/**
 * The digest bpf/tools/pinion-maps.c computes: FNV-1a and djb2-xor of each
 * record, summed (mod 2^32) over the entries, so order does not matter.
 */
export function digestRecords(records: Iterable<{key: Buffer; value: Buffer}>): MapDigest {
  // Hot at scale (hundreds of thousands of entries per reconciliation): plain loops, no allocation.
  let count = 0
  let sumA = 0
  let sumB = 0
  for (const {key, value} of records) {
    let a = 2166136261
    let b = 5381
    for (let index = 0; index < key.length; index++) {
      a = Math.imul(a ^ key[index], 16777619)
      b = Math.imul(b, 33) ^ key[index]
    }
    for (let index = 0; index < value.length; index++) {
      a = Math.imul(a ^ value[index], 16777619)
      b = Math.imul(b, 33) ^ value[index]
    }
    a >>>= 0
    b >>>= 0
    sumA = (sumA + a) >>> 0
    sumB = (sumB + b) >>> 0
    count++
  }
  return {count, a: sumA, b: sumB}
}

const DUMP_MAGIC = 0x31444d50 // "PMD1"
const HEADER_BYTES = 20

/** Splits the tool's dump stream into entries, across chunk boundaries. */
class DumpParser {
  private pending: Buffer = Buffer.alloc(0)
  private layout?: {key: number; value: number; stride: number; cpus: number}
  count = 0

  constructor(private readonly onEntry: (entry: RawEntry) => boolean | void) {}

  /** Returns false once the consumer has had enough. */
  push(chunk: Buffer): boolean {
    let data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk
    if (!this.layout) {
      if (data.length < HEADER_BYTES) {
        this.pending = data
        return true
      }
      if (data.readUInt32LE(0) !== DUMP_MAGIC) throw new Error('pinion-maps: unexpected dump header')
      this.layout = {key: data.readUInt32LE(4), value: data.readUInt32LE(8), stride: data.readUInt32LE(12), cpus: data.readUInt32LE(16)}
      data = data.subarray(HEADER_BYTES)
    }
    const {key: keySize, stride} = this.layout
    const percpu = stride !== this.layout.value
    const size = keySize + stride
    let offset = 0
    for (; offset + size <= data.length; offset += size) {
      this.count++
      const key = data.subarray(offset, offset + keySize)
      const value = data.subarray(offset + keySize, offset + size)
      if (this.onEntry(percpu ? {key, values: splitPerCpu(value, this.layout)} : {key, value}) === false) return false
    }
    this.pending = Buffer.from(data.subarray(offset))
    return true
  }

  finish(): void {
    if (!this.layout || this.pending.length > 0) throw new Error('pinion-maps: dump ended inside a record')
  }
}

/**
 * The native map tool (bpf/tools/pinion-maps.c) through a NodeShell: binary
 * records in and out, batch syscalls, no JSON or hex. bpftool stays for
 * loading, attaching, event streams and `--raw` views.
 */
export class MapTool implements MapIo {
  constructor(
    private readonly shell: NodeShell,
    /** The tool's path on the shell's side. */
    readonly binary: string,
  ) {}

  async info(pinPath: string): Promise<MapInfo> {
    return JSON.parse((await runChecked(this.shell, [this.binary, 'info', pinPath])).stdout.toString('utf8')) as MapInfo
  }

  async digest(pinPath: string): Promise<MapDigest> {
    return (await this.digests([pinPath]))[0]
  }

  /** Digests of several maps in one process. */
  async digests(pinPaths: readonly string[]): Promise<MapDigest[]> {
    const {stdout} = await runChecked(this.shell, [this.binary, 'digest', ...pinPaths])
    const digests = stdout.toString('utf8').trim().split('\n').map((line) => JSON.parse(line) as MapDigest)
    if (digests.length !== pinPaths.length) throw new Error(`${this.shell.node}: pinion-maps digest answered for ${digests.length} of ${pinPaths.length} maps`)
    return digests
  }

  /**
   * Stream a map's entries as they are read (per-CPU maps: one value per
   * possible CPU). Each entry is read whole; the map may change between
   * entries (the kernel offers no snapshot). onEntry returns false to stop.
   */
  async stream(pinPath: string, onEntry: (entry: RawEntry) => boolean | void, signal?: AbortSignal): Promise<DumpSummary> {
    const stop = new AbortController()
    let failure: unknown
    const parser = new DumpParser(onEntry)
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        // Never throw from a stream callback: the first failure ends the read and is thrown below.
        if (failure === undefined && !stop.signal.aborted) {
          try {
            if (!parser.push(chunk)) stop.abort()
          } catch (error) {
            failure = error
            stop.abort()
          }
        }
        done()
      },
    })
    const argv = [this.binary, 'dump', pinPath]
    const result = await this.shell.run(argv, {stdout: sink, signal: signal ? AbortSignal.any([signal, stop.signal]) : stop.signal})
    if (failure !== undefined) throw failure
    if (stop.signal.aborted || signal?.aborted) return {count: parser.count, method: 'batch'}
    if (result.exitCode !== 0) throw new CommandFailedError(this.shell.node, argv, result)
    parser.finish()
    const summary = /dumped (\d+) entries via (batch|iteration)/.exec(result.stderr)
    if (!summary || Number(summary[1]) !== parser.count) throw new Error(`${this.shell.node}: pinion-maps dump of ${pinPath} was cut short (${parser.count} records read, tool said: ${result.stderr.trim() || 'nothing'})`)
    return {count: parser.count, method: summary[2] as DumpSummary['method']}
  }

  /** The whole map, in bpftool's RawEntry shape (per-CPU maps: one value per possible CPU). */
  async dumpMap(pinPath: string): Promise<RawEntry[]> {
    const rows: RawEntry[] = []
    await this.stream(pinPath, (entry) => {
      rows.push(entry)
    })
    return rows
  }

  async batch(pinPath: string, updates: readonly {key: Buffer; value: Buffer}[], deletes: readonly Buffer[] = []): Promise<void> {
    await this.batchMany([{pinPath, updates, deletes}])
  }

  /** Updates and deletes of several maps, in the order given, in one process; updates of a step before its deletes. */
  async batchMany(steps: readonly MapStep[]): Promise<void> {
    const frames: Buffer[] = []
    for (const {pinPath, updates = [], deletes = []} of steps) {
      if (updates.length) frames.push(frame('U', pinPath, updates))
      if (deletes.length) frames.push(frame('D', pinPath, deletes.map((key) => ({key}))))
    }
    if (frames.length === 0) return
    await runChecked(this.shell, [this.binary, 'apply'], {stdin: Buffer.concat(frames)})
  }

  /** Create and pin an empty map (sizes chosen by the installer). */
  async create(pinPath: string, spec: {type: number; key: number; value: number; max: number; flags: number; name: string}): Promise<void> {
    await runChecked(this.shell, [this.binary, 'create', pinPath, ...[spec.type, spec.key, spec.value, spec.max, spec.flags].map(String), spec.name.slice(0, 15)])
  }
}

/** One apply frame: header, path, then the records back to back (one allocation, however many records). */
function frame(op: 'U' | 'D', pinPath: string, records: readonly {key: Buffer; value?: Buffer}[]): Buffer {
  const path = Buffer.from(pinPath, 'utf8')
  let size = 8 + path.length
  for (const record of records) size += record.key.length + (record.value?.length ?? 0)
  const out = Buffer.allocUnsafe(size)
  out.write(op, 0, 'latin1')
  out.writeUInt8(0, 1)
  out.writeUInt16LE(path.length, 2)
  out.writeUInt32LE(records.length, 4)
  let offset = 8 + path.copy(out, 8)
  for (const {key, value} of records) {
    offset += key.copy(out, offset)
    if (value) offset += value.copy(out, offset)
  }
  return out
}

/** One value per possible CPU, each cut to the value size (the kernel pads them to 8 bytes). */
export function splitPerCpu(value: Buffer, info: Pick<MapInfo, 'value' | 'stride' | 'cpus'>): Buffer[] {
  const slot = info.stride / info.cpus
  return Array.from({length: info.cpus}, (_, cpu) => value.subarray(cpu * slot, cpu * slot + info.value))
}

/** The tool built with this CLI (dist/bin/pinion-maps). */
export function localMapToolPath(): string {
  const path = fileURLToPath(new URL('../../dist/bin/pinion-maps', import.meta.url))
  if (!existsSync(path)) throw new Error(`the native map tool ${path} is missing: run \`make build\``)
  return path
}

let shipped: {data: Buffer; name: string} | undefined

/** The tool's bytes and its name on nodes: content-addressed, so CLIs of other versions never clash. */
function shippedTool(): {data: Buffer; name: string} {
  if (!shipped) {
    const data = readFileSync(localMapToolPath())
    shipped = {data, name: `pinion-maps-${createHash('sha256').update(data).digest('hex').slice(0, 12)}`}
  }
  return shipped
}

export const NODE_TOOL_DIR = `${NODE_STATE_DIR}/bin`

const onNode = new WeakMap<NodeShell, Promise<MapTool>>()

/** Use this tool for a shell that already has one at hand (a scratch datapath on this host). */
export function useMapTool(shell: NodeShell, tool: MapTool): void {
  onNode.set(shell, Promise.resolve(tool))
}

/**
 * The native map tool on a node, copied there (once per shell) when this
 * CLI's build of it is missing. It is static, but not portable across CPU
 * architectures: a node of another one is refused by name.
 */
export function nodeMapTool(shell: NodeShell): Promise<MapTool> {
  let tool = onNode.get(shell)
  if (!tool) {
    tool = (async () => {
      const {data, name} = shippedTool()
      const path = `${NODE_TOOL_DIR}/${name}`
      const probe = await shell.run(['sh', '-c', 'uname -m; test -x "$1" && echo present', 'probe', path])
      const [machine, present] = probe.stdout.toString('utf8').trim().split('\n')
      if (machine !== LOCAL_MACHINE) throw new Error(`${shell.node}: the node is ${machine || 'of an unknown architecture'}, this CLI's native map tool is built for ${LOCAL_MACHINE}`)
      if (present !== 'present') await copyIn(shell, NODE_TOOL_DIR, [{name, data, mode: 0o755}])
      return new MapTool(shell, path)
    })()
    tool.catch(() => onNode.delete(shell))
    onNode.set(shell, tool)
  }
  return tool
}

/** `uname -m` names of Node's architectures the tool can be built for. */
const LOCAL_MACHINE = ({x64: 'x86_64', arm64: 'aarch64', arm: 'armv7l', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64'} as Record<string, string>)[process.arch] ?? process.arch
