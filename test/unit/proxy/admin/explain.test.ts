// Admin GET /explain on a running gateway: the same chain as `sluice explain`, on the live snapshot,
// with the endpoint's health and counters from the cluster manager after real traffic.

import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { freePort, startTestRuntime } from '../../../helpers/gateway';

function config(gwPort: number, upstreamPort: number): string {
  return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: backend }
spec:
  hosts: [backend.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${upstreamPort} } }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: istio-egressgateway }
spec:
  selector: { istio: egressgateway }
  servers: [{ port: { number: ${gwPort}, name: http, protocol: HTTP }, hosts: [backend.example] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: backend }
spec:
  hosts: [backend.example]
  gateways: [istio-egressgateway]
  http:
  - name: api
    match: [{ uri: { prefix: /api } }]
    route: [{ destination: { host: backend.example, port: { number: 80 } } }]
`;
}

function get(port: number, path: string, host = '127.0.0.1'): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }));
    }).on('error', reject);
  });
}

t.test('/explain on the live snapshot, with endpoint health after real traffic', async (t) => {
  const upstream = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
  const upstreamPort = (upstream.address() as net.AddressInfo).port;
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, config(gwPort, upstreamPort));
  const admin = gw.rt.adminPort;

  const r = await get(gwPort, '/api/x', 'backend.example');
  t.equal(r.status, 200, 'a real request through the gateway');

  const q = '/explain?url=' + encodeURIComponent(`http://backend.example:${gwPort}/api/x`);
  const text = await get(admin, q);
  t.equal(text.status, 200);
  const lines = text.body.split('\n');
  t.ok(lines.includes(`listener:  0.0.0.0_${gwPort} (http)`), 'the listener');
  t.ok(lines.includes('route:     api from VirtualService istio-system/backend rule #0 match #0'), 'the rule');
  // cx_active: 1 while the pooled keep-alive connection lives, 0 if the upstream closed it already.
  t.ok(lines.some((l) => new RegExp(`^endpoint:  127\\.0\\.0\\.1:${upstreamPort} healthy cx_active=[01] cx_total=1 cx_connect_fail=0 rq_total=1$`).test(l)), 'live endpoint and counters');
  t.ok(lines.includes(`result:    forwarded to outbound|80||backend.example`));

  const js = await get(admin, q + '&format=json');
  t.equal(js.type, 'application/json');
  const e = JSON.parse(js.body) as { clusters: string[]; outcome: { result: string }; source: { ruleIndex: number } };
  t.same([e.clusters, e.outcome.result, e.source.ruleIndex], [['outbound|80||backend.example'], 'forward', 0]);

  const nr = JSON.parse((await get(admin, '/explain?format=json&url=' + encodeURIComponent(`http://backend.example:${gwPort}/other`))).body) as { outcome: unknown };
  t.same(nr.outcome, { result: 'failure', status: 404, flag: 'NR', details: 'route_not_found', cause: 'the virtual host backend.example:' + gwPort + ' has routes, but none matches GET /other (see "no match" above)' });

  const tcp = await get(admin, `/explain?tcp=127.0.0.1:${gwPort}`);
  t.match(tcp.body, /HTTP routing needs a URL/, 'tcp= on an HTTP port says what it needs');
  const usage = await get(admin, '/explain');
  t.same([usage.status, usage.body.startsWith('usage: explain needs url=URL')], [400, true], 'no target: usage, 400');
  const bad = await get(admin, '/explain?sni=a.example');
  t.same([bad.status, bad.body.split('\n')[0]], [400, 'sni needs port']);
  t.match((await get(admin, '/')).body, /\/explain: the decision chain/, 'listed on GET /');
});
