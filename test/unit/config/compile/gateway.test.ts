// Gateway listeners: binding by gateway name forms and server hosts, terminated HTTPS and its
// DownstreamTls, httpsRedirect, TLS-terminated TCP, passthrough with tcp rules, AUTO_PASSTHROUGH,
// resolution NONE on a gateway.
import t from 'tap';
import { compile } from '../../../../config/compile/index';
import { findRoute, findTcpRoute, findVirtualHost, selectChain } from '../../../../config/compile/lookup';
import type { ForwardAction, HttpConnectionManager, Snapshot, TcpProxy } from '../../../../config/compile/snapshot';
import { EGRESS_GATEWAY, GW_HOST, dr, gw, resources, s2, se, vs } from '../../../fixtures/compile/resources';
import { request } from '../../../fixtures/compile/request';

const cnnSe = () => se('cnn', 'default', {
  hosts: ['edition.cnn.com'],
  ports: [{ number: 80, name: 'http', protocol: 'HTTP' }, { number: 443, name: 'https', protocol: 'HTTPS' }],
  resolution: 'DNS',
});
const egressGw = (ns: string, servers: Parameters<typeof gw>[2]['servers']) =>
  gw('egress', ns, { selector: { istio: 'egressgateway' }, servers });
const http80 = { port: { number: 80, name: 'http', protocol: 'HTTP' as const }, hosts: ['edition.cnn.com'] };

function gatewayRoutes(s: Snapshot, port: number, host: string) {
  const ch = selectChain(s.listeners.get(`0.0.0.0_${port}`)!, { isTls: false, sni: null, alpn: null, dstIp: '198.18.0.2' });
  const vh = findVirtualHost((ch!.filter as HttpConnectionManager).routeConfig, host);
  return vh === null ? null : vh.routes.map((r) => r.name);
}

t.test('VS gateway names resolve relative to the VS namespace', async (t) => {
  const forms: [string, string, boolean][] = [
    ['egress', 'egress-ns', true],                     // same namespace as the VS
    ['egress-ns/egress', 'default', true],
    ['./egress', 'egress-ns', true],
    ['egress.egress-ns.svc.cluster.local', 'default', true], // legacy FQDN form
    ['egress', 'default', false],                      // resolves to default/egress: not ours
    ['other-ns/egress', 'default', false],
  ];
  for (const [name, vsNs, bound] of forms) {
    const s = compile(resources(
      cnnSe(), egressGw('egress-ns', [http80]),
      vs('cnn', vsNs, { hosts: ['edition.cnn.com'], gateways: [name], http: [{ name: 'r', route: [{ destination: { host: 'edition.cnn.com' } }] }] }),
    ), EGRESS_GATEWAY);
    t.same(gatewayRoutes(s, 80, 'edition.cnn.com'), bound ? ['r'] : null, `${vsNs}: gateways [${name}]`);
  }
});

t.test('server hosts: ns/ prefix, wildcards and * decide which VS hosts bind', async (t) => {
  const s = compile(resources(
    cnnSe(),
    egressGw('default', [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['team-a/*.example.com', './edition.cnn.com'] }]),
    vs('a', 'team-a', { hosts: ['api.example.com'], gateways: ['default/egress'], http: [{ name: 'a', route: [{ destination: { host: 'api.example.com' } }] }] }),
    vs('b', 'team-b', { hosts: ['web.example.com'], gateways: ['default/egress'], http: [{ name: 'b', route: [{ destination: { host: 'web.example.com' } }] }] }),
    vs('c', 'team-a', { hosts: ['example.com'], gateways: ['default/egress'], http: [{ name: 'c', route: [{ destination: { host: 'example.com' } }] }] }),
    vs('d', 'default', { hosts: ['*'], gateways: ['egress'], http: [{ name: 'd', route: [{ destination: { host: 'edition.cnn.com' } }] }] }),
  ), EGRESS_GATEWAY);
  t.same(gatewayRoutes(s, 80, 'api.example.com'), ['a']);
  t.same(gatewayRoutes(s, 80, 'web.example.com'), null, 'team-b may not bind team-a/ hosts');
  t.same(gatewayRoutes(s, 80, 'example.com'), null, '*.example.com does not cover example.com');
  t.same(gatewayRoutes(s, 80, 'edition.cnn.com:80'), ['d'], 'VS host * narrows to the server host');
});

