// Request targets as RFC 9112 §3.2 defines them, through a real gateway: an absolute-form target is
// routed by its own authority and forwarded in origin form with that Host (a disagreeing Host header
// never reaches its route), HTTP/2-only shapes on an HTTP/1.1 connection get 400, and a request
// whose chunked body breaks after it started streaming closes that upstream connection instead of
// returning it to the pool.

import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { TargetForm, parseRequestTarget } from '../../../../proxy/l7/request-target';
import { freePort, rawExchange, startTestRuntime } from '../../../helpers/gateway';

t.test('the parser knows the four forms and refuses the rest', async (t) => {
  t.same(parseRequestTarget('GET', '/a?b'), { form: TargetForm.ORIGIN, authority: null, path: '/a?b' });
  t.same(parseRequestTarget('GET', 'http://x.example:8080/p?q'), { form: TargetForm.ABSOLUTE, authority: 'x.example:8080', path: '/p?q' });
  t.same(parseRequestTarget('GET', 'HTTPS://x.example'), { form: TargetForm.ABSOLUTE, authority: 'x.example', path: '/' });
  t.same(parseRequestTarget('GET', 'http://x.example?q'), { form: TargetForm.ABSOLUTE, authority: 'x.example', path: '/?q' });
  t.same(parseRequestTarget('GET', 'http://[::1]:80/'), { form: TargetForm.ABSOLUTE, authority: '[::1]:80', path: '/' });
  t.same(parseRequestTarget('CONNECT', 'x.example:443'), { form: TargetForm.AUTHORITY, authority: 'x.example:443', path: '' });
  t.same(parseRequestTarget('OPTIONS', '*'), { form: TargetForm.ASTERISK, authority: null, path: '*' });
  for (const [m, target] of [
    ['PRI', '*'], ['PRI', '/'], ['GET', '*'], ['GET', 'x.example:80'], ['GET', 'ftp://x.example/'],
    ['GET', 'http://user@x.example/'], ['GET', 'http:///p'], ['GET', 'http://x.example/#f'], ['GET', 'http://a b/'],
    ['CONNECT', 'x.example'], ['CONNECT', 'x.example:0'], ['CONNECT', 'x.example:99999'], ['CONNECT', '/'],
  ] as const) t.equal(parseRequestTarget(m, target), null, `${m} ${target} is refused`);
});

function config(gwPort: number, allowedPort: number, otherPort: number): string {
  const se = (name: string, port: number): string => `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${port} } }]
---`;
  return `${se('allowed', allowedPort)}${se('other', otherPort)}
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  selector: { istio: egressgateway }
  servers: [{ port: { number: ${gwPort}, name: http, protocol: HTTP }, hosts: [allowed.example, other.example] }]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: allowed, namespace: default }
spec:
  hosts: [allowed.example]
  gateways: [gw]
  http: [{ route: [{ destination: { host: allowed.example, port: { number: 80 } } }] }]
`;
}

interface Seen { url: string; host: string; body: string }

async function upstream(t: { teardown(fn: () => unknown): void }, name: string): Promise<{ port: number; seen: Seen[]; closedConnections: () => number; connections: () => number }> {
  const seen: Seen[] = [];
  let connections = 0;
  let closed = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', host: req.headers.host ?? '', body });
      res.end(name);
    });
    req.on('error', () => undefined);
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: net.Socket) => {
    connections++;
    s.on('close', () => closed++);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, seen, closedConnections: () => closed, connections: () => connections };
}

t.test('absolute-form is routed by its authority and forwarded in origin form', async (t) => {
  const allowed = await upstream(t, 'allowed');
  const other = await upstream(t, 'other');
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, config(gwPort, allowed.port, other.port));

  // The target names other.example (no route on this gateway); Host names the allowed one.
  const confused = await rawExchange(gwPort, 'GET http://other.example/x HTTP/1.1\r\nHost: allowed.example\r\nConnection: close\r\n\r\n');
  t.match(confused, /^HTTP\/1\.1 404 /, 'routed by the target authority (no route for it): 404, not the Host\'s route');
  t.equal(allowed.seen.length, 0, 'the Host\'s upstream never saw it');
  t.equal(other.seen.length, 0, 'nor did the target\'s (it has no route here)');

  const ok = await rawExchange(gwPort, 'GET http://allowed.example/y?z=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n');
  t.match(ok, /^HTTP\/1\.1 200 [^]*allowed$/, 'the target\'s route answers');
  t.same(allowed.seen, [{ url: '/y?z=1', host: 'allowed.example', body: '' }], 'origin form upstream, Host set to the target authority');

  const lines = await gw.lines();
  t.ok(lines.some((l) => /"GET \/x HTTP\/1\.1" 404 NR route_not_found .*"other\.example"/.test(l)), 'the refusal is logged with the target authority');
  t.ok(lines.some((l) => /"GET \/y\?z=1 HTTP\/1\.1" 200 .*"allowed\.example"/.test(l)), 'the routed one too');
});

