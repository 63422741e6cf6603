import {chmodSync, rmSync} from 'node:fs'
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {errorMessage} from '../lib/errors.js'
import {type Agent, AgentError, type CniRequest} from './agent.js'

function reply(res: ServerResponse, code: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(code, {'Content-Type': type, 'Content-Length': Buffer.byteLength(text)})
  res.end(text)
}

async function readJson(req: IncomingMessage): Promise<CniRequest> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > 64 * 1024) throw new AgentError('request too large', 400)
    chunks.push(chunk as Buffer)
  }
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as CniRequest
    if (typeof body.namespace !== 'string' || typeof body.name !== 'string') throw new Error('namespace and name are required')
    return body
  } catch (error) {
    throw new AgentError(`bad request: ${errorMessage(error)}`, 400)
  }
}

/**
 * The agent's HTTP endpoints. On the metrics port (every address of the
 * node): /metrics, /healthz, /readyz, /status. On the local socket (root
 * only) the same, plus what changes the node: /sync and the CNI plugin's
 * /cni/add, /cni/del, /cni/check.
 */
function handler(agent: Agent, local: boolean) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://agent').pathname
    const run = async () => {
      if (req.method === 'GET' && path === '/healthz') return reply(res, 200, 'ok\n', 'text/plain')
      if (req.method === 'GET' && path === '/readyz') return agent.isReady ? reply(res, 200, 'ok\n', 'text/plain') : reply(res, 503, 'not ready: the first convergence has not finished\n', 'text/plain')
      if ((req.method === 'GET' || local) && path === '/status') return reply(res, 200, agent.status())
      if (req.method === 'GET' && path === '/metrics') return reply(res, 200, await agent.metrics(), 'text/plain; version=0.0.4')
      if (!local) return reply(res, 404, {error: `no ${path} here`})
      if (req.method === 'POST' && path === '/sync') return reply(res, 200, await agent.syncNow())
      if (req.method === 'POST' && path === '/cni/add') return reply(res, 200, await agent.cniAdd(await readJson(req)))
      if (req.method === 'POST' && path === '/cni/del') return reply(res, 200, await agent.cniDel(await readJson(req)) ?? {})
      if (req.method === 'POST' && path === '/cni/check') return reply(res, 200, agent.cniCheck(await readJson(req)) ?? {})
      return reply(res, 404, {error: `no ${req.method} ${path}`})
    }
    run().catch((error) => reply(res, error instanceof AgentError ? error.status : 500, {error: errorMessage(error)}))
  }
}

export async function serveAgent(agent: Agent, options: {port: number; socket: string}): Promise<{close: () => Promise<void>}> {
  const servers: Server[] = [createServer(handler(agent, false)), createServer(handler(agent, true))]
  await new Promise<void>((resolve, reject) => {
    servers[0].once('error', reject)
    servers[0].listen(options.port, resolve)
  })
  rmSync(options.socket, {force: true})
  await new Promise<void>((resolve, reject) => {
    servers[1].once('error', reject)
    servers[1].listen(options.socket, resolve)
  })
  chmodSync(options.socket, 0o600)
  return {
    close: async () => {
      for (const server of servers) server.closeAllConnections()
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
      rmSync(options.socket, {force: true})
    },
  }
}
