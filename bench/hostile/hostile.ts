// The hostile-client benchmark (issue 19): one gateway worker under attack on loopback, beside nginx
// (one worker) under the same attack. Not a test: figures only, on whatever load the machine has.
//   npm run build && node dist/bench/hostile/hostile.js      (root: installs nginx if missing)
// Knobs: SLOWLORIS (3000), NON_READERS (200), OVERSIZED (20), FLOOD (2000), DURATION_S (30),
// HEADER_TIMEOUT_S (10: shorter than the 60 s default so a run ends in bounded time; both peers
// get the same), PEERS (sluice,nginx).
//
// Attack (from a child process, so the measuring client's event loop is not the attacker's; the
// upstream has a process of its own too):
//   - SLOWLORIS connections send a request line, then one header line per second, never the end;
//   - NON_READERS clients ask for 8 MiB and never read;
//   - OVERSIZED clients send a 1 MiB header block;
//   - once those are in (non-readers first, then slowloris, then the oversized heads, so the flood
//     comes while the slow connections are still open), FLOOD more connections are opened at
//     once, past the proxy's connection limit (sluice: --max-downstream-connections; nginx:
//     worker_connections), and held.
// Meanwhile one well-behaved client sends GET /small every 100 ms on a keep-alive connection opened
// before the attack. Reported: its p50/p99/max latency and failures, when each slow-header
// connection was closed and with what, the flood's fate, peak RSS, the load average.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ensurePeers, NOFILE, withNofile } from '../macro/peers';

const env = (k: string, d: number): number => Number(process.env[k] ?? d);
const SLOWLORIS = env('SLOWLORIS', 3000);
const NON_READERS = env('NON_READERS', 200);
const OVERSIZED = env('OVERSIZED', 20);
const FLOOD = env('FLOOD', 2000);
const DURATION_S = env('DURATION_S', 30);
const HEADER_TIMEOUT_S = env('HEADER_TIMEOUT_S', 10);
const MIB = 1024 * 1024;
/** The proxy's connection limit: room for the attack's long-lived connections, not for the flood. */
const CONN_LIMIT = SLOWLORIS + NON_READERS + OVERSIZED + 100;

interface AttackReport {
  slowClosedAt: number[]; // s after the slowloris connection opened; -1 = still open at the end
  slow408: number;
  slowOpenFailed: number;
  oversizedStatus: Record<string, number>;
  floodClosedAtOnce: number; // closed by the proxy within 1 s, no byte
  floodHeld: number;
  floodFailed: number;
}

// ------------------------------------------------------------------ attacker (child process)

async function attacker(port: number): Promise<void> {
  const r: AttackReport = { slowClosedAt: [], slow408: 0, slowOpenFailed: 0, oversizedStatus: {}, floodClosedAtOnce: 0, floodHeld: 0, floodFailed: 0 };
  const sockets: net.Socket[] = [];
  const open = (): Promise<net.Socket | null> =>
    new Promise((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      s.once('connect', () => resolve(s));
      s.once('error', () => resolve(null));
    });
  // Non-readers: ask for 8 MiB, never read.
  for (let i = 0; i < NON_READERS; i++) {
    const s = await open();
    if (s === null) continue;
    sockets.push(s);
    s.pause();
    s.write('GET /big HTTP/1.1\r\nHost: hostile.test\r\n\r\n');
  }
  // Slowloris: in batches, so the kernel's accept queue is not the thing measured.
  const slowDone: Promise<void>[] = [];
  for (let i = 0; i < SLOWLORIS; i++) {
    const s = await open();
    if (s === null) {
      r.slowOpenFailed++;
      continue;
    }
    sockets.push(s);
    const opened = performance.now();
    let n = 0;
    s.write('GET /small HTTP/1.1\r\nHost: hostile.test\r\n');
    const timer = setInterval(() => s.write(`x-slow-${n++}: ${'a'.repeat(20)}\r\n`), 1000);
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (got += d));
    slowDone.push(new Promise((resolve) => s.on('close', () => {
      clearInterval(timer);
      r.slowClosedAt.push((performance.now() - opened) / 1000);
      if (got.startsWith('HTTP/1.1 408')) r.slow408++;
      resolve();
    })));
  }
  // Oversized heads: a 1 MiB header block.
  for (let i = 0; i < OVERSIZED; i++) {
    const s = await open();
    if (s === null) continue;
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (got += d));
    s.on('close', () => {
      const status = /^HTTP\/1\.1 (\d+)/.exec(got)?.[1] ?? 'closed';
      r.oversizedStatus[status] = (r.oversizedStatus[status] ?? 0) + 1;
    });
    s.write('GET /small HTTP/1.1\r\nHost: hostile.test\r\nx-big: ' + 'b'.repeat(MIB) + '\r\n\r\n');
  }
  // Flood past the limit, all at once.
  await Promise.all(Array.from({ length: FLOOD }, async () => {
    const s = await open();
    if (s === null) {
      r.floodFailed++;
      return;
    }
    const t0 = performance.now();
    let closedAtOnce = false;
    s.on('close', () => {
      if (performance.now() - t0 < 1000) closedAtOnce = true;
    });
    await new Promise((res) => setTimeout(res, 1500));
    if (closedAtOnce) r.floodClosedAtOnce++;
    else {
      r.floodHeld++;
      sockets.push(s);
    }
  }));
  process.send?.({ t: 'attacking' });
  await new Promise((res) => process.once('message', res)); // "stop"
  for (const s of sockets) if (!s.destroyed && r.slowClosedAt.length < SLOWLORIS) s.destroy();
  await Promise.race([Promise.all(slowDone), new Promise((res) => setTimeout(res, 2000))]);
  while (r.slowClosedAt.length < SLOWLORIS - r.slowOpenFailed) r.slowClosedAt.push(-1);
  await new Promise<void>((res) => process.send?.({ t: 'report', report: r }, undefined, undefined, () => res()));
  process.exit(0);
}

