/** The resource kinds the lab API serves, with the discovery facts clients need. */
export interface ResourceKind {
  group: string // '' = core
  version: string
  plural: string
  kind: string
  namespaced: boolean
  shortNames?: string[]
  singular: string
}

export const RESOURCES: readonly ResourceKind[] = [
  {group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, shortNames: ['ns']},
  {group: '', version: 'v1', plural: 'nodes', singular: 'node', kind: 'Node', namespaced: false, shortNames: ['no']},
  {group: '', version: 'v1', plural: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, shortNames: ['po']},
  {group: '', version: 'v1', plural: 'services', singular: 'service', kind: 'Service', namespaced: true, shortNames: ['svc']},
  {group: '', version: 'v1', plural: 'events', singular: 'event', kind: 'Event', namespaced: true, shortNames: ['ev']},
  {group: '', version: 'v1', plural: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, shortNames: ['cm']},
  {group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', singular: 'endpointslice', kind: 'EndpointSlice', namespaced: true},
  {group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies', singular: 'networkpolicy', kind: 'NetworkPolicy', namespaced: true, shortNames: ['netpol']},
  {group: '', version: 'v1', plural: 'serviceaccounts', singular: 'serviceaccount', kind: 'ServiceAccount', namespaced: true, shortNames: ['sa']},
  {group: 'apps', version: 'v1', plural: 'daemonsets', singular: 'daemonset', kind: 'DaemonSet', namespaced: true, shortNames: ['ds']},
  {group: 'coordination.k8s.io', version: 'v1', plural: 'leases', singular: 'lease', kind: 'Lease', namespaced: true},
  {group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterroles', singular: 'clusterrole', kind: 'ClusterRole', namespaced: false},
  {group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterrolebindings', singular: 'clusterrolebinding', kind: 'ClusterRoleBinding', namespaced: false},
  {group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'roles', singular: 'role', kind: 'Role', namespaced: true},
  {group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'rolebindings', singular: 'rolebinding', kind: 'RoleBinding', namespaced: true},
]

export function apiVersionOf(resource: ResourceKind): string {
  return resource.group ? `${resource.group}/${resource.version}` : resource.version
}

export function findResource(group: string, version: string, plural: string): ResourceKind | undefined {
  return RESOURCES.find((resource) => resource.group === group && resource.version === version && resource.plural === plural)
}

/** The kinds the lab's controllers and kubelet work with, looked up once. */
export const LAB_RESOURCES = {
  daemonsets: findResource('apps', 'v1', 'daemonsets')!,
  namespaces: findResource('', 'v1', 'namespaces')!,
  nodes: findResource('', 'v1', 'nodes')!,
  pods: findResource('', 'v1', 'pods')!,
  services: findResource('', 'v1', 'services')!,
  events: findResource('', 'v1', 'events')!,
  slices: findResource('discovery.k8s.io', 'v1', 'endpointslices')!,
  policies: findResource('networking.k8s.io', 'v1', 'networkpolicies')!,
}

export const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch']
