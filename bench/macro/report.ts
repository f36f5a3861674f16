// The bench's output: machine description, one table with each figure and sluice's ratio to the
// direct path and to each peer, CPU per unit of work, the issue's "Done when" targets checked
// against the figures, profiles, and config at scale. Pure: report in, markdown out.

import os from 'node:os';
import fs from 'node:fs';
import type { ProfileSummary } from './profile';
import { profileMarkdown } from './profile';
import type { ConfigScaleResult } from '../config-scale';
import type { CaptureResult } from './capture';
import type { InboundResult } from './inbound';

export interface Cell {
  value: number;
  /** CPU seconds of the proxy per unit (as cpuUnit says), null for the direct path */
  cpuPerUnit: number | null;
  cpuUnit: string;
  higherIsBetter: boolean;
  errors: number;
  note?: string;
  /** min-max of value over the interleaved rounds */
  spread?: { min: number; max: number };
  /** min-max of cpuPerUnit over the rounds */
  cpuSpread?: { min: number; max: number };
}

export interface Machine {
  cpus: number; model: string; memGiB: number; node: string; kernel: string; os: string;
  haproxy?: string; nginx?: string;
  /** 1-minute load average at the start and the end: other work on the box skews every figure */
  loadAvgStart?: number; loadAvgEnd?: number;
}

export interface BenchReport {
  startedAt: string;
  seconds?: number;
  machine: Machine;
  knobs: Record<string, unknown>;
  skipped: string[];
  /** metric -> target (direct | sluice | haproxy | nginx | ...) -> cell */
  cells: Record<string, Record<string, Cell>>;
  extra: {
    fixedRate?: number;
    capture?: CaptureResult;
    inbound?: InboundResult;
    profiles?: Record<string, ProfileSummary>;
    configScale?: ConfigScaleResult;
  };
}

export function machineDescription(): Machine {
  let osName = os.type();
  try {
    const m = /PRETTY_NAME="([^"]+)"/.exec(fs.readFileSync('/etc/os-release', 'utf8'));
    if (m) osName = m[1]!;
  } catch { /* not Linux */ }
  const cpus = os.cpus();
  return { cpus: cpus.length, model: cpus[0]?.model ?? 'unknown', memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, kernel: os.release(), os: osName, loadAvgStart: os.loadavg()[0]! };
}

