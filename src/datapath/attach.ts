import {type NodeShell, runChecked} from '../nodes/shell.js'
import {PROGRAMS} from './catalogue.js'

/** tc filter priority and handle Pinion owns on every pod interface. */
export const TC_PRIORITY = 1
export const TC_HANDLE = 1

/**
 * Attach both programs to pod interfaces in one shell on the node. `replace`
 * swaps a program in place, so an upgrade never leaves an interface unfiltered.
 */
export async function attachPrograms(shell: NodeShell, interfaces: readonly string[], progsDir: string): Promise<void> {
  if (interfaces.length === 0) return
  const filters = PROGRAMS.map((program) => `tc filter replace dev "$dev" ${program.hook} pref ${TC_PRIORITY} handle ${TC_HANDLE} bpf direct-action object-pinned "$dir/${program.name}"`).join(' && ')
  const script = `set -e; dir="$1"; shift; for dev in "$@"; do tc qdisc replace dev "$dev" clsact; ${filters}; done`
  await runChecked(shell, ['sh', '-c', script, 'attach', progsDir, ...interfaces])
}

/** Remove the clsact qdisc (and so Pinion's filters) from interfaces; fine where absent. */
export async function detachPrograms(shell: NodeShell, interfaces: readonly string[]): Promise<void> {
  if (interfaces.length === 0) return
  await shell.run(['sh', '-c', 'for dev in "$@"; do tc qdisc del dev "$dev" clsact 2>/dev/null; done; true', 'detach', ...interfaces])
}

/** Interfaces of the node whose ingress hook runs from_pod (found by scanning every link). */
export async function interfacesWithPinion(shell: NodeShell): Promise<string[]> {
  const script = 'for dev in $(ip -o link show | awk -F": " \'{print $2}\' | cut -d@ -f1); do tc filter show dev "$dev" ingress 2>/dev/null | grep -q "from_pod" && echo "$dev"; done; true'
  const {stdout} = await runChecked(shell, ['sh', '-c', script])
  return stdout.toString('utf8').split('\n').filter(Boolean)
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

/** A pod's host-side interface on its node. */
export interface NodeInterface {
  name: string
  ifindex: number
  mac: string
}

/** Pod IP -> host-side interface, from the node's /32 routes and links (two commands). */
export async function resolveInterfaces(shell: NodeShell): Promise<Map<string, NodeInterface>> {
  const routes = JSON.parse((await runChecked(shell, ['ip', '-j', '-4', 'route', 'show', 'table', 'main'])).stdout.toString('utf8') || '[]') as {dst: string; dev?: string; gateway?: string}[]
  const links = JSON.parse((await runChecked(shell, ['ip', '-j', 'link', 'show'])).stdout.toString('utf8') || '[]') as {ifname: string; ifindex: number; address: string}[]
  const byName = new Map(links.map((link) => [link.ifname, link]))
  const out = new Map<string, NodeInterface>()
  for (const route of routes) {
    if (!route.dev || route.gateway || !/^\d+\.\d+\.\d+\.\d+(\/32)?$/.test(route.dst)) continue
    const link = byName.get(route.dev)
    if (link) out.set(route.dst.replace('/32', ''), {name: link.ifname, ifindex: link.ifindex, mac: link.address})
  }
  return out
}
