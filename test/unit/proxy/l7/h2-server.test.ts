// HTTP/2 downstream through a real gateway, with real clients: curl --http2-prior-knowledge on the
// plain HTTP port (h2c preface detected, as Envoy's codec_type AUTO), curl --http2 on the
// TLS-terminating HTTPS port (ALPN h2), nghttp with many streams on one connection, and node:http2
// for multiplexed requests with bodies. The same routes as HTTP/1.1 (a 404 NR is the same 404 NR),
// access-log lines with protocol HTTP/2, and Envoy's downstream_cx_http2_total /
// downstream_rq_http2_total.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { makeCa, makeLeaf, type CertFiles } from '../../../e2e/harness/certs';
import { freePort, startTestRuntime } from '../../../helpers/gateway';
import { onPath } from '../../../helpers/system-packages';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-h2-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
let ca: CertFiles;
let leaf: CertFiles;
t.before(async () => {
  ca = await makeCa(dir, 'ca');
  leaf = await makeLeaf(dir, ca, { cn: 'up.example', dnsNames: ['up.example'], name: 'gw' });
});

function config(httpPort: number, httpsPort: number, upstreamPort: number): string {
  return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: up, namespace: default }
spec:
  hosts: [up.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${upstreamPort} } }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  selector: { istio: egressgateway }
  servers:
  - port: { number: ${httpPort}, name: http, protocol: HTTP }
    hosts: [up.example]
  - port: { number: ${httpsPort}, name: https, protocol: HTTPS }
    hosts: [up.example]
    tls: { mode: SIMPLE, serverCertificate: ${leaf.certFile}, privateKey: ${leaf.keyFile} }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: vs, namespace: default }
spec:
  hosts: [up.example]
  gateways: [gw]
  http:
  - match: [{ uri: { prefix: /app } }]
    route: [{ destination: { host: up.example, port: { number: 80 } } }]
`;
}

async function upstream(t: { teardown(fn: () => unknown): void }): Promise<{ port: number; seen: { url: string; host: string; body: number; cookie: string }[] }> {
  const seen: { url: string; host: string; body: number; cookie: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = 0;
    req.on('data', (c: Buffer) => (body += c.length));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', host: req.headers.host ?? '', body, cookie: String(req.headers.cookie ?? '') });
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.end(`hello ${req.url} ${body}`);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return { port: (server.address() as net.AddressInfo).port, seen };
}

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

t.test('curl over h2c prior knowledge and over TLS with ALPN h2; same routes as HTTP/1.1', async (t) => {
  const up = await upstream(t);
  const httpPort = await freePort();
  const httpsPort = await freePort();
  const gw = await startTestRuntime(t, config(httpPort, httpsPort, up.port));

  const h2c = await run('curl', ['-sS', '--http2-prior-knowledge', '-w', '\\n%{http_version} %{response_code}', '-H', 'host: up.example', `http://127.0.0.1:${httpPort}/app/x`]);
  t.equal(h2c.stdout, 'hello /app/x 0\n2 200', 'h2c prior knowledge: 200 over HTTP/2 ' + h2c.stderr);

  const tls = await run('curl', ['-sS', '--http2', '--cacert', ca.certFile, '--resolve', `up.example:${httpsPort}:127.0.0.1`, '-w', '\\n%{http_version} %{response_code}', `https://up.example:${httpsPort}/app/tls`]);
  t.equal(tls.stdout, 'hello /app/tls 0\n2 200', 'ALPN negotiated h2 on the terminating port ' + tls.stderr);

  const h1 = await run('curl', ['-sS', '--http1.1', '-w', '\\n%{http_version} %{response_code}', '-H', 'host: up.example', `http://127.0.0.1:${httpPort}/app/h1`]);
  t.equal(h1.stdout, 'hello /app/h1 0\n1.1 200', 'the same port still speaks HTTP/1.1');

  const nr = await run('curl', ['-sS', '--http2-prior-knowledge', '-w', '%{http_version} %{response_code}', '-o', '/dev/null', '-H', 'host: up.example', `http://127.0.0.1:${httpPort}/other`]);
  t.equal(nr.stdout, '2 404', 'no route: the same 404 NR over h2');

  t.same(up.seen.map((s) => s.host), ['up.example', `up.example:${httpsPort}`, 'up.example'], ':authority became Host upstream');
  const hp = 'http.outbound_0.0.0.0_' + httpPort + '.';
  t.equal(gw.stat(hp + 'downstream_cx_http2_total'), 2, 'two h2c connections on the plain port');
  t.equal(gw.stat(hp + 'downstream_cx_http1_total'), 1, 'and one HTTP/1.1');
  t.equal(gw.stat(hp + 'downstream_rq_http2_total'), 2);
  t.equal(gw.stat(hp + 'downstream_rq_http1_total'), 1);
  t.equal(gw.stat('http.outbound_0.0.0.0_' + httpsPort + '.downstream_cx_http2_total'), 1, 'one h2 connection over TLS');
  const lines = await gw.lines();
  t.ok(lines.some((l) => /"GET \/app\/x HTTP\/2" 200 - via_upstream /.test(l)), 'access log says HTTP/2');
  t.ok(lines.some((l) => /"GET \/other HTTP\/2" 404 NR route_not_found /.test(l)), 'NR logged for the h2 stream');
  t.ok(lines.some((l) => /"GET \/app\/h1 HTTP\/1\.1" 200 /.test(l)));
});


