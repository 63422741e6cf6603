/**
 * Per-packet cost of the full pod-egress path (spoof guard, Service lookup and
 * backend choice, conntrack, egress policy) with 100 to 100,000 Services and
 * 100 to 100,000 policy entries, against an empty tc program (the floor), via
 * BPF_PROG_TEST_RUN with repeat.
 *
 * Test runs repeat one skb, and DNAT rewrites it; the *_restored programs of
 * bpf/bench.bpf.c put the headers back after each run and `restore_only`
 * measures that bookkeeping, which is taken out of the figures. New flows use
 * the dry-run mark (every run is a first packet, nothing is recorded);
 * established ones (ACK) run after the connection's SYN and are flow cache
 * hits after the first run; "full pipeline" makes the flow's slot stale before
 * each run (from_pod_uncached, bookkeeping priced by expire_only). A pod-to-pod
 * flow (no Service, nothing rewritten) runs the real program directly.
 */
import {DIRECTION, makeCookie, MARK_DRYRUN, TC_ACT} from '../src/datapath/constants.js'
import {endpointEntry, frontendEntries, ipcacheEntry, type MapEntry, policyEntries} from '../src/datapath/entries.js'
import {buildPacket, TCP_FLAGS} from '../src/datapath/packet.js'
import {skBuff} from '../src/datapath/structs.js'
import {backendOf, peakRssMb, printTable, scratchDatapath, timed, vipOf} from './lib.js'

const REPEAT = Number(process.env.REPEAT ?? 1_000_000)
// [Services, policy entries]
const SIZES = (process.env.SIZES ?? '100:100,10000:10000,100000:100000').split(',').map((pair) => pair.split(':').map(Number))
const CLIENT = '10.244.1.10'
const SERVER = '10.244.2.20'
const opRows: (string | number)[][] = [['operation', 'ns', 'x floor']]
const rows: (string | number)[][] = [['services', 'policy rules', 'floor', 'new flow', 'via Service', 'via Service, full pipeline', 'pod-to-pod', 'new / floor', 'Service / floor', 'full pipeline / floor', 'pod-to-pod / floor', 'map fill s']]

for (const [size, rules] of SIZES) {
  const dp = await scratchDatapath(String(size))
  try {
    const entries: MapEntry[] = [
      endpointEntry({ip: CLIENT, ifindex: dp.ifindex, endpointId: 1, identity: 1000, egressDenyCookie: makeCookie(1, 0)}),
      ipcacheEntry('10.244.0.0/16', 2000),
    ]
    for (let i = 0; i < size; i++) entries.push(...frontendEntries({vip: vipOf(i), port: 80, protocol: 'tcp', revNatIndex: i + 1, backends: [{id: i + 1, ip: backendOf(i), port: 8080}]}))
    for (let i = 0; i < rules; i++) entries.push(...policyEntries({endpointId: 1, direction: DIRECTION.EGRESS, identity: 3000 + i, protocol: 'tcp', ports: {from: 8080, to: 8080}, cookie: makeCookie(1, 1)}))
    entries.push(...policyEntries({endpointId: 1, direction: DIRECTION.EGRESS, identity: 2000, protocol: 'tcp', ports: {from: 8080, to: 8080}, cookie: makeCookie(1, 2)}))
    const fill = await timed(() => dp.write(entries))
    // Two payload bytes: bench.bpf.c saves and restores 56 header bytes.
    const payload = Buffer.from('hi')
    const opening = {src: CLIENT, protocol: 'tcp' as const, srcPort: 40000, payload, tcpFlags: TCP_FLAGS.SYN}
    const viaService = buildPacket({...opening, dst: vipOf(Math.floor(size / 2)), dstPort: 80})
    const podToPod = buildPacket({...opening, dst: SERVER, srcPort: 40001, dstPort: 8080})
    // Established packets carry ACK: SYN, FIN and RST always take the full pipeline.
    const viaServiceAck = buildPacket({...opening, dst: vipOf(Math.floor(size / 2)), dstPort: 80, tcpFlags: TCP_FLAGS.ACK})
    const podToPodAck = buildPacket({...opening, dst: SERVER, srcPort: 40001, dstPort: 8080, tcpFlags: TCP_FLAGS.ACK})
    const ctx = (mark: number) => skBuff.encode({ifindex: dp.ifindex, mark})
    const run = async (program: string, packet: Buffer, mark: number, repeat = REPEAT) => {
      const result = await dp.bpftool.progRun(`${dp.root}/${program}`, packet, ctx(mark), repeat)
      if (result.retval !== TC_ACT.OK) throw new Error(`${program}: packet was not forwarded (verdict ${result.retval})`)
      return result.durationNs
    }
    const floor = await run('bench/floor_pass', viaService, 0)
    const restore = await run('bench/restore_only', viaService, 0)
    const fresh = (await run('bench/from_pod_restored', viaService, MARK_DRYRUN)) - restore + floor
    await run('progs/from_pod', viaService, 0, 1) // open the connections
    await run('progs/from_pod', podToPod, 0, 1)
    // The first run of each fills the flow cache; the rest are cache hits.
    const established = (await run('bench/from_pod_restored', viaServiceAck, 0)) - restore + floor
    const uncached = (await run('bench/from_pod_uncached', viaServiceAck, 0)) - (await run('bench/expire_only', viaServiceAck, 0)) + floor
    const direct = await run('progs/from_pod', podToPodAck, 0)
    if (opRows.length === 1) {
      // What the parts cost on this machine: each op program minus what it shares with another.
      const parse = await run('bench/op_parse', podToPod, 0)
      const ops: [string, number][] = [
        ['header parse (direct packet access)', parse - floor],
        ['conntrack lookup (LRU hash, hit)', (await run('bench/op_ct_lookup', podToPod, 0)) - parse],
        ['ipcache lookup (LPM trie)', (await run('bench/op_ipcache_lookup', podToPod, 0)) - parse],
        ['L4 checksum helper (bpf_l4_csum_replace)', (await run('bench/op_l4_csum', podToPod, 0)) - parse],
        ['CLOCK_BOOTTIME read (bpf_ktime_get_boot_ns)', (await run('bench/op_boot_clock', podToPod, 0)) - floor],
      ]
      for (const [name, ns] of ops) opRows.push([name, ns, (ns / floor).toFixed(2)])
    }
    rows.push([size.toLocaleString('en'), rules.toLocaleString('en'), floor, fresh, established, uncached, direct, ...[fresh, established, uncached, direct].map((ns) => (ns / floor).toFixed(2)), (fill.ms / 1000).toFixed(1)])
  } finally {
    dp.destroy()
  }
}
printTable(`Cost of single operations in ns (floor ${rows[1]?.[2]} ns), same method`, opRows)
printTable(`Per-packet cost in ns, BPF_PROG_TEST_RUN repeat ${REPEAT.toLocaleString('en')} (peak RSS of this process: ${peakRssMb()} MB)`, rows)
