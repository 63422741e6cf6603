import type {IncomingMessage, ServerResponse} from 'node:http'
import {createServer, type Server} from 'node:https'
import {timingSafeEqual} from 'node:crypto'
import type {Duplex} from 'node:stream'
import {WebSocketServer} from 'ws'
import {handleExec} from './exec.js'
import {apiVersionOf, findResource, type ResourceKind, RESOURCES, VERBS} from './resources.js'
import {parseFieldSelector, parseLabelSelector, SelectorError} from '../../lib/selectors.js'
import {ApiError, type KubeObject, type ObjectStore, type WatchEvent} from './store.js'

/** What the server needs to serve TLS and check the bearer token (the lab's credentials have this shape). */
export interface ServingCredentials {
  serverCert: string
  serverKey: string
  token: string
}

/** What the API layer needs from the lab's controllers (admission, exec, logs). */
export interface LabBackend {
  /** Validate and default an object before it is stored; throw ApiError to reject. */
  admit(resource: ResourceKind, operation: 'create' | 'update', object: KubeObject, old?: KubeObject): KubeObject
  /** argv prefix that runs a command in the pod's namespaces; throws ApiError if the pod cannot exec. */
  execPrefix(pod: KubeObject): string[]
  /** The command as the container runs it (a local image maps its executables). */
  execCommand(pod: KubeObject, command: string[]): string[]
  podLog(pod: KubeObject, options: {sinceSeconds?: number; tailLines?: number; timestamps: boolean}): string
  /** Cascade for namespace deletion. */
  deleteNamespaceContents(namespace: string): void
}

const LAB_VERSION = {major: '1', minor: '32', gitVersion: 'v1.32.0-pinion-lab', gitCommit: 'pinion', gitTreeState: 'clean', buildDate: '2026-01-01T00:00:00Z', goVersion: 'go1.23', compiler: 'gc', platform: 'linux/amd64'}

interface Route {
  resource: ResourceKind
  namespace?: string
  name?: string
  subresource?: string
}

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(code, {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text)})
  res.end(text)
}

function sendError(res: ServerResponse, error: unknown): void {
  if (error instanceof ApiError) return send(res, error.code, error.toStatus())
  if (error instanceof SelectorError) return send(res, 400, new ApiError(400, 'BadRequest', error.message).toStatus())
  send(res, 500, new ApiError(500, 'InternalError', `Internal error occurred: ${(error as Error).message}`).toStatus())
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > 3 * 1024 * 1024) throw new ApiError(413, 'RequestEntityTooLarge', 'request body too large')
    chunks.push(chunk as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new ApiError(400, 'BadRequest', 'the request body is not valid JSON')
  }
}

/** RFC 7386 JSON merge patch (used for merge and strategic-merge patches of the lab's kinds). */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch
  const result: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? {...(target as Record<string, unknown>)} : {}
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (key.startsWith('$')) continue // strategic-merge directives
    if (value === null) delete result[key]
    else result[key] = mergePatch(result[key], value)
  }
  return result
}

function parseRoute(path: string): Route | undefined {
  const parts = path.split('/').filter(Boolean)
  let group = ''
  let version: string
  let rest: string[]
  if (parts[0] === 'api' && parts.length >= 3) {
    version = parts[1]
    rest = parts.slice(2)
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    group = parts[1]
    version = parts[2]
    rest = parts.slice(3)
  } else {
    return undefined
  }
  let namespace: string | undefined
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1]
    rest = rest.slice(2)
  }
  const resource = findResource(group, version, rest[0])
  if (!resource) return undefined
  if (!resource.namespaced && namespace) return undefined
  return {resource, namespace, name: rest[1], subresource: rest[2]}
}