function fmt(v: number | undefined | null): string {
  if (v === undefined || v === null || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** The best of HAProxy and nginx (the issue's headline compares against the better peer). */
function bestPeer(row: Record<string, Cell>, of: (c: Cell) => number | null, lowerIsBetter: boolean): { name: string; v: number } | null {
  let best: { name: string; v: number } | null = null;
  for (const name of ['haproxy', 'nginx']) {
    const c = row[name];
    const v = c === undefined ? null : of(c);
    if (v === null || !Number.isFinite(v) || v <= 0) continue;
    if (best === null || (lowerIsBetter ? v < best.v : v > best.v)) best = { name, v };
  }
  return best;
}

const PEER_LABEL: Record<string, string> = { haproxy: 'HAProxy', nginx: 'nginx' };

function spreadText(sp: { min: number; max: number } | undefined): string {
  return sp === undefined ? '–' : `${fmt(sp.min)}–${fmt(sp.max)}`;
}

function ratio(a: Cell | undefined, b: Cell | undefined): string {
  if (a === undefined || b === undefined || b.value === 0) return '–';
  return `${(a.value / b.value).toFixed(2)}×`;
}


export function renderMarkdown(r: BenchReport): string {
  const m = r.machine;
  const out: string[] = [];
  out.push(`Machine: ${m.cpus} × ${m.model}, ${m.memGiB} GiB, ${m.os}, kernel ${m.kernel}, Node ${m.node}; ${m.haproxy ?? 'HAProxy –'}; ${m.nginx ?? 'nginx –'}. Load average (1 min) ${m.loadAvgStart?.toFixed(1) ?? '?'} at the start, ${m.loadAvgEnd?.toFixed(1) ?? '?'} at the end (2.0 = both cores busy before the bench adds anything).`);
  out.push(`Run ${r.startedAt}, ${r.seconds?.toFixed(0) ?? '?'} s, knobs ${JSON.stringify(r.knobs)}. One sluice worker vs HAProxy \`nbthread 1\` vs one nginx worker; client, proxy and upstream share the cores. *Bare Node relay* (plain L4 rows only): Node's sockets joined by sluice's relay and nothing else (\`bench/macro/node-relay.ts\`), the floor a Node proxy starts from.`);
  if (r.skipped.length > 0) out.push(`Skipped: ${r.skipped.join('; ')}.`);
  out.push('');
  out.push('| metric | direct | sluice | HAProxy | nginx | bare Node relay | sluice ÷ best peer | sluice ÷ direct | sluice ÷ HAProxy | sluice ÷ nginx | sluice ÷ bare Node | sluice spread over rounds |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [metric, row] of Object.entries(r.cells)) {
    const s = row.sluice;
    const gw = row['sluice (gateway port)'];
    // The capture row compares the sidecar with the same traffic sent to a gateway port.
    const direct = row.direct;
    const floor = row['node-relay'];
    const best = s === undefined ? null : bestPeer(row, (c) => c.value, !s.higherIsBetter);
    const vsBest = s !== undefined && best !== null ? `${(s.value / best.v).toFixed(2)}× ${PEER_LABEL[best.name]}` : '–';
    const cells = [fmt(direct?.value), fmt(s?.value), fmt(row.haproxy?.value), fmt(row.nginx?.value), fmt(floor?.value), vsBest, ratio(s, direct), ratio(s, row.haproxy), ratio(s, row.nginx), ratio(s, floor), spreadText(s?.spread)];
    out.push(`| ${metric}${gw ? ` (gateway port: ${fmt(gw.value)}, captured ÷ gateway port ${ratio(s, gw)})` : ''} | ${cells.join(' | ')} |`);
  }
  out.push('');
  out.push('CPU of the proxy process(es) per unit of work (utime + stime from /proc of the proxy and its workers; lower is better). The headline is sluice ÷ the best peer:');
  out.push('');
  out.push('| metric | unit | sluice | HAProxy | nginx | bare Node relay | **sluice ÷ best peer** | sluice ÷ HAProxy | sluice ÷ nginx | sluice ÷ bare Node | spread over rounds (sluice; HAProxy; nginx) |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const [metric, row] of Object.entries(r.cells)) {
    const s = row.sluice;
    if (s === undefined || s.cpuPerUnit === null || s.cpuUnit === '') continue;
    const c = (t: string): number | null => row[t]?.cpuPerUnit ?? null;
    const rc = (t: string): string => { const a = c('sluice'); const b = c(t); return a !== null && b !== null && b > 0 ? `${(a / b).toFixed(2)}×` : '–'; };
    const best = bestPeer(row, (x) => x.cpuPerUnit, true);
    const vsBest = best !== null && s.cpuPerUnit !== null ? `**${(s.cpuPerUnit / best.v).toFixed(2)}×** ${PEER_LABEL[best.name]}` : '–';
    const sp = ['sluice', 'haproxy', 'nginx'].map((t) => spreadText(row[t]?.cpuSpread)).join('; ');
    out.push(`| ${metric.replace(/ \([^)]*\)$/, '')} | ${s.cpuUnit} | ${fmt(c('sluice'))} | ${fmt(c('haproxy'))} | ${fmt(c('nginx'))} | ${fmt(c('node-relay'))} | ${vsBest} | ${rc('haproxy')} | ${rc('nginx')} | ${rc('node-relay')} | ${sp} |`);
  }
  const notes = Object.entries(r.cells).flatMap(([metric, row]) => Object.entries(row).filter(([, c]) => c.note !== undefined || c.errors > 0)
    .map(([t, c]) => `${metric} / ${t}: ${[c.note, c.errors > 0 ? `${c.errors} errors` : ''].filter(Boolean).join(', ')}`));
  if (notes.length > 0) {
    out.push('');
    out.push('Notes: ' + notes.join('; ') + '.');
  }
  out.push('');
  out.push(...doneWhen(r));
  const cs = r.extra.configScale;
  if (cs !== undefined) {
    out.push('');
    out.push(`Config at scale (${cs.hosts.toLocaleString('en-US')} ServiceEntries + as many VirtualServices and DestinationRules, ${cs.documents.toLocaleString('en-US')} resources, ${(cs.yamlBytes / 2 ** 20).toFixed(1)} MiB YAML, sidecar role, ${cs.clusters.toLocaleString('en-US')} clusters): ` +
      `load ${fmt(cs.loadMs)} ms, compile ${fmt(cs.compileMs)} ms (target: compile < 2,000 ms); lookup (listener → chain → virtual host → route) cycling over every host ${fmt(cs.lookupNs.hosts10)} ns at 10 hosts, ${fmt(cs.lookupNs.hostsN)} ns at ${cs.hosts.toLocaleString('en-US')} (${cs.lookupNs.ratio.toFixed(2)}×)` +
      `, the same host every time ${fmt(cs.hotLookupNs.hosts10)} vs ${fmt(cs.hotLookupNs.hostsN)} ns (${cs.hotLookupNs.ratio.toFixed(2)}×: the lookup itself); ` +
      `growth: ${cs.curve.map((c) => `${c.hosts.toLocaleString('en-US')} hosts load ${fmt(c.loadMs)} + compile ${fmt(c.compileMs)} ms`).join(', ')}; ` +
      `a reload at ${cs.reload.hosts.toLocaleString('en-US')} hosts blocked the event loop for ${fmt(cs.reload.blockedMaxMs)} ms at most (load + compile at that size ${fmt(cs.reload.loadPlusCompileMs)} ms; applied ${fmt(cs.reload.appliedAfterMs)} ms after the file changed): ` +
      `load and compile run on a worker thread, the snapshot arrives in pieces between event-loop turns and the cluster table is rebuilt in slices, so traffic ${cs.reload.blockedMaxMs < cs.compileMs ? 'stalls for less than one compile' : 'still stalls for about one compile or more'} per reload.`);
    if (cs.profile !== null) {
      out.push('');
      out.push(profileMarkdown(`Where one load + compile at ${cs.profileHosts.toLocaleString('en-US')} hosts spends its time`, { ...cs.profile, top: cs.profile.top.slice(0, 12) }));
    }
  }
  for (const [k, p] of Object.entries(r.extra.profiles ?? {})) {
    out.push('');
    out.push(profileMarkdown(`sluice under ${k === 'l7' ? 'L7 keep-alive load' : k === 'tls-orig' ? 'TLS origination load' : 'L4 short connections'} (node --cpu-prof)`, p));
  }
  return out.join('\n');
}

function doneWhen(r: BenchReport): string[] {
  const c = r.cells;
  const get = (prefix: string, t: string): Cell | undefined => Object.entries(c).find(([k]) => k.startsWith(prefix))?.[1][t];
  const rows: string[] = ['| "Done when" target | measured | met? |', '|---|---|---|'];
  const check = (label: string, a: Cell | undefined, b: Cell | undefined, want: number, lowerIsBetter = false): void => {
    if (a === undefined || b === undefined || b.value === 0) { rows.push(`| ${label} | not measured | – |`); return; }
    const x = a.value / b.value;
    const ok = lowerIsBetter ? x <= want : x >= want;
    rows.push(`| ${label} | ${x.toFixed(2)}× | ${ok ? 'yes' : '**no**'} |`);
  };
  check('L4 bulk, 1 stream ≥ 1.0× HAProxy', get('L4 bulk, 1 stream', 'sluice'), get('L4 bulk, 1 stream', 'haproxy'), 1.0);
  check('L4 bulk, 8 streams ≥ 1.0× HAProxy', get('L4 bulk, 8 streams', 'sluice'), get('L4 bulk, 8 streams', 'haproxy'), 1.0);
  check('L4 short connections ≥ 0.9× HAProxy', get('L4 short', 'sluice'), get('L4 short', 'haproxy'), 0.9);
  check('L7 keep-alive req/s ≥ 0.8× nginx', get('L7 keep-alive, saturation (req/s)', 'sluice'), get('L7 keep-alive, saturation (req/s)', 'nginx'), 0.8);
  const fixedP99 = Object.keys(c).find((k) => k.startsWith('L7 keep-alive, fixed') && k.includes('p99 ('));
  check('L7 p99 at the fixed rate ≤ 1.5× nginx', fixedP99 ? c[fixedP99]!.sluice : undefined, fixedP99 ? c[fixedP99]!.nginx : undefined, 1.5, true);
  check('sidecar capture conn/s ≥ 0.8× gateway port', get('Sidecar capture', 'sluice'), get('Sidecar capture', 'sluice (gateway port)'), 0.8);
  // issue 20: CPU per unit against the best of HAProxy and nginx, C-driven (wrk) saturation
  const cpuVsBest = (label: string, prefix: string, want: number): void => {
    const row = Object.entries(c).find(([k]) => k.startsWith(prefix))?.[1];
    const sv = row?.sluice?.cpuPerUnit ?? null;
    const best = row === undefined ? null : bestPeer(row, (x) => x.cpuPerUnit, true);
    if (sv === null || best === null) { rows.push(`| ${label} | not measured | – |`); return; }
    const x = sv / best.v;
    rows.push(`| ${label} | ${x.toFixed(2)}× (${PEER_LABEL[best.name]}) | ${x <= want ? 'yes' : '**no**'} |`);
  };
  const rateVsBest = (label: string, prefix: string): void => {
    const row = Object.entries(c).find(([k]) => k.startsWith(prefix))?.[1];
    const best = row === undefined ? null : bestPeer(row, (x) => x.value, false);
    if (row?.sluice === undefined || best === null) { rows.push(`| ${label} | not measured | – |`); return; }
    const x = row.sluice.value / best.v;
    rows.push(`| ${label} | ${x.toFixed(2)}× (${PEER_LABEL[best.name]}) | ${x >= 1 ? 'yes' : '**no**'} |`);
  };
  cpuVsBest('CPU per L7 keep-alive request ≤ 1.0× best peer', 'L7 keep-alive, wrk', 1.0);
  cpuVsBest('CPU per L4 request over keep-alive ≤ 1.0× best peer', 'L4 (HTTP keep-alive', 1.0);
  cpuVsBest('CPU per L4 new connection ≤ 1.0× best peer', 'L4, a new connection', 1.0);
  cpuVsBest('CPU per TLS origination request ≤ 1.2× best peer', 'TLS origination, keep-alive, wrk', 1.2);
  cpuVsBest('CPU per new SNI-passthrough TLS connection ≤ 1.0× best peer', 'SNI passthrough, new TLS', 1.0);
  for (const [label, prefix] of [['L7 keep-alive', 'L7 keep-alive, wrk'], ['L4 keep-alive', 'L4 (HTTP keep-alive'], ['L4 new connection', 'L4, a new connection'], ['TLS origination', 'TLS origination, keep-alive, wrk']] as const) {
    rateVsBest(`${label} saturated (wrk) req/s ≥ 1.0× best peer`, prefix);
  }
  const p99 = Object.entries(c).find(([k]) => k.startsWith('Two hops') && k.includes('p99 added'))?.[1];
  check('two-hop p99 added at the fixed rate ≤ nginx two-hop', p99?.sluice, p99?.nginx, 1.0, true);
  const one = Object.entries(c).find(([k]) => k.includes('sluice 1 worker beside'))?.[1]?.sluice;
  const two = Object.entries(c).find(([k]) => k.includes('2 workers / nbthread 2'))?.[1]?.sluice;
  if (one?.cpuPerUnit != null && two?.cpuPerUnit != null) {
    const x = two.cpuPerUnit / one.cpuPerUnit;
    rows.push(`| --concurrency 2 CPU per L7 request ≤ 1.1× one worker's | ${x.toFixed(2)}× | ${x <= 1.1 ? 'yes' : '**no**'} |`);
  } else rows.push(`| --concurrency 2 CPU per L7 request ≤ 1.1× one worker's | not measured | – |`);
  const settled = Object.keys(c).find((k) => k.startsWith('RSS per idle') && k.includes('idle ('));
  check('RSS per idle connection ≤ HAProxy (1 s after opening them)', get('RSS per idle', 'sluice'), get('RSS per idle', 'haproxy'), 1.0, true);
  check(`RSS per idle connection ≤ HAProxy (${settled?.match(/after (\d+ s) idle/)?.[1] ?? 'a while'} idle)`, settled ? c[settled]!.sluice : undefined, settled ? c[settled]!.haproxy : undefined, 1.0, true);
  return rows;
}
