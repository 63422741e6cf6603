import {createHash} from 'node:crypto'
import {Readable} from 'node:stream'
import {pack} from 'tar-stream'
import {type NodeShell, runChecked} from './shell.js'

export interface FileToCopy {
  /** Path relative to the destination directory. */
  name: string
  data: Buffer
  mode?: number
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

async function tarball(files: readonly FileToCopy[]): Promise<Buffer> {
  const archive = pack()
  for (const file of files) archive.entry({name: file.name, mode: file.mode ?? 0o644, size: file.data.length}, file.data)
  archive.finalize()
  const chunks: Buffer[] = []
  for await (const chunk of Readable.from(archive)) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/**
 * Copy files into a directory on a node as one tar stream over stdin. The
 * node reads exactly the announced byte count (no EOF needed, so it works on
 * the v4 exec protocol too), unpacks, and answers with sha256 sums we verify.
 */
export async function copyIn(shell: NodeShell, destination: string, files: readonly FileToCopy[]): Promise<void> {
  const archive = await tarball(files)
  const script = 'set -e; size="$1"; dest="$2"; shift 2; mkdir -p "$dest"; head -c "$size" | tar -x -o -C "$dest"; cd "$dest"; sha256sum -- "$@"'
  const names = files.map((file) => file.name)
  const {stdout} = await runChecked(shell, ['sh', '-c', script, 'copy-in', String(archive.length), destination, ...names], {stdin: archive, keepStdinOpen: true})
  const sums = new Map(stdout.toString('utf8').trim().split('\n').map((line) => {
    const [sum, ...name] = line.trim().split(/\s+/)
    return [name.join(' '), sum] as const
  }))
  for (const file of files) {
    if (sums.get(file.name) !== sha256(file.data)) throw new Error(`${shell.node}: ${destination}/${file.name} arrived corrupted (checksum mismatch)`)
  }
}

/** Read a file from a node, verified by its sha256 sum. */
export async function copyOut(shell: NodeShell, path: string): Promise<Buffer> {
  const {stdout: sum} = await runChecked(shell, ['sha256sum', path])
  const {stdout: data} = await runChecked(shell, ['cat', path])
  if (sum.toString('utf8').split(/\s+/)[0] !== sha256(data)) throw new Error(`${shell.node}: ${path} changed or was corrupted while copying`)
  return data
}
