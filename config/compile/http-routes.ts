// VirtualService `http` rules -> ordered Envoy routes for one scope (mesh or one gateway, one
// port). Rules keep VS order and each kept match becomes one route; first match wins at runtime.
// Which matches survive follows Istio `TranslateRoute`/`sourceMatchHTTP`
// (§3.2): `match.port` unset or equal to the listener port, AND if `match.gateways` is non-empty
// it must name the current gateway (sourceLabels are then ignored), else sourceLabels ⊆ proxy
// labels and sourceNamespace equals the proxy namespace.

import type { HTTPMatchRequest, HTTPRoute, HeaderOperations, Headers, StringMatch } from '../resources/types';
import type {
  HeaderMatcher, HeaderOps, MirrorPolicy, Route, RouteAction, RouteMatch, RuleSource, StringMatcher, WeightedCluster, WeightedClusters,
} from './snapshot';
import { corsPolicy, faultPolicy, percentOf, retryPolicy, routeRewrite } from './route-policies';
import { ConfigErrorCode } from '../errors';
import { compileStringMatch } from './string-match';
import { labelsSubsetOf } from './hosts';
import { resolveGatewayName } from './names';
import type { BoundVirtualService, Registry, RuleScope } from './registry';

export function httpMatchKept(reg: Registry, b: BoundVirtualService, m: HTTPMatchRequest, scope: RuleScope): boolean {
  if (m.port !== undefined && m.port !== 0 && m.port !== scope.port) return false;
  if (m.gateways !== undefined && m.gateways.length > 0) {
    return m.gateways.some((g) => resolveGatewayName(g, b.vs.metadata.namespace) === scope.gateway);
  }
  if (!b.gateways.includes(scope.gateway)) return false;
  if (!labelsSubsetOf(m.sourceLabels, reg.opts.labels)) return false;
  return m.sourceNamespace === undefined || m.sourceNamespace === reg.opts.namespace;
}

/** Istio `getRouteName`: `rule.match`, `rule`, `match`, or '' (logged as `-`). */
function routeName(rule: HTTPRoute, m: HTTPMatchRequest | null): string {
  const mn = m?.name;
  if (rule.name !== undefined && rule.name !== '') return mn !== undefined && mn !== '' ? `${rule.name}.${mn}` : rule.name;
  return mn ?? '';
}

const MATCH_ALL: RouteMatch = { uri: null, scheme: null, method: null, authority: null, headers: [], queryParams: [] };

function compileMatch(reg: Registry, b: BoundVirtualService, m: HTTPMatchRequest, path: string): RouteMatch {
  const one = (sm: StringMatch | undefined, field: string, ignoreCase = false): StringMatcher | null => {
    const r = compileStringMatch(sm, ignoreCase);
    if (r.error !== null) reg.warn(ConfigErrorCode.INVALID_FIELD, b.vs, `${path}.${field}`, `${r.error}: this match never matches`);
    // `uri: {}` and friends constrain nothing.
    return r.matcher !== null && r.matcher.kind === 'present' ? null : r.matcher;
  };
  const headers: HeaderMatcher[] = [];
  const addHeaders = (hs: Readonly<Record<string, StringMatch>> | undefined, invert: boolean, field: string): void => {
    for (const name of Object.keys(hs ?? {})) {
      const r = compileStringMatch(hs![name], false);
      if (r.error !== null) reg.warn(ConfigErrorCode.INVALID_FIELD, b.vs, `${path}.${field}.${name}`, `${r.error}: this match never matches`);
      headers.push({ name: name.toLowerCase(), matcher: r.matcher!, invert });
    }
  };
  addHeaders(m.headers, false, 'headers');
  addHeaders(m.withoutHeaders, true, 'withoutHeaders');
  const queryParams = Object.keys(m.queryParams ?? {}).map((name) => ({
    name, matcher: compileStringMatch(m.queryParams![name], false).matcher!,
  }));
  return {
    uri: one(m.uri, 'uri', m.ignoreUriCase === true),
    scheme: one(m.scheme, 'scheme'),
    method: one(m.method, 'method'),
    authority: one(m.authority, 'authority'),
    headers,
    queryParams,
  };
}

function headerOps(h: HeaderOperations | undefined): HeaderOps | null {
  if (h === undefined) return null;
  const pairs = (r: Readonly<Record<string, string>> | undefined) =>
    Object.keys(r ?? {}).map((k) => [k.toLowerCase(), r![k]!] as const);
  return { set: pairs(h.set), add: pairs(h.add), remove: (h.remove ?? []).map((n) => n.toLowerCase()) };
}

/**
 * A destination's own header operations merged with its rule's, as Envoy applies them (weighted
 * cluster level first, then route level): a rule `set` wins over the destination's for the same
 * name; adds and removes accumulate. null when the destination has none (the rule's apply alone).
 */
function mergedOps(dest: HeaderOps | null, rule: HeaderOps | null): HeaderOps | null {
  if (dest === null) return null;
  if (rule === null) return dest;
  const set = new Map<string, string>(dest.set);
  for (const [k, v] of rule.set) set.set(k, v);
  return { set: [...set], add: [...dest.add, ...rule.add], remove: [...new Set([...dest.remove, ...rule.remove])] };
}

