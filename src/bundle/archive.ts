import {createHash} from 'node:crypto'
import {createWriteStream} from 'node:fs'
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

  async write(root: string, file: string): Promise<void> {
    const archive = pack()
    const done = pipeline(archive, createGzip(), createWriteStream(file, {mode: 0o600}))
    const mtime = new Date()
    for (const [path, data] of [...this.files].sort(([a], [b]) => a.localeCompare(b))) {
      await new Promise<void>((resolve, reject) => archive.entry({name: `${root}/${path}`, size: data.length, mode: 0o644, mtime}, data, (error) => (error ? reject(error) : resolve())))
    }
    archive.finalize()
    await done
  }
}
