// gRPC through a real gateway: a node:http2 gRPC-shaped client (length-prefixed messages,
// te: trailers, application/grpc) over h2c to the gateway, and a node:http2 upstream declared as a
// GRPC port, so sluice speaks HTTP/2 to it on one pooled connection. Trailers (grpc-status,
// grpc-message) pass through, trailers-only responses too; local replies are gRPC statuses (NR ->
// 12 UNIMPLEMENTED, a refused upstream -> 14 UNAVAILABLE); grpc-timeout bounds the call;
// maxRequestsPerConnection opens a new connection after that many streams.

import fs from 'node:fs';
import http2 from 'node:http2';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { grpcTimeoutMs } from '../../../../proxy/l7/grpc';
import { makeCa, makeLeaf } from '../../../e2e/harness/certs';
import { freePort, startTestRuntime } from '../../../helpers/gateway';

function config(gwPort: number, upstreamPort: number, extra = ''): string {
  return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: greeter, namespace: default }
spec:
  hosts: [greeter.example]
  ports: [{ number: 50051, name: grpc, protocol: GRPC }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { grpc: ${upstreamPort} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: refused, namespace: default }
spec:
  hosts: [refused.example]
  ports: [{ number: 50051, name: grpc-x, protocol: GRPC }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { grpc-x: 1 } }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  selector: { istio: egressgateway }
  servers: [{ port: { number: ${gwPort}, name: grpc, protocol: GRPC }, hosts: [greeter.example, refused.example] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: vs, namespace: default }
spec:
  hosts: [greeter.example, refused.example]
  gateways: [gw]
  http:
  - match: [{ authority: { exact: refused.example } }]
    route: [{ destination: { host: refused.example, port: { number: 50051 } } }]
  - match: [{ uri: { prefix: /greeter.Greeter/ } }]
    route: [{ destination: { host: greeter.example, port: { number: 50051 } } }]
${extra}`;
}

/** A gRPC message frame: compressed flag, 4-byte length, payload (gRPC over HTTP/2, "Length-Prefixed-Message"). */
function message(payload: string): Buffer {
  const p = Buffer.from(payload);
  const b = Buffer.alloc(5 + p.length);
  b.writeUInt32BE(p.length, 1);
  p.copy(b, 5);
  return b;
}

async function grpcUpstream(t: { teardown(fn: () => unknown): void }): Promise<{ port: number; sessions: () => number; protocols: string[] }> {
  let sessions = 0;
  const protocols: string[] = [];
  const server = http2.createServer();
  server.on('session', () => sessions++);
  server.on('stream', (s, headers) => {
    protocols.push(String(headers[':scheme']) + ' ' + String(headers['te']) + ' ' + String(headers['content-type']));
    const path = String(headers[':path']);
    let body = Buffer.alloc(0);
    s.on('data', (c: Buffer) => (body = Buffer.concat([body, c])));
    s.on('end', () => {
      if (path === '/greeter.Greeter/Missing') {
        // trailers-only: the status is in the one HEADERS frame
        s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'no such greeting' }, { endStream: true });
        return;
      }
      if (path === '/greeter.Greeter/Slow') {
        setTimeout(() => s.destroyed || s.close(), 3000).unref();
        return;
      }
      const name = body.subarray(5).toString();
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'OK' }));
      s.end(message('hello ' + name));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, sessions: () => sessions, protocols };
}

interface Call { status: number; headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders | null; body: Buffer }

function call(session: http2.ClientHttp2Session, authority: string, path: string, name: string, extra: http2.OutgoingHttpHeaders = {}): Promise<Call> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': path, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers', ...extra });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | null = null;
    let body = Buffer.alloc(0);
    req.on('response', (h) => (headers = h));
    req.on('trailers', (tr) => (trailers = tr));
    req.on('data', (c: Buffer) => (body = Buffer.concat([body, c])));
    req.on('end', () => resolve({ status: Number(headers[':status']), headers, trailers, body }));
    req.on('error', reject);
    req.end(message(name));
  });
}

t.test('grpc-timeout parsing', async (t) => {
  t.equal(grpcTimeoutMs(['grpc-timeout', '200m']), 200);
  t.equal(grpcTimeoutMs(['Grpc-Timeout', '2S']), 2000);
  t.equal(grpcTimeoutMs(['grpc-timeout', '1H']), 3_600_000);
  t.equal(grpcTimeoutMs(['grpc-timeout', '5u']), 1, 'below a millisecond: 1 ms');
  t.equal(grpcTimeoutMs(['grpc-timeout', '123456789S']), null, 'more than 8 digits: malformed, ignored');
  t.equal(grpcTimeoutMs(['grpc-timeout', '10x']), null);
  t.equal(grpcTimeoutMs(['x', 'y']), null);
});

t.test('a unary call over h2 both ways: trailers pass through; local replies are gRPC statuses', async (t) => {
  const up = await grpcUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, config(gwPort, up.port));
  const session = http2.connect(`http://127.0.0.1:${gwPort}`);
  t.teardown(() => session.destroy());

  const ok = await call(session, 'greeter.example', '/greeter.Greeter/SayHello', 'world');
  t.equal(ok.status, 200);
  t.equal(ok.headers['content-type'], 'application/grpc');
  t.equal(ok.body.subarray(5).toString(), 'hello world', 'the response message');
  t.same(ok.trailers && { s: ok.trailers['grpc-status'], m: ok.trailers['grpc-message'] }, { s: '0', m: 'OK' }, 'grpc-status 0 in the trailers');

  const missing = await call(session, 'greeter.example', '/greeter.Greeter/Missing', 'x');
  t.equal(missing.status, 200);
  t.equal(missing.headers['grpc-status'], '5', 'a trailers-only response keeps its status in the headers');
  t.equal(missing.headers['grpc-message'], 'no such greeting');
  t.equal(missing.body.length, 0);

  const nr = await call(session, 'greeter.example', '/other.Service/Method', 'x');
  t.equal(nr.status, 200, 'NR as gRPC: HTTP 200');
  t.equal(nr.headers['grpc-status'], '12', '404 NR -> 12 UNIMPLEMENTED');
  const refused = await call(session, 'refused.example', '/greeter.Greeter/SayHello', 'x');
  t.equal(refused.headers['grpc-status'], '14', '503 UF -> 14 UNAVAILABLE');
  t.match(decodeURIComponent(String(refused.headers['grpc-message'])), /upstream connect error/);

  const slow = await call(session, 'greeter.example', '/greeter.Greeter/Slow', 'x', { 'grpc-timeout': '300m' });
  t.equal(slow.headers['grpc-status'], '14', 'grpc-timeout 300m ended the call (504 UT -> 14)');

  for (let i = 0; i < 3; i++) await call(session, 'greeter.example', '/greeter.Greeter/SayHello', 'n' + i);
  const cluster = 'cluster.outbound|50051||greeter.example.';
  t.equal(gw.stat(cluster + 'upstream_cx_http2_total'), 1, 'one HTTP/2 upstream connection carried every call');
  t.equal(gw.stat(cluster + 'upstream_cx_total'), 1);
  t.equal(up.sessions(), 1);
  t.ok(up.protocols.every((p) => p === 'http trailers application/grpc'), 'te: trailers and the content type reach the upstream: ' + up.protocols[0]);

  const lines = await gw.lines();
  t.ok(lines.some((l) => /"POST \/greeter\.Greeter\/SayHello HTTP\/2" 200 - via_upstream /.test(l)), 'access-log line over h2');
  t.ok(lines.some((l) => /"POST \/other\.Service\/Method HTTP\/2" 200 NR route_not_found /.test(l)), 'the NR line');
  t.ok(lines.some((l) => /"POST \/greeter\.Greeter\/Slow HTTP\/2" 200 UT /.test(l)), 'the timeout line');
});

