import {release} from 'node:os'
import {DATAPATH_ABI_VERSION} from '../datapath/catalogue.js'
import {PINION_VERSION} from '../lib/version-info.js'

export interface VersionInfo {
  version: string
  datapathAbi: number
  node: string
  platform: string
  arch: string
  kernel: string
}

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
