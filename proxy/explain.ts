// `sluice explain` and admin `/explain`: the decision chain a request or connection would take
// through a compiled snapshot — listener, filter chain, virtual host, which VirtualService rule
// matched and why the earlier ones did not, cluster, endpoints (with live health when the running
// proxy supplies it), LB policy and TLS — using the same lookup functions the proxy uses, so what it
// prints is what the proxy does. A dead end names what the proxy would answer (status, Envoy
// response flag, RESPONSE_CODE_DETAILS) and a sentence on the usual cause, found by reading the
// source resources the snapshot was compiled from ("which path did my request
// take, and why did it get 503/404?").
//
// Not on the hot path: explain allocates freely.

import type { Cluster, FilterChain, Listener, RuleSource, Snapshot, TcpProxy, VirtualHost } from '../config/compile/snapshot';
import { BLACKHOLE_CLUSTER } from '../config/compile/snapshot';
import { chainMismatch, explainRoute, findListener, findTcpRoute, findVirtualHost, type ChainInput, type RequestView } from '../config/compile/lookup';
import { hostCovers, hostsOverlap, labelsSubsetOf } from '../config/compile/hosts';
import { expandHost, MESH_GATEWAY, resolveGatewayName } from '../config/compile/names';
import type { Gateway, Server, VirtualService } from '../config/resources/types';
import type { ClusterStatus } from './admin/context';
import { FLAG, ProxyErrorCode, rescueFor, type ProxyErrorCodeValue } from './errors';
import { EGRESS_POLICY_STATS, NOT_IN_REGISTRY, type OutboundPolicyMode } from './observe/egress-decision';

export type ExplainTarget =
  | { readonly kind: 'url'; readonly url: URL }
  | { readonly kind: 'sni'; readonly sni: string; readonly port: number }
  | { readonly kind: 'tcp'; readonly ip: string; readonly port: number }
  /** A connection to the pod's own port, caught by the sidecar's inbound listener (15006). */
  | { readonly kind: 'inbound'; readonly port: number };

/** A bad `--url` / `?url=` etc.: the CLI and the admin turn it into a usage message. */
export class ExplainTargetError extends Error {
  readonly code = 'PRX_ERR_EXPLAIN_TARGET';
}

const USAGE = 'explain needs url=URL, or sni=HOST with port=N, or tcp=IP:PORT, or inbound=PORT';

function portOf(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ExplainTargetError(`${what}: port must be 1..65535, got "${s}"`);
  return n;
}

