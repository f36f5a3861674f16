// Seed scenarios in, snapshot out: S2 (HTTP via egress gateway), S4 (TLS passthrough via egress
// gateway), S10 (TCP by ingress gateway port). Each assertion is a name a user would see in
// stats, logs or /config_dump.
import t from 'tap';
import { compile } from '../../../../config/compile/index';
import { findListener, findRoute, findTcpRoute, findVirtualHost, selectChain } from '../../../../config/compile/lookup';
import type { ForwardAction, HttpConnectionManager, TcpProxy } from '../../../../config/compile/snapshot';
import { EGRESS_GATEWAY, GW_HOST, INGRESS_GATEWAY, SIDECAR, TCP_ECHO, s10, s2, s4 } from '../../../fixtures/compile/resources';
import { request } from '../../../fixtures/compile/request';

const tlsTo = (sni: string, dstIp = '198.18.9.9') => ({ isTls: true, sni, alpn: null, dstIp });
const plain = (dstIp = '198.18.9.9') => ({ isTls: false, sni: null, alpn: null, dstIp });

t.test('S2 sidecar: Host edition.cnn.com on port 80 goes to the gateway subset cnn', async (t) => {
  const s = compile(s2(), SIDECAR);
  const l = findListener(s, '151.101.1.67', 80)!;
  t.equal(l.name, '0.0.0.0_80');
  t.equal(l.protocol, 'http');
  const hcm = selectChain(l, plain())!.filter as HttpConnectionManager;
  t.equal(hcm.kind, 'http');
  t.equal(hcm.routeConfig.name, '80');
  t.equal(hcm.statPrefix, 'outbound_0.0.0.0_80');
  const vh = findVirtualHost(hcm.routeConfig, 'edition.cnn.com')!;
  t.equal(vh.name, 'edition.cnn.com:80');
  t.equal(findVirtualHost(hcm.routeConfig, 'edition.cnn.com:80'), vh);
  const route = findRoute(vh, request('edition.cnn.com', '/politics'))!;
  t.same((route.action as ForwardAction).clusters.entries, [{ cluster: `outbound|80|cnn|${GW_HOST}`, weight: 1 }]);
  t.same(route.source, { kind: 'VirtualService', name: 'direct-cnn-through-egress-gateway', namespace: 'default', ruleIndex: 0, matchIndex: 0 });
  t.equal(vh.routes.length, 1, 'the gateway-only rule is not on the sidecar');
  // The gateway service itself is reachable by its own name, and unknown hosts go to allow_any.
  t.equal(findVirtualHost(hcm.routeConfig, 'istio-egressgateway.istio-system')!.name, `${GW_HOST}:80`);
  t.equal(findVirtualHost(hcm.routeConfig, 'example.com')!.name, 'allow_any');
  for (const c of [
    'outbound|80||edition.cnn.com', 'outbound|443||edition.cnn.com', `outbound|80||${GW_HOST}`, `outbound|80|cnn|${GW_HOST}`,
    `outbound|443|cnn|${GW_HOST}`, 'PassthroughCluster', 'BlackHoleCluster',
  ]) t.ok(s.clusters.has(c), c);
  const cnn = s.clusters.get(`outbound|80|cnn|${GW_HOST}`)!;
  t.equal(cnn.type, 'EDS');
  t.same(cnn.endpoints.map((e) => `${e.address}:${e.port}`), ['198.18.0.2:80']);
  t.equal(cnn.sniName, `outbound_.80_.cnn_.${GW_HOST}`);
  t.same(s.warnings, []);
});

t.test('S2 gateway: route config http.80 sends edition.cnn.com to outbound|80||edition.cnn.com', async (t) => {
  const s = compile(s2(), EGRESS_GATEWAY);
  t.same([...s.listeners.keys()], ['0.0.0.0_80']);
  const hcm = selectChain(s.listeners.get('0.0.0.0_80')!, plain())!.filter as HttpConnectionManager;
  t.equal(hcm.routeConfig.name, 'http.80');
  t.equal(hcm.statPrefix, 'outbound_0.0.0.0_80');
  const vh = findVirtualHost(hcm.routeConfig, 'edition.cnn.com')!;
  const route = findRoute(vh, request('edition.cnn.com', '/politics'))!;
  t.same((route.action as ForwardAction).clusters.entries, [{ cluster: 'outbound|80||edition.cnn.com', weight: 1 }]);
  t.equal(route.source!.ruleIndex, 1);
  t.equal(findVirtualHost(hcm.routeConfig, 'example.com'), null, 'unknown Host -> no vhost -> 404 NR');
  const cnn = s.clusters.get('outbound|80||edition.cnn.com')!;
  t.equal(cnn.type, 'STRICT_DNS');
  t.same(cnn.endpoints.map((e) => `${e.address}:${e.port}`), ['edition.cnn.com:80'], 'DNS with no endpoints resolves the host');
  t.same(s.warnings, []);
});

