// The gateway's HTTP path against real loopback upstreams: routing by the seed's VirtualService,
// keep-alive pooling counted as Envoy counts it, and bad input answered as Envoy answers it
// (400 / 404 NR / 503 UF) with a log line, while the proxy keeps serving. The DNS-failure case (503
// UH) is in test/e2e/bad-upstreams.test.ts: resolving an unknown name here would query the
// machine's real DNS server, which tests must never do.

import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { freePort, rawExchange, startTestRuntime } from '../../../helpers/gateway';

function gatewayConfig(gwPort: number, upstreamPort: number, extra = ''): string {
  return `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: cnn, namespace: default }
spec:
  hosts: [edition.cnn.com]
  ports: [{ number: 80, name: http-port, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http-port: ${upstreamPort} } }]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: refused, namespace: default }
spec:
  hosts: [refused.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: 1 } }]
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: istio-egressgateway, namespace: default }
spec:
  selector: { istio: egressgateway }
  servers:
  - port: { number: ${gwPort}, name: http, protocol: HTTP }
    hosts: [edition.cnn.com, refused.example]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: egress, namespace: default }
spec:
  hosts: [edition.cnn.com, refused.example]
  gateways: [istio-egressgateway]
  http:
  - match: [{ authority: { exact: refused.example } }]
    route: [{ destination: { host: refused.example, port: { number: 80 } } }]
  - match: [{ uri: { prefix: /politics } }]
    route: [{ destination: { host: edition.cnn.com, port: { number: 80 } } }]
${extra}`;
}

async function startUpstream(t: { teardown(fn: () => unknown): void }): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server = http.createServer((req, res) => {
    if (req.url === '/politics/slow') {
      setTimeout(() => res.end('late'), 2000).unref();
      return;
    }
    let body = 0;
    req.on('data', (c: Buffer) => (body += c.length));
    req.on('end', () => {
      res.writeHead(301, { location: 'https://edition.cnn.com/politics', 'x-seen-host': req.headers.host ?? '', 'x-seen-body': String(body) });
      res.end();
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  server.keepAliveTimeout = 30_000;
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections };
}

function get(port: number, path: string, host: string, agent: http.Agent | false = false): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers: { host }, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject);
  });
}

t.test('routes by the VirtualService and pools upstream connections', async (t) => {
  const up = await startUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, gatewayConfig(gwPort, up.port));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  for (let i = 0; i < 3; i++) {
    const r = await get(gwPort, '/politics', 'edition.cnn.com', agent);
    t.equal(r.status, 301);
    t.equal(r.headers['x-seen-host'], 'edition.cnn.com', 'Host is preserved');
    t.ok(r.headers['x-envoy-upstream-service-time'] !== undefined, 'x-envoy-upstream-service-time is set');
  }
  t.equal(up.connections(), 1, 'the upstream saw one keep-alive connection');
  t.equal(gw.stat('cluster.outbound|80||edition.cnn.com.upstream_cx_total'), up.connections(), 'upstream_cx_total equals the connections made');
  t.equal(gw.stat('cluster.outbound|80||edition.cnn.com.upstream_rq_total'), 3);
  t.equal(gw.stat('cluster.outbound|80||edition.cnn.com.upstream_rq_301'), 3);
  t.equal(gw.stat('cluster.outbound|80||edition.cnn.com.upstream_rq_3xx'), 3);
  const lines = await gw.lines();
  t.equal(lines.length, 3, 'one access-log line per request');
  t.match(lines[0], new RegExp(`"GET /politics HTTP/1.1" 301 - via_upstream - "-" 0 0 \\d+ \\d+ "127.0.0.1" "-" "[0-9a-f-]{36}" "edition.cnn.com" "127.0.0.1:${up.port}" outbound\\|80\\|\\|edition.cnn.com`));
});

t.test('a request body is streamed to the upstream', async (t) => {
  const up = await startUpstream(t);
  const gwPort = await freePort();
  await startTestRuntime(t, gatewayConfig(gwPort, up.port));
  const body = Buffer.alloc(200_000, 7);
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: gwPort, method: 'POST', path: '/politics', headers: { host: 'edition.cnn.com', 'content-length': body.length }, agent: false }, resolve);
    req.on('error', reject);
    req.end(body);
  });
  res.resume();
  t.equal(res.headers['x-seen-body'], String(body.length), 'all body bytes arrived');
});

