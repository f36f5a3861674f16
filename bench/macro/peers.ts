// The proxies under test, each with an equivalent config on loopback: one sluice worker, HAProxy
// with `nbthread 1`, nginx with one worker (`master_process off`, so the one process is the worker
// and its CPU/RSS are read directly). Every proxy serves four frontends:
//   tcp      L4 to the upstream's command port            (bulk, short connections, idle RSS)
//   http     L7 HTTP/1.1, keep-alive to the upstream      (req/s, latency)
//   sni      TLS passthrough routed by SNI `sni.bench`    (bulk over TLS, TLS connections/s)
//   tlsorig  plain HTTP in, TLS originated to the upstream with the CA verified, sessions reused
// Access logs are off everywhere (HAProxy logs nothing without a `log` line; nginx `access_log off`;
// sluice `--access-log off`). CPU: utime+stime from /proc/<pid>/stat of the proxy and its child
// processes for every peer (sluice's workers, nginx's master and workers); the real CLI runs unchanged.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { freePort } from '../../test/helpers/free-port';

export type PeerName = 'sluice' | 'haproxy' | 'nginx' | 'node-relay';
export const PEER_NAMES: readonly PeerName[] = ['sluice', 'haproxy', 'nginx', 'node-relay'];

/**
 * tcphttp: L4 (TCP proxy) to the upstream's keep-alive HTTP port, so a C HTTP client (wrk) drives
 * the L4 path; tcpclose: L4 to the upstream's one-request-per-connection HTTP port (a new proxied
 * connection per request). 0 = not served (the bare Node relay serves `tcp` only).
 */
export interface FrontPorts { tcp: number; http: number; sni: number; tlsorig: number; tcphttp: number; tcpclose: number }
export interface UpstreamTargets { tcp: number; http: number; tls: number; https: number; httpClose: number; caFile: string }

/**
 * How a peer is started: `workers` > 1 is the multi-core row (sluice --concurrency N, nginx
 * worker_processes N under a master, HAProxy nbthread N); `wrap` prefixes the command (valgrind for
 * the instruction counts in profile.ts).
 */
export interface PeerOptions { workers?: number; cpuProfDir?: string; wrap?: string[] }

export interface Peer {
  readonly name: PeerName;
  readonly pid: number;
  readonly ports: FrontPorts;
  /** user+system CPU seconds used so far */
  cpuSeconds(): Promise<number>;
  rssBytes(): number;
  stop(): Promise<void>;
}

export const SNI_HOST = 'sni.bench';
export const TLS_HOST = 'tls.bench';
export const HTTP_HOST = 'http.bench';
const PROJECT_ROOT = path.resolve(__dirname, '..', '..', '..');
/**
 * The fd limit every proxy gets: this process's hard limit (raising it needs CAP_SYS_RESOURCE,
 * which containers often lack). A proxied connection costs the proxy two fds.
 */
export const NOFILE = fdHardLimit();

function fdHardLimit(): number {
  try {
    const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[2] === 'unlimited' ? 1_048_576 : Number(m[2]);
  } catch { /* not Linux */ }
  return 1024;
}

/** The most idle proxied connections every proxy can hold under NOFILE (rounded down to 1,000s). */
export function maxIdleConnections(): number {
  return Math.max(1000, Math.floor((NOFILE - 1000) / 2 / 1000) * 1000);
}


const CLK_TCK = 100; // USER_HZ on Linux

export function procCpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after the comm: state(3) ... utime(14) stime(15) -> indexes 11, 12 here
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/**
 * utime+stime of pid and every descendant still running (nginx's master and workers, sluice's
 * primary and its workers): /proc/<pid>/task/<tid>/children, recursively. Threads are inside their
 * process's /proc/<pid>/stat already (HAProxy nbthread, Node's worker threads).
 */