t.test('node:http2: many multiplexed streams with bodies on one connection; cookies joined for HTTP/1.1', async (t) => {
  const up = await upstream(t);
  const httpPort = await freePort();
  const gw = await startTestRuntime(t, config(httpPort, await freePort(), up.port));
  const session = http2.connect(`http://127.0.0.1:${httpPort}`);
  t.teardown(() => session.destroy());
  const one = (i: number): Promise<{ status: number; body: string; cookies: unknown }> => new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': `/app/${i}`, ':authority': 'up.example', cookie: ['x=1', 'y=2'] });
    let body = '';
    let status = 0;
    let cookies: unknown;
    req.on('response', (h) => {
      status = Number(h[':status']);
      cookies = h['set-cookie'];
    });
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => resolve({ status, body, cookies }));
    req.on('error', reject);
    // A body of unknown length (no content-length): chunked to the HTTP/1.1 upstream.
    req.write(Buffer.alloc(1000 * i, 1));
    setImmediate(() => req.end(Buffer.alloc(5, 2)));
  });
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => one(i + 1)));
  for (let i = 0; i < 20; i++) {
    t.equal(results[i]!.status, 200);
    t.equal(results[i]!.body, `hello /app/${i + 1} ${1000 * (i + 1) + 5}`, `stream ${i + 1}: its own body, whole`);
  }
  t.same(results[0]!.cookies, ['a=1', 'b=2'], 'two set-cookie fields come back as two');
  t.ok(up.seen.every((s) => s.cookie === 'x=1; y=2'), 'split cookie fields joined into one Cookie line upstream');
  t.equal(gw.stat('http.outbound_0.0.0.0_' + httpPort + '.downstream_cx_http2_total'), 1, 'one connection carried them all');
  t.equal(gw.stat('http.outbound_0.0.0.0_' + httpPort + '.downstream_rq_http2_total'), 20);
});

t.test('nghttp: concurrent streams with prior knowledge', { skip: onPath('nghttp') ? false : 'nghttp (nghttp2-client) not installed' }, async (t) => {
  const up = await upstream(t);
  const httpPort = await freePort();
  await startTestRuntime(t, config(httpPort, await freePort(), up.port));
  const urls = Array.from({ length: 10 }, (_, i) => `http://127.0.0.1:${httpPort}/app/n${i}`);
  const r = await run('nghttp', ['-n', '-s', '-H', ':authority: up.example', ...urls]);
  t.equal(r.code, 0, 'nghttp succeeded ' + r.stderr);
  t.equal((r.stdout.match(/\/app\/n\d/g) ?? []).length, 10, 'ten streams completed: ' + r.stdout.slice(0, 400));
  t.equal(up.seen.length, 10);
});
