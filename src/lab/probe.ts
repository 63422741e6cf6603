/**
 * One connection attempt from inside a pod namespace, for tests, traceflow
 * --live and connectivity checks. Prints one JSON line:
 *   {"ok":true,"reply":"pinion default/web tcp 80 from …"} or {"ok":false,"error":"timeout"}
 * Usage: node dist/lab/probe.js tcp|udp HOST PORT [TIMEOUT_MS]
 * UDP uses a connected socket, so only a reply from HOST:PORT counts: that is
 * what proves reverse NAT of a Service reply.
 */
import {createSocket} from 'node:dgram'
import {connect} from 'node:net'

const [protocol, host, portText, timeoutText] = process.argv.slice(2)
const port = Number(portText)
const timeoutMs = Number(timeoutText ?? 2000)

function finish(result: {ok: boolean; reply?: string; error?: string}): never {
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}

setTimeout(() => finish({ok: false, error: 'timeout'}), timeoutMs).unref()

if (protocol === 'tcp') {
  const socket = connect({host, port})
  let reply = ''
  socket.on('data', (chunk) => (reply += chunk.toString('utf8')))
  socket.on('end', () => finish({ok: true, reply: reply.trim()}))
  socket.on('error', (error: NodeJS.ErrnoException) => finish({ok: false, error: error.code === 'ECONNREFUSED' ? 'refused' : (error.code ?? error.message)}))
} else if (protocol === 'udp') {
  const socket = createSocket('udp4')
  socket.on('message', (message) => finish({ok: true, reply: message.toString('utf8').trim()}))
  socket.on('error', (error: NodeJS.ErrnoException) => finish({ok: false, error: error.code === 'ECONNREFUSED' ? 'refused' : (error.code ?? error.message)}))
  socket.connect(port, host, () => socket.send('probe'))
} else {
  finish({ok: false, error: `unknown protocol ${protocol}`})
}
