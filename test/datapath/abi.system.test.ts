import {execFileSync, spawnSync} from 'node:child_process'
import {readdirSync, readFileSync} from 'node:fs'
import {describe, expect, it} from 'vitest'
import {EVENT_TYPE, EVENT_VERSION, FLOW_CACHE_SLOTS, MAX_ENDPOINT_ID, METRICS_SLOTS, REV_NAT_MAX} from '../../src/datapath/constants.js'
import {decodeEvent} from '../../src/datapath/events.js'
import {DROP_REASONS} from '../../src/datapath/drop-reasons.js'
import {DATAPATH_ABI_VERSION, MAPS} from '../../src/datapath/catalogue.js'
import {ABI_STRUCTS, dropEvent, eventHeader, skBuff} from '../../src/datapath/structs.js'
import {BPF_OBJECT_PATH, REPO_ROOT, requireSystem} from '../helpers/system.js'

interface BtfType {
  id: number
  kind: string
  name: string
  size?: number
  type_id?: number
  nr_elems?: number
  members?: {name: string; type_id: number; bits_offset: number}[]
}

function loadBtf(object: string): Map<number, BtfType> {
  const json = JSON.parse(execFileSync('bpftool', ['btf', 'dump', 'file', object, '-j'], {encoding: 'utf8'})) as {types: BtfType[]}
  return new Map(json.types.map((type) => [type.id, type]))
}

function sizeOf(types: Map<number, BtfType>, id: number): number {
  const type = types.get(id)
  if (!type) throw new Error(`BTF type ${id} missing`)
  switch (type.kind) {
    case 'INT': case 'STRUCT': case 'UNION': case 'ENUM': case 'PTR':
      return type.kind === 'PTR' ? 8 : type.size!
    case 'ARRAY':
      return sizeOf(types, type.type_id!) * type.nr_elems!
    case 'TYPEDEF': case 'CONST': case 'VOLATILE':
      return sizeOf(types, type.type_id!)
    default:
      throw new Error(`unexpected BTF kind ${type.kind}`)
  }
}

