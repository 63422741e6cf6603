import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {REPO_ROOT} from '../helpers/system.js'

function pinion(...args: string[]) {
  const result = spawnSync(`${REPO_ROOT}bin/run.js`, args, {encoding: 'utf8', env: {...process.env, NO_COLOR: '1'}})
  return {code: result.status, stdout: result.stdout, stderr: result.stderr}
}

describe('CLI conventions (built CLI)', () => {
  it('lists topics and commands in --help', () => {
    const {code, stdout} = pinion('--help')
    expect(code).toBe(0)
    expect(stdout).toMatch(/version/)
  })

  it('prints pure JSON on stdout for -o json', () => {
    const {code, stdout} = pinion('version', '-o', 'json')
    expect(code).toBe(0)
    expect(JSON.parse(stdout)).toMatchObject({version: expect.any(String), datapathAbi: 1})
  })

  it('policy-logging set with nothing named is refused before any cluster access (it would switch logging off)', () => {
    const {code, stdout, stderr} = pinion('policy-logging', 'set', '--kubeconfig', '/nonexistent/kubeconfig')
    expect(code).toBe(2)
    expect(stdout).toBe('')
    expect(stderr).toMatch(/say what to log: --allow and\/or --deny/)
  })

  it('exits 2 with one line on a bad flag, and no stack trace', () => {
    const {code, stdout, stderr} = pinion('version', '--no-such-flag')
    expect(code).toBe(2)
    expect(stdout).toBe('')
    expect(stderr.trim().split('\n')).toHaveLength(1)
    expect(stderr).toMatch(/^Error: .*no-such-flag/)
  })

  it('exits 2 on a bad flag value', () => {
    expect(pinion('version', '-o', 'xml').code).toBe(2)
    expect(pinion('status', '--timeout', 'soon').code).toBe(2)
  })

  it('refuses bad input with exit 2 and one line that keeps the reason, before touching any cluster', () => {
    // A kubeconfig whose server nothing answers: bad input must be refused before it is ever used.
    const dir = mkdtempSync(join(tmpdir(), 'pinion-cli-'))
    const kubeconfig = join(dir, 'kubeconfig')
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n')
    try {
      const cases: [string[], RegExp][] = [
        [['traceflow', '--source', 'a/b', '--dst-port', '70000'], /^Error: --dst-port: Expected an integer less than or equal to 65535/],
        [['install', '--concurrency', '0'], /^Error: --concurrency: Expected an integer greater than or equal to 1/],
        [['status', '--pin-root', "/sys/fs/bpf/y'; true; '"], /^Error: --pin-root may hold only letters/],
        [['status', '--pin-root', 'relative/path'], /^Error: --pin-root must be an absolute path/],
        [['map', 'dump', 'ct', '--filter', 'servce=x'], /^Error: --filter servce=x: ct4 has no field "servce"; its fields are scope, protocol/],
        [['map', 'dump', 'ct', '--filter', 'protocol=TCPX'], /^Error: --filter protocol=TCPX: protocol is one of TCP, UDP, ICMP, SCTP/],
        [['map', 'dump', 'nosuchmap'], /^Error: unknown map "nosuchmap": valid maps are/],
        [['status', '--transport', 'ssh', '--ssh-key', join(dir, 'missing')], /^Error: --ssh-key \S+missing: no such file/],
        [['status', '--transport', 'ssh', '--ssh-hosts', 'n1=10.0.0.1:99999'], /^Error: --ssh-hosts n1=10.0.0.1:99999: port 99999 is not between 1 and 65535/],
        [['status', '--ssh-hosts', 'n1=10.0.0.1'], /^Error: --ssh-hosts and --ssh-key need --transport ssh/],
        [['lab', 'up', '--pods-per-node', '100'], /^Error: --pods-per-node must be between 0 and 20/],
        [['status', '--timeout', '0s'], /^Error: --timeout must be longer than 0/],
      ]
      for (const [args, message] of cases) {
        const result = pinion(...args, ...(args[0] === 'lab' ? [] : ['--kubeconfig', kubeconfig]))
        expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2)
        expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1)
        expect(result.stderr.trim(), args.join(' ')).toMatch(message)
      }
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
