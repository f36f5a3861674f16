// The TCP proxy end to end in-process: a real gateway Runtime on loopback with Istio YAML, real
// upstream servers, real client sockets. Weighted splits, LB policies through the whole path
// (endpoint ports by name, per-subset policy), the connection circuit breaker (UO), connect
// failure and timeout (UF,URX), and the idle timeout; each on bare handles and on net.Sockets.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { freePort, startTestRuntime, type TestGateway } from '../../../helpers/gateway';
import { watchedCount } from '../../../../proxy/l4/tcp-proxy';
import { handleSessionCount } from '../../../../proxy/l4/handle-proxy';
import { makeCa, makeLeaf } from '../../../e2e/harness/certs';
import { resetTcpHandlesForTests, tcpHandles, tcpHandlesUnavailableReason } from '../../../../proxy/transport/tcp-handle';

interface Upstream {
  readonly port: number;
  readonly sockets: Set<net.Socket>;
  accepted: number;
}

/** Writes `name\n` on connect; then echoes; keeps the socket until the client closes. */
async function upstream(t: { teardown(fn: () => unknown): void }, name: string): Promise<Upstream> {
  const u: Upstream = { port: 0, sockets: new Set(), accepted: 0 };
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    u.accepted++;
    u.sockets.add(s);
    s.on('close', () => u.sockets.delete(s));
    s.on('error', () => {});
    s.write(name + '\n');
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of u.sockets) s.destroy();
    server.close();
  });
  return Object.assign(u, { port: (server.address() as net.AddressInfo).port });
}

/** Connect, read the first line (the upstream's name), close. '' when the proxy closed first. */
function firstLine(port: number, localAddress?: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', ...(localAddress === undefined ? {} : { localAddress }) });
    let data = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      data += d;
      const i = data.indexOf('\n');
      if (i >= 0) {
        s.destroy();
        resolve(data.slice(0, i));
      }
    });
    s.on('error', () => {});
    s.on('close', () => resolve(data.includes('\n') ? data.slice(0, data.indexOf('\n')) : ''));
  });
}

function gatewayYaml(port: number, rest: string): string {
  return `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec:
  selector: { istio: egressgateway }
  servers:
  - port: { number: ${port}, name: tcp, protocol: TCP }
    hosts: ["*"]
${rest}`;
}

function staticService(host: string, endpoints: string): string {
  return `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${host.split('.')[0]} }
spec:
  hosts: [${host}]
  ports: [{ number: 9000, name: tcp-main, protocol: TCP }]
  resolution: STATIC
  endpoints:
${endpoints}
`;
}

/** A VirtualService `name` sending every TCP connection on the gateway to `name`.test:9000. */
function tcpRouteAllTo(name: string): string {
  return `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name} }
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - route: [{ destination: { host: ${name}.test, port: { number: 9000 } } }]`;
}