export function procTreeCpuSeconds(pid: number): number {
  let total = 0;
  const stack = [pid];
  for (let guard = 0; stack.length > 0 && guard < 1000; guard++) {
    const p = stack.pop()!;
    try { total += procCpuSeconds(p); } catch { continue; /* exited meanwhile */ }
    let tasks: string[] = [];
    try { tasks = fs.readdirSync(`/proc/${p}/task`); } catch { /* gone */ }
    for (const t of tasks) {
      let kids = '';
      try { kids = fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8'); } catch { /* gone */ }
      for (const k of kids.split(' ')) if (k.trim() !== '') stack.push(Number(k));
    }
  }
  return total;
}

export function procRssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Raise a running child's soft fd limit to NOFILE (for the load drivers). */
export function raiseNofile(pid: number): boolean {
  if (process.getuid?.() !== 0) return false;
  const r = spawnSync('prlimit', ['--pid', String(pid), `--nofile=${NOFILE}:${NOFILE}`], { stdio: 'ignore' });
  return r.status === 0;
}

/**
 * argv that runs cmd with the fd limit raised before it starts (HAProxy checks its limit at start,
 * from maxconn); prlimit execs the command, so the pid is the proxy's. Root only; else unchanged.
 */
export function withNofile(cmd: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0 || spawnSync('prlimit', ['--version'], { stdio: 'ignore' }).status !== 0) return [cmd, args];
  return ['prlimit', [`--nofile=${NOFILE}:${NOFILE}`, '--', cmd, ...args]];
}

/** Wait until `port` is in LISTEN state on this host (read from /proc, no probe connection). */
export async function waitListening(port: number, ms: number): Promise<void> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
      const text = fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
      for (const line of text.split('\n')) {
        const cols = line.trim().split(/\s+/);
        if (cols[3] === '0A' && cols[1]?.endsWith(`:${hex}`)) return;
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} did not start listening within ${ms} ms`);
}

async function frontPorts(): Promise<FrontPorts> {
  return { tcp: await freePort(), http: await freePort(), sni: await freePort(), tlsorig: await freePort(), tcphttp: await freePort(), tcpclose: await freePort() };
}

function tail(buf: string[]): string {
  return buf.join('').slice(-2000);
}

function collect(child: ChildProcess): string[] {
  const out: string[] = [];
  const keep = (d: Buffer): void => { out.push(d.toString()); if (out.length > 200) out.shift(); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return out;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

async function waitAll(child: ChildProcess, out: string[], ports: FrontPorts, what: string, ms = 15_000): Promise<void> {
  const died = once(child, 'exit').then(() => { throw new Error(`${what} exited at start: ${tail(out)}`); });
  const ready = Promise.all(Object.values(ports).filter((p) => p > 0).map((p) => waitListening(p as number, ms)));
  await Promise.race([ready, died]);
}

// ------------------------------------------------------------------ bare Node relay (the L4 floor)

/** node-relay.ts: Node sockets + sluice's relay and nothing else; serves the L4 TCP frontend only (other ports 0). */
export async function startNodeRelay(u: UpstreamTargets): Promise<Peer> {
  const ports: FrontPorts = { tcp: await freePort(), http: 0, sni: 0, tlsorig: 0, tcphttp: 0, tcpclose: 0 };
  const preload = path.join(__dirname, 'cpu-ipc.js');
  const [cmd, argv] = withNofile(process.execPath, ['--require', preload, path.join(__dirname, 'node-relay.js'), JSON.stringify({ port: ports.tcp, upstreamPort: u.tcp })]);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const out = collect(child);
  await waitAll(child, out, ports, 'node-relay');
  return ipcPeer('node-relay', child, ports);
}

/**
 * A Node peer: CPU from /proc like every other peer (the process and its workers), RSS from /proc,
 * SIGTERM to stop (so --cpu-prof writes its profile).
 */
function ipcPeer(name: PeerName, child: ChildProcess, ports: FrontPorts, graceMs = 5000): Peer {
  return {
    name, pid: child.pid!, ports,
    cpuSeconds: () => Promise.resolve(procTreeCpuSeconds(child.pid!)),
    rssBytes: () => procRssBytes(child.pid!),
    stop: () => stopChild(child, 'SIGTERM', graceMs),
  };
}

// ------------------------------------------------------------------ sluice

/** A TCP ServiceEntry `<name>.bench` (VIP 198.19.255.<vip>:<port>) whose one endpoint is 127.0.0.1:<upPort>. */
function tcpServiceEntry(name: string, vip: number, port: number, upPort: number): string {
  return `---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: ${name}-bench, namespace: istio-system }
spec:
  hosts: [${name}.bench]
  addresses: [198.19.255.${vip}]
  ports: [{ number: ${port}, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tcp: ${upPort} } }]
