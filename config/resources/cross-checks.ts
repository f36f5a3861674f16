// Rules that need more than one resource: the known traps that Istio accepts
// but that will not do what the user meant, and the few cross-resource errors Istio itself has.
// Every one names the resource and field to fix and says what will happen at runtime.

import { ConfigErrorCode } from '../errors';
import type { ConfigMessage } from '../compile/snapshot';
import { fqdn } from './common';
import { terminatesTls } from './gateway';
import { checkNotActedOn } from './not-acted-on';
import { checkResource } from './resource-checks';
import { Reporter, type Locator } from './schema';
import type { ClientTLSSettings, Destination, DestinationRule, Gateway, Resource, Resources, ServiceEntry, TrafficPolicy, VirtualService } from './types';

const MESH = 'mesh';

/** Protocols for which a sidecar binds 0.0.0.0:PORT when the ServiceEntry has no addresses. */
const ADDRESS_BOUND_PROTOCOLS = new Set(['TCP', 'MONGO', 'REDIS', 'MYSQL']);

export function crossCheck(res: Resources, loc: Locator, out: ConfigMessage[]): void {
  const reporters = new Map<Resource, Reporter>();
  const reporter = (r: Resource): Reporter => {
    let rep = reporters.get(r);
    if (rep === undefined) reporters.set(r, (rep = new Reporter(out, r.origin, `${r.kind}/${r.metadata.name}`)));
    return rep;
  };
  const gateways = new Map<string, Gateway>();
  for (const g of res.gateways) gateways.set(`${g.metadata.namespace}/${g.metadata.name}`, g);

  // Built once: per-destination scans over every ServiceEntry/DestinationRule made a load of N
  // services with N rules quadratic (config at scale).
  const entries = entryIndex(res.serviceEntries);
  const subsets = subsetIndex(res.destinationRules);

  for (const r of [...res.serviceEntries, ...res.gateways, ...res.virtualServices, ...res.destinationRules]) checkResource(r, loc, reporter(r));
  checkDelegateHosts(res.virtualServices, loc, reporter);
  for (const vs of res.virtualServices) {
    checkGatewayRefs(vs, gateways, loc, reporter(vs));
    checkTlsRoutesOnTerminatingServers(vs, gateways, loc, reporter(vs));
    checkGatewayDestinationsResolvable(vs, entries, loc, reporter(vs));
    checkSubsetsDefined(vs, subsets, loc, reporter(vs));
  }
  for (const se of res.serviceEntries) checkTcpPortsHaveAddresses(se, loc, reporter(se));
  for (const dr of res.destinationRules) checkOriginationTraps(dr, entries, loc, reporter(dr));
  checkNotActedOn(res, loc, out);
}

/**
 * Host patterns -> values, answering "which patterns match this name" with hostMatches() semantics
 * (common.ts: `*`, the name itself, or `*.x` for any name ending in `.x`) without testing every
 * pattern: the exact map, `*`, then one suffix-map get per dot of the name.
 */
export class PatternIndex<V> {
  private readonly exact = new Map<string, V[]>();
  private readonly suffix = new Map<string, V[]>();
  private readonly any: V[] = [];

  add(pattern: string, v: V): void {
    push(this.exact, pattern, v);
    if (pattern === '*') this.any.push(v);
    else if (pattern.startsWith('*.')) push(this.suffix, pattern.slice(1), v);
  }

  /** Calls `fn` for every value whose pattern matches `host` (a value may come twice); stops when it returns true. */
  some(host: string, fn: (v: V) => boolean): boolean {
    if (someOf(this.exact.get(host), fn) || someOf(this.any, fn)) return true;
    for (let dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.', dot + 1)) {
      if (someOf(this.suffix.get(host.slice(dot)), fn)) return true;
    }
    return false;
  }
}

function push<V>(m: Map<string, V[]>, key: string, v: V): void {
  const list = m.get(key);
  if (list === undefined) m.set(key, [v]);
  else list.push(v);
}

