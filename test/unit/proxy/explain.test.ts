// `sluice explain` on the seed samples (the chains the e2e tests observe on real traffic) and on
// small configs that break in the ways Istio users hit most: NR, UH from an empty subset,
// REGISTRY_ONLY, TLS mode mismatch, a gateway the VirtualService does not bind.

import path from 'node:path';
import t from 'tap';
import { compile } from '../../../config/compile/index';
import type { OutboundPolicy, Role, Snapshot } from '../../../config/compile/snapshot';
import { loadPaths, loadText } from '../../../config/resources/load';
import type { ClusterStatus } from '../../../proxy/admin/context';
import { egressDecisionLines, ExplainTargetError, explain, explainDetailed, parseExplainTarget, type ExplainTarget } from '../../../proxy/explain';

const SAMPLES = path.join(__dirname, '..', '..', '..', '..', 'config', 'samples');

interface ProxyOpts { role: Role; namespace?: string; labels?: Record<string, string>; policy?: OutboundPolicy }

function snapFromResult(r: ReturnType<typeof loadPaths>, o: ProxyOpts, namespace: string): Snapshot {
  const errors = r.messages.filter((m) => m.level === 'error');
  if (errors.length > 0) throw new Error(errors.map((m) => m.text).join('\n'));
  return compile(r.resources, { role: o.role, namespace, labels: o.labels ?? {}, outboundPolicy: o.policy ?? 'ALLOW_ANY', certsDir: '/etc/certs' });
}

function sampleSnap(name: string, o: ProxyOpts): Snapshot {
  const ns = o.namespace ?? (o.role === 'gateway' ? 'istio-system' : 'default');
  return snapFromResult(loadPaths([path.join(SAMPLES, name)], { defaultNamespace: ns }), o, ns);
}

function textSnap(yaml: string, o: ProxyOpts): Snapshot {
  const ns = o.namespace ?? (o.role === 'gateway' ? 'istio-system' : 'default');
  return snapFromResult(loadText(yaml, 'test.yaml', { defaultNamespace: ns }), o, ns);
}

const url = (u: string): ExplainTarget => ({ kind: 'url', url: new URL(u) });
const sni = (host: string, port: number): ExplainTarget => ({ kind: 'sni', sni: host, port });
const EGRESS = { role: 'gateway' as const, labels: { istio: 'egressgateway' } };
const GW_SVC = 'istio-egressgateway.istio-system.svc.cluster.local';

