// The runtime lookups on their own: CIDR containment, host sets, chain selection, virtual host
// and route matching (with explain), L4 routes, weighted picks, and the naming helpers.
import t from 'tap';
import { parseCidr } from '../../../../config/compile/cidr';
import { buildHostSet } from '../../../../config/compile/hosts';
import { buildRouteConfig } from '../../../../config/compile/route-config';
import {
  cidrContains, explainRoute, findRoute, findTcpRoute, findVirtualHost, hostSetMatches, pickCluster, selectChain,
} from '../../../../config/compile/lookup';
import { expandHost, resolveGatewayName, sniName, clusterName } from '../../../../config/compile/names';
import { compile } from '../../../../config/compile/index';
import type { HttpConnectionManager, Listener, TcpRoute, VirtualHost } from '../../../../config/compile/snapshot';
import { SIDECAR, resources, se, vs } from '../../../fixtures/compile/resources';
import { request } from '../../../fixtures/compile/request';

t.test('cidrContains: v4, v6, v4-mapped, /0 and /32, invalid input', async (t) => {
  const c = (s: string) => parseCidr(s)!;
  t.ok(cidrContains(c('198.18.0.0/15'), '198.19.255.255'));
  t.notOk(cidrContains(c('198.18.0.0/15'), '198.20.0.0'));
  t.ok(cidrContains(c('198.18.3.7/24'), '198.18.3.200'), 'host bits of the CIDR are ignored');
  t.ok(cidrContains(c('198.18.3.3'), '198.18.3.3'));
  t.notOk(cidrContains(c('198.18.3.3/32'), '198.18.3.4'));
  t.ok(cidrContains(c('0.0.0.0/0'), '8.8.8.8'));
  t.ok(cidrContains(c('198.18.0.0/16'), '::ffff:198.18.1.1'));
  t.notOk(cidrContains(c('198.18.0.0/16'), '198.18.1'));
  t.notOk(cidrContains(c('198.18.0.0/16'), 'fd00::1'));
  t.ok(cidrContains(c('2001:db8::/32'), '2001:db8:ffff::1'));
  t.notOk(cidrContains(c('2001:db8::/32'), '2001:db9::1'));
  t.ok(cidrContains(c('::1'), '0:0:0:0:0:0:0:1'));
  t.notOk(cidrContains(c('2001:db8::/32'), '198.18.0.1'));
  t.equal(parseCidr('198.18.0.0/33'), null);
  t.equal(parseCidr('not-an-ip/8'), null);
  t.same(parseCidr('198.18.3.7/24'), { text: '198.18.3.7/24', family: 4, bits: 24, bytes: [198, 18, 3, 0] });
});

t.test('hostSetMatches: exact, longest suffix, any, case', async (t) => {
  const h = buildHostSet(['a.example.com', '*.example.org', 'B.example.net']);
  t.ok(hostSetMatches(h, 'a.example.com'));
  t.ok(hostSetMatches(h, 'A.Example.COM'));
  t.ok(hostSetMatches(h, 'b.example.net'));
  t.ok(hostSetMatches(h, 'x.y.example.org'));
  t.notOk(hostSetMatches(h, 'example.org'));
  t.notOk(hostSetMatches(h, 'b.example.com'));
  t.ok(hostSetMatches(buildHostSet(['*']), 'anything'));
  t.same(buildHostSet(['*.a.com', '*.b.a.com']).suffixes, ['.b.a.com', '.a.com']);
});

t.test('names: cluster, SNI form, short-name expansion, gateway names', async (t) => {
  t.equal(clusterName(443, '', 'edition.cnn.com'), 'outbound|443||edition.cnn.com');
  t.equal(sniName(8000, '', 'httpbin.foo.svc.cluster.local'), 'outbound_.8000_._.httpbin.foo.svc.cluster.local');
  t.equal(sniName(8000, 'v1', 'h'), 'outbound_.8000_.v1_.h');
  t.equal(expandHost('Reviews', 'bookinfo'), 'reviews.bookinfo.svc.cluster.local');
  t.equal(expandHost('*', 'x'), '*');
  t.equal(expandHost('a.b', 'x'), 'a.b');
  t.equal(resolveGatewayName('gw', 'ns'), 'ns/gw');
  t.equal(resolveGatewayName('./gw', 'ns'), 'ns/gw');
  t.equal(resolveGatewayName('other/gw', 'ns'), 'other/gw');
  t.equal(resolveGatewayName('gw.other.svc.cluster.local', 'ns'), 'other/gw');
  t.equal(resolveGatewayName('mesh', 'ns'), 'mesh');
});

