import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {mapPinPath} from '../../src/datapath/catalogue.js'
import {frontendEntries, ipcacheEntry, type MapEntry, policyEntries} from '../../src/datapath/entries.js'
import {localMapToolPath, MapTool} from '../../src/datapath/maptool.js'
import type {NodeShell, RunOptions} from '../../src/nodes/shell.js'
import {applyEntries} from '../../src/sync/apply.js'
import {DatapathFixture} from '../helpers/datapath-fixture.js'

/*
 * applyEntries against a real scratch datapath: a reconciliation with nothing
 * to change reads only each map's digest; drift behind its back (a changed,
 * a missing and a stray entry) is found and repaired, reading only the maps
 * whose digest disagrees.
 */
let fixture: DatapathFixture

/** A shell that counts what the node sends back, and which maps are dumped whole. */
class CountingShell implements NodeShell {
  readonly node = 'counting'
  bytesRead = 0
  dumped: string[] = []
  constructor(private readonly inner: NodeShell) {}
  async run(argv: readonly string[], options?: RunOptions) {
    if (argv[1] === 'dump') this.dumped.push(argv[2].split('/').pop()!)
    const counting = options?.stdout
    const result = await this.inner.run(argv, counting ? {...options, stdout: new (await import('node:stream')).Writable({write: (chunk: Buffer, _encoding, done) => {
      this.bytesRead += chunk.length
      counting.write(chunk, done)
    }})} : options)
    this.bytesRead += result.stdout.length
    return result
  }
  close() {
    return this.inner.close()
  }
}

beforeAll(async () => {
  fixture = await DatapathFixture.create('apply', [])
})

afterAll(async () => {
  await fixture?.destroy()
})

function plan(): MapEntry[] {
  return [
    ...Array.from({length: 200}, (_, i) => frontendEntries({vip: `10.96.${i >> 8}.${i & 255}`, port: 80, protocol: 'tcp', revNatIndex: i + 1, backends: [{id: 2 * i + 1, ip: `10.244.1.${i % 250}`, port: 8080}, {id: 2 * i + 2, ip: `10.244.2.${i % 250}`, port: 8080}]})).flat(),
    ...Array.from({length: 300}, (_, i) => ipcacheEntry(`10.244.${i >> 8}.${i & 255}/32`, 1000 + i)),
    ...Array.from({length: 100}, (_, i) => policyEntries({endpointId: 1, direction: 0, identity: 1000 + i, protocol: 'tcp', ports: {from: 80, to: 81}, cookie: 0x100 | i})).flat(),
  ]
}

describe('applyEntries with the native map tool', () => {
  it('reads only digests when nothing changed, and repairs drift reading only the maps that differ', async () => {
    const shell = new CountingShell(fixture.shell)
    const tool = new MapTool(shell, localMapToolPath())
    const entries = plan()
    const first = await applyEntries(tool, fixture.pinRoot, entries)
    expect(first.updated).toBe(entries.length)

    shell.bytesRead = 0
    shell.dumped = []
    const again = await applyEntries(tool, fixture.pinRoot, entries)
    expect(again).toMatchObject({updated: 0, deleted: 0})
    expect(shell.dumped).toEqual([])
    expect(shell.bytesRead).toBeLessThan(1024)

    // Drift: a backend changed and a frontend removed behind the control plane's back, a stray ipcache entry added.
    const backend = entries.find((entry) => entry.map === 'pinion_backends')!
    const frontend = entries.find((entry) => entry.map === 'pinion_services_v2')!
    await fixture.bpftool.batch(mapPinPath(fixture.pinRoot, 'pinion_backends'), [{key: backend.key, value: Buffer.alloc(backend.value.length, 9)}])
    await fixture.bpftool.batch(mapPinPath(fixture.pinRoot, 'pinion_services_v2'), [], [frontend.key])
    const stray = ipcacheEntry('192.168.7.0/24', 77)
    await fixture.bpftool.batch(mapPinPath(fixture.pinRoot, 'pinion_ipcache'), [stray])
    shell.dumped = []
    const repaired = await applyEntries(tool, fixture.pinRoot, entries)
    expect(repaired.byMap).toMatchObject({pinion_backends: {updated: 1, deleted: 0}, pinion_services_v2: {updated: 1, deleted: 0}, pinion_ipcache: {updated: 0, deleted: 1}})
    // pinion_config is read to bump the flow epoch after a change.
    expect(shell.dumped.sort()).toEqual(['pinion_backends', 'pinion_config', 'pinion_ipcache', 'pinion_services_v2'])
    const backends = await fixture.bpftool.dumpMap(mapPinPath(fixture.pinRoot, 'pinion_backends'))
    expect(backends.find((row) => row.key.equals(backend.key))!.value).toEqual(backend.value)
    expect(await applyEntries(tool, fixture.pinRoot, entries)).toMatchObject({updated: 0, deleted: 0})
  })
})
