// VirtualService: field tables + Istio's own validation rules (Istio
// pkg/config/validation ValidateVirtualService, validateHTTPRoute, validateTLSMatch).

import { ConfigErrorCode } from '../errors';
import {
  DESTINATION, PERCENT, STRING_MATCH, STRING_MATCH_OR_PRESENCE, WEIGHT, hostSubsetOf,
} from './common';
import {
  arr, bool, duration, enumOf, msDuration, field, int, map, obj, port, required, schema, str, strList, strMap,
  type Locator, type Reporter,
} from './schema';
import { isIP } from 'node:net';
import { checkLabels } from './common';
import { fqdnError, isDns1123Label, subnetError, wildcardDomainError } from './names';
import type { CorsPolicy, HeaderOperations, Headers, HTTPFaultInjection, HTTPRetry, HTTPRoute, VirtualServiceSpec } from './types';

// ------------------------------------------------------------------ shared pieces

const HEADER_OPERATIONS = schema('HeaderOperations', [
  field('set', map(str(), true)),
  field('add', map(str(), true)),
  field('remove', strList()),
], (ops: { remove?: (string | null)[] }) => {
  // Header names are case-insensitive; lower-case once here so the data plane compares cheaply.
  if (ops.remove !== undefined) for (let i = 0; i < ops.remove.length; i++) ops.remove[i] = ops.remove[i]?.toLowerCase() ?? null;
});

const HEADERS = schema('Headers', [field('request', obj(HEADER_OPERATIONS)), field('response', obj(HEADER_OPERATIONS))]);

const ROUTE_DESTINATION = schema('RouteDestination', [required('destination', obj(DESTINATION)), field('weight', WEIGHT)]);

// ------------------------------------------------------------------ http

const HTTP_MATCH = schema('HTTPMatchRequest', [
  field('name', str()),
  field('uri', obj(STRING_MATCH)),
  field('scheme', obj(STRING_MATCH)),
  field('method', obj(STRING_MATCH)),
  field('authority', obj(STRING_MATCH)),
  field('headers', map(obj(STRING_MATCH_OR_PRESENCE), true)),
  field('port', port()),
  field('sourceLabels', strMap()),
  field('gateways', strList()),
  field('queryParams', map(obj(STRING_MATCH_OR_PRESENCE))),
  field('ignoreUriCase', bool()),
  field('withoutHeaders', map(obj(STRING_MATCH_OR_PRESENCE), true)),
  field('sourceNamespace', str()),
  field('statPrefix', str()),
]);

const HTTP_ROUTE_DESTINATION = schema('HTTPRouteDestination', [
  required('destination', obj(DESTINATION)),
  field('weight', WEIGHT),
  field('headers', obj(HEADERS)),
]);

const HTTP_REDIRECT = schema('HTTPRedirect', [
  field('uri', str()),
  field('authority', str()),
  field('port', port()),
  field('derivePort', enumOf('FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT')),
  field('scheme', str()),
  field('redirectCode', int(300, 399)),
]);

const HTTP_DIRECT_RESPONSE = schema('HTTPDirectResponse', [
  required('status', int(200, 599)),
  field('body', obj(schema('HTTPBody', [field('string', str()), field('bytes', str())]))),
]);

const HTTP_REWRITE = schema('HTTPRewrite', [
  field('uri', str()),
  field('authority', str()),
  field('uriRegexRewrite', obj(schema('RegexRewrite', [required('match', str()), required('rewrite', str())]))),
]);

const HTTP_RETRY = schema('HTTPRetry', [
  field('attempts', int(0, 4294967295)),
  field('perTryTimeout', msDuration(), { out: 'perTryTimeoutMs' }),
  field('retryOn', str()),
  field('retryRemoteLocalities', bool()),
  field('retryIgnorePreviousHosts', bool()),
  field('backoff', duration(), { out: 'backoffMs' }),
]);

const HTTP_FAULT = schema('HTTPFaultInjection', [
  field('delay', obj(schema('Delay', [
    field('fixedDelay', msDuration(), { out: 'fixedDelayMs' }),
    field('percentage', obj(PERCENT)),
    field('percent', int(0, 100)),
  ]))),
  field('abort', obj(schema('Abort', [
    // Istio validateHTTPStatus: 200..600 ("not in range 200-599" is its message, 600 its bound).
    field('httpStatus', int(200, 600)),
    field('grpcStatus', str()),
    field('http2Error', str()),
    field('percentage', obj(PERCENT)),
  ]))),
]);

