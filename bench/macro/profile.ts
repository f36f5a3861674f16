// Where sluice's time goes: read a V8 .cpuprofile (`node --cpu-prof`) and list the functions with the
// most self time, grouped by function + file:line, with the share of all samples. Also usable alone:
//   node dist/bench/macro/profile.js FILE.cpuprofile [N]
//
// And instructions per request, which do not depend on how busy the machine is (issue 20):
//   node dist/bench/macro/profile.js instructions [--requests 20000] [--warm 5000] [--clients 1] [--peers sluice,nginx,haproxy] [--out FILE]
// Each proxy (one worker, the bench config, its own upstream process) runs under
// `valgrind --tool=cachegrind --cache-sim=no` (plain instruction counting, the same count as
// callgrind's Ir; `perf stat -e instructions` is not supported in this VM) twice: serving WARM
// L7 keep-alive requests and WARM + N requests (h2load --h1, by default one connection: requests
// strictly one after another, so each wakeup carries one event and the count does not depend on
// how the scheduler batched them; with one connection the peers' counts repeat to 0.02%), each
// run ending with a clean exit. (Ir of the second - Ir of the first) / N is the steady-state cost of one request: start,
// config load, JIT warm-up and shutdown are in both runs and cancel out. Also the L4 keep-alive
// (HTTP through the TCP frontend) row the same way.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fork } from 'node:child_process';
import { once } from 'node:events';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface HotFunction { name: string; where: string; selfMs: number; selfPct: number }
export interface ProfileSummary { totalMs: number; busyPct: number; top: HotFunction[]; byArea: Record<string, number> }

function shortUrl(url: string): string {
  if (url === '') return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 13);
  const i = url.indexOf('/dist/');
  if (i >= 0) return url.slice(i + 6);
  return url.replace(/^file:\/\//, '').replace(/^node:/, 'node:');
}

/** Coarse area of a frame, so the report can say "x% in undici, y% in node:http, z% GC". */
function area(cf: CallFrame): string {
  const u = cf.url;
  if (u === '') {
    if (cf.functionName === '(garbage collector)') return 'gc';
    if (cf.functionName === '(idle)') return 'idle';
    if (cf.functionName === '(program)') return 'program (native, syscalls)';
    return 'native';
  }
  if (u.includes('node_modules/undici')) return 'undici';
  if (u.includes('node_modules/')) return 'other deps';
  if (u.includes('/dist/proxy/l7/')) return 'sluice l7';
  if (u.includes('/dist/proxy/l4/')) return 'sluice l4';
  if (u.includes('/dist/proxy/')) return 'sluice other';
  if (u.includes('/dist/config/')) return 'sluice config';
  if (/_http_|http\b|http_parser/.test(u)) return 'node:http';
  if (/net\.js|stream_base|streams?\//.test(u)) return 'node:net/streams';
  return 'node other';
}

export function summarize(file: string, n = 15): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of p.nodes) byId.set(node.id, node);
  const selfUs = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + dt);
    total += dt;
  }
  const agg = new Map<string, HotFunction & { us: number }>();
  const areas = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') { idle += us; continue; }
    // node:inspector's own native frame when profiling in-process (config-scale): not our work.
    if (cf.functionName === 'dispatch' && cf.url === '') { idle += us; continue; }
    const where = cf.url === '' ? '' : `${shortUrl(cf.url)}:${cf.lineNumber + 1}`;
    const key = `${cf.functionName}@${where}`;
    let e = agg.get(key);
    if (e === undefined) agg.set(key, (e = { name: cf.functionName || '(anonymous)', where, selfMs: 0, selfPct: 0, us: 0 }));
    e.us += us;
    const a = area(cf);
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const busy = total - idle;
  const top = [...agg.values()].sort((a, b) => b.us - a.us).slice(0, n)
    .map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, selfPct: busy > 0 ? (100 * e.us) / busy : 0 }));
  const byArea: Record<string, number> = {};
  for (const [k, v] of [...areas].sort((a, b) => b[1] - a[1])) byArea[k] = busy > 0 ? Math.round((1000 * v) / busy) / 10 : 0;
  return { totalMs: total / 1000, busyPct: total > 0 ? (100 * busy) / total : 0, top, byArea };
}

/** The newest .cpuprofile in dir. */
export function newestProfile(dir: string): string | null {
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
  if (files.length === 0) return null;
  files.sort((a, b) => fs.statSync(path.join(dir, b)).mtimeMs - fs.statSync(path.join(dir, a)).mtimeMs);
  return path.join(dir, files[0]!);
}

export function profileMarkdown(title: string, s: ProfileSummary): string {
  const lines = [`**${title}** — ${s.totalMs.toFixed(0)} ms sampled, ${s.busyPct.toFixed(0)}% busy. Self time by area: ` +
    Object.entries(s.byArea).map(([k, v]) => `${k} ${v}%`).join(', ') + '.', '', '| self % (of busy) | function | where |', '|---:|---|---|'];
  for (const f of s.top) lines.push(`| ${f.selfPct.toFixed(1)} | \`${f.name}\` | ${f.where} |`);
  return lines.join('\n');
}

// ------------------------------------------------------------------ instruction counts

export interface InstructionRow { peer: string; path: 'l7' | 'l4'; requests: number; irWarm: number; irFull: number; irPerRequest: number; errors: number }

function cachegrindIr(log: string): number {
  const m = /I\s+refs:\s+([\d,]+)/.exec(fs.readFileSync(log, 'utf8'));
  if (!m) throw new Error(`no "I refs" in ${log}: ${fs.readFileSync(log, 'utf8').slice(-800)}`);
  return Number(m[1]!.replace(/,/g, ''));
}

