// The sidecar's inbound side (config/compile/inbound.ts): which ports are this workload's, the mTLS
// mode's chains, HTTP with x-forwarded-client-cert vs TCP, `inbound|P||` clusters bound from 127.0.0.6.
import t from 'tap';
import { compile } from '../../../../config/compile/index';
import { selectChain } from '../../../../config/compile/lookup';
import type { HttpConnectionManager, Listener, Snapshot, TcpProxy } from '../../../../config/compile/snapshot';
import { SIDECAR, resources, se } from '../../../fixtures/compile/resources';

const httpbin = () => se('httpbin', 'bar', {
  hosts: ['httpbin.bar.svc.cluster.local'], location: 'MESH_INTERNAL',
  ports: [{ number: 8000, name: 'http', protocol: 'HTTP' }, { number: 9000, name: 'tcp', protocol: 'TCP', targetPort: 9001 }],
  resolution: 'STATIC', endpoints: [{ address: '198.18.7.20', labels: { app: 'httpbin', version: 'beta' }, ports: { http: 8080 } }],
});
const POD = { ...SIDECAR, namespace: 'bar', labels: { app: 'httpbin', version: 'beta', extra: 'x' } };

function chainName(l: Listener, isTls: boolean, alpn: string[] | null): string | null {
  return selectChain(l, { isTls, sni: null, alpn, dstIp: '198.18.7.20' })?.name ?? null;
}

t.test('the pod ports come from the services whose endpoint labels (or workloadSelector) select this proxy', async (t) => {
  const s: Snapshot = compile(resources(httpbin()), POD);
  const inbound = s.inbound!;
  t.same([...inbound.ports.keys()].sort(), [8080, 9001], 'endpoint port for the name, else targetPort');
  t.equal(inbound.ports.get(8080)!.protocol, 'http');
  t.equal(inbound.ports.get(9001)!.protocol, 'tcp');
  const c = s.clusters.get('inbound|8080||')!;
  t.same(c.endpoints.map((e) => `${e.address}:${e.port}`), ['127.0.0.1:8080']);
  t.equal(c.upstreamBindAddress, '127.0.0.6');
  t.equal(s.clusters.get('InboundPassthroughClusterIpv4')!.originalDstOnLoopback, true);
  t.same([...compile(resources(httpbin()), { ...POD, labels: { app: 'sleep' } }).inbound!.ports.keys()], [], 'another workload: no declared ports');
  const bySelector = se('web', 'default', { hosts: ['web.default.svc.cluster.local'], location: 'MESH_INTERNAL', ports: [{ number: 80, name: 'http-web', protocol: 'HTTP', targetPort: 8081 }], workloadSelector: { labels: { app: 'web' } } });
  t.same([...compile(resources(bySelector), { ...SIDECAR, labels: { app: 'web' } }).inbound!.ports.keys()], [8081], 'workloadSelector');
  t.equal(compile(resources(httpbin()), { ...POD, role: 'gateway' }).inbound, undefined, 'gateways have none');
});

t.test('PERMISSIVE (default): mesh mTLS terminated, plain text and other TLS passed on; HTTP sets XFCC', async (t) => {
  const l = compile(resources(httpbin()), POD).inbound!.ports.get(8080)!;
  t.equal(chainName(l, true, ['istio-peer-exchange', 'istio']), '0.0.0.0_8080|mtls');
  t.equal(chainName(l, false, null), '0.0.0.0_8080|plaintext');
  t.equal(chainName(l, true, ['h2']), '0.0.0.0_8080|plaintext', "the app's own TLS is not the mesh's");
  const mtls = l.chains[0]!;
  t.equal(mtls.tls!.mode, 'ISTIO_MUTUAL');
  t.equal(mtls.tls!.certFile, '/etc/certs/cert-chain.pem');
  const hcm = mtls.filter as HttpConnectionManager;
  t.equal(hcm.statPrefix, 'inbound_0.0.0.0_8080');
  t.equal(hcm.forwardClientCert, 'APPEND_FORWARD');
  const route = hcm.routeConfig.defaultHost!.routes[0]!;
  t.match(route.action, { kind: 'forward', clusters: { entries: [{ cluster: 'inbound|8080||' }] }, requestHeaders: { remove: ['x-forwarded-client-cert'] } });
  const tcp = compile(resources(httpbin()), POD).inbound!.ports.get(9001)!;
  t.equal((tcp.chains[0]!.filter as TcpProxy).statPrefix, 'inbound|9001||');
});

t.test('STRICT refuses plain text (no chain); DISABLE terminates nothing; per port over the default', async (t) => {
  const s = compile(resources(httpbin()), { ...POD, inboundMtls: { mode: 'STRICT', ports: { 9001: 'DISABLE' } } });
  const strict = s.inbound!.ports.get(8080)!;
  t.equal(chainName(strict, false, null), null, 'plain text: filter_chain_not_found');
  t.equal(chainName(strict, true, null), '0.0.0.0_8080|mtls', 'any ClientHello is taken as mTLS');
  const disabled = s.inbound!.ports.get(9001)!;
  t.same(disabled.chains.map((c) => c.tls), [null]);
  t.equal(disabled.needsTlsInspection, false);
  t.equal(chainName(s.inbound!.passthrough, false, null), null, 'undeclared ports follow the workload mode');
  t.equal(s.inbound!.defaultMode, 'STRICT');
});
