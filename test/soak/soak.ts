// The chaos soak (`npm run soak`; SOAK_MINUTES, default 10). Random transfers through a sidecar
// (real iptables capture) and an egress gateway in network namespaces (world.ts), driven by
// driver.ts, while the config is rewritten every second (valid and invalid in turn), a worker of
// one proxy or the other is SIGKILLed every 10 s, the sink resets connections it was told to, and
// one upstream drops every SYN. Then checks.ts judges what happened and this prints the figures.
//
// runSoak() is also what test/e2e/soak.test.ts runs for ~25 s.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TeardownHost } from '../e2e/harness/topology';
import { distFile } from '../e2e/harness/paths';
import { counterRegressions, indexLines, judge, promCounters, type Judgement, type Kill, type Regression, type StatsSample } from './checks';
import type { Plan, ProxyName, TransferResult } from './plan';
import { APP_IP, buildWorld, PROXY_HOST, TARGETS, writeChaos, type World } from './world';

const MIB = 1024 * 1024;
const PROXIES: readonly ProxyName[] = ['sidecar', 'gateway'];

export interface SoakOptions {
  readonly durationMs: number;
  readonly concurrency: number;
  readonly seed: number;
  readonly reloadEveryMs: number;
  readonly killEveryMs: number;
  /** Driver's hang limit per transfer (Plan.hangMs). */
  readonly hangMs?: number;
  /** Stated bound on each proxy's RSS (primary + 2 workers), sampled every second. */
  readonly rssBoundBytes: number;
  readonly log?: (line: string) => void;
}

export const DEFAULT_RSS_BOUND = 600 * MIB;

export interface ProcessFigures {
  baselineFds: number;
  /** Of those, the primary's (on Node 20 it accepts every connection and hands it to a worker). */
  baselinePrimaryFds: number;
  endFds: number;
  endPrimaryFds: number;
  /** Connections the proxy itself reports open at the end (downstream + upstream gauges): each holds an fd. */
  endOpenConnections: number;
  peakRss: number;
  configApplied: number;
  configRejected: number;
}

export interface SoakReport {
  readonly options: SoakOptions;
  readonly elapsedMs: number;
  readonly results: TransferResult[];
  readonly judgement: Judgement;
  readonly kills: Kill[];
  readonly reloads: number;
  readonly regressions: Regression[];
  readonly proxies: Record<ProxyName, ProcessFigures>;
  readonly driverExit: string;
}

/** pids of a process and its descendants (the primary and its cluster workers). */
function tree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // exited while we listed
    }
  }
  const out = [root];
  for (let i = 0; i < out.length && i < 100; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
}