t.test('the seed samples: the chain the e2e tests observe', async (t) => {
  const s1 = explainDetailed(sampleSnap('s1', { role: 'sidecar' }), url('http://edition.cnn.com/politics'));
  t.same([s1.listener, s1.virtualHost, s1.route, s1.clusters], ['0.0.0.0_80', 'edition.cnn.com:80', 'default', ['outbound|80||edition.cnn.com']], 'S1 sidecar: Host routes to the SE cluster');
  t.equal(s1.outcome.result, 'forward');
  const s1tls = explainDetailed(sampleSnap('s1', { role: 'sidecar' }), sni('edition.cnn.com', 443));
  t.same(s1tls.clusters, ['outbound|443||edition.cnn.com'], 'S1 sidecar: HTTPS by SNI to the 443 cluster');

  const s2side = explainDetailed(sampleSnap('s2', { role: 'sidecar' }), url('http://edition.cnn.com/politics'));
  t.same(s2side.clusters, [`outbound|80|cnn|${GW_SVC}`], 'S2 sidecar: to the gateway, subset cnn');
  t.same(s2side.source, { kind: 'VirtualService', name: 'direct-cnn-through-egress-gateway', namespace: 'default', ruleIndex: 0, matchIndex: 0 }, 'rule #0 (gateways [mesh]) matched');

  const s2gw = explainDetailed(sampleSnap('s2', EGRESS), url('http://edition.cnn.com/politics'));
  t.same([s2gw.listener, s2gw.route, s2gw.source?.ruleIndex, s2gw.clusters], ['0.0.0.0_80', null, 1, ['outbound|80||edition.cnn.com']], 'S2 gateway: rule #1 to edition.cnn.com:80');
  t.ok(s2gw.lines.some((l) => /^skipped: +http\[0\] of VirtualService istio-system\/direct-cnn-through-egress-gateway: not for istio-system\/istio-egressgateway on port 80 \(gateways \[mesh\]\)$/.test(l)),
    'says why rule #0 does not apply on the gateway');
  t.ok(s2gw.lines.includes('http:      route config http.80, stats http.outbound_0.0.0.0_80.'), 'names the route config and HCM stat prefix');

  const s4side = explainDetailed(sampleSnap('s4', { role: 'sidecar' }), sni('edition.cnn.com', 443));
  t.same([s4side.chain, s4side.clusters], ['0.0.0.0_443|edition.cnn.com', [`outbound|443|cnn|${GW_SVC}`]], 'S4 sidecar: SNI chain to the gateway');
  const s4gw = explainDetailed(sampleSnap('s4', EGRESS), sni('edition.cnn.com', 443));
  t.same([s4gw.chain, s4gw.route, s4gw.clusters], ['0.0.0.0_443|edition.cnn.com', 'direct-cnn-through-egress-gateway.tls.1', ['outbound|443||edition.cnn.com']], 'S4 gateway: passthrough by SNI');
  t.ok(s4gw.lines.some((l) => l.startsWith('tcp:       tcp_proxy, stats tcp.outbound|443||edition.cnn.com.')), 'TCP stat prefix is the cluster name');

  const s4m = explainDetailed(sampleSnap('s4m', EGRESS), sni('edition.cnn.com', 443));
  t.match(s4m.lines.join('\n'), /terminates TLS: MUTUAL, client certificates verified/, 'S4m gateway terminates mTLS');
  t.same(s4m.clusters, ['outbound|443||edition.cnn.com'], 'then routes with the tcp: rule');

  // S10 resources carry no namespace: they are the default namespace's, as in the seed.
  const s10 = sampleSnap('s10', { role: 'gateway', namespace: 'default', labels: { istio: 'ingressgateway' } });
  const v1 = explainDetailed(s10, { kind: 'tcp', ip: '198.18.3.1', port: 31400 });
  const v2 = explainDetailed(s10, { kind: 'tcp', ip: '198.18.3.1', port: 31401 });
  t.same(v1.clusters, ['outbound|3333|v1|tcp-echo.default.svc.cluster.local'], 'S10 port 31400 -> v1');
  t.same(v2.clusters, ['outbound|3333|v2|tcp-echo.default.svc.cluster.local'], 'S10 port 31401 -> v2');
  t.ok(v1.lines.includes('endpoints: 198.18.5.10:3333 {"app":"tcp-echo","version":"v1"}'), 'v1 endpoint with its labels');
  t.ok(v2.lines.includes('endpoints: 198.18.6.10:3333 {"app":"tcp-echo","version":"v2"}'), 'v2 endpoint with its labels');

  for (const e of [s1, s1tls, s2side, s2gw, s4side, s4gw, s4m, v1, v2]) t.equal(e.outcome.flag, '-', 'no failure on the happy paths');
});

const CNN_SE = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn}
spec:
  hosts: [edition.cnn.com]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`;
const GATEWAY_80 = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway}
spec:
  selector: {istio: egressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [edition.cnn.com]}]
`;

t.test('NR: no Gateway server for the host, and no rule matching the path', async (t) => {
  const snap = textSnap(`${CNN_SE}---${GATEWAY_80}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cnn}
spec:
  hosts: [edition.cnn.com]
  gateways: [istio-egressgateway]
  http:
  - name: api-only
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: edition.cnn.com, port: {number: 80}}}]
`, EGRESS);
  const other = explainDetailed(snap, url('http://other.example/'));
  t.same(other.outcome, { result: 'failure', status: 404, flag: 'NR', details: 'route_not_found', cause: 'no Gateway server on port 80 for host other.example (the servers on this port accept: edition.cnn.com)' });
  t.ok(other.lines.includes('result:    404 route_not_found flag NR'), 'printed as the proxy would log it');

  const path = explainDetailed(snap, url('http://edition.cnn.com/politics'));
  t.same([path.outcome.status, path.outcome.flag], [404, 'NR']);
  t.ok(path.lines.includes('no match:  api-only from VirtualService istio-system/cnn rule #0 match #0: uri does not match (GET /politics)'), 'names the rule and the failed condition');
  t.equal(explainDetailed(snap, url('http://edition.cnn.com/api/v1')).route, 'api-only', 'the rule matches its prefix');
});