t.test('HTTP match.port and match.gateways on the gateway', async (t) => {
  const s = compile(resources(
    cnnSe(), egressGw('default', [http80, { port: { number: 8080, name: 'http2', protocol: 'HTTP' }, hosts: ['edition.cnn.com'] }]),
    vs('cnn', 'default', {
      hosts: ['edition.cnn.com'], gateways: ['egress', 'mesh'],
      http: [
        { name: 'mesh', match: [{ gateways: ['mesh'] }], route: [{ destination: { host: 'edition.cnn.com' } }] },
        { name: 'p8080', match: [{ gateways: ['egress'], port: 8080 }], route: [{ destination: { host: 'edition.cnn.com', port: { number: 80 } } }] },
        { name: 'labels-ignored', match: [{ gateways: ['egress'], sourceLabels: { app: 'nobody' } }], route: [{ destination: { host: 'edition.cnn.com' } }] },
        { name: 'labels', match: [{ sourceLabels: { app: 'nobody' } }], route: [{ destination: { host: 'edition.cnn.com' } }] },
      ],
    }),
  ), EGRESS_GATEWAY);
  t.same(gatewayRoutes(s, 80, 'edition.cnn.com'), ['labels-ignored']);
  t.same(gatewayRoutes(s, 8080, 'edition.cnn.com'), ['p8080', 'labels-ignored']);
  t.equal((s.listeners.get('0.0.0.0_8080')!.chains[0]!.filter as HttpConnectionManager).routeConfig.name, 'http.8080');
});

t.test('HTTPS MUTUAL (S2m) terminates with the server files; ISTIO_MUTUAL uses --certs', async (t) => {
  const mutual = {
    port: { number: 80, name: 'https', protocol: 'HTTPS' as const }, hosts: ['edition.cnn.com'],
    tls: { mode: 'MUTUAL' as const, serverCertificate: '/etc/certs/cert-chain.pem', privateKey: '/etc/certs/key.pem', caCertificates: '/etc/certs/root-cert.pem' },
  };
  const istio = { port: { number: 443, name: 'tls-istio', protocol: 'HTTPS' as const }, hosts: ['*'], tls: { mode: 'ISTIO_MUTUAL' as const } };
  const s = compile(resources(
    cnnSe(), egressGw('default', [mutual, istio]),
    vs('cnn', 'default', { hosts: ['edition.cnn.com'], gateways: ['egress'], http: [{ name: 'r', route: [{ destination: { host: 'edition.cnn.com', port: { number: 80 } } }] }] }),
  ), { ...EGRESS_GATEWAY, certsDir: '/var/run/certs/' });
  const l80 = s.listeners.get('0.0.0.0_80')!;
  t.equal(l80.protocol, 'http');
  const ch = selectChain(l80, { isTls: true, sni: 'edition.cnn.com', alpn: null, dstIp: '198.18.0.2' })!;
  t.same(ch.tls, {
    mode: 'MUTUAL', certFile: '/etc/certs/cert-chain.pem', keyFile: '/etc/certs/key.pem', caFile: '/etc/certs/root-cert.pem',
    subjectAltNames: [], minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', cipherSuites: null, alpn: ['h2', 'http/1.1'],
  });
  const rc = (ch.filter as HttpConnectionManager).routeConfig;
  t.equal(rc.name, 'https.80.https.egress.default');
  t.same(findVirtualHost(rc, 'edition.cnn.com')!.routes.map((r) => r.name), ['r']);
  t.equal(selectChain(l80, { isTls: false, sni: null, alpn: null, dstIp: '198.18.0.2' }), null, 'plain text on a TLS-only port: no chain');
  const l443 = selectChain(s.listeners.get('0.0.0.0_443')!, { isTls: true, sni: null, alpn: null, dstIp: '198.18.0.2' })!;
  t.same([l443.tls!.mode, l443.tls!.certFile, l443.tls!.keyFile, l443.tls!.caFile],
    ['ISTIO_MUTUAL', '/var/run/certs/cert-chain.pem', '/var/run/certs/key.pem', '/var/run/certs/root-cert.pem']);
});

