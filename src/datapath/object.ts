import {createHash} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {UserError} from '../lib/errors.js'
import {PINION_VERSION} from '../lib/version-info.js'
import {BPF_OBJECT} from './catalogue.js'

export interface DatapathObject {
  data: Buffer
  sha: string
  version: string
}

/** The compiled datapath shipped with this CLI. */
export function datapathObject(): DatapathObject {
  const path = fileURLToPath(new URL(`../../dist/bpf/${BPF_OBJECT}`, import.meta.url))
  if (!existsSync(path)) throw new UserError(`the datapath object ${path} is missing: run \`make build\``)
  const data = readFileSync(path)
  return {data, sha: createHash('sha256').update(data).digest('hex'), version: PINION_VERSION}
}
