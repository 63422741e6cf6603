/**
 * Packet test vectors for the kernel matrix: map entries and packets, with
 * the verdict and output bytes the full datapath gives on this machine's
 * kernel. The VM replays them against the object its kernel can load and
 * must give the same answers.
 */
import {execFileSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {BpfTool} from '../../src/datapath/bpftool.js'
import {DIRECTION, makeCookie} from '../../src/datapath/constants.js'
import {endpointEntry, frontendEntries, ipcacheEntry, type MapEntry, policyEntries} from '../../src/datapath/entries.js'
import {buildPacket, TCP_FLAGS} from '../../src/datapath/packet.js'
import {skBuff} from '../../src/datapath/structs.js'
import {LocalShell} from '../../src/nodes/local-shell.js'
import {BPF_OBJECT_PATH} from '../helpers/system.js'

const A = '10.244.1.10'
const B = '10.244.1.20'
const VIP = '10.96.0.10'
const B_INGRESS = makeCookie(9, 0)

export interface VectorCase {
  name: string
  program: 'from_pod' | 'to_pod'
  packet: Buffer
  expectedRet: number
  expectedOut: Buffer
}

/** Every pod sits behind ifindex 1 (lo): the only interface a fresh namespace, and a bare VM, both have. */
function entries(): MapEntry[] {
  return [
    endpointEntry({ip: A, ifindex: 1, endpointId: 1, identity: 1001}),
    endpointEntry({ip: B, ifindex: 1, endpointId: 2, identity: 1002, ingressDenyCookie: B_INGRESS}),
    ipcacheEntry(`${A}/32`, 1001),
    ipcacheEntry(`${B}/32`, 1002),
    ipcacheEntry('10.244.2.0/24', 1003),
    ...frontendEntries({vip: VIP, port: 80, protocol: 'tcp', revNatIndex: 1, backends: [{id: 11, ip: B, port: 8080}]}),
    ...frontendEntries({vip: VIP, port: 53, protocol: 'udp', revNatIndex: 2, backends: [{id: 13, ip: B, port: 5353}]}),
    ...frontendEntries({vip: VIP, port: 0, protocol: 'icmp', revNatIndex: 3, backends: [{id: 14, ip: B, port: 0}]}),
    ...policyEntries({endpointId: 2, direction: DIRECTION.INGRESS, identity: 1001, protocol: 'tcp', ports: {from: 8080, to: 8080}, cookie: makeCookie(9, 1)}),
  ]
}

const CASES: Omit<VectorCase, 'expectedRet' | 'expectedOut'>[] = [
  {name: 'tcp-syn-to-service-dnat', program: 'from_pod', packet: buildPacket({src: A, dst: VIP, protocol: 'tcp', srcPort: 40000, dstPort: 80, tcpFlags: TCP_FLAGS.SYN})},
  {name: 'udp-to-service-dnat', program: 'from_pod', packet: buildPacket({src: A, dst: VIP, protocol: 'udp', srcPort: 40001, dstPort: 53})},
  {name: 'spoofed-source-dropped', program: 'from_pod', packet: buildPacket({src: '10.244.9.9', dst: B, protocol: 'tcp', srcPort: 40002, dstPort: 8080, tcpFlags: TCP_FLAGS.SYN})},
  {name: 'allowed-by-policy', program: 'to_pod', packet: buildPacket({src: A, dst: B, protocol: 'tcp', srcPort: 40003, dstPort: 8080, tcpFlags: TCP_FLAGS.SYN})},
  {name: 'denied-by-isolation', program: 'to_pod', packet: buildPacket({src: '10.244.2.5', dst: B, protocol: 'tcp', srcPort: 40004, dstPort: 8080, tcpFlags: TCP_FLAGS.SYN})},
  {name: 'icmp-to-unisolated-pod', program: 'to_pod', packet: buildPacket({src: B, dst: A, protocol: 'icmp'})},
  // Replies of the two Service flows above: conntrack finds them, reverse NAT restores the VIP.
  {name: 'tcp-reply-reverse-nat', program: 'to_pod', packet: buildPacket({src: B, dst: A, protocol: 'tcp', srcPort: 8080, dstPort: 40000, tcpFlags: TCP_FLAGS.SYN | TCP_FLAGS.ACK})},
  {name: 'udp-reply-reverse-nat', program: 'to_pod', packet: buildPacket({src: B, dst: A, protocol: 'udp', srcPort: 5353, dstPort: 40001})},
  {name: 'icmp-echo-to-service', program: 'from_pod', packet: buildPacket({src: A, dst: VIP, protocol: 'icmp', icmpId: 77})},
  {name: 'arp-passes-untouched', program: 'from_pod', packet: arpRequest()},
]

/** An ARP who-has (not IPv4: the datapath passes it and only counts it). */
function arpRequest(): Buffer {
  const frame = Buffer.alloc(42)
  Buffer.from('ffffffffffff02000000000a0806', 'hex').copy(frame, 0)
  Buffer.from('0001080006040001', 'hex').copy(frame, 14)
  Buffer.from('02000000000a0af4010a000000000000', 'hex').copy(frame, 22)
  Buffer.from('0af40114', 'hex').copy(frame, 38)
  return frame
}

export const CTX = skBuff.encode({ifindex: 1})

/** bpftool batch lines that fill a datapath's maps pinned under mapDir. */
export function batchLines(mapDir: string): string {
  const hex = (bytes: Buffer) => [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join(' ')
  return entries().map((entry) => `map update pinned ${mapDir}/${entry.map} key hex ${hex(entry.key)} value hex ${hex(entry.value)}`).join('\n') + '\n'
}

/** Run the cases through the full object on this kernel, in a private network namespace and bpffs. */
export async function referenceVectors(): Promise<VectorCase[]> {
  const netns = `pinion-t-kvec-${process.pid}`
  const root = mkdtempSync(join(tmpdir(), 'pinion-kvec-'))
  execFileSync('mount', ['-t', 'bpf', 'bpf', root])
  execFileSync('ip', ['netns', 'add', netns])
  try {
    const bpftool = new BpfTool(new LocalShell(netns, ['ip', 'netns', 'exec', netns]))
    await bpftool.loadAll(BPF_OBJECT_PATH, `${root}/progs`, `${root}/maps`)
    execFileSync('bpftool', ['batch', 'file', '-'], {input: batchLines(`${root}/maps`)})
    const out: VectorCase[] = []
    for (const spec of CASES) {
      const run = await bpftool.progRun(`${root}/progs/${spec.program}`, spec.packet, CTX)
      out.push({...spec, expectedRet: run.retval, expectedOut: run.dataOut})
    }
    return out
  } finally {
    execFileSync('ip', ['netns', 'del', netns])
    execFileSync('umount', [root])
    execFileSync('rmdir', [root])
  }
}

/** Write the cases into a directory of the initramfs: N.pkt and the context, replayed by init.sh. */
export function writeVectors(dir: string, cases: readonly VectorCase[], mapDir: string): void {
  mkdirSync(dir, {recursive: true})
  writeFileSync(join(dir, 'batch'), batchLines(mapDir))
  writeFileSync(join(dir, 'ctx'), CTX)
  writeFileSync(join(dir, 'cases'), cases.map((item, index) => `${index} ${item.program} ${item.name}`).join('\n') + '\n')
  cases.forEach((item, index) => writeFileSync(join(dir, `${index}.pkt`), item.packet))
}
