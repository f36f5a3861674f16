// The runtime lookups the proxy and `sluice explain` run on a snapshot. All are O(1) map gets or
// O(rules) scans over compiled matchers, and allocate nothing in the common case (lower-case
// names, IPv4, no query string). `explainRoute` is the same decision,
// spelled out, so what explain prints is what the proxy does.

import type {
  FilterChain, HostSet, Listener, Route, RouteConfig, RouteMatch, Snapshot, StringMatcher, TcpRoute, VirtualHost, WeightedCluster, WeightedClusters,
} from './snapshot';
import { cidrContains } from './cidr';
import { hostSetMatches } from './hosts';
import { stringMatches } from './string-match';

export { cidrContains } from './cidr';
export { hostSetMatches } from './hosts';

// ------------------------------------------------------------------ listeners

interface PortListeners {
  wildcard: Listener | null;
  readonly byIp: Map<string, Listener>;
}

/** Per-snapshot index port -> listeners, so the lookup needs no `${ip}_${port}` string. */
const listenerIndex = new WeakMap<Snapshot, Map<number, PortListeners>>();

export function indexListeners(s: Snapshot): Map<number, PortListeners> {
  let idx = listenerIndex.get(s);
  if (idx !== undefined) return idx;
  idx = new Map();
  for (const l of s.listeners.values()) {
    let p = idx.get(l.port);
    if (p === undefined) idx.set(l.port, (p = { wildcard: null, byIp: new Map() }));
    if (l.address === '0.0.0.0') p.wildcard = l;
    else p.byIp.set(l.address, l);
    chainIndex(l);
  }
  listenerIndex.set(s, idx);
  return idx;
}

/** Exact `<ip>_<port>`, then `0.0.0.0_<port>` (Envoy `use_original_dst`). */
export function findListener(s: Snapshot, ip: string, port: number): Listener | null {
  const p = indexListeners(s).get(port);
  if (p === undefined) return null;
  return p.byIp.get(ip) ?? p.wildcard;
}

// ------------------------------------------------------------------ filter chains

export interface ChainInput {
  readonly isTls: boolean;
  readonly sni: string | null;
  readonly alpn: readonly string[] | null;
  readonly dstIp: string;
}

function anyAlpn(wanted: readonly string[], offered: readonly string[] | null): boolean {
  if (offered === null) return false;
  for (let i = 0; i < wanted.length; i++) if (offered.includes(wanted[i]!)) return true;
  return false;
}

function anyPrefix(prefixes: FilterChain['match']['destinationPrefixes'], ip: string): boolean {
  for (let i = 0; i < prefixes!.length; i++) if (cidrContains(prefixes![i]!, ip)) return true;
  return false;
}

/** Why a chain does not accept the connection, or null when it does. */
export function chainMismatch(ch: FilterChain, c: ChainInput): string | null {
  const m = ch.match;
  if (m.transport === 'tls' && !c.isTls) return 'needs TLS';
  if (m.transport === 'raw' && c.isTls) return 'needs plain text';
  if (m.serverNames !== null && (c.sni === null || !hostSetMatches(m.serverNames, c.sni))) return 'SNI does not match';
  if (m.applicationProtocols !== null && !anyAlpn(m.applicationProtocols, c.alpn)) return 'application protocol does not match';
  if (m.destinationPrefixes !== null && !anyPrefix(m.destinationPrefixes, c.dstIp)) return 'destination address not in prefixes';
  return null;
}

/**
 * A listener's chains by SNI: a sidecar's TLS port has one chain per service host (10,000 at
 * scale), and scanning them all per connection is not flat. A chain whose serverNames
 * are only exact names can match only a connection whose SNI is one of them: those chains are
 * indexed by name; every other chain is a candidate for every connection. Candidates are tried in
 * chain order, so the first accepting chain is the one the plain scan finds.
 */