export async function instructionCounts(o: { requests: number; warm: number; clients: number; peers: string[]; log: (s: string) => void }): Promise<InstructionRow[]> {
  // Imported here so the .cpuprofile summary above stays usable without the bench's peers.
  const { startSluice, startNginx, startHaproxy, HTTP_HOST } = await import('./peers');
  const { h2load } = await import('./c-load');
  const { makeCa } = await import('../../test/e2e/harness/certs');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ir-'));
  const rows: InstructionRow[] = [];
  try {
    // nginx and HAProxy load the TLS origination frontend's CA at start, unused here
    const ca = await makeCa(tmp, 'ir-ca');
    for (const name of o.peers) {
      const up = fork(path.join(__dirname, 'upstream.js'), [JSON.stringify({ only: ['http', 'httpClose'] })], { stdio: ['pipe', 'pipe', 'pipe', 'ipc'] });
      try {
        const line = (await once(up.stdout!, 'data'))[0] as Buffer;
        const ports = (JSON.parse(line.toString().split('\n')[0]!) as { ports: { http: number; httpClose: number } }).ports;
        const targets = { tcp: 1, http: ports.http, tls: 1, https: 1, httpClose: ports.httpClose, caFile: ca.certFile };
        for (const kind of ['l7', 'l4'] as const) {
          const ir: number[] = [];
          let errors = 0;
          for (const n of [o.warm, o.warm + o.requests]) {
            const dir = fs.mkdtempSync(path.join(tmp, `${name}-`));
            const logFile = path.join(dir, 'vg.log');
            const wrap = ['valgrind', '--tool=cachegrind', '--cache-sim=no', '--branch-sim=no', `--cachegrind-out-file=${path.join(dir, 'cg.out')}`, `--log-file=${logFile}`];
            const peer = name === 'sluice' ? await startSluice(dir, targets, { wrap }) : name === 'nginx' ? await startNginx(dir, targets, { wrap }) : await startHaproxy(dir, targets, { wrap });
            try {
              const port = kind === 'l7' ? peer.ports.http : peer.ports.tcphttp;
              const r = await h2load({ url: `http://127.0.0.1:${port}/`, host: HTTP_HOST, requests: n, clients: o.clients, h1: true });
              errors += r.errors;
              if (r.errors > 0) throw new Error(`${name} ${kind}: ${r.errors} of ${n} requests failed: the count would not be of the work asked`);
            } finally {
              await peer.stop();
            }
            ir.push(cachegrindIr(logFile));
          }
          const row: InstructionRow = { peer: name, path: kind, requests: o.requests, irWarm: ir[0]!, irFull: ir[1]!, irPerRequest: (ir[1]! - ir[0]!) / o.requests, errors };
          o.log(`instructions ${name} ${kind}: ${Math.round(row.irPerRequest).toLocaleString('en-US')} per request (${ir[0]} -> ${ir[1]} over ${o.requests} requests, errors ${errors})`);
          rows.push(row);
        }
      } finally {
        up.kill();
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}

export function instructionsMarkdown(rows: InstructionRow[]): string {
  const peers = [...new Set(rows.map((r) => r.peer))];
  const get = (p: string, k: string): InstructionRow | undefined => rows.find((r) => r.peer === p && r.path === k);
  const lines = [`| instructions per request (valgrind Ir, steady state) | ${peers.join(' | ')} | sluice ÷ best peer |`, `|---|${peers.map(() => '---:').join('|')}|---:|`];
  for (const [k, label] of [['l7', 'L7 HTTP/1.1 keep-alive'], ['l4', 'L4 (HTTP keep-alive through the TCP proxy)']] as const) {
    const cells = peers.map((p) => get(p, k));
    const s = get('sluice', k);
    const others = cells.filter((c): c is InstructionRow => c !== undefined && c.peer !== 'sluice').map((c) => c.irPerRequest);
    const ratio = s !== undefined && others.length > 0 ? `${(s.irPerRequest / Math.min(...others)).toFixed(2)}×` : '–';
    lines.push(`| ${label} | ${cells.map((c) => (c === undefined ? '–' : Math.round(c.irPerRequest).toLocaleString('en-US'))).join(' | ')} | ${ratio} |`);
  }
  return lines.join('\n');
}

function argOf(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

if (require.main === module && process.argv[2] === 'instructions') {
  const requests = Number(argOf('requests', '20000'));
  const warm = Number(argOf('warm', '5000'));
  const clients = Number(argOf('clients', '1'));
  const peers = argOf('peers', 'sluice,nginx,haproxy').split(',');
  const log = (s: string): void => { process.stderr.write(s + '\n'); };
  instructionCounts({ requests, warm, clients, peers, log }).then((rows) => {
    const out = path.resolve(argOf('out', path.resolve(__dirname, '..', '..', '..', 'bench', 'results', 'instructions.json')));
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), node: process.version, loadAvg: os.loadavg()[0], warm, requests, clients, rows }, null, 2) + '\n');
    process.stdout.write(instructionsMarkdown(rows) + '\n');
  }, (e: unknown) => { process.stderr.write(`instructions: FAILED: ${(e as Error).stack ?? String(e)}\n`); process.exit(1); });
} else if (require.main === module) {
  const file = process.argv[2];
  if (file === undefined) { process.stderr.write('usage: profile.js FILE.cpuprofile [N]\n'); process.exit(2); }
  process.stdout.write(profileMarkdown(path.basename(file), summarize(file, Number(process.argv[3] ?? 20))) + '\n');
}
