/**
 * The lab's API server daemon, started by `pinion lab up`:
 *   node dist/lab/api/main.js --lab NAME
 * Serves the Kubernetes API on 127.0.0.1, runs pods in the lab's namespaces,
 * and records its port in <run dir>/apiserver.json once it listens.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {readCredentials} from '../certs.js'
import {labDir} from '../config.js'
import {readState} from '../state.js'
import {LabController} from './controller.js'
import {LabKubelet} from './kubelet.js'
import {findResource} from './resources.js'
import {LabApiServer} from './server.js'
import {ObjectStore} from './store.js'

const lab = process.argv[process.argv.indexOf('--lab') + 1]
const state = readState(lab)
if (!state) {
  process.stderr.write(`lab "${lab}" has no state\n`)
  process.exit(1)
}

const dir = labDir(lab)
const store = new ObjectStore()
const namespaces = findResource('', 'v1', 'namespaces')!
const nodes = findResource('', 'v1', 'nodes')!
for (const name of ['default', 'kube-system', 'kube-public']) {
  store.create(namespaces, {apiVersion: 'v1', kind: 'Namespace', metadata: {name, labels: {'kubernetes.io/metadata.name': name}}, status: {phase: 'Active'}})
}
const kernel = (await import('node:os')).release()
for (const node of state.nodes) {
  store.create(nodes, {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {name: node.name, labels: {'kubernetes.io/hostname': node.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'pinion.dev/lab': lab}},
    spec: {podCIDR: node.podCidr, podCIDRs: [node.podCidr], taints: []},
    status: {
      addresses: [{type: 'InternalIP', address: node.underlayIp}, {type: 'Hostname', address: node.name}],
      conditions: [{type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'lab node is ready', lastHeartbeatTime: new Date().toISOString()}],
      nodeInfo: {kernelVersion: kernel, osImage: 'Pinion lab (network + mount namespaces)', kubeletVersion: 'v1.32.0-pinion-lab', containerRuntimeVersion: 'pinion-lab://1', operatingSystem: 'linux', architecture: 'amd64'},
    },
  })
}

await LabKubelet.cleanRecord(lab)
const kubelet = new LabKubelet(lab, state.nodes)
const controller = new LabController(store, kubelet)
controller.run()
const server = new LabApiServer(store, controller, readCredentials(dir))
const port = await server.listen(0)
writeFileSync(join(dir, 'apiserver.json'), JSON.stringify({port, pid: process.pid}))

async function shutdown(): Promise<void> {
  await server.close()
  await kubelet.stopAll()
  process.exit(0)
}
process.on('SIGTERM', () => void shutdown())
process.on('SIGINT', () => void shutdown())
