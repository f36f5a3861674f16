// Gateway listeners. The proxy serves the Gateways whose
// selector ⊆ its labels; one listener `0.0.0.0_<port>` per server port, servers on one port merged.
// Which VirtualService block a server uses:
//   HTTP/HTTP2/GRPC, or HTTPS terminated (SIMPLE/MUTUAL/ISTIO_MUTUAL) -> `http` rules
//   HTTPS/TLS PASSTHROUGH (also `tls: {}`)                             -> `tls` rules by SNI (+ `tcp`)
//   TLS terminated, TCP/MONGO/REDIS/MYSQL                              -> `tcp` rules
//   TLS AUTO_PASSTHROUGH                                               -> no VS: SNI names the cluster
// A VS binds a server when it lists the gateway and one of its hosts overlaps a server host
// (`[ns/]dnsName`, ns `*` = any, `.` = the gateway's). outboundPolicy does not apply here (§3.4).

import type { Gateway, Server, ServerTlsSettings, TlsProtocolVersion } from '../resources/types';
import type { Cluster, DownstreamTls, FilterChain, Listener, Route, TcpRoute, VirtualHost } from './snapshot';
import { ConfigErrorCode } from '../errors';
import {
  gatewayPlainRouteName, gatewayTlsRouteName, globalAliasOf, httpStatPrefix, listenerName, sniName, WILDCARD_ADDRESS,
} from './names';
import { buildHostSet, hostCovers, hostsOverlap, labelsSubsetOf, narrowerHost } from './hosts';
import { buildHttpRoutes } from './http-routes';
import { buildRouteConfig } from './route-config';
import { buildTcpRoutes, buildTlsMatches, singleClusterRoute, tcpProxy } from './tcp-routes';
import { needsInspection } from './sidecar';
import { sniDnatCluster } from './clusters';
import { workloadCerts } from './traffic-policy';
import type { BoundVirtualService, Registry, Service } from './registry';

const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB', 'HTTP_PROXY']);
const TERMINATING = new Set(['SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL']);

interface ServerRef {
  readonly gw: Gateway;
  /** `ns/name`, as VirtualService `gateways` entries resolve. */
  readonly gwName: string;
  readonly server: Server;
  readonly index: number;
}

type ServerKind = 'http' | 'https' | 'passthrough' | 'auto-passthrough' | 'tls-tcp' | 'tcp';

function kindOf(s: Server): ServerKind {
  const p = s.port.protocol;
  const mode = s.tls === undefined ? undefined : s.tls.mode ?? 'PASSTHROUGH'; // `tls: {}` = PASSTHROUGH (§3.6)
  if (HTTP_PROTOCOLS.has(p)) return 'http';
  if (mode === 'AUTO_PASSTHROUGH') return 'auto-passthrough';
  const terminated = mode !== undefined && TERMINATING.has(mode);
  if (p === 'HTTPS') return terminated ? 'https' : 'passthrough';
  if (p === 'TLS') return terminated ? 'tls-tcp' : 'passthrough';
  return 'tcp';
}

interface ServerHost { readonly ns: string; readonly dns: string }

function serverHosts(ref: ServerRef): ServerHost[] {
  return ref.server.hosts.map((h) => {
    const slash = h.indexOf('/');
    if (slash < 0) return { ns: '*', dns: h.toLowerCase() };
    const ns = h.slice(0, slash);
    return { ns: ns === '.' ? ref.gw.metadata.namespace : ns, dns: h.slice(slash + 1).toLowerCase() };
  });
}

/** The VS hosts (narrowed to the server's) through which `b` binds `ref`; empty = not bound. */
function boundHosts(b: BoundVirtualService, ref: ServerRef): string[] {
  if (!b.gateways.includes(ref.gwName)) return [];
  const out: string[] = [];
  for (const sh of serverHosts(ref)) {
    if (sh.ns !== '*' && sh.ns !== b.vs.metadata.namespace) continue;
    for (const h of b.hosts) {
      if (!hostsOverlap(h, sh.dns)) continue;
      const picked = narrowerHost(h, sh.dns);
      if (!out.includes(picked)) out.push(picked);
    }
  }
  return out;
}