`;
}

export function sluiceConfig(p: FrontPorts, u: UpstreamTargets): string {
  return `# sluice bench config: one egress gateway with the four bench frontends.
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: bench-gw, namespace: istio-system }
spec:
  selector: { istio: egressgateway }
  servers:
  - port: { number: ${p.tcp}, name: tcp, protocol: TCP }
    hosts: ["*"]
  - port: { number: ${p.http}, name: http, protocol: HTTP }
    hosts: [${HTTP_HOST}]
  - port: { number: ${p.sni}, name: tls, protocol: TLS }
    hosts: [${SNI_HOST}]
    tls: { mode: PASSTHROUGH }
  - port: { number: ${p.tlsorig}, name: http-orig, protocol: HTTP }
    hosts: [${TLS_HOST}]
  - port: { number: ${p.tcphttp}, name: tcp-http, protocol: TCP }
    hosts: ["*"]
  - port: { number: ${p.tcpclose}, name: tcp-close, protocol: TCP }
    hosts: ["*"]
${tcpServiceEntry('tcphttp', 2, 9001, u.http)}${tcpServiceEntry('tcpclose', 3, 9002, u.httpClose)}${tcpServiceEntry('tcp', 1, 9000, u.tcp)}---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: http-bench, namespace: istio-system }
spec:
  hosts: [${HTTP_HOST}]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${u.http} } }]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: sni-bench, namespace: istio-system }
spec:
  hosts: [${SNI_HOST}]
  ports: [{ number: 443, name: tls, protocol: TLS }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tls: ${u.tls} } }]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: tls-bench, namespace: istio-system }
spec:
  hosts: [${TLS_HOST}]
  ports: [{ number: 443, name: http-tls, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http-tls: ${u.https} } }]
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: tls-bench, namespace: istio-system }
spec:
  host: ${TLS_HOST}
  trafficPolicy:
    tls: { mode: SIMPLE, sni: ${TLS_HOST}, caCertificates: ${u.caFile} }
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: tcp-bench, namespace: istio-system }
spec:
  hosts: ["*"]
  gateways: [bench-gw]
  tcp:
  - match: [{ port: ${p.tcp} }]
    route: [{ destination: { host: tcp.bench, port: { number: 9000 } } }]
  - match: [{ port: ${p.tcphttp} }]
    route: [{ destination: { host: tcphttp.bench, port: { number: 9001 } } }]
  - match: [{ port: ${p.tcpclose} }]
    route: [{ destination: { host: tcpclose.bench, port: { number: 9002 } } }]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: http-bench, namespace: istio-system }
spec:
  hosts: [${HTTP_HOST}]
  gateways: [bench-gw]
  http:
  - route: [{ destination: { host: ${HTTP_HOST}, port: { number: 80 } } }]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: sni-bench, namespace: istio-system }
spec:
  hosts: [${SNI_HOST}]
  gateways: [bench-gw]
  tls:
  - match: [{ port: ${p.sni}, sniHosts: [${SNI_HOST}] }]
    route: [{ destination: { host: ${SNI_HOST}, port: { number: 443 } } }]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: tls-bench, namespace: istio-system }
spec:
  hosts: [${TLS_HOST}]
  gateways: [bench-gw]
  http:
  - route: [{ destination: { host: ${TLS_HOST}, port: { number: 443 } } }]