function someOf<V>(list: readonly V[] | undefined, fn: (v: V) => boolean): boolean {
  if (list === undefined) return false;
  for (const v of list) if (fn(v)) return true;
  return false;
}

/** ServiceEntries by host pattern; the first in load order whose hosts match wins, as `entries.find` did. */
interface EntryIndex {
  readonly entries: readonly ServiceEntry[];
  readonly byHost: PatternIndex<number>;
}

function entryIndex(entries: readonly ServiceEntry[]): EntryIndex {
  const byHost = new PatternIndex<number>();
  entries.forEach((e, i) => {
    for (const h of e.spec.hosts ?? []) if (h !== null) byHost.add(h, i);
  });
  return { entries, byHost };
}

function firstEntryFor(idx: EntryIndex, host: string): ServiceEntry | undefined {
  let first = Infinity;
  idx.byHost.some(host, (i) => {
    if (i < first) first = i;
    return false;
  });
  return first === Infinity ? undefined : idx.entries[first];
}

/** Subset names per DestinationRule host pattern (fully qualified in the DR's namespace). */
function subsetIndex(rules: readonly DestinationRule[]): PatternIndex<DestinationRule> {
  const idx = new PatternIndex<DestinationRule>();
  for (const dr of rules) if (dr.spec.host !== undefined) idx.add(fqdn(dr.spec.host, dr.metadata.namespace), dr);
  return idx;
}

/** Istio's gateway name forms (model/config.go resolveGatewayName): `gw`, `ns/gw`, `./gw`, `gw.ns.svc.cluster.local`. */
export function resolveGatewayName(name: string, vsNamespace: string): string {
  if (name === MESH) return MESH;
  const slash = name.indexOf('/');
  if (slash >= 0) return name.startsWith('./') ? `${vsNamespace}/${name.slice(2)}` : name;
  const dot = name.indexOf('.');
  if (dot >= 0) {
    const [gw, ns] = name.split('.');
    return `${ns}/${gw}`;
  }
  return `${vsNamespace}/${name}`;
}

function topGateways(vs: VirtualService): readonly string[] {
  const g = vs.spec.gateways;
  return g === undefined || g.length === 0 ? [MESH] : g;
}

/** The gateways a rule applies to: its matches' `gateways` when given, else the VS's (Istio: match overrides). */
function ruleGateways(vs: VirtualService, matches: readonly ({ readonly gateways?: readonly string[] } | null)[] | undefined): string[] {
  const set = new Set<string>();
  let anyWithout = matches === undefined || matches.length === 0;
  for (const m of matches ?? []) {
    if (m?.gateways !== undefined && m.gateways.length > 0) for (const g of m.gateways) set.add(g);
    else anyWithout = true;
  }
  if (anyWithout) for (const g of topGateways(vs)) set.add(g);
  return [...set];
}

interface RouteRef {
  readonly dest: Destination;
  readonly gateways: readonly string[];
}

function routeDestinations(vs: VirtualService): RouteRef[] {
  const refs: RouteRef[] = [];
  const rules = [...(vs.spec.http ?? []), ...(vs.spec.tls ?? []), ...(vs.spec.tcp ?? [])];
  for (const rule of rules) {
    if (!rule) continue;
    const gws = ruleGateways(vs, rule.match);
    for (const d of rule.route ?? []) if (d?.destination) refs.push({ dest: d.destination, gateways: gws });
  }
  return refs;
}

