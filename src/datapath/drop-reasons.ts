/**
 * Mirror of bpf/include/drop_reasons.h (the single definition). The ABI test
 * parses that header and fails when this table differs.
 */
export const DROP_REASONS = [
  {code: 0, id: 'FORWARDED', text: 'forwarded'},
  {code: 1, id: 'POLICY_DENIED', text: 'policy denied'},
  {code: 2, id: 'NO_SERVICE_BACKEND', text: 'service has no backends'},
  {code: 3, id: 'MALFORMED_PACKET', text: 'malformed or truncated packet'},
  {code: 4, id: 'SPOOFED_SOURCE', text: 'source address not owned by endpoint'},
  {code: 5, id: 'CT_CREATE_FAILED', text: 'conntrack entry could not be created'},
  {code: 6, id: 'CSUM_ERROR', text: 'checksum update failed'},
  {code: 7, id: 'SCTP_PORT_XLATE', text: 'SCTP port translation unsupported'},
  {code: 8, id: 'FRAGMENT_UNSUPPORTED', text: 'non-first IP fragment'},
  {code: 9, id: 'BACKEND_MISSING', text: 'service slot points at no backend'},
  {code: 10, id: 'UNKNOWN_ENDPOINT', text: 'interface has no endpoint'},
  {code: 11, id: 'NOT_IPV4', text: 'passed: not IPv4'},
] as const

export type DropReasonId = (typeof DROP_REASONS)[number]['id']

export const DropReason = Object.fromEntries(DROP_REASONS.map((reason) => [reason.id, reason.code])) as {
  [K in DropReasonId]: number
}

export function dropReasonText(code: number): string {
  return DROP_REASONS.find((reason) => reason.code === code)?.text ?? `unknown reason ${code}`
}

export function dropReasonId(code: number): string {
  return DROP_REASONS.find((reason) => reason.code === code)?.id ?? `UNKNOWN_${code}`
}