const CORS_POLICY = schema('CorsPolicy', [
  field('allowOrigins', arr(obj(STRING_MATCH))),
  field('allowOrigin', strList()),
  field('allowMethods', strList()),
  field('allowHeaders', strList()),
  field('exposeHeaders', strList()),
  field('maxAge', msDuration(), { out: 'maxAgeMs' }),
  field('allowCredentials', bool()),
  field('unmatchedPreflights', enumOf('UNSPECIFIED', 'FORWARD', 'IGNORE')),
]);

const HTTP_ROUTE = schema('HTTPRoute', [
  field('name', str()),
  field('match', arr(obj(HTTP_MATCH))),
  field('route', arr(obj(HTTP_ROUTE_DESTINATION))),
  field('redirect', obj(HTTP_REDIRECT)),
  field('directResponse', obj(HTTP_DIRECT_RESPONSE)),
  field('delegate', obj(schema('Delegate', [field('name', str()), field('namespace', str())]))),
  field('rewrite', obj(HTTP_REWRITE)),
  field('timeout', duration(), { out: 'timeoutMs' }),
  field('retries', obj(HTTP_RETRY)),
  field('fault', obj(HTTP_FAULT)),
  field('mirror', obj(DESTINATION)),
  field('mirrors', arr(obj(schema('HTTPMirrorPolicy', [required('destination', obj(DESTINATION)), field('percentage', obj(PERCENT))])))),
  field('mirrorPercentage', obj(PERCENT)),
  field('corsPolicy', obj(CORS_POLICY)),
  field('headers', obj(HEADERS)),
], checkHttpRoute);

// ------------------------------------------------------------------ tls / tcp

const L4_MATCH_FIELDS = [
  field('destinationSubnets', strList()),
  field('port', port()),
  field('sourceLabels', strMap()),
  field('gateways', strList()),
  field('sourceNamespace', str()),
];

const TLS_MATCH = schema('TLSMatchAttributes', [required('sniHosts', strList(true)), ...L4_MATCH_FIELDS]);
const L4_MATCH = schema('L4MatchAttributes', L4_MATCH_FIELDS);

const TLS_ROUTE = schema('TLSRoute', [
  required('match', arr(obj(TLS_MATCH), true)),
  required('route', arr(obj(ROUTE_DESTINATION), true)),
], checkWeights);

const TCP_ROUTE = schema('TCPRoute', [
  field('match', arr(obj(L4_MATCH))),
  required('route', arr(obj(ROUTE_DESTINATION), true)),
], checkWeights);

export const VIRTUAL_SERVICE_SPEC = schema('VirtualServiceSpec', [
  field('hosts', strList()),
  field('gateways', strList()),
  field('http', arr(obj(HTTP_ROUTE))),
  field('tls', arr(obj(TLS_ROUTE))),
  field('tcp', arr(obj(TCP_ROUTE))),
  field('exportTo', strList()),
], checkVirtualService);

// ------------------------------------------------------------------ rules

interface WithRoute {
  readonly route?: readonly ({ readonly weight?: number } | null)[];
}

/** Istio validateRouteDestinations: weights are relative, but several destinations cannot all weigh 0. */
function checkWeights(r: WithRoute, loc: Locator, report: Reporter): void {
  const route = r.route;
  if (route === undefined || route.length < 2) return;
  // A rejected weight was already reported; a sum without it would only mislead.
  if (route.some((d) => d === null || loc.wasRejected(d, 'weight'))) return;
  let total = 0;
  for (const d of route) total += d?.weight ?? 0;
  if (total === 0) report.error(ConfigErrorCode.INVALID_FIELD, loc.at(r, 'route'), 'total destination weight = 0');
}

const VALID_HEADER_NAME = /^[-_A-Za-z0-9]+$/;
const RETRY_ON = new Set([
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'retriable-4xx', 'refused-stream', 'retriable-status-codes',
  'retriable-headers', 'envoy-ratelimited', 'http3-post-connect-failure', 'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
]);
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE']);
const GRPC_STATUS = new Set([
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
]);
/** Go's http.StatusText knows these codes: `retryOn: 503` is a status, `retryOn: 299` is not. */
const HTTP_STATUS_TEXT = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406,
  407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506,
  507, 508, 510, 511,
]);