t.test('maxRequestsPerConnection: a new upstream connection after that many streams', async (t) => {
  const up = await grpcUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, config(gwPort, up.port, `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: greeter, namespace: default }
spec:
  host: greeter.example
  trafficPolicy: { connectionPool: { http: { maxRequestsPerConnection: 2 } } }
`));
  const session = http2.connect(`http://127.0.0.1:${gwPort}`);
  t.teardown(() => session.destroy());
  for (let i = 0; i < 5; i++) {
    const r = await call(session, 'greeter.example', '/greeter.Greeter/SayHello', 'n' + i);
    t.equal(r.trailers?.['grpc-status'], '0', JSON.stringify([r.status, r.headers, r.body.toString()]));
  }
  t.equal(gw.stat('cluster.outbound|50051||greeter.example.upstream_cx_http2_total'), 3, 'five calls, two per connection: three connections');
  t.equal(up.sessions(), 3);
});

t.test('HTTP/2 over originated TLS: ALPN h2 to a TLS-only gRPC upstream, certificate verified', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-grpc-tls-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ca = await makeCa(dir, 'ca');
  const leaf = await makeLeaf(dir, ca, { cn: 'greeter.example', dnsNames: ['greeter.example'], name: 'up' });
  let alpn: string | false | undefined;
  // allowHTTP1 false: a client that does not negotiate h2 is refused by the server.
  const server = http2.createSecureServer({ cert: fs.readFileSync(leaf.certFile), key: fs.readFileSync(leaf.keyFile), allowHTTP1: false });
  server.on('session', (sess) => (alpn = sess.alpnProtocol));
  server.on('stream', (s) => {
    s.resume();
    s.on('end', () => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
      s.end(message('over tls'));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, config(gwPort, (server.address() as net.AddressInfo).port, `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: greeter, namespace: default }
spec:
  host: greeter.example
  trafficPolicy: { tls: { mode: SIMPLE, sni: greeter.example, caCertificates: ${ca.certFile} } }
`));
  const session = http2.connect(`http://127.0.0.1:${gwPort}`);
  t.teardown(() => session.destroy());
  const r = await call(session, 'greeter.example', '/greeter.Greeter/SayHello', 'x');
  t.equal(r.status, 200);
  t.equal(r.body.subarray(5).toString(), 'over tls');
  t.equal(r.trailers?.['grpc-status'], '0', 'trailers over the TLS h2 upstream');
  t.equal(alpn, 'h2', 'ALPN negotiated h2 with the upstream');
  t.equal(gw.stat('cluster.outbound|50051||greeter.example.upstream_cx_http2_total'), 1);
});
