// Resolution of DNS-typed clusters (STRICT_DNS / LOGICAL_DNS). Uses getaddrinfo (dns.lookup), so
// /etc/hosts is honoured as Envoy's c-ares resolver does with its default config; results are
// cached per name and refreshed on the cluster's dnsRefreshMs by the cluster itself, never per
// connection. getaddrinfo gives no TTL; issue 4 adds TTL-aware re-resolution.

import dns from 'node:dns';

export interface Resolved {
  readonly addresses: readonly string[];
  readonly error: NodeJS.ErrnoException | null;
}

export function isIpLiteral(s: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(s) || s.includes(':');
}

export function resolveName(name: string, cb: (r: Resolved) => void): void {
  if (isIpLiteral(name)) {
    cb({ addresses: [name], error: null });
    return;
  }
  dns.lookup(name, { all: true }, (err, list) => {
    if (err) {
      cb({ addresses: [], error: err });
      return;
    }
    // IPv4 first: the mesh addresses sluice is tested with are v4, and Envoy's default
    // dns_lookup_family in Istio is V4_PREFERRED.
    const v4 = list.filter((a) => a.family === 4).map((a) => a.address);
    const v6 = list.filter((a) => a.family === 6).map((a) => a.address);
    cb({ addresses: [...new Set([...v4, ...v6])], error: null });
  });
}
