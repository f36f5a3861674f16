// C load generators for the saturation rows: wrk (HTTP/1.1, closed loop) and h2load (a fixed number
// of requests, HTTP/1.1 with --h1 or h2c). autocannon is a Node process and tops out near 20-40k
// req/s on one core, so every proxy in an autocannon row is client-bound and the ratios sit near 1
// whatever the proxies cost; wrk on one thread saturates a one-worker proxy (issue 20).
// Debian packages `wrk` and `nghttp2-client`; ensureCLoad() installs them like ensurePeers() does.

import { spawn, spawnSync } from 'node:child_process';

export interface CLoadResult {
  /** requests completed in the measured run */
  requests: number;
  seconds: number;
  rps: number;
  /** socket errors (connect/read/write/timeout) + non-2xx responses */
  errors: number;
  latencyUs: { p50: number; p90: number; p99: number };
}

function has(cmd: 'wrk' | 'h2load'): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** wrk and h2load present (apt-get install wrk nghttp2-client when root and missing, unless BENCH_NO_INSTALL=1). */
export function ensureCLoad(log: (s: string) => void): { wrk: boolean; h2load: boolean } {
  let wrk = has('wrk');
  let h2load = has('h2load');
  if ((!wrk || !h2load) && process.getuid?.() === 0 && process.env.BENCH_NO_INSTALL !== '1') {
    log('bench: installing missing load generators: apt-get install -y wrk nghttp2-client');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = spawnSync('apt-get', ['install', '-y', 'wrk', 'nghttp2-client'], { env, stdio: 'ignore', timeout: 300_000 });
    if (r.status !== 0) {
      spawnSync('apt-get', ['update'], { env, stdio: 'ignore', timeout: 300_000 });
      r = spawnSync('apt-get', ['install', '-y', 'wrk', 'nghttp2-client'], { env, stdio: 'ignore', timeout: 300_000 });
    }
    wrk = has('wrk');
    h2load = has('h2load');
  }
  if (!wrk) log('bench: wrk SKIPPED: not installed (root lets the bench apt-get install it)');
  if (!h2load) log('bench: h2load SKIPPED: not installed (root lets the bench apt-get install nghttp2-client)');
  return { wrk, h2load };
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} exited ${code}: ${out.slice(-1500)}`));
    });
  });
}

/** "1.23ms" / "456.00us" / "1.2s" -> µs */
function wrkTimeUs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n : m[2] === 'ms' ? n * 1e3 : m[2] === 's' ? n * 1e6 : n * 60e6;
}

export interface WrkOptions { url: string; host: string; connections: number; durationS: number; threads?: number; close?: boolean }

/** `wrk -t1 -cN -dDs --latency`: closed-loop saturation; errors are socket errors + non-2xx. */
export async function wrk(o: WrkOptions): Promise<CLoadResult> {
  const args = [`-t${o.threads ?? 1}`, `-c${o.connections}`, `-d${o.durationS}s`, '--latency', '-H', `Host: ${o.host}`];
  if (o.close === true) args.push('-H', 'Connection: close');
  args.push(o.url);
  const out = await run('wrk', args, (o.durationS + 30) * 1000);
  return parseWrk(out);
}

export function parseWrk(out: string): CLoadResult {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  if (!total) throw new Error(`wrk: no summary line in: ${out.slice(-800)}`);
  const requests = Number(total[1]);
  const seconds = wrkTimeUs(`${total[2]}${total[3]}`) / 1e6;
  let errors = 0;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (sock) errors += Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) errors += Number(non2xx[1]);
  const pct = (q: string): number => {
    const m = new RegExp(`^\\s*${q}%\\s+(\\S+)`, 'm').exec(out);
    return m ? wrkTimeUs(m[1]!) : NaN;
  };
  return { requests, seconds, rps: requests / seconds, errors, latencyUs: { p50: pct('50'), p90: pct('90'), p99: pct('99') } };
}

export interface H2loadOptions { url: string; host: string; requests: number; clients: number; streams?: number; h1?: boolean }

/** `h2load -n N -c C [--h1]`: a fixed number of requests (the instruction counts need a fixed workload). */
export async function h2load(o: H2loadOptions): Promise<CLoadResult> {
  // `:authority` sets the HTTP/1.1 Host too; a `host:` header would be sent beside h2load's own (400 from nginx)
  const args = ['-n', String(o.requests), '-c', String(o.clients), '-m', String(o.streams ?? 1), '-H', `:authority: ${o.host}`];
  if (o.h1 === true) args.push('--h1');
  args.push(o.url);
  const out = await run('h2load', args, 600_000);
  const done = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  const fin = /finished in ([\d.]+)(us|ms|s)/.exec(out);
  if (!done || !fin) throw new Error(`h2load: no summary in: ${out.slice(-800)}`);
  const seconds = wrkTimeUs(`${fin[1]}${fin[2]}`) / 1e6;
  const status = /status codes: (\d+) 2xx/.exec(out);
  const ok = status ? Number(status[1]) : Number(done[4]);
  return { requests: Number(done[3]), seconds, rps: Number(done[3]) / seconds, errors: Number(done[1]) - ok, latencyUs: { p50: NaN, p90: NaN, p99: NaN } };
}
