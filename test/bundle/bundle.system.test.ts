import {execFileSync, spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {createHash} from 'node:crypto'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {type BundleOptions, type Manifest, supportBundle} from '../../src/bundle/bundle.js'
import type {Clients} from '../../src/cluster/kubeconfig.js'
import {DEFAULT_PIN_ROOT} from '../../src/datapath/catalogue.js'
import {install} from '../../src/install/install.js'
import {labSecrets, type LabSummary} from '../../src/lab/lab.js'
import {readState} from '../../src/lab/state.js'
import {DEFAULT_IMAGE} from '../../src/nodes/debug-pods.js'
import {defaultSshOptions} from '../../src/nodes/ssh-shell.js'
import {startLab, stopLab} from '../helpers/lab.js'
import {REPO_ROOT} from '../helpers/system.js'

let lab: LabSummary
let api: Clients
let dir: string
const access = {transport: 'pod' as const, image: DEFAULT_IMAGE, concurrency: 4, podStartTimeoutMs: 5000, ssh: defaultSshOptions(), sshHosts: {}}
// Generous deadlines: CI runs this next to other lab tests on two cores.
const options = (file: string, overrides: Partial<BundleOptions> = {}): BundleOptions => ({file, nodes: [], concurrency: 4, timeoutPerNodeMs: 120_000, taskTimeoutMs: 60_000, eventWindowMs: 500, access, pinRoot: DEFAULT_PIN_ROOT, progress: false, ...overrides})

/** Unpack a bundle into a directory; returns its root and the manifest. */
function unpack(file: string): {root: string; manifest: Manifest; files: string[]} {
  const target = mkdtempSync(join(dir, 'x-'))
  execFileSync('tar', ['xzf', file, '-C', target])
  const [top] = execFileSync('ls', [target], {encoding: 'utf8'}).trim().split('\n')
  const root = join(target, top)
  const files = execFileSync('find', ['.', '-type', 'f'], {cwd: root, encoding: 'utf8'}).trim().split('\n').map((path) => path.slice(2)).sort()
  return {root, manifest: JSON.parse(readFileSync(join(root, 'manifest.json'), 'utf8')), files}
}

beforeAll(async () => {
  ;({lab, api} = await startLab('bndl', 2, 1))
  dir = mkdtempSync(join(tmpdir(), 'pinion-bundle-test-'))
  expect((await install(api, {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false, dryRun: false})).nodes.every((outcome) => outcome.ok)).toBe(true)
})

afterAll(async () => {
  await stopLab(lab)
  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe('pinion support-bundle', () => {
  it('writes cluster objects, per-node state and decoded maps, with a manifest of checksums', async () => {
    const result = await supportBundle(api, options(join(dir, 'full.tar.gz')))
    expect(result.partial, JSON.stringify(result.manifest.tasks.filter((task) => !task.ok))).toBe(false)
    const {root, manifest, files} = unpack(result.file)
    for (const name of ['nodes', 'namespaces', 'pods', 'services', 'endpointslices', 'networkpolicies', 'events']) expect(files).toContain(`cluster/${name}.yaml`)
    for (const node of lab.nodes) {
      for (const file of ['kernel.txt', 'bpftool-prog.json', 'bpftool-map.json', 'bpftool-net.json', 'tc-filters.txt', 'ip-route.txt', 'iptables.txt', 'nftables.txt', 'sysctl.txt', 'dmesg.txt', 'maps/pinion_services_v2.json', 'maps/pinion_ct4_v2.json', 'maps/pinion_metrics_v2.json', 'events.json']) {
        expect(files).toContain(`nodes/${node.name}/${file}`)
      }
      expect(manifest.nodes[node.name].ok).toBe(true)
    }
    const services = JSON.parse(readFileSync(join(root, `nodes/${lab.nodes[0].name}/maps/pinion_services_v2.json`), 'utf8'))
    expect(services.some((row: {service?: string}) => row.service === 'default/web')).toBe(true)
    expect(manifest.clusterVersion).toMatch(/^v1\./)
    expect(Object.keys(manifest.checksums).sort()).toEqual(files.filter((file) => file !== 'manifest.json'))
    for (const [file, sum] of Object.entries(manifest.checksums)) expect(createHash('sha256').update(readFileSync(join(root, file))).digest('hex'), file).toBe(sum)
  }, 120_000)

  it('never contains the cluster token or the CA key', async () => {
    const result = await supportBundle(api, options(join(dir, 'secrets.tar.gz')))
    const everything = execFileSync('sh', ['-c', 'tar xzf "$1" -O', 'cat', result.file], {maxBuffer: 64 * 1024 * 1024}).toString()
    const {token, caKey} = labSecrets(lab.name)
    expect(everything.length).toBeGreaterThan(10_000)
    expect(everything).not.toContain(token)
    expect(everything).not.toContain(caKey.split('\n')[1])
  })

  it('limits events with --since', async () => {
    const old = new Date(Date.now() - 3 * 3600_000).toISOString()
    await api.core.createNamespacedEvent({namespace: 'default', body: {metadata: {name: 'ancient.1'}, involvedObject: {kind: 'Pod', name: 'web-1-1', namespace: 'default'}, reason: 'Ancient', message: 'three hours old', lastTimestamp: old as never, firstTimestamp: old as never}})
    const all = unpack((await supportBundle(api, options(join(dir, 'all.tar.gz')))).file)
    expect(readFileSync(join(all.root, 'cluster/events.yaml'), 'utf8')).toContain('Ancient')
    const recent = unpack((await supportBundle(api, options(join(dir, 'recent.tar.gz'), {sinceMs: 3600_000}))).file)
    const events = readFileSync(join(recent.root, 'cluster/events.yaml'), 'utf8')
    expect(events).not.toContain('Ancient')
    expect(events).toContain('Started')
  }, 180_000) // two bundles, next to the other lab tests on two cores

  it('still writes a bundle when a node is down, marks it failed, and the CLI exits partial', async () => {
    const down = readState(lab.name)!.nodes[1]
    process.kill(down.holderPid, 'SIGKILL')
    const file = join(dir, 'partial.tar.gz')
    const cli = spawnSync(`${REPO_ROOT}bin/run.js`, ['support-bundle', '--kubeconfig', lab.kubeconfig, '-f', file, '--pod-start-timeout', '5s'], {encoding: 'utf8'})
    expect(cli.status).toBe(3)
    expect(cli.stderr).toMatch(/wrote .*partial\.tar\.gz/)
    const {manifest, files, root} = unpack(file)
    expect(manifest.nodes[lab.nodes[0].name].ok).toBe(true)
    expect(manifest.nodes[down.name]).toMatchObject({ok: false, fallback: 'api', error: expect.stringMatching(/cannot run|down/)})
    expect(files).toContain(`nodes/${down.name}/api/node.yaml`)
    expect(files).toContain(`nodes/${down.name}/api/logs/default_web-2-1.log`)
    expect(readFileSync(join(root, 'failed.txt'), 'utf8')).toContain(`node ${down.name}`)
  })
})
