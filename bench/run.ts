// `npm run bench`: the macro benchmark suite. sluice (one worker) side by side with HAProxy
// (`nbthread 1`) and nginx (one worker) on loopback, plus the direct path (no proxy). Writes a
// markdown table and JSON (bench/results/<timestamp>.json + latest.json + latest.md).
//
// Knobs (env): DURATION (s per measurement, default 3), ROUNDS (interleaved rounds of the L4 bulk
// 1-stream, L4 short, L7 saturation and sidecar capture rows, default 3), CONNECTIONS (HTTP
// connections, default 32),
// PARALLEL (short-connection loops, default 16), ONLY=<scenario,...> (names below), PEERS=<sluice,
// haproxy,nginx>, IDLE_CONNECTIONS (default 10000), IDLE_SETTLE (s idle before the second RSS
// reading, default 30), BENCH_TIMEOUT (s, default 1200: the whole default run takes about 15 minutes).
// Scenarios: l4-bulk, l4-short, l7, l7-fixed, sni, tls-orig, capture, idle-rss, profile, config-scale,
// and the C-driven saturation rows (issue 20): wrk-l7, wrk-l4, wrk-l4-conn, wrk-tls-orig, two-hop,
// multi-core. WRK_CONNECTIONS (default 64) for the wrk rows, JIT_WARMUP (s of wrk once per proxy, default 3),
// TWO_HOP_RATE (req/s, default 1000).
//
// Every load generator runs on the same 2 cores as the proxy and the upstream: absolute rates are
// machine- and client-bound, which is why CPU per unit of work is reported next to each rate.

import { fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { makeCa, makeLeaf } from '../test/e2e/harness/certs';
import { ensurePeers, startHaproxy, startNginx, startNodeRelay, startSluice, raiseNofile, maxIdleConnections, NOFILE, HTTP_HOST, SNI_HOST, TLS_HOST, type Peer, type PeerName, type PeerOptions, type UpstreamTargets, type FrontPorts } from './macro/peers';
import { ensureCLoad, wrk } from './macro/c-load';
import { saturate, paced, type HttpLoadResult } from './macro/http-load';
import type { TcpLoadOptions, TcpLoadResult } from './macro/tcp-load';
import { runCapture, type CaptureResult, type CaptureRun } from './macro/capture';
import { runInbound } from './macro/inbound';
import { newestProfile, summarize, type ProfileSummary } from './macro/profile';
import type { ConfigScaleResult } from './config-scale';
import { renderMarkdown, machineDescription, type BenchReport, type Cell } from './macro/report';

const DURATION = Number(process.env.DURATION ?? 3);
const ROUNDS = Math.max(1, Number(process.env.ROUNDS ?? 3));
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 32);
const PARALLEL = Number(process.env.PARALLEL ?? 16);
const IDLE_WANTED = Number(process.env.IDLE_CONNECTIONS ?? 10_000);
// 10k proxied connections need 20k+ fds in the proxy; where the hard limit is lower (and cannot be
// raised without CAP_SYS_RESOURCE) the count is reduced, and the report says so.
const IDLE = Math.min(IDLE_WANTED, maxIdleConnections());
const WARMUP_S = 1;
/** How long idle connections are held before the second RSS reading (IDLE_SETTLE, s). */
const IDLE_SETTLE_S = Number(process.env.IDLE_SETTLE ?? 30);
const WRK_CONNECTIONS = Number(process.env.WRK_CONNECTIONS ?? 64);
/** wrk load each proxy gets once before its first C-driven row (JIT_WARMUP, s). */
const JIT_WARMUP_S = Number(process.env.JIT_WARMUP ?? 3);
/** The two-hop row's fixed rate (Istio's published per-hop figures are at 1000 req/s, 1 kB payloads). */
const TWO_HOP_RATE = Number(process.env.TWO_HOP_RATE ?? 1000);
const WRK_ROWS = ['wrk-l7', 'wrk-l4', 'wrk-l4-conn', 'wrk-tls-orig'];
// `tls-orig` (autocannon) is not in the default run any more: wrk-tls-orig measures the same
// frontend saturated; ONLY=tls-orig still runs it.
const ALL = ['l4-bulk', 'l4-short', 'l7', 'l7-fixed', 'sni', ...WRK_ROWS, 'two-hop', 'multi-core', 'capture', 'inbound', 'idle-rss', 'profile', 'config-scale'];
const ONLY = new Set(process.env.ONLY ? process.env.ONLY.split(',').map((s) => s.trim()) : ALL);
const WANT_PEERS = new Set((process.env.PEERS ?? 'sluice,haproxy,nginx,node-relay').split(','));
const RESULTS_DIR = path.resolve(__dirname, '..', '..', 'bench', 'results');
const DIST = path.resolve(__dirname);

function log(s: string): void {
  process.stderr.write(s + '\n');
}

interface UpstreamPorts { tcp: number; http: number; tls: number; https: number; httpClose: number; http1k: number }
interface Upstream { ports: UpstreamPorts; targets: UpstreamTargets; stats(): Promise<{ handshakes: number; resumed: number; cpuUs: number }>; stop(): void }
interface Target { name: 'direct' | PeerName; ports: FrontPorts; peer: Peer | null; up: Upstream }