t.test('UH: a subset that selects no endpoints', async (t) => {
  const snap = textSnap(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend}
spec:
  hosts: [backend.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 198.18.9.1, labels: {version: v1}}]
---${GATEWAY_80.replace('edition.cnn.com', 'backend.example')}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend}
spec:
  host: backend.example
  subsets: [{name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend}
spec:
  hosts: [backend.example]
  gateways: [istio-egressgateway]
  http: [{route: [{destination: {host: backend.example, subset: v2}}]}]
`, EGRESS);
  const e = explainDetailed(snap, url('http://backend.example/'));
  t.same(e.clusters, ['outbound|80|v2|backend.example']);
  t.same(e.outcome, { result: 'failure', status: 503, flag: 'UH', details: 'no_healthy_upstream', cause: 'subset v2 selects no endpoints' });
  t.ok(e.lines.includes('endpoints: none'), 'shows the empty endpoint list');
});

t.test('REGISTRY_ONLY: HTTP gets 502 block_all, TCP goes to BlackHoleCluster (UH)', async (t) => {
  const snap = sampleSnap('s1', { role: 'sidecar', policy: 'REGISTRY_ONLY' });
  const http = explainDetailed(snap, url('http://unknown.example/'));
  t.same([http.virtualHost, http.route], ['block_all', 'block_all']);
  t.same(http.outcome, { result: 'failure', status: 502, flag: '-', details: 'direct_response', cause: 'REGISTRY_ONLY: host unknown.example is not in any ServiceEntry, so the sidecar answers 502 (route block_all)' });
  const tcp = explainDetailed(snap, { kind: 'tcp', ip: '198.18.2.10', port: 22 });
  t.same([tcp.listener, tcp.clusters], ['virtualOutbound', ['BlackHoleCluster']]);
  t.same([tcp.outcome.flag, tcp.outcome.status], ['UH', null]);
  t.match(tcp.outcome.cause, /^REGISTRY_ONLY: the destination is not in any ServiceEntry/);
  const allow = explainDetailed(sampleSnap('s1', { role: 'sidecar' }), { kind: 'tcp', ip: '198.18.2.10', port: 22 });
  t.same([allow.clusters, allow.outcome.result], [['PassthroughCluster'], 'forward'], 'ALLOW_ANY passes it through');
});

t.test('the egress decision line: why a host is denied, and what report mode does instead', async (t) => {
  const snap = sampleSnap('s1', { role: 'sidecar', policy: 'REGISTRY_ONLY' });
  const target = url('http://unknown.example/');
  const e = explainDetailed(snap, target);
  t.match(egressDecisionLines(e, target, 'enforce'), [/^decision: +deny \(not_in_registry\): unknown\.example is not in any ServiceEntry.*enforce mode refuses it.*counter egress_policy\.denied\.host\.unknown\.example$/]);
  t.match(egressDecisionLines(e, target, 'report'), [/^decision: +would_deny \(not_in_registry\):.*report mode lets it through to PassthroughCluster.*egress_policy\.would_deny\.host\.unknown\.example$/]);
  const tcp: ExplainTarget = { kind: 'tcp', ip: '198.18.2.10', port: 22 };
  t.match(egressDecisionLines(explainDetailed(snap, tcp), tcp, 'enforce'), [/deny \(not_in_registry\): 198\.18\.2\.10 /], 'TCP: named by the original destination');
  const known = url('http://edition.cnn.com/');
  t.same(egressDecisionLines(explainDetailed(snap, known), known, 'enforce'), [], 'a registered host: no decision line');
});

t.test('TLS mode mismatch: tls: rules on a port whose Gateway server terminates TLS', async (t) => {
  const snap = textSnap(`${CNN_SE}---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [edition.cnn.com]
    tls: {mode: SIMPLE, serverCertificate: /etc/certs/cert-chain.pem, privateKey: /etc/certs/key.pem}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cnn}
spec:
  hosts: [edition.cnn.com]
  gateways: [istio-egressgateway]
  tls:
  - match: [{sniHosts: [edition.cnn.com], port: 443}]
    route: [{destination: {host: edition.cnn.com, port: {number: 443}}}]
`, EGRESS);
  const e = explainDetailed(snap, sni('edition.cnn.com', 443));
  t.match(e.lines.join('\n'), /terminates TLS: SIMPLE/);
  t.same([e.outcome.flag, e.outcome.status, e.outcome.details], ['NR', null, 'closed']);
  t.match(e.outcome.cause, /^TLS mode mismatch: this Gateway server terminates TLS \(mode SIMPLE\), after which only VirtualService tcp: routes apply; istio-system\/cnn has tls: routes/);
});

t.test('gateway not bound: the VirtualService does not list the gateway; no listener for the port', async (t) => {
  const snap = textSnap(`${CNN_SE}---${GATEWAY_80}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cnn}
