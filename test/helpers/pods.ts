import {type ChildProcess, spawn} from 'node:child_process'
import {sh} from '../../src/lab/netns.js'
import {REPO_ROOT} from './system.js'

/** Start the lab's pod server in a namespace; resolves once it printed "ready". */
export function startPodServer(netns: string, name: string, ports: {tcp?: number[]; udp?: number[]}): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, `${REPO_ROOT}dist/lab/pod-server.js`, '--name', name, '--tcp', (ports.tcp ?? []).join(','), '--udp', (ports.udp ?? []).join(',')], {stdio: ['ignore', 'pipe', 'inherit']})
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve(child)
    })
    child.on('exit', (code) => reject(new Error(`pod server in ${netns} exited ${code} before it was ready`)))
  })
}

export interface ProbeResult {
  ok: boolean
  reply?: string
  error?: string
}

export async function probe(netns: string, protocol: 'tcp' | 'udp', host: string, port: number, timeoutMs = 1500): Promise<ProbeResult> {
  const out = await sh(['ip', 'netns', 'exec', netns, process.execPath, `${REPO_ROOT}dist/lab/probe.js`, protocol, host, String(port), String(timeoutMs)])
  return JSON.parse(out) as ProbeResult
}

export async function ping(netns: string, host: string): Promise<boolean> {
  try {
    await sh(['ip', 'netns', 'exec', netns, 'ping', '-c', '1', '-W', '1', host])
    return true
  } catch {
    return false
  }
}
