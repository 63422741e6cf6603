import {type NodeShell, runChecked} from '../nodes/shell.js'
import {PROGRAMS, programPinPath} from './catalogue.js'

/** tc filter priority and handle Pinion owns on every pod interface. */
export const TC_PRIORITY = 1
export const TC_HANDLE = 1

/**
 * Attach both programs to a pod's host-side interface. `replace` swaps the
 * program in place, so an upgrade never leaves the interface unfiltered.
 */
export async function attachPrograms(shell: NodeShell, iface: string, pinRoot: string): Promise<void> {
  const qdisc = await shell.run(['tc', 'qdisc', 'add', 'dev', iface, 'clsact'])
  if (qdisc.exitCode !== 0 && !/File exists/.test(qdisc.stderr)) {
    throw new Error(`${shell.node}: cannot add clsact qdisc on ${iface}: ${qdisc.stderr.trim()}`)
  }
  for (const program of PROGRAMS) {
    await runChecked(shell, [
      'tc', 'filter', 'replace', 'dev', iface, program.hook,
      'pref', String(TC_PRIORITY), 'handle', String(TC_HANDLE),
      'bpf', 'direct-action', 'object-pinned', programPinPath(pinRoot, program.name),
    ])
  }
}

/** Remove Pinion's filters (and the clsact qdisc) from an interface; fine if absent. */
export async function detachPrograms(shell: NodeShell, iface: string): Promise<void> {
  await shell.run(['tc', 'qdisc', 'del', 'dev', iface, 'clsact'])
}

/** Program names attached to an interface's ingress and egress hooks, from `tc -j`. */
export async function attachedPrograms(shell: NodeShell, iface: string): Promise<{ingress?: string; egress?: string}> {
  const out: {ingress?: string; egress?: string} = {}
  for (const hook of ['ingress', 'egress'] as const) {
    const result = await shell.run(['tc', '-j', 'filter', 'show', 'dev', iface, hook])
    if (result.exitCode !== 0) continue
    const filters = JSON.parse(result.stdout.toString('utf8') || '[]') as {options?: {bpf_name?: string; prog?: {name?: string}}}[]
    const bpf = filters.find((filter) => filter.options?.bpf_name || filter.options?.prog?.name)
    if (bpf) out[hook] = bpf.options?.prog?.name ?? bpf.options?.bpf_name
  }
  return out
}
