/**
 * Benchmark: decode a pinned conntrack map of N entries (default 1,000,000)
 * through the same streaming path `pinion map dump ct` uses, and compare with
 * the naive way (buffer bpftool's whole JSON, parse it at once).
 * Run by bench/run.sh inside a private mount namespace with its own bpffs.
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmdirSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {BpfTool} from '../src/datapath/bpftool.js'
import {mapSpec} from '../src/datapath/catalogue.js'
import {ct4Key, ctEntry} from '../src/datapath/structs.js'
import {decodeRow, type DumpContext} from '../src/maps/decode.js'
import {streamEntries} from '../src/maps/stream.js'
import {LocalShell} from '../src/nodes/local-shell.js'
import {runChecked} from '../src/nodes/shell.js'

const entries = Number(process.argv[2] ?? 1_000_000)
const shell = new LocalShell()
const bpftool = new BpfTool(shell)

/** Fill runs in a child process so its buffers do not count in the decoder's peak memory. */
async function fill(path: string): Promise<void> {
  const hex = (bytes: Buffer) => [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join(' ')
  const CHUNK = 50_000
  for (let start = 0; start < entries; start += CHUNK) {
  const lines: string[] = []
    for (let i = start; i < Math.min(entries, start + CHUNK); i++) {
    const key = ct4Key.encode({daddr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, saddr: '10.244.1.10', dport: 80, sport: 1024 + (i % 60000), proto: 6, scope: 1})
    const value = ctEntry.encode({txPackets: i, txBytes: i * 60, lifetime: 1_000_000, flags: 1})
    lines.push(`map update pinned ${path} key hex ${hex(key)} value hex ${hex(value)}`)
  }
  await runChecked(shell, ['bpftool', 'batch', 'file', '-'], {stdin: lines.join('\n') + '\n'})
  }
}

if (process.argv[3] === '--fill') {
  await fill(process.argv[4])
  process.exit(0)
}

const root = mkdtempSync(join(tmpdir(), 'pinion-bench-'))
await runChecked(shell, ['mount', '-t', 'bpf', 'bpf', root])
// Also when decoding throws: the mount and its directory go with the process.
process.on('exit', () => {
  spawnSync('umount', [root])
  try {
    rmdirSync(root)
  } catch {
    // still mounted: leave it rather than delete what is in it
  }
})
// The datapath's conntrack holds 524,288 entries; the benchmark decodes a larger
// map with the same key/value layout (a plain hash, so nothing is evicted).
const path = `${root}/ct_bench`
await runChecked(shell, ['bpftool', 'map', 'create', path, 'type', 'hash', 'key', String(ct4Key.size), 'value', String(ctEntry.size), 'entries', String(entries), 'name', 'ct_bench'])
const fillStart = Date.now()
await runChecked(shell, [process.execPath, '--import', 'tsx', new URL(import.meta.url).pathname, String(entries), '--fill', path])
const fillMs = Date.now() - fillStart

const context: DumpContext = {pods: new Map([['10.244.1.10', 'default/client']]), services: new Map(), policies: new Map(), identities: new Map(), endpoints: new Map(), uptimeSeconds: 0}
const spec = mapSpec('pinion_ct4_v2')!
const bytes = (list: string[]) => Buffer.from(list.map((item) => Number.parseInt(item, 16)))

function peakRssMb(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024)
}

const rssBefore = peakRssMb()
let streamed = 0
const streamStart = Date.now()
await streamEntries(shell, path, (entry) => {
  decodeRow(spec, ct4Key.decode(bytes(entry.key)), ctEntry.decode(bytes(entry.value!)), context)
  streamed++
  return true
})
const streamMs = Date.now() - streamStart
const rssStream = peakRssMb()

// The naive way may not finish at all: bpftool's JSON for a large map can
// exceed the longest string Node.js can hold (~512 MB).
const naiveStart = Date.now()
let naive: string
let naiveFinished = false
try {
  const all = await bpftool.dumpMap(path)
  const naiveRows = all.map((row) => decodeRow(spec, ct4Key.decode(row.key), ctEntry.decode(row.value!), context))
  naive = `${((Date.now() - naiveStart) / 1000).toFixed(1)} s (${naiveRows.length} rows)`
  naiveFinished = true
} catch (error) {
  if ((error as {code?: string}).code !== 'ERR_STRING_TOO_LONG') throw error
  naive = `failed after ${((Date.now() - naiveStart) / 1000).toFixed(1)} s: bpftool's output is longer than the longest string Node.js holds`
}
const naiveMs = Date.now() - naiveStart
const rssNaive = peakRssMb()

const table = [
  ['measure', 'value'],
  ['entries in pinion_ct4_v2', String(streamed)],
  ['fill with bpftool batch', `${(fillMs / 1000).toFixed(1)} s`],
  ['streamed decode (map dump path)', `${(streamMs / 1000).toFixed(1)} s, ${Math.round(streamed / (streamMs / 1000)).toLocaleString('en')} entries/s`],
  ['naive decode (buffer all, then parse)', naive],
  ['time ratio naive / streamed', naiveFinished ? (naiveMs / streamMs).toFixed(2) : '- (naive did not finish)'],
  ['peak RSS before decoding', `${rssBefore} MB`],
  ['peak RSS after streamed decode', `${rssStream} MB`],
  ['peak RSS after naive decode', `${rssNaive} MB`],
]
for (const [name, value] of table) console.log(`${name.padEnd(40)} ${value}`)
if (streamed !== entries) {
  console.error(`expected ${entries} entries, decoded ${streamed}`)
  process.exit(1)
}
