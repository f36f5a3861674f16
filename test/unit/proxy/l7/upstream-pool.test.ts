// Upstream keep-alive pooling on the fast path: plain and TLS-originated connections are reused
// across requests (also after a large, back-pressured body), big bodies read slowly arrive intact
// over plain TCP and over TLS (both read into the connection's own buffer), a connection the
// upstream closed while idle is replaced without failing the request, and `Connection: close` from
// the upstream is honoured. Pools are per host, and per SNI too when the cluster originates TLS.

import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { Cluster } from '../../../../config/compile/snapshot';
import { poolFor } from '../../../../proxy/l7/h1-upstream';
import { ClusterStats, StatsStore } from '../../../../proxy/observe/stats';
import { UpstreamCluster } from '../../../../proxy/upstream/cluster';
import { UpstreamHost } from '../../../../proxy/upstream/host';
import { makeCa, makeLeaf } from '../../../e2e/harness/certs';
import { freePort, startTestRuntime } from '../../../helpers/gateway';

function config(gwPort: number, upPort: number, tls: string | null): string {
  return `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: up, namespace: default }
spec:
  hosts: [up.example]
  ports: [{ number: 443, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${upPort} } }]
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  selector: { istio: egressgateway }
  servers: [{ port: { number: ${gwPort}, name: http, protocol: HTTP }, hosts: [up.example] }]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: vs, namespace: default }
spec:
  hosts: [up.example]
  gateways: [gw]
  http: [{ route: [{ destination: { host: up.example, port: { number: 443 } } }] }]
${tls === null ? '' : `---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: dr, namespace: default }
spec:
  host: up.example
  trafficPolicy:
    tls: { mode: SIMPLE, caCertificates: ${tls} }
`}`;
}

const BIG = Buffer.alloc(300_000, 'x');

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.url === '/close') {
    res.writeHead(200, { connection: 'close', 'content-length': '2' });
    res.end('ok');
    return;
  }
  const body = req.url === '/big' ? BIG : Buffer.from('small');
  res.writeHead(200, { 'content-length': String(body.length) });
  res.end(body);
}

function get(port: number, p: string): Promise<{ status: number; length: number }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, headers: { host: 'up.example' }, agent: false }, (res) => {
      let length = 0;
      res.on('data', (c: Buffer) => (length += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, length }));
    }).on('error', reject);
  });
}

async function listen(t: { teardown(fn: () => unknown): void }, server: http.Server | https.Server): Promise<{ port: number; connections: () => number }> {
  let n = 0;
  server.on('connection', () => n++);
  server.on('secureConnection', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); }));
  return { port: (server.address() as net.AddressInfo).port, connections: () => n };
}

t.test('plain upstream: one connection for several requests, big bodies included', async (t) => {
  const up = await listen(t, http.createServer(handler));
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, config(gwPort, up.port, null));
  for (const p of ['/a', '/big', '/b', '/big', '/c']) {
    const r = await get(gwPort, p);
    t.equal(r.status, 200);
    t.equal(r.length, p === '/big' ? BIG.length : 5, `${p}: whole body`);
  }
  t.equal(up.connections(), 1, 'the upstream saw one connection');
  t.equal(gw.stat('cluster.outbound|443||up.example.upstream_cx_total'), 1);
});

// Every byte differs from its neighbours, so a read buffer reused under a queued write would show.
const PATTERN = Buffer.alloc(2 * 1024 * 1024);
for (let i = 0; i < PATTERN.length; i++) PATTERN[i] = (i * 7 + (i >> 11)) & 0xff;

function bodyOf(port: number, p: string, pauseMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, headers: { host: 'up.example' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
      // A client that does not read at first: the proxy's downstream writes queue up.
      res.pause();
      setTimeout(() => res.resume(), pauseMs);
    }).on('error', reject);
  });
}

function patterned(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.url === '/chunked') res.writeHead(200);
  else res.writeHead(200, { 'content-length': String(PATTERN.length) });
  for (let at = 0; at < PATTERN.length; at += 100_000) res.write(PATTERN.subarray(at, at + 100_000));
  res.end();
}

/** An HTTPS upstream with a certificate for up.example from a CA made for the test; its CA file for the DestinationRule. */
async function tlsUpstream(t: { teardown(fn: () => unknown): void }, h: http.RequestListener): Promise<{ port: number; connections: () => number; caFile: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-pool-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ca = await makeCa(dir, 'pool-test');
  const leaf = await makeLeaf(dir, ca, { cn: 'up.example' });
  const up = await listen(t, https.createServer({ cert: fs.readFileSync(leaf.certFile), key: fs.readFileSync(leaf.keyFile) }, h));
  return { ...up, caFile: ca.certFile };
}

