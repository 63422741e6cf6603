import type {NodeShell} from '../nodes/shell.js'

/** What the datapath object calls in the kernel, read from the object at build (scripts/bpf-requirements.mjs). */
export interface DatapathRequirements {
  helpers: string[]
  kfuncs: string[]
}

/** The oldest kernel the datapath is proven on (test/kernels): 6.1 runs the compat build, 6.2 and newer the full one. */
export const MINIMUM_KERNEL = '6.1'

/**
 * Of these kfuncs, the ones the node's kernel BTF does not have: a kfunc is a
 * function in the kernel's BTF, whose string table holds every name (a byte
 * search of the file, milliseconds, not a dump of its 100,000 types).
 */
export async function missingKfuncs(shell: NodeShell, kfuncs: readonly string[]): Promise<string[]> {
  if (kfuncs.length === 0) return []
  // Names in BTF's string table are NUL-terminated: match whole names only.
  const script = 'for name in "$@"; do grep -qaP "\\x00$name\\x00" /sys/kernel/btf/vmlinux 2>/dev/null || echo "$name"; done'
  const {stdout} = await shell.run(['sh', '-c', script, 'kfuncs', ...kfuncs])
  return stdout.toString('utf8').split('\n').filter(Boolean)
}

export interface Preflight {
  kernel: string
  btf: boolean
  bpffs: boolean
  clsact: boolean
  missingHelpers: string[]
  missingKfuncs: string[]
  ok: boolean
  problems: string[]
}

/**
 * Check a node can run the datapath; changes nothing. Features are checked,
 * not version numbers (distributions backport): every helper the object
 * calls must be offered to tc programs, every kfunc must be in the kernel's BTF.
 */
export async function preflight(shell: NodeShell, pinRoot: string, requirements: DatapathRequirements): Promise<Preflight> {
  const kernel = (await shell.run(['uname', '-r'])).stdout.toString('utf8').trim()
  const btf = (await shell.run(['test', '-r', '/sys/kernel/btf/vmlinux'])).exitCode === 0
  // The pin root, or its nearest existing parent, must be on a bpffs mount.
  const fsType = (await shell.run(['sh', '-c', 'd="$1"; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; stat -f -c %T "$d"', 'bpffs', pinRoot])).stdout.toString('utf8').trim()
  const bpffs = fsType === 'bpf_fs'
  const probe = await shell.run(['bpftool', '-j', 'feature', 'probe', 'kernel'])
  let missingHelpers = requirements.helpers
  let schedCls = false
  if (probe.exitCode === 0) {
    const features = JSON.parse(probe.stdout.toString('utf8')) as {program_types: Record<string, boolean>; helpers: Record<string, string[]>}
    schedCls = Boolean(features.program_types.have_sched_cls_prog_type)
    const available = new Set(features.helpers.sched_cls_available_helpers ?? [])
    missingHelpers = requirements.helpers.filter((helper) => !available.has(helper))
  }
  // kfuncs are functions in the kernel's BTF.
  const missing = btf ? await missingKfuncs(shell, requirements.kfuncs) : requirements.kfuncs
  const clsact = schedCls && (await shell.run(['tc', '-V'])).exitCode === 0
  const problems = [
    !btf && 'no kernel BTF (/sys/kernel/btf/vmlinux)',
    !bpffs && `${pinRoot} is not on a bpffs mount (found ${fsType || 'nothing'})`,
    !clsact && 'no tc clsact / sched_cls support',
    probe.exitCode !== 0 && `bpftool feature probe failed: ${probe.stderr.trim().split('\n').pop()}`,
    missingHelpers.length > 0 && probe.exitCode === 0 && `kernel ${kernel} lacks BPF helpers the datapath calls: ${missingHelpers.join(', ')} (Pinion needs Linux ${MINIMUM_KERNEL} or newer)`,
    missing.length > 0 && btf && `kernel ${kernel} lacks kfuncs the datapath calls: ${missing.join(', ')} (Pinion needs Linux ${MINIMUM_KERNEL} or newer)`,
  ].filter((problem): problem is string => Boolean(problem))
  return {kernel, btf, bpffs, clsact, missingHelpers, missingKfuncs: missing, ok: problems.length === 0, problems}
}