function discovery(path: string): unknown {
  if (path === '/version') return LAB_VERSION
  if (path === '/api') return {kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1'}]}
  const groups = [...new Set(RESOURCES.filter((resource) => resource.group).map((resource) => resource.group))]
  if (path === '/apis') {
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: groups.map((name) => ({name, versions: [{groupVersion: `${name}/v1`, version: 'v1'}], preferredVersion: {groupVersion: `${name}/v1`, version: 'v1'}})),
    }
  }
  if (path === '/openapi/v3') {
    const versions = ['api/v1', ...groups.map((name) => `apis/${name}/v1`)]
    return {paths: Object.fromEntries(versions.map((version) => [version, {serverRelativeURL: `/openapi/v3/${version}?hash=pinion-lab`}]))}
  }
  const openapi = /^\/openapi\/v3\/(?:api\/v1|apis\/([^/]+)\/v1)$/.exec(path)
  if (openapi) return openApiDocument(openapi[1] ?? '')
  const match = /^\/(?:api\/(v1)|apis\/([^/]+)\/(v1))$/.exec(path)
  if (!match) return undefined
  const group = match[2] ?? ''
  const resources = RESOURCES.filter((resource) => resource.group === group)
  if (resources.length === 0) return undefined
  const list = resources.map((resource) => ({name: resource.plural, singularName: resource.singular, namespaced: resource.namespaced, kind: resource.kind, verbs: VERBS, shortNames: resource.shortNames}))
  if (group === '') {
    list.push({name: 'pods/exec', singularName: '', namespaced: true, kind: 'PodExecOptions', verbs: ['create', 'get'], shortNames: undefined})
    list.push({name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'], shortNames: undefined})
  }
  return {kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/v1` : 'v1', resources: list}
}

/**
 * A minimal OpenAPI v3 document per group version: PATCH operations that
 * declare the fieldValidation parameter, which is how kubectl learns that the
 * server validates (so it needs no client-side schema). Unknown fields are
 * accepted and dropped, as with fieldValidation=Ignore.
 */
function openApiDocument(group: string): unknown {
  const paths: Record<string, unknown> = {}
  for (const resource of RESOURCES.filter((candidate) => candidate.group === group)) {
    const prefix = group ? `/apis/${group}/${resource.version}` : `/api/${resource.version}`
    const path = resource.namespaced ? `${prefix}/namespaces/{namespace}/${resource.plural}/{name}` : `${prefix}/${resource.plural}/{name}`
    paths[path] = {
      patch: {
        'x-kubernetes-group-version-kind': {group, version: resource.version, kind: resource.kind},
        parameters: ['fieldValidation', 'fieldManager', 'dryRun'].map((name) => ({name, in: 'query', schema: {type: 'string', uniqueItems: true}})),
        responses: {200: {description: 'OK'}},
      },
    }
  }
  return {openapi: '3.0.0', info: {title: 'Kubernetes (Pinion lab)', version: LAB_VERSION.gitVersion}, paths, components: {schemas: {}}}
}

/**
 * A Kubernetes-API-compatible HTTPS endpoint for the lab: the subset Pinion
 * needs, with real semantics (discovery, CRUD, selectors, watch, exec, logs,
 * Status errors), so kubectl and @kubernetes/client-node work against it.
 */
export class LabApiServer {
  private readonly server: Server
  /** The same API on a Unix socket, for the lab nodes' relays. */
  private readonly socketServer: Server
  private readonly wss = new WebSocketServer({noServer: true, handleProtocols: (protocols) => (protocols.has('v5.channel.k8s.io') ? 'v5.channel.k8s.io' : protocols.has('v4.channel.k8s.io') ? 'v4.channel.k8s.io' : false)})
  private readonly token: Buffer

  constructor(
    private readonly store: ObjectStore,
    private readonly backend: LabBackend,
    credentials: ServingCredentials,
  ) {
    this.token = Buffer.from(credentials.token)
    const make = () => {
      const server = createServer({cert: credentials.serverCert, key: credentials.serverKey}, (req, res) => {
        this.handle(req, res).catch((error) => sendError(res, error))
      })
      server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head))
      return server
    }
    this.server = make()
    this.socketServer = make()
  }

  listenSocket(path: string): Promise<void> {
    return new Promise((resolve) => this.socketServer.listen(path, () => resolve()))
  }

  listen(port = 0): Promise<number> {
    return new Promise((resolve) => {
      this.server.listen(port, '127.0.0.1', () => resolve((this.server.address() as {port: number}).port))
    })
  }

  async close(): Promise<void> {
    for (const server of [this.server, this.socketServer]) {
      server.closeAllConnections()
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }

  private authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? ''
    const presented = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '')
    return presented.length === this.token.length && timingSafeEqual(presented, this.token)
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1')
    const route = parseRoute(url.pathname)
    const reject = (code: number, message: string) => {
      socket.end(`HTTP/1.1 ${code} ${message}\r\nContent-Type: text/plain\r\n\r\n${message}\n`)
    }
    if (!this.authorized(req)) return reject(401, 'Unauthorized')
    if (!route || route.resource.plural !== 'pods' || route.subresource !== 'exec' || !route.name) return reject(404, 'Not Found')
    const command = url.searchParams.getAll('command')
    if (command.length === 0) return reject(400, 'you must specify at least 1 command')
    let argv: string[]
    try {
      const pod = this.store.get(route.resource, route.namespace, route.name)
      argv = [...this.backend.execPrefix(pod), ...this.backend.execCommand(pod, command)]
    } catch (error) {
      return reject(error instanceof ApiError ? error.code : 500, (error as Error).message)
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => handleExec(ws, argv, {stdin: url.searchParams.get('stdin') === 'true'}))
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1')
    if (url.pathname === '/healthz' || url.pathname === '/readyz' || url.pathname === '/livez') {
      res.writeHead(200, {'Content-Type': 'text/plain'})
      res.end('ok')
      return
    }
    if (!this.authorized(req)) return send(res, 401, new ApiError(401, 'Unauthorized', 'Unauthorized').toStatus())
    const discovered = req.method === 'GET' ? discovery(url.pathname) : undefined
    if (discovered) return send(res, 200, discovered)
    const route = parseRoute(url.pathname)
    if (!route) return send(res, 404, new ApiError(404, 'NotFound', 'the server could not find the requested resource').toStatus())
    const {resource, namespace, name, subresource} = route
    if (namespace && resource.plural !== 'namespaces') {
      // Like the real API server, objects cannot be made in a namespace that does not exist.
      const namespaces = findResource('', 'v1', 'namespaces')!
      if (req.method === 'POST' && !this.store.tryGet(namespaces, undefined, namespace)) throw new ApiError(404, 'NotFound', `namespaces "${namespace}" not found`, {name: namespace, kind: 'namespaces'})
    }

    if (subresource === 'log' && req.method === 'GET') {
      const pod = this.store.get(resource, namespace, name!)
      const since = url.searchParams.get('sinceSeconds')
      const tail = url.searchParams.get('tailLines')
      const text = this.backend.podLog(pod, {sinceSeconds: since ? Number(since) : undefined, tailLines: tail ? Number(tail) : undefined, timestamps: url.searchParams.get('timestamps') === 'true'})
      res.writeHead(200, {'Content-Type': 'text/plain'})
      res.end(text)
      return
    }
    if (subresource === 'exec') throw new ApiError(400, 'BadRequest', 'exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io)')
    if (subresource && subresource !== 'status') throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${subresource})`)

    switch (req.method) {
      case 'GET':
        if (name) return send(res, 200, this.store.get(resource, namespace, name))
        if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') return this.watch(req, res, route, url)
        return send(res, 200, this.list(route, url))
      case 'POST': {
        if (name) throw new ApiError(405, 'MethodNotAllowed', 'POST is not allowed on a named resource')
        const body = (await readBody(req)) as KubeObject
        if (!body || typeof body !== 'object' || !body.metadata) throw new ApiError(400, 'BadRequest', 'the request body must be an object with metadata')
        if (resource.namespaced) body.metadata.namespace ??= namespace
        const admitted = this.backend.admit(resource, 'create', body)
        const created = this.store.create(resource, admitted, namespace)
        if (url.searchParams.get('dryRun')) this.store.delete(resource, created.metadata.namespace, created.metadata.name)
        return send(res, 201, created)
      }
      case 'PUT': {
        const body = (await readBody(req)) as KubeObject
        if (!name || body?.metadata?.name !== name) throw new ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL')
        const old = this.store.get(resource, namespace, name)
        body.metadata.namespace = old.metadata.namespace
        if (subresource === 'status') body.spec = old.spec
        return send(res, 200, this.store.update(resource, this.backend.admit(resource, 'update', body, old)))
      }
      case 'PATCH': {
        const type = (req.headers['content-type'] ?? '').split(';')[0]
        if (!['application/merge-patch+json', 'application/strategic-merge-patch+json'].includes(type)) {
          throw new ApiError(415, 'UnsupportedMediaType', `the lab API supports merge and strategic-merge patches, not ${type}`)
        }
        const old = this.store.get(resource, namespace, name!)
        const patched = mergePatch(old, await readBody(req)) as KubeObject
        patched.metadata = {...patched.metadata, name: old.metadata.name, namespace: old.metadata.namespace, resourceVersion: undefined}
        return send(res, 200, this.store.update(resource, this.backend.admit(resource, 'update', patched, old)))
      }
      case 'DELETE': {
        if (!name) throw new ApiError(405, 'MethodNotAllowed', 'deleting a collection is not supported by the lab API')
        const deleted = this.store.delete(resource, namespace, name)
        if (resource.plural === 'namespaces') this.backend.deleteNamespaceContents(name)
        return send(res, 200, deleted)
      }
      default:
        throw new ApiError(405, 'MethodNotAllowed', `method ${req.method} is not allowed`)
    }
  }

  private filtered(url: URL): (object: KubeObject) => boolean {
    const labels = parseLabelSelector(url.searchParams.get('labelSelector') ?? undefined)
    const fields = parseFieldSelector(url.searchParams.get('fieldSelector') ?? undefined)
    return (object) => labels(object.metadata.labels ?? {}) && fields(object)
  }

  private list(route: Route, url: URL): unknown {
    const keep = this.filtered(url)
    const items = this.store.list(route.resource, route.namespace).filter(keep)
    items.sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`))
    return {kind: `${route.resource.kind}List`, apiVersion: apiVersionOf(route.resource), metadata: {resourceVersion: String(this.store.resourceVersion)}, items}
  }

  /**
   * Stream watch events as JSON lines. Without a resourceVersion the current
   * objects come first as ADDED; objects leaving a selector arrive as DELETED.
   */
  private watch(req: IncomingMessage, res: ServerResponse, route: Route, url: URL): void {
    const keep = this.filtered(url)
    const inScope = (object: KubeObject) => (route.namespace === undefined || object.metadata.namespace === route.namespace) && keep(object)
    const requested = url.searchParams.get('resourceVersion')
    // A watch that ended (its deadline, or the client left) writes nothing more; a broken socket never crashes the server.
    const write = (type: string, object: unknown) => void (!res.writableEnded && !res.destroyed && res.write(JSON.stringify({type, object}) + '\n'))
    res.on('error', () => undefined)
    let since = requested && requested !== '0' ? Number(requested) : this.store.resourceVersion
    res.writeHead(200, {'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked'})
    res.flushHeaders() // clients wait for headers before they count the watch as started
    if (!requested || requested === '0') {
      for (const object of this.store.list(route.resource, route.namespace).filter(keep)) write('ADDED', object)
      since = this.store.resourceVersion
    }
    const visible = new Set(this.store.list(route.resource, route.namespace).filter(inScope).map((object) => object.metadata.uid))
    let unsubscribe = () => {}
    try {
      unsubscribe = this.store.watch(route.resource, since, (event: WatchEvent) => {
        const {object} = event
        const uid = object.metadata.uid
        const was = visible.has(uid)
        if (event.type === 'DELETED') {
          visible.delete(uid)
          if (was || inScope(object)) write('DELETED', object)
          return
        }
        const is = inScope(object)
        if (is) visible.add(uid)
        else visible.delete(uid)
        if (is) write(event.type === 'ADDED' || !was ? 'ADDED' : 'MODIFIED', object)
        else if (was) write('DELETED', object)
      })
    } catch (error) {
      if (error instanceof ApiError) write('ERROR', error.toStatus())
      res.end()
      return
    }
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? 1800)
    const stop = () => {
      clearTimeout(timer)
      unsubscribe()
    }
    const timer = setTimeout(() => {
      stop()
      res.end()
    }, timeout * 1000)
    req.on('close', stop)
    res.on('finish', stop)
  }
}