t.test('bad input gets Envoy-like answers and a log line; the proxy keeps serving', async (t) => {
  const up = await startUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, gatewayConfig(gwPort, up.port));

  const noRoute = await get(gwPort, '/politics', 'unknown.example');
  t.equal(noRoute.status, 404, 'unknown host: 404');
  const noRoutePath = await get(gwPort, '/sports', 'edition.cnn.com');
  t.equal(noRoutePath.status, 404, 'no matching route: 404');

  const refused = await get(gwPort, '/', 'refused.example');
  t.equal(refused.status, 503, 'refused upstream: 503');
  t.equal(refused.body, 'upstream connect error or disconnect/reset before headers. reset reason: connection failure');

  const badLine = await rawExchange(gwPort, 'GARBAGE\r\n\r\n');
  t.match(badLine, /^HTTP\/1\.1 400 /, 'bad request line: 400');
  const noHost = await rawExchange(gwPort, 'GET /politics HTTP/1.1\r\n\r\n');
  t.match(noHost, /^HTTP\/1\.1 400 /, 'HTTP/1.1 without Host: 400');
  const smuggle = await rawExchange(gwPort, 'POST /politics HTTP/1.1\r\nHost: edition.cnn.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  t.match(smuggle, /^HTTP\/1\.1 400 /, 'Content-Length with Transfer-Encoding: 400');

  // A client that closes mid-request (declared 100 bytes, sends 10, hangs up).
  await rawExchange(gwPort, 'POST /politics HTTP/1.1\r\nHost: edition.cnn.com\r\nContent-Length: 100\r\n\r\n0123456789', { endAfterWrite: true, timeoutMs: 1000 });

  const after = await get(gwPort, '/politics', 'edition.cnn.com');
  t.equal(after.status, 301, 'still serving after all of that');

  const lines = await gw.lines();
  const find = (re: RegExp): string | undefined => lines.find((l) => re.test(l));
  t.ok(find(/"GET \/politics HTTP\/1\.1" 404 NR route_not_found .*"unknown.example"/), 'NR line for the unknown host');
  t.ok(find(/"GET \/ HTTP\/1\.1" 503 UF,URX upstream_reset_before_response_started\{connection_failure\} .*"refused.example" "127.0.0.1:1" outbound\|80\|\|refused.example/), 'UF,URX line for the refused upstream');
  t.ok(find(/ 400 DPE http1.codec_error /), 'DPE line for the bad request line');
  t.ok(find(/"GET \/politics HTTP\/1\.1" 400 DPE missing_host_header/), 'missing Host is logged');
  t.ok(find(/"POST \/politics HTTP\/1\.1" 0 DC downstream_remote_disconnect/) ?? find(/"POST \/politics HTTP\/1\.1" \d+ .*DC/), 'client gone mid-request: DC line');
  t.equal(gw.stat('cluster.outbound|80||refused.example.upstream_cx_connect_fail'), 3, 'three connect attempts (Istio default: 2 retries)');
  t.equal(gw.stat('cluster.outbound|80||refused.example.upstream_rq_retry'), 2, 'two retries counted');
  t.equal(gw.stat('cluster.outbound|80||refused.example.upstream_rq_retry_limit_exceeded'), 1, 'then the retry limit');
  t.equal(gw.stat('cluster.outbound|80||refused.example.upstream_rq_retry_success'), 0);
});

t.test('an invalid config on reload keeps the last good one', async (t) => {
  const up = await startUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, gatewayConfig(gwPort, up.port));
  await gw.rt.applyText('apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: broken }\nspec:\n  hosts: 42\n');
  t.equal(gw.stat('sluice.config.rejected'), 1, 'the broken config was rejected');
  const r = await get(gwPort, '/politics', 'edition.cnn.com');
  t.equal(r.status, 301, 'traffic still flows on the last good config');
});