/** A VirtualService sending TCP connections on the gateway to host:9000 by the given weights. */
function weightedSplit(weights: Record<string, number>): string {
  return `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: split }
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - route:
${Object.entries(weights).map(([host, weight]) => `    - { destination: { host: ${host}, port: { number: 9000 } }, weight: ${weight} }`).join('\n')}
`;
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * An echo listener (half-close aware) in a stopped process with a full accept queue: the kernel
 * drops further SYNs (tcp_conn_request: accept queue full -> drop), so a connect to it hangs until
 * a timeout, or until `release()` lets the process accept and the client's SYN retransmission
 * (about 1 s after the first) gets through.
 */
async function stuckListener(t: { teardown(fn: () => unknown): void }): Promise<{ port: number; release(): void }> {
  const child = spawn(process.execPath, ['-e', `
    const net = require('node:net');
    const srv = net.createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => {}); s.pipe(s); });
    srv.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => console.log(srv.address().port));
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  });
  const port = await new Promise<number>((r) => child.stdout.once('data', (d: Buffer) => r(Number(String(d).trim()))));
  child.kill('SIGSTOP');
  const fillers: net.Socket[] = [];
  t.teardown(() => fillers.forEach((s) => s.destroy()));
  for (let i = 0; i < 4; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 100));
  return { port, release: () => child.kill('SIGCONT') };
}

// Every scenario runs on both TCP transports: bare handles (the fast path, where Node has the
// bindings) and net.Sockets (SLUICE_TCP_HANDLES=off, and what a Node without them uses). The
// scenarios below are the body of that loop (not indented, to keep their YAML literals as written).
for (const transport of ['handles', 'sockets'] as const) {
t.test(`TCP proxy on ${transport}`, async (tt) => {
process.env['SLUICE_TCP_HANDLES'] = transport === 'handles' ? 'on' : 'off';
resetTcpHandlesForTests();
const before = handleSessionCount();
tt.teardown(() => {
  delete process.env['SLUICE_TCP_HANDLES'];
  resetTcpHandlesForTests();
});
if (transport === 'handles') tt.ok(tcpHandles() !== null, `this Node gives bare TCP handles (${tcpHandlesUnavailableReason() || 'yes'})`);

tt.test('weighted split 80/20 over 1000 connections lands within 5 binomial sd', async (t) => {
  const a = await upstream(t, 'a');
  const b = await upstream(t, 'b');
  const port = await freePort();
  const gw = await startTestRuntime(t, gatewayYaml(port, `
${staticService('a.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${a.port} }`)}
${staticService('b.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${b.port} }`)}
${weightedSplit({ 'a.test': 80, 'b.test': 20 })}`));
  const n = 1000;
  const counts: Record<string, number> = { a: 0, b: 0, '': 0 };
  for (let i = 0; i < n; i += 25) {
    const batch = await Promise.all(Array.from({ length: 25 }, () => firstLine(port)));
    for (const name of batch) counts[name] = (counts[name] ?? 0) + 1;
  }
  t.equal(counts[''], 0, 'every connection reached an upstream');
  // Binomial(1000, 0.8): sd = sqrt(1000 * 0.8 * 0.2) = 12.6. ±63 (5 sd) fails by chance ~6e-7.
  t.ok(Math.abs(counts.a! - 800) <= 63, `a got ${counts.a} of ${n} (80% expected, 737..863 accepted)`);
  t.equal(counts.a! + counts.b!, n);
  t.equal(gw.stat('cluster.outbound|9000||a.test.upstream_cx_total'), counts.a, 'cluster a counted its connections');
  t.equal(gw.stat('cluster.outbound|9000||b.test.upstream_cx_total'), counts.b, 'cluster b counted its connections');
});

// The weighted pick happens once, whatever carries the bytes: a cluster that the handle path cannot
// carry (TLS origination, or no such cluster) must not make the connection be routed again.
tt.test('50/50 between a plain and a TLS-originating cluster, and between a cluster and a missing one, over 2000 connections each', async (t) => {
  const a = await upstream(t, 'a');
  const pki = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-split-'));
  t.teardown(() => fs.rmSync(pki, { recursive: true, force: true }));
  const ca = await makeCa(pki, 'ca');
  const leaf = await makeLeaf(path.join(pki, 'tls'), ca, { cn: 'tls.test', dnsNames: ['tls.test'] });
  const tlsUp = tls.createServer({ key: fs.readFileSync(leaf.keyFile), cert: fs.readFileSync(leaf.certFile) }, (s) => {
    s.on('error', () => {});
    s.end('tls\n');
  });
  await new Promise<void>((r) => tlsUp.listen(0, '127.0.0.1', r));
  t.teardown(() => tlsUp.close());
  const services = `
${staticService('a.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${a.port} }`)}
${staticService('tls.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${(tlsUp.address() as net.AddressInfo).port} }`)}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: tls }
spec:
  host: tls.test
  trafficPolicy:
    tls: { mode: SIMPLE, sni: tls.test, caCertificates: ${ca.certFile} }
`;
  const split = (other: string): string => weightedSplit({ 'a.test': 50, [other]: 50 });
  const n = 2000;
  // Binomial(2000, 0.5): sd = sqrt(2000 * 0.25) = 22.4; 4 sd = ±89.
  const within4sd = (k: number | undefined): boolean => Math.abs((k ?? 0) - n / 2) <= 89;
  async function run(port: number): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, () => firstLine(port)));
      for (const name of batch) counts[name] = (counts[name] ?? 0) + 1;
    }
    return counts;
  }

  const port = await freePort();
  const gw = await startTestRuntime(t, gatewayYaml(port, services + split('tls.test')));
  const mixed = await run(port);
  t.equal(mixed[''] ?? 0, 0, 'every connection reached an upstream');
  t.ok(within4sd(mixed['a']) && within4sd(mixed['tls']), `plain ${mixed['a']} / TLS-originating ${mixed['tls']} of ${n} (1000 ± 89 each accepted)`);
  t.equal(gw.stat('cluster.outbound|9000||tls.test.upstream_cx_total'), mixed['tls'], 'the TLS cluster counted its connections');

  const port2 = await freePort();
  const gw2 = await startTestRuntime(t, gatewayYaml(port2, services + split('missing.test')));
  const half = await run(port2);
  t.ok(within4sd(half['a']) && within4sd(half['']), `existing ${half['a']} / missing (closed) ${half['']} of ${n} (1000 ± 89 each accepted)`);
  const lines = await gw2.lines();
  t.equal(lines.filter((l) => /"- - -" 0 NC /.test(l)).length, half[''], 'each connection to the missing cluster is logged NC');
});

tt.test('ROUND_ROBIN over endpoint ports by name, and a subset overriding the LB with consistentHash', async (t) => {
  const ups = [await upstream(t, 'u0'), await upstream(t, 'u1'), await upstream(t, 'u2')];
  const port = await freePort();
  const eps = ups.map((u, i) => `  - address: 127.0.0.1\n    ports: { tcp-main: ${u.port} }\n    labels: { idx: "${i}", group: g }`).join('\n');
  const gw = await startTestRuntime(t, gatewayYaml(port, `
${staticService('rr.test', eps)}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: rr }
spec:
  host: rr.test
  trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } }
  subsets:
  - name: sticky
    labels: { group: g }
    trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true } } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: rr }
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - match: [{ port: ${port} }]
    route: [{ destination: { host: rr.test, port: { number: 9000 } } }]
`));
  const seq: string[] = [];
  for (let i = 0; i < 6; i++) seq.push(await firstLine(port));
  t.same(seq, ['u0', 'u1', 'u2', 'u0', 'u1', 'u2'], 'round robin, each endpoint on its named port');
  t.ok(gw.rt, 'runtime up');

  // Same world, but routed to the sticky subset: one source IP, one host.
  const port2 = await freePort();
  const gw2 = await startTestRuntime(t, gatewayYaml(port2, `
${staticService('rr.test', eps)}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: rr }
spec:
  host: rr.test
  trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } }
  subsets:
  - name: sticky
    labels: { group: g }
    trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true } } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: rr }
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - route: [{ destination: { host: rr.test, subset: sticky, port: { number: 9000 } } }]
`));
  const sticky = new Set<string>();
  for (let i = 0; i < 12; i++) sticky.add(await firstLine(port2));
  t.equal(sticky.size, 1, `consistentHash by source IP: all 12 connections from 127.0.0.1 on one host (${[...sticky]})`);
  t.equal(gw2.stat('cluster.outbound|9000|sticky|rr.test.upstream_cx_total'), 12);
});

tt.test('maxConnections: the connection over the limit is refused with UO and upstream_cx_overflow', async (t) => {
  const u = await upstream(t, 'u');
  const port = await freePort();
  const gw = await startTestRuntime(t, gatewayYaml(port, `