t.test('httpsRedirect on a plain HTTP server', async (t) => {
  const s = compile(resources(cnnSe(), egressGw('default', [{ ...http80, tls: { httpsRedirect: true } }])), EGRESS_GATEWAY);
  t.equal((s.listeners.get('0.0.0.0_80')!.chains[0]!.filter as HttpConnectionManager).httpsRedirect, true);
});

t.test('TLS-terminated TLS server uses tcp rules, and warns when only tls rules exist', async (t) => {
  const server = { port: { number: 443, name: 'tls', protocol: 'TLS' as const }, hosts: ['edition.cnn.com'], tls: { mode: 'ISTIO_MUTUAL' as const } };
  const withTcp = compile(resources(
    cnnSe(), egressGw('default', [server]),
    vs('cnn', 'default', { hosts: ['edition.cnn.com'], gateways: ['egress'], tcp: [{ match: [{ port: 443 }], route: [{ destination: { host: 'edition.cnn.com', port: { number: 443 } } }] }] }),
  ), EGRESS_GATEWAY);
  const ch = selectChain(withTcp.listeners.get('0.0.0.0_443')!, { isTls: true, sni: 'edition.cnn.com', alpn: null, dstIp: '198.18.0.2' })!;
  t.equal(ch.tls!.mode, 'ISTIO_MUTUAL');
  t.same(ch.tls!.alpn, []);
  t.equal((ch.filter as TcpProxy).routes[0]!.clusters.entries[0]!.cluster, 'outbound|443||edition.cnn.com');
  const withTls = compile(resources(
    cnnSe(), egressGw('default', [server]),
    vs('cnn', 'default', { hosts: ['edition.cnn.com'], gateways: ['egress'], tls: [{ match: [{ sniHosts: ['edition.cnn.com'] }], route: [{ destination: { host: 'edition.cnn.com' } }] }] }),
  ), EGRESS_GATEWAY);
  t.match(withTls.warnings.map((w) => w.text), [/Gateway\/egress: spec\.servers\[0\]: TLS-terminated TLS port 443 needs VirtualService tcp: routes/]);
});

t.test('passthrough server (tls: {}) also takes tcp rules, as the Istio 1.0 walkthroughs write them', async (t) => {
  const s = compile(resources(
    cnnSe(), egressGw('default', [{ port: { number: 443, name: 'tls', protocol: 'TLS' }, hosts: ['edition.cnn.com'], tls: {} }]),
    vs('cnn', 'default', { hosts: ['edition.cnn.com'], gateways: ['egress'], tcp: [{ match: [{ port: 443 }], route: [{ destination: { host: 'edition.cnn.com', port: { number: 443 } } }] }] }),
  ), EGRESS_GATEWAY);
  const l = s.listeners.get('0.0.0.0_443')!;
  const ch = selectChain(l, { isTls: true, sni: 'edition.cnn.com', alpn: null, dstIp: '198.18.0.2' })!;
  t.equal(ch.tls, null, 'not terminated');
  t.equal(findTcpRoute((ch.filter as TcpProxy).routes, { dstIp: '198.18.0.2', remoteIp: '198.18.0.1', sni: 'edition.cnn.com' })!.clusters.entries[0]!.cluster, 'outbound|443||edition.cnn.com');
});

