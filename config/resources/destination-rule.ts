// DestinationRule: field tables + Istio's own validation rules (Istio
// pkg/config/validation ValidateDestinationRule, validateTLS, validateLoadBalancer).

import { ConfigErrorCode } from '../errors';
import { checkLabels, MATCH_LABELS_SELECTOR, PORT_SELECTOR, report, subsetNameError } from './common';
import { checkLocalityLb } from './locality';
import { fqdnError, ipError, wildcardDomainError } from './names';
import {
  arr, bool, duration, enumOf, field, int, map, msDuration, num, obj, port, required, schema, str, strList, strMap,
  type Locator, type ObjectSchema, type Reporter,
} from './schema';
import type {
  ClientTLSSettings, ConnectionPoolSettings, ConsistentHashLB, DestinationRuleSpec, LoadBalancerSettings, OutlierDetection, Subset, TrafficPolicy,
} from './types';

const CONSISTENT_HASH = schema('ConsistentHashLB', [
  field('httpHeaderName', str()),
  field('httpCookie', obj(schema('HTTPCookie', [required('name', str()), field('path', str()), field('ttl', duration(), { out: 'ttlMs' })]))),
  field('useSourceIp', bool()),
  field('httpQueryParameterName', str()),
  field('ringHash', obj(schema('RingHash', [field('minimumRingSize', int())]))),
  field('maglev', obj(schema('MagLev', [field('tableSize', int())]))),
  field('minimumRingSize', int()),
], (h: ConsistentHashLB, loc: Locator, r: Reporter) => {
  // The hash key and the algorithm are protobuf oneofs: two of either is an error in Istio's parser.
  const keys = (['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const).filter((k) => h[k] !== undefined);
  if (keys.length > 1) r.error(ConfigErrorCode.INVALID_FIELD, loc.at(h), `set only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName (found ${keys.join(' and ')})`);
  if (h.ringHash !== undefined && h.maglev !== undefined) r.error(ConfigErrorCode.INVALID_FIELD, loc.at(h), 'set only one of ringHash or maglev');
  if (h.minimumRingSize !== undefined && h.minimumRingSize !== 0) {
    r.warn(ConfigErrorCode.TRAP, loc.at(h, 'minimumRingSize'), "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead");
    if (h.ringHash !== undefined || h.maglev !== undefined) r.error(ConfigErrorCode.INVALID_FIELD, loc.at(h, 'minimumRingSize'), 'only one of MinimumRingSize or Maglev/Ringhash can be specified');
  }
  const table = h.maglev?.tableSize;
  if (h.maglev !== undefined && !loc.wasRejected(h.maglev, 'tableSize')) {
    const at = loc.at(h.maglev, 'tableSize');
    if (table === undefined || table === 0) r.error(ConfigErrorCode.REQUIRED, at, 'tableSize must be set for maglev');
    else if (table >= 5000011) r.error(ConfigErrorCode.INVALID_FIELD, at, 'tableSize must be less than 5000011 for maglev');
    else if (!isPrime(table)) r.error(ConfigErrorCode.INVALID_FIELD, at, 'tableSize must be a prime number for maglev');
  }
});

/** Envoy's isPrime (source/common/common/utility.cc), which Istio copies to agree with it exactly. */
function isPrime(x: number): boolean {
  if (x !== 0 && x < 4) return true;
  if (x % 2 === 0) return false;
  for (let f = 3; f * f <= x; f += 2) if (x % f === 0) return false;
  return true;
}

const WARMUP = schema('WarmupConfiguration', [
  required('duration', msDuration(), { out: 'durationMs' }),
  field('minimumPercent', num(0, 100)),
  field('aggression', num(0, Number.MAX_VALUE)),
]);

const LOCALITY_LB = schema('LocalityLoadBalancerSetting', [
  field('distribute', arr(obj(schema('Distribute', [field('from', str()), field('to', map(int()))])))),
  field('failover', arr(obj(schema('Failover', [field('from', str()), field('to', str())])))),
  field('failoverPriority', strList()),
  field('enabled', bool()),
], checkLocalityLb);

const LOAD_BALANCER = schema('LoadBalancerSettings', [
  field('simple', enumOf('UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST')),
  field('consistentHash', obj(CONSISTENT_HASH)),
  field('localityLbSetting', obj(LOCALITY_LB)),
  // A protobuf Duration despite the name; kept in seconds as the name says.
  field('warmupDurationSecs', msDuration('s')),
  field('warmup', obj(WARMUP)),
], (lb: LoadBalancerSettings, loc: Locator, r: Reporter) => {
  if (lb.simple !== undefined && lb.consistentHash !== undefined) {
    r.error(ConfigErrorCode.INVALID_FIELD, loc.at(lb), 'set only one of simple or consistentHash');
  }
});

const CONNECTION_POOL = schema('ConnectionPoolSettings', [
  field('tcp', obj(schema('TCPSettings', [
    field('maxConnections', int()),
    field('connectTimeout', msDuration(), { out: 'connectTimeoutMs' }),
    field('tcpKeepalive', obj(schema('TcpKeepalive', [
      field('probes', int()),
      field('time', msDuration(), { out: 'timeMs' }),
      field('interval', msDuration(), { out: 'intervalMs' }),
    ]))),
    field('maxConnectionDuration', msDuration(), { out: 'maxConnectionDurationMs' }),
    field('idleTimeout', msDuration(), { out: 'idleTimeoutMs' }),
  ]))),
  field('http', obj(schema('HTTPSettings', [
    field('http1MaxPendingRequests', int()),
    field('http2MaxRequests', int()),
    field('maxRequestsPerConnection', int()),
    field('maxRetries', int()),
    field('idleTimeout', msDuration(), { out: 'idleTimeoutMs' }),
    field('h2UpgradePolicy', enumOf('DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE')),
    field('useClientProtocol', bool()),
    field('maxConcurrentStreams', int()),
  ]))),
], (cp: ConnectionPoolSettings, loc: Locator, r: Reporter) => {
  if (cp.tcp === undefined && cp.http === undefined && !loc.wasRejected(cp, 'tcp') && !loc.wasRejected(cp, 'http')) {
    r.error(ConfigErrorCode.REQUIRED, loc.at(cp), 'connection pool must have at least one field');
  }
  if (cp.http?.h2UpgradePolicy === 'UPGRADE' && cp.http.useClientProtocol === true) {
    r.error(ConfigErrorCode.INVALID_FIELD, loc.at(cp.http, 'useClientProtocol'), 'use client protocol must not be true when H2UpgradePolicy is UPGRADE');
  }
});

const OUTLIER_DETECTION = schema('OutlierDetection', [
  field('consecutiveErrors', int()),
  // The proto field is consecutive_5xx_errors: the digit run gets its own underscore.
  field('consecutive5xxErrors', int(), { snake: 'consecutive_5xx_errors' }),
  field('consecutiveGatewayErrors', int()),
  field('splitExternalLocalOriginErrors', bool()),
  field('consecutiveLocalOriginFailures', int()),
  field('interval', msDuration(), { out: 'intervalMs' }),
  field('baseEjectionTime', msDuration(), { out: 'baseEjectionTimeMs' }),
  field('maxEjectionPercent', int(0, 100)),
  field('minHealthPercent', int(0, 100)),
], (o: OutlierDetection, loc: Locator, r: Reporter) => {
  if (o.consecutiveErrors !== undefined && o.consecutiveErrors !== 0) {
    r.warn(ConfigErrorCode.TRAP, loc.at(o, 'consecutiveErrors'),
      'outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead');
  }
  if (o.splitExternalLocalOriginErrors !== true && (o.consecutiveLocalOriginFailures ?? 0) > 0) {
    r.error(ConfigErrorCode.INVALID_FIELD, loc.at(o, 'consecutiveLocalOriginFailures'),
      'outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false');
  }
});

const CLIENT_TLS = schema('ClientTLSSettings', [
  field('mode', enumOf('DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL')),
  field('clientCertificate', str()),
  field('privateKey', str()),
  field('caCertificates', str()),
  field('credentialName', str()),
  field('subjectAltNames', strList()),
  field('sni', str()),
  field('insecureSkipVerify', bool()),
  field('caCrl', str()),
], checkClientTls);

/** Istio agent.ValidateTLS (client side). */
function checkClientTls(tls: ClientTLSSettings, loc: Locator, r: Reporter): void {
  const E = ConfigErrorCode.INVALID_FIELD;
  if (tls.insecureSkipVerify === true) {
    if (tls.mode === 'SIMPLE' && (tls.caCertificates !== undefined || tls.credentialName !== undefined || tls.subjectAltNames !== undefined)) {
      r.error(E, loc.at(tls, 'insecureSkipVerify'), 'cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true');
    }
    if (tls.mode === 'MUTUAL' && (tls.caCertificates !== undefined || tls.subjectAltNames !== undefined)) {
      r.error(E, loc.at(tls, 'insecureSkipVerify'), 'cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true');
    }
  }
  if ((tls.mode === 'SIMPLE' || tls.mode === 'MUTUAL') && tls.credentialName !== undefined) {
    if (tls.clientCertificate !== undefined || tls.caCertificates !== undefined || tls.privateKey !== undefined || tls.caCrl !== undefined) {
      r.error(E, loc.at(tls, 'credentialName'), 'cannot specify client certificates or CA certificate or CA CRL If credentialName is set');
    }
    return;
  }
  if (tls.mode === 'MUTUAL') {
    if (tls.clientCertificate === undefined) r.error(ConfigErrorCode.REQUIRED, loc.at(tls, 'clientCertificate'), 'client certificate required for mutual tls');
    if (tls.privateKey === undefined) r.error(ConfigErrorCode.REQUIRED, loc.at(tls, 'privateKey'), 'private key required for mutual tls');
  }
}

const POLICY_FIELDS = [
  field('loadBalancer', obj(LOAD_BALANCER)),
  field('connectionPool', obj(CONNECTION_POOL)),
  field('outlierDetection', obj(OUTLIER_DETECTION)),
  field('tls', obj(CLIENT_TLS)),
];

const PORT_TRAFFIC_POLICY = schema('PortTrafficPolicy', [required('port', obj(PORT_SELECTOR)), ...POLICY_FIELDS], (p: TrafficPolicy, loc: Locator, r: Reporter) => {
  if (p.loadBalancer === undefined && p.connectionPool === undefined && p.outlierDetection === undefined && p.tls === undefined && !anyRejected(p, loc)) {
    r.error(ConfigErrorCode.REQUIRED, loc.at(p), 'port traffic policy must have at least one field');
  }
  checkFailoverHasOutlier(p, loc, r);
});

const TUNNEL = schema('TunnelSettings', [field('protocol', str()), required('targetHost', str()), required('targetPort', port())],
  (t: { protocol?: string; targetHost?: string }, loc: Locator, r: Reporter) => {
    if (t.protocol !== undefined && t.protocol !== '' && t.protocol !== 'CONNECT' && t.protocol !== 'POST') {
      r.error(ConfigErrorCode.INVALID_FIELD, loc.at(t, 'protocol'), 'tunnel protocol must be "CONNECT" or "POST"');
    }
    if (t.targetHost !== undefined) {
      const fqdn = fqdnError(t.targetHost);
      const ip = ipError(t.targetHost);
      if (fqdn !== null && ip !== null) r.error(ConfigErrorCode.INVALID_FIELD, loc.at(t, 'targetHost'), `tunnel target host must be valid FQDN or IP address: ${fqdn}; ${ip}`);
    }
  });

const POLICY_KEYS = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls', 'portLevelSettings', 'tunnel', 'proxyProtocol'] as const;

function anyRejected(p: object, loc: Locator): boolean {
  return POLICY_KEYS.some((k) => loc.wasRejected(p, k));
}

const TRAFFIC_POLICY: ObjectSchema = schema('TrafficPolicy', [
  ...POLICY_FIELDS,
  field('portLevelSettings', arr(obj(PORT_TRAFFIC_POLICY))),
  field('tunnel', obj(TUNNEL)),
  field('proxyProtocol', obj(schema('ProxyProtocol', [field('version', enumOf('V1', 'V2'))]))),
], (p: TrafficPolicy, loc: Locator, r: Reporter) => {
  if (POLICY_KEYS.every((k) => p[k] === undefined) && !anyRejected(p, loc)) {
    r.error(ConfigErrorCode.REQUIRED, loc.at(p), 'traffic policy must have at least one field');
  }
  if (p.tunnel !== undefined && p.proxyProtocol !== undefined) r.error(ConfigErrorCode.INVALID_FIELD, loc.at(p), 'tunnel and proxyProtocol must not be set together');
  checkFailoverHasOutlier(p, loc, r);
});

/** Istio ValidateLocalityLbSetting's one rule that needs the sibling outlierDetection. */
function checkFailoverHasOutlier(p: TrafficPolicy, loc: Locator, r: Reporter): void {
  const l = p.loadBalancer?.localityLbSetting;
  if (l === undefined || p.outlierDetection !== undefined) return;
  if ((l.failover?.length ?? 0) > 0 || (l.failoverPriority?.length ?? 0) > 0) {
    r.warn(ConfigErrorCode.TRAP, loc.at(l), 'outlier detection policy must be provided for failover');
  }
}

const SUBSET = schema('Subset', [
  required('name', str()),
  field('labels', strMap()),
  field('trafficPolicy', obj(TRAFFIC_POLICY)),
], (s: Subset, loc: Locator, r: Reporter) => {
  if (s.name !== undefined) report(r, loc.at(s, 'name'), subsetNameError(s.name));
  checkLabels(s.labels, loc, r);
});

export const DESTINATION_RULE_SPEC = schema('DestinationRuleSpec', [
  required('host', str()),
  field('trafficPolicy', obj(TRAFFIC_POLICY)),
  field('subsets', arr(obj(SUBSET))),
  field('exportTo', strList()),
  field('workloadSelector', obj(MATCH_LABELS_SELECTOR)),
], checkDestinationRule);

function checkDestinationRule(dr: DestinationRuleSpec, loc: Locator, r: Reporter): void {
  if (dr.host !== undefined) report(r, loc.at(dr, 'host'), wildcardDomainError(dr.host));
  const names = new Set<string>();
  for (const s of dr.subsets ?? []) {
    if (s === null || s.name === undefined) continue;
    if (names.has(s.name)) r.error(ConfigErrorCode.INVALID_FIELD, loc.at(s, 'name'), `duplicate subset names: ${s.name}`);
    names.add(s.name);
  }
}