/** null when no target was given at all; throws ExplainTargetError for a malformed one. */
export function parseExplainTarget(o: { url?: string | undefined; sni?: string | undefined; port?: string | undefined; tcp?: string | undefined; inbound?: string | undefined }): ExplainTarget | null {
  if (o.inbound !== undefined) return { kind: 'inbound', port: portOf(o.inbound, 'inbound') };
  if (o.url !== undefined) {
    let url: URL;
    try {
      url = new URL(o.url);
    } catch {
      throw new ExplainTargetError(`url: not an absolute URL: "${o.url}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ExplainTargetError(`url: scheme must be http or https, got "${url.protocol}"`);
    return { kind: 'url', url };
  }
  if (o.sni !== undefined) {
    if (o.port === undefined) throw new ExplainTargetError('sni needs port');
    return { kind: 'sni', sni: o.sni.toLowerCase(), port: portOf(o.port, 'sni') };
  }
  if (o.tcp !== undefined) {
    const i = o.tcp.lastIndexOf(':');
    if (i <= 0) throw new ExplainTargetError(`tcp: expected IP:PORT, got "${o.tcp}"`);
    return { kind: 'tcp', ip: o.tcp.slice(0, i).replace(/^\[|\]$/g, ''), port: portOf(o.tcp.slice(i + 1), 'tcp') };
  }
  return null;
}

export { USAGE as EXPLAIN_USAGE };

/** What the proxy would do in the end. */
export interface ExplainOutcome {
  readonly result: 'forward' | 'direct_response' | 'redirect' | 'failure';
  /** HTTP status of the reply; null for TCP/TLS connections (the connection is relayed or closed). */
  readonly status: number | null;
  /** Envoy response flag (`NR`, `UH`, `NC`), `-` when none. */
  readonly flag: string;
  /** RESPONSE_CODE_DETAILS or what happens to the connection. */
  readonly details: string | null;
  /** The usual cause, in one sentence; null when nothing failed. */
  readonly cause: string | null;
}

export interface Explanation {
  readonly lines: readonly string[];
  readonly listener: string | null;
  readonly chain: string | null;
  readonly virtualHost: string | null;
  readonly route: string | null;
  readonly source: RuleSource | null;
  readonly clusters: readonly string[];
  readonly outcome: ExplainOutcome;
}

/** Live cluster state from the running proxy (admin); absent for `sluice explain` on files. */
export type LiveClusters = (name: string) => ClusterStatus | undefined;

const OK: ExplainOutcome = { result: 'forward', status: null, flag: FLAG.NONE, details: null, cause: null };

/** One explanation being written: lines plus the facts the JSON form reports. */
class Trace {
  readonly lines: string[] = [];
  listener: string | null = null;
  chain: string | null = null;
  virtualHost: string | null = null;
  route: string | null = null;
  source: RuleSource | null = null;
  readonly clusters: string[] = [];
  outcome: ExplainOutcome = OK;

  line(label: string, text: string): void {
    this.lines.push((label + ':').padEnd(11) + text);
  }

  /**
   * The first dead end: what the proxy does for `code`, from the same table (proxy/errors.ts). An
   * HTTP request gets the local reply's status and details; a TCP connection is closed (`closed`,
   * or the table's details for a failure that never has a reply, such as no filter chain).
   */
  fail(code: ProxyErrorCodeValue, http: boolean, cause: string, status?: number): void {
    if (this.outcome.result === 'failure') return; // the first dead end is the one that counts
    const r = rescueFor(code);
    const answered = http && r.status !== 0;
    this.outcome = { result: 'failure', status: answered ? (status ?? r.status) : null, flag: r.flags, details: answered || r.status === 0 ? r.details : 'closed', cause };
  }

  /** No listener: the kernel refuses the connection, nothing of the proxy's runs. */
  refused(cause: string): void {
    if (this.outcome.result === 'failure') return;
    this.outcome = { result: 'failure', status: null, flag: FLAG.NONE, details: 'refused', cause };
  }

  done(): Explanation {
    const o = this.outcome;
    if (o.result === 'failure') {
      this.line('result', (o.status === null ? 'connection ' + (o.details ?? 'closed') : `${o.status} ${o.details ?? ''}`) + ` flag ${o.flag}`);
      this.line('cause', o.cause ?? '');
    } else if (o.result === 'forward') {
      this.line('result', `forwarded to ${this.clusters.join(', ')}`);
    } else {
      this.line('result', `${o.result} ${o.status ?? ''}`.trimEnd());
    }
    return { lines: this.lines, listener: this.listener, chain: this.chain, virtualHost: this.virtualHost, route: this.route, source: this.source, clusters: this.clusters, outcome: this.outcome };
  }
}

// ------------------------------------------------------------------ reading the source resources

interface ServerRef {
  readonly gwName: string;
  readonly server: Server;
}

/** Gateways this proxy serves (selector ⊆ labels), with their servers on `port`. */
function serversOnPort(snap: Snapshot, port: number): ServerRef[] {
  const out: ServerRef[] = [];
  for (const gw of snap.resources.gateways) {
    if (!labelsSubsetOf(gw.spec.selector, snap.labels)) continue;
    for (const server of gw.spec.servers) if (server.port.number === port) out.push({ gwName: `${gw.metadata.namespace}/${gw.metadata.name}`, server });
  }
  return out;
}

/** Server hosts without their `ns/` part. */
function serverDns(s: Server): string[] {
  return s.hosts.map((h) => h.slice(h.indexOf('/') + 1).toLowerCase());
}

function vsGateways(vs: VirtualService): string[] {
  const g = vs.spec.gateways === undefined || vs.spec.gateways.length === 0 ? [MESH_GATEWAY] : vs.spec.gateways;
  return g.map((n) => resolveGatewayName(n, vs.metadata.namespace));
}

function vsHosts(vs: VirtualService): string[] {
  return (vs.spec.hosts ?? []).map((h) => expandHost(h, vs.metadata.namespace));
}

function selectorText(gw: Gateway): string {
  return JSON.stringify(gw.spec.selector ?? {});
}

/** The scopes (`mesh` or gateway names) a rule must name to apply on this proxy and port. */
function scopesHere(snap: Snapshot, port: number): Set<string> {
  return snap.role === 'sidecar' ? new Set([MESH_GATEWAY]) : new Set(serversOnPort(snap, port).map((r) => r.gwName));
}

/** Why no Gateway listener exists on `port` for this proxy. */
function noGatewayListenerCause(snap: Snapshot, port: number): string {
  const elsewhere = snap.resources.gateways.filter((g) => g.spec.servers.some((s) => s.port.number === port));
  const labels = JSON.stringify(snap.labels);
  if (elsewhere.length === 0) return `no Gateway has a server on port ${port}; this proxy (labels ${labels}) listens only on its Gateways' server ports`;
  return `Gateway ${elsewhere.map((g) => `${g.metadata.namespace}/${g.metadata.name} (selector ${selectorText(g)})`).join(', ')} has a server on port ${port}, but its selector does not match this proxy's labels ${labels}`;
}

/** Why a gateway has no virtual host (HTTP) or no route (TLS/TCP) for `host` on `port`. */
function gatewayHostCause(snap: Snapshot, host: string, port: number, block: 'http' | 'tls' | 'tcp'): string {
  const servers = serversOnPort(snap, port);
  const forHost = servers.filter((r) => serverDns(r.server).some((d) => hostCovers(d, host)));
  if (forHost.length === 0) {
    const accepted = [...new Set(servers.flatMap((r) => serverDns(r.server)))].join(', ');
    return `no Gateway server on port ${port} for host ${host} (the servers on this port accept: ${accepted || 'nothing'})`;
  }
  const names = [...new Set(forHost.map((r) => r.gwName))];
  const withHost = snap.resources.virtualServices.filter((vs) => vsHosts(vs).some((h) => hostsOverlap(h, host)));
  if (withHost.length === 0) return `no VirtualService has host ${host}: Gateway ${names.join(', ')} accepts it on port ${port}, but only a VirtualService bound to the gateway routes it (gateways route nothing by default)`;
  const unbound = withHost.filter((vs) => !vsGateways(vs).some((g) => names.includes(g)));
  if (unbound.length === withHost.length) {
    return `gateway not bound: VirtualService ${unbound.map((vs) => `${vs.metadata.namespace}/${vs.metadata.name} (gateways [${vsGateways(vs).join(', ')}])`).join(', ')} has host ${host} but does not list ${names.join(' or ')}`;
  }
  const bound = withHost.filter((vs) => !unbound.includes(vs));
  return `VirtualService ${bound.map((vs) => `${vs.metadata.namespace}/${vs.metadata.name}`).join(', ')} is bound to ${names.join(', ')} but none of its ${block}: rules applies to this gateway on port ${port} (check match.gateways and match.port)`;
}

const SNI_FORM = /^outbound_\.(\d+)_\.([^.]*)_\.(.+)$/;

/**
 * Why an AUTO_PASSTHROUGH server has no chain for `sni` (config/compile/gateway.ts
 * `autoPassthroughChains` builds them): the SNI is not `outbound_.PORT_.SUBSET_.HOST`, the host
 * (or the local service a `.global` name maps to) is unknown, external, not covered by the
 * server's hosts, lacks the port, or no local DestinationRule defines the subset.
 */
function autoPassthroughCause(snap: Snapshot, sni: string, port: number): string | null {
  const servers = serversOnPort(snap, port).filter((r) => r.server.tls?.mode === 'AUTO_PASSTHROUGH');
  if (servers.length === 0) return null;
  const m = SNI_FORM.exec(sni);
  const pre = `AUTO_PASSTHROUGH on port ${port} routes by SNI without a VirtualService`;
  if (m === null) return `${pre}, and only SNI of the form outbound_.PORT_.SUBSET_.HOST (what an ISTIO_MUTUAL client sends); got ${sni}`;
  const [, svcPort, subset, host] = m as unknown as [string, string, string, string];
  const local = host.endsWith('.global') && host.split('.').length === 3 ? host.replace(/\.global$/, '.svc.cluster.local') : null;
  const entries = snap.resources.serviceEntries;
  const declares = (h: string) => entries.find((se) => se.spec.hosts.some((x) => x.toLowerCase() === h));
  const se = (local !== null ? declares(local) : undefined) ?? declares(host);
  const named = se !== undefined && local !== null && se.spec.hosts.some((x) => x.toLowerCase() === local) ? local : host;
  const accepted = [...new Set(servers.flatMap((r) => serverDns(r.server)))];
  if (se === undefined) {
    return `${pre}; no ServiceEntry here declares ${host}${local !== null ? ` or ${local} (the local service a .global name maps to, as Istio 1.1's tcp_cluster_rewrite)` : ''}`;
  }
  if ((se.spec.location ?? 'MESH_EXTERNAL') === 'MESH_EXTERNAL') return `${pre}; ${named} is MESH_EXTERNAL (ServiceEntry ${se.metadata.namespace}/${se.metadata.name}), and only mesh-internal services are reachable this way`;
  if (!accepted.some((d) => hostCovers(d, host))) return `${pre}; the server hosts (${accepted.join(', ')}) do not cover ${host}`;
  if (!(se.spec.ports ?? []).some((p) => String(p.number) === svcPort)) return `${pre}; ${named} has no port ${svcPort}`;
  if (subset !== '') return `${pre}; no DestinationRule of this cluster defines subset "${subset}" for ${named} (subsets resolve against the local DestinationRules)`;
  return `${pre}; no chain for ${sni}`;
}

/** A terminating TLS server routes with `tcp:` rules only: find the `tls:` rules that were meant for it. */
function tlsModeMismatchCause(snap: Snapshot, chain: FilterChain, port: number): string | null {
  if (chain.tls === null || snap.role !== 'gateway') return null;
  const here = scopesHere(snap, port);
  const vss = snap.resources.virtualServices.filter((vs) => (vs.spec.tls ?? []).length > 0 && vsGateways(vs).some((g) => here.has(g)));
  if (vss.length === 0) return null;
  return `TLS mode mismatch: this Gateway server terminates TLS (mode ${chain.tls.mode}), after which only VirtualService tcp: routes apply; ` +
    `${vss.map((vs) => `${vs.metadata.namespace}/${vs.metadata.name}`).join(', ')} has tls: routes, which match only on PASSTHROUGH servers ` +
    '(use tcp: routes, or tls.mode PASSTHROUGH; Istio drops this listener, #51471)';
}

/** Rules of the winning VirtualService before the winner that were not compiled for this proxy/port. */
function skippedRules(snap: Snapshot, t: Trace, src: RuleSource, block: 'http' | 'tls' | 'tcp', port: number, present: ReadonlySet<number>): void {
  if (src.kind !== 'VirtualService') return;
  const vs = snap.resources.virtualServices.find((v) => v.metadata.name === src.name && v.metadata.namespace === src.namespace);
  if (vs === undefined) return;
  const here = scopesHere(snap, port);
  const rules = (vs.spec[block] ?? []) as readonly { name?: string; match?: readonly { gateways?: readonly string[]; port?: number }[] }[];
  for (let i = 0; i < src.ruleIndex && i < rules.length; i++) {
    if (present.has(i)) continue;
    const rule = rules[i]!;
    const reasons = (rule.match ?? [{}]).map((m) => {
      const gws = m.gateways !== undefined && m.gateways.length > 0 ? m.gateways.map((g) => resolveGatewayName(g, vs.metadata.namespace)) : vsGateways(vs);
      if (!gws.some((g) => here.has(g))) return `gateways [${gws.join(', ')}]`;
      if (m.port !== undefined && m.port !== 0 && m.port !== port) return `port ${m.port}`;
      return 'source labels/namespace';
    });
    t.line('skipped', `${block}[${i}]${rule.name ? ' "' + rule.name + '"' : ''} of VirtualService ${vs.metadata.namespace}/${vs.metadata.name}: not for ${snap.role === 'sidecar' ? 'mesh' : [...here].join(', ')} on port ${port} (${[...new Set(reasons)].join('; ')})`);
  }
}

// ------------------------------------------------------------------ steps

function describeSource(s: RuleSource | null): string {
  if (s === null) return '(generated)';
  if (s.kind === 'default') return '(default route for the service)';
  return `${s.kind} ${s.namespace}/${s.name} rule #${s.ruleIndex}` + (s.matchIndex >= 0 ? ` match #${s.matchIndex}` : '');
}

function lbText(c: Cluster): string {
  return c.lb.kind === 'CONSISTENT_HASH' ? `CONSISTENT_HASH(${c.lb.key}${c.lb.name ? ' ' + c.lb.name : ''})` : c.lb.kind;
}

/**
 * Why `outbound|PORT|SUBSET|HOST` is missing: the host itself is unknown here, or the host exists
 * but no DestinationRule visible to this proxy defines that subset, or the host has no such port.
 */
function missingClusterCause(snap: Snapshot, name: string): string {
  const parts = name.split('|');
  if (parts.length !== 4) return `cluster ${name} does not exist`;
  const [, port, subset, host] = parts as [string, string, string, string];
  const same = [...snap.clusters.values()].filter((c) => c.host === host);
  if (same.length === 0) return `cluster ${name} does not exist: the destination host ${host} is not declared by any ServiceEntry visible to this proxy`;
  if (!same.some((c) => String(c.port) === port)) return `cluster ${name} does not exist: ${host} declares no port ${port} (ports: ${[...new Set(same.map((c) => c.port))].join(', ')})`;
  if (subset !== '') return `cluster ${name} does not exist: no DestinationRule visible to this proxy defines subset "${subset}" for ${host}`;
  return `cluster ${name} does not exist`;
}

function describeCluster(snap: Snapshot, name: string, weight: string, t: Trace, live: LiveClusters | undefined, http: boolean): void {
  t.clusters.push(name);
  const c = snap.clusters.get(name);
  if (c === undefined) {
    t.line('cluster', `${name}${weight}  NOT FOUND`);
    t.fail(ProxyErrorCode.NO_CLUSTER, http, missingClusterCause(snap, name));
    return;
  }
  t.line('cluster', `${c.name}${weight}  (type ${c.type}, lb ${lbText(c)}, connect timeout ${c.connectTimeoutMs} ms)`);
  const noHealthy = (cause: string): void => t.fail(ProxyErrorCode.NO_HEALTHY_UPSTREAM, http, cause);
  if (c.name === BLACKHOLE_CLUSTER) {
    t.line('endpoints', 'none (BlackHoleCluster drops every connection)');
    noHealthy(snap.outboundPolicy === 'REGISTRY_ONLY' ? 'REGISTRY_ONLY: the destination is not in any ServiceEntry, so the sidecar sends it to BlackHoleCluster' : 'the route sends this traffic to BlackHoleCluster');
  } else if (c.type === 'ORIGINAL_DST') {
    t.line('endpoints', 'the original destination of the connection');
  } else {
    const status = live?.(name);
    if (status !== undefined) {
      if (status.hosts.length === 0) t.line('endpoints', 'none live');
      for (const h of status.hosts) {
        t.line('endpoint', `${h.address}:${h.port} ${h.healthy ? 'healthy' : 'UNHEALTHY'}${h.hostname && h.hostname !== h.address ? ' (' + h.hostname + ')' : ''} cx_active=${h.stats.cx_active} cx_total=${h.stats.cx_total} cx_connect_fail=${h.stats.cx_connect_fail} rq_total=${h.stats.rq_total}`);
      }
      if (!status.hosts.some((h) => h.healthy)) {
        noHealthy(c.endpoints.length === 0 ? (c.emptyReason ?? `cluster ${name} has no endpoints`) : status.hosts.length === 0 ? `cluster ${name} has no resolved endpoints (DNS for ${c.endpoints.map((e) => e.address).join(', ')} returned nothing yet)` : `every endpoint of ${name} is marked unhealthy`);
      }
    } else if (c.endpoints.length === 0) {
      t.line('endpoints', 'none');
      noHealthy(c.emptyReason ?? `cluster ${name} has no endpoints`);
    } else {
      t.line('endpoints', c.endpoints.map((e) => `${e.address}:${e.port}` + (Object.keys(e.labels).length ? ` ${JSON.stringify(e.labels)}` : '')).join(', ') + (c.type === 'STRICT_DNS' || c.type === 'LOGICAL_DNS' ? ' (resolved by DNS at run time)' : ''));
    }
  }
  const passedThrough = c.tls === null && c.sniName === c.name;
  if (passedThrough) t.line('passthru', `AUTO_PASSTHROUGH: the SNI names this cluster; the client's TLS goes to ${c.host} untouched`);
  t.line('tls', passedThrough ? 'none originated (the client\'s mTLS is relayed as is)' : c.tls === null ? 'none (plaintext to the upstream)' : `originate ${c.tls.mode}, sni ${c.tls.sni ?? (c.tls.autoSni ? '(from Host)' : '(none)')}, ca ${c.tls.caFile ?? 'system roots'}${c.tls.insecureSkipVerify ? ', verification OFF' : ''}${c.tls.alpn.length ? ', alpn ' + c.tls.alpn.join(',') : ''}`);
}

function explainTcp(snap: Snapshot, chain: FilterChain, filter: TcpProxy, dstIp: string, sni: string | null, port: number, t: Trace, live: LiveClusters | undefined): void {
  t.line('tcp', `tcp_proxy, stats tcp.${filter.statPrefix}.`);
  if (sni !== null && /\.global$/.test(sni) && filter.routes.length === 1 && !filter.statPrefix.endsWith('.global') && filter.statPrefix.startsWith('outbound_.')) {
    t.line('rewrite', `${sni} -> ${filter.statPrefix} (.global -> .svc.cluster.local, Istio 1.1's tcp_cluster_rewrite)`);
  }
  const route = findTcpRoute(filter.routes, { dstIp, remoteIp: '0.0.0.0', sni });
  if (route === null) {
    t.line('route', `none of ${filter.routes.length} TCP/TLS route(s) matches`);
    const cause = tlsModeMismatchCause(snap, chain, port)
      ?? (snap.role === 'gateway' ? gatewayHostCause(snap, sni ?? '*', port, chain.tls === null && sni !== null ? 'tls' : 'tcp') : 'no VirtualService tcp:/tls: rule matches this destination');
    t.fail(ProxyErrorCode.NO_ROUTE, false, cause);
    return;
  }
  t.route = route.name || null;
  t.source = route.source;
  if (route.source !== null) {
    const present = new Set(filter.routes.filter((r) => r.source?.name === route.source!.name && r.source.namespace === route.source!.namespace).map((r) => r.source!.ruleIndex));
    skippedRules(snap, t, route.source, chain.tls === null && sni !== null && route.name.includes('.tls.') ? 'tls' : 'tcp', port, present);
  }
  t.line('route', `${route.name || '-'} from ${describeSource(route.source)}`);
  describeClusters(snap, route.clusters.entries, t, live, false);
}

function describeClusters(snap: Snapshot, entries: readonly { cluster: string; weight: number }[], t: Trace, live: LiveClusters | undefined, http: boolean): void {
  const total = entries.reduce((a, e) => a + e.weight, 0);
  for (const e of entries) describeCluster(snap, e.cluster, entries.length > 1 ? ` (weight ${e.weight}/${total})` : '', t, live, http);
}

function explainHttp(snap: Snapshot, chain: FilterChain, target: ExplainTarget, port: number, t: Trace, live: LiveClusters | undefined): void {
  const f = chain.filter;
  if (f.kind !== 'http') return;
  // A connection to a ServiceEntry VIP on an HTTP port: routed by Host; what a client that names
  // the VIP itself (curl http://VIP:PORT/) gets, and whose address it is.
  const owner = target.kind === 'tcp' ? snap.resources.serviceEntries.find((se) => (se.spec.addresses ?? []).includes(target.ip)) : undefined;
  if (target.kind === 'tcp' && owner !== undefined) {
    t.line('vip', `${target.ip} is an address of ServiceEntry ${owner.metadata.namespace}/${owner.metadata.name} (${owner.spec.hosts.join(', ')}); the sidecar catches connections to it (loopback VIPs too)`);
    t.line('note', `HTTP is routed by the Host header; shown for Host ${target.ip}:${port} (give --url for another)`);
    explainHttp(snap, chain, { kind: 'url', url: new URL(`http://${target.ip.includes(':') ? `[${target.ip}]` : target.ip}:${port}/`) }, port, t, live);
    return;
  }
  t.line('http', `route config ${f.routeConfig.name}, stats http.${f.statPrefix}.`);
  if (target.kind !== 'url') {
    t.line('note', 'HTTP routing needs a URL (--url / ?url=) to go further');
    return;
  }
  const authority = target.url.host;
  const vh: VirtualHost | null = findVirtualHost(f.routeConfig, authority);
  if (vh === null) {
    t.line('vhost', `none for "${authority}" (domains here: ${f.routeConfig.virtualHosts.flatMap((v) => v.domains).join(', ') || 'none'})`);
    t.fail(ProxyErrorCode.NO_ROUTE, true, snap.role === 'gateway' ? gatewayHostCause(snap, target.url.hostname, port, 'http') : `no virtual host on route config ${f.routeConfig.name} has domain ${authority}`);
    return;
  }
  t.virtualHost = vh.name;
  t.line('vhost', vh.name);
  const view: RequestView = { method: 'GET', path: target.url.pathname + target.url.search, scheme: target.url.protocol.replace(':', ''), authority, header: () => undefined };
  const steps = explainRoute(vh, view);
  const winner = steps.at(-1)?.matched === true ? steps.at(-1)!.route : null;
  if (winner?.source != null) {
    const present = new Set(vh.routes.filter((r) => r.source?.name === winner.source!.name && r.source.namespace === winner.source!.namespace).map((r) => r.source!.ruleIndex));
    skippedRules(snap, t, winner.source, 'http', port, present);
  }
  for (const s of steps) {
    if (s.matched) break;
    t.line('no match', `${s.route.name || '-'} from ${describeSource(s.route.source)}: ${s.failed} does not match (GET ${view.path})`);
  }
  if (winner === null) {
    t.line('route', `none of ${vh.routes.length} route(s) matches`);
    t.fail(ProxyErrorCode.NO_ROUTE, true, `the virtual host ${vh.name} has routes, but none matches GET ${view.path} (see "no match" above)`);
    return;
  }
  t.route = winner.name || null;
  t.source = winner.source;
  t.line('route', `${winner.name || '-'} from ${describeSource(winner.source)}`);
  const a = winner.action;
  if (a.kind === 'direct') {
    t.line('action', `direct response ${a.status}`);
    if (winner.name === 'block_all') t.fail(ProxyErrorCode.BLOCKED, true, `REGISTRY_ONLY: host ${target.url.hostname} is not in any ServiceEntry, so the sidecar answers ${a.status} (route block_all)`, a.status);
    else t.outcome = { result: 'direct_response', status: a.status, flag: FLAG.NONE, details: 'direct_response', cause: null };
  } else if (a.kind === 'redirect') {
    t.line('action', `redirect ${a.status}` + (a.scheme ? ` scheme ${a.scheme}` : '') + (a.authority ? ` authority ${a.authority}` : '') + (a.path ? ` path ${a.path}` : ''));
    t.outcome = { result: 'redirect', status: a.status, flag: FLAG.NONE, details: 'direct_response', cause: null };
  } else {
    if (a.timeoutMs > 0) t.line('timeout', `${a.timeoutMs} ms (504 UT when exceeded)`);
    if (a.retry !== null) {
      const r = a.retry;
      t.line('retries', `${r.attempts} on ${r.retryOn.join(',')}` + (r.perTryTimeoutMs > 0 ? `, ${r.perTryTimeoutMs} ms per try` : '') + (r.retryRemoteLocalities ? ', to other localities' : ''));
    }
    const f = a.fault ?? null;
    if (f !== null) {
      const parts: string[] = [];
      if (f.delay !== null) parts.push(`delay ${f.delay.ms} ms for ${f.delay.percent}% (DI)`);
      if (f.abort !== null) parts.push(`abort ${f.abort.grpcStatus !== null ? 'grpc-status ' + f.abort.grpcStatus : f.abort.httpStatus} for ${f.abort.percent}% (FI)`);
      t.line('fault', parts.join(', then '));
    }
    for (const m of a.mirrors ?? []) t.line('mirror', `${m.percent}% to ${m.cluster} (Host + -shadow, fire-and-forget)`);
    if (a.cors !== undefined && a.cors !== null) t.line('cors', `preflights from ${a.cors.allowOrigins.length} allowed origin pattern(s) answered here; others ${a.cors.unmatchedPreflights === 'IGNORE' ? 'answered without CORS headers' : 'forwarded'}`);
    const rw = a.rewrite?.path ?? null;
    if (rw !== null) t.line('rewrite', rw.kind === 'prefix' ? `path ${rw.matchedLength < 0 ? 'replaced by' : `prefix (${rw.matchedLength} chars) replaced by`} ${rw.replacement}` : `path regex ${rw.regex.source} -> ${rw.substitution}`);
    describeClusters(snap, a.clusters.entries, t, live, true);
    // An abort drawn every time answers every request (after any delay): that is the result.
    if (f !== null && f.abort !== null && f.abort.percent >= 100) {
      t.fail(ProxyErrorCode.FAULT_ABORT, true, 'the route\'s fault.abort answers every request (percentage 100)', f.abort.grpcStatus !== null ? 200 : f.abort.httpStatus);
    }
  }
}

function explainListener(snap: Snapshot, listener: Listener, target: ExplainTarget, ip: string, port: number, t: Trace, live: LiveClusters | undefined): void {
  t.listener = listener.name;
  t.line('listener', `${listener.name} (${listener.protocol}${listener.needsTlsInspection ? ', reads the TLS ClientHello' : ''})`);
  const isTls = target.kind === 'sni' || (target.kind === 'url' && target.url.protocol === 'https:');
  const sni = target.kind === 'sni' ? target.sni : target.kind === 'url' && isTls ? target.url.hostname : null;
  const input: ChainInput = { isTls, sni, alpn: target.kind === 'url' && !isTls ? ['http/1.1'] : null, dstIp: ip };
  let chain: FilterChain | null = null;
  for (const c of listener.chains) {
    const why = chainMismatch(c, input);
    if (why === null) {
      chain = c;
      break;
    }
    if (listener.chains.length > 1) t.line('no match', `chain ${c.name}: ${why}`);
  }
  if (chain === null) {
    t.line('chain', 'none matches');
    const cause = snap.role === 'gateway'
      ? (sni !== null ? autoPassthroughCause(snap, sni, port) ?? gatewayHostCause(snap, sni, port, 'tls') : `no Gateway server on port ${port} accepts ${isTls ? 'TLS without SNI' : 'plain text'}`)
      : `no filter chain of ${listener.name} accepts ${sni !== null ? 'SNI ' + sni : isTls ? 'TLS without SNI' : 'plain text'}`;
    t.fail(ProxyErrorCode.NO_FILTER_CHAIN, false, cause);
    return;
  }
  t.chain = chain.name;
  t.line('chain', chain.name + (chain.tls !== null ? `  (terminates TLS: ${chain.tls.mode}${chain.tls.caFile ? ', client certificates verified' : ''})` : ''));
  if (chain.filter.kind === 'tcp') explainTcp(snap, chain, chain.filter, ip, sni, port, t, live);
  else explainHttp(snap, chain, target, port, t, live);
}

/**
 * A connection to the pod's port `port` (config/compile/inbound.ts): the port's inbound listener or
 * the passthrough one, each chain of its mTLS mode and where it goes. The outcome is the mesh
 * client's (mTLS); a mode that refuses plain text says so in a line.
 */
function explainInbound(snap: Snapshot, port: number, t: Trace, live: LiveClusters | undefined): void {
  const inbound = snap.inbound;
  if (inbound === undefined) {
    t.line('listener', 'none: only a sidecar has an inbound side');
    t.refused('a gateway serves only its Gateway ports');
    return;
  }
  const declared = inbound.ports.get(port);
  const l = declared ?? inbound.passthrough;
  t.listener = 'virtualInbound';
  t.line('listener', `virtualInbound (0.0.0.0_15006), port ${port} ${declared !== undefined ? `declared ${l.protocol === 'http' ? 'HTTP' : 'TCP'} by this workload's services` : 'not declared by any service of this workload: relayed as TCP'}`);
  const mtls = l.chains.find((c) => c.tls !== null) ?? null;
  const plain = l.chains.find((c) => c.tls === null) ?? null;
  const mode = mtls === null ? 'DISABLE' : plain === null ? 'STRICT' : 'PERMISSIVE';
  t.line('mtls', `${mode}: ${mode === 'STRICT' ? 'mutual TLS required; plain text is refused (NR filter_chain_not_found)' : mode === 'PERMISSIVE' ? `mesh mTLS (ALPN ${(mtls!.match.applicationProtocols ?? []).join(', ')}) terminated; plain text (and other TLS) passed to the app as it came` : 'nothing terminated: bytes go to the app as they came'}`);
  if (mtls !== null) t.line('chain', `${mtls.name}  (terminates TLS: ISTIO_MUTUAL with ${mtls.tls!.certFile}, client certificates verified against ${mtls.tls!.caFile})`);
  if (plain !== null) t.line('chain', `${plain.name}  (plain text)`);
  const chain = (mtls ?? plain)!;
  t.chain = chain.name;
  const f = chain.filter;
  if (f.kind === 'http') {
    t.line('http', `stats http.${f.statPrefix}., x-forwarded-client-cert ${f.forwardClientCert ?? 'untouched'} (By, Hash, Subject, URI of the verified client)`);
    const route = f.routeConfig.defaultHost!.routes[0]!;
    t.route = route.name;
    if (route.action.kind === 'forward') describeClusters(snap, route.action.clusters.entries, t, live, true);
  } else {
    t.line('tcp', `tcp_proxy, stats tcp.${f.statPrefix}.`);
    const route = f.routes[0]!;
    t.route = route.name;
    describeClusters(snap, route.clusters.entries, t, live, false);
  }
  const c = snap.clusters.get(t.clusters[0] ?? '');
  if (c?.upstreamBindAddress !== undefined) t.line('source', `${c.upstreamBindAddress} (Istio's InboundPassthroughCluster source; sluice iptables lets it through)${c.originalDstOnLoopback === true ? `, to 127.0.0.1:${port}` : ''}`);
}

/** The full decision chain, with its outcome. `live` adds endpoint health from the running proxy. */
export function explainDetailed(snap: Snapshot, target: ExplainTarget, live?: LiveClusters): Explanation {
  const t = new Trace();
  t.line('role', `${snap.role} (namespace ${snap.namespace}, labels ${JSON.stringify(snap.labels)}, config ${snap.version})`);
  let port: number;
  let ip = '0.0.0.0';
  if (target.kind === 'url') {
    port = Number(target.url.port || (target.url.protocol === 'https:' ? 443 : 80));
    t.line('request', `GET ${target.url.href}`);
  } else if (target.kind === 'sni') {
    port = target.port;
    t.line('request', `TLS ClientHello SNI ${target.sni} to port ${port}`);
  } else if (target.kind === 'inbound') {
    t.line('request', `inbound connection to this pod's port ${target.port}`);
    explainInbound(snap, target.port, t, live);
    return t.done();
  } else {
    port = target.port;
    ip = target.ip;
    t.line('request', `TCP connection to ${ip}:${port}`);
  }
  const listener = findListener(snap, ip, port);
  if (listener !== null) {
    explainListener(snap, listener, target, ip, port, t, live);
  } else if (snap.role === 'gateway') {
    t.line('listener', `none on port ${port}`);
    t.refused(noGatewayListenerCause(snap, port));
  } else {
    const cluster = snap.catchAll.tcpCluster;
    t.listener = 'virtualOutbound';
    t.line('listener', `none for ${ip}:${port}: the virtualOutbound catch-all chain (${snap.outboundPolicy})`);
    t.route = cluster;
    describeCluster(snap, cluster, '', t, live, false);
  }
  return t.done();
}

/** The decision chain as text lines (what `sluice explain` prints). */
export function explain(snap: Snapshot, target: ExplainTarget, live?: LiveClusters): string[] {
  return [...explainDetailed(snap, target, live).lines];
}

/**
 * The egress decision line (observe/egress-decision.ts) for an explanation made on a REGISTRY_ONLY
 * snapshot: why the host is denied, and what report mode does with it instead. Empty when the
 * traffic is not the catch-all's.
 */
export function egressDecisionLines(e: Explanation, target: ExplainTarget, mode: OutboundPolicyMode): string[] {
  if (e.route !== 'block_all' && !e.clusters.includes(BLACKHOLE_CLUSTER)) return [];
  const host = target.kind === 'url' ? target.url.hostname : target.kind === 'sni' ? target.sni : target.kind === 'tcp' ? target.ip : String(target.port);
  const decision = mode === 'report' ? 'would_deny' : 'deny';
  const then = mode === 'report'
    ? 'report mode lets it through to PassthroughCluster as ALLOW_ANY would'
    : 'enforce mode refuses it';
  return [`decision:  ${decision} (${NOT_IN_REGISTRY}): ${host} is not in any ServiceEntry visible to this proxy; ${then}; audit "decision":"${decision}", counter ${EGRESS_POLICY_STATS.host(decision, host)}`];
}
