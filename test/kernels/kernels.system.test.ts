/*
 * The kernel matrix: each kernel Debian packages (test/kernels/kernels.txt)
 * boots in qemu (TCG: this machine has no KVM) with a busybox initramfs that
 * holds bpftool, every compiled object and packet vectors. In the VM every
 * object is loaded (an object the kernel cannot take must fail only for the
 * kfunc it lacks), and the object the installer would choose for that kernel
 * replays the vectors: its verdicts and output packets must be those the full
 * datapath gives on this machine's kernel.
 *
 *   host: vectors.ts runs the cases through dist/bpf/pinion.bpf.o -> expected
 *   VM:   init.sh loads dist/bpf/*.bpf.o, fills the maps, bpftool prog run per case
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {REPO_ROOT, requireSystem} from '../helpers/system.js'
import {referenceVectors, type VectorCase, writeVectors} from './vectors.js'

const CACHE = `${REPO_ROOT}.cache/kernels`
const KERNELS = readFileSync(`${REPO_ROOT}test/kernels/kernels.txt`, 'utf8').split('\n').map((line) => line.replace(/#.*/, '').trim()).filter(Boolean).map((line) => {
  const [pattern, object] = line.split(/\s+/)
  return {pattern, object}
})

let work: string
let vectors: VectorCase[]

/** The newest package matching the pattern, downloaded once into .cache/kernels; its vmlinuz. */
function kernelImage(pattern: string): string {
  const search = () => execFileSync('apt-cache', ['search', '--names-only', `^${pattern}$`], {encoding: 'utf8'}).split('\n').map((line) => line.split(' ')[0]).filter(Boolean)
  let names = search()
  if (names.length === 0) {
    // A machine whose package lists were never fetched (container images ship none).
    execFileSync('apt-get', ['update', '-qq'], {stdio: 'ignore'})
    names = search()
  }
  if (names.length === 0) throw new Error(`no Debian package matches ${pattern} (apt-get update, or change test/kernels/kernels.txt)`)
  const name = names.sort((a, b) => a.localeCompare(b, 'en', {numeric: true})).pop()!
  const dir = join(CACHE, name)
  if (!existsSync(join(dir, 'extracted'))) {
    mkdirSync(dir, {recursive: true})
    const download = spawnSync('apt-get', ['download', name], {cwd: dir, encoding: 'utf8'})
    if (download.status !== 0) throw new Error(`apt-get download ${name} failed: ${download.stderr.trim().split('\n').pop()}`)
    const deb = readdirSync(dir).find((file) => file.endsWith('.deb'))!
    execFileSync('dpkg-deb', ['-x', join(dir, deb), join(dir, 'root')])
    rmSync(join(dir, deb))
    execFileSync('touch', [join(dir, 'extracted')])
  }
  const boot = join(dir, 'root', 'boot')
  const image = readdirSync(boot).find((file) => file.startsWith('vmlinuz-'))
  if (!image) throw new Error(`${name} has no vmlinuz`)
  return join(boot, image)
}

