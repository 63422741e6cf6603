import {randomUUID} from 'node:crypto'
import {EventEmitter} from 'node:events'
import {apiVersionOf, type ResourceKind} from './resources.js'

export interface ObjectMeta {
  name: string
  namespace?: string
  uid?: string
  resourceVersion?: string
  creationTimestamp?: string
  generation?: number
  generateName?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  deletionTimestamp?: string
  [key: string]: unknown
}

export interface KubeObject {
  apiVersion: string
  kind: string
  metadata: ObjectMeta
  [key: string]: unknown
}

export type WatchType = 'ADDED' | 'MODIFIED' | 'DELETED'

export interface WatchEvent {
  type: WatchType
  object: KubeObject
  resourceVersion: number
}

/** An API error that becomes a metav1.Status response. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message)
  }

  toStatus(): Record<string, unknown> {
    return {kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, details: this.details, code: this.code}
  }
}

export function notFound(resource: ResourceKind, name: string): ApiError {
  const kind = resource.group ? `${resource.plural}.${resource.group}` : resource.plural
  return new ApiError(404, 'NotFound', `${kind} "${name}" not found`, {name, group: resource.group, kind: resource.plural})
}

const HISTORY_LIMIT = 20_000
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

function clone<T>(value: T): T {
  return structuredClone(value)
}

/**
 * In-memory objects with Kubernetes semantics: uids, a global resourceVersion,
 * optimistic concurrency on update, and watch from a resourceVersion (410 Gone
 * when it is older than the retained history).
 */
export class ObjectStore {
  private version = 0
  private readonly objects = new Map<string, Map<string, KubeObject>>()
  private readonly history: {plural: string; event: WatchEvent}[] = []
  private readonly events = new EventEmitter()

  constructor() {
    this.events.setMaxListeners(0)
  }

  get resourceVersion(): number {
    return this.version
  }

  private bucket(plural: string): Map<string, KubeObject> {
    let bucket = this.objects.get(plural)
    if (!bucket) {
      bucket = new Map()
      this.objects.set(plural, bucket)
    }
    return bucket
  }

  private static key(namespace: string | undefined, name: string): string {
    return `${namespace ?? ''}/${name}`
  }

  get(resource: ResourceKind, namespace: string | undefined, name: string): KubeObject {
    const found = this.bucket(resource.plural).get(ObjectStore.key(namespace, name))
    if (!found) throw notFound(resource, name)
    return clone(found)
  }

  tryGet(resource: ResourceKind, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.bucket(resource.plural).get(ObjectStore.key(namespace, name))
    return found ? clone(found) : undefined
  }

  list(resource: ResourceKind, namespace?: string): KubeObject[] {
    return [...this.bucket(resource.plural).values()].filter((object) => namespace === undefined || object.metadata.namespace === namespace).map(clone)
  }

  private record(resource: ResourceKind, type: WatchType, object: KubeObject): void {
    const event = {type, object: clone(object), resourceVersion: this.version}
    this.history.push({plural: resource.plural, event})
    if (this.history.length > HISTORY_LIMIT) this.history.splice(0, this.history.length - HISTORY_LIMIT)
    this.events.emit(resource.plural, event)
  }

