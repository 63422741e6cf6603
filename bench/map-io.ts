/**
 * Bulk map I/O: the native map tool (bpf/tools/pinion-maps.c) against the
 * bpftool path it replaced, on conntrack-sized entries (default 1,000,000).
 *   write:  `bpftool batch` of hex text lines  vs  pinion-maps apply (BPF_MAP_UPDATE_BATCH)
 *   decode: bpftool -j dump streamed through the JSON splitter and the struct
 *           codecs (`map dump ct` until this release)  vs  pinion-maps dump records
 * Each decode runs in its own child process, so each peak RSS is its own.
 * Run by bench/run.sh inside a private mount namespace with its own bpffs.
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmdirSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Writable} from 'node:stream'
import {BpfTool} from '../src/datapath/bpftool.js'
import {mapSpec} from '../src/datapath/catalogue.js'
import {JsonObjectStream} from '../src/datapath/json-stream.js'
import {localMapToolPath, MapTool} from '../src/datapath/maptool.js'
import {ct4Key, ctEntry} from '../src/datapath/structs.js'
import {decodeRow, type DumpContext} from '../src/maps/decode.js'
import {LocalShell} from '../src/nodes/local-shell.js'
import {runChecked} from '../src/nodes/shell.js'
import {peakRssMb, printTable, timed} from './lib.js'

const entries = Number(process.argv[2] ?? 1_000_000)
const shell = new LocalShell()
const tool = new MapTool(shell, localMapToolPath())
const context: DumpContext = {pods: new Map([['10.244.1.10', 'default/client']]), services: new Map(), policies: new Map(), identities: new Map(), endpoints: new Map(), uptimeSeconds: 0}
const spec = mapSpec('pinion_ct4_v2')!

/** Child mode: decode one map one way and print the count, the time and this process's peak RSS. */
if (process.argv[3] === '--decode') {
  const [how, path] = [process.argv[4], process.argv[5]]
  let decoded = 0
  const started = Date.now()
  if (how === 'native') {
    await tool.stream(path, (entry) => {
      decodeRow(spec, ct4Key.decode(entry.key), ctEntry.decode(entry.value!), context)
      decoded++
    })
  } else {
    // The streamed bpftool path `map dump` used before the native tool.
    const objects = new JsonObjectStream()
    const bytes = (list: string[]) => Buffer.from(list.map((item) => Number.parseInt(item, 16)))
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const text of objects.push(chunk.toString('utf8'))) {
          const entry = JSON.parse(text) as {key: string[]; value: string[]}
          decodeRow(spec, ct4Key.decode(bytes(entry.key)), ctEntry.decode(bytes(entry.value)), context)
          decoded++
        }
        done()
      },
    })
    await shell.run(['bpftool', '-j', 'map', 'dump', 'pinned', path], {stdout: sink})
  }
  console.log(JSON.stringify({decoded, ms: Date.now() - started, rssMb: peakRssMb()}))
  process.exit(0)
}

const root = mkdtempSync(join(tmpdir(), 'pinion-bench-'))
await runChecked(shell, ['mount', '-t', 'bpf', 'bpf', root])
process.on('exit', () => {
  spawnSync('umount', [root])
  try {
    rmdirSync(root)
  } catch {
    // still mounted: leave it rather than delete what is in it
  }
})

// Plain hashes with conntrack's key and value layout (the datapath's LRU would evict beyond 524,288).
const create = (name: string) => runChecked(shell, ['bpftool', 'map', 'create', `${root}/${name}`, 'type', 'hash', 'key', String(ct4Key.size), 'value', String(ctEntry.size), 'entries', String(entries), 'name', name])
await create('ct_bpftool')
await create('ct_native')
const records = Array.from({length: entries}, (_, i) => ({
  key: ct4Key.encode({daddr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, saddr: '10.244.1.10', dport: 80, sport: 1024 + (i % 60000), proto: 6, scope: 1}),
  value: ctEntry.encode({txPackets: i, txBytes: i * 60, lifetime: 1_000_000, flags: 1}),
}))
const viaBpftool = await timed(() => new BpfTool(shell).batch(`${root}/ct_bpftool`, records))
const viaNative = await timed(() => tool.batch(`${root}/ct_native`, records))

function decode(how: 'bpftool' | 'native'): {decoded: number; ms: number; rssMb: number} {
  const child = spawnSync(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, String(entries), '--decode', how, `${root}/ct_native`], {encoding: 'utf8', maxBuffer: 1 << 20})
  if (child.status !== 0) throw new Error(`${how} decode failed: ${child.stderr}`)
  const result = JSON.parse(child.stdout.trim().split('\n').pop()!) as {decoded: number; ms: number; rssMb: number}
  if (result.decoded !== entries) throw new Error(`${how} decode saw ${result.decoded} of ${entries} entries`)
  return result
}
const oldDecode = decode('bpftool')
const newDecode = decode('native')
const digest = await timed(() => tool.digest(`${root}/ct_native`))

const s = (ms: number) => (ms / 1000).toFixed(2)
printTable(`Bulk map I/O, ${entries.toLocaleString('en')} conntrack-sized entries (${ct4Key.size} B key, ${ctEntry.size} B value)`, [
  ['task', 'bpftool path', 'native tool', 'ratio (goal)'],
  ['write all entries', `${s(viaBpftool.ms)} s`, `${s(viaNative.ms)} s`, `${(viaBpftool.ms / viaNative.ms).toFixed(1)}x (>= 15x)`],
  ['dump and decode (map dump ct)', `${s(oldDecode.ms)} s`, `${s(newDecode.ms)} s`, `${(oldDecode.ms / newDecode.ms).toFixed(1)}x (>= 8x)`],
  ['peak RSS of the decoding process', `${oldDecode.rssMb} MB`, `${newDecode.rssMb} MB`, '(native <= 150 MB)'],
  ['digest (count + hash, reconciliation check)', '-', `${s(digest.ms)} s, ${JSON.stringify(digest.value).length} B of output`, '-'],
])
