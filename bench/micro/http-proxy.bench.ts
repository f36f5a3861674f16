// L7 HTTP/1.1 keep-alive through one sluice gateway worker (and nginx with one worker when installed),
// same upstream, same client, in one run: autocannon at saturation (req/s, p50/p99) and then at a
// fixed rate of half the slowest proxy's maximum (p99 below the knee), plus the
// proxy's CPU µs per request read from /proc/PID/stat (the fair figure on a shared 2-core box).
// The upstream is a raw `net` server answering "hello world\n" to every head it sees, in its own
// process, so it costs every proxy the same and little.
//
//   node dist/bench/micro/http-proxy.bench.js
//   CONNECTIONS=64 DURATION=5 WARMUP=2 RATE=10000 PROFILE=/tmp/prof (node --cpu-prof the gateway) PEERS=sluice,nginx

import { spawn, fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../test/helpers/free-port';

// autocannon ships no types: the little of its API used here.
interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; p99_9?: number };
  errors: number; timeouts: number; non2xx: number;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon') as (o: Record<string, unknown>) => Promise<AutocannonResult>;

const CONNECTIONS = Number(process.env.CONNECTIONS ?? 64);
const DURATION = Number(process.env.DURATION ?? 5);
const WARMUP = Number(process.env.WARMUP ?? 2);
const PROFILE = process.env.PROFILE ?? '';
const PEERS = (process.env.PEERS ?? 'sluice,nginx').split(',');
const UPSTREAM_CHILD = 'SLUICE_HTTP_BENCH_UPSTREAM';
const NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx'].find((p) => fs.existsSync(p)) ?? null;

// ---- upstream child: one canned response per request head (GETs only, pipelining-safe) ---------

const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12\r\n\r\nhello world\n');

function upstreamChild(): void {
  const server = net.createServer({ noDelay: true }, (s) => {
    let tail = '';
    s.setEncoding('latin1');
    s.on('data', (chunk: string) => {
      const text = tail + chunk;
      let from = 0;
      let n = 0;
      for (let i = text.indexOf('\r\n\r\n'); i >= 0; i = text.indexOf('\r\n\r\n', from)) {
        n++;
        from = i + 4;
      }
      tail = text.slice(from);
      if (n === 1) s.write(RESPONSE);
      else if (n > 1) s.write(Buffer.concat(Array.from({ length: n }, () => RESPONSE)));
    });
    s.on('error', () => s.destroy());
  });
  server.listen(0, '127.0.0.1', () => (process.send as (m: unknown) => void)({ port: (server.address() as net.AddressInfo).port }));
}

// ---- peers ----------------------------------------------------------------------------------------

interface Peer { name: string; port: number; proc: ChildProcess; pid: number }

async function waitPort(port: number, proc: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) throw new Error('process exited early: ' + proc.exitCode);
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); r(true); });
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('port ' + port + ' never opened');
}

function gatewayYaml(gwPort: number, upPort: number): string {
  return `apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: up, namespace: default }
spec:
  hosts: [bench.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${upPort} } }]
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  selector: { istio: egressgateway }
  servers: [{ port: { number: ${gwPort}, name: http, protocol: HTTP }, hosts: [bench.example] }]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: vs, namespace: default }
spec:
  hosts: [bench.example]
  gateways: [gw]
  http: [{ route: [{ destination: { host: bench.example, port: { number: 80 } } }] }]
`;
}