interface ChainIndex {
  readonly bySni: Map<string, number[]>;
  /** Chains that do not need a given SNI, in order. */
  readonly unkeyed: readonly number[];
}

/** Below this many chains the plain scan is as fast as the index. */
const CHAIN_INDEX_MIN = 16;
const NO_CHAINS: readonly number[] = [];
const chainIndexes = new WeakMap<Listener, ChainIndex | null>();

function chainIndex(l: Listener): ChainIndex | null {
  let idx = chainIndexes.get(l);
  if (idx !== undefined) return idx;
  idx = null;
  if (l.chains.length >= CHAIN_INDEX_MIN) {
    const bySni = new Map<string, number[]>();
    const unkeyed: number[] = [];
    l.chains.forEach((ch, i) => {
      const names = ch.match.serverNames;
      if (names === null || names.any || names.suffixes.length > 0 || names.exact.size === 0) {
        unkeyed.push(i);
        return;
      }
      for (const n of names.exact) {
        const list = bySni.get(n);
        if (list === undefined) bySni.set(n, [i]);
        else list.push(i);
      }
    });
    idx = { bySni, unkeyed };
  }
  chainIndexes.set(l, idx);
  return idx;
}

function lowerName(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return s.toLowerCase(); // rare: SNI is usually lower-case
  }
  return s;
}

export function selectChain(l: Listener, c: ChainInput): FilterChain | null {
  const chains = l.chains;
  const idx = chainIndex(l);
  if (idx === null) {
    for (let i = 0; i < chains.length; i++) {
      if (chainMismatch(chains[i]!, c) === null) return chains[i]!;
    }
    return null;
  }
  // Merge the two ascending candidate lists, trying each chain in listener order.
  const keyed = c.sni === null ? NO_CHAINS : idx.bySni.get(lowerName(c.sni)) ?? NO_CHAINS;
  const unkeyed = idx.unkeyed;
  let a = 0;
  let b = 0;
  while (a < unkeyed.length || b < keyed.length) {
    const i = b >= keyed.length || (a < unkeyed.length && unkeyed[a]! < keyed[b]!) ? unkeyed[a++]! : keyed[b++]!;
    if (chainMismatch(chains[i]!, c) === null) return chains[i]!;
  }
  return null;
}

// ------------------------------------------------------------------ HTTP

function hostPartEnd(authority: string): number {
  // `[::1]:80` -> up to `]`; `a.com:80` -> up to `:`; no port -> whole string.
  if (authority.charCodeAt(0) === 91 /* [ */) {
    const close = authority.indexOf(']');
    return close < 0 ? authority.length : close + 1;
  }
  const colon = authority.lastIndexOf(':');
  return colon < 0 ? authority.length : colon;
}

/** Exact domain (with port, then without), longest wildcard suffix, then the default host. */
export function findVirtualHost(rc: RouteConfig, authority: string): VirtualHost | null {
  let vh = rc.exactDomains.get(authority);
  if (vh !== undefined) return vh;
  const lower = authority.toLowerCase(); // allocates only when the authority has upper case
  if (lower !== authority) {
    vh = rc.exactDomains.get(lower);
    if (vh !== undefined) return vh;
  }
  const end = hostPartEnd(lower);
  const host = end === lower.length ? lower : lower.slice(0, end);
  if (host !== lower) {
    vh = rc.exactDomains.get(host);
    if (vh !== undefined) return vh;
  }
  const w = rc.wildcardDomains;
  for (let i = 0; i < w.length; i++) {
    const s = w[i]!.suffix;
    if (host.length > s.length && host.endsWith(s)) return w[i]!.host;
  }
  return rc.defaultHost;
}

export interface RequestView {
  readonly method: string;
  /** May include `?query`; only the part before it is matched, as Envoy does. */
  readonly path: string;
  readonly scheme: string;
  readonly authority: string;
  /** lower-case name */
  header(name: string): string | undefined;
}