describe('datapath ABI: TypeScript layouts match the BTF of the compiled object', () => {
  requireSystem(['bpftool'])
  const types = loadBtf(BPF_OBJECT_PATH)
  const byName = new Map([...types.values()].filter((type) => type.kind === 'STRUCT').map((type) => [type.name, type]))

  for (const struct of ABI_STRUCTS) {
    it(`struct ${struct.name}`, () => {
      const btf = byName.get(struct.name)
      expect(btf, `struct ${struct.name} is not in the object's BTF`).toBeDefined()
      const fromBtf = btf!.members!.map((member) => ({name: member.name, offset: member.bits_offset / 8, size: sizeOf(types, member.type_id)}))
      const fromTs = struct.fields.map((field) => ({name: field.name, offset: field.offset, size: field.size}))
      expect(fromTs).toEqual(fromBtf)
      expect(struct.size).toBe(btf!.size)
    })
  }

  it('struct __sk_buff fields used by BPF_PROG_TEST_RUN', () => {
    const btf = byName.get('__sk_buff')!
    const offset = (name: string) => btf.members!.find((member) => member.name === name)!.bits_offset / 8
    const field = (name: string) => skBuff.fields.find((candidate) => candidate.name === name)!.offset
    expect(skBuff.size).toBe(btf.size)
    for (const name of ['mark', 'ifindex', 'hash', 'tstamp', 'hwtstamp']) expect(field(name), name).toBe(offset(name))
    expect(field('cb0')).toBe(offset('cb'))
  })

  it('drop reasons mirror bpf/include/drop_reasons.h', () => {
    const header = readFileSync(`${REPO_ROOT}bpf/include/drop_reasons.h`, 'utf8')
    const fromC = [...header.matchAll(/X\((\d+),\s*(\w+),\s*"([^"]*)"\)/g)].map((match) => ({code: Number(match[1]), id: match[2], text: match[3]}))
    expect(fromC.length).toBeGreaterThan(5)
    expect(DROP_REASONS.map((reason) => ({...reason}))).toEqual(fromC)
  })

  it('array sizes and limits match the C header', () => {
    const header = readFileSync(`${REPO_ROOT}bpf/include/pinion_abi.h`, 'utf8')
    const define = (name: string) => Number(new RegExp(`#define ${name}\\s+(\\d+)`).exec(header)?.[1])
    expect({METRICS_SLOTS: define('METRICS_SLOTS'), FLOW_CACHE_SLOTS: define('FLOW_CACHE_SLOTS'), REV_NAT_MAX: define('REV_NAT_MAX')}).toEqual({METRICS_SLOTS, FLOW_CACHE_SLOTS, REV_NAT_MAX})
  })

  it('event version and endpoint id width: decoders refuse other versions, ids fit the events', () => {
    const header = readFileSync(`${REPO_ROOT}bpf/include/pinion_abi.h`, 'utf8')
    expect(Number(/#define EVENT_VERSION (\d+)/.exec(header)![1])).toBe(EVENT_VERSION)
    const sample = Buffer.alloc(dropEvent.size)
    eventHeader.encode({type: EVENT_TYPE.DROP, version: EVENT_VERSION + 1}, sample)
    expect(() => decodeEvent(sample)).toThrow(new RegExp(`event version ${EVENT_VERSION + 1} from the datapath, this CLI reads version ${EVENT_VERSION}`))
    // Endpoint ids travel in event_header.source (and the datapath's verdict context): the planner never allocates past them.
    const source = eventHeader.fields.find((field) => field.name === 'source')!
    expect(MAX_ENDPOINT_ID).toBe(2 ** (8 * source.size) - 1)
    expect(/struct verdict_ctx \{[^}]*__u16 endpoint_id;/s.test(readFileSync(`${REPO_ROOT}bpf/lib/events.h`, 'utf8'))).toBe(true)
    expect(MAPS.find((map) => map.name === 'pinion_endpoint')!.maxEntries).toBeLessThanOrEqual(MAX_ENDPOINT_ID + 1)
    expect(MAPS.find((map) => map.name === 'pinion_endpoint')!.resizable).toBeUndefined()
  })

  it('each bpf/lib header compiles on its own (includes what it uses)', () => {
    requireSystem(['clang'])
    for (const name of readdirSync(`${REPO_ROOT}bpf/lib`).filter((file) => file.endsWith('.h'))) {
      const result = spawnSync('clang', ['-O2', '-g', '-target', 'bpf', '-Wall', '-Werror', `-I/usr/include/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`, '-fsyntax-only', '-x', 'c', '-'], {input: `#include "${REPO_ROOT}bpf/lib/${name}"\n`, encoding: 'utf8'})
      expect(result.status, `${name}: ${result.stderr}`).toBe(0)
    }
  })

  it('hooks return TC actions only: no sentinel value mixed in with them', () => {
    for (const name of readdirSync(`${REPO_ROOT}bpf/lib`).filter((file) => file.endsWith('.h'))) {
      const text = readFileSync(`${REPO_ROOT}bpf/lib/${name}`, 'utf8')
      expect(text, name).not.toMatch(/#define\s+\w+\s+\(?-\d+\)?/)
    }
  })

  it('ABI version matches the C header', () => {
    const header = readFileSync(`${REPO_ROOT}bpf/include/pinion_abi.h`, 'utf8')
    expect(Number(/#define PINION_ABI_VERSION (\d+)/.exec(header)![1])).toBe(DATAPATH_ABI_VERSION)
  })
})

describe('every compiled object passes the kernel verifier', () => {
  it('loads each dist/bpf/*.bpf.o into a scratch bpffs', async () => {
    requireSystem(['bpftool'])
    const {readdirSync, mkdtempSync, rmdirSync} = await import('node:fs')
    const {tmpdir} = await import('node:os')
    const objects = readdirSync(`${REPO_ROOT}dist/bpf`).filter((name) => name.endsWith('.bpf.o'))
    expect(objects).toEqual(expect.arrayContaining(['pinion.bpf.o', 'bench.bpf.o']))
    const root = mkdtempSync(`${tmpdir()}/pinion-verify-`)
    execFileSync('mount', ['-t', 'bpf', 'bpf', root])
    try {
      for (const object of objects) {
        const name = object.replace('.bpf.o', '').replace(/\W/g, '_')
        execFileSync('bpftool', ['prog', 'loadall', `${REPO_ROOT}dist/bpf/${object}`, `${root}/${name}_progs`, 'pinmaps', `${root}/${name}_maps`], {stdio: 'pipe'})
        expect(readdirSync(`${root}/${name}_progs`).length, object).toBeGreaterThan(0)
      }
    } finally {
      execFileSync('umount', [root])
      rmdirSync(root)
    }
  })
})