function isInternalHeader(name: string): boolean {
  return name.startsWith(':') || name.toLowerCase() === 'host';
}

function isAuthorityHeader(name: string): boolean {
  const n = name.toLowerCase();
  return n === ':authority' || n === 'host';
}

/** Istio's header-operation rules for one `headers` block (route or destination level). */
function checkHeaderOps(h: Headers | undefined, loc: Locator, r: Reporter): void {
  const E = ConfigErrorCode.INVALID_FIELD;
  const check = (ops: HeaderOperations | undefined, request: boolean): void => {
    if (ops === undefined) return;
    for (const kind of ['set', 'add'] as const) {
      const m = ops[kind];
      for (const name of Object.keys(m ?? {})) {
        const at = loc.at(m!, name);
        if (name === '') r.error(E, at, 'header name cannot be empty');
        else if (request && isInternalHeader(name) && !isAuthorityHeader(name)) r.error(E, at, `invalid header "${name}": header cannot have ":" prefix`);
        else if (!request && name.toLowerCase() === 'host') r.error(E, at, 'invalid header "host": cannot set Host header');
        else if (!request && isInternalHeader(name)) r.error(E, at, `invalid header "${name}": header cannot have ":" prefix`);
        const v = m![name]!;
        if (/[\u0000-\u0008\u000A-\u001F\u007F]/.test(v)) r.error(E, at, `header value configuration ${v} is invalid`);
      }
    }
    (ops.remove ?? []).forEach((name, i) => {
      if (name === null) return;
      const at = loc.at(ops.remove!, undefined, i);
      if (name === '') r.error(E, at, 'header name cannot be empty');
      else if (name === 'host') r.error(E, at, 'invalid header "host": cannot set Host header');
      else if (isInternalHeader(name)) r.error(E, at, `invalid header "${name}": header cannot have ":" prefix`);
    });
  };
  check(h?.request, true);
  check(h?.response, false);
}