t.test('S4 sidecar: TLS to edition.cnn.com is routed by SNI to the gateway subset', async (t) => {
  const s = compile(s4(), SIDECAR);
  const l = findListener(s, '151.101.1.67', 443)!;
  t.equal(l.name, '0.0.0.0_443');
  t.equal(l.protocol, 'tcp');
  t.equal(l.needsTlsInspection, true);
  const chain = selectChain(l, tlsTo('edition.cnn.com'))!;
  const tcp = chain.filter as TcpProxy;
  t.same(tcp.routes[0]!.clusters.entries, [{ cluster: `outbound|443|cnn|${GW_HOST}`, weight: 1 }]);
  t.equal(tcp.statPrefix, `outbound|443|cnn|${GW_HOST}`);
  // Unknown SNI and plain text fall to the catch-all (PassthroughCluster under ALLOW_ANY).
  const other = selectChain(l, tlsTo('example.com'))!.filter as TcpProxy;
  t.equal(other.routes[0]!.clusters.entries[0]!.cluster, 'PassthroughCluster');
  t.equal(l.chains[l.chains.length - 1]!.name, 'catch-all');
});

t.test('S4 gateway: passthrough chain by SNI to outbound|443||edition.cnn.com', async (t) => {
  const s = compile(s4(), EGRESS_GATEWAY);
  const l = s.listeners.get('0.0.0.0_443')!;
  t.equal(l.protocol, 'tcp');
  t.equal(l.chains.length, 1);
  const tcp = selectChain(l, tlsTo('edition.cnn.com'))!.filter as TcpProxy;
  t.equal(tcp.routes[0]!.clusters.entries[0]!.cluster, 'outbound|443||edition.cnn.com');
  t.equal(selectChain(l, tlsTo('example.com')), null, 'unknown SNI: no chain');
  t.equal(selectChain(l, plain()), null, 'no ClientHello: no chain');
});

t.test('S10 ingress gateway: port 31400 -> subset v1, 31401 -> subset v2, with the right endpoints', async (t) => {
  const s = compile(s10(), INGRESS_GATEWAY);
  t.same([...s.listeners.keys()].sort(), ['0.0.0.0_31400', '0.0.0.0_31401']);
  const r1 = (findListener(s, '198.18.0.5', 31400)!.chains[0]!.filter as TcpProxy).routes;
  const r2 = (findListener(s, '198.18.0.5', 31401)!.chains[0]!.filter as TcpProxy).routes;
  t.equal(r1.length, 1);
  t.equal(r2.length, 1);
  t.equal(findTcpRoute(r1, { dstIp: '198.18.0.5', remoteIp: '198.18.0.1', sni: null })!.clusters.entries[0]!.cluster, `outbound|3333|v1|${TCP_ECHO}`);
  t.equal(findTcpRoute(r2, { dstIp: '198.18.0.5', remoteIp: '198.18.0.1', sni: null })!.clusters.entries[0]!.cluster, `outbound|3333|v2|${TCP_ECHO}`);
  t.same(s.clusters.get(`outbound|3333|v1|${TCP_ECHO}`)!.endpoints.map((e) => `${e.address}:${e.port}`), ['198.18.1.1:3333', '198.18.1.3:9000']);
  t.same(s.clusters.get(`outbound|3333|v2|${TCP_ECHO}`)!.endpoints.map((e) => `${e.address}:${e.port}`), ['198.18.1.2:3333']);
  t.equal(s.clusters.get(`outbound|3333||${TCP_ECHO}`)!.endpoints.length, 3);
  t.same(s.warnings, []);
});

t.test('S10 with other labels serves no gateway', async (t) => {
  const s = compile(s10(), { ...INGRESS_GATEWAY, labels: { istio: 'egressgateway' } });
  t.equal(s.listeners.size, 0);
});

t.test('S2m sidecar: subset cnn port 80 originates ISTIO_MUTUAL with sni edition.cnn.com', async (t) => {
  const r = s2();
  const withMtls = {
    ...r,
    destinationRules: r.destinationRules.map((d) => ({
      ...d,
      spec: { ...d.spec, subsets: [{ name: 'cnn', trafficPolicy: { portLevelSettings: [{ port: { number: 80 }, tls: { mode: 'ISTIO_MUTUAL' as const, sni: 'edition.cnn.com' } }] } }] },
    })),
  };
  const s = compile(withMtls, SIDECAR);
  const tls = s.clusters.get(`outbound|80|cnn|${GW_HOST}`)!.tls!;
  t.same([tls.mode, tls.sni, tls.certFile], ['ISTIO_MUTUAL', 'edition.cnn.com', '/etc/certs/cert-chain.pem']);
  t.equal(s.clusters.get(`outbound|443|cnn|${GW_HOST}`)!.tls, null, 'port-level: only port 80');
  t.equal(s.clusters.get(`outbound|80||${GW_HOST}`)!.tls, null, 'subset policy: only the subset');
});
