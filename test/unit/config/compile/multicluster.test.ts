// Multi-cluster through 15443 (seed 002, S7-S9): AUTO_PASSTHROUGH with the `.global` name mapped to
// the local `.svc.cluster.local` service (Istio 1.1's tcp_cluster_rewrite), subsets from the local
// DestinationRules, split-horizon endpoints by network (S8), and a gateway that never lists itself.
import t from 'tap';
import { compile } from '../../../../config/compile/index';
import { selectChain } from '../../../../config/compile/lookup';
import type { Snapshot, TcpProxy } from '../../../../config/compile/snapshot';
import { EGRESS_GATEWAY, INGRESS_GATEWAY, SIDECAR, dr, gw, resources, se } from '../../../fixtures/compile/resources';

const crossGateway = (hosts: string[], selector = { istio: 'ingressgateway' }) => gw('mc', 'istio-system', {
  selector, servers: [{ port: { number: 15443, name: 'tls', protocol: 'TLS' }, hosts, tls: { mode: 'AUTO_PASSTHROUGH' } }],
});
const localHttpbin = () => se('httpbin', 'bar', {
  hosts: ['httpbin.bar.svc.cluster.local'], location: 'MESH_INTERNAL', ports: [{ number: 8000, name: 'http', protocol: 'HTTP' }],
  resolution: 'STATIC', endpoints: [{ address: '198.18.7.20', labels: { version: 'beta' } }, { address: '198.18.7.21', labels: { version: 'v1' } }],
});
const globalEntry = (endpoints: { address: string; network?: string; ports?: Record<string, number> }[]) => se('httpbin-bar', 'foo', {
  hosts: ['httpbin.bar.global'], location: 'MESH_INTERNAL', ports: [{ number: 8000, name: 'http1', protocol: 'HTTP' }],
  resolution: 'DNS', addresses: ['127.255.0.2'], endpoints,
});

/** The cluster the 15443 listener sends `sni` to, or null when no chain takes it. */
function sniCluster(s: Snapshot, sni: string): string | null {
  const ch = selectChain(s.listeners.get('0.0.0.0_15443')!, { isTls: true, sni, alpn: ['istio-peer-exchange', 'istio'], dstIp: '198.18.7.10' });
  return ch === null ? null : (ch.filter as TcpProxy).routes[0]!.clusters.entries[0]!.cluster;
}

t.test('a .global SNI reaches the local .svc.cluster.local service; subsets are the local DestinationRules\'', async (t) => {
  const s = compile(resources(
    localHttpbin(), crossGateway(['*.global']),
    dr('httpbin', 'bar', { host: 'httpbin', subsets: [{ name: 'beta', labels: { version: 'beta' } }] }),
  ), INGRESS_GATEWAY);
  t.equal(sniCluster(s, 'outbound_.8000_._.httpbin.bar.global'), 'outbound_.8000_._.httpbin.bar.svc.cluster.local');
  t.equal(sniCluster(s, 'outbound_.8000_.beta_.httpbin.bar.global'), 'outbound_.8000_.beta_.httpbin.bar.svc.cluster.local');
  t.same(s.clusters.get('outbound_.8000_.beta_.httpbin.bar.svc.cluster.local')!.endpoints.map((e) => e.address), ['198.18.7.20'], 'the subset picks the local pods by label');
  t.equal(sniCluster(s, 'outbound_.8000_.v1_.httpbin.bar.global'), null, 'a subset no local DestinationRule defines: no chain (NR)');
  t.equal(sniCluster(s, 'outbound_.8000_._.httpbin.bar.svc.cluster.local'), null, 'server hosts *.global do not cover the local name');
  t.equal(s.listeners.get('0.0.0.0_15443')!.protocol, 'tcp');
  t.equal(s.clusters.get('outbound_.8000_._.httpbin.bar.svc.cluster.local')!.tls, null, 'passed through: no TLS origination');
});

t.test('*.local servers take the local name as it is; both forms when the hosts cover both', async (t) => {
  const local = compile(resources(localHttpbin(), crossGateway(['*.local'])), INGRESS_GATEWAY);
  t.equal(sniCluster(local, 'outbound_.8000_._.httpbin.bar.svc.cluster.local'), 'outbound_.8000_._.httpbin.bar.svc.cluster.local');
  t.equal(sniCluster(local, 'outbound_.8000_._.httpbin.bar.global'), null);
  const both = compile(resources(localHttpbin(), crossGateway(['*'])), INGRESS_GATEWAY);
  t.equal(sniCluster(both, 'outbound_.8000_._.httpbin.bar.global'), 'outbound_.8000_._.httpbin.bar.svc.cluster.local');
  t.equal(sniCluster(both, 'outbound_.8000_._.httpbin.bar.svc.cluster.local'), 'outbound_.8000_._.httpbin.bar.svc.cluster.local');
});