function checkHttpRoute(h: HTTPRoute, loc: Locator, report: Reporter): void {
  const E = ConfigErrorCode.INVALID_FIELD;
  // Istio validateHTTPRouteConflict: a delegating (root) route only delegates.
  if (h.delegate !== undefined) {
    const name = h.name === undefined ? '' : ` ${h.name}`;
    if (h.redirect !== undefined) report.error(E, loc.at(h, 'redirect'), `root HTTP route${name} must not specify redirect`);
    if (h.route !== undefined) report.error(E, loc.at(h, 'route'), `root HTTP route${name} must not specify route`);
  } else {
    if (h.redirect !== undefined) {
      if ((h.route?.length ?? 0) > 0) report.error(E, loc.at(h), 'HTTP route cannot contain both route and redirect');
      if (h.fault !== undefined) report.error(E, loc.at(h, 'fault'), 'HTTP route cannot contain both fault and redirect');
      if (h.rewrite !== undefined) report.error(E, loc.at(h, 'rewrite'), 'HTTP route rule cannot contain both rewrite and redirect');
    } else if ((h.route?.length ?? 0) === 0 && h.directResponse === undefined && !loc.wasRejected(h, 'route') && !loc.wasRejected(h, 'directResponse')) {
      report.error(ConfigErrorCode.REQUIRED, loc.at(h), 'HTTP route, redirect or direct response is required');
    }
    if (h.directResponse !== undefined && ((h.route?.length ?? 0) > 0 || h.redirect !== undefined)) {
      report.error(E, loc.at(h, 'directResponse'), 'HTTP route cannot contain both directResponse and route or redirect');
    }
  }
  for (const m of h.match ?? []) {
    if (m === null) continue;
    for (const kind of ['headers', 'withoutHeaders'] as const) {
      for (const name of Object.keys(m[kind] ?? {})) {
        if (name === '' ) report.error(E, loc.at(m[kind]!, name), 'header name cannot be empty');
        else if (!VALID_HEADER_NAME.test(name) && !name.startsWith('@request.auth.claims')) report.error(E, loc.at(m[kind]!, name), `header name ${name} is not a valid header name`);
      }
    }
    if (m.sourceNamespace !== undefined && !isDns1123Label(m.sourceNamespace)) report.error(E, loc.at(m, 'sourceNamespace'), `sourceNamespace match ${m.sourceNamespace} is invalid`);
    checkLabels(m.sourceLabels, loc, report);
    checkGatewayNames(m, m.gateways, loc, report);
  }
  checkHeaderOps(h.headers, loc, report);
  for (const d of h.route ?? []) if (d !== null) checkHeaderOps(d.headers, loc, report);
  checkAuthorityOnce(h, loc, report);
  checkCors(h.corsPolicy, loc, report);
  checkFault(h.fault, loc, report);
  if (h.redirect !== undefined) {
    const rd = h.redirect;
    if (rd.uri === undefined && rd.authority === undefined && rd.port === undefined && rd.derivePort === undefined && rd.scheme === undefined) {
      report.error(E, loc.at(rd), 'redirect must specify URI, authority, scheme, or port');
    }
    if (rd.scheme !== undefined && rd.scheme !== 'http' && rd.scheme !== 'https') report.error(E, loc.at(rd, 'scheme'), 'invalid redirect scheme, must be "http" or "https"');
  }
  checkRetries(h.retries, loc, report);
  const rw = h.rewrite;
  if (rw !== undefined) {
    if (rw.uri !== undefined && rw.uri !== '' && rw.uriRegexRewrite !== undefined) report.error(E, loc.at(rw), 'rewrite may only contain one of URI or UriRegexRewrite');
    else if ((rw.uri ?? '') === '' && rw.uriRegexRewrite === undefined && (rw.authority ?? '') === '' && !loc.wasRejected(rw, 'uriRegexRewrite')) {
      report.error(E, loc.at(rw), 'rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified');
    }
  }
  const body = h.directResponse?.body;
  const size = body === undefined ? 0 : Buffer.byteLength(body.string ?? body.bytes ?? '');
  if (size > 1024 * 1024) report.error(E, loc.at(h.directResponse!, 'body'), 'large direct_responses may impact control plane performance, must be less than 1MB');
  else if (size > 100 * 1024) report.warn(ConfigErrorCode.TRAP, loc.at(h.directResponse!, 'body'), 'large direct_responses may impact control plane performance');
  (h.mirrors ?? []).forEach((mp) => {
    const v = mp?.percentage?.value;
    if (v !== undefined && v > 100) report.error(E, loc.at(mp!.percentage!, 'value'), `mirror percentage must have a max value of 100 (it has ${v})`);
  });
  checkWeights(h, loc, report);
}

/** Istio validateAuthorityRewrite: the authority is rewritten in one place only. */
function checkAuthorityOnce(h: HTTPRoute, loc: Locator, r: Reporter): void {
  let current = h.rewrite?.authority ?? '';
  for (const kind of ['set', 'add'] as const) {
    const m = h.headers?.request?.[kind];
    for (const [k, v] of Object.entries(m ?? {})) {
      if (!isAuthorityHeader(k)) continue;
      if (current !== '') r.error(ConfigErrorCode.INVALID_FIELD, loc.at(m!, k), `authority header cannot be set multiple times: have "${current}", attempting to set "${v}"`);
      current = v;
    }
  }
}

function checkCors(c: CorsPolicy | undefined, loc: Locator, r: Reporter): void {
  if (c === undefined) return;
  const E = ConfigErrorCode.INVALID_FIELD;
  (c.allowOrigins ?? []).forEach((o, i) => {
    if (o === null) return;
    const match = o.exact ?? o.prefix ?? o.regex ?? '';
    if (match === '') r.error(E, loc.at(c.allowOrigins!, undefined, i), `'${match}' is not a valid match type for CORS allow origins`);
  });
  (c.allowMethods ?? []).forEach((m, i) => {
    if (m !== null && !HTTP_METHODS.has(m)) r.error(E, loc.at(c.allowMethods!, undefined, i), `"${m}" is not a supported HTTP method`);
  });
  for (const kind of ['allowHeaders', 'exposeHeaders'] as const) {
    (c[kind] ?? []).forEach((name, i) => {
      if (name === null) return;
      if (name === '') r.error(E, loc.at(c[kind]!, undefined, i), 'header name cannot be empty');
      else if (name !== '*' && !VALID_HEADER_NAME.test(name)) r.error(E, loc.at(c[kind]!, undefined, i), `header name ${name} is not a valid header name`);
    });
  }
  if (c.maxAgeMs !== undefined && c.maxAgeMs % 1000 !== 0) r.error(E, loc.at(c, 'maxAge'), 'max_age duration is accurate only to seconds precision');
}

