import {spawn} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {Clients} from '../../src/cluster/kubeconfig.js'
import type {LabSummary} from '../../src/lab/lab.js'
import {waitFor} from '../../src/lib/wait.js'
import {copyIn, copyOut} from '../../src/nodes/copy.js'
import {DEBUG_LABEL, DEBUG_NAMESPACE, DEFAULT_IMAGE, deleteDebugPods} from '../../src/nodes/debug-pods.js'
import {type NodeAccessOptions, withNodeAccess} from '../../src/nodes/node-access.js'
import {ShellTimeoutError} from '../../src/nodes/shell.js'
import {defaultSshOptions} from '../../src/nodes/ssh-shell.js'
import {startLab, stopLab} from '../helpers/lab.js'
import {REPO_ROOT} from '../helpers/system.js'

let lab: LabSummary
let api: Clients
const options = (overrides: Partial<NodeAccessOptions> = {}): NodeAccessOptions => ({transport: 'pod', image: DEFAULT_IMAGE, concurrency: 4, podStartTimeoutMs: 20_000, ssh: defaultSshOptions(), sshHosts: {}, ...overrides})
const debugPods = async () => (await api.core.listNamespacedPod({namespace: DEBUG_NAMESPACE, labelSelector: `${DEBUG_LABEL}=true`})).items

beforeAll(async () => {
  ;({lab, api} = await startLab('acc', 3, 0))
})

afterAll(async () => {
  await stopLab(lab)
})

describe('debug pods', () => {
  it('run one privileged host pod per node, exec in each, and are deleted afterwards', async () => {
    const seen = await withNodeAccess(api, options(), async (access) => {
      const results = await access.forEach(await access.nodes(), async (shell) => (await shell.run(['hostname'])).stdout.toString().trim())
      const pods = await debugPods()
      expect(pods).toHaveLength(3)
      const spec = pods[0].spec!
      expect(spec).toMatchObject({hostNetwork: true, hostPID: true, restartPolicy: 'Never', tolerations: [{operator: 'Exists'}]})
      expect(spec.activeDeadlineSeconds).toBeGreaterThan(0)
      expect(spec.containers[0].securityContext?.privileged).toBe(true)
      expect(spec.volumes!.map((volume) => volume.hostPath!.path)).toEqual(expect.arrayContaining(['/sys/fs/bpf', '/sys/kernel/debug', '/proc', '/lib/modules', '/var/log']))
      const namespace = await api.core.readNamespace({name: DEBUG_NAMESPACE})
      expect(namespace.metadata!.labels!['pod-security.kubernetes.io/enforce']).toBe('privileged')
      return results.map((result) => result.value)
    })
    expect(seen).toEqual(lab.nodes.map((node) => node.name))
    expect(await debugPods()).toHaveLength(0)
  })

  it('copies files in and out with verified checksums, streams large output, reports exit codes and timeouts', async () => {
    await withNodeAccess(api, options(), async (access) => {
      const shell = await access.shell(lab.nodes[0].name)
      const blob = Buffer.from(Array.from({length: 300_000}, (_, i) => (i * 7) & 0xff))
      await copyIn(shell, '/tmp/pinion-copy-test', [{name: 'blob.bin', data: blob}, {name: 'note.txt', data: Buffer.from('hello')}])
      expect((await copyOut(shell, '/tmp/pinion-copy-test/blob.bin')).equals(blob)).toBe(true)
      await shell.run(['rm', '-rf', '/tmp/pinion-copy-test'])
      const big = await shell.run(['head', '-c', '5000000', '/dev/zero'])
      expect(big.stdout.length).toBe(5_000_000)
      expect((await shell.run(['sh', '-c', 'exit 7'])).exitCode).toBe(7)
      await expect(shell.run(['sleep', '5'], {timeoutMs: 300})).rejects.toThrow(ShellTimeoutError)
    })
  })

  it('fails fast with the pod\'s own reason, and one node\'s failure never aborts the others', async () => {
    const started = Date.now()
    await expect(withNodeAccess(api, options({image: 'example.invalid/tools:nonexistent'}), (access) => access.shell(lab.nodes[0].name))).rejects.toThrow(/ImagePullBackOff/)
    expect(Date.now() - started).toBeLessThan(10_000)
    const results = await withNodeAccess(api, options(), async (access) => access.forEach(await access.nodes(), async (shell, node) => {
      if (node === lab.nodes[1].name) throw new Error('boom')
      return (await shell.run(['true'])).exitCode
    }))
    expect(results.map((result) => result.ok)).toEqual([true, false, true])
    expect(results[1].error).toBe('boom')
    expect(await debugPods()).toHaveLength(0)
  })

  it('deletes its pods when the CLI is interrupted, and `pinion cleanup` removes what a killed CLI left', async () => {
    const cli = (signal: NodeJS.Signals) => new Promise<number | null>((resolve) => {
      const child = spawn(`${REPO_ROOT}bin/run.js`, ['node', 'exec', '--kubeconfig', lab.kubeconfig, '--node', lab.nodes[0].name, '--', 'sleep', '30'], {stdio: 'ignore'})
      void waitFor('the CLI\'s debug pod to run', async () => (await debugPods()).some((pod) => pod.status?.phase === 'Running'), {timeoutMs: 20_000}).then(() => child.kill(signal))
      child.on('exit', (code) => resolve(code))
    })
    expect(await cli('SIGTERM')).toBe(143)
    expect(await debugPods()).toHaveLength(0)
    await cli('SIGKILL')
    expect(await debugPods()).toHaveLength(1)
    expect(await deleteDebugPods(api.core)).toHaveLength(1)
    expect(await debugPods()).toHaveLength(0)
  })
})
