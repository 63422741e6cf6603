import {MAPS} from '../datapath/catalogue.js'
import {decodeEvent} from '../datapath/events.js'
import {BpfTool} from '../datapath/bpftool.js'
import {mapPinPath} from '../datapath/catalogue.js'
import {interfacesWithPinion} from '../datapath/attach.js'
import {NODE_STATE_FILE} from '../datapath/node-state.js'
import {dumpNode} from '../maps/dump.js'
import type {NodeShell} from '../nodes/shell.js'
import {type ClusterNames} from '../sync/names.js'

/** One file of a node's part of the bundle. */
export interface NodeTask {
  file: string
  /** Needs Pinion on the node (skipped, and said so, where it is not installed). */
  datapath?: boolean
  run: (shell: NodeShell, signal: AbortSignal) => Promise<string | Buffer>
}

/** A command's output; a failing command fails its task with its stderr. */
function command(file: string, argv: string[]): NodeTask {
  return {
    file,
    run: async (shell) => {
      const result = await shell.run(argv)
      if (result.exitCode !== 0) throw new Error(`${argv.join(' ')} exited ${result.exitCode}: ${result.stderr.trim().split('\n').pop() ?? ''}`)
      return result.stdout
    },
  }
}

const SYSCTLS = ['net.ipv4.ip_forward', 'net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.default.rp_filter', 'net.core.bpf_jit_enable', 'net.core.bpf_jit_harden', 'kernel.unprivileged_bpf_disabled', 'net.ipv4.conf.all.forwarding', 'net.netfilter.nf_conntrack_max']

/** Everything collected from each node, each task with its own timeout. */
export function nodeTasks(pinRoot: string, names: ClusterNames, eventWindowMs: number, since?: Date): NodeTask[] {
  const maps = MAPS.filter((map) => map.type !== 'perf_event_array').map((spec): NodeTask => ({
    file: `maps/${spec.name}.json`,
    datapath: true,
    run: async (shell) => JSON.stringify((await dumpNode(shell, spec, {filters: [], raw: false, pinRoot}, names)).rows, null, 2),
  }))
  return [
    command('kernel.txt', ['uname', '-a']),
    command('kernel-config.txt', ['sh', '-c', 'f=/boot/config-$(uname -r); if [ -r /proc/config.gz ]; then zcat /proc/config.gz; elif [ -r "$f" ]; then cat "$f"; else echo "no kernel config found"; fi | grep -E "^(# )?CONFIG_(BPF|NET_CLS|NET_SCH_INGRESS|DEBUG_INFO_BTF|NET_ACT_BPF|CGROUP_BPF|XDP)"']),
    command('bpftool-prog.json', ['bpftool', '-j', 'prog', 'show']),
    command('bpftool-map.json', ['bpftool', '-j', 'map', 'show']),
    command('bpftool-net.json', ['bpftool', '-j', 'net', 'show']),
    {file: 'tc-filters.txt', run: async (shell) => {
      const out: string[] = []
      for (const iface of await interfacesWithPinion(shell)) {
        for (const hook of ['ingress', 'egress']) out.push(`== ${iface} ${hook}`, (await shell.run(['tc', 'filter', 'show', 'dev', iface, hook])).stdout.toString())
      }
      return out.join('\n')
    }},
    command('ip-addr.txt', ['ip', 'addr']),
    command('ip-route.txt', ['ip', 'route', 'show', 'table', 'all']),
    command('ip-link.txt', ['ip', '-d', 'link']),
    command('ip-neigh.txt', ['ip', 'neigh']),
    command('ip-rule.txt', ['ip', 'rule']),
    command('iptables.txt', ['iptables-save']),
    command('nftables.txt', ['nft', 'list', 'ruleset']),
    command('sysctl.txt', ['sh', '-c', 'for key; do sysctl "$key" 2>&1; done; true', 'sysctl', ...SYSCTLS]),
    // The kernel log from --since on (util-linux dmesg), at most its last 500 lines.
    command('dmesg.txt', ['sh', '-c', 'if [ -n "$1" ]; then dmesg -T --since "$1"; else dmesg -T; fi 2>/dev/null | tail -n 500', 'dmesg', since ? since.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '') : '']),
    {...command('pinion-state.json', ['cat', NODE_STATE_FILE]), datapath: true},
    ...maps,
    {file: 'events.json', datapath: true, run: async (shell, signal) => {
      // A short window of live events; lost-event notices are kept too.
      const records: unknown[] = []
      const window = AbortSignal.any([signal, AbortSignal.timeout(eventWindowMs)])
      await new BpfTool(shell).eventPipe(mapPinPath(pinRoot, 'pinion_events'), (record) => {
        records.push(record.kind === 'sample' ? decodeEvent(record.data) : {lost: record.count, cpu: record.cpu})
      }, window)
      return JSON.stringify(records, null, 2)
    }},
  ]
}
