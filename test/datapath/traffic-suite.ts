/*
 * Real traffic through the attached programs (a suite: traffic.system.test.ts and
 * traffic-compat.system.test.ts run it for each datapath object).
 *
 *   [pod-a netns] eth0 10.244.1.10 <-veth-> hA  [node netns]  hB <-veth-> eth0 10.244.1.20 [pod-b netns]
 *                                            from_pod on tc ingress, to_pod on tc egress of hA and hB
 *   Service web 10.96.0.10: TCP 80 -> pod-b:8080, UDP 53 -> pod-b:5353, ICMP -> pod-b
 */
import type {ChildProcess} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {attachedPrograms, attachPrograms} from '../../src/datapath/attach.js'
import {DIRECTION, makeCookie} from '../../src/datapath/constants.js'
import {endpointEntry, frontendEntries, ipcacheEntry, policyEntries} from '../../src/datapath/entries.js'
import {addNetns, addPodInterface, delNetns, setSysctl, sh} from '../../src/lab/netns.js'
import {DatapathFixture} from '../helpers/datapath-fixture.js'
import {requireSystem} from '../helpers/system.js'
import {ping, probe, startPodServer} from '../helpers/pods.js'

const A = '10.244.1.10'
const B = '10.244.1.20'
const VIP = '10.96.0.10'

/** The suite, for one compiled object (the kernel-6.2 datapath, or the compat one for older kernels). */
export function trafficSuite(object: string, tag: string): void {
  let dp: DatapathFixture
  let podA: string
  let podB: string
  let server: ChildProcess | undefined
  let ifB = 0

  beforeAll(async () => {
    dp = await DatapathFixture.create(tag, [], object)
    podA = `${dp.netns}-a`
    podB = `${dp.netns}-b`
    await addNetns(podA)
    await addNetns(podB)
    await setSysctl(dp.netns, 'net.ipv4.ip_forward', '1')
    await sh(['ip', '-n', dp.netns, 'addr', 'add', '10.244.1.1/32', 'dev', 'lo'])
    const a = await addPodInterface({nodeNetns: dp.netns, podNetns: podA, hostIf: 'hA', podIp: A})
    const b = await addPodInterface({nodeNetns: dp.netns, podNetns: podB, hostIf: 'hB', podIp: B})
    ifB = b.ifindex
    await dp.write([
      endpointEntry({ip: A, ifindex: a.ifindex, endpointId: 1, identity: 1001}),
      endpointEntry({ip: B, ifindex: b.ifindex, endpointId: 2, identity: 1002}),
      ipcacheEntry(`${A}/32`, 1001),
      ipcacheEntry(`${B}/32`, 1002),
      ipcacheEntry('10.244.1.1/32', 1),
      ...frontendEntries({vip: VIP, port: 80, protocol: 'tcp', revNatIndex: 1, backends: [{id: 1, ip: B, port: 8080}]}),
      ...frontendEntries({vip: VIP, port: 53, protocol: 'udp', revNatIndex: 2, backends: [{id: 2, ip: B, port: 5353}]}),
      ...frontendEntries({vip: VIP, port: 0, protocol: 'icmp', revNatIndex: 3, backends: [{id: 3, ip: B, port: 0}]}),
    ])
    await attachPrograms(dp.shell, ['hA', 'hB'], `${dp.pinRoot}/progs`)
    server = await startPodServer(podB, 'default/pod-b', {tcp: [8080], udp: [5353]})
  })

  afterAll(async () => {
    server?.kill('SIGKILL')
    if (podA) await delNetns(podA)
    if (podB) await delNetns(podB)
    await dp?.destroy()
  })

  describe(`real traffic through the programs (${object.split('/').pop()})`, () => {
    it('attaches from_pod on ingress and to_pod on egress', async () => {
      expect(await attachedPrograms(dp.shell, 'hA')).toEqual({ingress: 'from_pod', egress: 'to_pod'})
    })

    it('pod to pod: ping and TCP', async () => {
      expect(await ping(podA, B)).toBe(true)
      const reply = await probe(podA, 'tcp', B, 8080)
      expect(reply.reply).toMatch(new RegExp(`^pinion default/pod-b tcp 8080 from ${A}:`))
    })

    it('pod to ClusterIP: TCP and UDP reach the backend, replies come from the VIP, ping works', async () => {
      expect((await probe(podA, 'tcp', VIP, 80)).reply).toMatch(new RegExp(`^pinion default/pod-b tcp 8080 from ${A}:`))
      // A connected UDP socket only accepts a reply from VIP:53: reverse NAT at work.
      expect((await probe(podA, 'udp', VIP, 53)).reply).toMatch(/^pinion default\/pod-b udp 5353/)
      expect(await ping(podA, VIP)).toBe(true)
      const ct = await dp.dump('pinion_ct4_v2')
      expect(ct.some((row) => row.key.daddr === B && row.key.dport === 8080 && row.value!.revNatIndex === 1)).toBe(true)
    })

    it('DNAT and reverse NAT leave checksums a pod verifies when the node finishes them in software', async () => {
      requireSystem(['ethtool'])
      // Packets from a pod carry CHECKSUM_PARTIAL (a pseudo-header sum the device
      // completes later); veths never check it. Without transmit offload on the
      // node side the kernel completes it before delivery, and the pod checks it.
      for (const link of ['hA', 'hB']) await sh(['ip', 'netns', 'exec', dp.netns, 'ethtool', '-K', link, 'tx', 'off'])
      try {
        expect((await probe(podA, 'tcp', VIP, 80)).reply).toMatch(new RegExp(`^pinion default/pod-b tcp 8080 from ${A}:`))
        expect((await probe(podA, 'udp', VIP, 53)).reply).toMatch(/^pinion default\/pod-b udp 5353/)
      } finally {
        for (const link of ['hA', 'hB']) await sh(['ip', 'netns', 'exec', dp.netns, 'ethtool', '-K', link, 'tx', 'on'])
      }
    })

    it('isolation drops new connections; an allow rule lets through only what it names', async () => {
      await dp.write([endpointEntry({ip: B, ifindex: ifB, endpointId: 2, identity: 1002, ingressDenyCookie: makeCookie(1, 0)})])
      expect((await probe(podA, 'tcp', B, 8080)).error).toBe('timeout')
      expect(await ping(podA, B)).toBe(false)
      await dp.write(policyEntries({endpointId: 2, direction: DIRECTION.INGRESS, identity: 1001, protocol: 'tcp', ports: {from: 8080, to: 8080}, cookie: makeCookie(1, 1)}))
      expect((await probe(podA, 'tcp', B, 8080)).ok).toBe(true)
      expect((await probe(podA, 'tcp', VIP, 80)).ok).toBe(true)
      expect((await probe(podA, 'udp', VIP, 53)).error).toBe('timeout')
      expect(await ping(podA, B)).toBe(false)
    })
  })
}