for (const origination of ['plain', 'TLS-originated'] as const) {
  t.test(`${origination} upstream: big bodies read slowly by the client arrive intact, sized and chunked`, async (t) => {
    // Over TLS the reader gets the decrypted records in pieces, several per socket read (buffers
    // kept by queued downstream writes: response-reader.test.ts).
    const up = origination === 'plain' ? { ...(await listen(t, http.createServer(patterned))), caFile: null } : await tlsUpstream(t, patterned);
    const gwPort = await freePort();
    await startTestRuntime(t, config(gwPort, up.port, up.caFile));
    for (const p of ['/sized', '/chunked', '/sized']) {
      const body = await bodyOf(gwPort, p, 100);
      t.equal(body.length, PATTERN.length, `${p}: whole body`);
      t.ok(body.equals(PATTERN), `${p}: every byte as sent`);
    }
    t.equal(up.connections(), 1, 'over one pooled connection');
  });
}

t.test('TLS-originated upstream: the pooled connection is reused after a big body', async (t) => {
  const up = await tlsUpstream(t, handler);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, config(gwPort, up.port, up.caFile));
  for (const p of ['/big', '/big', '/a']) {
    const r = await get(gwPort, p);
    t.equal(r.status, 200);
    t.equal(r.length, p === '/big' ? BIG.length : 5, `${p}: whole body`);
  }
  t.equal(up.connections(), 1, 'one TCP connection reached the upstream');
  t.equal(gw.stat('cluster.outbound|443||up.example.ssl.handshake'), 1, 'one TLS handshake');
});

t.test('an upstream that closes: Connection: close is honoured, the next request opens a new connection', async (t) => {
  const up = await listen(t, http.createServer(handler));
  const gwPort = await freePort();
  await startTestRuntime(t, config(gwPort, up.port, null));
  t.equal((await get(gwPort, '/close')).status, 200);
  t.equal((await get(gwPort, '/a')).status, 200);
  t.equal(up.connections(), 2, 'a second connection after the close');
});

t.test('an idle pooled connection the upstream closed is replaced without failing the request', async (t) => {
  const server = http.createServer(handler);
  const up = await listen(t, server);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, config(gwPort, up.port, null));
  for (let i = 0; i < 5; i++) {
    t.equal((await get(gwPort, '/a')).status, 200, `request ${i}`);
    server.closeIdleConnections(); // FIN races the next request: either way it must succeed
  }
  t.equal(up.connections(), 5, 'a new connection after each close');
  t.equal(gw.stat('cluster.outbound|443||up.example.upstream_rq_503'), undefined, 'no 503');
});

t.test('pools: one per host; with TLS origination one per host and SNI', async (t) => {
  const store = new StatsStore();
  const config = (name: string, tls: Cluster['tls']): Cluster => ({
    name, sniName: '', type: 'STATIC', host: 'up.example', port: 443, subset: '', protocol: 'HTTP',
    endpoints: [], lb: { kind: 'ROUND_ROBIN' }, connectTimeoutMs: 1000, idleTimeoutMs: 0, maxRequestsPerConnection: 0,
    tcpKeepalive: null, dnsRefreshMs: 60_000,
    circuitBreakers: { maxConnections: 4294967295, maxPendingRequests: 4294967295, maxRequests: 4294967295, maxRetries: 4294967295 },
    tls, emptyReason: null,
  });
  const plain = new UpstreamCluster(config('outbound|443||plain', null), new ClusterStats(store, 'outbound|443||plain'));
  const tls = { mode: 'SIMPLE', sni: null, autoSni: false, caFile: null, certFile: null, keyFile: null, subjectAltNames: [], insecureSkipVerify: false, alpn: [] } as const;
  const originating = new UpstreamCluster(config('outbound|443||tls', tls), new ClusterStats(store, 'outbound|443||tls'));
  t.teardown(() => {
    plain.close();
    originating.close();
  });
  const h1 = new UpstreamHost('127.0.0.1', 443, '', null);
  const h2 = new UpstreamHost('127.0.0.2', 443, '', null);
  // Request SNIs are fresh strings each time (cut from the Host header): the same name, another string.
  const name = (s: string): string => [...s].join('');

  const p = poolFor(plain, h1, 'a.example', store);
  t.equal(poolFor(plain, h1, 'b.example', store), p, 'plain TCP: the SNI plays no part');
  t.equal(p.sni, null, 'and a plain pool has none');
  t.not(poolFor(plain, h2, 'a.example', store), p, 'another host, another pool');

  const a = poolFor(originating, h1, 'a.example', store);
  t.equal(a.sni, 'a.example', 'a TLS pool handshakes with its SNI');
  t.equal(poolFor(originating, h1, name('a.example'), store), a, 'TLS: the same host and SNI, the same pool');
  t.not(poolFor(originating, h1, 'b.example', store), a, 'another SNI, another pool');
  t.not(poolFor(originating, h2, 'a.example', store), a, 'another host, another pool');
});
