// Sidecar listeners: outbound policy catch-all, bind by address, protocol -> chain shape,
// VirtualService filtering (match.port, gateways, sourceLabels), weights, wildcards, visibility.
import t from 'tap';
import { compile } from '../../../../config/compile/index';
import { findListener, findRoute, findTcpRoute, findVirtualHost, pickCluster, selectChain } from '../../../../config/compile/lookup';
import type { DirectResponseAction, ForwardAction, HttpConnectionManager, Snapshot, TcpProxy } from '../../../../config/compile/snapshot';
import { SIDECAR, resources, se, vs } from '../../../fixtures/compile/resources';
import { request } from '../../../fixtures/compile/request';

const httpSe = (host = 'httpbin.example.com', port = 80) =>
  se(host.split('.')[0]!, 'default', { hosts: [host], ports: [{ number: port, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' });

function routeConfig(s: Snapshot, port: number) {
  return (selectChain(findListener(s, '198.18.5.5', port)!, { isTls: false, sni: null, alpn: ['http/1.1'], dstIp: '198.18.5.5' })!.filter as HttpConnectionManager).routeConfig;
}

function tcpCluster(s: Snapshot, ip: string, port: number, input: { isTls?: boolean; sni?: string | null } = {}): string | null {
  const l = findListener(s, ip, port);
  if (l === null) return null;
  const ch = selectChain(l, { isTls: input.isTls ?? false, sni: input.sni ?? null, alpn: null, dstIp: ip });
  if (ch === null) return null;
  const r = findTcpRoute((ch.filter as TcpProxy).routes, { dstIp: ip, remoteIp: '198.18.0.1', sni: input.sni ?? null });
  return r === null ? null : pickCluster(r.clusters, 0);
}

t.test('outbound policy: ALLOW_ANY passes unknown hosts, REGISTRY_ONLY blocks them', async (t) => {
  const r = resources(httpSe(), se('db', 'default', { hosts: ['db.example.com'], ports: [{ number: 5432, name: 'tcp', protocol: 'TCP' }], addresses: ['198.18.7.7'], resolution: 'STATIC', endpoints: [{ address: '198.18.7.8' }] }));
  const allow = compile(r, SIDECAR);
  const block = compile(r, { ...SIDECAR, outboundPolicy: 'REGISTRY_ONLY' });
  t.equal(allow.catchAll.tcpCluster, 'PassthroughCluster');
  t.equal(block.catchAll.tcpCluster, 'BlackHoleCluster');
  const allowVh = findVirtualHost(routeConfig(allow, 80), 'unknown.example.org')!;
  t.equal(allowVh.name, 'allow_any');
  t.equal((findRoute(allowVh, request('unknown.example.org'))!.action as ForwardAction).clusters.entries[0]!.cluster, 'PassthroughCluster');
  const blockVh = findVirtualHost(routeConfig(block, 80), 'unknown.example.org')!;
  t.equal(blockVh.name, 'block_all');
  const action = findRoute(blockVh, request('unknown.example.org'))!.action as DirectResponseAction;
  t.same([action.kind, action.status, action.body], ['direct', 502, '']);
  // A TCP destination on the VIP's port but another address: the 198.18.7.7_5432 listener does not claim it.
  t.equal(findListener(block, '198.18.7.9', 5432), null, 'no listener: the capture catch-all decides');
  t.equal(tcpCluster(block, '198.18.7.7', 5432), 'outbound|5432||db.example.com');
});

t.test('TCP binds: one IP -> <ip>_<port>; CIDR -> 0.0.0.0 with prefixes; none -> 0.0.0.0, first wins', async (t) => {
  const r = resources(
    se('vip', 'default', { hosts: ['vip.example.com'], addresses: ['198.18.3.3'], ports: [{ number: 3306, name: 'mysql', protocol: 'MYSQL' }], resolution: 'STATIC', endpoints: [{ address: '198.18.3.4' }] }),
    se('net', 'default', { hosts: ['net.example.com'], addresses: ['198.18.4.0/24'], ports: [{ number: 9000, name: 'tcp', protocol: 'TCP' }], resolution: 'NONE' }),
    se('first', 'default', { hosts: ['first.example.com'], ports: [{ number: 7000, name: 'tcp', protocol: 'TCP' }], resolution: 'DNS' }),
    se('second', 'default', { hosts: ['second.example.com'], ports: [{ number: 7000, name: 'tcp', protocol: 'TCP' }], resolution: 'DNS' }),
  );
  const s = compile(r, SIDECAR);
  t.ok(s.listeners.has('198.18.3.3_3306'));
  t.equal(s.listeners.get('198.18.3.3_3306')!.protocol, 'tcp');
  t.equal(tcpCluster(s, '198.18.4.20', 9000), 'outbound|9000||net.example.com');
  t.equal(tcpCluster(s, '198.18.5.20', 9000), 'PassthroughCluster', 'outside the CIDR: catch-all chain');
  t.equal(s.clusters.get('outbound|9000||net.example.com')!.type, 'ORIGINAL_DST', 'NONE on a sidecar = original destination');
  t.equal(tcpCluster(s, '198.18.9.9', 7000), 'outbound|7000||first.example.com');
  t.equal(s.warnings.length, 1);
  t.equal(s.warnings[0]!.code, 'CFG_WARN_TRAP');
  t.match(s.warnings[0]!.text, /^fixtures\/second\.yaml:\d+: ServiceEntry\/second: spec\.ports: TCP port 7000 of second\.example\.com shares 0\.0\.0\.0:7000 with first\.example\.com/);
});

t.test('TLS port without VS: one SNI chain per host, then the catch-all', async (t) => {
  const s = compile(resources(
    se('a', 'default', { hosts: ['a.example.com', '*.wild.example.com'], ports: [{ number: 443, name: 'tls', protocol: 'HTTPS' }], resolution: 'NONE' }),
  ), { ...SIDECAR, outboundPolicy: 'REGISTRY_ONLY' });
  t.equal(tcpCluster(s, '198.18.0.9', 443, { isTls: true, sni: 'a.example.com' }), 'outbound|443||a.example.com');
  t.equal(tcpCluster(s, '198.18.0.9', 443, { isTls: true, sni: 'x.wild.example.com' }), 'outbound|443||*.wild.example.com');
  t.equal(tcpCluster(s, '198.18.0.9', 443, { isTls: true, sni: 'wild.example.com' }), 'BlackHoleCluster', '*.x does not cover x');
  t.equal(tcpCluster(s, '198.18.0.9', 443, { isTls: true, sni: 'b.example.com' }), 'BlackHoleCluster');
});

t.test('protocol absent: auto listener, HTTP chain by sniffed ALPN, then TCP', async (t) => {
  const s = compile(resources(
    se('auto', 'default', { hosts: ['auto.example.com'], addresses: ['198.18.6.6'], ports: [{ number: 8080, name: 'p' }], resolution: 'STATIC', endpoints: [{ address: '198.18.6.7' }] }),
  ), SIDECAR);
  const l = s.listeners.get('198.18.6.6_8080')!;
  t.equal(l.protocol, 'auto');
  t.equal(l.needsTlsInspection, true);
  const http = selectChain(l, { isTls: false, sni: null, alpn: ['http/1.1'], dstIp: '198.18.6.6' })!;
  t.equal(http.filter.kind, 'http');
  t.same(http.match.applicationProtocols, ['http/1.1', 'h2c']);
  const vh = findVirtualHost((http.filter as HttpConnectionManager).routeConfig, '198.18.6.6:8080')!;
  t.equal(vh.name, 'auto.example.com:8080', 'the SE address is a domain too');
  const opaque = selectChain(l, { isTls: false, sni: null, alpn: null, dstIp: '198.18.6.6' })!;
  t.equal(opaque.filter.kind, 'tcp');
  t.equal((opaque.filter as TcpProxy).routes[0]!.clusters.entries[0]!.cluster, 'outbound|8080||auto.example.com');
});

t.test('match.port, match.gateways and sourceLabels decide which HTTP matches the sidecar keeps', async (t) => {
  const s = compile(resources(
    se('svc', 'default', { hosts: ['svc.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }, { number: 8080, name: 'http-alt', protocol: 'HTTP' }], resolution: 'DNS' }),
    vs('svc', 'default', {
      hosts: ['svc.example.com'],
      gateways: ['mesh', 'some-gateway'],
      http: [
        { name: 'only-8080', match: [{ port: 8080 }], route: [{ destination: { host: 'svc.example.com', port: { number: 8080 } } }] },
        { name: 'gateway-only', match: [{ gateways: ['some-gateway'] }], route: [{ destination: { host: 'svc.example.com' } }] },
        { name: 'other-app', match: [{ sourceLabels: { app: 'other' } }], route: [{ destination: { host: 'svc.example.com' } }] },
        { name: 'sleep', match: [{ sourceLabels: { app: 'sleep' }, uri: { prefix: '/v1' } }, { headers: { 'x-v1': {} } }], route: [{ destination: { host: 'svc.example.com', port: { number: 80 } } }] },
      ],
    }),
  ), SIDECAR);
  const vh80 = findVirtualHost(routeConfig(s, 80), 'svc.example.com')!;
  t.same(vh80.routes.map((r) => r.name), ['sleep', 'sleep'], 'one route per kept match');
  t.equal(findRoute(vh80, request('svc.example.com', '/v1/x'))!.source!.matchIndex, 0);
  t.equal(findRoute(vh80, request('svc.example.com', '/v2', 'GET', { 'x-v1': '' }))!.source!.matchIndex, 1);
  t.equal(findRoute(vh80, request('svc.example.com', '/v2')), null, 'no route -> 404 NR');
  const vh8080 = findVirtualHost(routeConfig(s, 8080), 'svc.example.com:8080')!;
  t.same(vh8080.routes.map((r) => r.name), ['only-8080', 'sleep', 'sleep']);
});

t.test('a VS whose rules are all for other ports leaves the service on its default route', async (t) => {
  const s = compile(resources(
    httpSe('svc.example.com', 80),
    vs('svc', 'default', { hosts: ['svc.example.com'], http: [{ match: [{ port: 9999 }], route: [{ destination: { host: 'svc.example.com' } }] }] }),
  ), SIDECAR);
  const vh = findVirtualHost(routeConfig(s, 80), 'svc.example.com')!;
  t.same(vh.routes.map((r) => r.name), ['default']);
  t.equal((vh.routes[0]!.action as ForwardAction).clusters.entries[0]!.cluster, 'outbound|80||svc.example.com');
});

t.test('weights: shares, zero weight dropped, pickCluster follows them', async (t) => {
  const s = compile(resources(
    httpSe('svc.example.com'),
    vs('svc', 'default', {
      hosts: ['svc.example.com'],
      http: [{ route: [
        { destination: { host: 'svc.example.com', subset: 'a' }, weight: 75 },
        { destination: { host: 'svc.example.com', subset: 'b' }, weight: 25 },
        { destination: { host: 'svc.example.com', subset: 'c' }, weight: 0 },
      ] }],
    }),
  ), SIDECAR);
  const w = (findRoute(findVirtualHost(routeConfig(s, 80), 'svc.example.com')!, request('svc.example.com'))!.action as ForwardAction).clusters;
  t.same(w.entries.map((e) => [e.cluster, e.weight]), [['outbound|80|a|svc.example.com', 75], ['outbound|80|b|svc.example.com', 25]]);
  t.equal(w.totalWeight, 100);
  t.equal(pickCluster(w, 0), 'outbound|80|a|svc.example.com');
  t.equal(pickCluster(w, 0.7499), 'outbound|80|a|svc.example.com');
  t.equal(pickCluster(w, 0.75), 'outbound|80|b|svc.example.com');
  t.equal(pickCluster(w, 0.9999), 'outbound|80|b|svc.example.com');
  // The subsets a and b are defined by no DestinationRule: 503 NC at runtime. The loader says so
  // (cross-checks.ts), once; the compiler only adds "defined, but not visible to this proxy".
  t.equal(s.warnings.filter((m) => /subset a of svc\.example\.com/.test(m.text)).length, 0);
});

t.test('unknown destination host and short names', async (t) => {
  const s = compile(resources(
    httpSe('svc.example.com'),
    vs('svc', 'default', { hosts: ['svc.example.com'], http: [{ route: [{ destination: { host: 'reviews' } }] }] }),
  ), SIDECAR);
  const route = findRoute(findVirtualHost(routeConfig(s, 80), 'svc.example.com')!, request('svc.example.com'))!;
  t.equal((route.action as ForwardAction).clusters.entries[0]!.cluster, 'outbound|80||reviews.default.svc.cluster.local', 'short name expands in the VS namespace; listener port used');
  t.equal(s.warnings.length, 1);
  t.equal(s.warnings[0]!.code, 'CFG_WARN_UNKNOWN_HOST');
  t.match(s.warnings[0]!.text, /VirtualService\/svc: spec\.http\[0\]\.route\[0\]\.destination\.host: destination host reviews\.default\.svc\.cluster\.local is not declared by any ServiceEntry: requests routed here get 503 NC$/);
});

t.test('wildcard VS host applies to a service it covers; wildcard SE host is a wildcard domain', async (t) => {
  const s = compile(resources(
    se('wiki', 'default', { hosts: ['*.wikipedia.org'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'NONE' }),
    httpSe('api.example.com'),
    vs('all-example', 'default', { hosts: ['*.example.com'], http: [{ name: 'wild', route: [{ destination: { host: 'api.example.com' } }] }] }),
  ), SIDECAR);
  const rc = routeConfig(s, 80);
  t.equal(findVirtualHost(rc, 'en.wikipedia.org')!.name, '*.wikipedia.org:80');
  t.equal(findVirtualHost(rc, 'EN.Wikipedia.org:80')!.name, '*.wikipedia.org:80', 'case-insensitive, port stripped');
  t.equal(findVirtualHost(rc, 'wikipedia.org')!.name, 'allow_any');
  t.same(findVirtualHost(rc, 'api.example.com')!.routes.map((r) => r.name), ['wild']);
});

t.test('exportTo: "." hides a resource from other namespaces', async (t) => {
  const r = resources(
    se('private', 'team-a', { hosts: ['private.example.com'], exportTo: ['.'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' }),
    se('shared', 'team-a', { hosts: ['shared.example.com'], exportTo: ['default'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' }),
  );
  const inDefault = compile(r, SIDECAR);
  t.notOk(inDefault.clusters.has('outbound|80||private.example.com'));
  t.ok(inDefault.clusters.has('outbound|80||shared.example.com'));
  const inTeamA = compile(r, { ...SIDECAR, namespace: 'team-a' });
  t.ok(inTeamA.clusters.has('outbound|80||private.example.com'));
  t.notOk(inTeamA.clusters.has('outbound|80||shared.example.com'));
});

t.test('mesh VS tls rule with destinationSubnets: chain carries the prefixes', async (t) => {
  const s = compile(resources(
    se('tls', 'default', { hosts: ['secure.example.com'], ports: [{ number: 443, name: 'tls', protocol: 'TLS' }], resolution: 'DNS' }),
    vs('tls', 'default', { hosts: ['secure.example.com'], tls: [{ match: [{ sniHosts: ['secure.example.com'], destinationSubnets: ['198.18.8.0/24'] }], route: [{ destination: { host: 'secure.example.com', port: { number: 443 } } }] }] }),
  ), SIDECAR);
  t.equal(tcpCluster(s, '198.18.8.1', 443, { isTls: true, sni: 'secure.example.com' }), 'outbound|443||secure.example.com');
  t.equal(tcpCluster(s, '198.18.9.1', 443, { isTls: true, sni: 'secure.example.com' }), 'PassthroughCluster');
});
