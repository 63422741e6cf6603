import {readFileSync} from 'node:fs'
import {release} from 'node:os'
import {DATAPATH_ABI_VERSION} from '../datapath/catalogue.js'

export interface VersionInfo {
  version: string
  datapathAbi: number
  node: string
  platform: string
  arch: string
  kernel: string
}

const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {version: string}

export const PINION_VERSION: string = packageJson.version

export function versionInfo(): VersionInfo {
  return {
    version: PINION_VERSION,
    datapathAbi: DATAPATH_ABI_VERSION,
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    kernel: release(),
  }
}
