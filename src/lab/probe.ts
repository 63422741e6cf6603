/**
 * Connection attempts from inside a pod namespace, for tests, traceflow and
 * connectivity checks. Prints JSON:
 *   node dist/lab/probe.js tcp|udp HOST PORT [TIMEOUT_MS]
 *     -> {"ok":true,"reply":"pinion default/web tcp 80 from …"} or {"ok":false,"error":"timeout"}
 *   node dist/lab/probe.js many TIMEOUT_MS PROTO:HOST:PORT...
 *     -> one result per target, all probed at once
 * UDP uses a connected socket, so only a reply from HOST:PORT counts: that is
 * what proves reverse NAT of a Service reply.
 */
import {createSocket} from 'node:dgram'
import {connect} from 'node:net'

interface Result {
  ok: boolean
  reply?: string
  error?: string
}

function probe(protocol: string, host: string, port: number, timeoutMs: number): Promise<Result> {
  return new Promise((resolve) => {
    let done = false
    const finish = (result: Result) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve(result)
    }
    const timer = setTimeout(() => finish({ok: false, error: 'timeout'}), timeoutMs)
    const failure = (error: NodeJS.ErrnoException) => finish({ok: false, error: error.code === 'ECONNREFUSED' ? 'refused' : (error.code ?? error.message)})
    if (protocol === 'tcp') {
      const socket = connect({host, port})
      let reply = ''
      socket.on('data', (chunk) => (reply += chunk.toString('utf8')))
      socket.on('end', () => finish({ok: true, reply: reply.trim()}))
      socket.on('error', failure)
      const stop = () => socket.destroy()
      setTimeout(stop, timeoutMs + 10).unref()
    } else if (protocol === 'udp') {
      const socket = createSocket('udp4')
      let open = true
      const close = () => {
        if (open) socket.close()
        open = false
      }
      socket.on('message', (message) => {
        finish({ok: true, reply: message.toString('utf8').trim()})
        close()
      })
      socket.on('error', (error) => {
        failure(error)
        close()
      })
      socket.connect(port, host, () => open && socket.send('probe'))
      setTimeout(close, timeoutMs + 10).unref()
    } else {
      finish({ok: false, error: `unknown protocol ${protocol}`})
    }
  })
}

const args = process.argv.slice(2)
if (args[0] === 'many') {
  const timeoutMs = Number(args[1])
  const results = await Promise.all(args.slice(2).map((target) => {
    const [protocol, host, port] = target.split(':')
    return probe(protocol, host, Number(port), timeoutMs)
  }))
  process.stdout.write(JSON.stringify(results) + '\n')
} else {
  const [protocol, host, portText, timeoutText] = args
  process.stdout.write(JSON.stringify(await probe(protocol, host, Number(portText), Number(timeoutText ?? 2000))) + '\n')
}
process.exit(0)