/** busybox, bpftool and its libraries, every object, the vectors and /init, as a gzipped newc cpio. */
function initramfs(object: string): string {
  const root = join(work, `root-${object}`)
  for (const dir of ['bin', 'proc', 'sys', 'tmp', 'objects']) mkdirSync(join(root, dir), {recursive: true})
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'))
  for (const applet of ['sh', 'mount', 'cat', 'echo', 'basename', 'grep', 'sed', 'od', 'tr', 'tail', 'poweroff']) execFileSync('ln', ['-sf', 'busybox', join(root, 'bin', applet)])
  const bpftool = execFileSync('sh', ['-c', 'command -v bpftool'], {encoding: 'utf8'}).trim()
  copyFileSync(bpftool, join(root, 'bin/bpftool'))
  chmodSync(join(root, 'bin/bpftool'), 0o755)
  for (const lib of execFileSync('ldd', [bpftool], {encoding: 'utf8'}).matchAll(/(\/\S+\.so[.\d]*)/g)) {
    mkdirSync(join(root, dirname(lib[1])), {recursive: true})
    copyFileSync(lib[1], join(root, lib[1]))
  }
  for (const file of readdirSync(`${REPO_ROOT}dist/bpf`).filter((name) => name.endsWith('.bpf.o'))) copyFileSync(`${REPO_ROOT}dist/bpf/${file}`, join(root, 'objects', file))
  const name = object.replace(/\.bpf\.o$/, '')
  writeVectors(join(root, 'vectors'), vectors, `/sys/fs/bpf/${name}_maps`)
  execFileSync('sh', ['-c', `printf %s "${name}" > "${join(root, 'vectors/object')}"`])
  copyFileSync(`${REPO_ROOT}test/kernels/init.sh`, join(root, 'init'))
  chmodSync(join(root, 'init'), 0o755)
  const image = join(work, `initrd-${name}.gz`)
  execFileSync('sh', ['-c', `cd "${root}" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > "${image}"`])
  return image
}

beforeAll(async () => {
  requireSystem(['bpftool', 'qemu-system-x86_64', 'busybox', 'apt-get', 'dpkg-deb', 'ldd'])
  if (!existsSync('/bin/busybox')) throw new Error('this test needs the static busybox at /bin/busybox: run `make deps` (apt-get installs busybox-static)')
  work = mkdtempSync(join(tmpdir(), 'pinion-kernels-'))
  vectors = await referenceVectors()
}, 120_000)

afterAll(() => {
  if (work) rmSync(work, {recursive: true, force: true})
})

describe('kernel matrix (qemu, TCG)', () => {
  it('has vectors that tell verdicts apart', () => {
    expect(new Set(vectors.map((item) => item.expectedRet))).toEqual(new Set([0, 2])) // TC_ACT_OK and TC_ACT_SHOT both occur
  })

  for (const {pattern, object} of KERNELS) {
    it(`${pattern}: loads what it can, and ${object} gives this machine's verdicts and packets`, () => {
      const kernel = kernelImage(pattern)
      const run = spawnSync('qemu-system-x86_64', ['-accel', 'tcg', '-m', '512', '-nographic', '-no-reboot', '-kernel', kernel, '-initrd', initramfs(object), '-append', 'console=ttyS0 quiet panic=-1'], {encoding: 'utf8', timeout: 120_000})
      const lines = (run.stdout ?? '').split(/\r?\n/).map((line) => line.replace(/^.*?(KERNEL|LOAD|MAPS|CASE|DONE)/, '$1'))
      const said = (prefix: string) => lines.filter((line) => line.startsWith(prefix))
      expect(said('DONE'), `the VM did not finish:\n${(run.stdout ?? '').slice(-2000)}${run.error ? `\n${run.error.message}` : ''}`).toHaveLength(1)
      const loads = new Map(said('LOAD ').map((line) => [line.split(' ')[1], line.slice(line.indexOf(' ', 5) + 1)]))
      const chosen = object.replace(/\.bpf\.o$/, '')
      expect(loads.get(chosen), `${chosen} on ${said('KERNEL')[0]}`).toBe('ok')
      // An object the kernel refuses is refused for a kfunc it lacks, never for anything else.
      for (const [name, result] of loads) if (result !== 'ok') expect(result, name).toMatch(/extern \(func ksym\) '\w+': not found in kernel/)
      expect(said('MAPS')).toEqual(['MAPS ok'])
      const cases = said('CASE ')
      expect(cases).toHaveLength(vectors.length)
      vectors.forEach((item, index) => {
        expect(cases[index], item.name).toBe(`CASE ${index} ${item.name} ret=${item.expectedRet} out=${item.expectedOut.toString('hex')}`)
      })
    }, 180_000)
  }
})