t.test('AUTO_PASSTHROUGH: SNI names an SNI-DNAT cluster per MESH_INTERNAL service port and subset', async (t) => {
  const s = compile(resources(
    se('httpbin', 'bar', { hosts: ['httpbin.bar.svc.cluster.local'], location: 'MESH_INTERNAL', ports: [{ number: 8000, name: 'http1', protocol: 'HTTP' }], resolution: 'STATIC', endpoints: [{ address: '198.18.2.1', labels: { version: 'v1' } }, { address: '198.18.2.2', labels: { version: 'v2' } }] }),
    se('external', 'bar', { hosts: ['ext.example.com'], ports: [{ number: 443, name: 'tls', protocol: 'TLS' }], resolution: 'DNS' }),
    dr('httpbin', 'bar', { host: 'httpbin', subsets: [{ name: 'v1', labels: { version: 'v1' } }], trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } }),
    gw('cross-network', 'istio-system', { selector: { istio: 'eastwestgateway' }, servers: [{ port: { number: 15443, name: 'tls', protocol: 'TLS' }, hosts: ['*.local'], tls: { mode: 'AUTO_PASSTHROUGH' } }] }),
  ), { ...EGRESS_GATEWAY, labels: { istio: 'eastwestgateway' } });
  const l = s.listeners.get('0.0.0.0_15443')!;
  t.same(l.chains.map((c) => c.name), ['0.0.0.0_15443|outbound_.8000_._.httpbin.bar.svc.cluster.local', '0.0.0.0_15443|outbound_.8000_.v1_.httpbin.bar.svc.cluster.local']);
  const ch = selectChain(l, { isTls: true, sni: 'outbound_.8000_.v1_.httpbin.bar.svc.cluster.local', alpn: ['istio'], dstIp: '198.18.0.2' })!;
  const cluster = s.clusters.get((ch.filter as TcpProxy).routes[0]!.clusters.entries[0]!.cluster)!;
  t.equal(cluster.name, 'outbound_.8000_.v1_.httpbin.bar.svc.cluster.local');
  t.equal(cluster.tls, null, 'bytes pass through: no TLS origination');
  t.same(cluster.endpoints.map((e) => e.address), ['198.18.2.1']);
  t.equal(s.clusters.get('outbound|8000|v1|httpbin.bar.svc.cluster.local')!.tls!.mode, 'ISTIO_MUTUAL', 'the normal cluster keeps its TLS');
  t.equal(selectChain(l, { isTls: true, sni: 'outbound_.443_._.ext.example.com', alpn: null, dstIp: '198.18.0.2' }), null, 'MESH_EXTERNAL: no chain');
});

t.test('resolution NONE on a gateway: EDS with no endpoints, and a warning', async (t) => {
  const r = s2();
  const noneRes = { ...r, serviceEntries: r.serviceEntries.map((e) => e.metadata.name === 'cnn' ? { ...e, spec: { ...e.spec, resolution: 'NONE' as const } } : e) };
  const s = compile(noneRes, EGRESS_GATEWAY);
  const c = s.clusters.get('outbound|80||edition.cnn.com')!;
  t.equal(c.type, 'EDS');
  t.same(c.endpoints, []);
  t.match(c.emptyReason, /resolution NONE on a gateway/);
  t.equal(s.warnings.length, 1);
  t.match(s.warnings[0]!.text, /ServiceEntry\/cnn: spec\.resolution: resolution NONE on a gateway: edition\.cnn\.com has no endpoints/);
  const side = compile(noneRes, { ...EGRESS_GATEWAY, role: 'sidecar' });
  t.equal(side.clusters.get('outbound|80||edition.cnn.com')!.type, 'ORIGINAL_DST');
  t.same(side.warnings, []);
});

t.test('outbound policy does not apply to gateways: unknown Host has no route (404 NR)', async (t) => {
  const s = compile(s2(), { ...EGRESS_GATEWAY, outboundPolicy: 'ALLOW_ANY' });
  const rc = (s.listeners.get('0.0.0.0_80')!.chains[0]!.filter as HttpConnectionManager).routeConfig;
  t.equal(rc.defaultHost, null);
  const vh = findVirtualHost(rc, 'edition.cnn.com')!;
  t.equal((findRoute(vh, request('edition.cnn.com'))!.action as ForwardAction).clusters.entries[0]!.cluster, 'outbound|80||edition.cnn.com');
  t.ok(s.clusters.has(`outbound|80|cnn|${GW_HOST}`), 'clusters exist for every visible service, routed or not');
});
