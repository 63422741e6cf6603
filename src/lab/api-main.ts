/**
 * The lab's API server daemon, started by `pinion lab up`:
 *   node dist/lab/api-main.js --lab NAME
 * Serves the Kubernetes API on 127.0.0.1, runs pods in the lab's namespaces,
 * and records its port in <run dir>/apiserver.json once it listens.
 */
import {renameSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {readCredentials} from './certs.js'
import {apiSocketPath, labDir, labNodeObject} from './config.js'
import {readState} from './state.js'
import {LabController} from './controller.js'
import {LabKubelet} from './kubelet.js'
import {findResource} from './api/resources.js'
import {LabApiServer} from './api/server.js'
import {ObjectStore} from './api/store.js'

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
for (const node of state.nodes) store.create(nodes, labNodeObject(lab, node))

await LabKubelet.cleanRecord(lab)
const kubelet = new LabKubelet(lab, state.nodes)
const controller = new LabController(store, kubelet)
controller.run()
const server = new LabApiServer(store, controller, readCredentials(dir))
const port = await server.listen(0)
rmSync(apiSocketPath(lab), {force: true})
await server.listenSocket(apiSocketPath(lab))
// Written whole, then renamed: a reader never sees half a record.
writeFileSync(join(dir, 'apiserver.json.tmp'), JSON.stringify({port, pid: process.pid}))
renameSync(join(dir, 'apiserver.json.tmp'), join(dir, 'apiserver.json'))

async function shutdown(): Promise<void> {
  await server.close()
  await kubelet.stopAll()
  process.exit(0)
}
process.on('SIGTERM', () => void shutdown())
process.on('SIGINT', () => void shutdown())
