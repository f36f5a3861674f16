// DestinationRule: field tables + Istio's own validation rules (ENVOY-ISTIO.md §3.8; Istio
// pkg/config/validation ValidateDestinationRule, validateTLS, validateLoadBalancer).

import { ConfigErrorCode } from '../errors';
import { PORT_SELECTOR, WORKLOAD_SELECTOR } from './common';
import {
  any, arr, bool, duration, enumOf, field, int, obj, port, required, schema, str, strList, strMap,
  type Locator, type ObjectSchema, type Reporter,
} from './schema';
import type { ClientTLSSettings, ConsistentHashLB, DestinationRuleSpec, LoadBalancerSettings } from './types';

const CONSISTENT_HASH = schema('ConsistentHashLB', [
  field('httpHeaderName', str()),
  field('httpCookie', obj(schema('HTTPCookie', [required('name', str()), field('path', str()), field('ttl', duration(), { out: 'ttlMs' })]))),
  field('useSourceIp', bool()),
  field('httpQueryParameterName', str()),
  field('ringHash', obj(schema('RingHash', [field('minimumRingSize', int())]))),
  field('maglev', obj(schema('MagLev', [field('tableSize', int())]))),
  field('minimumRingSize', int()),
], (h: ConsistentHashLB, loc: Locator, r: Reporter) => {
  const keys = (['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const).filter((k) => h[k] !== undefined);
  if (keys.length !== 1) {
    r.error(ConfigErrorCode.INVALID_FIELD, loc.at(h), `set exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName (found ${keys.length === 0 ? 'none' : keys.join(' and ')})`);
  }
});

const LOAD_BALANCER = schema('LoadBalancerSettings', [
  field('simple', enumOf('UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST')),
  field('consistentHash', obj(CONSISTENT_HASH)),
  field('localityLbSetting', any()),
  // A protobuf Duration despite the name; kept in seconds as the name says.
  field('warmupDurationSecs', duration('s')),
], (lb: LoadBalancerSettings, loc: Locator, r: Reporter) => {
  if (lb.simple !== undefined && lb.consistentHash !== undefined) {
    r.error(ConfigErrorCode.INVALID_FIELD, loc.at(lb), 'set only one of simple or consistentHash');
  }
});

const CONNECTION_POOL = schema('ConnectionPoolSettings', [
  field('tcp', obj(schema('TCPSettings', [
    field('maxConnections', int()),
    field('connectTimeout', duration(), { out: 'connectTimeoutMs' }),
    field('tcpKeepalive', obj(schema('TcpKeepalive', [
      field('probes', int()),
      field('time', duration(), { out: 'timeMs' }),
      field('interval', duration(), { out: 'intervalMs' }),
    ]))),
    field('maxConnectionDuration', duration(), { out: 'maxConnectionDurationMs' }),
    field('idleTimeout', duration(), { out: 'idleTimeoutMs' }),
  ]))),
  field('http', obj(schema('HTTPSettings', [
    field('http1MaxPendingRequests', int()),
    field('http2MaxRequests', int()),
    field('maxRequestsPerConnection', int()),
    field('maxRetries', int()),
    field('idleTimeout', duration(), { out: 'idleTimeoutMs' }),
    field('h2UpgradePolicy', enumOf('DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE')),
    field('useClientProtocol', bool()),
    field('maxConcurrentStreams', int()),
  ]))),
]);

const OUTLIER_DETECTION = schema('OutlierDetection', [
  // The proto field is consecutive_5xx_errors: the digit run gets its own underscore.
  field('consecutive5xxErrors', int(), { snake: 'consecutive_5xx_errors' }),
  field('consecutiveGatewayErrors', int()),
  field('splitExternalLocalOriginErrors', bool()),
  field('consecutiveLocalOriginFailures', int()),
  field('interval', duration(), { out: 'intervalMs' }),
  field('baseEjectionTime', duration(), { out: 'baseEjectionTimeMs' }),
  field('maxEjectionPercent', int(0, 100)),
  field('minHealthPercent', int(0, 100)),
]);

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

function checkClientTls(tls: ClientTLSSettings, loc: Locator, r: Reporter): void {
  if (tls.mode === 'MUTUAL' && tls.credentialName === undefined) {
    for (const f of ['clientCertificate', 'privateKey'] as const) {
      if (tls[f] === undefined) r.error(ConfigErrorCode.REQUIRED, loc.at(tls, f), `MUTUAL TLS requires ${f} (or credentialName)`);
    }
  }
  if (tls.mode === 'ISTIO_MUTUAL') {
    for (const f of ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName'] as const) {
      if (tls[f] !== undefined) r.error(ConfigErrorCode.INVALID_FIELD, loc.at(tls, f), `ISTIO_MUTUAL TLS must not set ${f} (the workload identity is used)`);
    }
  }
}

const POLICY_FIELDS = [
  field('loadBalancer', obj(LOAD_BALANCER)),
  field('connectionPool', obj(CONNECTION_POOL)),
  field('outlierDetection', obj(OUTLIER_DETECTION)),
  field('tls', obj(CLIENT_TLS)),
];

const PORT_TRAFFIC_POLICY = schema('PortTrafficPolicy', [required('port', obj(PORT_SELECTOR)), ...POLICY_FIELDS]);

const TRAFFIC_POLICY: ObjectSchema = schema('TrafficPolicy', [
  ...POLICY_FIELDS,
  field('portLevelSettings', arr(obj(PORT_TRAFFIC_POLICY))),
  field('tunnel', obj(schema('TunnelSettings', [field('protocol', str()), required('targetHost', str()), required('targetPort', port())]))),
  field('proxyProtocol', obj(schema('ProxyProtocol', [field('version', enumOf('V1', 'V2'))]))),
]);

const SUBSET = schema('Subset', [
  required('name', str()),
  field('labels', strMap()),
  field('trafficPolicy', obj(TRAFFIC_POLICY)),
]);

export const DESTINATION_RULE_SPEC = schema('DestinationRuleSpec', [
  required('host', str()),
  field('trafficPolicy', obj(TRAFFIC_POLICY)),
  field('subsets', arr(obj(SUBSET))),
  field('exportTo', strList()),
  field('workloadSelector', obj(WORKLOAD_SELECTOR)),
], checkDestinationRule);

function checkDestinationRule(dr: DestinationRuleSpec, loc: Locator, r: Reporter): void {
  if (dr.host === '') r.error(ConfigErrorCode.INVALID_FIELD, loc.at(dr, 'host'), 'host must not be empty');
  const names = new Set<string>();
  for (const s of dr.subsets ?? []) {
    if (s === null || s.name === undefined) continue;
    if (names.has(s.name)) r.error(ConfigErrorCode.INVALID_FIELD, loc.at(s, 'name'), `duplicate subset name "${s.name}"`);
    names.add(s.name);
  }
}
