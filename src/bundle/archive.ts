import {createHash} from 'node:crypto'
import type {FileHandle} from 'node:fs/promises'
import {pipeline} from 'node:stream/promises'
import {createGzip} from 'node:zlib'
import {pack} from 'tar-stream'

/** Files of a bundle, collected in memory and written as one gzip tarball. */
export class BundleArchive {
  private readonly files = new Map<string, Buffer>()

  add(path: string, content: Buffer | string): void {
    this.files.set(path, Buffer.isBuffer(content) ? content : Buffer.from(content))
  }

  checksums(): Record<string, string> {
    return Object.fromEntries([...this.files].map(([path, data]) => [path, createHash('sha256').update(data).digest('hex')]))
  }

  /** Write the tarball to an open file (opened before collecting, so an unwritable path fails first); closes it. */
  async write(root: string, file: FileHandle): Promise<void> {
    const archive = pack()
    // The pipeline's failure (disk full, I/O error) is what this call rejects with; nothing throws from a stream.
    const done = pipeline(archive, createGzip(), file.createWriteStream())
    let failed = false
    done.catch(() => {
      failed = true
      archive.destroy()
    })
    const mtime = new Date()
    for (const [path, data] of [...this.files].sort(([a], [b]) => a.localeCompare(b))) {
      if (failed) break
      await new Promise<void>((resolve) => archive.entry({name: `${root}/${path}`, size: data.length, mode: 0o644, mtime}, data, () => resolve()))
    }
    if (!failed) archive.finalize()
    await done
  }
}
