import {execFileSync} from 'node:child_process'
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {BpfTool, type ProgRunResult} from '../../src/datapath/bpftool.js'
import {mapPinPath, MAPS, programPinPath} from '../../src/datapath/catalogue.js'
import {MARK_DRYRUN} from '../../src/datapath/constants.js'
import {byMap, type MapEntry} from '../../src/datapath/entries.js'
import {type ParsedPacket, parsePacket} from '../../src/datapath/packet.js'
import {localMapToolPath, MapTool, useMapTool} from '../../src/datapath/maptool.js'
import {ct4Key, skBuff} from '../../src/datapath/structs.js'
import {pendingConntrackCounts, withPendingCounts} from '../../src/maps/flow-cache.js'
import {LocalShell} from '../../src/nodes/local-shell.js'
import {BPF_OBJECT_PATH, requireSystem} from './system.js'

export interface RunOutcome {
  retval: number
  packet?: ParsedPacket
  raw: Buffer
  /** Dry-run result words (skb->cb). */
  cb: number[]
}

/**
 * A scratch datapath: the real object loaded into its own bpffs mount, with
 * programs run in a private network namespace that holds one dummy interface
 * per simulated pod (BPF_PROG_TEST_RUN takes the ingress device by ifindex).
 */
export class DatapathFixture {
  readonly netns: string
  readonly pinRoot: string
  readonly shell: LocalShell
  readonly bpftool: BpfTool
  /** Runs programs on CPU 0 only, so per-CPU state (the flow cache) is the same from run to run. */
  private readonly runner: BpfTool
  private readonly ifindexes = new Map<string, number>()

  private constructor(tag: string) {
    this.netns = `pinion-t-${tag}-${process.pid}`
    this.pinRoot = mkdtempSync(join(tmpdir(), 'pinion-bpffs-'))
    this.shell = new LocalShell(this.netns, ['ip', 'netns', 'exec', this.netns])
    this.bpftool = new BpfTool(this.shell)
    this.runner = new BpfTool(new LocalShell(this.netns, ['taskset', '--cpu-list', '0', 'ip', 'netns', 'exec', this.netns]))
    // The scratch datapath is on this host: readers use the built tool where it is, never a copy under /var/lib/pinion.
    useMapTool(this.shell, new MapTool(this.shell, localMapToolPath()))
  }

  static async create(tag: string, interfaces: string[], object = BPF_OBJECT_PATH): Promise<DatapathFixture> {
    requireSystem(['bpftool', 'ip', 'taskset'])
    const fixture = new DatapathFixture(tag)
    try {
      execFileSync('mount', ['-t', 'bpf', 'bpf', fixture.pinRoot])
      execFileSync('ip', ['netns', 'add', fixture.netns])
      for (const name of interfaces) {
        // A veth pair stands in for a pod's interface; only its ifindex matters here.
        execFileSync('ip', ['-n', fixture.netns, 'link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}-peer`])
        execFileSync('ip', ['-n', fixture.netns, 'link', 'set', name, 'up'])
        const [link] = JSON.parse(execFileSync('ip', ['-n', fixture.netns, '-j', 'link', 'show', name], {encoding: 'utf8'})) as {ifindex: number}[]
        fixture.ifindexes.set(name, link.ifindex)
      }
      await fixture.bpftool.loadAll(object, `${fixture.pinRoot}/progs`, `${fixture.pinRoot}/maps`)
    } catch (error) {
      await fixture.destroy()
      throw error
    }
    return fixture
  }

  ifindex(name: string): number {
    const index = this.ifindexes.get(name)
    if (index === undefined) throw new Error(`fixture has no interface ${name}`)
    return index
  }

  async write(entries: readonly MapEntry[]): Promise<void> {
    for (const [map, items] of byMap(entries)) await this.bpftool.batch(mapPinPath(this.pinRoot, map), items)
  }

  async dump(map: string) {
    const spec = MAPS.find((candidate) => candidate.name === map)!
    const rows = await this.bpftool.dumpMap(mapPinPath(this.pinRoot, map))
    return rows.map((row) => ({
      key: spec.key.decode(row.key),
      value: row.value && spec.value ? spec.value.decode(row.value) : undefined,
      values: row.values && spec.value ? row.values.map((value) => spec.value!.decode(value)) : undefined,
    }))
  }

  async run(program: 'from_pod' | 'to_pod', frame: Buffer, options: {ifindex: string; dryRun?: boolean}): Promise<RunOutcome> {
    const ctx = skBuff.encode({ifindex: this.ifindex(options.ifindex), mark: options.dryRun ? MARK_DRYRUN : 0})
    return this.outcome(await this.runner.progRun(programPinPath(this.pinRoot, program), frame, ctx))
  }

  /** Frames of one flow run back to back in one bpftool process (no time for the flow cache to go stale between them). */
  async runBurst(program: 'from_pod' | 'to_pod', frames: readonly Buffer[], options: {ifindex: string}): Promise<RunOutcome[]> {
    const ctx = skBuff.encode({ifindex: this.ifindex(options.ifindex), mark: 0})
    const results = await this.runner.progRunMany(programPinPath(this.pinRoot, program), frames.map((data) => ({data, ctx})))
    return results.map((result) => this.outcome(result))
  }

  private outcome(result: ProgRunResult): RunOutcome {
    const out = skBuff.decode(result.ctxOut)
    let packet: ParsedPacket | undefined
    try {
      packet = parsePacket(result.dataOut)
    } catch {
      packet = undefined
    }
    return {retval: result.retval, packet, raw: result.dataOut, cb: [out.cb0, out.cb1, out.cb2, out.cb3, out.cb4] as number[]}
  }

  /** Conntrack as its readers see it: entries with the flow cache's pending counts added. */
  async conntrack() {
    const pending = await pendingConntrackCounts(this.shell, this.pinRoot)
    return (await this.dump('pinion_ct4_v2')).map((row) => ({...row, value: withPendingCounts(row.value!, pending.get(ct4Key.encode(row.key).toString('hex')))}))
  }

  /** Removes the namespace, the bpffs mount and its directory; safe to call twice. */
  async destroy(): Promise<void> {
    const quiet = (argv: string[]) => {
      try {
        execFileSync(argv[0], argv.slice(1), {stdio: 'ignore'})
      } catch {
        // already gone
      }
    }
    quiet(['ip', 'netns', 'del', this.netns])
    quiet(['umount', this.pinRoot])
    quiet(['rmdir', this.pinRoot])
  }
}
