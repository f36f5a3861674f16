// Clusters: discovery type per resolution, endpoints, subsets, traffic-policy precedence
// (subset over top level; portLevelSettings replace and do not inherit), TLS origination.
import t from 'tap';
import { compile } from '../../../../config/compile/index';
import { ISTIO_MAX_UINT32 } from '../../../../config/compile/snapshot';
import { SIDECAR, dr, resources, se } from '../../../fixtures/compile/resources';
import type { ServiceEntry } from '../../../../config/resources/types';

const api = (extra: Partial<ServiceEntry['spec']> = {}) => se('api', 'default', {
  hosts: ['api.example.com'],
  ports: [{ number: 80, name: 'http', protocol: 'HTTP' }, { number: 443, name: 'https', protocol: 'HTTPS', targetPort: 8443 }],
  resolution: 'STATIC',
  endpoints: [
    { address: '198.18.10.1', labels: { version: 'v1' }, locality: 'eu/west/a', weight: 3 },
    { address: '198.18.10.2', labels: { version: 'v2' }, ports: { https: 9443 } },
  ],
  ...extra,
});

t.test('defaults: LEAST_REQUEST, 10s connect, 1h idle, MaxUint32 breakers, no TLS', async (t) => {
  const c = compile(resources(api()), SIDECAR).clusters.get('outbound|80||api.example.com')!;
  t.same(c.lb, { kind: 'LEAST_REQUEST' });
  t.equal(c.connectTimeoutMs, 10_000);
  t.equal(c.idleTimeoutMs, 3_600_000);
  t.equal(c.maxRequestsPerConnection, 0);
  t.equal(c.dnsRefreshMs, 60_000);
  t.same(c.circuitBreakers, { maxConnections: ISTIO_MAX_UINT32, maxPendingRequests: ISTIO_MAX_UINT32, maxRequests: ISTIO_MAX_UINT32, maxRetries: ISTIO_MAX_UINT32 });
  t.equal(c.tls, null);
  t.equal(c.protocol, 'HTTP');
  t.same(c.endpoints, [
    { address: '198.18.10.1', port: 80, labels: { version: 'v1' }, weight: 3, locality: 'eu/west/a', network: '' },
    { address: '198.18.10.2', port: 80, labels: { version: 'v2' }, weight: 1, locality: '', network: '' },
  ]);
  // Another network's endpoint is not reached directly (test/unit/config/compile/multicluster.test.ts).
  const split = compile(resources(api({ endpoints: [{ address: '198.18.10.1' }, { address: '198.18.10.2', network: 'n2' }] })), SIDECAR);
  t.same(split.clusters.get('outbound|80||api.example.com')!.endpoints.map((e) => e.address), ['198.18.10.1']);
});

t.test('connection pool limits of 0 mean the default, as Istio applies only values > 0', async (t) => {
  const zeros = dr('api', 'default', { host: 'api.example.com', trafficPolicy: { connectionPool: {
    tcp: { maxConnections: 0 }, http: { http1MaxPendingRequests: 0, http2MaxRequests: 0, maxRetries: 0, maxRequestsPerConnection: 0 } } } });
  const c = compile(resources(api(), zeros), SIDECAR).clusters.get('outbound|80||api.example.com')!;
  t.same(c.circuitBreakers, { maxConnections: ISTIO_MAX_UINT32, maxPendingRequests: ISTIO_MAX_UINT32, maxRequests: ISTIO_MAX_UINT32, maxRetries: ISTIO_MAX_UINT32 });
  t.equal(c.maxRequestsPerConnection, 0, 'unlimited requests per connection');
  const ones = dr('api', 'default', { host: 'api.example.com', trafficPolicy: { connectionPool: {
    tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1, http2MaxRequests: 1, maxRetries: 1 } } } });
  const d = compile(resources(api(), ones), SIDECAR).clusters.get('outbound|80||api.example.com')!;
  t.same(d.circuitBreakers, { maxConnections: 1, maxPendingRequests: 1, maxRequests: 1, maxRetries: 1 });
});

t.test('endpoint port: endpoint.ports[name] ?? targetPort ?? port', async (t) => {
  const c = compile(resources(api()), SIDECAR).clusters.get('outbound|443||api.example.com')!;
  t.same(c.endpoints.map((e) => e.port), [8443, 9443]);
});

