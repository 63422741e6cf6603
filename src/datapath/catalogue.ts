import type {Struct} from './codec.js'
import * as S from './structs.js'
import {FLOW_CACHE_SLOTS, METRICS_SLOTS, REV_NAT_MAX} from './constants.js'

/** Bump with PINION_ABI_VERSION in bpf/include/pinion_abi.h. */
export const DATAPATH_ABI_VERSION = 1

export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/pinion'

/** Where Pinion keeps its files on a node (objects, the native map tool, install record). */
export const NODE_STATE_DIR = '/var/lib/pinion'

/** Where compiled objects live inside the package. */
export const BPF_OBJECT = 'pinion.bpf.o'
/** The same datapath built without kfuncs, for kernels before 6.2. */
export const COMPAT_OBJECT = 'pinion-compat.bpf.o'

export interface ProgramSpec {
  name: string
  object: string
  /** tc hook on the host side of the pod's veth. */
  hook: 'ingress' | 'egress'
  description: string
}

export const PROGRAMS: readonly ProgramSpec[] = [
  {name: 'from_pod', object: BPF_OBJECT, hook: 'ingress', description: 'Packets leaving the pod: spoof guard, Service DNAT, conntrack, egress policy'},
  {name: 'to_pod', object: BPF_OBJECT, hook: 'egress', description: 'Packets entering the pod: conntrack, reverse NAT, ingress policy'},
]

export type MapType = 'hash' | 'lru_hash' | 'lpm_trie' | 'array' | 'percpu_hash' | 'percpu_array' | 'perf_event_array'

/** The kernel's enum bpf_map_type of each. */
export const KERNEL_MAP_TYPE: Record<MapType, number> = {hash: 1, array: 2, perf_event_array: 4, percpu_hash: 5, percpu_array: 6, lru_hash: 9, lpm_trie: 11}

/** BPF_F_NO_PREALLOC: entries are allocated as they are added (the object's hashes and tries). */
export const BPF_F_NO_PREALLOC = 1

export interface MapSpec {
  name: string
  type: MapType
  key: Struct
  value?: Struct
  /** The object's size; resizable maps may be created larger (or smaller) at install. */
  maxEntries?: number
  /** map_flags as the object declares them. */
  flags: number
  /** Sized at install from the plan (with headroom) or --map-size; the others are fixed by the datapath's code. */
  resizable?: true
  description: string
}

export const MAPS: readonly MapSpec[] = [
  {name: 'pinion_endpoint', type: 'hash', key: S.endpointKey, value: S.endpointInfo, maxEntries: 65536, flags: BPF_F_NO_PREALLOC, description: 'Local pods: IP -> interface, endpoint id, identity, isolation'},
  {name: 'pinion_services_v2', type: 'hash', key: S.lb4Key, value: S.lb4Service, maxEntries: 1048576, flags: BPF_F_NO_PREALLOC, resizable: true, description: 'Service frontends (slot 0) and their backend slots'},
  {name: 'pinion_backends', type: 'hash', key: S.backendId, value: S.lb4Backend, maxEntries: 262144, flags: BPF_F_NO_PREALLOC, resizable: true, description: 'Backend id -> address, port, protocol, state'},
  {name: 'pinion_revnat_v2', type: 'hash', key: S.revNatIndex, value: S.lb4ReverseNat, maxEntries: REV_NAT_MAX + 1, flags: BPF_F_NO_PREALLOC, description: 'Reverse-NAT index -> frontend VIP and port'},
  {name: 'pinion_ct4_v2', type: 'lru_hash', key: S.ct4Key, value: S.ctEntry, maxEntries: 524288, flags: 0, resizable: true, description: 'Connection tracking (egress, ingress and Service-affinity entries)'},
  {name: 'pinion_policy', type: 'lpm_trie', key: S.policyKey, value: S.policyEntry, maxEntries: 262144, flags: BPF_F_NO_PREALLOC, resizable: true, description: 'NetworkPolicy rules per endpoint and direction'},
  {name: 'pinion_polnames', type: 'hash', key: S.policyId, value: S.policyName, maxEntries: 16384, flags: BPF_F_NO_PREALLOC, resizable: true, description: 'Policy id (cookie >> 8) -> namespace/name'},
  {name: 'pinion_ipcache', type: 'lpm_trie', key: S.ipcacheKey, value: S.ipcacheEntry, maxEntries: 512000, flags: BPF_F_NO_PREALLOC, resizable: true, description: 'CIDR -> security identity'},
  {name: 'pinion_metrics_v2', type: 'percpu_array', key: S.metricsSlot, value: S.metricsValue, maxEntries: METRICS_SLOTS, flags: 0, description: 'Per-CPU packet/byte counters by reason and direction'},
  {name: 'pinion_config', type: 'array', key: S.configIndex, value: S.pinionConfig, maxEntries: 1, flags: 0, description: 'Runtime settings: conntrack lifetimes, logging, tracing'},
  {name: 'pinion_clock', type: 'percpu_array', key: S.configIndex, value: S.clockCache, maxEntries: 1, flags: 0, description: 'Per-CPU cache of the current boot-time second (internal)'},
  {name: 'pinion_flowcache', type: 'percpu_array', key: S.flowCacheIndex, value: S.flowSlot, maxEntries: FLOW_CACHE_SLOTS, flags: 0, description: 'Per-CPU cache of established flows in front of conntrack and Services (internal)'},
  {name: 'pinion_events', type: 'perf_event_array', key: S.configIndex, flags: 0, description: 'Drop, policy-verdict and trace events to userspace'},
]

/** Short name of a map: without the pinion_ prefix and a layout version suffix (_v2). */
export function shortMapName(name: string): string {
  return name.replace(/^pinion_/, '').replace(/_v\d+$/, '')
}

export function mapSpec(name: string): MapSpec | undefined {
  return MAPS.find((map) => map.name === name || shortMapName(map.name) === name)
}

export function mapPinPath(root: string, name: string): string {
  return `${root}/maps/${name}`
}

export function programPinPath(root: string, name: string): string {
  return `${root}/progs/${name}`
}
