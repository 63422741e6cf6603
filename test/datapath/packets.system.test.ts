/*
 * Packets through the real programs with BPF_PROG_TEST_RUN.
 *
 *   pod-a 10.244.1.10 (ep 1, id 1001) --.                        .-- pod-b 10.244.1.20 (ep 2, id 1002)
 *                                        >-- node (one netns) --<    ingress: only id 1001 on TCP 8080
 *   remote pod-c 10.244.2.30 (id 1003) -'                        '   egress: isolated, no rules
 *
 *   web   10.96.0.10: TCP 80 -> b:8080, c:8080 | UDP 53 -> b:5353 | ICMP -> b
 *   empty 10.96.0.20: TCP 80 -> (no backends)
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {mapPinPath} from '../../src/datapath/catalogue.js'
import {CT_FLAG, CT_SCOPE, DIRECTION, makeCookie, metricsSlot, TC_ACT} from '../../src/datapath/constants.js'
import {DropReason} from '../../src/datapath/drop-reasons.js'
import {decodeDryRun} from '../../src/datapath/dryrun.js'
import {configEntry, endpointEntry, frontendEntries, ipcacheEntry, policyEntries, policyNameEntry} from '../../src/datapath/entries.js'
import {type DatapathEvent, decodeEvent} from '../../src/datapath/events.js'
import {buildPacket, type PacketSpec, TCP_FLAGS} from '../../src/datapath/packet.js'
import {backendId} from '../../src/datapath/structs.js'
import {nextFlowEpoch, updateConfig} from '../../src/datapath/runtime-config.js'
import {waitFor} from '../../src/lib/wait.js'
import {DatapathFixture} from '../helpers/datapath-fixture.js'

const A = '10.244.1.10'
const B = '10.244.1.20'
const C = '10.244.2.30'
const VIP = '10.96.0.10'
const EMPTY_VIP = '10.96.0.20'
const B_INGRESS = makeCookie(7, 0)
const B_INGRESS_RULE = makeCookie(7, 1)
const B_EGRESS = makeCookie(8, 0)

let dp: DatapathFixture

beforeAll(async () => {
  dp = await DatapathFixture.create('pkt', ['pod-a', 'pod-b'])
  await dp.write([
    endpointEntry({ip: A, ifindex: dp.ifindex('pod-a'), endpointId: 1, identity: 1001}),
    endpointEntry({ip: B, ifindex: dp.ifindex('pod-b'), endpointId: 2, identity: 1002, ingressDenyCookie: B_INGRESS, egressDenyCookie: B_EGRESS}),
    ipcacheEntry(`${A}/32`, 1001),
    ipcacheEntry(`${B}/32`, 1002),
    ipcacheEntry('10.244.2.0/24', 1003),
    ...frontendEntries({vip: VIP, port: 80, protocol: 'tcp', revNatIndex: 1, backends: [{id: 11, ip: B, port: 8080}, {id: 12, ip: C, port: 8080}]}),
    ...frontendEntries({vip: VIP, port: 53, protocol: 'udp', revNatIndex: 2, backends: [{id: 13, ip: B, port: 5353}]}),
    ...frontendEntries({vip: VIP, port: 0, protocol: 'icmp', revNatIndex: 3, backends: [{id: 14, ip: B, port: 0}]}),
    ...frontendEntries({vip: EMPTY_VIP, port: 80, protocol: 'tcp', revNatIndex: 4, backends: []}),
    ...policyEntries({endpointId: 2, direction: DIRECTION.INGRESS, identity: 1001, protocol: 'tcp', ports: {from: 8080, to: 8080}, cookie: B_INGRESS_RULE}),
    policyNameEntry(7, 'default', 'allow-a-to-b'),
    policyNameEntry(8, 'default', 'b-no-egress'),
    configEntry({policyLogDeny: true, policyLogAllow: true}),
  ])
})

afterAll(async () => {
  await dp?.destroy()
})

const fromA = (spec: Partial<PacketSpec>) => buildPacket({src: A, dst: VIP, protocol: 'tcp', dstPort: 80, ...spec})

async function ctEntries() {
  return dp.conntrack()
}

/** Flow cache slots holding a flow with this port (either end), on any CPU. */
async function cachedFlows(port: number) {
  const rows = await dp.dump('pinion_flowcache')
  return rows.flatMap((row) => row.values ?? []).filter((slot) => {
    const key = slot.key as {sport: number; dport: number}
    return key.sport === port || key.dport === port
  })
}

