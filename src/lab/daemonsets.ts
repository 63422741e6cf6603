import {createHash} from 'node:crypto'
import {matchesSelector} from '../lib/selectors.js'
import {LAB_RESOURCES} from './api/resources.js'
import {ApiError, type KubeObject, type ObjectStore} from './api/store.js'

const R = LAB_RESOURCES

interface Toleration {
  key?: string
  operator?: string
  value?: string
  effect?: string
}

interface DaemonSetSpec {
  selector?: {matchLabels?: Record<string, string>; matchExpressions?: {key: string; operator: string; values?: string[]}[]}
  template?: {metadata?: {labels?: Record<string, string>; annotations?: Record<string, string>}; spec?: {nodeSelector?: Record<string, string>; tolerations?: Toleration[]; [field: string]: unknown}}
  updateStrategy?: {type?: string; rollingUpdate?: {maxUnavailable?: number | string; maxSurge?: number | string}}
  revisionHistoryLimit?: number
}

/** Taints a pod must tolerate to run on a node (NoSchedule and NoExecute). */
export function toleratesTaints(tolerations: readonly Toleration[] | undefined, taints: readonly {key: string; value?: string; effect: string}[]): boolean {
  return taints
    .filter((taint) => taint.effect === 'NoSchedule' || taint.effect === 'NoExecute')
    .every((taint) => (tolerations ?? []).some((toleration) => {
      if (toleration.effect && toleration.effect !== taint.effect) return false
      if (toleration.operator === 'Exists') return !toleration.key || toleration.key === taint.key
      return toleration.key === taint.key && (toleration.value ?? '') === (taint.value ?? '')
    }))
}