function checkDelegateHosts(all: readonly VirtualService[], loc: Locator, reporter: (r: Resource) => Reporter): void {
  const delegates = new Set<string>();
  for (const vs of all) {
    for (const h of vs.spec.http ?? []) {
      const d = h?.delegate;
      if (d?.name !== undefined) delegates.add(`${d.namespace ?? vs.metadata.namespace}/${d.name}`);
    }
  }
  for (const vs of all) {
    if ((vs.spec.hosts?.length ?? 0) > 0 || delegates.has(`${vs.metadata.namespace}/${vs.metadata.name}`)) continue;
    // Istio takes a VirtualService without hosts for a delegate, and accepts it; unused, it routes nothing.
    reporter(vs).warn(ConfigErrorCode.TRAP, loc.at(vs.spec, 'hosts'),
      'no hosts: a VirtualService without hosts is a delegate, and no VirtualService delegates to this one, so it routes nothing');
  }
}

function checkGatewayRefs(vs: VirtualService, gateways: ReadonlyMap<string, Gateway>, loc: Locator, rep: Reporter): void {
  const check = (holder: object, list: readonly string[] | undefined): void => {
    (list ?? []).forEach((name, i) => {
      if (name === null || name === MESH) return;
      const full = resolveGatewayName(name, vs.metadata.namespace);
      if (!gateways.has(full)) {
        rep.warn(ConfigErrorCode.TRAP, loc.at(holder, 'gateways', i), `Gateway ${full} is not defined: rules bound to it apply nowhere`);
      }
    });
  };
  check(vs.spec, vs.spec.gateways);
  for (const rule of [...(vs.spec.http ?? []), ...(vs.spec.tls ?? []), ...(vs.spec.tcp ?? [])]) {
    for (const m of rule?.match ?? []) if (m) check(m, m.gateways);
  }
}

/** After a gateway terminates TLS only tcp:/http: routes apply; a tls: route never matches (#51471). */
function checkTlsRoutesOnTerminatingServers(vs: VirtualService, gateways: ReadonlyMap<string, Gateway>, loc: Locator, rep: Reporter): void {
  (vs.spec.tls ?? []).forEach((rule, i) => {
    if (!rule) return;
    const warned = new Set<string>();
    for (const m of rule.match ?? []) {
      if (!m) continue;
      const names = m.gateways !== undefined && m.gateways.length > 0 ? m.gateways : topGateways(vs);
      for (const name of names) {
        const gw = gateways.get(resolveGatewayName(name, vs.metadata.namespace));
        if (gw === undefined) continue;
        for (const s of gw.spec.servers ?? []) {
          if (!s?.port || (m.port !== undefined && s.port.number !== m.port) || !terminatesTls(s.tls)) continue;
          const key = `${gw.metadata.namespace}/${gw.metadata.name}:${s.port.number}`;
          if (warned.has(key)) continue;
          warned.add(key);
          const use = s.port.protocol === 'HTTPS' ? 'http:' : 'tcp:';
          rep.warn(ConfigErrorCode.TRAP, loc.at(vs.spec, 'tls', i),
            `tls: route bound to Gateway ${gw.metadata.namespace}/${gw.metadata.name} port ${s.port.number}, which terminates TLS (mode ${s.tls!.mode}); ` +
            `this route never matches there: use ${use} routes after TLS termination`);
        }
      }
    }
  });
}

/** §6 #1/#10: a gateway cannot forward to "the original destination"; NONE on a gateway is an empty cluster (503 UH). */
function checkGatewayDestinationsResolvable(vs: VirtualService, entries: EntryIndex, loc: Locator, rep: Reporter): void {
  for (const { dest, gateways } of routeDestinations(vs)) {
    if (!gateways.some((g) => g !== MESH) || dest.host === undefined) continue;
    const se = firstEntryFor(entries, fqdn(dest.host, vs.metadata.namespace));
    if (se === undefined || (se.spec.resolution ?? 'NONE') !== 'NONE') continue;
    rep.warn(ConfigErrorCode.TRAP, loc.at(dest, 'host'),
      `host "${dest.host}" has resolution NONE (ServiceEntry ${se.metadata.namespace}/${se.metadata.name}): a gateway has no original destination to forward to ` +
      'and answers 503 UH; use resolution DNS (or STATIC with endpoints)');
  }
}

