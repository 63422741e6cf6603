import {describe, expect, it} from 'vitest'
import {datapathObject} from '../../src/datapath/object.js'
import {preflight} from '../../src/datapath/preflight.js'
import {LocalShell} from '../../src/nodes/local-shell.js'
import {requireSystem} from '../helpers/system.js'

/*
 * The preflight checks what the compiled object calls (read from the object at
 * build), on this machine's kernel, and names what a kernel lacks.
 */
describe('preflight', () => {
  it('the compat build for kernels before 6.2 calls no kfunc, and the same helpers', () => {
    const full = datapathObject().requirements
    const compat = datapathObject('pinion-compat.bpf.o').requirements
    expect(compat.kfuncs).toEqual([])
    expect(compat.helpers).toEqual(full.helpers)
  })

  it('requires exactly what the object calls: its helpers and its kfunc', () => {
    const requirements = datapathObject().requirements
    expect(requirements.kfuncs).toEqual(['bpf_cast_to_kern_ctx'])
    expect(requirements.helpers).toEqual(expect.arrayContaining(['bpf_jiffies64', 'bpf_skb_pull_data', 'bpf_map_lookup_elem', 'bpf_l4_csum_replace', 'bpf_perf_event_output']))
    // Helpers the datapath no longer calls (checksums are inline, packets read directly) are not demanded.
    for (const gone of ['bpf_skb_store_bytes', 'bpf_skb_load_bytes', 'bpf_l3_csum_replace']) expect(requirements.helpers).not.toContain(gone)
  })

  it('passes on this kernel and names the helpers and kfuncs a kernel lacks', async () => {
    requireSystem(['bpftool', 'tc'])
    const shell = new LocalShell()
    const here = await preflight(shell, '/sys/fs/bpf/pinion', datapathObject().requirements)
    expect(here.problems).toEqual([])
    const requirements = datapathObject().requirements
    const missing = await preflight(shell, '/sys/fs/bpf/pinion', {helpers: [...requirements.helpers, 'bpf_no_such_helper'], kfuncs: [...requirements.kfuncs, 'bpf_no_such_kfunc']})
    expect(missing.ok).toBe(false)
    expect(missing.missingHelpers).toEqual(['bpf_no_such_helper'])
    expect(missing.missingKfuncs).toEqual(['bpf_no_such_kfunc'])
    expect(missing.problems.join('\n')).toMatch(/lacks BPF helpers the datapath calls: bpf_no_such_helper \(Pinion needs Linux 6\.1 or newer\)/)
    expect(missing.problems.join('\n')).toMatch(/lacks kfuncs the datapath calls: bpf_no_such_kfunc/)
  })
})