const podReady = (pod: KubeObject) => ((pod.status as {conditions?: {type: string; status: string}[]} | undefined)?.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True')

/**
 * The DaemonSet controller, as upstream: one pod per eligible node (node
 * selector and taints), owned by the DaemonSet, replaced on a template change
 * by a rolling update that keeps at most maxUnavailable nodes without a ready
 * pod, status with observedGeneration, and the pods removed with their
 * DaemonSet (garbage collection of owned objects).
 */
export class DaemonSetController {
  private readonly pending = new Set<string>()

  constructor(
    private readonly store: ObjectStore,
    /** Create a pod through admission (defaults, Pod Security). */
    private readonly createPod: (pod: KubeObject) => void,
  ) {}

  admit(daemonSet: KubeObject, old?: KubeObject): KubeObject {
    const spec = (daemonSet.spec ?? {}) as DaemonSetSpec
    const name = daemonSet.metadata.name
    const invalid = (field: string, message: string) => new ApiError(422, 'Invalid', `DaemonSet.apps "${name}" is invalid: ${field}: ${message}`, {name, group: 'apps', kind: 'DaemonSet', causes: [{reason: 'FieldValueInvalid', message, field}]})
    if (!spec.selector || (!spec.selector.matchLabels && !spec.selector.matchExpressions)) throw invalid('spec.selector', 'Required value')
    if (!spec.template?.spec) throw invalid('spec.template.spec', 'Required value')
    if (!matchesSelector(spec.selector, spec.template.metadata?.labels ?? {})) throw invalid('spec.template.metadata.labels', `Invalid value: ${JSON.stringify(spec.template.metadata?.labels ?? {})}: \`selector\` does not match template \`labels\``)
    if (old && JSON.stringify((old.spec as DaemonSetSpec).selector) !== JSON.stringify(spec.selector)) throw invalid('spec.selector', 'Invalid value: field is immutable')
    spec.updateStrategy ??= {type: 'RollingUpdate'}
    if (spec.updateStrategy.type === 'RollingUpdate') spec.updateStrategy.rollingUpdate = {maxUnavailable: 1, maxSurge: 0, ...spec.updateStrategy.rollingUpdate}
    spec.revisionHistoryLimit ??= 10
    daemonSet.spec = spec
    daemonSet.status ??= {currentNumberScheduled: 0, desiredNumberScheduled: 0, numberMisscheduled: 0, numberReady: 0}
    return daemonSet
  }

  run(since: number): void {
    this.store.watch(R.daemonsets, since, (event) => {
      if (event.type === 'DELETED') this.collect(event.object.metadata.uid!)
      else this.soon(event.object.metadata.namespace!, event.object.metadata.name)
    })
    this.store.watch(R.nodes, since, () => {
      for (const daemonSet of this.store.list(R.daemonsets)) this.soon(daemonSet.metadata.namespace!, daemonSet.metadata.name)
    })
    this.store.watch(R.pods, since, (event) => {
      const owner = (event.object.metadata.ownerReferences as {kind: string; name: string}[] | undefined)?.find((reference) => reference.kind === 'DaemonSet')
      if (owner) this.soon(event.object.metadata.namespace!, owner.name)
    })
  }

  private soon(namespace: string, name: string): void {
    const key = `${namespace}/${name}`
    if (this.pending.has(key)) return
    this.pending.add(key)
    setImmediate(() => {
      this.pending.delete(key)
      this.reconcile(namespace, name)
    })
  }

  /** Garbage collection: a deleted DaemonSet's pods go with it. */
  private collect(uid: string): void {
    for (const pod of this.store.list(R.pods)) {
      if ((pod.metadata.ownerReferences as {uid: string}[] | undefined)?.some((reference) => reference.uid === uid)) this.deletePod(pod)
    }
  }

  private deletePod(pod: KubeObject): void {
    try {
      this.store.delete(R.pods, pod.metadata.namespace, pod.metadata.name)
    } catch {
      // gone already
    }
  }

  private reconcile(namespace: string, name: string): void {
    const daemonSet = this.store.tryGet(R.daemonsets, namespace, name)
    if (!daemonSet) return
    const spec = daemonSet.spec as DaemonSetSpec
    const template = spec.template!
    const hash = createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 10)
    const nodes = this.store.list(R.nodes).filter((node) => {
      const labels = node.metadata.labels ?? {}
      if (!Object.entries(template.spec?.nodeSelector ?? {}).every(([key, value]) => labels[key] === value)) return false
      return toleratesTaints(template.spec?.tolerations, ((node.spec as {taints?: {key: string; value?: string; effect: string}[]}).taints ?? []))
    }).map((node) => node.metadata.name)
    const owned = this.store.list(R.pods, namespace).filter((pod) => (pod.metadata.ownerReferences as {uid: string}[] | undefined)?.some((reference) => reference.uid === daemonSet.metadata.uid))
    const nodeOf = (pod: KubeObject) => (pod.spec as {nodeName?: string}).nodeName ?? ''
    for (const pod of owned) if (!nodes.includes(nodeOf(pod))) this.deletePod(pod)
    for (const node of nodes) {
      if (owned.some((pod) => nodeOf(pod) === node)) continue
      this.createPod({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: '',
          generateName: `${name}-`,
          namespace,
          labels: {...template.metadata?.labels, 'controller-revision-hash': hash, 'pod-template-generation': String(daemonSet.metadata.generation ?? 1)},
          annotations: template.metadata?.annotations,
          ownerReferences: [{apiVersion: 'apps/v1', kind: 'DaemonSet', name, uid: daemonSet.metadata.uid, controller: true, blockOwnerDeletion: true}],
        },
        spec: {...template.spec, nodeName: node},
      })
    }
    // Rolling update: replace outdated pods while at most maxUnavailable nodes lack a ready pod.
    const current = owned.filter((pod) => nodes.includes(nodeOf(pod)))
    const outdated = current.filter((pod) => pod.metadata.labels?.['controller-revision-hash'] !== hash)
    if (outdated.length && spec.updateStrategy?.type !== 'OnDelete') {
      const unavailable = nodes.filter((node) => !current.some((pod) => nodeOf(pod) === node && podReady(pod))).length
      const limit = maxUnavailable(spec.updateStrategy?.rollingUpdate?.maxUnavailable, nodes.length)
      // Outdated pods that are not ready anyway go first; they cost no availability.
      const order = [...outdated.filter((pod) => !podReady(pod)), ...outdated.filter(podReady)]
      let budget = limit - unavailable
      for (const pod of order) {
        if (podReady(pod) && budget <= 0) break
        if (podReady(pod)) budget--
        this.deletePod(pod)
      }
    }
    const pods = this.store.list(R.pods, namespace).filter((pod) => (pod.metadata.ownerReferences as {uid: string}[] | undefined)?.some((reference) => reference.uid === daemonSet.metadata.uid))
    const ready = pods.filter(podReady).length
    const status = {
      currentNumberScheduled: pods.filter((pod) => nodes.includes(nodeOf(pod))).length,
      numberMisscheduled: pods.filter((pod) => !nodes.includes(nodeOf(pod))).length,
      desiredNumberScheduled: nodes.length,
      numberReady: ready,
      updatedNumberScheduled: pods.filter((pod) => pod.metadata.labels?.['controller-revision-hash'] === hash).length,
      numberAvailable: ready,
      ...(nodes.length - ready > 0 ? {numberUnavailable: nodes.length - ready} : {}),
      observedGeneration: daemonSet.metadata.generation ?? 1,
    }
    if (JSON.stringify(status) === JSON.stringify(daemonSet.status)) return
    try {
      this.store.update(R.daemonsets, {...daemonSet, status})
    } catch {
      // changed meanwhile: the watch brings us back
    }
  }
}

function maxUnavailable(value: number | string | undefined, total: number): number {
  if (typeof value === 'string' && value.endsWith('%')) return Math.max(1, Math.floor((total * Number(value.slice(0, -1))) / 100))
  return Math.max(1, Number(value ?? 1))
}