  create(resource: ResourceKind, input: KubeObject, namespace?: string): KubeObject {
    const object = clone(input)
    object.apiVersion = apiVersionOf(resource)
    object.kind = resource.kind
    object.metadata ??= {name: ''}
    if (!object.metadata.name && object.metadata.generateName) {
      object.metadata.name = `${object.metadata.generateName}${randomUUID().replace(/-/g, '').slice(0, 5)}`
    }
    const name = object.metadata.name
    if (!name) throw new ApiError(422, 'Invalid', `${resource.kind} "" is invalid: metadata.name: Required value: name or generateName is required`, {kind: resource.kind})
    // As upstream: Namespaces and Services are DNS labels, everything else the lab serves a DNS subdomain.
    const label = ['namespaces', 'services'].includes(resource.plural)
    if (name.length > (label ? 63 : 253) || !(label ? DNS_LABEL : DNS_SUBDOMAIN).test(name)) {
      const rule = label ? `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'` : `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`
      throw new ApiError(422, 'Invalid', `${resource.kind} "${name}" is invalid: metadata.name: Invalid value: "${name}": ${rule}`, {name, kind: resource.kind, causes: [{reason: 'FieldValueInvalid', field: 'metadata.name'}]})
    }
    if (resource.namespaced) {
      if (object.metadata.namespace && namespace && object.metadata.namespace !== namespace) {
        throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request')
      }
      object.metadata.namespace = namespace ?? object.metadata.namespace ?? 'default'
    } else {
      delete object.metadata.namespace
    }
    const key = ObjectStore.key(object.metadata.namespace, name)
    if (this.bucket(resource.plural).has(key)) {
      const kind = resource.group ? `${resource.plural}.${resource.group}` : resource.plural
      throw new ApiError(409, 'AlreadyExists', `${kind} "${name}" already exists`, {name, group: resource.group, kind: resource.plural})
    }
    this.version++
    object.metadata.uid = randomUUID()
    object.metadata.resourceVersion = String(this.version)
    object.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
    object.metadata.generation = 1
    this.bucket(resource.plural).set(key, object)
    this.record(resource, 'ADDED', object)
    return clone(object)
  }

  /** Replace an object; a resourceVersion in the input must match (optimistic concurrency). */
  update(resource: ResourceKind, input: KubeObject): KubeObject {
    const current = this.get(resource, input.metadata.namespace, input.metadata.name)
    if (input.metadata.resourceVersion && input.metadata.resourceVersion !== current.metadata.resourceVersion) {
      throw new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${resource.plural} "${input.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`, {name: input.metadata.name, kind: resource.plural})
    }
    const object = clone(input)
    object.apiVersion = current.apiVersion
    object.kind = current.kind
    object.metadata = {...object.metadata, uid: current.metadata.uid, creationTimestamp: current.metadata.creationTimestamp, namespace: current.metadata.namespace}
    const specChanged = JSON.stringify(object.spec) !== JSON.stringify(current.spec)
    object.metadata.generation = (current.metadata.generation ?? 1) + (specChanged ? 1 : 0)
    if (JSON.stringify({...object, metadata: {...object.metadata, resourceVersion: ''}}) === JSON.stringify({...current, metadata: {...current.metadata, resourceVersion: ''}})) {
      return current // no-op updates do not bump the resourceVersion
    }
    this.version++
    object.metadata.resourceVersion = String(this.version)
    this.bucket(resource.plural).set(ObjectStore.key(object.metadata.namespace, object.metadata.name), object)
    this.record(resource, 'MODIFIED', object)
    return clone(object)
  }

  delete(resource: ResourceKind, namespace: string | undefined, name: string): KubeObject {
    const current = this.get(resource, namespace, name)
    this.bucket(resource.plural).delete(ObjectStore.key(namespace, name))
    this.version++
    current.metadata.resourceVersion = String(this.version)
    this.record(resource, 'DELETED', current)
    return current
  }

  /**
   * Follow changes of one kind after `since` (exclusive). Throws 410 Gone when
   * the history no longer reaches back that far. Returns an unsubscribe function.
   */
  watch(resource: ResourceKind, since: number, listener: (event: WatchEvent) => void): () => void {
    const oldest = this.history.length ? this.history[0].event.resourceVersion : this.version + 1
    if (since < this.version && since < oldest - 1) {
      throw new ApiError(410, 'Expired', `too old resource version: ${since} (${oldest - 1})`)
    }
    for (const {plural, event} of this.history) {
      if (plural === resource.plural && event.resourceVersion > since) listener(event)
    }
    this.events.on(resource.plural, listener)
    return () => this.events.off(resource.plural, listener)
  }
}
