// VirtualService: field tables + Istio's own validation rules (ENVOY-ISTIO.md §3.7; Istio
// pkg/config/validation ValidateVirtualService, validateHTTPRoute, validateTLSMatch).

import { ConfigErrorCode } from '../errors';
import {
  DESTINATION, PERCENT, STRING_MATCH, STRING_MATCH_OR_PRESENCE, WEIGHT, hostSubsetOf,
} from './common';
import {
  arr, bool, duration, enumOf, field, int, map, obj, port, required, schema, str, strList, strMap,
  type Locator, type Reporter,
} from './schema';
import type { HTTPRoute, VirtualServiceSpec } from './types';

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
  field('perTryTimeout', duration(), { out: 'perTryTimeoutMs' }),
  field('retryOn', str()),
  field('retryRemoteLocalities', bool()),
  field('retryIgnorePreviousHosts', bool()),
  field('backoff', duration(), { out: 'backoffMs' }),
]);

const HTTP_FAULT = schema('HTTPFaultInjection', [
  field('delay', obj(schema('Delay', [
    field('fixedDelay', duration(), { out: 'fixedDelayMs' }),
    field('percentage', obj(PERCENT)),
    field('percent', int(0, 100)),
  ]))),
  field('abort', obj(schema('Abort', [
    field('httpStatus', int(200, 599)),
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
  field('maxAge', duration(), { out: 'maxAgeMs' }),
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

/** Istio: with several destinations the weights must add up to 100 (one destination gets 100%). */
function checkWeights(r: WithRoute, loc: Locator, report: Reporter): void {
  const route = r.route;
  if (route === undefined || route.length < 2) return;
  // A rejected weight was already reported; a sum without it would only mislead.
  if (route.some((d) => d === null || loc.wasRejected(d, 'weight'))) return;
  let total = 0;
  for (const d of route) total += d?.weight ?? 0;
  if (total !== 100) report.error(ConfigErrorCode.INVALID_FIELD, loc.at(r, 'route'), `total destination weight is ${total}; weights must add up to 100`);
}

function checkHttpRoute(h: HTTPRoute, loc: Locator, report: Reporter): void {
  const actions = (['route', 'redirect', 'directResponse'] as const).filter((k) => h[k] !== undefined);
  if (h.delegate !== undefined) {
    if (actions.length > 0) {
      report.error(ConfigErrorCode.INVALID_FIELD, loc.at(h), `a delegate route must not also set ${actions.join(', ')}`);
    }
  } else if (actions.length === 0) {
    report.error(ConfigErrorCode.REQUIRED, loc.at(h), 'set exactly one of route, redirect, directResponse (found none)');
  } else if (actions.length > 1) {
    report.error(ConfigErrorCode.INVALID_FIELD, loc.at(h), `set exactly one of route, redirect, directResponse (found ${actions.join(' and ')})`);
  }
  if (h.redirect !== undefined && h.rewrite !== undefined) {
    report.error(ConfigErrorCode.INVALID_FIELD, loc.at(h, 'rewrite'), 'rewrite cannot be used together with redirect');
  }
  checkWeights(h, loc, report);
}

function checkVirtualService(vs: VirtualServiceSpec, loc: Locator, report: Reporter): void {
  const hosts = (vs.hosts ?? []).filter((h): h is string => h !== null);
  const gateways = vs.gateways === undefined || vs.gateways.length === 0 ? ['mesh'] : vs.gateways;
  (vs.hosts ?? []).forEach((h, i) => {
    if (h === '') report.error(ConfigErrorCode.INVALID_FIELD, loc.at(vs, 'hosts', i), 'host must not be empty');
    else if (h === '*' && gateways.includes('mesh')) {
      report.error(ConfigErrorCode.INVALID_FIELD, loc.at(vs, 'hosts', i), 'wildcard host "*" is not allowed for virtual services bound to the mesh gateway');
    }
  });
  // Each SNI host must be one of the names the VS claims, else Istio rejects it (#8585).
  for (const route of vs.tls ?? []) {
    for (const m of route?.match ?? []) {
      (m?.sniHosts ?? []).forEach((sni, k) => {
        if (sni === null || hosts.length === 0) return;
        if (!hosts.some((h) => hostSubsetOf(sni, h))) {
          report.error(ConfigErrorCode.SEMANTIC, loc.at(m!, 'sniHosts', k),
            `SNI host "${sni}" is not a compatible subset of the virtual service hosts [${hosts.join(', ')}]`);
        }
      });
    }
  }
}