t.test('discovery type per resolution', async (t) => {
  const types: [ServiceEntry['spec']['resolution'], string][] = [['STATIC', 'EDS'], ['DNS', 'STRICT_DNS'], ['DNS_ROUND_ROBIN', 'LOGICAL_DNS'], ['NONE', 'ORIGINAL_DST'], [undefined, 'ORIGINAL_DST']];
  for (const [resolution, type] of types) {
    const c = compile(resources(api({ resolution })), SIDECAR).clusters.get('outbound|80||api.example.com')!;
    t.equal(c.type, type, String(resolution));
  }
  const pt = compile(resources(), SIDECAR).clusters;
  t.same([pt.get('PassthroughCluster')!.type, pt.get('PassthroughCluster')!.lb], ['ORIGINAL_DST', { kind: 'PASSTHROUGH' }]);
  t.same([pt.get('BlackHoleCluster')!.type, pt.get('BlackHoleCluster')!.endpoints], ['STATIC', []]);
});

t.test('subsets select endpoints by labels; an empty subset says why and warns', async (t) => {
  const s = compile(resources(api(), dr('api', 'default', {
    host: 'api.example.com',
    subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'all' }, { name: 'v3', labels: { version: 'v3' } }],
  })), SIDECAR);
  t.same(s.clusters.get('outbound|80|v1|api.example.com')!.endpoints.map((e) => e.address), ['198.18.10.1']);
  t.equal(s.clusters.get('outbound|80|all|api.example.com')!.endpoints.length, 2);
  const v3 = s.clusters.get('outbound|80|v3|api.example.com')!;
  t.same(v3.endpoints, []);
  t.equal(v3.emptyReason, 'subset v3 selects no endpoints');
  t.equal(v3.sniName, 'outbound_.80_.v3_.api.example.com');
  t.equal(s.warnings.length, 1, 'one warning although two ports have the subset');
  t.match(s.warnings[0]!.text, /DestinationRule\/api: spec\.subsets\[2\]\.labels: subset v3 selects no endpoints of api\.example\.com/);
});

t.test('policy precedence: subset over top level per setting; portLevelSettings replace without inheriting', async (t) => {
  const s = compile(resources(api(), dr('api', 'default', {
    host: 'api.example.com',
    trafficPolicy: {
      loadBalancer: { simple: 'ROUND_ROBIN' },
      connectionPool: { tcp: { connectTimeoutMs: 2000, maxConnections: 10 } },
      portLevelSettings: [{ port: { number: 443 }, tls: { mode: 'SIMPLE' } }],
    },
    subsets: [
      { name: 'v1', labels: { version: 'v1' }, trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } },
      { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { portLevelSettings: [{ port: { number: 80 }, connectionPool: { http: { maxRequestsPerConnection: 1 } } }] } },
    ],
  })), SIDECAR);
  const base80 = s.clusters.get('outbound|80||api.example.com')!;
  t.same([base80.lb.kind, base80.connectTimeoutMs, base80.circuitBreakers.maxConnections, base80.tls], ['ROUND_ROBIN', 2000, 10, null]);
  const base443 = s.clusters.get('outbound|443||api.example.com')!;
  t.same([base443.lb.kind, base443.connectTimeoutMs, base443.circuitBreakers.maxConnections], ['LEAST_REQUEST', 10_000, ISTIO_MAX_UINT32],
    'port 443 settings give tls only: lb and pool fall back to defaults, not to the top level');
  t.equal(base443.tls!.mode, 'SIMPLE');
  const v1 = s.clusters.get('outbound|80|v1|api.example.com')!;
  t.same([v1.lb.kind, v1.connectTimeoutMs], ['RANDOM', 2000], 'subset lb wins, top-level pool kept');
  const v1443 = s.clusters.get('outbound|443|v1|api.example.com')!;
  t.same([v1443.lb.kind, v1443.connectTimeoutMs, v1443.tls!.mode], ['RANDOM', 10_000, 'SIMPLE'], 'top-level port settings, then subset lb');
  const v2 = s.clusters.get('outbound|80|v2|api.example.com')!;
  t.same([v2.lb.kind, v2.connectTimeoutMs, v2.maxRequestsPerConnection], ['LEAST_REQUEST', 10_000, 1], 'subset port settings replace all four');
});

