/*
 * Upgrades carry conntrack over from a retired layout (pinion_ct4, u16 rev-NAT
 * index) into its successor (pinion_ct4_v2), so established connections and
 * their Service backends survive the first-release -> current upgrade.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {mapPinPath} from '../../src/datapath/catalogue.js'
import {CT_SCOPE} from '../../src/datapath/constants.js'
import {ct4Key} from '../../src/datapath/structs.js'
import {ctEntryV1, migrateRetiredMaps} from '../../src/sync/migrate.js'
import {runChecked} from '../../src/nodes/shell.js'
import {DatapathFixture} from '../helpers/datapath-fixture.js'

let dp: DatapathFixture

beforeAll(async () => {
  dp = await DatapathFixture.create('migrate', [])
})

afterAll(async () => {
  await dp?.destroy()
})

describe('map migration on upgrade', () => {
  it('does nothing when no retired map is pinned', async () => {
    expect(await migrateRetiredMaps(dp.bpftool, dp.pinRoot, new Set(['pinion_ct4_v2', 'pinion_config']))).toBe(0)
  })

  it('copies every conntrack entry into the new layout, field by field', async () => {
    const old = mapPinPath(dp.pinRoot, 'pinion_ct4')
    await runChecked(dp.shell, ['bpftool', 'map', 'create', old, 'type', 'lru_hash', 'key', '16', 'value', String(ctEntryV1.size), 'entries', '64', 'name', 'pinion_ct4'])
    const flows = [40000, 40001].map((sport, i) => ({
      key: {daddr: '10.244.1.20', saddr: '10.244.1.10', dport: 8080, sport, proto: 6, scope: i === 0 ? CT_SCOPE.EGRESS : CT_SCOPE.SERVICE},
      value: {txPackets: 7 + i, txBytes: 700, rxPackets: 5, rxBytes: 500, lifetime: 12345, revNatIndex: 65535 - i, flags: 1, srcIdentity: 1001, backendId: 11, policyCookie: 0x701, txTcpFlags: 0x18, rxTcpFlags: 0x12, egressRefreshed: 3},
    }))
    await dp.bpftool.batch(old, flows.map((flow) => ({key: ct4Key.encode(flow.key), value: ctEntryV1.encode(flow.value)})))
    expect(await migrateRetiredMaps(dp.bpftool, dp.pinRoot, new Set(['pinion_ct4', 'pinion_config']))).toBe(2)
    const rows = await dp.dump('pinion_ct4_v2')
    for (const flow of flows) {
      const row = rows.find((candidate) => candidate.key.sport === flow.key.sport)
      expect(row?.key).toMatchObject(flow.key)
      expect(row?.value).toMatchObject(flow.value)
    }
  })
})
