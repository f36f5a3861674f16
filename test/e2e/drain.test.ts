// SIGTERM drains, as Istio's terminationDrainDuration: a real `sluice run` process (at --concurrency
// 1 and 2) on loopback, a real curl with a request in flight, readiness polled on 15021-style
// health port. Loopback only: no namespaces, no root needed.
//   - readiness goes 503 at once, listeners keep accepting, new responses carry Connection: close;
//   - the in-flight 3 s request completes with 200;
//   - the process exits 0 at the end of the drain duration (not before the request is done), with a
//     log line; a second SIGTERM closes what is left at once;
//   - a TCP session carries bytes during the drain and is closed (logged) when it ends;
//   - readiness is 503 with the reason while a configured port is taken by someone else.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePort, oneUpstreamConfig, rawExchange } from '../helpers/gateway';

const CLI = path.join(__dirname, '..', '..', 'proxy', 'cli.js');
const DRAIN_MS = 5000;
const SLOW_MS = 3000;

type Teardown = { teardown(fn: () => unknown): void };

interface Running {
  readonly child: ChildProcess;
  readonly gwPort: number;
  readonly healthPort: number;
  readonly adminPort: number;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; at: number }>;
}

/** A slow upstream: answers /slow after SLOW_MS, anything else at once. `arrived` resolves when /slow came in. */
async function slowUpstream(t: Teardown): Promise<{ port: number; arrived: Promise<void> }> {
  let arrived!: () => void;
  const p = new Promise<void>((r) => (arrived = r));
  const server = http.createServer((req, res) => {
    if (req.url === '/slow') {
      arrived();
      setTimeout(() => res.end('slow done\n'), SLOW_MS);
    } else res.end('quick\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, arrived: p };
}

async function startSluice(t: Teardown, gwPort: number, configText: string, concurrency: number): Promise<Running> {
  const [healthPort, adminPort] = [await freePort(), await freePort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-drain-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'c.yaml'), configText);
  const child = spawn(process.execPath, [CLI, 'run', '--role', 'gateway', '--labels', 'istio=egressgateway', '--config', dir,
    '--admin', `127.0.0.1:${adminPort}`, '--prometheus-port', 'off', '--health-port', String(healthPort),
    '--concurrency', String(concurrency), '--drain-duration', `${DRAIN_MS}ms`, '--access-log', 'off'], {
    env: { ...process.env, NODE_OPTIONS: '', SLUICE_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<{ code: number | null; at: number }>((r) => child.once('exit', (code) => r({ code, at: Date.now() })));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const end = Date.now() + 20_000;
  while (!stderr.includes('sluice is live')) {
    if (Date.now() > end || child.exitCode !== null) throw new Error('sluice did not start:\n' + stderr);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, gwPort, healthPort, adminPort, stderr: () => stderr, exited };
}

function get(port: number, p: string, host = 'up.example'): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, headers: { host, connection: 'keep-alive' }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** curl, as a client would run it; resolves with its exit code, the status it printed and the body. */
function curl(port: number, p: string): Promise<{ exit: number | null; out: string; doneAt: number }> {
  return new Promise((resolve) => {
    const c = spawn('curl', ['-sS', '--max-time', '20', '-H', 'Host: up.example', '-w', '\n%{http_code}', `http://127.0.0.1:${port}${p}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    c.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    c.on('exit', (exit) => resolve({ exit, out, doneAt: Date.now() }));
  });
}

for (const concurrency of [1, 2]) {
  t.test(`SIGTERM drains at --concurrency ${concurrency}`, async (t) => {
    const up = await slowUpstream(t);
    const gwPort = await freePort();
    const s = await startSluice(t, gwPort, oneUpstreamConfig({ gwPort, upstreamPort: up.port }), concurrency);
    t.equal((await get(s.healthPort, '/healthz/ready')).status, 200, 'ready before SIGTERM');
    const before = await get(s.gwPort, '/quick');
    t.equal(before.status, 200);
    t.not(before.connection, 'close', 'keep-alive before the drain');

    const inflight = curl(s.gwPort, '/slow');
    await up.arrived;
    const termAt = Date.now();
    s.child.kill('SIGTERM');
    // Readiness flips at once (the next probe); poll briefly for the signal to be handled.
    let ready = 0;
    for (let i = 0; i < 40 && ready !== 503; i++) {
      ready = (await get(s.healthPort, '/healthz/ready')).status;
      if (ready !== 503) await new Promise((r) => setTimeout(r, 25));
    }
    t.equal(ready, 503, '/healthz/ready is 503 during the drain');
    const adminReady = await get(s.adminPort, '/ready', 'admin');
    t.equal(adminReady.status, 503, 'admin /ready is 503 during the drain');
    t.match(adminReady.body, /^DRAINING\n/);

    const during = await get(s.gwPort, '/quick');
    t.equal(during.status, 200, 'a new connection during the drain is still accepted and served');
    t.equal(during.connection, 'close', 'and its HTTP/1.1 response carries Connection: close');

    const r = await inflight;
    t.equal(r.exit, 0, 'curl succeeded: the in-flight request was not cut');
    t.match(r.out, /slow done\n\n200$/, 'the in-flight request completed with 200');
    const { code, at } = await s.exited;
    t.equal(code, 0, 'exit 0 after the drain');
    t.ok(at >= r.doneAt, 'the process exited after the in-flight request completed');
    t.ok(at - termAt <= DRAIN_MS + 2000, `exited ${at - termAt} ms after SIGTERM (drain duration ${DRAIN_MS} ms)`);
    t.ok(at - termAt >= DRAIN_MS - 200, 'listeners were kept for the whole drain duration');
    t.match(s.stderr(), /SIGTERM: draining for 5000 ms/, 'a log line says the drain began');
    t.match(s.stderr(), /drain period over/, 'and one that it ended');
  });
}

t.test('a second SIGTERM closes what is left at once', async (t) => {
  const up = await slowUpstream(t);
  const gwPort = await freePort();
  const s = await startSluice(t, gwPort, oneUpstreamConfig({ gwPort, upstreamPort: up.port }), 1);
  const inflight = curl(s.gwPort, '/slow');
  await up.arrived;
  s.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  const secondAt = Date.now();
  s.child.kill('SIGTERM');
  const { code, at } = await s.exited;
  const r = await inflight;
  t.equal(code, 0, 'exit 0');
  t.ok(at - secondAt < SLOW_MS, `exited ${at - secondAt} ms after the second SIGTERM, before the slow response`);
  t.not(r.exit, 0, `the in-flight request was cut (curl exit ${r.exit})`);
  t.match(s.stderr(), /second SIGTERM: closing 1 connection\(s\) still open/, 'a log line says what was closed');
});

for (const concurrency of [1, 2]) {
  t.test(`readiness is 503 while a configured port is unbound (--concurrency ${concurrency})`, async (t) => {
    // Occupy the port first, on the address sluice binds: EADDRINUSE.
    const blocker = net.createServer();
    const taken = await freePort();
    await new Promise<void>((r) => blocker.listen(taken, '0.0.0.0', r));
    t.teardown(() => blocker.close());
    const up = await slowUpstream(t);
    const s = await startSluice(t, taken, oneUpstreamConfig({ gwPort: taken, upstreamPort: up.port }), concurrency);
    const health = await get(s.healthPort, '/healthz/ready');
    t.equal(health.status, 503, '/healthz/ready 503');
    t.match(health.body, new RegExp(`listener 0\\.0\\.0\\.0_${taken} is not bound: .*EADDRINUSE`), 'with the reason');
    const ready = await get(s.adminPort, '/ready', 'admin');
    t.equal(ready.status, 503, 'admin /ready 503');
    t.match(ready.body, new RegExp(`^LIVE\\nlistener 0\\.0\\.0\\.0_${taken} is not bound: .*EADDRINUSE`), '/ready says which listener and why');
    // Two signals: no drain to wait for (the drain is tested above).
    s.child.kill('SIGTERM');
    s.child.kill('SIGTERM');
    t.equal((await s.exited).code, 0);
  });
}

t.test('no Connection: close before a drain on a raw keep-alive exchange', async (t) => {
  // The drain is what adds the header: a plain pipelined pair of requests is answered keep-alive.
  const up = await slowUpstream(t);
  const gwPort = await freePort();
  const s = await startSluice(t, gwPort, oneUpstreamConfig({ gwPort, upstreamPort: up.port }), 1);
  const text = await rawExchange(s.gwPort, 'GET /quick HTTP/1.1\r\nhost: up.example\r\n\r\nGET /quick HTTP/1.1\r\nhost: up.example\r\nconnection: close\r\n\r\n');
  t.equal(text.match(/HTTP\/1\.1 200/g)?.length, 2, 'both answered on one connection');
  t.equal(text.match(/connection: close/gi)?.length, 1, 'only the response to the request that asked for it closes');
  s.child.kill('SIGTERM');
  s.child.kill('SIGTERM');
  t.equal((await s.exited).code, 0);
});

t.test('a TCP session goes on during the drain and is closed, with a log line, when it ends', async (t) => {
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => echo.close());
  const gwPort = await freePort();
  const config = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  selector: { istio: egressgateway }
  servers: [{ port: { number: ${gwPort}, name: tcp, protocol: TCP }, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: default }
spec:
  hosts: [echo.test]
  ports: [{ number: 9000, name: tcp-main, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tcp-main: ${(echo.address() as net.AddressInfo).port} } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: echo, namespace: default }
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp: [{ route: [{ destination: { host: echo.test, port: { number: 9000 } } }] }]
`;
  const s = await startSluice(t, gwPort, config, 1);
  const client = net.connect(gwPort, '127.0.0.1');
  client.setEncoding('utf8');
  let received = '';
  client.on('data', (d: string) => (received += d));
  const closed = new Promise<number>((r) => client.on('close', () => r(Date.now())));
  client.on('error', () => {});
  const echoed = async (text: string): Promise<boolean> => {
    client.write(text);
    for (let i = 0; i < 100 && !received.endsWith(text); i++) await new Promise((r) => setTimeout(r, 20));
    return received.endsWith(text);
  };
  t.ok(await echoed('before;'), 'the session works');
  const termAt = Date.now();
  s.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1000));
  t.ok(await echoed('during;'), 'a second into the drain the session still carries bytes');
  const closedAt = await closed;
  const { code } = await s.exited;
  t.equal(code, 0);
  t.ok(closedAt - termAt >= DRAIN_MS - 200, `the session was closed at the end of the drain (${closedAt - termAt} ms after SIGTERM)`);
  t.match(s.stderr(), /drain period over: closing 1 connection\(s\) still open/, 'a log line says what was closed');
});
