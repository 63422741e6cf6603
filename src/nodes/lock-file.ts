import {UserError} from '../lib/errors.js'
import type {NodeShell} from './shell.js'

/** The node-local writer lock (SSH runs): holder identity and expiry, next to Pinion's state. */
export const LOCK_FILE = '/var/lib/pinion/writer.lock'
/** A holder that stops renewing (a killed run) loses the lock after this long. */
export const LOCK_FILE_TTL_SECONDS = 600

// Check-and-set under flock, so two runs on the node cannot both take it.
// Line 1: expiry (epoch seconds); line 2: the holder.
const ACQUIRE = `
set -e
mkdir -p "$(dirname "$1")"
exec 9>"$1.guard"
flock -w 10 9
now=$(date +%s)
if [ -f "$1" ]; then
  until=$(sed -n 1p "$1"); holder=$(sed -n 2p "$1")
  if [ "$holder" != "$2" ] && [ "\${until:-0}" -gt "$now" ] 2>/dev/null; then echo "$holder"; exit 75; fi
fi
printf '%s\\n%s\\n' "$((now + $3))" "$2" > "$1.tmp" && mv "$1.tmp" "$1"
`

const RELEASE = `
exec 9>"$1.guard" || exit 0
flock -w 10 9
[ -f "$1" ] && [ "$(sed -n 2p "$1")" = "$2" ] && rm -f "$1"
rm -f "$1.guard"
rmdir "$(dirname "$1")" 2>/dev/null
true
`

export async function acquireLockFile(shell: NodeShell, holder: string): Promise<void> {
  const result = await shell.run(['sh', '-c', ACQUIRE, 'lock', LOCK_FILE, holder, String(LOCK_FILE_TTL_SECONDS)])
  if (result.exitCode === 75) throw new UserError(`node ${shell.node} is locked by ${result.stdout.toString('utf8').trim()} (${LOCK_FILE}; it expires ${LOCK_FILE_TTL_SECONDS / 60} min after its holder's last write)`)
  if (result.exitCode !== 0) throw new Error(`${shell.node}: cannot take the writer lock ${LOCK_FILE}: ${result.stderr.trim().split('\n').pop() || `exit ${result.exitCode}`}`)
}

export async function releaseLockFile(shell: NodeShell, holder: string): Promise<void> {
  await shell.run(['sh', '-c', RELEASE, 'unlock', LOCK_FILE, holder])
}
