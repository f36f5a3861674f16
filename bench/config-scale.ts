// Config at scale: 10,000 ServiceEntries, each with a VirtualService and a
// DestinationRule (subsets, traffic policy, retries/timeouts), compiled for a sidecar.
//   1. load (YAML parse + validation) and compile times, median of REPS runs;
//   2. runtime lookups stay flat: ns per (listener -> filter chain -> virtual host -> route)
//      lookup through config/compile/lookup.ts at 10 hosts and at 10,000 hosts;
//   3. how long a reload at that size blocks the event loop: a real Runtime watching the file, the
//      file rewritten, the longest event-loop gap measured from a 1 ms timer while the reload runs.
//      Traffic on that process would stall for exactly that gap; the target is "no more than one
//      compile".
//   4. where a compile's time goes: a V8 CPU profile (node:inspector) of one load + compile.
//
// Every address is in 198.18.0.0/15 and nothing is resolved or connected to.
//
//   node dist/bench/config-scale.js     HOSTS=10000 REPS=1 RELOAD_HOSTS=10000 PROFILE_HOSTS=2000; JSON on stdout
// Also run by `npm run bench` (ONLY=config-scale).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import inspector from 'node:inspector';
import pino from 'pino';
import { loadText } from '../config/resources/load';
import { compile } from '../config/compile';
import { findListener, findRoute, findVirtualHost, selectChain, type ChainInput, type RequestView } from '../config/compile/lookup';
import type { Snapshot } from '../config/compile/snapshot';
import { Runtime, type RunOptions } from '../proxy/runtime';
import { summarize, type ProfileSummary } from './macro/profile';

export interface ConfigScaleResult {
  hosts: number;
  yamlBytes: number;
  documents: number;
  loadMs: number;
  compileMs: number;
  clusters: number;
  /** cycling over every host (each lookup touches cold memory at 10,000) */
  lookupNs: { hosts10: number; hostsN: number; ratio: number };
  /** the same host every time: the algorithm's cost without cache misses */
  hotLookupNs: { hosts10: number; hostsN: number; ratio: number };
  /** load and compile times at smaller sizes too: shows how they grow */
  curve: { hosts: number; loadMs: number; compileMs: number }[];
  reload: { hosts: number; blockedMaxMs: number; appliedAfterMs: number; loadPlusCompileMs: number; withinOneCompile: boolean };
  profileHosts: number;
  profile: ProfileSummary | null;
}

const OPTS = { role: 'sidecar' as const, namespace: 'default', labels: { app: 'bench' }, outboundPolicy: 'ALLOW_ANY' as const, certsDir: '/etc/certs' };

export function scaleYaml(n: number, salt = ''): string {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const h = `svc-${i}.bench.example`;
    // STATIC with addresses in 198.18.0.0/15: resolution DNS would make the reload's cluster update
    // resolve 10,000 names against the machine's DNS server, which a bench must never do.
    const ip = `198.18.${i >> 8}.${i & 255}`;
    const ip2 = `198.19.${i >> 8}.${i & 255}`;
    parts.push(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: se-${i}, namespace: default }
spec:
  hosts: [${h}]
  location: MESH_EXTERNAL
  ports:
  - { number: 80, name: http, protocol: HTTP }
  - { number: 443, name: https, protocol: TLS }
  resolution: STATIC
  endpoints:
  - { address: ${ip}, labels: { version: v1 } }
  - { address: ${ip2}, labels: { version: v2 } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: dr-${i}, namespace: default }
spec:
  host: ${h}
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
    connectionPool: { tcp: { maxConnections: 100, connectTimeout: 2s } }
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v2 }, trafficPolicy: { loadBalancer: { simple: LEAST_REQUEST } } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: vs-${i}${salt}, namespace: default }
spec:
  hosts: [${h}]
  http:
  - match: [{ uri: { prefix: /v2 } }]
    route: [{ destination: { host: ${h}, subset: v2, port: { number: 80 } } }]
    timeout: 5s
  - route:
    - { destination: { host: ${h}, subset: v1, port: { number: 80 } }, weight: 90 }
    - { destination: { host: ${h}, subset: v2, port: { number: 80 } }, weight: 10 }
    retries: { attempts: 2, perTryTimeout: 1s }
