import {CT_STATE_NAME, OBSERVATION, TC_ACT} from './constants.js'
import {dropReasonId} from './drop-reasons.js'

/**
 * The result a program leaves in skb->cb[] when run with MARK_DRYRUN (see
 * bpf/include/pinion_abi.h): what synthetic traceflow reports per hook.
 */
export interface DryRunResult {
  verdict: 'forwarded' | 'dropped'
  dropReason?: string
  ctState: string
  loadBalanced: boolean
  policyChecked: boolean
  reverseNatted: boolean
  policyCookie: number
  backendId: number
  peerIdentity: number
  origDst: string
}

export function decodeDryRun(cb: readonly number[]): DryRunResult {
  const word = cb[0] >>> 0
  const action = word & 0xff
  const reason = (word >>> 8) & 0xff
  const observations = word >>> 24
  const orig = cb[4] >>> 0
  return {
    verdict: action === TC_ACT.SHOT ? 'dropped' : 'forwarded',
    dropReason: action === TC_ACT.SHOT ? dropReasonId(reason) : undefined,
    ctState: CT_STATE_NAME[(word >>> 16) & 0xff] ?? 'none',
    loadBalanced: Boolean(observations & OBSERVATION.LB),
    policyChecked: Boolean(observations & OBSERVATION.POLICY),
    reverseNatted: Boolean(observations & OBSERVATION.REV_NAT),
    policyCookie: cb[1] >>> 0,
    backendId: cb[2] >>> 0,
    peerIdentity: cb[3] >>> 0,
    // cb[4] holds a __be32 read as a host-order u32: its bytes are the address.
    origDst: [orig & 0xff, (orig >>> 8) & 0xff, (orig >>> 16) & 0xff, orig >>> 24].join('.'),
  }
}