/** OLD_CLI=path/to/an/older/dist/proxy/cli.js adds that build as peer `sluice-old` (A/B in one run). */
async function startSluice(dir: string, upPort: number, name = 'sluice', cli = path.join(__dirname, '..', '..', 'proxy', 'cli.js')): Promise<Peer> {
  const port = await freePort();
  const cfg = path.join(dir, name + '.yaml');
  fs.writeFileSync(cfg, gatewayYaml(port, upPort));
  const nodeArgs = PROFILE === '' ? [] : ['--cpu-prof', '--cpu-prof-dir=' + PROFILE];
  const proc = spawn(process.execPath, [...nodeArgs, cli, 'run', '--role', 'gateway', '--config', cfg, '--labels', 'istio=egressgateway',
    '--access-log', process.env.ACCESS_LOG ?? 'off', '--admin', '127.0.0.1:0', '--prometheus-port', 'off', '--health-port', 'off', '--concurrency', '1'],
  { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitPort(port, proc);
  return { name, port, proc, pid: proc.pid! };
}

async function startNginx(dir: string, upPort: number): Promise<Peer | null> {
  if (NGINX === null) return null;
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx.err warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  upstream up { server 127.0.0.1:${upPort}; keepalive 64; }
  server { listen 127.0.0.1:${port}; keepalive_requests 1000000;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`);
  const proc = spawn(NGINX, ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitPort(port, proc);
  return { name: 'nginx', port, proc, pid: proc.pid! };
}

function cpuTicks(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (100 Hz)
}

interface Run { rps: number; p50: number; p99: number; p999: number; errors: number; non2xx: number; cpuUsPerReq: number; upstreamUsPerReq: number; clientUsPerReq: number }

let upstreamPid = 0;

async function load(peer: Peer, seconds: number, rate: number | null): Promise<Run> {
  const before = cpuTicks(peer.pid);
  const upBefore = cpuTicks(upstreamPid);
  const clientBefore = process.cpuUsage();
  const r = await autocannon({
    url: `http://127.0.0.1:${peer.port}/`,
    headers: { host: 'bench.example' },
    connections: CONNECTIONS,
    duration: seconds,
    ...(rate === null ? {} : { overallRate: rate }),
  });
  const ticks = cpuTicks(peer.pid) - before;
  const upTicks = cpuTicks(upstreamPid) - upBefore;
  const client = process.cpuUsage(clientBefore);
  const total = r.requests.total;
  return {
    rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, p999: r.latency.p99_9 ?? NaN,
    errors: r.errors + r.timeouts, non2xx: r.non2xx, cpuUsPerReq: total > 0 ? (ticks * 10_000) / total : NaN,
    upstreamUsPerReq: total > 0 ? (upTicks * 10_000) / total : NaN,
    clientUsPerReq: total > 0 ? (client.user + client.system) / total : NaN,
  };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-http-bench-'));
  const up = fork(__filename, [], { env: { ...process.env, [UPSTREAM_CHILD]: '1' }, stdio: 'inherit' });
  const upPort = await new Promise<number>((r) => up.once('message', (m: { port: number }) => r(m.port)));
  upstreamPid = up.pid!;
  const peers: Peer[] = [];
  try {
    if (PEERS.includes('sluice')) peers.push(await startSluice(dir, upPort));
    if (process.env.OLD_CLI !== undefined) peers.push(await startSluice(dir, upPort, 'sluice-old', path.resolve(process.env.OLD_CLI)));
    if (PEERS.includes('nginx')) {
      const n = await startNginx(dir, upPort);
      if (n === null) process.stdout.write('nginx: not installed, skipped\n');
      else peers.push(n);
    }
    const sat = new Map<string, Run>();
    for (const p of peers) {
      await load(p, WARMUP, null);
      sat.set(p.name, await load(p, DURATION, null));
    }
    // RATE=N fixes the rate (else half the slowest peer's saturation req/s, as the issue asks).
    const rate = process.env.RATE !== undefined ? Number(process.env.RATE) : Math.floor(Math.min(...[...sat.values()].map((r) => r.rps)) / 2);
    const fixed = new Map<string, Run>();
    for (const p of peers) fixed.set(p.name, await load(p, DURATION, rate));
    process.stdout.write(`\nL7 keep-alive, ${CONNECTIONS} connections, ${DURATION}s, node ${process.version}, ${os.cpus().length} cpus\n\n`);
    process.stdout.write('| proxy | req/s | p50 ms | p99 ms | proxy CPU µs/req | upstream µs/req | client µs/req | errors | fixed rate | p99 ms @rate | p99.9 ms @rate |\n|---|---|---|---|---|---|---|---|---|---|---|\n');
    for (const p of peers) {
      const s = sat.get(p.name)!;
      const f = fixed.get(p.name)!;
      process.stdout.write(`| ${p.name} | ${Math.round(s.rps)} | ${s.p50} | ${s.p99} | ${s.cpuUsPerReq.toFixed(1)} | ${s.upstreamUsPerReq.toFixed(1)} | ${s.clientUsPerReq.toFixed(1)} | ${s.errors + s.non2xx} | ${rate} | ${f.p99} | ${f.p999} |\n`);
    }
    const a = sat.get('sluice');
    const b = sat.get('nginx');
    if (a !== undefined && b !== undefined) {
      process.stdout.write(`\nsluice/nginx: req/s ${(a.rps / b.rps).toFixed(2)}x, p99@rate ${(fixed.get('sluice')!.p99 / Math.max(fixed.get('nginx')!.p99, 1)).toFixed(2)}x, CPU/req ${(a.cpuUsPerReq / b.cpuUsPerReq).toFixed(2)}x\n`);
    }
  } finally {
    for (const p of peers) {
      p.proc.kill('SIGTERM');
      await new Promise((r) => { if (p.proc.exitCode !== null) r(null); else { p.proc.once('exit', r); setTimeout(r, 3000).unref(); } });
    }
    up.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env[UPSTREAM_CHILD] === '1') upstreamChild();
else void main().catch((e: Error) => { process.stderr.write(String(e.stack) + '\n'); process.exitCode = 1; });
