// What the sidecar's DNS proxy knows (Istio's DNS capture, ISTIO_META_DNS_CAPTURE, with
// ISTIO_META_DNS_AUTO_ALLOCATE): every ServiceEntry host with plain-IP `addresses` resolves to them;
// a host without `addresses` (not a wildcard) gets a VIP of its own from Istio's class-E range
// 240.240.0.0/16, and the sidecar's listeners then catch connections to it like a declared address
// (a TCP service gets `<vip>_<port>`). VIPs go out in sorted host order from 240.240.0.1, so a
// reload with the same hosts keeps them; adding a host can move the ones after it, as Istio's
// early allocator did. The seed's S7 has `addresses: [127.255.0.2]`, so its name is answered with that.

import { isPlainIp } from './cidr';
import type { Registry } from './registry';

/** host -> addresses, for the DNS proxy. */
export function buildDnsTable(reg: Registry): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>();
  for (const s of reg.services) {
    if (s.host.startsWith('*')) continue;
    const ips = s.addresses.filter(isPlainIp);
    if (ips.length > 0) out.set(s.host, ips);
  }
  return out;
}