function rss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function fds(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** Downstream connections per listener plus upstream connections per cluster, from /stats text. */
function openConnections(stats: string): number {
  let n = 0;
  for (const m of stats.matchAll(/^(?:listener\.(?!.*\.http\.).*\.downstream_cx_active|cluster\..*\.upstream_cx_active): (\d+)$/gm)) n += Number(m[1]);
  return n;
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function adminGet(world: World, proxy: ProxyName, p: string): Promise<string> {
  const r = await world.topo.exec(PROXY_HOST[proxy], ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:15000' + p]);
  return r.code === 0 ? r.stdout : '';
}

export async function runSoak(t: TeardownHost, opts: SoakOptions): Promise<SoakReport> {
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-soak-'));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const world = await buildWorld(t, dir);
  const lines: Record<ProxyName, string[]> = { sidecar: [], gateway: [] };
  for (const p of PROXIES) {
    world.proxies[p].on('line', (line: string, stream: string) => {
      if (stream === 'stdout' && line.startsWith('[')) lines[p].push(line);
    });
  }
  const figures = {} as Record<ProxyName, ProcessFigures>;
  await sleep(1000);
  for (const p of PROXIES) figures[p] = { baselineFds: sum(tree(world.proxies[p].pid).map(fds)), baselinePrimaryFds: fds(world.proxies[p].pid), endFds: 0, endPrimaryFds: 0, endOpenConnections: 0, peakRss: 0, configApplied: 0, configRejected: 0 };
  log(`soak: world up; baseline fds sidecar ${figures.sidecar.baselineFds}, gateway ${figures.gateway.baselineFds}; running ${(opts.durationMs / 1000).toFixed(0)} s, seed ${opts.seed}`);

  const plan: Plan = { seed: opts.seed, durationMs: opts.durationMs, concurrency: opts.concurrency, ...(opts.hangMs !== undefined ? { hangMs: opts.hangMs } : {}), targets: TARGETS };
  const results: TransferResult[] = [];
  const driver = world.topo.spawn('app', [process.execPath, distFile('test/soak/driver.js'), JSON.stringify(plan)], { name: 'driver' });
  driver.on('line', (line: string, stream: string) => {
    if (stream === 'stdout' && line.startsWith('{')) results.push(JSON.parse(line) as TransferResult);
  });
  const started = Date.now();
  const kills: Kill[] = [];
  const samples: Record<ProxyName, StatsSample[]> = { sidecar: [], gateway: [] };
  let reloads = 0;
  let running = true;

  const reloadLoop = (async () => {
    while (running) {
      await sleep(opts.reloadEveryMs);
      if (!running) break;
      writeChaos(world.configDir, ++reloads);
    }
  })();
  const killLoop = (async () => {
    for (let n = 0; running; n++) {
      await sleep(opts.killEveryMs);
      if (!running) break;
      const proxy = PROXIES[n % 2]!;
      const workers = tree(world.proxies[proxy].pid).slice(1).filter((pid) => {
        try {
          return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('cli.js');
        } catch {
          return false;
        }
      });
      const pid = workers[Math.floor(Math.random() * workers.length)];
      if (pid === undefined) continue;
      try {
        process.kill(pid, 'SIGKILL');
        kills.push({ proxy, at: Date.now(), pid });
        log(`soak: ${((Date.now() - started) / 1000).toFixed(0)} s: killed ${proxy} worker ${pid} (of ${workers.length}); ${results.length} transfers so far`);
      } catch {
        // it had just died
      }
    }
  })();
  const sampleLoop = (async () => {
    while (running) {
      for (const p of PROXIES) {
        const pids = tree(world.proxies[p].pid);
        figures[p].peakRss = Math.max(figures[p].peakRss, sum(pids.map(rss)));
      }
      for (const p of PROXIES) {
        const text = await adminGet(world, p, '/stats/prometheus');
        if (text !== '') samples[p].push({ at: Date.now(), counters: promCounters(text) });
      }
      await sleep(1000);
    }
  })();

  let deadline: NodeJS.Timeout | undefined;
  const exit = await Promise.race([driver.exited, new Promise<null>((r) => (deadline = setTimeout(() => r(null), opts.durationMs + 240_000)))]);
  clearTimeout(deadline);
  const driverExit = exit === null ? 'still running after the deadline (killed)' : `${driver.exitStatus?.code ?? driver.exitStatus?.signal}`;
  if (exit === null) await driver.stop();
  running = false;
  await Promise.all([reloadLoop, killLoop, sampleLoop]);
  const elapsedMs = Date.now() - started;

  // Quiet: the last replacement workers come up, then the sink drops every connection it holds, so
  // pooled upstream connections close and each proxy's fds must come back to the baseline.
  await sleep(3000);
  world.sink.kill('SIGUSR2');
  await sleep(3000);
  for (const p of PROXIES) {
    figures[p].endFds = sum(tree(world.proxies[p].pid).map(fds));
    figures[p].endPrimaryFds = fds(world.proxies[p].pid);
    const text = await adminGet(world, p, '/stats/prometheus');
    samples[p].push({ at: Date.now(), counters: promCounters(text) });
    const stats = await adminGet(world, p, '/stats');
    figures[p].configApplied = Number(/^sluice\.config\.applied: (\d+)$/m.exec(stats)?.[1] ?? 0);
    figures[p].configRejected = Number(/^sluice\.config\.rejected: (\d+)$/m.exec(stats)?.[1] ?? 0);
    figures[p].endOpenConnections = openConnections(stats);
  }
  // Lines of the last transfers reach stdout through the primary a moment after the fact.
  await sleep(500);
  const judgement = judge(results, TARGETS, { sidecar: indexLines('sidecar', lines.sidecar), gateway: indexLines('gateway', lines.gateway) }, kills, APP_IP);
  const regressions = PROXIES.flatMap((p) => counterRegressions(p, samples[p], kills));
  if (process.env['SOAK_DUMP']) fs.writeFileSync(process.env['SOAK_DUMP'], JSON.stringify({ results, kills, lines, regressions, stderr: { sidecar: world.proxies.sidecar.stderr, gateway: world.proxies.gateway.stderr, driver: driver.stderr } }));
  return { options: opts, elapsedMs, results, judgement, kills, reloads, regressions, proxies: figures, driverExit };
}

// ------------------------------------------------------------------ the figures

export interface Checks {
  readonly corrupted: number;
  readonly unexpected: number;
  /** Transfers that neither completed nor failed within the hang limit. */
  readonly hung: number;
  readonly counterRegressions: number;
  readonly fdsBack: boolean;
  readonly rssBounded: boolean;
  readonly accessLogExact: boolean;
}

export function checksOf(r: SoakReport): Checks {
  const unexpected = r.judgement.verdicts.filter((v) => v.category === 'unexpected').length;
  return {
    corrupted: r.judgement.corrupted.length,
    unexpected,
    hung: r.results.filter((x) => x.error === 'hang').length,
    counterRegressions: r.regressions.length,
    fdsBack: PROXIES.every((p) => r.proxies[p].endFds <= r.proxies[p].baselineFds + r.proxies[p].endOpenConnections),
    rssBounded: PROXIES.every((p) => r.proxies[p].peakRss <= r.options.rssBoundBytes),
    // Every line belongs to one transfer, except gateway TCP lines of transfers that never learnt
    // their upstream address (they are counted apart in the report).
    accessLogExact: r.judgement.unparsed.length === 0 && r.judgement.linesMatched.sidecar === r.judgement.linesTotal.sidecar,
  };
}

export function formatReport(r: SoakReport): string {
  const out: string[] = [];
  const v = r.judgement.verdicts;
  const bytes = sum(r.results.map((x) => x.up + x.downLen));
  const by = (f: (x: (typeof v)[number]) => string): Map<string, number> => {
    const m = new Map<string, number>();
    for (const x of v) m.set(f(x), (m.get(f(x)) ?? 0) + 1);
    return new Map([...m].sort((a, b) => b[1] - a[1]));
  };
  const c = checksOf(r);
  out.push(`soak: ${(r.elapsedMs / 1000).toFixed(0)} s, seed ${r.options.seed}, ${r.options.concurrency} client loops; driver exit ${r.driverExit}`);
  out.push(`transfers: ${r.results.length} (${(bytes / MIB).toFixed(0)} MiB moved through the proxies), largest ${(Math.max(0, ...r.results.map((x) => Math.max(x.up, x.down))) / MIB).toFixed(1)} MiB`);
  out.push(`  by target: ${[...by((x) => x.result.target)].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  out.push(`  by behaviour: ${[...by((x) => x.result.behavior)].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  out.push(`  verdicts: ${[...by((x) => x.category)].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  out.push(`  expected failures: ${[...by((x) => (x.category === 'expected' ? x.reason.replace(/ \(completed anyway\)|;.*$/g, '') : ''))].filter(([k]) => k !== '').map(([k, n]) => `${k} ${n}`).join(', ')}`);
  for (const x of v.filter((x) => x.category === 'unexpected').slice(0, 15)) out.push(`  UNEXPECTED ${x.result.id} ${x.result.target} ${x.result.behavior} up ${x.result.up} down ${x.result.down}: ${x.reason}`);
  out.push(`corrupted transfers (a byte differs): ${c.corrupted}; hung transfers: ${c.hung}`);
  out.push(`chaos: ${r.reloads} config rewrites (valid and invalid in turn); ${r.kills.length} worker kills (${r.kills.filter((k) => k.proxy === 'sidecar').length} sidecar, ${r.kills.filter((k) => k.proxy === 'gateway').length} gateway)`);
  for (const p of PROXIES) {
    const f = r.proxies[p];
    out.push(`${p}: fds baseline ${f.baselineFds} (primary ${f.baselinePrimaryFds}), end ${f.endFds} (primary ${f.endPrimaryFds}) with ${f.endOpenConnections} connections open (kept-alive pools); peak RSS ${(f.peakRss / MIB).toFixed(0)} MiB (bound ${(r.options.rssBoundBytes / MIB).toFixed(0)} MiB, primary + 2 workers); config applied ${f.configApplied}, rejected ${f.configRejected} (counted by live processes)`);
    out.push(`  access log: ${r.judgement.linesTotal[p]} lines, ${r.judgement.linesMatched[p]} matched to a transfer`);
  }
  if (r.judgement.unparsed.length > 0) out.push(`  unparsed access-log lines: ${r.judgement.unparsed.length}, e.g. ${r.judgement.unparsed[0]}`);
  const afterKill = r.regressions.filter((x) => x.afterKill).length;
  out.push(`counter regressions: ${r.regressions.length} (${afterKill} right after a worker kill)`);
  for (const x of r.regressions.slice(0, 5)) out.push(`  ${x.proxy} ${x.series}: ${x.from} -> ${x.to}${x.afterKill ? ' (after a kill)' : ''}`);
  out.push(`checks: corrupted ${c.corrupted === 0 ? 'PASS' : 'FAIL'}, unexpected failures ${c.unexpected === 0 ? 'PASS' : 'FAIL'}, counters monotonic ${c.counterRegressions === 0 ? 'PASS' : 'FAIL'}, fds back to baseline ${c.fdsBack ? 'PASS' : 'FAIL'}, RSS bounded ${c.rssBounded ? 'PASS' : 'FAIL'}, access log one line per request ${c.accessLogExact && c.unexpected === 0 ? 'PASS' : 'FAIL'}`);
  return out.join('\n');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('soak: needs root (network namespaces, iptables)\n');
    process.exitCode = 2;
    return;
  }
  const minutes = Number(process.env['SOAK_MINUTES'] ?? 10);
  const teardowns: (() => unknown)[] = [];
  const host: TeardownHost = { teardown: (fn) => teardowns.push(fn) };
  try {
    const report = await runSoak(host, {
      durationMs: Math.round(minutes * 60_000),
      concurrency: Number(process.env['SOAK_CONCURRENCY'] ?? 6),
      seed: Number(process.env['SOAK_SEED'] ?? Date.now() % 100000),
      reloadEveryMs: 1000,
      killEveryMs: 10_000,
      rssBoundBytes: Number(process.env['SOAK_RSS_BOUND_MIB'] ?? DEFAULT_RSS_BOUND / MIB) * MIB,
    });
    const text = formatReport(report);
    process.stdout.write(text + '\n');
    if (process.env['SOAK_REPORT']) fs.writeFileSync(process.env['SOAK_REPORT'], text + '\n');
    const c = checksOf(report);
    process.exitCode = c.corrupted === 0 && c.unexpected === 0 && c.counterRegressions === 0 && c.fdsBack && c.rssBounded && c.accessLogExact ? 0 : 1;
  } finally {
    for (const fn of teardowns.reverse()) await fn();
  }
}

if (require.main === module) void main();