/**
 * Weighted destinations. One destination gets everything; weights 0 get nothing; when no
 * weight is given at all the destinations share equally. `headers` (HTTP routes): the rule's
 * header operations, merged into each destination that has its own.
 */
export function weightedClusters(
  reg: Registry, b: BoundVirtualService, dests: readonly { destination: { host: string; subset?: string; port?: { number: number } }; weight?: number; headers?: Headers }[],
  path: string, port: number, headers: { request: HeaderOps | null; response: HeaderOps | null } | null = null,
): WeightedClusters {
  const anyWeight = dests.some((d) => d.weight !== undefined && d.weight > 0);
  const entries: WeightedCluster[] = [];
  dests.forEach((d, i) => {
    const cluster = reg.destinationCluster(d.destination, b.vs, `${path}[${i}].destination`, port);
    const weight = dests.length === 1 || !anyWeight ? 1 : d.weight ?? 0;
    if (weight <= 0) return;
    if (headers !== null && d.headers !== undefined) {
      entries.push({
        cluster, weight,
        requestHeaders: mergedOps(headerOps(d.headers.request), headers.request) ?? headers.request,
        responseHeaders: mergedOps(headerOps(d.headers.response), headers.response) ?? headers.response,
      });
    } else entries.push({ cluster, weight });
  });
  return { entries, totalWeight: entries.reduce((s, e) => s + e.weight, 0) };
}

function buildAction(reg: Registry, b: BoundVirtualService, rule: HTTPRoute, m: HTTPMatchRequest | null, path: string, port: number): RouteAction | null {
  if (rule.directResponse !== undefined) {
    const body = rule.directResponse.body;
    const text = body?.string ?? (body?.bytes !== undefined ? Buffer.from(body.bytes, 'base64').toString('utf8') : '');
    return { kind: 'direct', status: rule.directResponse.status, body: text };
  }
  if (rule.redirect !== undefined) {
    const r = rule.redirect;
    return {
      kind: 'redirect', status: r.redirectCode ?? 301, scheme: r.scheme ?? null, authority: r.authority ?? null,
      port: r.port ?? null, path: r.uri ?? null,
    };
  }
  if (rule.route === undefined || rule.route.length === 0) return null;
  const requestHeaders = headerOps(rule.headers?.request);
  const responseHeaders = headerOps(rule.headers?.response);
  const clusters = weightedClusters(reg, b, rule.route, `${path}.route`, port, { request: requestHeaders, response: responseHeaders });
  const rw = routeRewrite(rule.rewrite, m);
  if (rw.error !== null) reg.warn(ConfigErrorCode.INVALID_FIELD, b.vs, `${path}.rewrite.uriRegexRewrite.match`, `${rw.error}: the path is not rewritten`);
  const fault = faultPolicy(rule.fault);
  const mirrors: MirrorPolicy[] = [];
  if (rule.mirror !== undefined) {
    mirrors.push({ cluster: reg.destinationCluster(rule.mirror, b.vs, `${path}.mirror`, port), percent: percentOf(rule.mirrorPercentage) });
  }
  (rule.mirrors ?? []).forEach((mp, i) => {
    mirrors.push({ cluster: reg.destinationCluster(mp.destination, b.vs, `${path}.mirrors[${i}].destination`, port), percent: percentOf(mp.percentage) });
  });
  return {
    kind: 'forward',
    clusters,
    // "timeouts or retries will not be enabled when faults are enabled" (Istio's HTTPFaultInjection doc)
    timeoutMs: fault !== null ? 0 : rule.timeoutMs ?? 0,
    rewrite: rw.rewrite,
    requestHeaders,
    responseHeaders,
    retry: fault !== null ? null : retryPolicy(rule.retries),
    fault,
    mirrors,
    cors: corsPolicy(rule.corsPolicy),
  };
}

/** The routes `b` contributes in `scope`; the caller has checked that `b` is bound to the scope's gateway. */
export function buildHttpRoutes(reg: Registry, b: BoundVirtualService, scope: RuleScope): Route[] {
  const out: Route[] = [];
  const ns = b.vs.metadata.namespace;
  (b.vs.spec.http ?? []).forEach((rule, ri) => {
    const path = `spec.http[${ri}]`;
    if (rule.delegate !== undefined) {
      reg.warn(ConfigErrorCode.TRAP, b.vs, `${path}.delegate`, 'delegate is not supported by sluice: this rule is skipped');
      return;
    }
    const matches = rule.match ?? [];
    const source = (mi: number): RuleSource => ({ kind: 'VirtualService', name: b.vs.metadata.name, namespace: ns, ruleIndex: ri, matchIndex: mi });
    if (matches.length === 0) {
      if (!b.gateways.includes(scope.gateway)) return;
      const action = buildAction(reg, b, rule, null, path, scope.port);
      if (action !== null) out.push({ name: routeName(rule, null), source: source(-1), match: MATCH_ALL, action });
      return;
    }
    matches.forEach((m, mi) => {
      if (!httpMatchKept(reg, b, m, scope)) return;
      const action = buildAction(reg, b, rule, m, path, scope.port);
      if (action === null) return;
      out.push({ name: routeName(rule, m), source: source(mi), match: compileMatch(reg, b, m, `${path}.match[${mi}]`), action });
    });
  });
  return out;
}