`;
}

export async function startSluice(dir: string, u: UpstreamTargets, o: PeerOptions = {}): Promise<Peer> {
  const ports = await frontPorts();
  const cfg = path.join(dir, 'sluice.yaml');
  fs.writeFileSync(cfg, sluiceConfig(ports, u));
  const admin = await freePort();
  // No IPC channel and no preload: CPU comes from /proc, and a cluster worker (--concurrency 2)
  // must not inherit a --require that touches its own IPC channel.
  const execArgv: string[] = [];
  if (o.cpuProfDir !== undefined) execArgv.push('--cpu-prof', '--cpu-prof-dir', o.cpuProfDir);
  const args = [path.join(PROJECT_ROOT, 'dist', 'proxy', 'cli.js'), 'run', '--role', 'gateway', '--labels', 'istio=egressgateway',
    '--namespace', 'istio-system', '--config', cfg, '--admin', `127.0.0.1:${admin}`, '--prometheus-port', 'off',
    '--health-port', 'off', '--access-log', 'off', '--concurrency', String(o.workers ?? 1),
    // exit on SIGTERM at once (no drain period): --cpu-prof and valgrind write their output on exit
    '--drain-duration', '0s'];
  const [cmd, argv] = withNofile(...wrapped(o, process.execPath, [...execArgv, ...args]));
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SLUICE_LOG_LEVEL: 'warn' } });
  const out = collect(child);
  await waitAll(child, out, ports, 'sluice', startMs(o));
  return ipcPeer('sluice', child, ports, startMs(o));
}

/** Start and stop grace: valgrind runs a proxy 20-50x slower; N workers boot one after another. */
function startMs(o: PeerOptions): number {
  return o.wrap !== undefined ? 180_000 : (o.workers ?? 1) > 1 ? 60_000 : 15_000;
}

function wrapped(o: PeerOptions, cmd: string, args: string[]): [string, string[]] {
  return o.wrap === undefined || o.wrap.length === 0 ? [cmd, args] : [o.wrap[0]!, [...o.wrap.slice(1), cmd, ...args]];
}

// ------------------------------------------------------------------ HAProxy

export function haproxyConfig(p: FrontPorts, u: UpstreamTargets, threads = 1): string {
  return `# HAProxy bench config: one thread (nbthread N for the multi-core row), the bench frontends, keep-alive to upstreams.
global
  nbthread ${threads}
  maxconn ${Math.floor((NOFILE - 100) / 2)}
  tune.ssl.default-dh-param 2048

defaults
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
  timeout http-request 10s

frontend tcp
  mode tcp
  bind 127.0.0.1:${p.tcp}
  default_backend tcp
backend tcp
  mode tcp
  server s1 127.0.0.1:${u.tcp}

frontend tcphttp
  mode tcp
  bind 127.0.0.1:${p.tcphttp}
  default_backend tcphttp
backend tcphttp
  mode tcp
  server s1 127.0.0.1:${u.http}

frontend tcpclose
  mode tcp
  bind 127.0.0.1:${p.tcpclose}
  default_backend tcpclose
backend tcpclose
  mode tcp
  server s1 127.0.0.1:${u.httpClose}

frontend http
  mode http
  bind 127.0.0.1:${p.http}
  default_backend http
backend http
  mode http
  http-reuse always
  server s1 127.0.0.1:${u.http}

frontend sni
  mode tcp
  bind 127.0.0.1:${p.sni}
  tcp-request inspect-delay 5s
  tcp-request content accept if { req_ssl_hello_type 1 }
  use_backend sni if { req_ssl_sni -i ${SNI_HOST} }
backend sni
  mode tcp
  server s1 127.0.0.1:${u.tls}

frontend tlsorig
  mode http
  bind 127.0.0.1:${p.tlsorig}
  default_backend tlsorig
backend tlsorig
  mode http
  http-reuse always
  server s1 127.0.0.1:${u.https} ssl verify required ca-file ${u.caFile} sni str(${TLS_HOST}) verifyhost ${TLS_HOST}
`;
}

export function haproxyAvailable(): boolean {
  return spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0;
}

export async function startHaproxy(dir: string, u: UpstreamTargets, o: PeerOptions = {}): Promise<Peer> {
  const ports = await frontPorts();
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfg, haproxyConfig(ports, u, o.workers ?? 1));
  // -db: foreground, no master process: the pid we hold is the one doing the work.
  const [cmd, argv] = withNofile(...wrapped(o, 'haproxy', ['-db', '-f', cfg]));
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = collect(child);
  await waitAll(child, out, ports, 'haproxy', startMs(o));
  return {
    name: 'haproxy', pid: child.pid!, ports,
    cpuSeconds: () => Promise.resolve(procTreeCpuSeconds(child.pid!)),
    rssBytes: () => procRssBytes(child.pid!),
    stop: () => stopChild(child, 'SIGUSR1', startMs(o)), // soft stop
  };
}

// ------------------------------------------------------------------ nginx

/**
 * One worker: `master_process off`, so the one process is the worker. N workers (the multi-core
 * row): a master and N workers (nginx only spreads work over workers with a master); the CPU read
 * is the whole tree's.
 */
export function nginxConfig(p: FrontPorts, u: UpstreamTargets, dir: string, workers = 1): string {
  return `# nginx bench config: one worker (no master) or N workers, the bench frontends, keep-alive to upstreams.
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process ${workers > 1 ? 'on' : 'off'};
worker_processes ${workers};
worker_rlimit_nofile ${NOFILE};
error_log ${dir}/nginx-error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections ${NOFILE - 100}; }

