/**
 * The lab's built-in workload: answers on its declared TCP and UDP ports with
 * one line naming the pod and port, so probes and tests can tell who answered.
 * Run inside a pod's network namespace:
 *   node dist/lab/pod-server.js --name ns/pod --tcp 80,8080 --udp 53 --echo 7
 * Prints "ready" once every port is bound.
 */
import {createSocket} from 'node:dgram'
import {createServer} from 'node:net'

function ports(flag: string): number[] {
  const index = process.argv.indexOf(flag)
  if (index === -1) return []
  return process.argv[index + 1].split(',').filter(Boolean).map(Number)
}

const nameIndex = process.argv.indexOf('--name')
const name = nameIndex === -1 ? 'pod' : process.argv[nameIndex + 1]

/** Log lines carry an RFC 3339 timestamp first, so pods/log can filter with sinceSeconds. */
function log(message: string): void {
  process.stdout.write(`${new Date().toISOString()} ${message}\n`)
}

const listening: Promise<void>[] = []
// Echo ports keep a connection open and echo what arrives: long-lived flows for tests.
for (const port of ports('--echo')) {
  const server = createServer((socket) => {
    socket.on('error', () => {})
    log(`echo ${port} connection from ${socket.remoteAddress}:${socket.remotePort}`)
    socket.pipe(socket)
  })
  listening.push(new Promise((resolve) => server.listen(port, '0.0.0.0', () => resolve())))
}
for (const port of ports('--tcp')) {
  const server = createServer((socket) => {
    socket.on('error', () => {})
    log(`tcp ${port} connection from ${socket.remoteAddress}:${socket.remotePort}`)
    socket.end(`pinion ${name} tcp ${port} from ${socket.remoteAddress}:${socket.remotePort}\n`)
  })
  listening.push(new Promise((resolve) => server.listen(port, '0.0.0.0', () => resolve())))
}
for (const port of ports('--udp')) {
  const socket = createSocket('udp4')
  socket.on('message', (_message, peer) => {
    log(`udp ${port} datagram from ${peer.address}:${peer.port}`)
    socket.send(`pinion ${name} udp ${port} from ${peer.address}:${peer.port}\n`, peer.port, peer.address)
  })
  listening.push(new Promise((resolve) => socket.bind(port, '0.0.0.0', () => resolve())))
}
await Promise.all(listening)
log(`${name} serving tcp [${ports('--tcp').join(',')}] udp [${ports('--udp').join(',')}]`)
process.stdout.write('ready\n')