`);
  }
  return parts.join('---\n');
}

function progress(s: string): void {
  process.stderr.write(s + '\n');
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function loadAndCompile(text: string): { snapshot: Snapshot; loadMs: number; compileMs: number; documents: number } {
  const t0 = nowMs();
  const r = loadText(text, 'scale.yaml', { defaultNamespace: 'default' });
  const t1 = nowMs();
  const errors = r.messages.filter((m) => m.level === 'error');
  if (errors.length > 0) throw new Error(`scale config rejected: ${errors.slice(0, 3).map((m) => m.text).join('; ')}`);
  const snapshot = compile(r.resources, OPTS);
  const t2 = nowMs();
  const res = r.resources as unknown as Record<string, unknown[]>;
  const documents = Object.values(res).reduce((a, v) => a + (Array.isArray(v) ? v.length : 0), 0);
  return { snapshot, loadMs: t1 - t0, compileMs: t2 - t1, documents };
}

class View implements RequestView {
  method = 'GET';
  path = '/api/items';
  scheme = 'http';
  authority = '';
  header(): string | undefined { return undefined; }
}

/**
 * ns per full HTTP lookup (listener, chain, virtual host, route), cycling over `cycle` hosts: every
 * host, or one host (cycle 1, the last one configured) to separate the lookup's algorithm from the
 * cache misses of touching 10,000 hosts' worth of memory.
 */
function lookupNs(s: Snapshot, hosts: number, iterations: number, cycle = hosts): number {
  const authorities = Array.from({ length: cycle }, (_, i) => `svc-${hosts - cycle + i}.bench.example`);
  const view = new View();
  const chainIn: ChainInput = { isTls: false, sni: null, alpn: null, dstIp: '198.18.0.1' };
  let found = 0;
  const run = (count: number): void => {
    for (let k = 0; k < count; k++) {
      const l = findListener(s, '198.18.0.1', 80);
      if (l === null) continue;
      const ch = selectChain(l, chainIn);
      if (ch === null || ch.filter.kind !== 'http') continue;
      view.authority = authorities[k % cycle]!;
      const vh = findVirtualHost(ch.filter.routeConfig, view.authority);
      if (vh !== null && findRoute(vh, view) !== null) found++;
    }
  };
  run(Math.min(iterations, 200_000)); // warm up the JIT
  found = 0;
  const t0 = process.hrtime.bigint();
  run(iterations);
  const ns = Number(process.hrtime.bigint() - t0) / iterations;
  if (found !== iterations) throw new Error(`lookup found ${found} of ${iterations} routes: the bench config does not route as intended`);
  return ns;
}

async function profileCompile(text: string): Promise<ProfileSummary> {
  const session = new inspector.Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) => session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 200 });
  await post('Profiler.start');
  loadAndCompile(text);
  const { profile } = (await post('Profiler.stop')) as { profile: unknown };
  session.disconnect();
  const file = path.join(os.tmpdir(), `sluice-config-scale-${process.pid}.cpuprofile`);
  fs.writeFileSync(file, JSON.stringify(profile));
  const s = summarize(file, 12);
  fs.rmSync(file, { force: true });
  return s;
}

async function measureReload(text: string, changed: string): Promise<{ blockedMaxMs: number; appliedAfterMs: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-config-scale-'));
  const file = path.join(dir, 'scale.yaml');
  fs.writeFileSync(file, text);
  const opts: RunOptions = {
    role: 'sidecar', configPaths: [file], embeddedConfig: null, namespace: 'default', labels: { app: 'bench' },
    admin: { host: '127.0.0.1', port: 0 }, prometheusPort: null, healthPort: null, outboundPort: 15001, inboundPort: 15006,
    certsDir: dir, outboundPolicy: 'ALLOW_ANY', accessLog: 'off', accessLogFormat: 'istio', concurrency: 1,
    httpProxyPort: null, capture: false, logger: pino({ level: 'silent' }),
  };
  const rt = await Runtime.start(opts);
  try {
    const applied = (): number => { const s = rt.stats.get('sluice.config.applied'); return s !== undefined && s.kind !== 'histogram' ? s.value : 0; };
    const before = applied();
    let last = nowMs();
    let maxGap = 0;
    const timer = setInterval(() => { const n = nowMs(); if (n - last > maxGap) maxGap = n - last; last = n; }, 1);
    await new Promise((r) => setTimeout(r, 50));
    maxGap = 0;
    const t0 = nowMs();
    fs.writeFileSync(file + '.tmp', changed);
    fs.renameSync(file + '.tmp', file);
    const deadline = Date.now() + 60_000;
    while (applied() === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const appliedAfterMs = nowMs() - t0;
    await new Promise((r) => setTimeout(r, 50));
    clearInterval(timer);
    if (applied() === before) throw new Error('the reload was not applied within 60 s');
    return { blockedMaxMs: maxGap, appliedAfterMs };
  } finally {
    await rt.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function runConfigScale(): Promise<ConfigScaleResult> {
  const hosts = Number(process.env.HOSTS ?? 10_000);
  const reps = Number(process.env.REPS ?? 1);
  // The reload runs at full size (the 10,000: about a minute with the boot it needs); the
  // profile at a smaller one. The reload's block is compared with load + compile at the same size,
  // which is what "no more than one compile" means.
  const reloadHosts = Math.min(hosts, Number(process.env.RELOAD_HOSTS ?? hosts));
  const profileHosts = Math.min(hosts, Number(process.env.PROFILE_HOSTS ?? 2000));
  const text = scaleYaml(hosts);
  const loads: number[] = [];
  const compiles: number[] = [];
  let big: Snapshot | null = null;
  let documents = 0;
  for (let i = 0; i < reps; i++) {
    const r = loadAndCompile(text);
    loads.push(r.loadMs);
    compiles.push(r.compileMs);
    big = r.snapshot;
    documents = r.documents;
  }
  const loadMs = median(loads);
  const compileMs = median(compiles);
  progress(`config-scale: ${hosts} hosts, load ${loadMs.toFixed(0)} ms, compile ${compileMs.toFixed(0)} ms`);
  const small = loadAndCompile(scaleYaml(10)).snapshot;
  const iterations = 1_000_000;
  const ns10 = lookupNs(small, 10, iterations);
  const hot10 = lookupNs(small, 10, iterations, 1);
  const nsN = lookupNs(big!, hosts, iterations);
  const hotN = lookupNs(big!, hosts, iterations, 1);
  const clusters = big!.clusters.size;
  big = null;
  progress(`config-scale: lookup ${ns10.toFixed(0)} ns at 10 hosts, ${nsN.toFixed(0)} ns at ${hosts}; one host: ${hot10.toFixed(0)} vs ${hotN.toFixed(0)} ns`);

  const curve: { hosts: number; loadMs: number; compileMs: number }[] = [];
  for (const n of [...new Set([reloadHosts, profileHosts])].filter((n) => n < hosts)) {
    const r = loadAndCompile(scaleYaml(n));
    curve.push({ hosts: n, loadMs: r.loadMs, compileMs: r.compileMs });
  }
  curve.push({ hosts, loadMs, compileMs });
  const reloadText = scaleYaml(reloadHosts);
  const atReload = loadAndCompile(reloadText);
  const reload = await measureReload(reloadText, scaleYaml(reloadHosts, '-r'));
  progress(`config-scale: reload at ${reloadHosts} hosts blocked the event loop for ${reload.blockedMaxMs.toFixed(0)} ms at most (load + compile ${(atReload.loadMs + atReload.compileMs).toFixed(0)} ms)`);
  const profile = await profileCompile(scaleYaml(profileHosts));
  return {
    hosts, yamlBytes: Buffer.byteLength(text), documents, loadMs, compileMs, clusters,
    lookupNs: { hosts10: ns10, hostsN: nsN, ratio: nsN / ns10 },
    hotLookupNs: { hosts10: hot10, hostsN: hotN, ratio: hotN / hot10 },
    curve,
    reload: { hosts: reloadHosts, ...reload, loadPlusCompileMs: atReload.loadMs + atReload.compileMs, withinOneCompile: reload.blockedMaxMs <= (atReload.loadMs + atReload.compileMs) * 1.1 },
    profileHosts,
    profile,
  };
}

if (require.main === module) {
  setTimeout(() => { process.stderr.write('config-scale: gave up after 300 s\n'); process.exit(1); }, 300_000).unref();
  void runConfigScale().then((r) => { process.stdout.write(JSON.stringify(r) + '\n'); process.exit(0); }, (e: unknown) => { process.stderr.write(String((e as Error).stack ?? e) + '\n'); process.exit(1); });
}
