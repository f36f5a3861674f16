// Envoy's HTTP/1.1 pending-request queue (h1-upstream.ts H1Pool): at connectionPool.tcp.maxConnections
// a request waits for a pooled connection instead of failing, up to http1MaxPendingRequests; the
// next one gets 503 UO with upstream_rq_pending_overflow. A pending request that times out or whose
// client leaves drops out of the queue (upstream_rq_cancelled); a failed connect fails every pending
// request (upstream_rq_pending_failure_eject). Real sockets on loopback: a slow upstream that holds
// its responses until the test releases them.

import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { freePort, oneUpstreamConfig, startTestRuntime, type TestGateway } from '../../../helpers/gateway';

const C = 'cluster.outbound|80||up.example.';

interface SlowUpstream {
  readonly port: number;
  /** request paths in the order the upstream received them */
  readonly seen: string[];
  connections(): number;
  /** answer everything held, and everything from now on */
  release(): void;
}

async function slowUpstream(t: { teardown(fn: () => unknown): void }): Promise<SlowUpstream> {
  const held: http.ServerResponse[] = [];
  const seen: string[] = [];
  let holding = true;
  let conns = 0;
  const answer = (res: http.ServerResponse): void => {
    res.writeHead(200, { 'content-length': '2' });
    res.end('ok');
  };
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    if (holding) held.push(res);
    else answer(res);
  });
  server.on('connection', () => conns++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); }));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    connections: () => conns,
    release() {
      holding = false;
      for (const res of held.splice(0)) answer(res);
    },
  };
}

function pool(http1MaxPendingRequests: number | null, extraHttp = ''): string {
  return `---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: dr, namespace: default }
spec:
  host: up.example
  trafficPolicy:
    connectionPool:
      tcp: { maxConnections: 1 }
${http1MaxPendingRequests === null && extraHttp === '' ? '' : `      http: { ${[http1MaxPendingRequests === null ? '' : `http1MaxPendingRequests: ${http1MaxPendingRequests}`, extraHttp].filter((s) => s !== '').join(', ')} }`}
`;
}

interface Reply { status: number; body: string }