function vhost(name: string, domains: string[]): VirtualHost {
  return { name, domains, routes: [] };
}

t.test('findVirtualHost: exact with port, then without, then wildcard, then default', async (t) => {
  const withPort = vhost('with-port', ['a.com:8080']);
  const plain = vhost('plain', ['a.com', '[fd00::1]']);
  const wild = vhost('wild', ['*.a.com']);
  const deeper = vhost('deeper', ['*.b.a.com']);
  const def = vhost('default', ['*']);
  const rc = buildRouteConfig('80', [withPort, plain, wild, deeper, def], null);
  t.equal(findVirtualHost(rc, 'a.com:8080'), withPort);
  t.equal(findVirtualHost(rc, 'a.com:9090'), plain);
  t.equal(findVirtualHost(rc, 'A.COM'), plain);
  t.equal(findVirtualHost(rc, '[fd00::1]:80'), plain);
  t.equal(findVirtualHost(rc, 'x.a.com:80'), wild);
  t.equal(findVirtualHost(rc, 'x.b.a.com'), deeper, 'longest suffix wins');
  t.equal(findVirtualHost(rc, 'b.com'), def);
  t.equal(rc.defaultHost, def);
  t.equal(findVirtualHost(buildRouteConfig('80', [plain], null), 'b.com'), null);
});