http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;

  upstream http_up { server 127.0.0.1:${u.http}; keepalive 64; keepalive_requests 1000000; }
  upstream tls_up  { server 127.0.0.1:${u.https}; keepalive 64; keepalive_requests 1000000; }

  server {
    listen 127.0.0.1:${p.http};
    location / { proxy_pass http://http_up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:${p.tlsorig};
    location / {
      proxy_pass https://tls_up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_server_name on;
      proxy_ssl_name ${TLS_HOST};
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${u.caFile};
      proxy_ssl_session_reuse on;
    }
  }
}

stream {
  upstream tcp_up { server 127.0.0.1:${u.tcp}; }
  server { listen 127.0.0.1:${p.tcp}; proxy_pass tcp_up; }
  server { listen 127.0.0.1:${p.tcphttp}; proxy_pass 127.0.0.1:${u.http}; }
  server { listen 127.0.0.1:${p.tcpclose}; proxy_pass 127.0.0.1:${u.httpClose}; }

  map $ssl_preread_server_name $sni_up { ${SNI_HOST} 127.0.0.1:${u.tls}; default 127.0.0.1:1; }
  server { listen 127.0.0.1:${p.sni}; ssl_preread on; proxy_pass $sni_up; }
}
`;
}

export function nginxAvailable(): boolean {
  return spawnSync('nginx', ['-v'], { stdio: 'ignore' }).status === 0 && fs.existsSync('/usr/lib/nginx/modules/ngx_stream_module.so');
}

export async function startNginx(dir: string, u: UpstreamTargets, o: PeerOptions = {}): Promise<Peer> {
  const ports = await frontPorts();
  const cfg = path.join(dir, 'nginx.conf');
  fs.writeFileSync(cfg, nginxConfig(ports, u, dir, o.workers ?? 1));
  const [cmd, argv] = withNofile(...wrapped(o, 'nginx', ['-c', cfg, '-p', dir]));
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = collect(child);
  await waitAll(child, out, ports, 'nginx', startMs(o));
  return {
    name: 'nginx', pid: child.pid!, ports,
    cpuSeconds: () => Promise.resolve(procTreeCpuSeconds(child.pid!)),
    rssBytes: () => procRssBytes(child.pid!),
    // graceful shutdown; under valgrind a fast one (SIGTERM): a graceful stop of the stream module
    // hung there past the 180 s grace once, and a SIGKILL'd run has no instruction count
    stop: () => stopChild(child, o.wrap === undefined ? 'SIGQUIT' : 'SIGTERM', startMs(o)),
  };
}

/** Install HAProxy and nginx with apt-get when root and missing; returns what is (now) available. */
export function ensurePeers(log: (s: string) => void): { haproxy: boolean; nginx: boolean } {
  let haproxy = haproxyAvailable();
  let nginx = nginxAvailable();
  if ((!haproxy || !nginx) && process.getuid?.() === 0 && process.env.BENCH_NO_INSTALL !== '1') {
    log('bench: installing missing peers: apt-get install -y haproxy nginx libnginx-mod-stream');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = spawnSync('apt-get', ['install', '-y', 'haproxy', 'nginx', 'libnginx-mod-stream'], { env, stdio: 'ignore', timeout: 300_000 });
    if (r.status !== 0) {
      spawnSync('apt-get', ['update'], { env, stdio: 'ignore', timeout: 300_000 });
      r = spawnSync('apt-get', ['install', '-y', 'haproxy', 'nginx', 'libnginx-mod-stream'], { env, stdio: 'ignore', timeout: 300_000 });
    }
    haproxy = haproxyAvailable();
    nginx = nginxAvailable();
  }
  if (!haproxy) log('bench: HAProxy SKIPPED: not installed (run as root to let the bench apt-get install it)');
  if (!nginx) log('bench: nginx SKIPPED: not installed (run as root to let the bench apt-get install nginx libnginx-mod-stream)');
  return { haproxy, nginx };
}