function childJson<T>(child: ChildProcess, what: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${what}: timed out`)); }, timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) { clearTimeout(timer); try { resolve(JSON.parse(out.slice(0, nl)) as T); } catch (e) { reject(e as Error); } }
    });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('exit', (code) => { clearTimeout(timer); if (!out.includes('\n')) reject(new Error(`${what}: exited ${code}: ${err.slice(-2000)}`)); });
  });
}

function tcpLoad(o: TcpLoadOptions): { child: ChildProcess; result: Promise<TcpLoadResult> } {
  const child = spawn(process.execPath, [path.join(DIST, 'macro', 'tcp-load.js'), JSON.stringify(o)], { stdio: ['pipe', 'pipe', 'pipe'] });
  return { child, result: childJson<TcpLoadResult>(child, `tcp-load ${o.mode}`, (o.durationMs ?? 5000) + (o.warmupMs ?? 1000) + 90_000) };
}

async function cpuOf(t: Target): Promise<number> {
  return t.peer === null ? 0 : t.peer.cpuSeconds();
}

/** Run `fn` and return its result with the proxy's CPU seconds spent meanwhile. */
async function withCpu<T>(t: Target, fn: () => Promise<T>): Promise<{ r: T; cpu: number }> {
  const c0 = await cpuOf(t);
  const r = await fn();
  const c1 = await cpuOf(t);
  return { r, cpu: c1 - c0 };
}

/**
 * Measure every target ROUNDS times, interleaved: round k visits the targets starting at the k-th, so
 * no peer always runs first or right after the same neighbour. Each target keeps its median round by
 * `score` (the round's other figures, CPU and latency, come with it), plus every round's score for
 * the report. One sample per peer swings by 15-20% on this shared 2-core box (earlier runs put
 * sluice's L7 rate at 0.66x nginx in the bench and 0.85-1.0x in alternating A/B runs right after);
 * the median of interleaved rounds is what the A/B runs show, inside the one run the issue asks for.
 */
async function interleaved<R>(ts: readonly Target[], measure: (t: Target) => Promise<R>, score: (r: R) => number): Promise<Map<Target, { median: R; note: string; all: R[] }>> {
  const runs = new Map<Target, R[]>(ts.map((t) => [t, []]));
  for (let k = 0; k < ROUNDS; k++) {
    for (let i = 0; i < ts.length; i++) {
      const t = ts[(i + k) % ts.length]!;
      runs.get(t)!.push(await measure(t));
    }
  }
  const out = new Map<Target, { median: R; note: string; all: R[] }>();
  for (const [t, rs] of runs) {
    const sorted = [...rs].sort((a, b) => score(a) - score(b));
    const note = ROUNDS > 1 ? `median of ${ROUNDS} interleaved rounds: ${rs.map((r) => fmtRound(score(r))).join(', ')}` : '';
    out.set(t, { median: sorted[(sorted.length - 1) >> 1]!, note, all: rs });
  }
  return out;
}

function spreadOf(vs: number[]): { min: number; max: number } | undefined {
  return vs.length > 1 ? { min: Math.min(...vs), max: Math.max(...vs) } : undefined;
}

function fmtRound(v: number): string {
  return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2);
}

async function main(): Promise<void> {
  const started = Date.now();
  const bound = Number(process.env.BENCH_TIMEOUT ?? 1200) * 1000;
  setTimeout(() => { log(`bench: gave up after ${bound / 1000} s (BENCH_TIMEOUT)`); process.exit(1); }, bound).unref();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));
  const cleanup: (() => Promise<void> | void)[] = [() => fs.rmSync(tmp, { recursive: true, force: true })];
  const report: BenchReport = {
    startedAt: new Date().toISOString(), machine: machineDescription(),
    knobs: { DURATION, ROUNDS, CONNECTIONS, PARALLEL, IDLE_CONNECTIONS: IDLE, ONLY: [...ONLY] },
    skipped: [], cells: {}, extra: {},
  };
  const put = (metric: string, target: string, cell: Cell): void => { (report.cells[metric] ??= {})[target] = cell; };

  try {
    const avail = ensurePeers(log);
    report.machine.haproxy = avail.haproxy ? (await versionOf('haproxy', ['-v'])) : 'not installed';
    report.machine.nginx = avail.nginx ? (await versionOf('nginx', ['-v'])) : 'not installed';
    if (IDLE < IDLE_WANTED) {
      const why = `idle RSS measured at ${IDLE} connections, not ${IDLE_WANTED}: the fd hard limit here is ${NOFILE} and cannot be raised (no CAP_SYS_RESOURCE); each proxied connection costs a proxy 2 fds`;
      log(`bench: ${why}`);
      report.skipped.push(why);
    }
    if (!avail.haproxy) report.skipped.push('HAProxy: not installed');
    if (!avail.nginx) report.skipped.push('nginx: not installed');

    // Certificates: one leaf for both TLS names, a throwaway CA made with openssl.
    const ca = await makeCa(tmp, 'bench-ca');
    const leaf = await makeLeaf(tmp, ca, { cn: SNI_HOST, dnsNames: [SNI_HOST, TLS_HOST] });

    // Upstreams in their own process, one per target (issue 20): a proxy never shares its upstream's
    // process with another proxy's traffic, and the direct path has its own too.
    const upstreamOpts = JSON.stringify({ cert: leaf.certFile, key: leaf.keyFile, maxRequestsPerConnection: 100 });
    const startUpstream = async (): Promise<Upstream> => {
      const child = fork(path.join(DIST, 'macro', 'upstream.js'), [upstreamOpts], { stdio: ['pipe', 'pipe', 'pipe', 'ipc'] });
      raiseNofile(child.pid!);
      cleanup.push(() => { child.kill(); });
      const ports = (await childJson<{ ports: UpstreamPorts }>(child, 'upstream', 15_000)).ports;
      const stats = async (): Promise<{ handshakes: number; resumed: number; cpuUs: number }> => {
        const m = once(child, 'message') as Promise<[{ handshakes: number; resumed: number; cpuUs: number }]>;
        child.send('stats');
        return (await m)[0];
      };
      return { ports, targets: { ...ports, caFile: ca.certFile }, stats, stop: () => { child.kill(); } };
    };

    const peers: Peer[] = [];
    const startPeer = async (name: PeerName, dir: string, u: UpstreamTargets, opts: PeerOptions = {}): Promise<Peer> => {
      if (name === 'sluice') return startSluice(dir, u, opts);
      if (name === 'haproxy') return startHaproxy(dir, u, opts);
      if (name === 'node-relay') return startNodeRelay(u);
      return startNginx(dir, u, opts);
    };
    const peerNames: PeerName[] = (['sluice', 'haproxy', 'nginx', 'node-relay'] as PeerName[]).filter((n) => WANT_PEERS.has(n) && (n === 'sluice' || n === 'node-relay' || avail[n]));
    const cload = [...WRK_ROWS, 'two-hop', 'multi-core'].some((s) => ONLY.has(s)) ? ensureCLoad(log) : { wrk: false, h2load: false };
    if (!cload.wrk && WRK_ROWS.some((s) => ONLY.has(s))) report.skipped.push('wrk rows: wrk not installed');
    const needsMain = ['l4-bulk', 'l4-short', 'l7', 'l7-fixed', 'sni', 'tls-orig', ...WRK_ROWS].some((s) => ONLY.has(s));
    const directUp = await startUpstream();
    const upOf = new Map<Peer, Upstream>();
    if (needsMain) {
      for (const n of peerNames) {
        const u = await startUpstream();
        const p = await startPeer(n, tmp, u.targets);
        peers.push(p);
        upOf.set(p, u);
        cleanup.push(() => p.stop());
      }
    }
    const du = directUp.ports;
    const targets: Target[] = [
      { name: 'direct', ports: { tcp: du.tcp, http: du.http, sni: du.tls, tlsorig: du.https, tcphttp: du.http, tcpclose: du.httpClose }, peer: null, up: directUp },
      ...peers.map((p) => ({ name: p.name, ports: p.ports, peer: p, up: upOf.get(p)! })),
    ];
    // The bare Node relay is the floor for the plain L4 figures only (it serves no other frontend).
    const l7Targets = targets.filter((t) => t.name !== 'node-relay');
    const dur = DURATION * 1000;
    const tlsClient = { servername: SNI_HOST, ca: ca.certFile };

    // ---- L4 bulk
    if (ONLY.has('l4-bulk')) {
      // One stream is the contested row (its target is met in some runs and not in others): rounds.
      // Eight streams saturate both cores for every peer and have been steady; one pass.
      for (const streams of [1, 8]) {
        const measure = async (t: Target) => {
          const m = await withCpu(t, () => tcpLoad({ mode: 'bulk', host: '127.0.0.1', port: t.ports.tcp, streams, durationMs: dur, warmupMs: WARMUP_S * 1000 }).result);
          log(`l4-bulk x${streams} ${t.name}: ${((m.r.rate * 8) / 1e9).toFixed(2)} Gbit/s${t.peer ? `, ${(m.cpu / (m.r.totalUnits / 1e9)).toFixed(2)} CPU-s/GB` : ''}`);
          return m;
        };
        const rounds = streams === 1 ? await interleaved(targets, measure, (m) => (m.r.rate * 8) / 1e9) : await once1(targets, measure);
        for (const [t, { median: { r, cpu }, note }] of rounds) {
          put(`L4 bulk, ${streams} stream${streams > 1 ? 's' : ''} (Gbit/s)`, t.name, { value: (r.rate * 8) / 1e9, cpuPerUnit: t.peer ? cpu / (r.totalUnits / 1e9) : null, cpuUnit: 'CPU-s/GB', higherIsBetter: true, errors: r.errors, ...(note ? { note } : {}) });
        }
      }
    }

    // ---- L4 short connections
    if (ONLY.has('l4-short')) {
      const rounds = await interleaved(targets, async (t) => {
        const m = await withCpu(t, () => tcpLoad({ mode: 'short', host: '127.0.0.1', port: t.ports.tcp, parallel: PARALLEL, durationMs: dur, warmupMs: WARMUP_S * 1000 }).result);
        log(`l4-short ${t.name}: ${m.r.rate.toFixed(0)} conn/s, errors ${m.r.errors}${t.peer ? `, ${((m.cpu * 1e6) / m.r.totalUnits).toFixed(0)} CPU-µs/conn` : ''}`);
        return m;
      }, (m) => m.r.rate);
      for (const [t, { median: { r, cpu }, note }] of rounds) {
        put('L4 short connections (conn/s)', t.name, { value: r.rate, cpuPerUnit: t.peer ? (cpu * 1e6) / r.totalUnits : null, cpuUnit: 'CPU-µs/conn', higherIsBetter: true, errors: r.errors, ...(note ? { note } : {}) });
      }
    }

    // ---- L7 keep-alive saturation
    const l7Max = new Map<string, number>();
    if (ONLY.has('l7') || ONLY.has('l7-fixed')) {
      const rounds = await interleaved(l7Targets, (t) => withCpu(t, () => saturate({ url: `http://127.0.0.1:${t.ports.http}/`, host: HTTP_HOST, connections: CONNECTIONS, durationS: DURATION, warmupS: WARMUP_S })), (m) => m.r.rps);
      for (const [t, { median: { r, cpu }, note }] of rounds) {
        l7Max.set(t.name, r.rps);
        putHttp(put, 'L7 keep-alive, saturation', t, r, cpu, note || undefined);
      }
    }

    // ---- L7 latency at a fixed rate: half the slowest proxy's maximum
    if (ONLY.has('l7-fixed') && l7Max.size > 0) {
      const proxyMax = [...l7Max].filter(([n]) => n !== 'direct').map(([, v]) => v);
      const rate = Math.max(100, Math.floor(0.5 * Math.min(...(proxyMax.length > 0 ? proxyMax : [...l7Max.values()]))));
      report.extra.fixedRate = rate;
      for (const t of l7Targets) {
        const { r, cpu } = await withCpu(t, () => paced({ host: '127.0.0.1', port: t.ports.http, hostHeader: HTTP_HOST, connections: CONNECTIONS, rate, durationS: DURATION, warmupS: WARMUP_S }));
        putHttp(put, `L7 keep-alive, fixed ${rate} req/s`, t, r, cpu);
      }
    }

    // ---- SNI passthrough
    if (ONLY.has('sni')) {
      for (const t of l7Targets) {
        const { r, cpu } = await withCpu(t, () => tcpLoad({ mode: 'bulk', host: '127.0.0.1', port: t.ports.sni, streams: 1, durationMs: dur, warmupMs: WARMUP_S * 1000, tls: tlsClient }).result);
        put('SNI passthrough bulk, 1 stream (Gbit/s)', t.name, { value: (r.rate * 8) / 1e9, cpuPerUnit: t.peer ? cpu / (r.totalUnits / 1e9) : null, cpuUnit: 'CPU-s/GB', higherIsBetter: true, errors: r.errors });
        log(`sni bulk ${t.name}: ${((r.rate * 8) / 1e9).toFixed(2)} Gbit/s`);
      }
      for (const t of l7Targets) {
        const { r, cpu } = await withCpu(t, () => tcpLoad({ mode: 'short', host: '127.0.0.1', port: t.ports.sni, parallel: PARALLEL, durationMs: dur, warmupMs: WARMUP_S * 1000, tls: tlsClient }).result);
        put('SNI passthrough, new TLS connections (conn/s)', t.name, { value: r.rate, cpuPerUnit: t.peer ? (cpu * 1e6) / r.totalUnits : null, cpuUnit: 'CPU-µs/conn', higherIsBetter: true, errors: r.errors, note: `resumed ${r.resumed ?? 0}/${r.totalUnits}` });
        log(`sni short ${t.name}: ${r.rate.toFixed(0)} conn/s (resumed ${r.resumed}/${r.totalUnits}), errors ${r.errors}`);
      }
    }

    // ---- TLS origination (plain HTTP in, TLS to the upstream; the upstream closes every 100th request)
    if (ONLY.has('tls-orig')) {
      for (const t of l7Targets) {
        const s0 = await t.up.stats();
        const url = t.peer === null ? `https://127.0.0.1:${t.ports.tlsorig}/` : `http://127.0.0.1:${t.ports.tlsorig}/`;
        const { r, cpu } = await withCpu(t, () => saturate({ url, host: TLS_HOST, connections: CONNECTIONS, durationS: DURATION, warmupS: WARMUP_S }));
        const s1 = await t.up.stats();
        const hs = s1.handshakes - s0.handshakes;
        putHttp(put, 'TLS origination, keep-alive', t, r, cpu, `upstream handshakes ${hs}, resumed ${s1.resumed - s0.resumed}`);
      }
    }

    // ---- Saturation with a C client (issue 20): wrk -t1 on one core saturates a one-worker proxy,
    // where autocannon (one Node process) is the bottleneck itself. CPU per unit from /proc is the
    // headline (against the best peer), throughput second; interleaved rounds with their spread.
    const wrkRows: { only: string; label: string; port: (t: Target) => number; host: string; close?: boolean; https?: boolean; unit: 'CPU-µs/req' | 'CPU-µs/conn' }[] = [
      { only: 'wrk-l7', label: 'L7 keep-alive, wrk saturation', port: (t) => t.ports.http, host: HTTP_HOST, unit: 'CPU-µs/req' },
      { only: 'wrk-l4', label: 'L4 (HTTP keep-alive through the TCP proxy), wrk saturation', port: (t) => t.ports.tcphttp, host: HTTP_HOST, unit: 'CPU-µs/req' },
      { only: 'wrk-l4-conn', label: 'L4, a new connection per request, wrk saturation', port: (t) => t.ports.tcpclose, host: HTTP_HOST, close: true, unit: 'CPU-µs/conn' },
      { only: 'wrk-tls-orig', label: 'TLS origination, keep-alive, wrk saturation', port: (t) => t.ports.tlsorig, host: TLS_HOST, https: true, unit: 'CPU-µs/req' },
    ];
    // A Node proxy reaches its steady state only once V8 has optimised the hot path: each proxy gets
    // JIT_WARMUP s of wrk once, before the first C-driven row measures it (rows after share it).
    const warmed = new Set<Target>();
    const warmOnce = async (t: Target, url: string, host: string): Promise<void> => {
      if (warmed.has(t) || t.peer === null) return;
      warmed.add(t);
      await wrk({ url, host, connections: WRK_CONNECTIONS, durationS: JIT_WARMUP_S });
    };
    for (const row of wrkRows) {
      if (!ONLY.has(row.only) || !cload.wrk) continue;
      const ts = row.only === 'wrk-l4' || row.only === 'wrk-l4-conn' ? targets : l7Targets.filter((t) => t.name !== 'node-relay');
      const rounds = await interleaved(ts.filter((t) => row.port(t) > 0), async (t) => {
        const url = `${row.https === true && t.peer === null ? 'https' : 'http'}://127.0.0.1:${row.port(t)}/`;
        await warmOnce(t, `http://127.0.0.1:${t.ports.http}/`, HTTP_HOST);
        await wrk({ url, host: row.host, connections: WRK_CONNECTIONS, durationS: WARMUP_S, close: row.close });
        const s0 = await t.up.stats();
        const m = await withCpu(t, () => wrk({ url, host: row.host, connections: WRK_CONNECTIONS, durationS: DURATION, close: row.close }));
        const s1 = await t.up.stats();
        const per = t.peer ? (m.cpu * 1e6) / Math.max(1, m.r.requests) : null;
        const tls = row.https === true ? `, upstream handshakes ${s1.handshakes - s0.handshakes}, resumed ${s1.resumed - s0.resumed}` : '';
        log(`${row.only} ${t.name}: ${m.r.rps.toFixed(0)} req/s, p50 ${m.r.latencyUs.p50.toFixed(0)} µs, p99 ${m.r.latencyUs.p99.toFixed(0)} µs, errors ${m.r.errors}${per !== null ? `, ${per.toFixed(1)} ${row.unit}` : ''}${tls}`);
        return { ...m, per, tls };
      }, (m) => m.r.rps);
      for (const [t, { median: { r, per, tls }, note, all }] of rounds) {
        const cpuRounds = all.map((m) => m.per).filter((v): v is number => v !== null);
        const cpuNote = cpuRounds.length > 1 ? `; ${row.unit} by round ${cpuRounds.map((v) => v.toFixed(1)).join(', ')}` : '';
        const text = `${note}${cpuNote}${tls}`.replace(/^[;, ]+/, '');
        put(`${row.label} (req/s)`, t.name, { value: r.rps, cpuPerUnit: per, cpuUnit: row.unit, higherIsBetter: true, errors: r.errors, spread: spreadOf(all.map((m) => m.r.rps)), ...(cpuRounds.length > 1 ? { cpuSpread: spreadOf(cpuRounds) } : {}), ...(text !== '' ? { note: text } : {}) });
        put(`${row.label}, p99 (µs)`, t.name, { value: r.latencyUs.p99, cpuPerUnit: null, cpuUnit: '', higherIsBetter: false, errors: r.errors });
      }
    }

    // Stop the shared peers before the memory and capture runs (fresh processes there).
    for (const p of peers) await p.stop();

    // ---- Two hops at a fixed rate: client -> hop 1 (the sidecar's place) -> hop 2 (the gateway's) ->
    // upstream (1 kB responses), paced open loop at TWO_HOP_RATE req/s; the figure is each percentile
    // added over the direct path measured in the same round. Both sluice hops are gateway-role
    // processes (the same L7 path a sidecar's outbound listener runs, without iptables capture, which
    // the capture row measures on its own); nginx -> nginx and HAProxy -> HAProxy on the same path.
    if (ONLY.has('two-hop')) {
      const u = await startUpstream();
      const hopTargets: Target[] = [{ name: 'direct', ports: { tcp: 0, http: u.ports.http1k, sni: 0, tlsorig: 0, tcphttp: 0, tcpclose: 0 }, peer: null, up: u }];
      const hopCpu = new Map<Target, Peer[]>();
      for (const n of peerNames.filter((x) => x !== 'node-relay')) {
        const hop2 = await startPeer(n, fs.mkdtempSync(path.join(tmp, `hop2-${n}-`)), { ...u.targets, http: u.ports.http1k });
        cleanup.push(() => hop2.stop());
        const hop1 = await startPeer(n, fs.mkdtempSync(path.join(tmp, `hop1-${n}-`)), { ...u.targets, http: hop2.ports.http });
        cleanup.push(() => hop1.stop());
        const both: Peer = { ...hop1, cpuSeconds: async () => (await hop1.cpuSeconds()) + (await hop2.cpuSeconds()) };
        const t: Target = { name: n, ports: hop1.ports, peer: both, up: u };
        hopTargets.push(t);
        hopCpu.set(t, [hop1, hop2]);
      }
      // JIT warm-up of both hops (a fresh Node proxy is several times slower per request at first)
      if (cload.wrk) for (const t of hopTargets) if (t.peer !== null) await wrk({ url: `http://127.0.0.1:${t.ports.http}/`, host: HTTP_HOST, connections: WRK_CONNECTIONS, durationS: JIT_WARMUP_S });
      const byRound = new Map<Target, { r: HttpLoadResult; cpu: number }[]>(hopTargets.map((t) => [t, []]));
      for (let k = 0; k < ROUNDS; k++) {
        for (let i = 0; i < hopTargets.length; i++) {
          const t = hopTargets[(i + k) % hopTargets.length]!;
          const m = await withCpu(t, () => paced({ host: '127.0.0.1', port: t.ports.http, hostHeader: HTTP_HOST, connections: 16, rate: TWO_HOP_RATE, durationS: DURATION, warmupS: WARMUP_S }));
          byRound.get(t)!.push(m);
          log(`two-hop ${t.name} round ${k + 1}: p50 ${m.r.latencyUs.p50.toFixed(0)} µs, p90 ${m.r.latencyUs.p90.toFixed(0)}, p99 ${m.r.latencyUs.p99.toFixed(0)}, errors ${m.r.errors + m.r.non2xx}`);
        }
      }
      const direct = byRound.get(hopTargets[0]!)!;
      for (const t of hopTargets) {
        const ms = byRound.get(t)!;
        for (const q of ['p50', 'p90', 'p99'] as const) {
          // added latency per round (same round's direct), median over rounds, spread shown
          const added = ms.map((m, k) => (t.peer === null ? m.r.latencyUs[q] : m.r.latencyUs[q] - direct[k]!.r.latencyUs[q]));
          const sorted = [...added].sort((a, b) => a - b);
          const cpus = ms.map((m) => (m.cpu * 1e6) / Math.max(1, m.r.totalRequests));
          put(`Two hops at ${TWO_HOP_RATE} req/s, 1 kB, ${q} ${t.peer === null ? '' : 'added '}(µs)`, t.name, {
            value: sorted[(sorted.length - 1) >> 1]!, cpuPerUnit: q === 'p50' && t.peer ? [...cpus].sort((a, b) => a - b)[(cpus.length - 1) >> 1]! : null,
            cpuUnit: q === 'p50' && t.peer ? 'CPU-µs/req (both hops)' : '', higherIsBetter: false, errors: ms.reduce((a, m) => a + m.r.errors + m.r.non2xx, 0),
            spread: spreadOf(added), ...(added.length > 1 ? { note: `${t.peer === null ? 'direct (absolute)' : 'added over direct'} by round: ${added.map((v) => v.toFixed(0)).join(', ')}` } : {}),
          });
        }
      }
      for (const hops of hopCpu.values()) for (const p of hops) await p.stop();
      u.stop();
    }

    // ---- Multi-core: sluice --concurrency 2 vs nginx 2 workers vs HAProxy nbthread 2, CPU per L7
    // request (the 2-core machine also runs the client, so rates cannot show scaling here), and
    // sluice with one worker in the same rounds: the primary's and the IPC's tax.
    if (ONLY.has('multi-core') && cload.wrk) {
      const mcTargets: Target[] = [];
      const oneWorker = new Map<Target, boolean>();
      for (const n of peerNames.filter((x) => x !== 'node-relay')) {
        for (const workers of n === 'sluice' ? [1, 2] : [2]) {
          const u = await startUpstream();
          const p = await startPeer(n, fs.mkdtempSync(path.join(tmp, `mc-${n}-${workers}-`)), u.targets, { workers });
          cleanup.push(() => p.stop());
          const t: Target = { name: n, ports: p.ports, peer: p, up: u };
          mcTargets.push(t);
          oneWorker.set(t, workers === 1);
        }
      }
      const rounds = await interleaved(mcTargets, async (t) => {
        const url = `http://127.0.0.1:${t.ports.http}/`;
        await warmOnce(t, url, HTTP_HOST);
        await wrk({ url, host: HTTP_HOST, connections: WRK_CONNECTIONS, durationS: WARMUP_S });
        const m = await withCpu(t, () => wrk({ url, host: HTTP_HOST, connections: WRK_CONNECTIONS, durationS: DURATION }));
        const per = (m.cpu * 1e6) / Math.max(1, m.r.requests);
        log(`multi-core ${t.name}${oneWorker.get(t) === true ? ' (1 worker)' : ' (2)'}: ${m.r.rps.toFixed(0)} req/s, ${per.toFixed(1)} CPU-µs/req, errors ${m.r.errors}`);
        return { ...m, per };
      }, (m) => m.per);
      for (const [t, { median: { r, per }, note, all }] of rounds) {
        const label = oneWorker.get(t) === true ? 'L7 keep-alive, sluice 1 worker beside the 2-worker row, wrk (req/s)' : 'L7 keep-alive, 2 workers / nbthread 2, wrk (req/s)';
        put(label, t.name, { value: r.rps, cpuPerUnit: per, cpuUnit: 'CPU-µs/req', higherIsBetter: true, errors: r.errors, spread: spreadOf(all.map((m) => m.r.rps)), cpuSpread: spreadOf(all.map((m) => m.per)), note: note.replace('median of', 'CPU-µs/req, median of') });
      }
      for (const t of mcTargets) { await t.peer!.stop(); t.up.stop(); }
    }

    // ---- RSS per idle proxied connection
    if (ONLY.has('idle-rss')) {
      for (const n of peerNames) {
        const dir = fs.mkdtempSync(path.join(tmp, `idle-${n}-`));
        const p = await startPeer(n, dir, directUp.targets);
        try {
          // Warm the path first so one-time allocations are not counted per connection.
          const warm = tcpLoad({ mode: 'idle', host: '127.0.0.1', port: p.ports.tcp, count: 200 });
          await warm.result;
          warm.child.kill();
          await new Promise((r) => setTimeout(r, 500));
          const before = p.rssBytes();
          const idle = tcpLoad({ mode: 'idle', host: '127.0.0.1', port: p.ports.tcp, count: IDLE });
          raiseNofile(idle.child.pid!);
          const r = await idle.result;
          await new Promise((res) => setTimeout(res, 1000));
          const after = p.rssBytes();
          // Then once the connections have been idle a while: a Node heap grown by the burst of
          // accepts (young generation, old-space garbage) is returned only when V8's memory reducer
          // judges the process idle, which takes seconds (or its 100 s watchdog).
          await new Promise((res) => setTimeout(res, IDLE_SETTLE_S * 1000));
          const settled = p.rssBytes();
          idle.child.kill();
          const held = Math.max(1, r.held ?? 0);
          const per = (after - before) / held;
          const perSettled = (settled - before) / held;
          put(`RSS per idle proxied connection at ${IDLE / 1000}k (bytes)`, n, { value: per, cpuPerUnit: null, cpuUnit: '', higherIsBetter: false, errors: r.errors, note: `held ${r.held}, RSS ${(before / 2 ** 20).toFixed(1)} -> ${(after / 2 ** 20).toFixed(1)} MiB` });
          put(`RSS per idle proxied connection at ${IDLE / 1000}k, after ${IDLE_SETTLE_S} s idle (bytes)`, n, { value: perSettled, cpuPerUnit: null, cpuUnit: '', higherIsBetter: false, errors: r.errors, note: `RSS ${(settled / 2 ** 20).toFixed(1)} MiB after ${IDLE_SETTLE_S} s` });
          log(`idle-rss ${n}: ${per.toFixed(0)} B/conn after 1 s, ${perSettled.toFixed(0)} after ${IDLE_SETTLE_S} s idle (held ${r.held}, ${(before / 2 ** 20).toFixed(1)} -> ${(after / 2 ** 20).toFixed(1)} -> ${(settled / 2 ** 20).toFixed(1)} MiB)`);
        } finally {
          await p.stop();
        }
      }
    }

    /** The netns rows need root: say so loudly and skip, else run. */
    const asRoot = (name: string): boolean => {
      if (process.getuid?.() === 0) return true;
      const why = `${name} SKIPPED: needs root for network namespaces and iptables REDIRECT`;
      log(`bench: ${why}`);
      report.skipped.push(why);
      return false;
    };

    // ---- Sidecar capture vs a gateway port (netns, root only)
    if (ONLY.has('capture')) {
      if (asRoot('capture')) {
        const c: CaptureResult = await runCapture({ durationS: DURATION, parallel: PARALLEL, rounds: ROUNDS, log });
        report.extra.capture = c;
        const metric = 'Sidecar capture, short TCP connections (conn/s)';
        const rounds = (r: CaptureRun): string => (ROUNDS > 1 ? `median of ${ROUNDS} interleaved rounds: ${r.rounds.map(fmtRound).join(', ')}` : '');
        put(metric, 'direct', { value: c.direct.load.rate, cpuPerUnit: null, cpuUnit: 'CPU-µs/conn', higherIsBetter: true, errors: c.direct.load.errors, note: rounds(c.direct) });
        put(metric, 'sluice (gateway port)', { value: c.gatewayPort.load.rate, cpuPerUnit: c.gatewayPort.proxyCpuUsPerConn, cpuUnit: 'CPU-µs/conn', higherIsBetter: true, errors: c.gatewayPort.load.errors, note: rounds(c.gatewayPort) });
        put(metric, 'sluice', { value: c.captured.load.rate, cpuPerUnit: c.captured.proxyCpuUsPerConn, cpuUnit: 'CPU-µs/conn', higherIsBetter: true, errors: c.captured.load.errors, note: `REDIRECT + SO_ORIGINAL_DST; ${rounds(c.captured)}` });
      }
    }

    // ---- The sidecar's inbound side (15006), beside the outbound capture row (netns, root only)
    if (ONLY.has('inbound')) {
      if (asRoot('inbound')) {
        const r = await runInbound({ durationS: DURATION, parallel: PARALLEL, connections: CONNECTIONS, log });
        report.extra.inbound = r;
        const tcpMetric = 'Sidecar inbound, short TCP connections (conn/s)';
        put(tcpMetric, 'direct', { value: r.tcp.direct.rate, cpuPerUnit: null, cpuUnit: 'CPU-µs/conn', higherIsBetter: true, errors: r.tcp.direct.errors });
        put(tcpMetric, 'sluice', { value: r.tcp.captured.rate, cpuPerUnit: r.tcp.proxyCpuUsPerConn, cpuUnit: 'CPU-µs/conn', higherIsBetter: true, errors: r.tcp.captured.errors, note: 'PREROUTING REDIRECT to 15006, InboundPassthroughClusterIpv4 from 127.0.0.6' });
        const httpMetric = 'Sidecar inbound, HTTP keep-alive requests (req/s)';
        put(httpMetric, 'direct', { value: r.http.direct.rps, cpuPerUnit: null, cpuUnit: 'CPU-µs/req', higherIsBetter: true, errors: r.http.direct.errors });
        put(httpMetric, 'sluice', { value: r.http.captured.rps, cpuPerUnit: r.http.proxyCpuUsPerRequest, cpuUnit: 'CPU-µs/req', higherIsBetter: true, errors: r.http.captured.errors, note: 'declared HTTP port: inbound|8000||, plain text (PERMISSIVE)' });
      }
    }

    // ---- Where sluice's time goes (node --cpu-prof), L7 keep-alive and L4 short connections
    if (ONLY.has('profile')) {
      const profiles: Record<string, ProfileSummary> = {};
      for (const kind of ['l7', 'l4-short', 'tls-orig'] as const) {
        const dir = fs.mkdtempSync(path.join(tmp, `prof-${kind}-`));
        const p = await startPeer('sluice', dir, directUp.targets, { cpuProfDir: dir });
        try {
          if (kind === 'l7') await saturate({ url: `http://127.0.0.1:${p.ports.http}/`, host: HTTP_HOST, connections: CONNECTIONS, durationS: DURATION, warmupS: 0 });
          else if (kind === 'tls-orig') await saturate({ url: `http://127.0.0.1:${p.ports.tlsorig}/`, host: TLS_HOST, connections: CONNECTIONS, durationS: DURATION, warmupS: 0 });
          else await tcpLoad({ mode: 'short', host: '127.0.0.1', port: p.ports.tcp, parallel: PARALLEL, durationMs: dur, warmupMs: 0 }).result;
        } finally {
          await p.stop();
        }
        const file = newestProfile(dir);
        if (file === null) { report.skipped.push(`profile ${kind}: no .cpuprofile written`); continue; }
        profiles[kind] = summarize(file, 15);
        fs.copyFileSync(file, path.join(tmp, `${kind}.cpuprofile`));
      }
      report.extra.profiles = profiles;
    }

    // ---- Config at scale (own process: a clean heap and its own event loop)
    if (ONLY.has('config-scale')) {
      const child = spawn(process.execPath, [path.join(DIST, 'config-scale.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
      report.extra.configScale = await childJson<ConfigScaleResult>(child, 'config-scale', Math.max(60_000, bound - (Date.now() - started) - 15_000));
    }

    report.seconds = (Date.now() - started) / 1000;
    report.machine.loadAvgEnd = os.loadavg()[0]!;
    const md = renderMarkdown(report);
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    const stamp = report.startedAt.replace(/[:.]/g, '-');
    fs.writeFileSync(path.join(RESULTS_DIR, `${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
    fs.writeFileSync(path.join(RESULTS_DIR, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
    fs.writeFileSync(path.join(RESULTS_DIR, 'latest.md'), md + '\n');
    process.stdout.write(md + '\n');
    log(`bench: done in ${report.seconds.toFixed(0)} s; results in bench/results/${stamp}.json and latest.{json,md}`);
  } finally {
    for (const fn of cleanup.reverse()) {
      try { await fn(); } catch { /* best effort */ }
    }
  }
}

/** interleaved()'s shape for a row measured once per target. */
async function once1<R>(ts: readonly Target[], measure: (t: Target) => Promise<R>): Promise<Map<Target, { median: R; note: string; all: R[] }>> {
  const out = new Map<Target, { median: R; note: string; all: R[] }>();
  for (const t of ts) { const r = await measure(t); out.set(t, { median: r, note: '', all: [r] }); }
  return out;
}

function putHttp(put: (m: string, t: string, c: Cell) => void, label: string, t: Target, r: HttpLoadResult, cpu: number, note?: string): void {
  const errors = r.errors + r.non2xx;
  const cpuPer = t.peer ? (cpu * 1e6) / Math.max(1, r.totalRequests) : null;
  put(`${label} (req/s)`, t.name, { value: r.rps, cpuPerUnit: cpuPer, cpuUnit: 'CPU-µs/req', higherIsBetter: true, errors, ...(note ? { note } : {}) });
  put(`${label}, p50 (µs)`, t.name, { value: r.latencyUs.p50, cpuPerUnit: null, cpuUnit: '', higherIsBetter: false, errors });
  put(`${label}, p99 (µs)`, t.name, { value: r.latencyUs.p99, cpuPerUnit: null, cpuUnit: '', higherIsBetter: false, errors });
  put(`${label}, p99.9 (µs)`, t.name, { value: r.latencyUs.p999, cpuPerUnit: null, cpuUnit: '', higherIsBetter: false, errors });
  log(`${label} ${t.name}: ${r.rps.toFixed(0)} req/s, p50 ${r.latencyUs.p50.toFixed(0)} µs, p99 ${r.latencyUs.p99.toFixed(0)} µs, p99.9 ${r.latencyUs.p999.toFixed(0)} µs, errors ${errors}${cpuPer !== null ? `, ${cpuPer.toFixed(1)} CPU-µs/req` : ''}${note ? `, ${note}` : ''}`);
}

async function versionOf(cmd: string, args: string[]): Promise<string> {
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await once(c, 'exit');
  return out.split('\n')[0]!.trim();
}

main().then(() => process.exit(0), (e: unknown) => { log(`bench: FAILED: ${(e as Error).stack ?? String(e)}`); process.exit(1); });
