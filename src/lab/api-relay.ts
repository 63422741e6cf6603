/**
 * The lab API server as each node sees it: started in a node's network
 * namespace, it accepts on 127.0.0.1:PORT there and relays every connection
 * to the API server's Unix socket (which crosses network namespaces), so
 * hostNetwork pods reach the API while it still listens on the host's
 * loopback only.
 *   node dist/lab/api-relay.js --port 6443 --socket /run/pinion/lab/NAME/api.sock
 */
import {connect, createServer} from 'node:net'

const argument = (name: string) => process.argv[process.argv.indexOf(name) + 1]
const port = Number(argument('--port'))
const socket = argument('--socket')

const server = createServer((client) => {
  const upstream = connect(socket)
  client.pipe(upstream).pipe(client)
  const close = () => {
    client.destroy()
    upstream.destroy()
  }
  client.on('error', close)
  upstream.on('error', close)
  client.on('close', close)
  upstream.on('close', close)
})
server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'))
process.on('SIGTERM', () => process.exit(0))
