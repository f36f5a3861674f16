import t from 'tap';
import { parseDurationNs, toSnake } from '../../../../config/resources/schema';
import { doc, load, messages } from './_load';

t.test('durations: Go syntax to nanoseconds; invalid -> null', async (t) => {
  const cases: [unknown, number | null][] = [
    ['1h', 3600e9], ['1m', 60e9], ['1s', 1e9], ['500ms', 500e6], ['1.5s', 1.5e9], ['10us', 10e3], ['10µs', 10e3],
    ['1h30m', 5400e9], ['0', 0], [0, 0], ['.5s', 0.5e9], ['100ns', 100],
    ['', null], ['1', null], [1, null], ['1x', null], ['s', null], ['-1s', null], ['1.5', null], ['1s ', null], ['2 seconds', null], [null, null],
  ];
  for (const [input, want] of cases) t.equal(parseDurationNs(input), want, JSON.stringify(input));
});

t.test('duration fields become integer ms under their Ms names (sub-ms rounds up, never to 0)', async (t) => {
  const vs = load(doc('VirtualService', 'v', `
  hosts: [a.example.com]
  http:
  - route: [{destination: {host: a.example.com}}]
    timeout: 1.5s
    retries: {attempts: 2, perTryTimeout: 10ms, backoff: 10us}
    fault: {delay: {fixedDelay: 1m, percentage: {value: 0.5}}}
    corsPolicy: {maxAge: 24h}
`));
  t.same(vs.messages, []);
  const h = vs.resources.virtualServices[0]!.spec.http![0]!;
  t.equal(h.timeoutMs, 1500);
  t.same(h.retries, { attempts: 2, perTryTimeoutMs: 10, backoffMs: 1 });
  t.same(h.fault, { delay: { fixedDelayMs: 60000, percentage: { value: 0.5 } } });
  t.same(h.corsPolicy, { maxAgeMs: 86400000 });

  const dr = load(doc('DestinationRule', 'd', `
  host: a.example.com
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 90s}
    connectionPool:
      tcp: {connectTimeout: 250ms, tcpKeepalive: {probes: 3, time: 2h, interval: 75s}, maxConnectionDuration: 1h, idleTimeout: 5m}
      http: {idleTimeout: 1s}
    outlierDetection: {interval: 10s, baseEjectionTime: 30s}
  subsets:
  - name: s
    trafficPolicy:
      loadBalancer: {consistentHash: {httpCookie: {name: c, ttl: 0s}}}
`));
  // maxConnectionDuration and http.idleTimeout are carried, not acted on: two notices, nothing else.
  t.same(dr.messages.map((m) => m.code), ['CFG_WARN_NOT_ACTED_ON', 'CFG_WARN_NOT_ACTED_ON']);
  const p = dr.resources.destinationRules[0]!.spec.trafficPolicy!;
  t.same(p.loadBalancer, { simple: 'ROUND_ROBIN', warmupDurationSecs: 90 });
  t.same(p.connectionPool, {
    tcp: { connectTimeoutMs: 250, tcpKeepalive: { probes: 3, timeMs: 7200000, intervalMs: 75000 }, maxConnectionDurationMs: 3600000, idleTimeoutMs: 300000 },
    http: { idleTimeoutMs: 1000 },
  });
  t.same(p.outlierDetection, { intervalMs: 10000, baseEjectionTimeMs: 30000 });
  t.same(dr.resources.destinationRules[0]!.spec.subsets![0]!.trafficPolicy!.loadBalancer, { consistentHash: { httpCookie: { name: 'c', ttlMs: 0 } } });
});