const TLS_VERSIONS: Record<TlsProtocolVersion, DownstreamTls['minVersion'] | null> = {
  TLS_AUTO: null, TLSV1_0: 'TLSv1', TLSV1_1: 'TLSv1.1', TLSV1_2: 'TLSv1.2', TLSV1_3: 'TLSv1.3',
};

function downstreamTls(reg: Registry, ref: ServerRef, tls: ServerTlsSettings, alpn: readonly string[]): DownstreamTls {
  const mode = tls.mode as DownstreamTls['mode'];
  const path = `spec.servers[${ref.index}].tls`;
  let certFile = tls.serverCertificate ?? '';
  let keyFile = tls.privateKey ?? '';
  let caFile = tls.caCertificates ?? null;
  if (mode === 'ISTIO_MUTUAL') {
    const c = workloadCerts(reg.opts.certsDir);
    ({ certFile, keyFile, caFile } = c);
  } else if (certFile === '' || keyFile === '') {
    reg.warn(ConfigErrorCode.SEMANTIC, ref.gw, path,
      tls.credentialName !== undefined
        ? `credentialName ${tls.credentialName} needs Kubernetes secrets, which sluice does not read: set serverCertificate and privateKey (file paths)`
        : `mode ${mode} needs serverCertificate and privateKey: TLS handshakes on port ${ref.server.port.number} will fail`);
  }
  if ((mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') && caFile === null) {
    reg.warn(ConfigErrorCode.SEMANTIC, ref.gw, `${path}.caCertificates`, `mode ${mode} needs caCertificates to verify client certificates`);
  }
  return {
    mode, certFile, keyFile,
    caFile: mode === 'SIMPLE' ? null : caFile,
    subjectAltNames: tls.subjectAltNames ?? [],
    minVersion: TLS_VERSIONS[tls.minProtocolVersion ?? 'TLS_AUTO'] ?? 'TLSv1.2',
    maxVersion: TLS_VERSIONS[tls.maxProtocolVersion ?? 'TLS_AUTO'] ?? 'TLSv1.3',
    cipherSuites: tls.cipherSuites ?? null,
    alpn,
  };
}

/** SNI names a terminated server accepts; null when a server host is `*` (any SNI, or none). */
function serverSni(ref: ServerRef) {
  const names = serverHosts(ref).map((h) => h.dns);
  return names.includes('*') ? null : buildHostSet(names);
}

function httpVirtualHosts(reg: Registry, refs: readonly ServerRef[], port: number): VirtualHost[] {
  const byName = new Map<string, { name: string; domains: string[]; routes: Route[] }>();
  for (const ref of refs) {
    for (const b of reg.virtualServices) {
      const hosts = boundHosts(b, ref);
      if (hosts.length === 0) continue;
      const routes = buildHttpRoutes(reg, b, { gateway: ref.gwName, port });
      if (routes.length === 0) continue;
      for (const h of hosts) {
        const name = `${h}:${port}`;
        const existing = byName.get(name);
        // Istio merges VirtualServices for one host on a gateway (`CombineVHostRoutes`).
        if (existing !== undefined) existing.routes.push(...routes);
        else byName.set(name, { name, domains: h === '*' ? ['*'] : [h, `${h}:${port}`], routes: [...routes] });
      }
    }
  }
  return [...byName.values()];
}

function tcpRoutesFor(reg: Registry, ref: ServerRef, port: number): TcpRoute[] {
  const routes: TcpRoute[] = [];
  for (const b of reg.virtualServices) {
    if (boundHosts(b, ref).length === 0) continue;
    routes.push(...buildTcpRoutes(reg, b, { gateway: ref.gwName, port }));
  }
  return routes;
}

const ANY_MATCH = { serverNames: null, transport: 'any', applicationProtocols: null, destinationPrefixes: null } as const;

/**
 * AUTO_PASSTHROUGH: one chain per SNI `outbound_.PORT_.SUBSET_.HOST`, its
 * cluster named by that SNI, no VirtualService. HOST is either a service here whose host the
 * server's hosts cover (`*.local` -> `httpbin.bar.svc.cluster.local`), or the `.global` name of a
 * local Kubernetes service when the server's hosts cover that name (`*.global`): the connection
 * goes to the local service's cluster, as Istio 1.1's `tcp_cluster_rewrite` (`.global` ->
 * `.svc.cluster.local`) did, so subsets are the local DestinationRules'. A ServiceEntry declaring
 * the `.global` host itself (cluster1's egress gateway in S8) is routed as written, unless a local
 * service claims the name through the rewrite (the rewrite ran on every connection in 1.1).
 */
function autoPassthroughChains(reg: Registry, ref: ServerRef, name: string, port: number, extraClusters: Map<string, Cluster>): FilterChain[] {
  const hosts = serverHosts(ref);
  const covered = (svc: Service, host: string): boolean =>
    hosts.some((h) => (h.ns === '*' || h.ns === svc.entry.metadata.namespace) && hostCovers(h.dns, host));
  /** SNI -> cluster, in the order chains are built. */
  const bySni = new Map<string, Cluster>();
  const rewritten = new Set<string>();
  for (const svc of reg.services) {
    // SNI-DNAT is built only for mesh-internal services (§3.5 `location`, §4).
    if (svc.location === 'MESH_EXTERNAL') continue;
    const alias = globalAliasOf(svc.host);
    const direct = covered(svc, svc.host);
    const viaAlias = alias !== null && covered(svc, alias);
    if (!direct && !viaAlias) continue;
    const dr = reg.destinationRuleFor(svc.host, svc.entry.metadata.namespace);
    const subsets = ['', ...(dr?.spec.subsets ?? []).map((s) => s.name)];
    for (const p of svc.ports) {
      for (const subset of subsets) {
        const c = sniDnatCluster(reg, svc, p, subset, port);
        if (c === null) continue;
        extraClusters.set(c.name, c);
        if (direct && !rewritten.has(c.name)) bySni.set(c.name, c);
        if (viaAlias) {
          const sni = sniName(p.number, subset, alias);
          bySni.set(sni, c);
          rewritten.add(sni);
        }
      }
    }
  }
  const chains: FilterChain[] = [];
  for (const [sni, c] of bySni) {
    chains.push({
      name: `${name}|${sni}`,
      match: { serverNames: buildHostSet([sni]), transport: 'tls', applicationProtocols: null, destinationPrefixes: null },
      tls: null,
      filter: tcpProxy([singleClusterRoute(c.name, c.name, null)], c.name),
    });
  }
  return chains;
}

function selectedGateways(reg: Registry): Gateway[] {
  return reg.resources.gateways.filter((g) => labelsSubsetOf(g.spec.selector, reg.opts.labels));
}

export function buildGatewayListeners(reg: Registry, extraClusters: Map<string, Cluster>): Map<string, Listener> {
  const byPort = new Map<number, ServerRef[]>();
  for (const gw of selectedGateways(reg)) {
    gw.spec.servers.forEach((server, index) => {
      const refs = byPort.get(server.port.number) ?? [];
      refs.push({ gw, gwName: `${gw.metadata.namespace}/${gw.metadata.name}`, server, index });
      byPort.set(server.port.number, refs);
    });
  }

  const out = new Map<string, Listener>();
  for (const [port, refs] of byPort) {
    const name = listenerName(WILDCARD_ADDRESS, port);
    const statPrefix = httpStatPrefix(name);
    const tlsChains: FilterChain[] = [];
    const plainHttp: ServerRef[] = [];
    const plainTcp: TcpRoute[] = [];
    let hasPlainTcp = false;
    for (const ref of refs) {
      const kind = kindOf(ref.server);
      if (kind === 'http') plainHttp.push(ref);
      else if (kind === 'tcp') {
        hasPlainTcp = true;
        plainTcp.push(...tcpRoutesFor(reg, ref, port));
      } else if (kind === 'https') {
        const portName = ref.server.port.name ?? `https-${port}`;
        const rc = buildRouteConfig(gatewayTlsRouteName(port, portName, ref.gw.metadata.name, ref.gw.metadata.namespace), httpVirtualHosts(reg, [ref], port), null);
        tlsChains.push({
          name: `${name}|${rc.name}`,
          match: { serverNames: serverSni(ref), transport: 'tls', applicationProtocols: null, destinationPrefixes: null },
          tls: downstreamTls(reg, ref, ref.server.tls!, ['h2', 'http/1.1']),
          filter: { kind: 'http', statPrefix, routeConfig: rc, httpsRedirect: false },
        });
      } else if (kind === 'tls-tcp') {
        const routes = tcpRoutesFor(reg, ref, port);
        if (routes.length === 0 && (reg.virtualServices.some((b) => boundHosts(b, ref).length > 0 && (b.vs.spec.tls ?? []).length > 0))) {
          // Istio drops this listener ("listener missed network filter", #51471): say why.
          reg.warn(ConfigErrorCode.TRAP, ref.gw, `spec.servers[${ref.index}]`,
            `TLS-terminated TLS port ${port} needs VirtualService tcp: routes; tls: routes do not apply after termination`);
        }
        tlsChains.push({
          name: `${name}|${ref.gwName}|${ref.index}`,
          match: { serverNames: serverSni(ref), transport: 'tls', applicationProtocols: null, destinationPrefixes: null },
          tls: downstreamTls(reg, ref, ref.server.tls!, []),
          filter: tcpProxy(routes, statPrefix),
        });
      } else if (kind === 'passthrough') {
        for (const b of reg.virtualServices) {
          if (boundHosts(b, ref).length === 0) continue;
          for (const m of buildTlsMatches(reg, b, { gateway: ref.gwName, port })) {
            tlsChains.push({
              name: `${name}|${m.match.sniHosts.join(',')}`,
              match: { serverNames: m.route.match.serverNames, transport: 'tls', applicationProtocols: null, destinationPrefixes: m.route.match.destinationPrefixes },
              tls: null,
              filter: tcpProxy([{ ...m.route, match: { destinationPrefixes: null, sourcePrefixes: null, serverNames: null } }], statPrefix),
            });
          }
        }
        // The Istio 1.0 egress walkthroughs route passthrough ports with `tcp:` rules (seeds S4).
        const tcp = tcpRoutesFor(reg, ref, port);
        if (tcp.length > 0) {
          hasPlainTcp = true;
          plainTcp.push(...tcp);
        }
      } else {
        tlsChains.push(...autoPassthroughChains(reg, ref, name, port, extraClusters));
      }
    }

    const chains: FilterChain[] = [...tlsChains];
    if (plainHttp.length > 0) {
      const rc = buildRouteConfig(gatewayPlainRouteName(port), httpVirtualHosts(reg, plainHttp, port), null);
      chains.push({
        name,
        match: tlsChains.length > 0 ? { ...ANY_MATCH, transport: 'raw' } : ANY_MATCH,
        tls: null,
        filter: { kind: 'http', statPrefix, routeConfig: rc, httpsRedirect: plainHttp.some((r) => r.server.tls?.httpsRedirect === true) },
      });
    }
    if (hasPlainTcp) chains.push({ name: `${name}|tcp`, match: ANY_MATCH, tls: null, filter: tcpProxy(plainTcp, statPrefix) });
    // A port with no chain at all (AUTO_PASSTHROUGH with nothing to route) closes every
    // connection: it is not an HTTP listener.
    const allHttp = chains.length > 0 && chains.every((c) => c.filter.kind === 'http');
    const allTcp = chains.every((c) => c.filter.kind === 'tcp');
    out.set(name, {
      name, address: WILDCARD_ADDRESS, port,
      protocol: allHttp ? 'http' : allTcp ? 'tcp' : 'auto',
      chains, needsTlsInspection: needsInspection(chains),
    });
  }
  return out;
}
