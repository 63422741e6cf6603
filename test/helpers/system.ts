import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const BPF_OBJECT_PATH = `${REPO_ROOT}dist/bpf/pinion.bpf.o`
/** The same datapath built for kernels before 6.2 (no kfunc). */
export const COMPAT_OBJECT_PATH = `${REPO_ROOT}dist/bpf/pinion-compat.bpf.o`

/**
 * System tests run for real and never skip: a missing prerequisite fails the
 * test with the reason and how to fix it.
 */
export function requireSystem(tools: string[] = ['bpftool']): void {
  if (process.getuid?.() !== 0) throw new Error('this test needs root (it loads BPF and creates namespaces): run `make test` as root')
  for (const tool of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], {stdio: 'ignore'})
    } catch {
      throw new Error(`this test needs ${tool}: run \`make deps\` (apt-get installs it)`)
    }
  }
  if (!existsSync(BPF_OBJECT_PATH)) throw new Error(`${BPF_OBJECT_PATH} is missing: run \`make build\` first`)
}
