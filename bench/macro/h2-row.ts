// The HTTP/2 row: h2load (nghttp2-client) drives multiplexed streams over h2c with prior knowledge
// into each proxy, which forwards them over HTTP/2 to one h2c upstream (node:http2, in its own
// process so the proxy's CPU is read alone). Peers, each one process / one thread:
//   sluice   gateway HTTP port -> a ServiceEntry port with `protocol: GRPC` (HTTP/2 upstream pool)
//   nginx    `listen ... http2` + `grpc_pass grpc://` (nginx's only HTTP/2 upstream module)
//   HAProxy  `bind ... proto h2` + `server ... proto h2`
// The request is a gRPC-shaped POST (application/grpc, te: trailers, a 5-byte-prefixed message) and
// the upstream answers with a message and grpc-status 0 trailers, so trailers are carried too.
// Reported per peer: requests/s, CPU-µs per request (CPU from /proc/<pid>/stat), h2load's mean
// time per request. Run: `npm run build && node dist/bench/macro/h2-row.js [--duration 10]
// [--clients 8] [--streams 32]`; peers that are not installed are skipped with a line saying so.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../test/helpers/free-port';
import { haproxyAvailable, nginxAvailable, procCpuSeconds, waitListening, withNofile } from './peers';

const GRPC_MESSAGE = Buffer.from([0, 0, 0, 0, 5, 0x68, 0x65, 0x6c, 0x6c, 0x6f]); // "hello"

/** Child mode: the h2c upstream. */
function serveUpstream(port: number): void {
  const server = http2.createServer({ settings: { maxConcurrentStreams: 10_000 } });
  server.on('stream', (s) => {
    s.on('data', () => undefined);
    s.on('end', () => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
      s.end(GRPC_MESSAGE);
    });
    s.on('error', () => undefined);
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
}

interface RowResult { peer: string; rps: number; cpuUsPerRq: number; meanMs: number | null; note: string }

function sluiceConfig(front: number, upstream: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: h2, namespace: istio-system }
spec:
  hosts: [h2.bench]
  ports: [{ number: 50051, name: grpc, protocol: GRPC }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { grpc: ${upstream} } }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: egressgateway }
  servers: [{ port: { number: ${front}, name: grpc, protocol: GRPC }, hosts: [h2.bench] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: h2, namespace: istio-system }
spec:
  hosts: [h2.bench]
  gateways: [gw]
  http: [{ route: [{ destination: { host: h2.bench, port: { number: 50051 } } }] }]
`;
}

function nginxConfig(front: number, upstream: number, dir: string): string {
  return `daemon off;
master_process off;
worker_processes 1;
error_log ${dir}/nginx-error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  http2_max_concurrent_streams 1024;
  upstream h2_up { server 127.0.0.1:${upstream}; keepalive 512; }
  server {
    listen 127.0.0.1:${front} http2;
    location / { grpc_pass grpc://h2_up; }
  }
}
`;
}

function haproxyConfig(front: number, upstream: number): string {
  return `global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend h2
  bind 127.0.0.1:${front} proto h2
  default_backend up
backend up
  http-reuse always
  server s1 127.0.0.1:${upstream} proto h2
`;
}

async function startPeer(name: string, dir: string, front: number, upstream: number): Promise<ChildProcess> {
  let child: ChildProcess;
  if (name === 'sluice') {
    const cfg = path.join(dir, 'sluice-h2.yaml');
    fs.writeFileSync(cfg, sluiceConfig(front, upstream));
    const admin = await freePort();
    const cli = path.resolve(__dirname, '..', '..', 'proxy', 'cli.js');
    const [cmd, argv] = withNofile(process.execPath, [cli, 'run', '--role', 'gateway', '--labels', 'istio=egressgateway', '--namespace', 'istio-system',
      '--config', cfg, '--admin', `127.0.0.1:${admin}`, '--prometheus-port', 'off', '--health-port', 'off', '--access-log', 'off', '--concurrency', '1']);
    child = spawn(cmd, argv, { stdio: 'ignore', env: { ...process.env, SLUICE_LOG_LEVEL: 'warn' } });
  } else if (name === 'nginx') {
    const cfg = path.join(dir, 'nginx-h2.conf');
    fs.writeFileSync(cfg, nginxConfig(front, upstream, dir));
    child = spawn('nginx', ['-c', cfg, '-p', dir], { stdio: 'ignore' });
  } else {
    const cfg = path.join(dir, 'haproxy-h2.cfg');
    fs.writeFileSync(cfg, haproxyConfig(front, upstream));
    child = spawn('haproxy', ['-db', '-f', cfg], { stdio: 'ignore' });
  }
  await waitListening(front, 15_000);
  return child;
}

/** h2load's summary: "finished in 10.00s, 12345.67 req/s", the done count, and the "time for request" mean. */
function parseH2load(out: string): { rps: number; done: number; ok: number; meanMs: number | null } {
  const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1] ?? 0);
  const done = Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(out)?.[1] ?? 0);
  const m = /time for request:\s+\S+\s+\S+\s+(\S+)/.exec(out);
  const meanMs = m === null ? null : m[1]!.endsWith('ms') ? Number(m[1]!.slice(0, -2)) : m[1]!.endsWith('us') ? Number(m[1]!.slice(0, -2)) / 1000 : Number(m[1]!.slice(0, -1)) * 1000;
  // Only 2xx answers count as work done: a peer that fails requests fast would otherwise look cheap.
  const ok = Number(/status codes: (\d+) 2xx/.exec(out)?.[1] ?? 0);
  return { rps, done, ok, meanMs };
}

async function measure(name: string, pid: number, front: number, o: { durationS: number; clients: number; streams: number; bodyFile: string }): Promise<RowResult> {
  const cpu0 = procCpuSeconds(pid);
  const r = spawnSync('h2load', ['-D', String(o.durationS), '-c', String(o.clients), '-m', String(o.streams), '-d', o.bodyFile,
    '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-H', ':authority: h2.bench', `http://127.0.0.1:${front}/bench.Bench/Echo`], { encoding: 'utf8', timeout: (o.durationS + 30) * 1000 });
  const cpu = procCpuSeconds(pid) - cpu0;
  const p = parseH2load(r.stdout ?? '');
  const okRps = p.done > 0 ? (p.rps * p.ok) / p.done : 0;
  const failed = p.done - p.ok;
  const note = p.ok === 0 ? 'no 2xx answer: ' + (r.stdout ?? '').slice(-300) : failed > 0 ? `${failed} of ${p.done} answers not 2xx (not counted)` : '';
  return { peer: name, rps: okRps, cpuUsPerRq: p.ok > 0 ? Math.round((cpu * 1e6) / p.ok) : 0, meanMs: p.meanMs, note };
}