// One YAML using every multi-word field we care about, in camelCase; the snake_case copy is derived
// by rewriting keys, so the two must normalise to the same resources.
const CAMEL = `apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: se
spec:
  hosts: [a.example.com]
  addresses: [198.18.1.1]
  ports: [{number: 8080, name: http, protocol: HTTP, targetPort: 80}]
  resolution: STATIC
  location: MESH_INTERNAL
  exportTo: ["*"]
  subjectAltNames: [spiffe://x]
  endpoints: [{address: 198.18.1.2, serviceAccount: sa, ports: {http: 80}, labels: {app.kubernetes.io/name: a}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: gw
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [a.example.com]
    defaultEndpoint: 127.0.0.1:80
    tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k, caCertificates: /ca, minProtocolVersion: TLSV1_2, cipherSuites: [x], subjectAltNames: [y], httpsRedirect: false}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: [a.example.com]
  exportTo: ["."]
  http:
  - match: [{uri: {prefix: /}, ignoreUriCase: true, sourceLabels: {app: x}, queryParams: {q: {exact: v}}, withoutHeaders: {X-Bad: {}}, sourceNamespace: ns, statPrefix: sp}]
    route: [{destination: {host: a.example.com}, headers: {request: {set: {X-A: b}}}}]
    directResponse: null
    retries: {attempts: 1, perTryTimeout: 1s, retryOn: 5xx, retryRemoteLocalities: true, retryIgnorePreviousHosts: false}
    mirrorPercentage: {value: 5}
    corsPolicy: {allowOrigins: [{exact: o}], allowMethods: [GET], allowHeaders: [h], exposeHeaders: [e], maxAge: 1s, allowCredentials: true}
    rewrite: {uriRegexRewrite: {match: "^/a", rewrite: /b}}
  - redirect: {uri: /x, redirectCode: 302, derivePort: FROM_REQUEST_PORT}
  - directResponse: {status: 503, body: {string: down}}
  tls:
  - match: [{sniHosts: [a.example.com], destinationSubnets: [198.18.0.0/16], port: 443}]
    route: [{destination: {host: a.example.com}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: dr
spec:
  host: a.example.com
  workloadSelector: {matchLabels: {app: a}}
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 1024}}, localityLbSetting: {enabled: true}}
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 1s, maxConnectionDuration: 1h, idleTimeout: 1h, tcpKeepalive: {time: 1s}}
      http: {http1MaxPendingRequests: 1, http2MaxRequests: 2, maxRequestsPerConnection: 3, maxRetries: 4, h2UpgradePolicy: DO_NOT_UPGRADE, useClientProtocol: true, maxConcurrentStreams: 5}
    outlierDetection: {consecutive5xxErrors: 5, consecutiveGatewayErrors: 1, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2, baseEjectionTime: 30s, maxEjectionPercent: 10, minHealthPercent: 0}
    tls: {mode: SIMPLE, caCertificates: /ca, insecureSkipVerify: false, subjectAltNames: [s], caCrl: /crl}
    portLevelSettings: [{port: {number: 443}, tls: {mode: MUTUAL, clientCertificate: /c, privateKey: /k}}]
    proxyProtocol: {version: V2}
`;