function queryParam(path: string, q: number, name: string): string | undefined {
  // Rare (only routes with queryParams): parse on demand.
  for (const part of path.slice(q + 1).split('&')) {
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    if (decodeURIComponent(k) === name) return eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, ' '));
  }
  return undefined;
}

function matchOne(m: StringMatcher | null, value: string): boolean {
  return m === null || stringMatches(m, value);
}

/** Why `m` rejects `req`, or null when it matches. */
export function routeMismatch(m: RouteMatch, req: RequestView): string | null {
  if (m.uri !== null) {
    const q = req.path.indexOf('?');
    if (!stringMatches(m.uri, req.path, q < 0 ? req.path.length : q)) return 'uri';
  }
  if (!matchOne(m.method, req.method)) return 'method';
  if (!matchOne(m.scheme, req.scheme)) return 'scheme';
  if (!matchOne(m.authority, req.authority)) return 'authority';
  const hs = m.headers;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i]!;
    const v = req.header(h.name);
    const ok = v !== undefined && stringMatches(h.matcher, v);
    if (ok === h.invert) return `header ${h.name}`;
  }
  const qs = m.queryParams;
  if (qs.length > 0) {
    const q = req.path.indexOf('?');
    for (let i = 0; i < qs.length; i++) {
      const v = q < 0 ? undefined : queryParam(req.path, q, qs[i]!.name);
      if (v === undefined || !stringMatches(qs[i]!.matcher, v)) return `query ${qs[i]!.name}`;
    }
  }
  return null;
}

export function findRoute(vh: VirtualHost, req: RequestView): Route | null {
  const routes = vh.routes;
  for (let i = 0; i < routes.length; i++) {
    if (routeMismatch(routes[i]!.match, req) === null) return routes[i]!;
  }
  return null;
}

export interface RouteExplanation {
  readonly route: Route;
  readonly matched: boolean;
  /** The first condition that failed (`uri`, `method`, `header x-foo`, ...), null when matched. */
  readonly failed: string | null;
}

/** Every route of `vh` in order, up to and including the winner, with why each lost. */
export function explainRoute(vh: VirtualHost, req: RequestView): RouteExplanation[] {
  const out: RouteExplanation[] = [];
  for (const route of vh.routes) {
    const failed = routeMismatch(route.match, req);
    out.push({ route, matched: failed === null, failed });
    if (failed === null) break;
  }
  return out;
}

// ------------------------------------------------------------------ L4

/**
 * What a TCP route matches on. The proxy passes the connection itself, whose addresses may cost a
 * syscall on first read (proxy/listener/socket-addresses.ts): each is read only by a route that
 * matches on it.
 */
export interface TcpRouteInput {
  readonly dstIp: string;
  readonly remoteIp: string;
  readonly sni: string | null;
}

export function findTcpRoute(routes: readonly TcpRoute[], c: TcpRouteInput): TcpRoute | null {
  for (let i = 0; i < routes.length; i++) {
    const m = routes[i]!.match;
    if (m.destinationPrefixes !== null && !anyPrefix(m.destinationPrefixes, c.dstIp)) continue;
    if (m.sourcePrefixes !== null && !anyPrefix(m.sourcePrefixes, c.remoteIp)) continue;
    if (m.serverNames !== null && (c.sni === null || !hostSetMatches(m.serverNames as HostSet, c.sni))) continue;
    return routes[i]!;
  }
  return null;
}

/** Weighted pick; one entry (the common case) needs no draw. `random` in [0, 1). */
export function pickDestination(w: WeightedClusters, random: number): WeightedCluster | null {
  const e = w.entries;
  if (e.length === 1) return e[0]!;
  let target = random * w.totalWeight;
  for (let i = 0; i < e.length; i++) {
    target -= e[i]!.weight;
    if (target < 0) return e[i]!;
  }
  return e.length > 0 ? e[e.length - 1]! : null;
}

export function pickCluster(w: WeightedClusters, random: number): string {
  return pickDestination(w, random)?.cluster ?? '';
}
