import {mkdtempSync, readdirSync, readFileSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'
import {RotatingLog} from '../../src/agent/policy-log.js'

let dir = ''
afterEach(() => {
  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe('the agent\'s policy log file', () => {
  it('rotates by size and keeps a bounded number of files, newest records in the live file', () => {
    dir = mkdtempSync(join(tmpdir(), 'pinion-policy-log-'))
    const log = new RotatingLog(join(dir, 'policy_action.log'), 1000, 3)
    for (let i = 0; i < 200; i++) log.write(JSON.stringify({n: i, pad: 'x'.repeat(40)}))
    expect(readdirSync(dir).sort()).toEqual(['policy_action.log', 'policy_action.log.1', 'policy_action.log.2', 'policy_action.log.3'])
    for (const file of readdirSync(dir)) expect(statSync(join(dir, file)).size).toBeLessThanOrEqual(1000)
    const live = readFileSync(join(dir, 'policy_action.log'), 'utf8').trim().split('\n').map((line) => JSON.parse(line).n as number)
    expect(live[live.length - 1]).toBe(199)
    const older = readFileSync(join(dir, 'policy_action.log.1'), 'utf8').trim().split('\n').map((line) => JSON.parse(line).n as number)
    expect(older[older.length - 1]).toBe(live[0] - 1)
  })
})
