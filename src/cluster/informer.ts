import {request, type RequestOptions} from 'node:https'
import type * as k8s from '@kubernetes/client-node'
import {apiErrorMessage} from './kubeconfig.js'

export interface KubeObjectLike {
  metadata?: k8s.V1ObjectMeta
}

export interface InformerHandlers<T extends KubeObjectLike> {
  upsert(object: T): void
  remove(object: T): void
  /** After each complete list (the first one and every relist). */
  synced?(): void
  /** One line per change of connection state (never per retry). */
  state?(message: string): void
}

export interface InformerOptions {
  /** Objects per LIST page. */
  pageSize: number
  /** Server-side watch deadline; the watch is then resumed from the last resourceVersion. */
  watchTimeoutSeconds: number
  /** A request that sends nothing for this long (headers of a list, or a watch past its deadline) is abandoned. */
  requestTimeoutMs: number
  /** Back-off between failed attempts: doubles from min to max. */
  backoffMs: {min: number; max: number}
}

export const DEFAULT_INFORMER_OPTIONS: InformerOptions = {pageSize: 500, watchTimeoutSeconds: 300, requestTimeoutMs: 15_000, backoffMs: {min: 250, max: 15_000}}

class GoneError extends Error {}

const keyOf = (object: KubeObjectLike) => `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`
/** What is kept of each object: enough to report it deleted after a relist (the handlers keep what they need). */
const stub = <T extends KubeObjectLike>(object: T) => ({metadata: {namespace: object.metadata?.namespace, name: object.metadata?.name}}) as T

/**
 * A list-then-watch cache of one resource, as client-go's reflector does it:
 * paginated LIST, WATCH from the list's resourceVersion, resume after the
 * watch deadline from the last resourceVersion seen, relist on 410 Gone
 * (deleting what vanished meanwhile), and exponential back-off while the API
 * server cannot be reached. Every request has its own deadline.
 */
export class Informer<T extends KubeObjectLike> {
  private readonly known = new Map<string, T>()
  private version = ''
  private running?: Promise<void>
  private active?: {destroy: () => void}

  constructor(
    private readonly config: k8s.KubeConfig,
    /** e.g. /api/v1/pods or /apis/discovery.k8s.io/v1/endpointslices */
    readonly path: string,
    private readonly handlers: InformerHandlers<T>,
    private readonly options: InformerOptions = DEFAULT_INFORMER_OPTIONS,
  ) {}

  /** The resourceVersion of the newest change applied. */
  get resourceVersion(): string {
    return this.version
  }

  get size(): number {
    return this.known.size
  }

  start(signal: AbortSignal): void {
    signal.addEventListener('abort', () => this.active?.destroy(), {once: true})
    this.running = this.loop(signal)
  }

  async stopped(): Promise<void> {
    await this.running
  }

