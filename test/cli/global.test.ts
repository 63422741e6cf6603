import {spawnSync} from 'node:child_process'
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
})