// ------------------------------------------------------------------ the measured side

/** The upstream, in a process of its own: pushing 8 MiB answers must not slow the measuring client. */
function serveUpstream(): void {
  const big = Buffer.alloc(8 * MIB, 'x');
  const server = http.createServer((req, res) => {
    if (req.url === '/big') res.end(big);
    else res.end('small answer\n');
  });
  server.keepAliveTimeout = 600_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`PORT ${(server.address() as net.AddressInfo).port}\n`));
}

function upstream(): Promise<{ port: number; close: () => void }> {
  const child = spawn(process.execPath, [__filename, '--upstream'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve({ port: Number(m[1]), close: () => child.kill() });
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function rssOf(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect({ port, host: '127.0.0.1' }, () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

function sluiceConfig(port: number, up: number): string {
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: egressgateway }
  servers: [{ port: { number: ${port}, name: http, protocol: HTTP }, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: up, namespace: istio-system }
spec:
  hosts: [hostile.test]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${up} } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: up, namespace: istio-system }
spec:
  hosts: ["*"]
  gateways: [gw]
  http: [{ route: [{ destination: { host: hostile.test, port: { number: 80 } } }] }]
`;
}

function nginxConfig(port: number, up: number, dir: string): string {
  return `daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile ${NOFILE};
error_log ${dir}/nginx-error.log crit;
pid ${dir}/nginx.pid;
events { worker_connections ${CONN_LIMIT}; }
http {
  access_log off;
  client_body_temp_path ${dir}/b; proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;
  client_header_timeout ${HEADER_TIMEOUT_S}s;
  keepalive_timeout 120s;
  upstream up { server 127.0.0.1:${up}; keepalive 64; }
  server { listen 127.0.0.1:${port}; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
`;
}

async function startPeer(name: string, dir: string, up: number): Promise<{ port: number; child: ChildProcess; counters: () => Promise<string> }> {
  const port = await freePort();
  if (name === 'sluice') {
    const cfg = path.join(dir, 'sluice.yaml');
    fs.writeFileSync(cfg, sluiceConfig(port, up));
    const admin = await freePort();
    // HOSTILE_PROFILE=DIR: a V8 CPU profile of sluice (written when it stops; HOSTILE_STOP_SIGNAL=SIGINT).
    const profile = process.env['HOSTILE_PROFILE'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['HOSTILE_PROFILE']}`] : [];
    const [cmd, argv] = withNofile(process.execPath, [...profile, path.join(__dirname, '..', '..', 'proxy', 'cli.js'), 'run', '--role', 'gateway', '--labels', 'istio=egressgateway', '--config', cfg, '--concurrency', '1', '--access-log', 'off', '--admin', `127.0.0.1:${admin}`, '--prometheus-port', 'off', '--health-port', 'off', '--request-headers-timeout', `${HEADER_TIMEOUT_S}s`, '--max-downstream-connections', String(CONN_LIMIT)]);
    const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SLUICE_LOG_LEVEL: 'error' } });
    await waitPort(port);
    const counters = async (): Promise<string> => {
      const text = await new Promise<string>((resolve) => http.get({ port: admin, host: '127.0.0.1', path: '/stats?filter=header_timeout|cx_overflow|overload' }, (res) => {
        let b = '';
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve(b));
      }).on('error', () => resolve('')));
      return text.trim().split('\n').filter((l) => !/: 0$/.test(l)).join(', ');
    };
    return { port, child, counters };
  }
  fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxConfig(port, up, dir));
  const [cmd, argv] = withNofile('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir]);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitPort(port);
  return { port, child, counters: () => Promise.resolve('') };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function measure(name: string, up: number): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-hostile-'));
  const peer = await startPeer(name, dir, up);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (): Promise<number> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const req = http.get({ port: peer.port, host: '127.0.0.1', path: '/small', headers: { host: 'hostile.test' }, agent, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200 ? performance.now() - t0 : -1));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(-1));
    });
  await get(); // the keep-alive connection, before the attack
  const load0 = os.loadavg()[0]!;
  const atk = spawn(process.execPath, [__filename, '--attacker', String(peer.port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const latencies: number[] = [];
  let failures = 0;
  let peakRss = 0;
  const started = performance.now();
  const client = setInterval(() => {
    void get().then((ms) => (ms < 0 ? failures++ : latencies.push(ms)));
    peakRss = Math.max(peakRss, rssOf(peer.child.pid!));
  }, 100);
  const attacking = new Promise<number>((r) => atk.once('message', () => r((performance.now() - started) / 1000)));
  await new Promise((r) => setTimeout(r, DURATION_S * 1000));
  const counters = await peer.counters();
  clearInterval(client);
  const rampS = await Promise.race([attacking, Promise.resolve(-1)]);
  const report = new Promise<AttackReport>((r) => atk.on('message', (m: { t: string; report?: AttackReport }) => m.t === 'report' && r(m.report!)));
  atk.send('stop');
  const rep = await report;
  const load1 = os.loadavg()[0]!;
  peer.child.kill(process.env['HOSTILE_STOP_SIGNAL'] === 'SIGINT' ? 'SIGINT' : 'SIGKILL');
  atk.kill();
  agent.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
  const sorted = latencies.sort((a, b) => a - b);
  const closed = rep.slowClosedAt.filter((s) => s >= 0);
  const byTimeout = closed.filter((s) => s >= HEADER_TIMEOUT_S - 0.5 && s <= HEADER_TIMEOUT_S + 3).length;
  return [
    `${name}: well-behaved client ${sorted.length} ok / ${failures} failed; p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${(sorted[sorted.length - 1] ?? NaN).toFixed(1)} ms`,
    `  slowloris ${SLOWLORIS}: ${closed.length} closed by the proxy (${byTimeout} within [${HEADER_TIMEOUT_S - 0.5}, ${HEADER_TIMEOUT_S + 3}] s of opening, ${rep.slow408} with a 408), ${rep.slowClosedAt.length - closed.length} still open at ${DURATION_S} s, ${rep.slowOpenFailed} could not connect; closed after min ${Math.min(...closed).toFixed(1)} s, max ${Math.max(...closed).toFixed(1)} s`,
    `  oversized heads ${OVERSIZED}: ${JSON.stringify(rep.oversizedStatus)}; flood ${FLOOD}: ${rep.floodClosedAtOnce} closed at once, ${rep.floodHeld} held open, ${rep.floodFailed} failed to connect; attack in place after ${rampS < 0 ? '(not yet)' : rampS.toFixed(1) + ' s'}`,
    `  peak RSS ${(peakRss / MIB).toFixed(0)} MiB; load average ${load0.toFixed(1)} -> ${load1.toFixed(1)} (${os.cpus().length} cores)${counters ? `; stats: ${counters}` : ''}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const peers = (process.env['PEERS'] ?? 'sluice,nginx').split(',');
  const have = ensurePeers((s) => process.stderr.write(s + '\n'));
  const up = await upstream();
  process.stdout.write(`hostile clients: ${SLOWLORIS} slowloris + ${NON_READERS} non-readers + ${OVERSIZED} oversized heads + a flood of ${FLOOD}; header timeout ${HEADER_TIMEOUT_S} s (the default is 60 s: shortened so a run ends in bounded time), connection limit ${CONN_LIMIT}, ${DURATION_S} s per peer, fd limit ${NOFILE}\n`);
  for (const p of peers) {
    if (p === 'nginx' && !have.nginx) continue;
    process.stdout.write((await measure(p, up.port)) + '\n');
  }
  up.close();
}

if (process.argv[2] === '--attacker') void attacker(Number(process.argv[3]));
else if (process.argv[2] === '--upstream') serveUpstream();
else void main().then(() => process.exit(0));