t.test('findRoute and explainRoute over compiled VS matches', async (t) => {
  const s = compile(resources(
    se('svc', 'default', { hosts: ['svc.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' }),
    vs('svc', 'default', {
      hosts: ['svc.example.com'],
      http: [
        { name: 'exact', match: [{ uri: { exact: '/exact' } }], route: [{ destination: { host: 'svc.example.com' } }] },
        { name: 'ci', match: [{ uri: { prefix: '/CI/' }, ignoreUriCase: true }], route: [{ destination: { host: 'svc.example.com' } }] },
        { name: 'regex', match: [{ uri: { regex: '/v[0-9]+' }, method: { exact: 'POST' } }], route: [{ destination: { host: 'svc.example.com' } }] },
        { name: 'hdr', match: [{ headers: { 'x-env': { prefix: 'prod' } }, withoutHeaders: { 'x-debug': {} } }], route: [{ destination: { host: 'svc.example.com' } }] },
        { name: 'query', match: [{ queryParams: { user: { exact: 'ann' } } }], redirect: { uri: '/ann', redirectCode: 302 } },
        { name: 'bad-regex', match: [{ uri: { regex: '(' } }], directResponse: { status: 418 } },
      ],
    }),
  ), SIDECAR);
  const rc = (s.listeners.get('0.0.0.0_80')!.chains[0]!.filter as HttpConnectionManager).routeConfig;
  const vh = findVirtualHost(rc, 'svc.example.com')!;
  const name = (path: string, method = 'GET', headers: Record<string, string> = {}) => findRoute(vh, request('svc.example.com', path, method, headers))?.name ?? null;
  t.equal(name('/exact'), 'exact');
  t.equal(name('/exact?x=1'), 'exact', 'query string is not part of the path');
  t.equal(name('/exactly'), null);
  t.equal(name('/ci/x'), 'ci');
  t.equal(name('/Ci/X?q'), 'ci');
  t.equal(name('/v12', 'POST'), 'regex');
  t.equal(name('/v12/x', 'POST'), null, 'regex is a full match');
  t.equal(name('/v12', 'GET'), null);
  t.equal(name('/', 'GET', { 'x-env': 'production' }), 'hdr');
  t.equal(name('/', 'GET', { 'x-env': 'production', 'x-debug': '1' }), null, 'withoutHeaders');
  t.equal(name('/p?a=1&user=ann'), 'query');
  t.equal(name('/p?user=bob'), null);
  t.equal(name('('), null, 'an invalid regex never matches');
  t.match(s.warnings.map((w) => w.text), [/spec\.http\[5\]\.match\[0\]\.uri: regex "\(" does not compile/]);
  const redirect = findRoute(vh, request('svc.example.com', '/p?user=ann'))!.action;
  t.same(redirect, { kind: 'redirect', status: 302, scheme: null, authority: null, port: null, path: '/ann' });

  const ex = explainRoute(vh, request('svc.example.com', '/v1', 'GET', { 'x-env': 'prod' }));
  t.same(ex.map((e) => [e.route.name, e.matched, e.failed]), [
    ['exact', false, 'uri'], ['ci', false, 'uri'], ['regex', false, 'method'], ['hdr', true, null],
  ]);
});

t.test('selectChain: transport, SNI, ALPN, destination prefixes, first match wins', async (t) => {
  const tcp = { kind: 'tcp' as const, statPrefix: 'x', routes: [] };
  const l: Listener = {
    name: '0.0.0.0_443', address: '0.0.0.0', port: 443, protocol: 'tcp', needsTlsInspection: true,
    chains: [
      { name: 'sni', match: { serverNames: buildHostSet(['a.com']), transport: 'tls', applicationProtocols: null, destinationPrefixes: null }, tls: null, filter: tcp },
      { name: 'alpn', match: { serverNames: null, transport: 'raw', applicationProtocols: ['http/1.1', 'h2c'], destinationPrefixes: null }, tls: null, filter: tcp },
      { name: 'prefix', match: { serverNames: null, transport: 'any', applicationProtocols: null, destinationPrefixes: [parseCidr('198.18.1.0/24')!] }, tls: null, filter: tcp },
      { name: 'last', match: { serverNames: null, transport: 'any', applicationProtocols: null, destinationPrefixes: null }, tls: null, filter: tcp },
    ],
  };
  const pick = (isTls: boolean, sni: string | null, alpn: string[] | null, dstIp = '198.18.9.9') => selectChain(l, { isTls, sni, alpn, dstIp })!.name;
  t.equal(pick(true, 'a.com', null), 'sni');
  t.equal(pick(true, 'b.com', null), 'last');
  t.equal(pick(false, 'a.com', null), 'last', 'SNI chains need TLS');
  t.equal(pick(false, null, ['h2c']), 'alpn');
  t.equal(pick(true, null, ['http/1.1']), 'last', 'raw chain rejects TLS');
  t.equal(pick(false, null, null, '198.18.1.5'), 'prefix');
});

t.test('findTcpRoute and pickCluster', async (t) => {
  const route = (name: string, match: Partial<TcpRoute['match']>): TcpRoute => ({
    name, source: null,
    match: { destinationPrefixes: null, sourcePrefixes: null, serverNames: null, ...match },
    clusters: { entries: [{ cluster: name, weight: 1 }], totalWeight: 1 },
  });
  const routes = [
    route('dst', { destinationPrefixes: [parseCidr('198.18.1.0/24')!] }),
    route('src', { sourcePrefixes: [parseCidr('198.18.2.0/24')!] }),
    route('sni', { serverNames: buildHostSet(['*.a.com']) }),
  ];
  t.equal(findTcpRoute(routes, { dstIp: '198.18.1.1', remoteIp: '198.18.9.9', sni: null })!.name, 'dst');
  t.equal(findTcpRoute(routes, { dstIp: '198.18.3.1', remoteIp: '198.18.2.2', sni: null })!.name, 'src');
  t.equal(findTcpRoute(routes, { dstIp: '198.18.3.1', remoteIp: '198.18.9.9', sni: 'x.a.com' })!.name, 'sni');
  t.equal(findTcpRoute(routes, { dstIp: '198.18.3.1', remoteIp: '198.18.9.9', sni: null }), null);
  // The proxy's input reads the socket on first use: an address is read only by a route matching on it.
  const reads: string[] = [];
  const lazy = { get dstIp() { reads.push('dst'); return '198.18.3.1'; }, get remoteIp() { reads.push('src'); return '198.18.9.9'; }, sni: 'x.a.com' };
  t.equal(findTcpRoute([routes[2]!], lazy)!.name, 'sni');
  t.same(reads, [], 'an SNI-only route reads no address');
  t.equal(findTcpRoute(routes, lazy)!.name, 'sni');
  t.same(reads, ['dst', 'src'], 'address routes read the address they match on, once each');
  const w = { entries: [{ cluster: 'a', weight: 1 }, { cluster: 'b', weight: 3 }], totalWeight: 4 };
  const counts = { a: 0, b: 0 };
  for (let i = 0; i < 100; i++) counts[pickCluster(w, i / 100) as 'a' | 'b']++;
  t.same(counts, { a: 25, b: 75 });
});
