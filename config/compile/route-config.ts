// Virtual hosts -> a RouteConfig with its lookup tables precomputed: exact domains in a Map
// (with and without `:port`), `*.suffix` domains longest first, `*` as the default host
// (compiled matchers, never a scan of raw config per request).

import type { Route, RouteConfig, VirtualHost } from './snapshot';
import { BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER } from './snapshot';
import type { OutboundPolicy } from './snapshot';
import { frozenMap } from './freeze';

export function buildRouteConfig(name: string, virtualHosts: readonly VirtualHost[], defaultHost: VirtualHost | null): RouteConfig {
  const exact = new Map<string, VirtualHost>();
  const wildcard: { suffix: string; host: VirtualHost }[] = [];
  let def = defaultHost;
  for (const vh of virtualHosts) {
    for (const raw of vh.domains) {
      const d = raw.toLowerCase();
      if (d === '*') {
        if (def === null) def = vh;
      } else if (d.startsWith('*.')) {
        // Wildcards are matched on the host without its port; `*.x:80` is the same suffix.
        const suffix = d.slice(1).replace(/:\d+$/, '');
        if (!wildcard.some((w) => w.suffix === suffix)) wildcard.push({ suffix, host: vh });
      } else if (!exact.has(d)) {
        exact.set(d, vh); // first virtual host to claim a domain keeps it, as Envoy rejects duplicates
      }
    }
  }
  wildcard.sort((a, b) => b.suffix.length - a.suffix.length);
  const all = def !== null && !virtualHosts.includes(def) ? [...virtualHosts, def] : virtualHosts;
  return { name, virtualHosts: all, exactDomains: frozenMap(exact), wildcardDomains: wildcard, defaultHost: def };
}

/** Istio's catch-all virtual host for unknown HTTP hosts on a sidecar. */
export function catchAllHttpHost(policy: OutboundPolicy): VirtualHost {
  const route: Route = policy === 'ALLOW_ANY'
    ? {
      name: 'allow_any', source: null,
      match: { uri: null, scheme: null, method: null, authority: null, headers: [], queryParams: [] },
      action: {
        kind: 'forward', clusters: { entries: [{ cluster: PASSTHROUGH_CLUSTER, weight: 1 }], totalWeight: 1 },
        timeoutMs: 0, rewrite: null, requestHeaders: null, responseHeaders: null, retry: null,
      },
    }
    : {
      name: 'block_all', source: null,
      match: { uri: null, scheme: null, method: null, authority: null, headers: [], queryParams: [] },
      action: { kind: 'direct', status: 502, body: '' },
    };
  return { name: route.name, domains: ['*'], routes: [route] };
}

export function catchAllTcpCluster(policy: OutboundPolicy): string {
  return policy === 'ALLOW_ANY' ? PASSTHROUGH_CLUSTER : BLACKHOLE_CLUSTER;
}
