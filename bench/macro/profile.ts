// Where sluice's time goes: read a V8 .cpuprofile (`node --cpu-prof`) and list the functions with the
// most self time, grouped by function + file:line, with the share of all samples. Also usable alone:
//   node dist/bench/macro/profile.js FILE.cpuprofile [N]

import fs from 'node:fs';
import path from 'node:path';

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

if (require.main === module) {
  const file = process.argv[2];
  if (file === undefined) { process.stderr.write('usage: profile.js FILE.cpuprofile [N]\n'); process.exit(2); }
  process.stdout.write(profileMarkdown(path.basename(file), summarize(file, Number(process.argv[3] ?? 20))) + '\n');
}
