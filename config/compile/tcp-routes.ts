// VirtualService `tls` and `tcp` rules -> L4 routes for one scope. Unlike HTTP, every condition
// must hold (Istio `matchTLS`/`matchTCP`): the gateway (per-match list, else
// the VS list), sourceLabels ⊆ proxy labels, port, sourceNamespace. Conditions settled here
// (gateway, port, labels) are not repeated in the compiled route.

import type { L4MatchAttributes, TLSMatchAttributes } from '../resources/types';
import type { Cidr, RuleSource, TcpProxy, TcpRoute, WeightedClusters } from './snapshot';
import { ConfigErrorCode } from '../errors';
import { parseCidr } from './cidr';
import { buildHostSet, labelsSubsetOf } from './hosts';
import { resolveGatewayName } from './names';
import { weightedClusters } from './http-routes';
import type { BoundVirtualService, Registry, RuleScope } from './registry';

export function l4MatchKept(reg: Registry, b: BoundVirtualService, m: L4MatchAttributes, scope: RuleScope): boolean {
  const gateways = m.gateways !== undefined && m.gateways.length > 0
    ? m.gateways.map((g) => resolveGatewayName(g, b.vs.metadata.namespace))
    : b.gateways;
  if (!gateways.includes(scope.gateway)) return false;
  if (m.port !== undefined && m.port !== 0 && m.port !== scope.port) return false;
  if (!labelsSubsetOf(m.sourceLabels, reg.opts.labels)) return false;
  return m.sourceNamespace === undefined || m.sourceNamespace === reg.opts.namespace;
}

export function cidrList(reg: Registry, b: BoundVirtualService, subnets: readonly string[] | undefined, path: string): Cidr[] | null {
  if (subnets === undefined || subnets.length === 0) return null;
  const out: Cidr[] = [];
  subnets.forEach((s, i) => {
    const c = parseCidr(s);
    if (c === null) reg.warn(ConfigErrorCode.INVALID_FIELD, b.vs, `${path}[${i}]`, `${JSON.stringify(s)} is not an IP address or CIDR: ignored`);
    else out.push(c);
  });
  return out;
}

function source(b: BoundVirtualService, ruleIndex: number, matchIndex: number): RuleSource {
  return { kind: 'VirtualService', name: b.vs.metadata.name, namespace: b.vs.metadata.namespace, ruleIndex, matchIndex };
}

/** `tcp` rules of `b` kept in `scope`, in order. A rule without match applies unconditionally. */
export function buildTcpRoutes(reg: Registry, b: BoundVirtualService, scope: RuleScope): TcpRoute[] {
  const out: TcpRoute[] = [];
  (b.vs.spec.tcp ?? []).forEach((rule, ri) => {
    const path = `spec.tcp[${ri}]`;
    if (rule.route === undefined || rule.route.length === 0) return;
    const matches = rule.match ?? [];
    if (matches.length === 0) {
      if (!b.gateways.includes(scope.gateway)) return;
      const clusters = weightedClusters(reg, b, rule.route, `${path}.route`, scope.port);
      out.push({ name: `${b.vs.metadata.name}.tcp.${ri}`, source: source(b, ri, -1), match: { destinationPrefixes: null, sourcePrefixes: null, serverNames: null }, clusters });
      return;
    }
    matches.forEach((m, mi) => {
      if (!l4MatchKept(reg, b, m, scope)) return;
      const clusters = weightedClusters(reg, b, rule.route!, `${path}.route`, scope.port);
      out.push({
        name: `${b.vs.metadata.name}.tcp.${ri}`,
        source: source(b, ri, mi),
        match: { destinationPrefixes: cidrList(reg, b, m.destinationSubnets, `${path}.match[${mi}].destinationSubnets`), sourcePrefixes: null, serverNames: null },
        clusters,
      });
    });
  });
  return out;
}

export interface TlsRouteMatch {
  readonly match: TLSMatchAttributes;
  readonly route: TcpRoute;
}

/** `tls` matches of `b` kept in `scope`: each becomes one SNI filter chain (Istio one chain per match). */
export function buildTlsMatches(reg: Registry, b: BoundVirtualService, scope: RuleScope): TlsRouteMatch[] {
  const out: TlsRouteMatch[] = [];
  (b.vs.spec.tls ?? []).forEach((rule, ri) => {
    const path = `spec.tls[${ri}]`;
    if (rule.route === undefined || rule.route.length === 0) return;
    rule.match.forEach((m, mi) => {
      if (!l4MatchKept(reg, b, m, scope)) return;
      const clusters = weightedClusters(reg, b, rule.route!, `${path}.route`, scope.port);
      out.push({
        match: m,
        route: {
          name: `${b.vs.metadata.name}.tls.${ri}`,
          source: source(b, ri, mi),
          match: {
            destinationPrefixes: cidrList(reg, b, m.destinationSubnets, `${path}.match[${mi}].destinationSubnets`),
            sourcePrefixes: null,
            serverNames: buildHostSet(m.sniHosts),
          },
          clusters,
        },
      });
    });
  });
  return out;
}

export function singleClusterRoute(name: string, cluster: string, src: RuleSource | null): TcpRoute {
  return {
    name, source: src,
    match: { destinationPrefixes: null, sourcePrefixes: null, serverNames: null },
    clusters: { entries: [{ cluster, weight: 1 }], totalWeight: 1 },
  };
}

/**
 * A TCP proxy filter. Stat prefix: the cluster name when every route goes to one cluster (as
 * Istio does), else the given fallback.
 */
export function tcpProxy(routes: readonly TcpRoute[], fallbackStatPrefix: string): TcpProxy {
  let only: string | null = null;
  let single = routes.length > 0;
  for (const r of routes) {
    for (const e of (r.clusters as WeightedClusters).entries) {
      if (only === null) only = e.cluster;
      else if (only !== e.cluster) single = false;
    }
  }
  return { kind: 'tcp', statPrefix: single && only !== null ? only : fallbackStatPrefix, routes };
}