spec:
  hosts: [edition.cnn.com]
  http: [{route: [{destination: {host: edition.cnn.com}}]}]
`, EGRESS);
  const e = explainDetailed(snap, url('http://edition.cnn.com/politics'));
  t.same([e.outcome.status, e.outcome.flag], [404, 'NR']);
  t.equal(e.outcome.cause, 'gateway not bound: VirtualService istio-system/cnn (gateways [mesh]) has host edition.cnn.com but does not list istio-system/istio-egressgateway');

  const unbound = explainDetailed(snap, url('http://edition.cnn.com:8443/'));
  t.same([unbound.listener, unbound.outcome.details], [null, 'refused']);
  t.match(unbound.outcome.cause, /^no Gateway has a server on port 8443/);
  const ingress = explainDetailed(textSnap(`${CNN_SE}---${GATEWAY_80}`, { role: 'gateway', labels: { istio: 'ingressgateway' } }), url('http://edition.cnn.com/'));
  t.equal(ingress.outcome.cause, 'Gateway istio-system/istio-egressgateway (selector {"istio":"egressgateway"}) has a server on port 80, but its selector does not match this proxy\'s labels {"istio":"ingressgateway"}');

  const noVs = explainDetailed(textSnap(`${CNN_SE}---${GATEWAY_80}`, EGRESS), url('http://edition.cnn.com/'));
  t.match(noVs.outcome.cause, /^no VirtualService has host edition\.cnn\.com/);
});

t.test('NC: a route to a host no ServiceEntry declares', async (t) => {
  const snap = textSnap(`${CNN_SE}---${GATEWAY_80}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cnn}
spec:
  hosts: [edition.cnn.com]
  gateways: [istio-egressgateway]
  http: [{route: [{destination: {host: nowhere.example, port: {number: 80}}}]}]
`, EGRESS);
  const e = explainDetailed(snap, url('http://edition.cnn.com/'));
  t.same([e.outcome.status, e.outcome.flag, e.outcome.details], [503, 'NC', 'cluster_not_found']);
  t.equal(e.outcome.cause, 'cluster outbound|80||nowhere.example does not exist: the destination host nowhere.example is not declared by any ServiceEntry visible to this proxy');
});

t.test('NC: a subset no DestinationRule defines is named as the cause, not the host', async (t) => {
  const snap = textSnap(`${CNN_SE}---${GATEWAY_80}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cnn}
spec:
  hosts: [edition.cnn.com]
  gateways: [istio-egressgateway]
  http: [{route: [{destination: {host: edition.cnn.com, subset: v9, port: {number: 80}}}]}]
