// VIP auto-allocation for the sidecar's DNS capture (dns.ts says what the DNS proxy answers): a
// ServiceEntry host without `addresses` (not a wildcard) gets a VIP of its own from Istio's class-E
// range 240.240.0.0/16, in sorted host order from 240.240.0.1, so a reload with the same hosts keeps
// them. Generic over the service shape so that registry.ts, which calls it, is not imported back.

/** Istio's auto-allocation range (pilot `AutoAllocateIPs`: 240.240.0.0/16). */
const VIP_PREFIX = '240.240.';
const MAX_VIPS = 65_534;

/** Give every host without addresses a VIP (replaces those services in both collections). */
export function allocateVips<S extends { readonly host: string; readonly addresses: readonly string[] }>(services: S[], byHost: Map<string, S>): void {
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
    const withVip: S = { ...s, addresses: [a] };
    services[i] = withVip;
    byHost.set(s.host, withVip);
  }
}