function toSnakeKeys(yaml: string): string {
  // Rewrites `someKey:` (keys start lower-case; map keys in the YAML above never contain capitals).
  return yaml.replace(/([{\s,])([a-z][a-z0-9]*[A-Z][A-Za-z0-9]*):/g, (_m, pre: string, key: string) => pre + (key === 'apiVersion' ? key : toSnake(key)) + ':')
    .replace(/consecutive5xx_errors/g, 'consecutive_5xx_errors');
}

t.test('camelCase and proto snake_case spellings normalise to the same resources', async (t) => {
  const snake = toSnakeKeys(CAMEL);
  t.match(snake, /sni_hosts:/);
  t.match(snake, /consecutive_5xx_errors:/);
  t.match(snake, /http1_max_pending_requests:/);
  t.notMatch(snake, /sniHosts/);
  const a = load(CAMEL);
  const b = load(snake);
  // Only the not-acted-on notices (maxConnectionDuration, proxyProtocol), the same for both spellings but for the path as written.
  t.same(a.messages.map((m) => m.code), ['CFG_WARN_NOT_ACTED_ON', 'CFG_WARN_NOT_ACTED_ON']);
  t.same(b.messages.map((m) => m.code), ['CFG_WARN_NOT_ACTED_ON', 'CFG_WARN_NOT_ACTED_ON']);
  t.ok(b.messages.some((m) => m.text.includes('spec.traffic_policy.proxy_protocol: proxyProtocol is carried but not acted on')), 'snake path as written');
  t.strictSame(b.resources, a.resources);
  const vs = a.resources.virtualServices[0]!;
  t.same(vs.spec.tls![0]!.match[0]!.sniHosts, ['a.example.com']);
  t.same(a.resources.destinationRules[0]!.spec.trafficPolicy!.outlierDetection!.consecutive5xxErrors, 5);
});

t.test('map keys kept as written; header names lower-cased', async (t) => {
  const r = load(CAMEL);
  const se = r.resources.serviceEntries[0]!;
  t.same(se.spec.endpoints![0]!.labels, { 'app.kubernetes.io/name': 'a' });
  const h = r.resources.virtualServices[0]!.spec.http![0]!;
  t.same(h.match![0]!.withoutHeaders, { 'x-bad': {} });
  t.same(h.match![0]!.sourceLabels, { app: 'x' });
  t.same(h.route![0]!.headers, { request: { set: { 'x-a': 'b' } } });
  const rm = load(doc('VirtualService', 'v', '  hosts: [a.b]\n  http: [{route: [{destination: {host: a.b}}], headers: {response: {remove: [X-Powered-By]}}}]'));
  t.same(rm.resources.virtualServices[0]!.spec.http![0]!.headers, { response: { remove: ['x-powered-by'] } });
});

t.test('port protocols are case-insensitive and upper-cased; absent stays undefined', async (t) => {
  const r = load(doc('ServiceEntry', 's', `
  hosts: [a.example.com]
  ports: [{number: 1, name: a, protocol: http}, {number: 2, name: b, protocol: GRPC-Web}, {number: 3, name: c, protocol: Tcp}, {number: 4, name: d}]
  resolution: DNS
  addresses: [198.18.0.1]
`));
  t.same(r.messages, []);
  const ports = r.resources.serviceEntries[0]!.spec.ports!;
  t.same(ports.map((p) => p.protocol), ['HTTP', 'GRPC-WEB', 'TCP', undefined]);
  t.notOk('protocol' in ports[3]!);
});

t.test('scalars: quoted integers accepted (proto JSON), wrong types named, null means absent', async (t) => {
  const r = load(doc('ServiceEntry', 's', '  hosts: [a.example.com]\n  ports: [{number: "8080", name: http, protocol: HTTP}]\n  resolution:\n  location: ~'));
  t.same(r.messages, []);
  t.same(r.resources.serviceEntries[0]!.spec, { hosts: ['a.example.com'], ports: [{ number: 8080, protocol: 'HTTP', name: 'http' }] });
  t.same(messages(doc('ServiceEntry', 's', '  hosts: edition.cnn.com\n  ports: [{number: 80.5, name: 7, protocol: HTTP}]')), [
    'error CFG_ERR_INVALID_FIELD f.yaml:1: ServiceEntry/s: spec.hosts: expected a list, got "edition.cnn.com"',
    'error CFG_ERR_INVALID_FIELD f.yaml:1: ServiceEntry/s: spec.ports[0].number: expected an integer between 1 and 65535, got 80.5',
    'error CFG_ERR_INVALID_FIELD f.yaml:1: ServiceEntry/s: spec.ports[0].name: expected a string, got 7',
  ]);
  t.same(messages(doc('Gateway', 'g', '  servers: [{port: {number: 80, name: p80, protocol: HTTP}, hosts: [a.b], tls: {httpsRedirect: "yes"}}]')), [
    'error CFG_ERR_INVALID_FIELD f.yaml:1: Gateway/g: spec.servers[0].tls.httpsRedirect: expected true or false, got "yes"',
  ]);
});

t.test('tls: {} stays an empty object (Istio: PASSTHROUGH), distinct from absent', async (t) => {
  const r = load(doc('Gateway', 'g', '  servers: [{port: {number: 443, name: tls, protocol: TLS}, hosts: [a.example.com], tls: {}}]'));
  t.same(r.messages, []);
  t.same(r.resources.gateways[0]!.spec.servers[0]!.tls, {});
});

t.test('unknown fields warn with the enclosing path and are dropped', async (t) => {
  const r = load(doc('DestinationRule', 'd', '  host: a.example.com\n  trafficPolicy: {tls: {mode: SIMPLE, sni_name: x}}'));
  t.same(r.messages.map((m) => `${m.level} ${m.text}`), ['warning f.yaml:1: DestinationRule/d: spec.trafficPolicy.tls: unknown field "sni_name"']);
  t.same(r.resources.destinationRules[0]!.spec.trafficPolicy!.tls, { mode: 'SIMPLE' });
});
