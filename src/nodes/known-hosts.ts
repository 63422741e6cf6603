import {createHmac, randomBytes} from 'node:crypto'
import {appendFileSync, existsSync, readFileSync} from 'node:fs'

/** How OpenSSH names a host in known_hosts: plain for port 22, "[host]:port" otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`
}

function matchesName(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    // Hashed entry: |1|base64(salt)|base64(HMAC-SHA1(salt, name))
    const [, , salt, hash] = pattern.split('|')
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash
  }
  return pattern.split(',').includes(name)
}

export type HostKeyVerdict = 'known' | 'unknown' | 'mismatch'

/** Check a server's key blob against known_hosts (hashed and [host]:port entries included). */
export function checkHostKey(knownHostsPath: string, host: string, port: number, keyBlob: Buffer): HostKeyVerdict {
  if (!existsSync(knownHostsPath)) return 'unknown'
  const name = knownHostsName(host, port)
  const key = keyBlob.toString('base64')
  let seen = false
  for (const line of readFileSync(knownHostsPath, 'utf8').split('\n')) {
    const fields = line.trim().split(/\s+/)
    if (fields.length < 3 || fields[0].startsWith('#') || fields[0].startsWith('@')) continue
    if (!matchesName(fields[0], name)) continue
    if (fields[2] === key) return 'known'
    seen = true
  }
  return seen ? 'mismatch' : 'unknown'
}

/** Record a newly accepted key as a hashed entry, like ssh's HashKnownHosts. */
export function addHostKey(knownHostsPath: string, host: string, port: number, keyBlob: Buffer): void {
  const salt = randomBytes(20)
  const hash = createHmac('sha1', salt).update(knownHostsName(host, port)).digest('base64')
  const type = keyBlob.subarray(4, 4 + keyBlob.readUInt32BE(0)).toString('utf8')
  appendFileSync(knownHostsPath, `|1|${salt.toString('base64')}|${hash} ${type} ${keyBlob.toString('base64')}\n`, {mode: 0o600})
}
