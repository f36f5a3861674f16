// `sluice explain`: the decision chain a request or connection would take through a compiled
// snapshot — listener, filter chain, virtual host, route (and which resource rule it came from),
// cluster, endpoints, TLS — using the same lookup functions the proxy uses, so what it prints is
// what the proxy does. For dead ends it names the Envoy flag and the usual cause.

import type { Cluster, FilterChain, RuleSource, Snapshot, TcpProxy } from '../config/compile/snapshot';
import { findListener, findRoute, findTcpRoute, findVirtualHost, selectChain, type RequestView } from '../config/compile/lookup';

export type ExplainTarget =
  | { readonly kind: 'url'; readonly url: URL }
  | { readonly kind: 'sni'; readonly sni: string; readonly port: number }
  | { readonly kind: 'tcp'; readonly ip: string; readonly port: number };

export function parseExplainTarget(o: { url?: string; sni?: string; port?: string; tcp?: string }): ExplainTarget | null {
  if (o.url !== undefined) return { kind: 'url', url: new URL(o.url) };
  if (o.sni !== undefined && o.port !== undefined) return { kind: 'sni', sni: o.sni.toLowerCase(), port: Number(o.port) };
  if (o.tcp !== undefined) {
    const i = o.tcp.lastIndexOf(':');
    return { kind: 'tcp', ip: o.tcp.slice(0, i), port: Number(o.tcp.slice(i + 1)) };
  }
  return null;
}

function describeSource(s: RuleSource | null): string {
  if (s === null) return '(generated)';
  if (s.kind === 'default') return '(default route for the service)';
  return `${s.kind} ${s.namespace}/${s.name} rule #${s.ruleIndex}` + (s.matchIndex >= 0 ? ` match #${s.matchIndex}` : '');
}

function describeCluster(snapshot: Snapshot, name: string, out: string[]): void {
  const c: Cluster | undefined = snapshot.clusters.get(name);
  if (c === undefined) {
    out.push(`cluster:   ${name}  -> NOT FOUND: 503 NC (cluster_not_found): the destination host is not declared by any ServiceEntry visible here`);
    return;
  }
  out.push(`cluster:   ${c.name}  (type ${c.type}, lb ${c.lb.kind}, connect timeout ${c.connectTimeoutMs} ms)`);
  if (c.type === 'ORIGINAL_DST') out.push('endpoints: the original destination of the connection');
  else if (c.endpoints.length === 0) out.push(`endpoints: none -> 503 UH (no_healthy_upstream): ${c.emptyReason ?? 'no endpoints'}`);
  else out.push('endpoints: ' + c.endpoints.map((e) => `${e.address}:${e.port}` + (Object.keys(e.labels).length ? ` ${JSON.stringify(e.labels)}` : '')).join(', ') + (c.type === 'STRICT_DNS' || c.type === 'LOGICAL_DNS' ? ' (resolved by DNS at run time)' : ''));
  out.push(c.tls === null ? 'tls:       none (plaintext to the upstream)' : `tls:       originate ${c.tls.mode}, sni ${c.tls.sni ?? (c.tls.autoSni ? '(from Host)' : '(none)')}, ca ${c.tls.caFile ?? 'system roots'}${c.tls.insecureSkipVerify ? ', verification OFF' : ''}`);
}

function explainTcp(snapshot: Snapshot, filter: TcpProxy, dstIp: string, sni: string | null, out: string[]): void {
  const route = findTcpRoute(filter.routes, dstIp, '0.0.0.0', sni);
  if (route === null) {
    out.push('route:     none -> connection closed, flag NR (no TCP/TLS route matches)');
    return;
  }
  out.push(`route:     ${route.name || '-'} from ${describeSource(route.source)}`);
  for (const e of route.clusters.entries) describeCluster(snapshot, e.cluster, out);
}

function explainChain(snapshot: Snapshot, chain: FilterChain | null, target: ExplainTarget, dstIp: string, out: string[]): void {
  if (chain === null) {
    out.push('chain:     none matches -> connection closed, flag NR (filter_chain_not_found)');
    return;
  }
  out.push(`chain:     ${chain.name}` + (chain.tls !== null ? ` (terminates TLS: ${chain.tls.mode})` : ''));
  const f = chain.filter;
  if (f.kind === 'tcp') {
    explainTcp(snapshot, f, dstIp, target.kind === 'sni' ? target.sni : null, out);
    return;
  }
  if (target.kind !== 'url') {
    out.push(`http:      route config ${f.routeConfig.name} (HTTP needs --url to go further)`);
    return;
  }
  const authority = target.url.host;
  const vh = findVirtualHost(f.routeConfig, authority);
  out.push(`http:      route config ${f.routeConfig.name}`);
  if (vh === null) {
    out.push(`vhost:     none for "${authority}" -> 404 NR (route_not_found): no VirtualService bound here has this host`);
    return;
  }
  out.push(`vhost:     ${vh.name}`);
  const view: RequestView = { method: 'GET', path: target.url.pathname + target.url.search, scheme: target.url.protocol.replace(':', ''), authority, header: () => undefined };
  const route = findRoute(vh, view);
  if (route === null) {
    out.push('route:     none of ' + vh.routes.length + ' route(s) matches -> 404 NR (route_not_found)');
    return;
  }
  out.push(`route:     ${route.name} from ${describeSource(route.source)}`);
  const a = route.action;
  if (a.kind === 'direct') out.push(`action:    direct response ${a.status}` + (route.name === 'block_all' ? ' (REGISTRY_ONLY: host not in any ServiceEntry)' : ''));
  else if (a.kind === 'redirect') out.push(`action:    redirect ${a.status}`);
  else for (const e of a.clusters.entries) describeCluster(snapshot, e.cluster, out);
}

export function explain(snapshot: Snapshot, target: ExplainTarget): string[] {
  const out: string[] = [`role:      ${snapshot.role} (namespace ${snapshot.namespace})`];
  let port: number;
  let ip = '0.0.0.0';
  if (target.kind === 'url') port = Number(target.url.port || (target.url.protocol === 'https:' ? 443 : 80));
  else if (target.kind === 'sni') port = target.port;
  else {
    port = target.port;
    ip = target.ip;
  }
  const listener = findListener(snapshot, ip, port);
  if (listener === null) {
    if (snapshot.role === 'gateway') {
      out.push(`listener:  none on port ${port} -> connection refused: no Gateway server selected by this proxy's labels listens on ${port}`);
    } else {
      out.push(`listener:  none for ${ip}:${port} -> catch-all ${snapshot.catchAll.tcpCluster}` + (snapshot.catchAll.tcpCluster === 'BlackHoleCluster' ? ' (REGISTRY_ONLY: destination not in any ServiceEntry; flag UH)' : ' (ALLOW_ANY: sent to the original destination)'));
    }
    return out;
  }
  out.push(`listener:  ${listener.name} (${listener.protocol})`);
  const isTls = target.kind === 'sni' || (target.kind === 'url' && target.url.protocol === 'https:');
  const chain = selectChain(listener, { isTls, sni: target.kind === 'sni' ? target.sni : target.kind === 'url' && isTls ? target.url.hostname : null, alpn: target.kind === 'url' && !isTls ? ['http/1.1'] : null, dstIp: ip });
  explainChain(snapshot, chain, target, ip, out);
  return out;
}