function checkFault(f: HTTPFaultInjection | undefined, loc: Locator, r: Reporter): void {
  if (f === undefined) return;
  const E = ConfigErrorCode.INVALID_FIELD;
  if (f.abort === undefined && f.delay === undefined && !loc.wasRejected(f, 'abort') && !loc.wasRejected(f, 'delay')) {
    r.error(ConfigErrorCode.REQUIRED, loc.at(f), 'HTTP fault injection must have an abort and/or a delay');
  }
  for (const p of [f.abort?.percentage, f.delay?.percentage]) {
    const v = p?.value;
    if (v !== undefined && v > 0 && v < 0.0001) r.error(E, loc.at(p!, 'value'), `percentage ${v} is neither 0.0, nor in range [0.0001, 100.0]`);
  }
  const a = f.abort;
  if (a !== undefined) {
    if (a.grpcStatus !== undefined && !GRPC_STATUS.has(a.grpcStatus)) {
      r.error(E, loc.at(a, 'grpcStatus'), `gRPC status "${a.grpcStatus}" is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'`);
    }
    if (a.http2Error !== undefined) r.error(E, loc.at(a, 'http2Error'), 'HTTP/2 abort fault injection not supported yet');
    if (a.httpStatus === undefined && a.grpcStatus === undefined && a.http2Error === undefined && !loc.wasRejected(a, 'httpStatus')) {
      r.warn(ConfigErrorCode.TRAP, loc.at(a), 'abort configured, but error type not set');
    }
  }
}

function checkRetries(rt: HTTPRetry | undefined, loc: Locator, r: Reporter): void {
  if (rt === undefined) return;
  const E = ConfigErrorCode.INVALID_FIELD;
  if (rt.attempts === 0 && (rt.perTryTimeoutMs !== undefined || rt.retryOn !== undefined || rt.retryRemoteLocalities !== undefined)) {
    r.error(E, loc.at(rt, 'attempts'), 'http retry policy configured when attempts are set to 0 (disabled)');
  }
  if (rt.retryOn !== undefined && rt.retryOn !== '') {
    for (const policy of rt.retryOn.split(',')) {
      const code = /^\d+$/.test(policy) ? Number(policy) : NaN;
      if (!HTTP_STATUS_TEXT.has(code) && !RETRY_ON.has(policy)) r.error(E, loc.at(rt, 'retryOn'), `"${policy}" is not a valid retryOn policy`);
    }
  }
}

/** Istio validateGatewayNames: `ns/name` (both DNS labels) or a legacy FQDN-style name. */
function checkGatewayNames(holder: object, names: readonly (string | null)[] | undefined, loc: Locator, r: Reporter): void {
  (names ?? []).forEach((g, i) => {
    if (g === null) return;
    const at = loc.at(holder, 'gateways', i);
    const slash = g.indexOf('/');
    if (slash < 0) {
      if (g.includes('.')) {
        const [name, ns] = g.split('.');
        r.warn(ConfigErrorCode.TRAP, at, `using legacy gatewayName format "${g}"; prefer the <namespace>/<name> format: "${ns}/${name}"`);
      }
      const e = fqdnError(g);
      if (e !== null) r.error(ConfigErrorCode.INVALID_FIELD, at, e);
      return;
    }
    const ns = g.slice(0, slash);
    const name = g.slice(slash + 1);
    if (ns === '' || name === '') r.error(ConfigErrorCode.INVALID_FIELD, at, 'config namespace and gateway name cannot be empty');
    if (!isDns1123Label(ns)) r.error(ConfigErrorCode.INVALID_FIELD, at, `invalid value for namespace: "${ns}"`);
    if (!isDns1123Label(name)) r.error(ConfigErrorCode.INVALID_FIELD, at, `invalid value for gateway name: "${name}"`);
  });
}

