// Sidecar outbound listeners. The capture listener hands each
// connection to the virtual listener for its original destination (`<ip>_<port>`, else
// `0.0.0.0_<port>`), as Envoy's `use_original_dst`. Per ServiceEntry port protocol:
//   HTTP-ish        -> `0.0.0.0_P`, HTTP connection manager, route config `P`, vhost per host
//   HTTPS/TLS       -> SNI chains (VS `tls` matches, else one per service host), then catch-all
//   TCP and friends -> TCP proxy with VS `tcp` rules, else `outbound|P||host`
//   absent (auto)   -> HTTP chain selected by sniffed ALPN `http/1.1`/`h2c`, then the TCP chain
// Bind: `<ip>_P` when the ServiceEntry has exactly one plain IP address, else `0.0.0.0_P` with
// CIDR/multiple addresses as destination prefixes on the chain.

import { DEFAULT_RETRY_POLICY } from './route-policies';
import type { Protocol } from '../resources/types';
import type { Cidr, FilterChain, Listener, Route, VirtualHost } from './snapshot';
import { ConfigErrorCode } from '../errors';
import { clusterName, httpStatPrefix, listenerName, MESH_GATEWAY, shortDomainsOf, WILDCARD_ADDRESS } from './names';
import { buildHostSet } from './hosts';
import { isPlainIp, parseCidr } from './cidr';
import { buildHttpRoutes } from './http-routes';
import { buildRouteConfig } from './route-config';
import { buildTcpRoutes, buildTlsMatches, singleClusterRoute, tcpProxy } from './tcp-routes';
import type { BoundVirtualService, Registry, Service } from './registry';

