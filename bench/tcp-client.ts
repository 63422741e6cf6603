/**
 * Sequential TCP connections to HOST:PORT for COUNT connections; prints JSON
 * with the connection rate and connect-time percentiles (the SYN to SYN-ACK
 * round trip, i.e. the first packet's path through the Service rules).
 * Usage (inside a client namespace): node --import tsx bench/tcp-client.ts HOST PORT COUNT
 */
import {connect} from 'node:net'

const [host, portText, countText] = process.argv.slice(2)
const port = Number(portText)
const count = Number(countText)

function once(): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const socket = connect({host, port})
    socket.setTimeout(3000, () => socket.destroy(new Error('timeout')))
    socket.once('connect', () => {
      const micros = Number(process.hrtime.bigint() - started) / 1000
      socket.on('data', () => {})
      socket.on('end', () => resolve(micros))
      socket.on('close', () => resolve(micros))
    })
    socket.once('error', reject)
  })
}

const latencies: number[] = []
let failures = 0
const started = Date.now()
for (let i = 0; i < count; i++) {
  try {
    latencies.push(await once())
  } catch {
    failures++
  }
}
const seconds = (Date.now() - started) / 1000
latencies.sort((a, b) => a - b)
const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]
process.stdout.write(JSON.stringify({connections: latencies.length, failures, perSecond: Math.round(latencies.length / seconds), p50us: Math.round(at(50)), p99us: Math.round(at(99))}) + '\n')