/** §6 #1/#8: a subset no DestinationRule defines has no cluster: 503 NC at runtime. */
function checkSubsetsDefined(vs: VirtualService, rules: PatternIndex<DestinationRule>, loc: Locator, rep: Reporter): void {
  for (const { dest } of routeDestinations(vs)) {
    if (dest.subset === undefined || dest.host === undefined) continue;
    const subset = dest.subset;
    const defined = rules.some(fqdn(dest.host, vs.metadata.namespace), (dr) => (dr.spec.subsets ?? []).some((s) => s?.name === subset));
    if (!defined) {
      rep.warn(ConfigErrorCode.TRAP, loc.at(dest, 'subset'),
        `subset "${dest.subset}" is not defined by any DestinationRule for host "${dest.host}": requests will fail with 503 NC (cluster_not_found)`);
    }
  }
}

/** §6 #7: with no addresses a sidecar listens on 0.0.0.0:PORT for this entry, so it captures every connection to that port. */
function checkTcpPortsHaveAddresses(se: ServiceEntry, loc: Locator, rep: Reporter): void {
  if ((se.spec.addresses?.length ?? 0) > 0) return;
  (se.spec.ports ?? []).forEach((p, i) => {
    if (!p?.protocol || !ADDRESS_BOUND_PROTOCOLS.has(p.protocol)) return;
    rep.warn(ConfigErrorCode.TRAP, loc.at(se.spec, 'ports', i),
      `${p.protocol} port ${p.number} without addresses: on a sidecar this ServiceEntry captures all traffic to port ${p.number}, whatever the destination IP; set addresses`);
  });
}

/** Every `tls` block of a DestinationRule with the port it is limited to (null = all ports). */
function drTlsBlocks(dr: DestinationRule): { tls: ClientTLSSettings; holder: TrafficPolicy; port: number | null }[] {
  const out: { tls: ClientTLSSettings; holder: TrafficPolicy; port: number | null }[] = [];
  const visit = (p: TrafficPolicy | undefined): void => {
    if (!p) return;
    if (p.tls) out.push({ tls: p.tls, holder: p, port: null });
    for (const pl of p.portLevelSettings ?? []) {
      if (pl?.tls) out.push({ tls: pl.tls, holder: pl as TrafficPolicy, port: pl.port?.number ?? null });
    }
  };
  visit(dr.spec.trafficPolicy);
  for (const sub of dr.spec.subsets ?? []) visit(sub?.trafficPolicy);
  return out;
}

/**
 * §6 #2, TLS origination confusion: SIMPLE/MUTUAL on a port the ServiceEntry declares HTTPS/TLS, where
 * the app already speaks TLS: the sidecar would wrap it in a second TLS layer and the server sees
 * garbage (declare the port HTTP, as S3 does, to originate). (MUTUAL without a client certificate is
 * already an error of the DestinationRule itself.)
 */
function checkOriginationTraps(dr: DestinationRule, entries: EntryIndex, loc: Locator, rep: Reporter): void {
  if (dr.spec.host === undefined) return;
  const se = firstEntryFor(entries, fqdn(dr.spec.host, dr.metadata.namespace));
  for (const { tls, holder, port } of drTlsBlocks(dr)) {
    if ((tls.mode !== 'SIMPLE' && tls.mode !== 'MUTUAL') || se === undefined) continue;
    for (const p of se.spec.ports ?? []) {
      if (!p || (port !== null && p.number !== port) || (p.protocol !== 'HTTPS' && p.protocol !== 'TLS')) continue;
      rep.warn(ConfigErrorCode.TRAP, loc.at(holder, 'tls'),
        `mode ${tls.mode} on port ${p.number}, which ServiceEntry ${se.metadata.namespace}/${se.metadata.name} declares ${p.protocol}: ` +
        'the app already speaks TLS there, so a sidecar would wrap it in a second TLS layer; to originate TLS, declare the port HTTP and send plain HTTP (seed S3)');
    }
  }
}
