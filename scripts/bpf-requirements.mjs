#!/usr/bin/env node
// What a compiled BPF object needs from the kernel, read from the object itself:
// helpers from its call instructions (llvm-objdump; ids named by linux/bpf.h's
// BPF_FUNC_MAPPER order), kfuncs from its BTF (extern FUNCs, bpftool).
// Usage: bpf-requirements.mjs OBJECT [BPF_H] > OBJECT.requires.json
import {execFileSync} from 'node:child_process'
import {readFileSync} from 'node:fs'

const [object, header = '/usr/include/linux/bpf.h'] = process.argv.slice(2)
if (!object) {
  console.error('usage: bpf-requirements.mjs OBJECT [BPF_H]')
  process.exit(2)
}
// Newer headers call it ___BPF_FUNC_MAPPER (with ids), older ones __BPF_FUNC_MAPPER.
const mapper = /#define _{2,3}BPF_FUNC_MAPPER\(FN(?:, ctx\.\.\.)?\)([\s\S]*?)\n\n/.exec(readFileSync(header, 'utf8'))?.[1]
if (!mapper) throw new Error(`${header}: no BPF_FUNC_MAPPER`)
// FN(name) or FN(name, id, ...) in the kernel's order: the position is the helper id.
const helperNames = [...mapper.matchAll(/FN\((\w+)/g)].map((match) => `bpf_${match[1]}`)
const disassembly = execFileSync('llvm-objdump', ['-d', '--no-show-raw-insn', object], {encoding: 'utf8', maxBuffer: 1 << 28})
// Helper calls are `call N` with N >= 1; bpf-to-bpf and kfunc calls are relocated `call -1`.
const ids = new Set([...disassembly.matchAll(/\bcall (\d+)$/gm)].map((match) => Number(match[1])))
const helpers = [...ids].sort((a, b) => a - b).map((id) => {
  if (!helperNames[id]) throw new Error(`helper id ${id} is not in ${header}`)
  return helperNames[id]
})
const btf = execFileSync('bpftool', ['btf', 'dump', 'file', object], {encoding: 'utf8', maxBuffer: 1 << 28})
const kfuncs = [...btf.matchAll(/FUNC '(\w+)' type_id=\d+ linkage=extern/g)].map((match) => match[1]).sort()
process.stdout.write(JSON.stringify({helpers, kfuncs}, null, 2) + '\n')