async function metric(reason: number, direction: number): Promise<number> {
  const rows = await dp.dump('pinion_metrics_v2')
  const row = rows.find((candidate) => candidate.key.slot === metricsSlot(reason, direction))
  return (row?.values ?? []).reduce((sum, value) => sum + (value.packets as number), 0)
}

describe('Service load balancing', () => {
  it('DNATs TCP to a ClusterIP to a backend with valid checksums', async () => {
    const out = await dp.run('from_pod', fromA({srcPort: 41000}), {ifindex: 'pod-a'})
    expect(out.retval).toBe(TC_ACT.OK)
    expect([B, C]).toContain(out.packet!.dst)
    expect(out.packet!.dstPort).toBe(8080)
    expect(out.packet!.src).toBe(A)
    expect(out.packet!.ipChecksumValid).toBe(true)
    expect(out.packet!.l4ChecksumValid).toBe(true)
  })

  it('DNATs UDP and ICMP echo with valid checksums', async () => {
    const udp = await dp.run('from_pod', fromA({protocol: 'udp', dstPort: 53, srcPort: 42000}), {ifindex: 'pod-a'})
    expect(udp.packet).toMatchObject({dst: B, dstPort: 5353, ipChecksumValid: true, l4ChecksumValid: true})
    const icmp = await dp.run('from_pod', fromA({protocol: 'icmp', icmpId: 77}), {ifindex: 'pod-a'})
    expect(icmp.retval).toBe(TC_ACT.OK)
    expect(icmp.packet).toMatchObject({dst: B, icmpId: 77, ipChecksumValid: true, l4ChecksumValid: true})
  })

  it('keeps a flow on its backend and spreads new flows over all backends', async () => {
    const first = await dp.run('from_pod', fromA({srcPort: 43000}), {ifindex: 'pod-a'})
    for (let i = 0; i < 8; i++) {
      const again = await dp.run('from_pod', fromA({srcPort: 43000, tcpFlags: TCP_FLAGS.ACK}), {ifindex: 'pod-a'})
      expect(again.packet!.dst).toBe(first.packet!.dst)
    }
    const seen = new Set<string>()
    for (let port = 44000; port < 44040 && seen.size < 2; port++) {
      seen.add((await dp.run('from_pod', fromA({srcPort: port}), {ifindex: 'pod-a'})).packet!.dst)
    }
    expect([...seen].sort()).toEqual([B, C].sort())
  })

  it('reverse-NATs the reply back to the VIP with valid checksums', async () => {
    const request = await dp.run('from_pod', fromA({protocol: 'udp', dstPort: 53, srcPort: 45000}), {ifindex: 'pod-a'})
    expect(request.packet!.dst).toBe(B)
    const reply = buildPacket({src: B, dst: A, protocol: 'udp', srcPort: 5353, dstPort: 45000})
    const out = await dp.run('to_pod', reply, {ifindex: 'pod-a'})
    expect(out.retval).toBe(TC_ACT.OK)
    expect(out.packet).toMatchObject({src: VIP, srcPort: 53, dst: A, dstPort: 45000, ipChecksumValid: true, l4ChecksumValid: true})
  })

  it('counts every packet of a Service flow on its service entry; the egress entry follows SYN and FIN', async () => {
    const port = 46000
    const send = async (tcpFlags: number) => (await dp.run('from_pod', fromA({srcPort: port, tcpFlags}), {ifindex: 'pod-a'})).packet!
    const backend = (await send(0x02)).dst
    for (let i = 0; i < 3; i++) expect((await send(0x10)).dst).toBe(backend)
    await send(0x11) // FIN, ACK
    const rows = await ctEntries()
    const service = rows.find((row) => row.key.scope === CT_SCOPE.SERVICE && row.key.sport === port)!
    const egress = rows.find((row) => row.key.scope === CT_SCOPE.EGRESS && row.key.sport === port && row.key.daddr === backend)!
    expect(service.value!.txPackets).toBe(5)
    expect(service.value!.backendId).toBeGreaterThan(0)
    // Refreshed at least on SYN and FIN, at most on every packet.
    expect(egress.value!.txPackets).toBeGreaterThanOrEqual(2)
    expect(egress.value!.txPackets).toBeLessThanOrEqual(5)
    expect((egress.value!.flags as number) & CT_FLAG.TX_CLOSING).toBe(CT_FLAG.TX_CLOSING)
    expect(egress.value!.revNatIndex).toBe(service.value!.revNatIndex)
  })

  it('serves an established flow from the flow cache: same backend, valid checksums, counted on its entry', async () => {
    const port = 46100
    const backend = (await dp.run('from_pod', fromA({srcPort: port, tcpFlags: TCP_FLAGS.SYN}), {ifindex: 'pod-a'})).packet!.dst
    expect(await cachedFlows(port)).toHaveLength(0) // a SYN never fills the cache
    // Four ACKs back to back in one bpftool process: the first fills the slot, the others are served from it
    // (a cached flow goes through the pipeline again only after 64 jiffies, far more than this takes).
    const acks = await dp.runBurst('from_pod', Array.from({length: 4}, () => fromA({srcPort: port, tcpFlags: TCP_FLAGS.ACK})), {ifindex: 'pod-a'})
    for (const ack of acks) expect(ack.packet).toMatchObject({dst: backend, dstPort: 8080, ipChecksumValid: true, l4ChecksumValid: true})
    const [slot] = await cachedFlows(port)
    expect(slot).toMatchObject({xlate: 1, xlateAddr: backend, xlatePort: 8080})
    expect(slot.packets).toBeGreaterThan(0) // counted in the slot, not yet on the entry
    const service = (await ctEntries()).find((row) => row.key.scope === CT_SCOPE.SERVICE && row.key.sport === port)!
    expect(service.value!.txPackets).toBe(5) // exact: conntrack readers add what is pending in the slot
  })

  it('a cached flow keeps the spoof guard: its packets on another interface are dropped', async () => {
    const port = 46200
    await dp.run('from_pod', fromA({srcPort: port, tcpFlags: TCP_FLAGS.SYN}), {ifindex: 'pod-a'})
    await dp.run('from_pod', fromA({srcPort: port, tcpFlags: TCP_FLAGS.ACK}), {ifindex: 'pod-a'})
    expect(await cachedFlows(port)).toHaveLength(1)
    const spoofed = await dp.run('from_pod', fromA({srcPort: port, tcpFlags: TCP_FLAGS.ACK}), {ifindex: 'pod-b'})
    expect(spoofed.retval).toBe(TC_ACT.SHOT)
  })

  it('a new flow epoch sends cached flows through the full pipeline: a removed backend is replaced', async () => {
    const port = 46300
    const send = async (tcpFlags: number) => (await dp.run('from_pod', fromA({srcPort: port, tcpFlags}), {ifindex: 'pod-a'})).packet!
    const first = (await send(TCP_FLAGS.SYN)).dst
    await send(TCP_FLAGS.ACK)
    expect(await cachedFlows(port)).toHaveLength(1)
    // What sync writes when the first backend leaves the Service.
    const web = {vip: VIP, port: 80, protocol: 'tcp' as const, revNatIndex: 1}
    const all = [{id: 11, ip: B, port: 8080}, {id: 12, ip: C, port: 8080}]
    const gone = all.find((backend) => backend.ip === first)!
    const backends = mapPinPath(dp.pinRoot, 'pinion_backends')
    await dp.write(frontendEntries({...web, backends: all.filter((backend) => backend !== gone)}))
    await dp.bpftool.batch(backends, [], [backendId.encode({id: gone.id})])
    try {
      await updateConfig(dp.bpftool, dp.pinRoot, nextFlowEpoch)
      expect((await send(TCP_FLAGS.ACK)).dst).toBe(first === B ? C : B)
    } finally {
      await dp.write(frontendEntries({...web, backends: all}))
      await updateConfig(dp.bpftool, dp.pinRoot, nextFlowEpoch)
    }
  })

  it('reverse-NATs every reply of a flow, cached or not, and counts each on the entry', async () => {
    const request = await dp.run('from_pod', fromA({protocol: 'udp', dstPort: 53, srcPort: 45100}), {ifindex: 'pod-a'})
    expect(request.packet!.dst).toBe(B)
    const reply = buildPacket({src: B, dst: A, protocol: 'udp', srcPort: 5353, dstPort: 45100})
    for (let i = 0; i < 4; i++) {
      const out = await dp.run('to_pod', reply, {ifindex: 'pod-a'})
      expect(out.packet).toMatchObject({src: VIP, srcPort: 53, dst: A, dstPort: 45100, ipChecksumValid: true, l4ChecksumValid: true})
    }
    expect(await cachedFlows(45100)).toEqual([expect.objectContaining({xlate: 2, xlateAddr: VIP, xlatePort: 53, reply: 1})])
    const egress = (await ctEntries()).find((row) => row.key.scope === CT_SCOPE.EGRESS && row.key.sport === 45100 && row.key.daddr === B)!
    expect(egress.value!.rxPackets).toBe(4)
  })

  it('drops traffic to a Service without backends with its own reason', async () => {
    const before = await metric(DropReason.NO_SERVICE_BACKEND, DIRECTION.EGRESS)
    const out = await dp.run('from_pod', buildPacket({src: A, dst: EMPTY_VIP, protocol: 'tcp', dstPort: 80}), {ifindex: 'pod-a'})
    expect(out.retval).toBe(TC_ACT.SHOT)
    expect(await metric(DropReason.NO_SERVICE_BACKEND, DIRECTION.EGRESS)).toBe(before + 1)
    const dry = decodeDryRun((await dp.run('from_pod', buildPacket({src: A, dst: EMPTY_VIP, protocol: 'tcp', dstPort: 80}), {ifindex: 'pod-a', dryRun: true})).cb)
    expect(dry).toMatchObject({verdict: 'dropped', dropReason: 'NO_SERVICE_BACKEND', loadBalanced: true})
  })
})