t.test('load balancer forms', async (t) => {
  const lb = (loadBalancer: object) => compile(resources(api(), dr('api', 'default', { host: 'api.example.com', trafficPolicy: { loadBalancer } })), SIDECAR)
    .clusters.get('outbound|80||api.example.com')!.lb;
  t.same(lb({ simple: 'LEAST_CONN' }), { kind: 'LEAST_REQUEST' });
  t.same(lb({ simple: 'UNSPECIFIED' }), { kind: 'LEAST_REQUEST' });
  t.same(lb({ consistentHash: { httpHeaderName: 'X-User' } }), { kind: 'CONSISTENT_HASH', key: 'header', name: 'x-user' });
  t.same(lb({ consistentHash: { httpCookie: { name: 'session' } } }), { kind: 'CONSISTENT_HASH', key: 'cookie', name: 'session' });
  t.same(lb({ consistentHash: { useSourceIp: true } }), { kind: 'CONSISTENT_HASH', key: 'sourceIp', name: '' });
});

t.test('TLS origination: SIMPLE with auto SNI, SE SANs; ISTIO_MUTUAL with workload certs and outbound_ SNI', async (t) => {
  const s = compile(resources(
    api({ subjectAltNames: ['api.example.com'] }),
    dr('api', 'default', {
      host: 'api.example.com',
      trafficPolicy: { tls: { mode: 'SIMPLE' } },
      subsets: [
        { name: 'mtls', trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } },
        { name: 'sni', trafficPolicy: { tls: { mode: 'MUTUAL', sni: 'x.example.com', clientCertificate: '/c.pem', privateKey: '/k.pem', caCertificates: '/ca.pem' } } },
      ],
    }),
  ), SIDECAR);
  t.same(s.clusters.get('outbound|443||api.example.com')!.tls, {
    mode: 'SIMPLE', sni: null, autoSni: true, caFile: null, certFile: null, keyFile: null,
    subjectAltNames: ['api.example.com'], insecureSkipVerify: false, alpn: [],
  });
  t.same(s.clusters.get('outbound|80|mtls|api.example.com')!.tls, {
    mode: 'ISTIO_MUTUAL', sni: 'outbound_.80_.mtls_.api.example.com', autoSni: false,
    caFile: '/etc/certs/root-cert.pem', certFile: '/etc/certs/cert-chain.pem', keyFile: '/etc/certs/key.pem',
    subjectAltNames: ['api.example.com'], insecureSkipVerify: false, alpn: ['istio-peer-exchange', 'istio'],
  });
  const m = s.clusters.get('outbound|443|sni|api.example.com')!.tls!;
  t.same([m.mode, m.sni, m.autoSni, m.certFile, m.keyFile, m.caFile], ['MUTUAL', 'x.example.com', false, '/c.pem', '/k.pem', '/ca.pem']);
});

t.test('DestinationRule lookup: short host in its namespace, exact beats wildcard, proxy namespace first', async (t) => {
  const svc = se('httpbin', 'bar', { hosts: ['httpbin.bar.svc.cluster.local'], ports: [{ number: 8000, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' });
  const s = compile(resources(
    svc,
    dr('global', 'istio-system', { host: '*.cluster.local', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }),
    dr('short', 'bar', { host: 'httpbin', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } }),
  ), SIDECAR);
  t.equal(s.clusters.get('outbound|8000||httpbin.bar.svc.cluster.local')!.lb.kind, 'ROUND_ROBIN');
  const other = compile(resources(svc, dr('global', 'istio-system', { host: '*.cluster.local', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } })), SIDECAR);
  t.equal(other.clusters.get('outbound|8000||httpbin.bar.svc.cluster.local')!.lb.kind, 'RANDOM');
  const mine = compile(resources(
    svc,
    dr('theirs', 'bar', { host: 'httpbin.bar.svc.cluster.local', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } }),
    dr('mine', 'default', { host: 'httpbin.bar.svc.cluster.local', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }),
  ), SIDECAR);
  t.equal(mine.clusters.get('outbound|8000||httpbin.bar.svc.cluster.local')!.lb.kind, 'RANDOM');
});