t.test('a declared .global service is routed as written, unless a local service claims the name', async (t) => {
  const declared = compile(resources(globalEntry([{ address: '198.18.7.10', ports: { http1: 15443 } }]), crossGateway(['*.global'], { istio: 'egressgateway' })), EGRESS_GATEWAY);
  t.equal(sniCluster(declared, 'outbound_.8000_._.httpbin.bar.global'), 'outbound_.8000_._.httpbin.bar.global');
  const both = compile(resources(globalEntry([{ address: '198.18.7.10', ports: { http1: 15443 } }]), localHttpbin(), crossGateway(['*.global'])), INGRESS_GATEWAY);
  t.equal(sniCluster(both, 'outbound_.8000_._.httpbin.bar.global'), 'outbound_.8000_._.httpbin.bar.svc.cluster.local', 'the rewrite wins, as it ran on every 1.1 connection');
  t.equal(both.listeners.get('0.0.0.0_15443')!.chains.filter((c) => c.name.endsWith('|outbound_.8000_._.httpbin.bar.global')).length, 1, 'one chain per SNI');
});

t.test('an AUTO_PASSTHROUGH port with nothing to route is a TCP listener that closes (not "http")', async (t) => {
  const s = compile(resources(crossGateway(['*.global'])), INGRESS_GATEWAY);
  const l = s.listeners.get('0.0.0.0_15443')!;
  t.same(l.chains, []);
  t.equal(l.protocol, 'tcp');
});

t.test('S8 endpoints by network: the sidecar sends everything through its egress gateway, which sees only the remote one', async (t) => {
  const entry = globalEntry([
    { address: '198.18.7.10', network: 'external', ports: { http1: 15443 } },
    { address: 'istio-egressgateway.istio-system.svc.cluster.local', ports: { http1: 15443 } },
  ]);
  const egressSvc = se('istio-egressgateway', 'istio-system', {
    hosts: ['istio-egressgateway.istio-system.svc.cluster.local'], location: 'MESH_INTERNAL', ports: [{ number: 15443, name: 'tls', protocol: 'TLS' }], resolution: 'DNS',
  });
  const r = resources(entry, egressSvc, crossGateway(['*.global'], { istio: 'egressgateway' }));
  const side = compile(r, SIDECAR);
  t.same(side.clusters.get('outbound|8000||httpbin.bar.global')!.endpoints.map((e) => `${e.address}:${e.port}`), ['istio-egressgateway.istio-system.svc.cluster.local:15443'], 'never half and half');
  const egress = compile(r, { ...EGRESS_GATEWAY, network: 'external' });
  t.same(egress.clusters.get('outbound_.8000_._.httpbin.bar.global')!.endpoints.map((e) => `${e.address}:${e.port}`), ['198.18.7.10:15443'], '--network external: the remote gateway only');
  t.same(egress.warnings, [], 'nothing to warn about');
  const blind = compile(r, EGRESS_GATEWAY);
  const c = blind.clusters.get('outbound_.8000_._.httpbin.bar.global')!;
  t.same(c.endpoints, [], 'on the default network the only endpoint is the gateway itself: dropped, never connected to');
  t.match(c.emptyReason, /this gateway itself/);
  t.match(blind.warnings.map((w) => w.text).join('\n'), /ServiceEntry\/httpbin-bar: spec\.endpoints: endpoint istio-egressgateway\.istio-system\.svc\.cluster\.local:15443 of httpbin\.bar\.global .* connect to itself/);
  t.equal(blind.clusters.get('outbound_.15443_._.istio-egressgateway.istio-system.svc.cluster.local')!.endpoints.length, 0, 'its own Service on its own port is not a destination either');
});

t.test('--network-gateway: another network\'s endpoints are replaced by its gateway, weighted by their count', async (t) => {
  const entry = globalEntry([
    { address: '198.18.9.1', network: 'west', ports: { http1: 8000 } },
    { address: '198.18.9.2', network: 'west', ports: { http1: 8000 } },
    { address: '198.18.8.1', network: 'east', ports: { http1: 8000 } },
  ]);
  const s = compile(resources(entry), { ...SIDECAR, network: 'east', networkGateways: { west: ['198.18.9.254:15443'] } });
  t.same(s.clusters.get('outbound|8000||httpbin.bar.global')!.endpoints.map((e) => [e.address, e.port, e.weight]), [['198.18.8.1', 8000, 1], ['198.18.9.254', 15443, 2]]);
  const none = compile(resources(entry), { ...SIDECAR, network: 'north' });
  t.match(none.clusters.get('outbound|8000||httpbin.bar.global')!.emptyReason, /another network \(west, east\) than this proxy's \(north\)/);
});
