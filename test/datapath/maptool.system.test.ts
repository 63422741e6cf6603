import {execFileSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {BpfTool, type RawEntry} from '../../src/datapath/bpftool.js'
import {KERNEL_MAP_TYPE, mapPinPath, MAPS, type MapSpec} from '../../src/datapath/catalogue.js'
import {ipcacheEntry, policyEntries} from '../../src/datapath/entries.js'
import {digestRecords, localMapToolPath, MapTool, splitPerCpu} from '../../src/datapath/maptool.js'
import {LocalShell} from '../../src/nodes/local-shell.js'
import {DatapathFixture} from '../helpers/datapath-fixture.js'

/*
 * The native map tool against bpftool's view of the same pinned maps, for
 * every map type the datapath has: written by one, read by the other, both
 * ways, with batch syscalls and with the one-by-one paths older kernels need.
 */
let fixture: DatapathFixture
let tool: MapTool
let oneByOne: MapTool
let bpftool: BpfTool

beforeAll(async () => {
  fixture = await DatapathFixture.create('maptool', [])
  tool = new MapTool(fixture.shell, localMapToolPath())
  oneByOne = new MapTool(new LocalShell('no-batch', ['env', 'PINION_MAPS_NO_BATCH=1']), localMapToolPath())
  bpftool = new BpfTool(fixture.shell)
})

afterAll(async () => {
  await fixture?.destroy()
})

const hex = (buffer: Buffer) => buffer.toString('hex')
const byKey = (rows: readonly RawEntry[]) =>
  new Map(rows.map((row) => [hex(row.key), row.value ? hex(row.value) : row.values!.map(hex).join('/')]))

/** Entries a map of this spec can hold: valid LPM prefixes, array indexes within bounds, random values. */
function sampleEntries(spec: MapSpec, count: number): {key: Buffer; value: Buffer}[] {
  const valueSize = spec.value!.size
  if (spec.name === 'pinion_ipcache') return Array.from({length: count}, (_, index) => ipcacheEntry(`10.${index >> 8}.${index & 255}.0/24`, index + 1))
  if (spec.name === 'pinion_policy') return Array.from({length: count}, (_, index) => policyEntries({endpointId: index + 1, direction: index % 2, identity: 100 + index, protocol: 'tcp', ports: {from: 80, to: 80}, cookie: index})[0])
  if (spec.type.includes('array')) {
    const indexes = Array.from({length: Math.min(count, spec.maxEntries!)}, (_, index) => index)
    return indexes.map((index) => ({key: spec.key.encode({index}), value: randomBytes(valueSize)}))
  }
  return Array.from({length: count}, () => ({key: randomBytes(spec.key.size), value: randomBytes(valueSize)}))
}

const TESTED = MAPS.filter((spec) => spec.type !== 'perf_event_array')

describe('native map tool', () => {
  it('the catalogue (src/datapath/catalogue.ts) is the object\'s maps: names, types, sizes and flags', async () => {
    const pinned = (await fixture.shell.run(['ls', `${fixture.pinRoot}/maps`])).stdout.toString('utf8').split('\n').filter(Boolean)
    expect(pinned.sort()).toEqual(MAPS.map((spec) => spec.name).sort())
    for (const spec of MAPS) {
      const info = await tool.info(mapPinPath(fixture.pinRoot, spec.name))
      expect({type: info.type, key: info.key, flags: info.flags}, spec.name).toEqual({type: KERNEL_MAP_TYPE[spec.type], key: spec.key.size, flags: spec.flags})
      // libbpf sizes a perf event array by the CPU count; every other size is the object's own.
      if (spec.type !== 'perf_event_array') expect({value: info.value, max: info.max}, spec.name).toEqual({value: spec.value!.size, max: spec.maxEntries})
    }
  })

  it('covers every map type the datapath uses', () => {
    expect(new Set(TESTED.map((spec) => spec.type))).toEqual(new Set(['hash', 'lru_hash', 'lpm_trie', 'array', 'percpu_array']))
  })

  for (const spec of TESTED) {
    const percpu = spec.type.startsWith('percpu')
    it(`${spec.name} (${spec.type}): written by the tool, read by bpftool and back; digest and deletes agree`, async () => {
      const path = mapPinPath(fixture.pinRoot, spec.name)
      const info = await tool.info(path)
      expect(info).toMatchObject({key: spec.key.size, value: spec.value!.size, max: spec.maxEntries})
      const entries = sampleEntries(spec, 300).map((entry) => (percpu ? {key: entry.key, value: Buffer.concat(Array.from({length: info.cpus}, () => Buffer.concat([randomBytes(spec.value!.size), Buffer.alloc(info.stride / info.cpus - spec.value!.size)])))} : entry))
      await tool.batch(path, entries)
      const seenByBpftool = await bpftool.dumpMap(path)
      const expected = new Map(entries.map((entry) => [hex(entry.key), percpu ? splitPerCpu(entry.value, info).map(hex).join('/') : hex(entry.value)]))
      const bpftoolView = byKey(seenByBpftool)
      for (const [key, value] of expected) expect(bpftoolView.get(key), `key ${key}`).toBe(value)

      // The tool's dump is bpftool's view, entry for entry, batch or one by one.
      expect(byKey(await tool.dumpMap(path))).toEqual(bpftoolView)
      expect(byKey(await oneByOne.dumpMap(path))).toEqual(bpftoolView)
      const records = [...bpftoolView].map(([key]) => ({key: Buffer.from(key, 'hex'), value: Buffer.concat((seenByBpftool.find((row) => hex(row.key) === key)!.values ?? [seenByBpftool.find((row) => hex(row.key) === key)!.value!]).map((value) => (percpu ? Buffer.concat([value, Buffer.alloc(info.stride / info.cpus - value.length)]) : value)))}))
      expect(await tool.digest(path)).toMatchObject(digestRecords(records))

      // bpftool writes, the tool reads.
      const [first] = entries
      const rewritten = percpu ? Buffer.alloc(info.stride, 7) : Buffer.alloc(spec.value!.size, 7)
      await bpftool.batch(path, [{key: first.key, value: percpu ? rewritten.subarray(0, spec.value!.size) : rewritten}])
      const afterRewrite = byKey(await tool.dumpMap(path))
      expect(afterRewrite.get(hex(first.key))).toBe(percpu ? splitPerCpu(rewritten, info).map(hex).join('/') : hex(rewritten))

      if (!spec.type.includes('array')) {
        // Deletes (batch, then one by one, a missing key included) are seen by bpftool.
        const half = entries.slice(0, 150).map((entry) => entry.key)
        await tool.batch(path, [], half)
        await oneByOne.batch(path, [], [...entries.slice(150, 200).map((entry) => entry.key), half[0]])
        const left = byKey(await bpftool.dumpMap(path))
        for (const entry of entries.slice(0, 200)) expect(left.has(hex(entry.key))).toBe(false)
        for (const entry of entries.slice(200)) expect(left.has(hex(entry.key))).toBe(true)
        await oneByOne.batch(path, entries.slice(0, 20))
        expect(byKey(await bpftool.dumpMap(path)).size).toBe(left.size + 20)
        await tool.batch(path, [], [...byKey(await bpftool.dumpMap(path)).keys()].map((key) => Buffer.from(key, 'hex')))
        expect(await bpftool.dumpMap(path)).toEqual([])
      }
    })
  }

  it('names the map and the failing key when a map is full, with batch and one by one', async () => {
    const path = `${fixture.pinRoot}/maps/tiny_test`
    await tool.create(path, {type: 1, key: 4, value: 4, max: 4, flags: 0, name: 'tiny_test'})
    try {
      const entries = Array.from({length: 6}, (_, index) => ({key: Buffer.from([index + 1, 0, 0, 0]), value: Buffer.alloc(4, index)}))
      for (const writer of [tool, oneByOne]) {
        await expect(writer.batch(path, entries)).rejects.toThrow(/tiny_test: update key 05000000: .*at most 4 entries/)
        expect((await tool.dumpMap(path)).length).toBe(4)
        await tool.batch(path, [], entries.map((entry) => entry.key))
      }
    } finally {
      execFileSync('rm', ['-f', path])
    }
  })

  it('refuses a map that is not pinned, by path', async () => {
    await expect(tool.dumpMap(`${fixture.pinRoot}/maps/nothing_here`)).rejects.toThrow(/nothing_here: cannot open pinned map .*No such file/)
  })

  it('stops reading when the consumer has enough', async () => {
    const path = mapPinPath(fixture.pinRoot, 'pinion_backends')
    await tool.batch(path, Array.from({length: 5000}, (_, index) => ({key: Buffer.from(Uint32Array.of(index + 1).buffer), value: randomBytes(8)})))
    let seen = 0
    await tool.stream(path, () => ++seen < 10)
    expect(seen).toBe(10)
    const all = await tool.stream(path, () => true)
    expect(all).toEqual({count: 5000, method: 'batch'})
    expect((await oneByOne.stream(path, () => true)).method).toBe('iteration')
    await tool.batch(path, [], Array.from({length: 5000}, (_, index) => Buffer.from(Uint32Array.of(index + 1).buffer)))
  })
})
