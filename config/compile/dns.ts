// What the sidecar's DNS proxy knows (Istio's DNS capture, ISTIO_META_DNS_CAPTURE, with
// ISTIO_META_DNS_AUTO_ALLOCATE): every ServiceEntry host with plain-IP `addresses` resolves to them;
// a host without `addresses` (not a wildcard) gets a VIP of its own from Istio's class-E range
// 240.240.0.0/16, and the sidecar's listeners then catch connections to it like a declared address
// (a TCP service gets `<vip>_<port>`). VIPs go out in sorted host order from 240.240.0.1, so a
// reload with the same hosts keeps them; adding a host can move the ones after it, as Istio's
// early allocator did. The seed's S7 has `addresses: [127.255.0.2]`, so its name is answered with that.

import { isPlainIp } from './cidr';
import type { Registry, Service } from './registry';

/** Istio's auto-allocation range (pilot `AutoAllocateIPs`: 240.240.0.0/16). */
const VIP_PREFIX = '240.240.';
const MAX_VIPS = 65_534;

/** Give every host without addresses a VIP (replaces those services in both collections). */
export function allocateVips(services: Service[], byHost: Map<string, Service>): void {
  const wanting = services.filter((s) => s.addresses.length === 0 && !s.host.startsWith('*')).map((s) => s.host).sort();
  const vip = new Map<string, string>();
  wanting.slice(0, MAX_VIPS).forEach((host, i) => {
    const n = i + 1;
    vip.set(host, `${VIP_PREFIX}${n >> 8}.${n & 255}`);
  });
  for (let i = 0; i < services.length; i++) {
    const s = services[i]!;
    const a = vip.get(s.host);
    if (a === undefined) continue;
    const withVip: Service = { ...s, addresses: [a] };
    services[i] = withVip;
    byHost.set(s.host, withVip);
  }
}

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
