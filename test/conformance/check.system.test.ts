/*
 * The NetworkPolicy conformance suite against the real dataplane in a lab:
 * every scenario's observed matrix must equal the model's.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {Clients} from '../../src/cluster/kubeconfig.js'
import {connectivityCheck} from '../../src/conformance/check.js'
import {DEFAULT_PIN_ROOT} from '../../src/datapath/catalogue.js'
import {install} from '../../src/install/install.js'
import type {LabSummary} from '../../src/lab/lab.js'
import {DEFAULT_IMAGE} from '../../src/nodes/debug-pods.js'
import {defaultSshOptions} from '../../src/nodes/ssh-shell.js'
import {startLab, stopLab} from '../helpers/lab.js'

let lab: LabSummary
let api: Clients
const access = {transport: 'pod' as const, image: DEFAULT_IMAGE, concurrency: 4, podStartTimeoutMs: 20_000, ssh: defaultSshOptions(), sshHosts: {}}

beforeAll(async () => {
  ;({lab, api} = await startLab('conf', 2, 0))
  expect((await install(api, {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false, dryRun: false})).nodes.every((outcome) => outcome.ok)).toBe(true)
})

afterAll(async () => {
  await stopLab(lab)
})

describe('pinion connectivity check', () => {
  it('every scenario matches the model of Kubernetes semantics', async () => {
    const results = await connectivityCheck(api, {prefix: 'cc-', image: 'pinion.dev/lab-server:1', pinRoot: DEFAULT_PIN_ROOT, probeTimeoutMs: 1500, access})
    expect(results.map((result) => result.name)).toEqual([
      'no-policies', 'default-deny-ingress', 'default-deny-egress', 'allow-all-ingress', 'pod-selector', 'namespace-selector',
      'pod-and-namespace-one-peer', 'pod-and-namespace-separate-peers', 'ipblock-except', 'named-port', 'port-range',
      'policies-add-up', 'egress-to-service', 'policy-update', 'replies-of-allowed',
    ])
    const mismatches = results.flatMap((result) => result.steps.flatMap((step) => step.mismatches.map((cell) => `${result.name}: ${cell.from} -> ${cell.to} ${cell.probe} expected ${cell.expected} got ${cell.observed}`)))
    expect(mismatches).toEqual([])
    // The suite has teeth: most scenarios deny something.
    const denied = results.flatMap((result) => result.steps.flatMap((step) => step.cells)).filter((cell) => !cell.expected)
    expect(denied.length).toBeGreaterThan(300)
  }, 240_000)
})