/** Istio ValidateVirtualService (the parts one resource decides), with its messages. */
function checkVirtualService(vs: VirtualServiceSpec, loc: Locator, report: Reporter): void {
  const E = ConfigErrorCode.INVALID_FIELD;
  const hosts = (vs.hosts ?? []).filter((h): h is string => h !== null);
  if (hosts.length === 0) {
    // A VirtualService without hosts can only be a delegate.
    if ((vs.gateways?.length ?? 0) > 0) report.error(E, loc.at(vs, 'gateways'), 'delegate virtual service must have no gateways specified');
    if ((vs.tls?.length ?? 0) > 0) report.error(E, loc.at(vs, 'tls'), 'delegate virtual service must have no tls route specified');
    if ((vs.tcp?.length ?? 0) > 0) report.error(E, loc.at(vs, 'tcp'), 'delegate virtual service must have no tcp route specified');
  }
  checkGatewayNames(vs, vs.gateways, loc, report);
  const appliesToGateway = (vs.gateways?.length ?? 0) > 0 && !vs.gateways!.includes('mesh');
  const appliesToMesh = !appliesToGateway;
  const sni = (vs.tls ?? []).some((t) => (t?.match ?? []).some((m) => (m?.sniHosts?.length ?? 0) > 0));
  let allValid = true;
  (vs.hosts ?? []).forEach((h, i) => {
    if (h === null) return;
    const at = loc.at(vs, 'hosts', i);
    const err = appliesToGateway && sni && h.startsWith('outbound_') ? null : wildcardDomainError(h);
    if (err !== null) {
      if (isIP(h) === 0) {
        report.error(E, at, err);
        allValid = false;
      }
    } else if (appliesToMesh && h === '*') {
      report.error(E, at, 'wildcard host * is not allowed for virtual services bound to the mesh gateway');
      allValid = false;
    }
  });
  if (allValid) {
    for (let i = 0; i < hosts.length; i++) {
      for (let j = i + 1; j < hosts.length; j++) {
        if (hostsOverlap(hosts[i]!, hosts[j]!)) report.error(E, loc.at(vs, 'hosts', j), `duplicate hosts in virtual service: ${hosts[i]} & ${hosts[j]}`);
      }
    }
  }
  if ((vs.http?.length ?? 0) === 0 && (vs.tcp?.length ?? 0) === 0 && (vs.tls?.length ?? 0) === 0 &&
    !['http', 'tcp', 'tls'].some((k) => loc.wasRejected(vs, k))) {
    report.error(ConfigErrorCode.REQUIRED, loc.at(vs), 'http, tcp or tls must be provided in virtual service');
  }
  for (const route of [...(vs.tls ?? []), ...(vs.tcp ?? [])]) {
    for (const m of route?.match ?? []) {
      if (m === null) continue;
      (m.destinationSubnets ?? []).forEach((sn, k) => {
        if (sn !== null) { const e = subnetError(sn); if (e !== null) report.error(E, loc.at(m, 'destinationSubnets', k), e); }
      });
      checkLabels(m.sourceLabels, loc, report);
      checkGatewayNames(m, m.gateways, loc, report);
    }
  }
  // Istio validateSniHost: each SNI host is a valid (wildcard) name and one of the names the VS claims (#8585).
  for (const route of vs.tls ?? []) {
    for (const m of route?.match ?? []) {
      (m?.sniHosts ?? []).forEach((name, k) => {
        if (name === null) return;
        const at = loc.at(m!, 'sniHosts', k);
        const err = wildcardDomainError(name);
        if (err !== null) {
          if (isIP(name) !== 0) report.warn(ConfigErrorCode.TRAP, at, `using an IP address ("${name}") goes against SNI spec and most clients do not support this`);
          else report.error(E, at, err);
          return;
        }
        if (!hosts.some((h) => hostSubsetOf(name, h))) {
          report.error(ConfigErrorCode.SEMANTIC, at, `SNI host "${name}" is not a compatible subset of any of the virtual service hosts: [${hosts.join(', ')}]`);
        }
      });
    }
  }
}

/** Istio host.Name.Matches: the two names (either may be a wildcard) can stand for a common name. */
function hostsOverlap(a: string, b: string): boolean {
  return hostSubsetOf(a, b) || hostSubsetOf(b, a) || (a.startsWith('*') && b.startsWith('*') && (a.endsWith(b.slice(1)) || b.endsWith(a.slice(1))));
}