describe('NetworkPolicy', () => {
  async function collectEvents(action: () => Promise<unknown>, until: (events: DatapathEvent[]) => boolean): Promise<DatapathEvent[]> {
    const events: DatapathEvent[] = []
    const stop = new AbortController()
    const pipe = dp.bpftool.eventPipe(mapPinPath(dp.pinRoot, 'pinion_events'), (record) => {
      if (record.kind === 'sample') events.push(decodeEvent(record.data))
    }, stop.signal)
    try {
      await waitFor('the event reader to attach', () => dp.bpftool.eventReaderAttached(mapPinPath(dp.pinRoot, 'pinion_events')))
      await action()
      await waitFor('the expected events', () => until(events))
    } finally {
      stop.abort()
      await pipe
    }
    return events
  }

  it('drops a disallowed packet with reason "policy denied" and a verdict event naming the policy', async () => {
    const before = await metric(DropReason.POLICY_DENIED, DIRECTION.INGRESS)
    let retval = -1
    const events = await collectEvents(async () => {
      retval = (await dp.run('to_pod', buildPacket({src: C, dst: B, protocol: 'tcp', srcPort: 46000, dstPort: 8080}), {ifindex: 'pod-b'})).retval
    }, (seen) => seen.some((event) => event.type === 'drop'))
    expect(retval).toBe(TC_ACT.SHOT)
    expect(await metric(DropReason.POLICY_DENIED, DIRECTION.INGRESS)).toBe(before + 1)
    const verdict = events.find((event) => event.type === 'policy')!
    expect(verdict).toMatchObject({verdict: 'deny', policyCookie: B_INGRESS, srcIdentity: 1003, dstIdentity: 1002})
    expect(verdict.flow).toMatchObject({src: C, dst: B, dstPort: 8080, protocol: 'TCP', direction: 'ingress'})
    const names = await dp.dump('pinion_polnames')
    expect(names.find((row) => row.key.id === verdict.policyCookie >>> 8)?.value).toEqual({namespace: 'default', name: 'allow-a-to-b'})
    expect(events.find((event) => event.type === 'drop')).toMatchObject({dropReason: 'POLICY_DENIED', policyCookie: B_INGRESS})
  })

  it('allows what a rule names, and the reply of an allowed connection passes an isolated pod', async () => {
    const syn = await dp.run('to_pod', buildPacket({src: A, dst: B, protocol: 'tcp', srcPort: 47000, dstPort: 8080}), {ifindex: 'pod-b'})
    expect(syn.retval).toBe(TC_ACT.OK)
    // pod-b is egress-isolated with no rules: only conntrack lets its reply out.
    const reply = await dp.run('from_pod', buildPacket({src: B, dst: A, protocol: 'tcp', srcPort: 8080, dstPort: 47000, tcpFlags: TCP_FLAGS.SYN | TCP_FLAGS.ACK}), {ifindex: 'pod-b'})
    expect(reply.retval).toBe(TC_ACT.OK)
    const fresh = await dp.run('from_pod', buildPacket({src: B, dst: A, protocol: 'tcp', srcPort: 48000, dstPort: 9999}), {ifindex: 'pod-b'})
    expect(fresh.retval).toBe(TC_ACT.SHOT)
    const wrongPort = await dp.run('to_pod', buildPacket({src: A, dst: B, protocol: 'tcp', srcPort: 47001, dstPort: 8081}), {ifindex: 'pod-b'})
    expect(wrongPort.retval).toBe(TC_ACT.SHOT)
  })
})