const HTTP_PROTOCOLS: ReadonlySet<Protocol | undefined> = new Set<Protocol>(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB', 'HTTP_PROXY']);
const TLS_PROTOCOLS: ReadonlySet<Protocol | undefined> = new Set<Protocol>(['HTTPS', 'TLS']);

interface PortService {
  readonly svc: Service;
  readonly port: number;
  /** Destination prefixes when bound to 0.0.0.0 with CIDR or several addresses; null = any. */
  readonly prefixes: readonly Cidr[] | null;
}

interface Bucket {
  readonly address: string;
  readonly port: number;
  readonly http: PortService[];
  readonly tls: PortService[];
  readonly tcp: PortService[];
}

function bindOf(svc: Service): { address: string; prefixes: Cidr[] | null } {
  if (svc.addresses.length === 1 && isPlainIp(svc.addresses[0]!)) return { address: svc.addresses[0]!, prefixes: null };
  const prefixes = svc.addresses.map(parseCidr).filter((c): c is Cidr => c !== null);
  return { address: WILDCARD_ADDRESS, prefixes: prefixes.length > 0 ? prefixes : null };
}

function domainsOf(reg: Registry, svc: Service, port: number): string[] {
  const out = [svc.host, `${svc.host}:${port}`];
  for (const d of shortDomainsOf(svc.host, reg.opts.namespace)) out.push(d, `${d}:${port}`);
  for (const a of svc.addresses) if (isPlainIp(a)) out.push(a, `${a}:${port}`);
  return out;
}

function defaultRoute(svc: Service, port: number): Route {
  return {
    name: 'default',
    source: { kind: 'default', name: svc.entry.metadata.name, namespace: svc.entry.metadata.namespace, ruleIndex: -1, matchIndex: -1 },
    match: { uri: null, scheme: null, method: null, authority: null, headers: [], queryParams: [] },
    action: {
      kind: 'forward', clusters: { entries: [{ cluster: clusterName(port, '', svc.host), weight: 1 }], totalWeight: 1 },
      timeoutMs: 0, rewrite: null, requestHeaders: null, responseHeaders: null,
      retry: DEFAULT_RETRY_POLICY,
    },
  };
}

function httpChain(reg: Registry, b: Bucket, name: string, auto: boolean, catchAllHost: VirtualHost): FilterChain {
  const vhosts: VirtualHost[] = [];
  for (const ps of b.http) {
    const bound = reg.meshVirtualServiceFor(ps.svc.host);
    let routes = bound !== null ? buildHttpRoutes(reg, bound, { gateway: MESH_GATEWAY, port: b.port }) : [];
    // A VS whose rules are all for other ports leaves the service on its default route (Istio
    // only claims a service for a VS that produced routes).
    if (routes.length === 0) routes = [defaultRoute(ps.svc, b.port)];
    vhosts.push({ name: `${ps.svc.host}:${b.port}`, domains: domainsOf(reg, ps.svc, b.port), routes });
  }
  const routeName = b.address === WILDCARD_ADDRESS ? String(b.port) : name;
  return {
    name: auto ? `${name}|http` : name,
    match: { serverNames: null, transport: auto ? 'raw' : 'any', applicationProtocols: auto ? ['http/1.1', 'h2c'] : null, destinationPrefixes: null },
    tls: null,
    filter: { kind: 'http', statPrefix: httpStatPrefix(name), routeConfig: buildRouteConfig(routeName, vhosts, catchAllHost), httpsRedirect: false },
  };
}

function tlsChains(reg: Registry, b: Bucket, name: string): FilterChain[] {
  const chains: FilterChain[] = [];
  const done = new Set<BoundVirtualService>();
  const claimed = new Set<string>();
  for (const ps of b.tls) {
    const bound = reg.meshVirtualServiceFor(ps.svc.host);
    if (bound === null || (bound.vs.spec.tls ?? []).length === 0) continue;
    if (done.has(bound)) {
      claimed.add(ps.svc.host);
      continue;
    }
    done.add(bound);
    const matches = buildTlsMatches(reg, bound, { gateway: MESH_GATEWAY, port: b.port });
    if (matches.length > 0) claimed.add(ps.svc.host);
    for (const m of matches) {
      chains.push({
        name: `${name}|${m.match.sniHosts.join(',')}`,
        match: { serverNames: m.route.match.serverNames, transport: 'tls', applicationProtocols: null, destinationPrefixes: m.route.match.destinationPrefixes ?? ps.prefixes },
        tls: null,
        filter: tcpProxy([{ ...m.route, match: { destinationPrefixes: null, sourcePrefixes: null, serverNames: null } }], name),
      });
    }
  }
  // Without a VS tls route, each service host is matched on its own SNI (§3.3).
  for (const ps of b.tls) {
    if (claimed.has(ps.svc.host)) continue;
    const cluster = clusterName(b.port, '', ps.svc.host);
    chains.push({
      name: `${name}|${ps.svc.host}`,
      match: { serverNames: buildHostSet([ps.svc.host]), transport: 'tls', applicationProtocols: null, destinationPrefixes: ps.prefixes },
      tls: null,
      filter: tcpProxy([singleClusterRoute('default', cluster, null)], cluster),
    });
  }
  return chains;
}

function tcpChains(reg: Registry, b: Bucket, name: string): FilterChain[] {
  const chains: FilterChain[] = [];
  let unconditional: PortService | null = null;
  for (const ps of b.tcp) {
    if (ps.prefixes === null) {
      if (unconditional !== null) {
        reg.warn(ConfigErrorCode.TRAP, ps.svc.entry, 'spec.ports',
          `TCP port ${b.port} of ${ps.svc.host} shares ${b.address}:${b.port} with ${unconditional.svc.host} (${unconditional.svc.entry.origin.file}:${unconditional.svc.entry.origin.doc}), which declared it first and gets all its traffic; give the ServiceEntries distinct addresses`);
        continue;
      }
      unconditional = ps;
    }
    const bound = reg.meshVirtualServiceFor(ps.svc.host);
    let routes = bound !== null ? buildTcpRoutes(reg, bound, { gateway: MESH_GATEWAY, port: b.port }) : [];
    if (routes.length === 0) routes = [singleClusterRoute('default', clusterName(b.port, '', ps.svc.host), null)];
    chains.push({
      name: `${name}|tcp|${ps.svc.host}`,
      match: { serverNames: null, transport: 'any', applicationProtocols: null, destinationPrefixes: ps.prefixes },
      tls: null,
      filter: tcpProxy(routes, httpStatPrefix(name)),
    });
  }
  return chains;
}

export function catchAllChain(tcpCluster: string): FilterChain {
  return {
    name: 'catch-all',
    match: { serverNames: null, transport: 'any', applicationProtocols: null, destinationPrefixes: null },
    tls: null,
    filter: tcpProxy([singleClusterRoute(tcpCluster, tcpCluster, null)], tcpCluster),
  };
}

function unconditionalChain(c: FilterChain): boolean {
  const m = c.match;
  return m.serverNames === null && m.transport === 'any' && m.applicationProtocols === null && m.destinationPrefixes === null;
}

export function needsInspection(chains: readonly FilterChain[]): boolean {
  return chains.some((c) => c.match.serverNames !== null || c.match.applicationProtocols !== null || c.match.transport !== 'any');
}

export function buildSidecarListeners(reg: Registry, catchAllHost: VirtualHost, catchAllCluster: string): Map<string, Listener> {
  const buckets = new Map<string, Bucket>();
  const bucket = (address: string, port: number): Bucket => {
    const key = listenerName(address, port);
    let b = buckets.get(key);
    if (b === undefined) buckets.set(key, (b = { address, port, http: [], tls: [], tcp: [] }));
    return b;
  };
  for (const svc of reg.services) {
    for (const p of svc.ports) {
      if (p.protocol === 'UDP') continue; // Istio builds no listener for UDP
      if (HTTP_PROTOCOLS.has(p.protocol)) {
        bucket(WILDCARD_ADDRESS, p.number).http.push({ svc, port: p.number, prefixes: null });
        continue;
      }
      const bind = bindOf(svc);
      const b = bucket(bind.address, p.number);
      const ps = { svc, port: p.number, prefixes: bind.prefixes };
      if (TLS_PROTOCOLS.has(p.protocol)) b.tls.push(ps);
      else if (p.protocol === undefined) {
        b.http.push(ps);
        b.tcp.push(ps);
      } else b.tcp.push(ps);
    }
  }

  const out = new Map<string, Listener>();
  for (const [name, b] of buckets) {
    const hasTcp = b.tls.length + b.tcp.length > 0;
    const protocol = b.http.length > 0 ? (hasTcp ? 'auto' : 'http') : 'tcp';
    const chains: FilterChain[] = [];
    if (b.http.length > 0) chains.push(httpChain(reg, b, name, protocol === 'auto', catchAllHost));
    chains.push(...tlsChains(reg, b, name), ...tcpChains(reg, b, name));
    // Whatever no chain claims goes where unknown destinations go (§2.4 `virtualOutbound-catchall-tcp`).
    if (protocol !== 'http' && !chains.some(unconditionalChain)) chains.push(catchAllChain(catchAllCluster));
    out.set(name, { name, address: b.address, port: b.port, protocol, chains, needsTlsInspection: needsInspection(chains) });
  }
  return out;
}