${staticService('limited.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${u.port} }`)}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: limited }
spec:
  host: limited.test
  trafficPolicy: { connectionPool: { tcp: { maxConnections: 2 } } }
${tcpRouteAllTo('limited')}
`));
  const held: net.Socket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  for (let i = 0; i < 2; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    held.push(s);
    await new Promise<void>((r) => s.once('data', () => r()));
  }
  t.equal(await firstLine(port), '', 'third concurrent connection: closed without reaching the upstream');
  t.equal(u.accepted, 2, 'the upstream saw only two connections');
  t.equal(gw.stat('cluster.outbound|9000||limited.test.upstream_cx_overflow'), 1, 'upstream_cx_overflow counted');
  const lines = await gw.lines();
  t.ok(lines.some((l) => /"- - -" 0 UO - - "-" 0 0 /.test(l) && l.includes('outbound|9000||limited.test')), 'access log: UO');
  held[0]!.destroy();
  await waitFor(() => gw.stat('cluster.outbound|9000||limited.test.upstream_cx_active') === 1, 'a slot to free');
  t.equal(await firstLine(port), 'u', 'with a slot free, a new connection goes through');
});

tt.test('connect refused and connect timeout: UF,URX, upstream_cx_connect_fail / _connect_timeout', async (t) => {
  // A port with nothing listening: refused at once.
  const closedPort = await freePort();
  const stuckPort = (await stuckListener(t)).port;

  const port = await freePort();
  const port2 = await freePort();
  const gw = await startTestRuntime(t, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec:
  selector: { istio: egressgateway }
  servers:
  - port: { number: ${port}, name: tcp, protocol: TCP }
    hosts: ["*"]
  - port: { number: ${port2}, name: tcp2, protocol: TCP }
    hosts: ["*"]
${staticService('refused.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${closedPort} }`)}
${staticService('stuck.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${stuckPort} }`)}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: stuck }
spec:
  host: stuck.test
  trafficPolicy: { connectionPool: { tcp: { connectTimeout: 200ms } } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: fail }
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - match: [{ port: ${port} }]
    route: [{ destination: { host: refused.test, port: { number: 9000 } } }]
  - match: [{ port: ${port2} }]
    route: [{ destination: { host: stuck.test, port: { number: 9000 } } }]
`);
  t.equal(await firstLine(port), '', 'refused: the client is closed');
  t.equal(gw.stat('cluster.outbound|9000||refused.test.upstream_cx_connect_fail'), 1);
  t.equal(await firstLine(port2), '', 'timeout: the client is closed');
  t.equal(gw.stat('cluster.outbound|9000||stuck.test.upstream_cx_connect_timeout'), 1, 'upstream_cx_connect_timeout');
  t.equal(gw.stat('cluster.outbound|9000||stuck.test.upstream_cx_connect_fail'), 1, 'a timeout is also a connect failure');
  const lines = await gw.lines();
  t.ok(lines.some((l) => /"- - -" 0 UF,URX - - "ECONNREFUSED" /.test(l) && l.includes('refused.test')), 'refused: UF,URX with the transport failure reason');
  t.ok(lines.some((l) => /"- - -" 0 UF,URX - - "connection_timeout" /.test(l) && l.includes('stuck.test')), 'timeout: UF,URX connection_timeout');
});

tt.test('bytes, a half-close and a reset sent while the upstream still connects', async (t) => {
  const stuck = await stuckListener(t);
  const port = await freePort();
  const gw = await startTestRuntime(t, gatewayYaml(port, `
${staticService('slow.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${stuck.port} }`)}
${tcpRouteAllTo('slow')}
`));
  const active = (): number | undefined => gw.stat(`listener.0.0.0.0_${port}.downstream_cx_active`);
  // One client says something and half-closes: it must get its echo and the upstream's FIN.
  const halfClosed = new Promise<string>((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let got = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.end('said before the upstream answered'));
    s.on('data', (d: string) => (got += d));
    s.on('end', () => resolve(got));
    s.on('error', () => resolve(`error: ${got}`));
  });
  // The other says something and resets.
  const reset = net.connect({ port, host: '127.0.0.1' });
  reset.on('error', () => {});
  reset.on('connect', () => reset.write('gone', () => setTimeout(() => reset.resetAndDestroy(), 50)));
  await waitFor(() => reset.destroyed, 'the reset');
  await new Promise((r) => setTimeout(r, 100));
  if (transport === 'handles') t.equal(active(), 1, 'the reset downstream is closed at once (it was being read), the half-closed one is open');
  t.equal(await Promise.race([halfClosed, new Promise((r) => setTimeout(r, 10, 'pending'))]), 'pending', 'no answer yet: the upstream is still connecting');
  stuck.release();
  t.equal(await halfClosed, 'said before the upstream answered', 'the early bytes and the FIN reached the upstream after its connect');
  await waitFor(() => active() === 0, 'both downstreams closed');
  await waitFor(async () => (await gw.lines()).length === 2, 'two log lines');
  const lines = await gw.lines();
  t.ok(lines.some((l) => /"- - -" 0 DC /.test(l)), `the reset one ended as DC: ${lines.join(' | ')}`);
  t.ok(lines.some((l) => /"- - -" 0 - - - "-" 33 33 /.test(l)), 'the half-closed one: 33 bytes each way, no flags');
  t.equal(gw.stat('cluster.outbound|9000||slow.test.upstream_cx_total'), 2);
});

tt.test('TLS passthrough by SNI: each name reaches its upstream, the handshake end to end; an unknown name is NR', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-sni-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ca = await makeCa(dir, 'sni-ca');
  const upstreams: Record<string, number> = {};
  for (const name of ['a', 'b']) {
    const leaf = await makeLeaf(dir, ca, { cn: `${name}.sni.test`, dnsNames: [`${name}.sni.test`] });
    // Each upstream answers with its own name inside TLS, so a wrong route fails the handshake or the answer.
    const server = tls.createServer({ cert: fs.readFileSync(leaf.certFile), key: fs.readFileSync(leaf.keyFile) }, (s) => { s.on('error', () => {}); s.end(`hello from ${name}\n`); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.teardown(() => server.close());
    upstreams[name] = (server.address() as net.AddressInfo).port;
  }
  const port = await freePort();
  const gw = await startTestRuntime(t, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec:
  selector: { istio: egressgateway }
  servers:
  - port: { number: ${port}, name: tls, protocol: TLS }
    hosts: [a.sni.test, b.sni.test]
    tls: { mode: PASSTHROUGH }
${staticService('a.sni.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${upstreams['a']} }`)}
${staticService('b.sni.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${upstreams['b']} }`)}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: by-sni }
spec:
  hosts: [a.sni.test, b.sni.test]
  gateways: [gw]
  tls:
  - match: [{ port: ${port}, sniHosts: [a.sni.test] }]
    route: [{ destination: { host: a.sni.test, port: { number: 9000 } } }]
  - match: [{ port: ${port}, sniHosts: [b.sni.test] }]
    route: [{ destination: { host: b.sni.test, port: { number: 9000 } } }]
`);
  const ask = (servername: string) => new Promise<string>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca: fs.readFileSync(ca.certFile) });
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (got += d));
    s.on('end', () => resolve(got));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
  });
  const sessionsBefore = handleSessionCount();
  for (let i = 0; i < 3; i++) {
    t.equal(await ask('a.sni.test'), 'hello from a\n', 'a.sni.test: verified handshake with upstream a, its answer');
    t.equal(await ask('b.sni.test'), 'hello from b\n', 'b.sni.test: verified handshake with upstream b, its answer');
  }
  t.equal(handleSessionCount() - sessionsBefore, transport === 'handles' ? 6 : 0, `the six passthrough connections took ${transport === 'handles' ? 'bare handles (the ClientHello read on the handle)' : 'sockets'}`);
  t.notMatch(await ask('c.sni.test'), /hello/, 'an SNI no chain matches: closed without an answer');
  t.equal(gw.stat('cluster.outbound|9000||a.sni.test.upstream_cx_total'), 3);
  t.equal(gw.stat('cluster.outbound|9000||b.sni.test.upstream_cx_total'), 3);
  await waitFor(async () => (await gw.lines()).length === 7, 'seven log lines');
  const lines = await gw.lines();
  t.equal(lines.filter((l) => / a\.sni\.test by-sni\.tls\.0$/.test(l)).length, 3, 'the SNI and the route are logged');
  t.ok(lines.some((l) => /"- - -" 0 NR /.test(l)), 'the unknown name is logged as NR');
});

tt.test('tcp idleTimeout closes a silent relay and counts tcp.<prefix>.idle_timeout', async (t) => {
  const u = await upstream(t, 'u');
  const port = await freePort();
  const gw: TestGateway = await startTestRuntime(t, gatewayYaml(port, `
${staticService('idle.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${u.port} }`)}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: idle }
spec:
  host: idle.test
  # http.idleTimeout is the HTTP pool's; only tcp.idleTimeout applies to the TCP proxy.
  trafficPolicy: { connectionPool: { tcp: { idleTimeout: 300ms }, http: { idleTimeout: 1h } } }
${tcpRouteAllTo('idle')}
`));
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  let got = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => (got += d));
  await new Promise<void>((r) => s.once('data', () => r()));
  s.write('ping\n');
  await new Promise<void>((r) => s.once('close', () => r()));
  t.equal(got, 'u\nping\n', 'the relay worked until it went silent, then the proxy closed it');
  t.equal(gw.stat('tcp.outbound|9000||idle.test.idle_timeout'), 1, 'idle_timeout counted');
  await waitFor(() => u.sockets.size === 0, 'the upstream side to close too');
  // The line is written once both sockets have closed: wait for it, then check it.
  await waitFor(async () => (await gw.lines()).some((l) => l.includes('idle.test')), 'the access-log line');
  const line = (await gw.lines()).find((l) => l.includes('idle.test'))!;
  t.match(line, /"- - -" 0 - - tcp_proxy_idle_timeout "-" 5 7 \d+ /, 'logged: termination details, 5 bytes in, 7 out');
});

tt.test('one idle sweep serves many relays: the silent one closes, the busy one stays, both leave the sweep', async (t) => {
  const u = await upstream(t, 'u');
  const port = await freePort();
  const gw: TestGateway = await startTestRuntime(t, gatewayYaml(port, `
${staticService('sweep.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${u.port} }`)}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: sweep }
spec:
  host: sweep.test
  trafficPolicy: { connectionPool: { tcp: { idleTimeout: 1s } } }
${tcpRouteAllTo('sweep')}
`));
  const open = async (): Promise<net.Socket> => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    await new Promise<void>((r) => s.once('data', () => r()));
    return s;
  };
  const silent = await open();
  const busy = await open();
  t.equal(watchedCount(), 2, 'both relays are watched by the sweep');
  // The busy one echoes a byte every 50 ms: far inside its 1 s timeout.
  const ping = setInterval(() => busy.write('.'), 50);
  t.teardown(() => clearInterval(ping));
  await new Promise<void>((r) => silent.once('close', () => r()));
  t.equal(gw.stat('tcp.outbound|9000||sweep.test.idle_timeout'), 1, 'the silent relay timed out');
  // One more full timeout: a sweep that treated every member alike would close the busy one too.
  await new Promise((r) => setTimeout(r, 1300));
  t.notOk(busy.destroyed, 'the busy relay is still open');
  clearInterval(ping);
  await waitFor(() => watchedCount() === 1, 'the timed-out relay to leave the sweep');
  busy.destroy();
  await waitFor(() => watchedCount() === 0, 'the closed relay to leave the sweep');
  t.equal(gw.stat('tcp.outbound|9000||sweep.test.idle_timeout'), 1, 'still one idle timeout');
});

tt.test('access log off: no records, and routes and LB still see the addresses (read from the socket on demand)', async (t) => {
  const ups = [await upstream(t, 'u0'), await upstream(t, 'u1'), await upstream(t, 'u2')];
  const other = await upstream(t, 'other');
  const port = await freePort();
  const eps = ups.map((u) => `  - address: 127.0.0.1\n    ports: { tcp-main: ${u.port} }`).join('\n');
  const gw = await startTestRuntime(t, gatewayYaml(port, `
${staticService('hashed.test', eps)}
${staticService('other.test', `  - address: 127.0.0.1\n    ports: { tcp-main: ${other.port} }`)}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: hashed }
spec:
  host: hashed.test
  trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true } } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: by-address }
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - match: [{ destinationSubnets: [198.18.0.0/15] }]
    route: [{ destination: { host: other.test, port: { number: 9000 } } }]
  - match: [{ destinationSubnets: [127.0.0.0/8] }]
    route: [{ destination: { host: hashed.test, port: { number: 9000 } } }]
`), { accessLog: 'off' });
  const bySource = new Map<string, Set<string>>();
  for (let i = 2; i < 10; i++) {
    const src = `127.0.0.${i}`;
    const got = new Set<string>();
    for (let k = 0; k < 3; k++) got.add(await firstLine(port, src));
    bySource.set(src, got);
  }
  const hosts = new Set([...bySource.values()].flatMap((g) => [...g]));
  t.notOk(hosts.has('other'), 'the gateway address (127.0.0.1) did not match 198.18.0.0/15');
  t.ok([...bySource.values()].every((g) => g.size === 1), 'each source IP sticks to one host');
  t.ok(hosts.size >= 2, `the hash saw the source IPs: 8 sources spread over ${[...hosts].join(', ')}`);
  t.equal(gw.stat('cluster.outbound|9000||hashed.test.upstream_cx_total'), 24);
  t.same(await gw.lines(), [], 'no access-log lines');
});

tt.test(`the connections above took the ${transport} path`, async (t) => {
  if (transport === 'handles') t.ok(handleSessionCount() - before > 1000, `fast-path sessions: ${handleSessionCount() - before}`);
  else t.equal(handleSessionCount(), before, 'no connection on bare handles');
});
});
}