describe('robustness', () => {
  it('drops and counts malformed and truncated packets without crashing', async () => {
    const before = await metric(DropReason.MALFORMED_PACKET, DIRECTION.EGRESS)
    const good = fromA({srcPort: 49000})
    const badIhl = Buffer.from(good)
    badIhl[14] = 0x43 // IHL 3 words
    // BPF_PROG_TEST_RUN refuses frames shorter than Ethernet + IPv4 headers, so the
    // shortest cases cut the TCP header or lie about the lengths instead.
    const shortTotal = Buffer.from(good)
    shortTotal.writeUInt16BE(500, 16) // IPv4 total length beyond the frame
    const cases = [good.subarray(0, 36), good.subarray(0, 44), badIhl, shortTotal]
    for (const frame of cases) {
      const out = await dp.run('from_pod', frame, {ifindex: 'pod-a'})
      expect(out.retval).toBe(TC_ACT.SHOT)
    }
    expect(await metric(DropReason.MALFORMED_PACKET, DIRECTION.EGRESS)).toBe(before + cases.length)
  })

  it('passes non-IPv4 frames (ARP) untouched', async () => {
    const arp = Buffer.alloc(42)
    arp.writeUInt16BE(0x0806, 12)
    expect((await dp.run('from_pod', arp, {ifindex: 'pod-a'})).retval).toBe(TC_ACT.OK)
  })

  it('drops a spoofed source address', async () => {
    const out = await dp.run('from_pod', buildPacket({src: B, dst: A, protocol: 'tcp'}), {ifindex: 'pod-a'})
    expect(out.retval).toBe(TC_ACT.SHOT)
    expect(decodeDryRun((await dp.run('from_pod', buildPacket({src: B, dst: A, protocol: 'tcp'}), {ifindex: 'pod-a', dryRun: true})).cb).dropReason).toBe('SPOOFED_SOURCE')
  })

  it('a dry run reports the verdict and leaves no conntrack or counter trace', async () => {
    const ctBefore = await ctEntries()
    const forwardedBefore = await metric(DropReason.FORWARDED, DIRECTION.EGRESS)
    const out = await dp.run('from_pod', fromA({srcPort: 50000}), {ifindex: 'pod-a', dryRun: true})
    const result = decodeDryRun(out.cb)
    expect(result).toMatchObject({verdict: 'forwarded', loadBalanced: true, ctState: 'new', origDst: VIP})
    expect([11, 12]).toContain(result.backendId)
    expect(await ctEntries()).toEqual(ctBefore)
    expect(await metric(DropReason.FORWARDED, DIRECTION.EGRESS)).toBe(forwardedBefore)
  })

  it('records egress, ingress and service-affinity conntrack scopes', async () => {
    const scopes = new Set((await ctEntries()).map((row) => row.key.scope))
    expect(scopes).toEqual(new Set([CT_SCOPE.EGRESS, CT_SCOPE.INGRESS, CT_SCOPE.SERVICE]))
  })
})