t.test('HTTP/2-only shapes and bad targets on HTTP/1.1 get 400 and reach nobody', async (t) => {
  const allowed = await upstream(t, 'allowed');
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, config(gwPort, allowed.port, allowed.port));
  for (const line of ['PRI * HTTP/1.1', 'PRI / HTTP/1.1', 'GET * HTTP/1.1', 'GET ftp://allowed.example/ HTTP/1.1', 'GET http://u@allowed.example/ HTTP/1.1', 'CONNECT allowed.example HTTP/1.1']) {
    const r = await rawExchange(gwPort, `${line}\r\nHost: allowed.example\r\n\r\n`);
    t.match(r, /^HTTP\/1\.1 400 /, `${line}: 400`);
  }
  const connect = await rawExchange(gwPort, 'CONNECT allowed.example:443 HTTP/1.1\r\nHost: allowed.example:443\r\n\r\n');
  t.match(connect, /^HTTP\/1\.1 404 /, 'CONNECT on a gateway HTTP port: no connect route, 404 NR');
  t.equal(allowed.seen.length, 0, 'nothing was forwarded');
  const lines = await gw.lines();
  t.ok(lines.some((l) => /"PRI \* HTTP\/1\.1" 400 DPE http1\.invalid_url/.test(l)), 'PRI is logged as a DPE');
  const after = await rawExchange(gwPort, 'GET / HTTP/1.1\r\nHost: allowed.example\r\nConnection: close\r\n\r\n');
  t.match(after, /^HTTP\/1\.1 200 /, 'still serving');
});

t.test('a chunked body that breaks mid-stream closes that upstream connection; it is never reused', async (t) => {
  const allowed = await upstream(t, 'allowed');
  const gwPort = await freePort();
  await startTestRuntime(t, config(gwPort, allowed.port, allowed.port));
  // Warm one pooled connection, so the bad request gets a reused one (the case that matters).
  const warm = await rawExchange(gwPort, 'GET /warm HTTP/1.1\r\nHost: allowed.example\r\nConnection: close\r\n\r\n');
  t.match(warm, /^HTTP\/1\.1 200 /);
  t.equal(allowed.connections(), 1);

  // One good chunk (streamed upstream at once), then a malformed size line instead of the last chunk.
  for (const bad of ['5\r\nhello\r\nZZ\r\n\r\n', '5\r\nhelloXX0\r\n\r\n', '5\r\nhello\r\n0\n\n']) {
    const before = allowed.closedConnections();
    const r = await rawExchange(gwPort, 'POST /up HTTP/1.1\r\nHost: allowed.example\r\nTransfer-Encoding: chunked\r\n\r\n' + bad);
    t.match(r, /^HTTP\/1\.1 400 /, `${JSON.stringify(bad)}: the client gets 400`);
    // The upstream connection that carried the half body is closed by the proxy.
    for (let i = 0; i < 100 && allowed.closedConnections() === before; i++) await new Promise((res) => setTimeout(res, 20));
    t.equal(allowed.closedConnections(), before + 1, 'the upstream connection that got the partial body was closed');
  }
  const nextConns = allowed.connections();
  const next = await rawExchange(gwPort, 'GET /next HTTP/1.1\r\nHost: allowed.example\r\nConnection: close\r\n\r\n');
  t.match(next, /^HTTP\/1\.1 200 /, 'the next request is served');
  t.equal(allowed.connections(), nextConns + 1, 'on a new upstream connection');
  t.notOk(allowed.seen.some((s) => s.url === '/up'), 'the upstream never took a broken body as a complete request');
});
