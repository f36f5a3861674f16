// Cross-resource traps (warnings) beyond the broken fixtures: when they must fire and when not.
import t from 'tap';
import { resolveGatewayName } from '../../../../config/resources/cross-checks';
import { doc, messages } from './_load';

const join = (...docs: string[]) => docs.join('---\n');

t.test('gateway names resolve as Istio does', async (t) => {
  t.equal(resolveGatewayName('mesh', 'foo'), 'mesh');
  t.equal(resolveGatewayName('gw', 'foo'), 'foo/gw');
  t.equal(resolveGatewayName('./gw', 'foo'), 'foo/gw');
  t.equal(resolveGatewayName('istio-system/gw', 'foo'), 'istio-system/gw');
  t.equal(resolveGatewayName('gw.istio-system.svc.cluster.local', 'foo'), 'istio-system/gw');
});

const TERMINATING_GW = doc('Gateway', 'egress', `  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [a.example.com]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: c}
  - port: {number: 9443, name: pt, protocol: TLS}
    hosts: [a.example.com]
    tls: {mode: PASSTHROUGH}`);
const SE = doc('ServiceEntry', 'a', '  hosts: [a.example.com]\n  resolution: DNS');
const tlsVs = (matchExtra: string) => doc('VirtualService', 'v', `  hosts: [a.example.com]\n  gateways: [egress, mesh]\n  tls:\n  - match: [{sniHosts: [a.example.com]${matchExtra}}]\n    route: [{destination: {host: a.example.com}}]`);

t.test('tls: routes on TLS-terminating servers: per port, suggesting tcp: or http:', async (t) => {
  t.same(messages(join(TERMINATING_GW, SE, tlsVs(', port: 9443'))), [], 'passthrough port is fine');
  t.same(messages(join(TERMINATING_GW, SE, tlsVs(', port: 8443'))), [
    'warning CFG_WARN_TRAP f.yaml:3: VirtualService/v: spec.tls[0]: tls: route bound to Gateway default/egress port 8443, which terminates TLS (mode SIMPLE); this route never matches there: use http: routes after TLS termination',
  ]);
  t.same(messages(join(TERMINATING_GW, SE, tlsVs(', gateways: [mesh]'))), [], 'match-level gateways override the VS list');
  t.equal(messages(join(TERMINATING_GW, SE, tlsVs(''))).length, 2, 'no port: every terminating server of the gateway');
});

t.test('resolution NONE only matters for destinations a gateway forwards to', async (t) => {
  const none = doc('ServiceEntry', 'a', '  hosts: ["*.example.com"]');
  const gw = doc('Gateway', 'egress', '  servers: [{port: {number: 80, name: p80, protocol: HTTP}, hosts: [a.example.com]}]');
  const meshOnly = doc('VirtualService', 'v', '  hosts: [a.example.com]\n  http: [{route: [{destination: {host: a.example.com}}]}]');
  t.same(messages(join(none, gw, meshOnly)), [], 'sidecars forward NONE to the original destination');
  const viaGw = doc('VirtualService', 'v', '  hosts: [a.example.com]\n  gateways: [mesh, egress]\n  http:\n  - match: [{gateways: [mesh]}]\n    route: [{destination: {host: egress.default.svc.cluster.local}}]\n  - match: [{gateways: [egress]}]\n    route: [{destination: {host: a.example.com}}]');
  t.same(messages(join(none, gw, viaGw)), [
    'warning CFG_WARN_TRAP f.yaml:3: VirtualService/v: spec.http[1].route[0].destination.host: host "a.example.com" has resolution NONE (ServiceEntry default/a): a gateway has no original destination to forward to and answers 503 UH; use resolution DNS (or STATIC with endpoints)',
  ]);
});

t.test('subsets: found through short names, namespaces and wildcard DestinationRule hosts', async (t) => {
  const route = (host: string, subset: string) => doc('VirtualService', 'v', `  hosts: [x.example.com]\n  http: [{route: [{destination: {host: ${host}, subset: ${subset}}}]}]`);
  const drShort = doc('DestinationRule', 'd', '  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}]');
  t.same(messages(join(drShort, route('reviews.default.svc.cluster.local', 'v1'))), []);
  t.same(messages(join(drShort, route('reviews', 'v1'))), []);
  const drGlobal = doc('DestinationRule', 'd', '  host: "*.global"\n  subsets: [{name: beta}]');
  t.same(messages(join(drGlobal, route('httpbin.bar.global', 'beta'))), []);
  t.same(messages(join(drGlobal, route('httpbin.bar.global', 'v2'))), [
    'warning CFG_WARN_TRAP f.yaml:2: VirtualService/v: spec.http[0].route[0].destination.subset: subset "v2" is not defined by any DestinationRule for host "httpbin.bar.global": requests will fail with 503 NC (cluster_not_found)',
  ]);
});

t.test('TCP ports without addresses: only address-bound protocols warn', async (t) => {
  t.same(messages(doc('ServiceEntry', 's', '  hosts: [a.example.com]\n  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]')), []);
  t.same(messages(doc('ServiceEntry', 's', '  hosts: [a.example.com]\n  addresses: [198.18.0.5]\n  ports: [{number: 3306, name: tcp, protocol: TCP}]')), []);
  t.same(messages(doc('ServiceEntry', 's', '  hosts: [a.example.com]\n  ports: [{number: 6379, name: redis, protocol: REDIS}]')), [
    'warning CFG_WARN_TRAP f.yaml:1: ServiceEntry/s: spec.ports[0]: REDIS port 6379 without addresses: on a sidecar this ServiceEntry captures all traffic to port 6379, whatever the destination IP; set addresses',
  ]);
});

t.test('match-level gateway references are checked too', async (t) => {
  t.same(messages(doc('VirtualService', 'v', '  hosts: [a.example.com]\n  tcp: [{match: [{gateways: [mesh, nope]}], route: [{destination: {host: a.example.com}}]}]')), [
    'warning CFG_WARN_TRAP f.yaml:1: VirtualService/v: spec.tcp[0].match[0].gateways[1]: Gateway default/nope is not defined: rules bound to it apply nowhere',
  ]);
});
