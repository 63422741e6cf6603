import {request} from 'node:http'

/** A request to the local agent over its socket (the CNI plugin, `pinion agent request`); kept light for the plugin's start-up. */
export function requestAgent(socket: string, path: string, body: unknown, timeoutMs: number): Promise<{status: number; body: Record<string, unknown>}> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body ?? {})
    const req = request({socketPath: socket, path, method: 'POST', headers: {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text)}, timeout: timeoutMs}, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8')
        try {
          resolve({status: res.statusCode ?? 0, body: JSON.parse(raw || '{}') as Record<string, unknown>})
        } catch {
          resolve({status: res.statusCode ?? 0, body: {error: raw}})
        }
      })
    })
    req.on('timeout', () => req.destroy(new Error(`the agent did not answer within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end(text)
  })
}
