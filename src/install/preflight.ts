import type {NodeShell} from '../nodes/shell.js'

/** Helpers the datapath calls; the kernel must offer each to tc programs. */
export const REQUIRED_HELPERS = [
  'bpf_skb_load_bytes', 'bpf_skb_store_bytes', 'bpf_l3_csum_replace', 'bpf_l4_csum_replace',
  'bpf_perf_event_output', 'bpf_get_prandom_u32', 'bpf_ktime_get_boot_ns', 'bpf_get_hash_recalc',
  'bpf_map_lookup_elem', 'bpf_map_update_elem',
]

export interface Preflight {
  kernel: string
  btf: boolean
  bpffs: boolean
  clsact: boolean
  missingHelpers: string[]
  ok: boolean
  problems: string[]
}

function kernelAtLeast(release: string, major: number, minor: number): boolean {
  const [a, b] = release.split('.').map((part) => Number.parseInt(part, 10))
  return a > major || (a === major && b >= minor)
}

/** Check a node can run the datapath; changes nothing. */
export async function preflight(shell: NodeShell, pinRoot: string): Promise<Preflight> {
  const kernel = (await shell.run(['uname', '-r'])).stdout.toString('utf8').trim()
  const btf = (await shell.run(['test', '-r', '/sys/kernel/btf/vmlinux'])).exitCode === 0
  // The pin root, or its nearest existing parent, must be on a bpffs mount.
  const fsType = (await shell.run(['sh', '-c', 'd="$1"; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; stat -f -c %T "$d"', 'bpffs', pinRoot])).stdout.toString('utf8').trim()
  const bpffs = fsType === 'bpf_fs'
  const probe = await shell.run(['bpftool', '-j', 'feature', 'probe', 'kernel'])
  let missingHelpers = REQUIRED_HELPERS
  let schedCls = false
  if (probe.exitCode === 0) {
    const features = JSON.parse(probe.stdout.toString('utf8')) as {program_types: Record<string, boolean>; helpers: Record<string, string[]>}
    schedCls = Boolean(features.program_types.have_sched_cls_prog_type)
    const available = new Set(features.helpers.sched_cls_available_helpers ?? [])
    missingHelpers = REQUIRED_HELPERS.filter((helper) => !available.has(helper))
  }
  const clsact = schedCls && kernelAtLeast(kernel, 4, 5) && (await shell.run(['tc', '-V'])).exitCode === 0
  const problems = [
    !kernelAtLeast(kernel, 5, 10) && `kernel ${kernel} is older than 5.10`,
    !btf && 'no kernel BTF (/sys/kernel/btf/vmlinux)',
    !bpffs && `${pinRoot} is not on a bpffs mount (found ${fsType || 'nothing'})`,
    !clsact && 'no tc clsact / sched_cls support',
    probe.exitCode !== 0 && `bpftool feature probe failed: ${probe.stderr.trim().split('\n').pop()}`,
    missingHelpers.length > 0 && probe.exitCode === 0 && `missing BPF helpers: ${missingHelpers.join(', ')}`,
  ].filter((problem): problem is string => Boolean(problem))
  return {kernel, btf, bpffs, clsact, missingHelpers, ok: problems.length === 0, problems}
}