  private async loop(signal: AbortSignal): Promise<void> {
    let backoff = this.options.backoffMs.min
    let needList = true
    let failing = false
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.list(signal)
          needList = false
          this.handlers.synced?.()
        }
        await this.watch(signal, () => {
          backoff = this.options.backoffMs.min
          if (failing) this.handlers.state?.(`${this.path}: connected again`)
          failing = false
        })
        if (failing) this.handlers.state?.(`${this.path}: connected again`)
        failing = false
        backoff = this.options.backoffMs.min
      } catch (error) {
        if (signal.aborted) break
        if (error instanceof GoneError) {
          needList = true // history moved past our version: start over
          continue
        }
        if (!failing) this.handlers.state?.(`${this.path}: ${apiErrorMessage(error)}; retrying with back-off`)
        failing = true
        await new Promise((resolve) => setTimeout(resolve, backoff))
        backoff = Math.min(backoff * 2, this.options.backoffMs.max)
      }
    }
  }

  private async requestOptions(query: Record<string, string>): Promise<RequestOptions & {url: URL}> {
    const cluster = this.config.getCurrentCluster()
    if (!cluster) throw new Error('the kubeconfig has no current cluster')
    const url = new URL(cluster.server.replace(/\/$/, '') + this.path)
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value)
    const options: RequestOptions = {method: 'GET', headers: {Accept: 'application/json'}}
    await this.config.applyToHTTPSOptions(options)
    return {...options, url}
  }

  private async list(signal: AbortSignal): Promise<void> {
    const seen = new Set<string>()
    let next = ''
    let version = ''
    do {
      const query: Record<string, string> = {limit: String(this.options.pageSize)}
      if (next) query.continue = next
      const page = JSON.parse(await this.fetchText(await this.requestOptions(query), signal)) as {metadata?: {resourceVersion?: string; continue?: string}; items?: T[]}
      for (const item of page.items ?? []) {
        seen.add(keyOf(item))
        this.known.set(keyOf(item), stub(item))
        this.handlers.upsert(item)
      }
      next = page.metadata?.continue ?? ''
      version = page.metadata?.resourceVersion ?? version
    } while (next)
    for (const [key, object] of this.known) {
      if (seen.has(key)) continue
      this.known.delete(key)
      this.handlers.remove(object)
    }
    this.version = version
  }

  private fetchText(options: RequestOptions & {url: URL}, signal: AbortSignal): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request(options.url, {...options, signal, timeout: this.options.requestTimeoutMs}, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          if (res.statusCode === 410) reject(new GoneError('410 Gone'))
          else if (res.statusCode !== 200) reject(new Error(`LIST ${this.path}: HTTP ${res.statusCode}: ${statusMessage(text)}`))
          else resolve(text)
        })
        res.on('error', reject)
      })
      req.on('timeout', () => req.destroy(new Error(`LIST ${this.path}: no answer within ${this.options.requestTimeoutMs} ms`)))
      req.on('error', reject)
      req.end()
    })
  }

  /** One watch request, until its deadline or an error. `connected` fires once the server answers. */
  private async watch(signal: AbortSignal, connected: () => void): Promise<void> {
    const options = await this.requestOptions({watch: '1', resourceVersion: this.version, timeoutSeconds: String(this.options.watchTimeoutSeconds), allowWatchBookmarks: 'true'})
    await new Promise<void>((resolve, reject) => {
      // Past the server's own deadline plus a margin, a silent watch is a dead one.
      const idleMs = this.options.watchTimeoutSeconds * 1000 + this.options.requestTimeoutMs
      const req = request(options.url, {...options, signal, timeout: this.options.requestTimeoutMs}, (res) => {
        if (res.statusCode === 410) {
          res.resume()
          reject(new GoneError('410 Gone'))
          return
        }
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = []
          res.on('data', (chunk: Buffer) => chunks.push(chunk))
          res.on('end', () => reject(new Error(`WATCH ${this.path}: HTTP ${res.statusCode}: ${statusMessage(Buffer.concat(chunks).toString('utf8'))}`)))
          return
        }
        connected()
        req.setTimeout(idleMs)
        let buffered = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          buffered += chunk
          let newline: number
          while ((newline = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, newline).trim()
            buffered = buffered.slice(newline + 1)
            if (!line) continue
            try {
              this.event(JSON.parse(line) as {type: string; object: T & {code?: number; message?: string}})
            } catch (error) {
              req.destroy(error as Error)
              return
            }
          }
        })
        res.on('end', () => resolve())
        res.on('error', reject)
      })
      this.active = req
      req.on('timeout', () => req.destroy(new Error(`WATCH ${this.path}: silent for too long`)))
      req.on('error', (error) => (signal.aborted ? resolve() : reject(error)))
      req.end()
    })
  }

  private event(event: {type: string; object: T & {code?: number; message?: string}}): void {
    const {type, object} = event
    if (type === 'ERROR') {
      if (object.code === 410) throw new GoneError(object.message ?? '410 Gone')
      throw new Error(`WATCH ${this.path}: ${object.message ?? 'error event'}`)
    }
    const version = object.metadata?.resourceVersion
    if (version) this.version = version
    if (type === 'BOOKMARK') return
    const key = keyOf(object)
    if (type === 'DELETED') {
      this.known.delete(key)
      this.handlers.remove(object)
    } else {
      this.known.set(key, stub(object))
      this.handlers.upsert(object)
    }
  }
}

function statusMessage(text: string): string {
  try {
    return (JSON.parse(text) as {message?: string}).message ?? text.slice(0, 200)
  } catch {
    return text.slice(0, 200)
  }
}
