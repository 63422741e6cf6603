import {Flags} from '@oclif/core'
import {DEFAULT_PIN_ROOT} from '../datapath/catalogue.js'

/**
 * A pin root is handed to node-side scripts and tools: an absolute path of
 * plain characters, without `.`/`..` parts, below a mount point (the node's
 * preflight checks it is on a bpffs mount, e.g. /sys/fs/bpf).
 */
export function validatePinRoot(input: string): string {
  const path = input.replace(/\/+$/, '')
  if (!path.startsWith('/')) throw new Error(`--pin-root must be an absolute path, got "${input}"`)
  if (!/^[A-Za-z0-9._/-]+$/.test(path)) throw new Error(`--pin-root may hold only letters, digits, ".", "_", "-" and "/", got "${input}"`)
  if (path.split('/').some((part) => part === '.' || part === '..')) throw new Error(`--pin-root must not contain "." or ".." parts, got "${input}"`)
  if (path.split('/').filter(Boolean).length < 2) throw new Error(`--pin-root must be a directory inside a bpffs mount, e.g. ${DEFAULT_PIN_ROOT}; got "${input}"`)
  return path
}

export const pinRootFlag = {
  'pin-root': Flags.custom<string>({description: 'bpffs directory holding Pinion\'s pinned programs and maps (inside a bpffs mount)', default: DEFAULT_PIN_ROOT, parse: async (input) => validatePinRoot(input)})(),
}

/** Repeatable NAME=ENTRIES (checked by parseMapSizes before any cluster access). */
export const mapSizeFlag = Flags.string({
  description: 'Entries of a map when install creates it, as MAP=N (repeatable; ct, policy, polnames, ipcache, services, backends). Default: the larger of the built-in size and twice what the plan needs',
  multiple: true,
  helpValue: 'MAP=N',
})