function get(port: number, p: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, headers: { host: 'up.example' }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

/** Wait (bounded: 5 s) for a condition the proxy reaches asynchronously; not a timed assertion. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error(`gave up waiting for ${what}`);
}

const stat = (gw: TestGateway, name: string): number => gw.stat(C + name) ?? 0;

t.test('at maxConnections requests queue up to http1MaxPendingRequests; the next gets 503 UO at once', async (t) => {
  const up = await slowUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port }) + pool(2));

  const first = get(gwPort, '/0');
  await until(() => up.seen.length === 1, 'the first request at the upstream');
  t.equal(stat(gw, 'upstream_rq_pending_active'), 0, 'the first request has the connection, it is not pending');
  const queued = [get(gwPort, '/1'), get(gwPort, '/2')];
  await until(() => stat(gw, 'upstream_rq_pending_active') === 2, 'two pending requests');

  // The bound is reached: the (bound+1)-th pending request fails while the others still wait.
  const over = await get(gwPort, '/3');
  t.equal(over.status, 503);
  t.equal(over.body, 'upstream connect error or disconnect/reset before headers. reset reason: overflow');
  t.same(up.seen, ['/0'], 'the upstream still holds only the first request');

  up.release();
  const replies = await Promise.all([first, ...queued]);
  t.same(replies.map((r) => r.status), [200, 200, 200], 'every queued request was served');
  t.same(up.seen, ['/0', '/1', '/2'], 'in arrival order');
  t.equal(up.connections(), 1, 'over the one connection maxConnections allows');

  t.equal(stat(gw, 'upstream_rq_pending_total'), 3, 'pending_total: the first request waited for its connection too (Envoy)');
  t.equal(stat(gw, 'upstream_rq_pending_active'), 0);
  t.equal(stat(gw, 'upstream_rq_pending_overflow'), 1);
  t.equal(stat(gw, 'upstream_cx_overflow'), 2, 'each queued request found the connection limit reached');
  t.equal(stat(gw, 'upstream_cx_total'), 1);
  t.equal(stat(gw, 'upstream_rq_total'), 3, 'the overflowed request never became an upstream request');
  t.equal(stat(gw, 'upstream_rq_active'), 0);
  t.equal(stat(gw, 'upstream_rq_cancelled'), 0);

  const lines = await gw.lines();
  t.equal(lines.length, 4);
  const uo = lines.filter((l) => l.includes('"GET /3 HTTP/1.1"'));
  t.equal(uo.length, 1);
  t.match(uo[0], /"GET \/3 HTTP\/1\.1" 503 UO upstream_reset_before_response_started\{overflow\} /, 'logged as Envoy logs an overflow');
});

t.test('the Istio default (no http1MaxPendingRequests) queues without bound', async (t) => {
  const up = await slowUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port }) + pool(null));
  const N = 12;
  const first = get(gwPort, '/0');
  await until(() => up.seen.length === 1, 'the first request at the upstream');
  const rest: Promise<Reply>[] = [];
  for (let i = 1; i < N; i++) {
    rest.push(get(gwPort, '/' + i));
    // one at a time into the queue, so the arrival order is known
    await until(() => stat(gw, 'upstream_rq_pending_active') === i, `${i} pending`);
  }
  up.release();
  const replies = await Promise.all([first, ...rest]);
  t.ok(replies.every((r) => r.status === 200), 'all served');
  t.same(up.seen, Array.from({ length: N }, (_, i) => '/' + i), 'in arrival order');
  t.equal(up.connections(), 1);
  t.equal(stat(gw, 'upstream_rq_pending_total'), N);
  t.equal(stat(gw, 'upstream_rq_pending_overflow'), 0);
  t.equal(stat(gw, 'upstream_rq_pending_active'), 0);
});

t.test('a pending request leaves the queue on its route timeout or when its client goes', async (t) => {
  const up = await slowUpstream(t);
  const gwPort = await freePort();
  const routes = `  - match: [{ uri: { prefix: /t } }]
    timeout: 0.2s
    route: [{ destination: { host: up.example, port: { number: 80 } } }]
  - route: [{ destination: { host: up.example, port: { number: 80 } } }]`;
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port, http: routes }) + pool(5));
  const first = get(gwPort, '/0');
  await until(() => up.seen.length === 1, 'the first request at the upstream');

  const timedOut = await get(gwPort, '/t1');
  t.equal(timedOut.status, 504, 'the route timeout applies while pending');
  t.equal(timedOut.body, 'upstream request timeout');
  t.equal(stat(gw, 'upstream_rq_pending_active'), 0, 'it left the queue');
  t.equal(stat(gw, 'upstream_rq_cancelled'), 1);

  const client = net.connect(gwPort, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', () => r()));
  client.write('GET /gone HTTP/1.1\r\nhost: up.example\r\n\r\n');
  await until(() => stat(gw, 'upstream_rq_pending_active') === 1, 'the request pending');
  // A reset, not a FIN: after a FIN the proxy still answers the complete request (h1-server.ts onEnd).
  client.resetAndDestroy();
  await until(() => stat(gw, 'upstream_rq_pending_active') === 0, 'the queue empty again');
  t.equal(stat(gw, 'upstream_rq_cancelled'), 2);

  up.release();
  t.equal((await first).status, 200);
  const after = await get(gwPort, '/after');
  t.equal(after.status, 200, 'the connection serves the next request');
  t.same(up.seen, ['/0', '/after'], 'the upstream never saw the cancelled requests');
  t.equal(up.connections(), 1);
  t.equal(stat(gw, 'upstream_rq_pending_total'), 3, '/0, /t1, /gone waited; /after found the idle connection');
  t.equal(stat(gw, 'upstream_rq_timeout'), 1);
  const lines = await gw.lines();
  t.match(lines.find((l) => l.includes('/gone')), /"GET \/gone HTTP\/1\.1" 0 DC downstream_remote_disconnect /, 'the client that left: DC');
});

t.test('a failed connect fails every pending request of the pool (upstream_rq_pending_failure_eject)', async (t) => {
  // An upstream that accepts TCP and never answers the TLS handshake: the connection stays
  // "connecting" until the test closes it, so all requests are pending by then.
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  const upPort = (server.address() as net.AddressInfo).port;
  const gwPort = await freePort();
  const routes = `  - route: [{ destination: { host: up.example, port: { number: 80 } } }]
    retries: { attempts: 0 }`;
  const dr = `---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: dr, namespace: default }
spec:
  host: up.example
  trafficPolicy:
    connectionPool: { tcp: { maxConnections: 1 } }
    tls: { mode: SIMPLE, insecureSkipVerify: true }
`;
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: upPort, http: routes }) + dr);
  const replies = [get(gwPort, '/a'), get(gwPort, '/b'), get(gwPort, '/c')];
  await until(() => stat(gw, 'upstream_rq_pending_active') === 3 && sockets.length === 1, 'three pending requests and one connection');
  sockets[0]!.destroy();
  const r = await Promise.all(replies);
  t.same(r.map((x) => x.status), [503, 503, 503], 'all three failed with the connect');
  t.equal(stat(gw, 'upstream_rq_pending_failure_eject'), 3);
  t.equal(stat(gw, 'upstream_rq_pending_active'), 0);
  t.equal(stat(gw, 'upstream_cx_total'), 1, 'one connection was tried');
  t.equal(stat(gw, 'upstream_rq_total'), 0, 'no request reached an upstream connection');
  const lines = await gw.lines();
  t.equal(lines.filter((l) => / 503 UF /.test(l)).length, 3, 'each logged UF');
});

t.test('http2MaxRequests (the request circuit breaker) also answers UO with upstream_rq_pending_overflow', async (t) => {
  const up = await slowUpstream(t);
  const gwPort = await freePort();
  const dr = `---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: dr, namespace: default }
spec:
  host: up.example
  trafficPolicy:
    connectionPool: { http: { http2MaxRequests: 1 } }
`;
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port }) + dr);
  const first = get(gwPort, '/0');
  await until(() => up.seen.length === 1, 'the first request at the upstream');
  // A second connection opens (maxConnections is unlimited) but attaching the request would exceed max_requests.
  const second = await get(gwPort, '/1');
  t.equal(second.status, 503);
  t.equal(second.body, 'upstream connect error or disconnect/reset before headers. reset reason: overflow');
  t.equal(stat(gw, 'upstream_rq_pending_overflow'), 1);
  up.release();
  t.equal((await first).status, 200);
  t.equal((await get(gwPort, '/2')).status, 200, 'below the limit again');
  t.same(up.seen, ['/0', '/2']);
  t.equal(stat(gw, 'upstream_rq_active'), 0);
});

t.test('a host pool with no connection opens one even at maxConnections, counted once (Envoy)', async (t) => {
  // Two hosts, maxConnections 1 for the cluster: the first request holds host A's connection; the
  // second goes to host B (round robin), whose pool has none. Envoy's conn pool opens one anyway
  // ("to prevent pending streams being queued to this upstream with no way to be processed").
  const a = await slowUpstream(t);
  const b = await slowUpstream(t);
  const gwPort = await freePort();
  const config = oneUpstreamConfig({ gwPort, upstreamPort: a.port }).replace(
    `endpoints: [{ address: 127.0.0.1, ports: { http: ${a.port} } }]`,
    `endpoints: [{ address: 127.0.0.1, ports: { http: ${a.port} } }, { address: 127.0.0.1, ports: { http: ${b.port} } }]`,
  ) + `---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: dr, namespace: default }
spec:
  host: up.example
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
    connectionPool:
      tcp: { maxConnections: 1 }
`;
  const gw = await startTestRuntime(t, config);
  const first = get(gwPort, '/0');
  await until(() => a.seen.length + b.seen.length === 1, 'the first request at an upstream');
  const second = get(gwPort, '/1');
  await until(() => a.seen.length + b.seen.length === 2, 'the second request at the other upstream');
  t.same([a.seen.length, b.seen.length], [1, 1], 'one request at each host, both in flight');
  t.equal(stat(gw, 'upstream_cx_overflow'), 1, 'the limit was hit once (and not counted again by the connect)');
  t.equal(stat(gw, 'upstream_cx_total'), 2);
  a.release();
  b.release();
  t.same((await Promise.all([first, second])).map((r) => r.status), [200, 200]);
});
