/** Shared helpers of the benchmark scripts: scratch datapaths, timing, tables. */
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {BpfTool} from '../src/datapath/bpftool.js'
import {MAPS, mapPinPath} from '../src/datapath/catalogue.js'
import {byMap, type MapEntry} from '../src/datapath/entries.js'
import {localMapToolPath, MapTool, useMapTool} from '../src/datapath/maptool.js'
import {LocalShell} from '../src/nodes/local-shell.js'

export const OBJECT = new URL('../dist/bpf/pinion.bpf.o', import.meta.url).pathname
export const BENCH_OBJECT = new URL('../dist/bpf/bench.bpf.o', import.meta.url).pathname

/** A loaded datapath (and bench.bpf.c's programs on the same maps) in its own bpffs, run from a private network namespace with one veth. */
export async function scratchDatapath(tag: string): Promise<{netns: string; root: string; shell: LocalShell; bpftool: BpfTool; maps: MapTool; ifindex: number; write: (entries: MapEntry[]) => Promise<void>; destroy: () => void}> {
  const netns = `pinion-bench-${tag}-${process.pid}`
  const root = mkdtempSync(join(tmpdir(), 'pinion-bench-'))
  // Safe to call at any point of the setup, and twice.
  const destroy = () => {
    for (const argv of [['ip', 'netns', 'del', netns], ['umount', root], ['rmdir', root]]) {
      try {
        execFileSync(argv[0], argv.slice(1), {stdio: 'ignore'})
      } catch {
        // not made yet, or already gone
      }
    }
  }
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', root])
    execFileSync('ip', ['netns', 'add', netns])
    execFileSync('ip', ['-n', netns, 'link', 'add', 'pod-a', 'type', 'veth', 'peer', 'name', 'pod-a-peer'])
    execFileSync('ip', ['-n', netns, 'link', 'set', 'pod-a', 'up'])
    const [link] = JSON.parse(execFileSync('ip', ['-n', netns, '-j', 'link', 'show', 'pod-a'], {encoding: 'utf8'})) as {ifindex: number}[]
    const shell = new LocalShell(netns, ['ip', 'netns', 'exec', netns])
    const bpftool = new BpfTool(shell)
    const maps = new MapTool(shell, localMapToolPath())
    useMapTool(shell, maps)
    await bpftool.loadAll(OBJECT, `${root}/progs`, `${root}/maps`)
    // The benchmark programs share the datapath's maps.
    await bpftool.loadAll(BENCH_OBJECT, `${root}/bench`, `${root}/bench_maps`, Object.fromEntries(MAPS.map((map) => [map.name, mapPinPath(root, map.name)])))
    return {
      netns,
      root,
      shell,
      bpftool,
      maps,
      ifindex: link.ifindex,
      write: async (entries) => {
        for (const [map, items] of byMap(entries)) await maps.batch(mapPinPath(root, map), items)
      },
      destroy,
    }
  } catch (error) {
    destroy()
    throw error
  }
}

/**
 * This process's peak resident memory (VmHWM: per address space, so a child
 * does not inherit its parent's peak as getrusage's maxrss does across exec).
 */
export function peakRssMb(): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))
  return Math.round((kb ? Number(kb[1]) : process.resourceUsage().maxRSS) / 1024)
}

export async function timed<T>(fn: () => Promise<T> | T): Promise<{value: T; ms: number}> {
  const started = process.hrtime.bigint()
  const value = await fn()
  return {value, ms: Number(process.hrtime.bigint() - started) / 1e6}
}

export function printTable(title: string, rows: (string | number)[][]): void {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => String(row[column]).length)))
  console.log(`\n${title}`)
  for (const row of rows) console.log(row.map((cell, column) => String(cell).padEnd(widths[column])).join('  '))
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** The i-th Service VIP (10.96.0.0/12 space) and backend pod address. */
export const vipOf = (i: number) => `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`
export const backendOf = (i: number) => `10.244.${100 + ((i >> 8) & 127)}.${i & 255}`