`, EGRESS);
  const e = explainDetailed(snap, url('http://edition.cnn.com/'));
  t.same([e.outcome.status, e.outcome.flag], [503, 'NC']);
  t.equal(e.outcome.cause, 'cluster outbound|80|v9|edition.cnn.com does not exist: no DestinationRule visible to this proxy defines subset "v9" for edition.cnn.com');
});

t.test('live endpoints: health and counters from the running proxy decide UH', async (t) => {
  const snap = sampleSnap('s2', EGRESS);
  const status = (healthy: boolean, n: number): ClusterStatus => ({
    name: 'outbound|80||edition.cnn.com', addedViaApi: true,
    circuitBreakers: { maxConnections: 1, maxPendingRequests: 1, maxRequests: 1, maxRetries: 1 },
    hosts: n === 0 ? [] : [{ address: '198.18.2.10', port: 80, hostname: 'edition.cnn.com', healthy, weight: 1, locality: '', stats: { cx_active: 1, cx_connect_fail: 0, cx_total: 3, rq_active: 0, rq_error: 0, rq_success: 5, rq_timeout: 0, rq_total: 5 } }],
  });
  const ok = explainDetailed(snap, url('http://edition.cnn.com/politics'), () => status(true, 1));
  t.ok(ok.lines.includes('endpoint:  198.18.2.10:80 healthy (edition.cnn.com) cx_active=1 cx_total=3 cx_connect_fail=0 rq_total=5'), 'the resolved endpoint with its counters');
  t.equal(ok.outcome.result, 'forward');
  const sick = explainDetailed(snap, url('http://edition.cnn.com/politics'), () => status(false, 1));
  t.same([sick.outcome.flag, sick.outcome.cause], ['UH', 'every endpoint of outbound|80||edition.cnn.com is marked unhealthy']);
  const unresolved = explainDetailed(snap, url('http://edition.cnn.com/politics'), () => status(true, 0));
  t.same([unresolved.outcome.flag, unresolved.outcome.cause], ['UH', 'cluster outbound|80||edition.cnn.com has no resolved endpoints (DNS for edition.cnn.com returned nothing yet)']);
});

t.test('parseExplainTarget: the three forms and clear errors', async (t) => {
  t.same(parseExplainTarget({ tcp: '198.18.0.1:31400' }), { kind: 'tcp', ip: '198.18.0.1', port: 31400 });
  t.same(parseExplainTarget({ sni: 'Edition.CNN.com', port: '443' }), { kind: 'sni', sni: 'edition.cnn.com', port: 443 });
  t.equal((parseExplainTarget({ url: 'http://a.example:8080/x' }) as { url: URL }).url.port, '8080');
  t.equal(parseExplainTarget({}), null);
  t.throws(() => parseExplainTarget({ url: 'not a url' }), { code: 'PRX_ERR_EXPLAIN_TARGET', message: 'url: not an absolute URL: "not a url"' });
  t.ok(catchErr(() => parseExplainTarget({ url: 'not a url' })) instanceof ExplainTargetError, 'a typed error');
  t.throws(() => parseExplainTarget({ url: 'ftp://a.example/' }), { code: 'PRX_ERR_EXPLAIN_TARGET' });
  t.throws(() => parseExplainTarget({ sni: 'a.example' }), { message: 'sni needs port' });
  t.throws(() => parseExplainTarget({ tcp: '198.18.0.1:99999' }), { message: 'tcp: port must be 1..65535, got "99999"' });
  t.same(explain(sampleSnap('s1', { role: 'sidecar' }), url('http://edition.cnn.com/')).at(-1), 'result:    forwarded to outbound|80||edition.cnn.com', 'explain() gives the text lines');
});

function catchErr(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return null;
}

// Every remaining sample folder: the chain its scenario's traffic takes (S2m and S3 are also observed
// end to end in test/e2e/tls-*.test.ts; S5 reuses S4's config, S6 S4m's).
t.test('the other samples: S2m, S3, S5, S6, S7, S8, S9 give the path their scenario describes', async (t) => {
  const forwarded = (e: ReturnType<typeof explainDetailed>): readonly string[] => (e.outcome.flag === '-' ? e.clusters : ['FAILED: ' + e.outcome.cause]);
  t.same(forwarded(explainDetailed(sampleSnap('s2m', { role: 'sidecar' }), url('http://edition.cnn.com/politics'))), [`outbound|80|cnn|${GW_SVC}`], 'S2m sidecar: to the gateway subset over port 80');
  t.same(forwarded(explainDetailed(sampleSnap('s3', { role: 'sidecar' }), url('http://edition.cnn.com/politics'))), [`outbound|443|cnn|${GW_SVC}`], 'S3 sidecar: plain HTTP to the gateway port 443');
  t.same(forwarded(explainDetailed(sampleSnap('s3', EGRESS), url('http://edition.cnn.com:443/politics'))), ['outbound|443||edition.cnn.com'], 'S3 gateway: originates TLS to 443');
  t.same(forwarded(explainDetailed(sampleSnap('s5', EGRESS), sni('edition.cnn.com', 443))), ['outbound|443||edition.cnn.com'], 'S5 (S4 config) gateway: by SNI');
  t.same(forwarded(explainDetailed(sampleSnap('s6', EGRESS), sni('edition.cnn.com', 443))), ['outbound|443||edition.cnn.com'], 'S6 (S4m config) gateway: terminated mTLS, then tcp');
  for (const s of ['s7', 's8']) {
    t.same(forwarded(explainDetailed(sampleSnap(s, { role: 'sidecar' }), url('http://httpbin.bar.global:8000/ip'))), ['outbound|8000||httpbin.bar.global'], `${s} sidecar: the .global service`);
  }
  t.same(forwarded(explainDetailed(sampleSnap('s9', { role: 'sidecar' }), url('http://httpbin.bar.global:8000/ip'))), ['outbound|8000|beta|httpbin.bar.global'], 'S9 sidecar: the versioned subset');
});

t.test('S7-S9 gateways: AUTO_PASSTHROUGH by SNI, the .global rewrite, local subsets, the egress gateway\'s network', async (t) => {
  const ingress = sampleSnap('s7/cluster2', { role: 'gateway', labels: { istio: 'ingressgateway' } });
  const s7 = explainDetailed(ingress, sni('outbound_.8000_._.httpbin.bar.global', 15443));
  t.same(s7.clusters, ['outbound_.8000_._.httpbin.bar.svc.cluster.local'], 'S7: the .global name maps to the local service');
  t.match(s7.lines.join('\n'), /listener:  0\.0\.0\.0_15443 \(tcp, reads the TLS ClientHello\)[^]*rewrite:   outbound_\.8000_\._\.httpbin\.bar\.global -> outbound_\.8000_\._\.httpbin\.bar\.svc\.cluster\.local[^]*mTLS is relayed as is/);
  t.same(explainDetailed(ingress, sni('outbound_.8000_.beta_.httpbin.bar.global', 15443)).clusters, ['outbound_.8000_.beta_.httpbin.bar.svc.cluster.local'], 'S9: subset beta from cluster2\'s DestinationRule');
  const unknown = explainDetailed(ingress, sni('outbound_.8000_.v7_.httpbin.bar.global', 15443));
  t.equal(unknown.outcome.flag, 'NR');
  t.match(unknown.outcome.cause, /AUTO_PASSTHROUGH on port 15443 .*no DestinationRule of this cluster defines subset "v7" for httpbin\.bar\.svc\.cluster\.local/);
  t.notMatch(unknown.outcome.cause, /only a VirtualService bound/, 'not the VirtualService story: AUTO_PASSTHROUGH needs none');
  const egress = (network: string) => {
    const ns = 'istio-system';
    const r = loadPaths([path.join(SAMPLES, 's8')], { defaultNamespace: ns });
    return compile(r.resources, { role: 'gateway', namespace: ns, labels: { istio: 'egressgateway' }, outboundPolicy: 'ALLOW_ANY', certsDir: '/etc/certs', network });
  };
  const s8 = explainDetailed(egress('external'), sni('outbound_.8000_._.httpbin.bar.global', 15443));
  t.same(s8.clusters, ['outbound_.8000_._.httpbin.bar.global']);
  t.match(s8.lines.join('\n'), /endpoints: 198\.18\.7\.10:15443 /, 'S8 egress gateway (--network external): the remote gateway, not itself');
  t.match(explainDetailed(egress(''), sni('outbound_.8000_._.httpbin.bar.global', 15443)).outcome.cause, /only endpoints of httpbin\.bar\.global are this gateway itself/);
});

t.test('a VIP and an inbound port: whose address it is and where it goes; the inbound chains by mode', async (t) => {
  const side = sampleSnap('s7', { role: 'sidecar', namespace: 'foo' });
  const vip = explainDetailed(side, { kind: 'tcp', ip: '127.255.0.2', port: 8000 });
  t.same(vip.clusters, ['outbound|8000||httpbin.bar.global'], "the seed's loopback VIP reaches its service");
  t.match(vip.lines.join('\n'), /vip: +127\.255\.0\.2 is an address of ServiceEntry foo\/httpbin-bar \(httpbin\.bar\.global\)/);
  const pod = sampleSnap('s7/cluster2', { role: 'sidecar', namespace: 'bar', labels: { app: 'httpbin', version: 'beta' } });
  const http = explainDetailed(pod, { kind: 'inbound', port: 8000 });
  t.same(http.clusters, ['inbound|8000||']);
  t.match(http.lines.join('\n'), /mtls: +PERMISSIVE[^]*chain: +0\.0\.0\.0_8000\|mtls[^]*chain: +0\.0\.0\.0_8000\|plaintext[^]*x-forwarded-client-cert APPEND_FORWARD[^]*source: +127\.0\.0\.6/);
  const other = explainDetailed(pod, { kind: 'inbound', port: 9999 });
  t.same(other.clusters, ['InboundPassthroughClusterIpv4'], 'an undeclared port: TCP to the app');
  t.match(other.lines.join('\n'), /to 127\.0\.0\.1:9999/);
  t.same(parseExplainTarget({ inbound: '8000' }), { kind: 'inbound', port: 8000 });
  t.equal(explainDetailed(sampleSnap('s7/cluster2', EGRESS), { kind: 'inbound', port: 8000 }).outcome.result, 'failure', 'a gateway has no inbound side');
});
