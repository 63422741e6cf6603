/**
 * Rules in the shape kube-proxy writes, for N Services with B backends each:
 * iptables mode (KUBE-SERVICES -> KUBE-SVC-* -> KUBE-SEP-* with statistic
 * random) and nftables mode (verdict maps, numgen). VIP i is vipOf(i),
 * backends are backendOf(i * B + j):8080.
 */
import {createHash} from 'node:crypto'
import {backendOf, vipOf} from './lib.js'

const chainId = (text: string) => createHash('sha256').update(text).digest('base64').replace(/[^A-Z0-9]/gi, '').slice(0, 16).toUpperCase()

export function iptablesRules(services: number, backends: number): string {
  const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':KUBE-SERVICES - [0:0]', ':KUBE-MARK-MASQ - [0:0]']
  const rules: string[] = [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
  ]
  for (let i = 0; i < services; i++) {
    const svc = `KUBE-SVC-${chainId(`svc${i}`)}`
    lines.push(`:${svc} - [0:0]`)
    rules.push(`-A KUBE-SERVICES -d ${vipOf(i)}/32 -p tcp -m comment --comment "bench/svc-${i}:http cluster IP" -m tcp --dport 80 -j ${svc}`)
    for (let j = 0; j < backends; j++) {
      const ip = backendOf(i * backends + j)
      const sep = `KUBE-SEP-${chainId(`sep${i}-${j}`)}`
      lines.push(`:${sep} - [0:0]`)
      const left = backends - j
      rules.push(left > 1 ? `-A ${svc} -m comment --comment "bench/svc-${i}:http -> ${ip}:8080" -m statistic --mode random --probability ${(1 / left).toFixed(10)} -j ${sep}` : `-A ${svc} -m comment --comment "bench/svc-${i}:http -> ${ip}:8080" -j ${sep}`)
      rules.push(`-A ${sep} -s ${ip}/32 -m comment --comment "bench/svc-${i}:http" -j KUBE-MARK-MASQ`)
      rules.push(`-A ${sep} -p tcp -m comment --comment "bench/svc-${i}:http" -m tcp -j DNAT --to-destination ${ip}:8080`)
    }
  }
  return [...lines, ...rules, 'COMMIT', ''].join('\n')
}

export function nftablesRules(services: number, backends: number): string {
  const out = ['table ip kube-proxy {', '  chain mark-for-masquerade { meta mark set meta mark | 0x4000; }']
  const elements: string[] = []
  for (let i = 0; i < services; i++) {
    const chain = `service-${i}`
    elements.push(`${vipOf(i)} . tcp . 80 : goto ${chain}`)
    const verdicts: string[] = []
    for (let j = 0; j < backends; j++) {
      const ip = backendOf(i * backends + j)
      out.push(`  chain endpoint-${i}-${j} { ip saddr ${ip} jump mark-for-masquerade; meta l4proto tcp dnat to ${ip}:8080; }`)
      verdicts.push(`${j} : goto endpoint-${i}-${j}`)
    }
    out.push(`  chain ${chain} { numgen random mod ${backends} vmap { ${verdicts.join(', ')} }; }`)
  }
  out.push('  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; elements = { ' + elements.join(', ') + ' }; }')
  out.push('  chain services { ip daddr . meta l4proto . th dport vmap @service-ips; }')
  out.push('  chain nat-prerouting { type nat hook prerouting priority -100; policy accept; jump services; }')
  out.push('  chain nat-output { type nat hook output priority -100; policy accept; jump services; }')
  out.push('}')
  return out.join('\n') + '\n'
}
