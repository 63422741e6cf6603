import {createHash} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {UserError} from '../lib/errors.js'
import {PINION_VERSION} from '../lib/version-info.js'
import type {NodeShell} from '../nodes/shell.js'
import {BPF_OBJECT, COMPAT_OBJECT} from './catalogue.js'
import {type DatapathRequirements, missingKfuncs} from './preflight.js'

export interface DatapathObject {
  /** File name in dist/bpf: the datapath, or its build for kernels without the kfunc. */
  name: string
  data: Buffer
  sha: string
  version: string
  /** Helpers and kfuncs it calls (read from it at build). */
  requirements: DatapathRequirements
}

/** A compiled datapath shipped with this CLI (dist/bpf). */
export function datapathObject(name = BPF_OBJECT): DatapathObject {
  const path = fileURLToPath(new URL(`../../dist/bpf/${name}`, import.meta.url))
  const requires = path.replace(/\.bpf\.o$/, '.requires.json')
  if (!existsSync(path) || !existsSync(requires)) throw new UserError(`the datapath object ${path} (or its requirements) is missing: run \`make build\``)
  const data = readFileSync(path)
  return {name, data, sha: createHash('sha256').update(data).digest('hex'), version: PINION_VERSION, requirements: JSON.parse(readFileSync(requires, 'utf8')) as DatapathRequirements}
}

/**
 * The datapath for a node's kernel: the full one where the kernel has every
 * kfunc it calls (Linux 6.2 and newer), else the compat build, which reaches
 * the same verdicts with helpers only (checksums through bpf_l4_csum_replace).
 * The agent and install choose alike, so they never replace each other's object.
 */
export async function objectForNode(shell: NodeShell): Promise<DatapathObject> {
  const full = datapathObject(BPF_OBJECT)
  return (await missingKfuncs(shell, full.requirements.kfuncs)).length === 0 ? full : datapathObject(COMPAT_OBJECT)
}
