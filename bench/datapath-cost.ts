/**
 * Per-packet cost of the full pod-egress path (spoof guard, Service lookup and
 * backend choice, conntrack, egress policy) with 100, 10,000 and 60,000
 * Services and 100 to 100,000 policy entries, against an empty tc program (the floor), via
 * BPF_PROG_TEST_RUN with repeat. New flows use the dry-run mark (every run is
 * a first packet); established flows run normally after the first packet.
 */
import {DIRECTION, makeCookie, MARK_DRYRUN, TC_ACT} from '../src/datapath/constants.js'
import {endpointEntry, frontendEntries, ipcacheEntry, type MapEntry, policyEntries} from '../src/datapath/entries.js'
import {buildPacket} from '../src/datapath/packet.js'
import {skBuff} from '../src/datapath/structs.js'
import {backendOf, peakRssMb, printTable, scratchDatapath, timed, vipOf} from './lib.js'

const REPEAT = Number(process.env.REPEAT ?? 200_000)
// [Services, policy entries]: frontends are capped at 65,535 (u16 rev-NAT index, as in Cilium).
const SIZES = (process.env.SIZES ?? '100:100,10000:10000,60000:100000').split(',').map((pair) => pair.split(':').map(Number))
const CLIENT = '10.244.1.10'
const rows: (string | number)[][] = [['services', 'policy rules', 'floor ns/pkt', 'new flow ns/pkt', 'established ns/pkt', 'new / floor', 'established / floor', 'map fill s']]

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
    const packet = buildPacket({src: CLIENT, dst: vipOf(Math.floor(size / 2)), protocol: 'tcp', srcPort: 40000, dstPort: 80})
    const ctx = (mark: number) => skBuff.encode({ifindex: dp.ifindex, mark})
    const floor = await dp.bpftool.progRun(`${dp.root}/floor/floor_pass`, packet, ctx(0), REPEAT)
    const fresh = await dp.bpftool.progRun(`${dp.root}/progs/from_pod`, packet, ctx(MARK_DRYRUN), REPEAT)
    await dp.bpftool.progRun(`${dp.root}/progs/from_pod`, packet, ctx(0), 1) // open the connection
    const established = await dp.bpftool.progRun(`${dp.root}/progs/from_pod`, packet, ctx(0), REPEAT)
    if (fresh.retval !== TC_ACT.OK || established.retval !== TC_ACT.OK) throw new Error(`packet was not forwarded (${fresh.retval}/${established.retval})`)
    rows.push([size.toLocaleString('en'), rules.toLocaleString('en'), floor.durationNs, fresh.durationNs, established.durationNs, (fresh.durationNs / floor.durationNs).toFixed(2), (established.durationNs / floor.durationNs).toFixed(2), (fill.ms / 1000).toFixed(1)])
  } finally {
    dp.destroy()
  }
}
printTable(`Per-packet cost, BPF_PROG_TEST_RUN repeat ${REPEAT.toLocaleString('en')} (peak RSS of this process: ${peakRssMb()} MB)`, rows)