async function main(): Promise<void> {
  const arg = (n: string, d: number): number => {
    const i = process.argv.indexOf('--' + n);
    return i < 0 ? d : Number(process.argv[i + 1]);
  };
  const o = { durationS: arg('duration', 10), clients: arg('clients', 8), streams: arg('streams', 32) };
  if (spawnSync('h2load', ['--version'], { stdio: 'ignore' }).status !== 0) throw new Error('h2load not found: apt-get install nghttp2-client');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-h2-bench-'));
  const bodyFile = path.join(dir, 'body');
  fs.writeFileSync(bodyFile, GRPC_MESSAGE);
  const upPort = await freePort();
  const up = spawn(process.execPath, [__filename, '--upstream', String(upPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => up.stdout!.once('data', () => resolve()));
  const results: RowResult[] = [];
  try {
    for (const name of ['sluice', 'nginx', 'haproxy']) {
      if (name === 'nginx' && !nginxAvailable()) { console.log('nginx: not installed, skipped'); continue; }
      if (name === 'haproxy' && !haproxyAvailable()) { console.log('haproxy: not installed, skipped'); continue; }
      const front = await freePort();
      const peer = await startPeer(name, dir, front, upPort);
      try {
        results.push(await measure(name, peer.pid!, front, { ...o, bodyFile }));
      } finally {
        peer.kill('SIGTERM');
        await new Promise((r) => peer.once('exit', r));
      }
    }
  } finally {
    up.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`h2 row: h2load -c ${o.clients} -m ${o.streams} -D ${o.durationS}s, gRPC-shaped unary POST over h2c, HTTP/2 upstream`);
  console.log('peer      req/s   CPU-µs/rq  mean ms  note');
  for (const r of results) console.log(`${r.peer.padEnd(8)} ${String(Math.round(r.rps)).padStart(7)} ${String(r.cpuUsPerRq).padStart(10)}  ${r.meanMs === null ? '-' : r.meanMs.toFixed(2).padStart(7)}  ${r.note}`);
  fs.mkdirSync(path.resolve(__dirname, '..', '..', '..', 'bench', 'results'), { recursive: true });
  fs.writeFileSync(path.resolve(__dirname, '..', '..', '..', 'bench', 'results', 'h2-row.json'), JSON.stringify({ options: o, results }, null, 2) + '\n');
}

if (process.argv[2] === '--upstream') serveUpstream(Number(process.argv[3]));
else main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

