// The soak's verdicts, pure functions over what the run recorded (driver results, access-log lines,
// worker kills, stats samples): which transfers ended as they must, which failures were expected
// and with which flag, whether every request has exactly one access-log line per proxy it crossed,
// and whether any counter went backwards.

import type { Behavior, ProxyName, Target, TransferResult } from './plan';

export interface LogLine {
  readonly proxy: ProxyName;
  readonly start: number;
  readonly method: string;
  readonly path: string;
  readonly code: number;
  readonly flags: string;
  readonly details: string;
  readonly upstreamLocal: string;
  readonly downstreamRemote: string;
  readonly raw: string;
}

// Istio's default text format (proxy/observe/access-log.ts formatIstio).
const ISTIO_LINE = /^\[(\S+)\] "(\S+) (\S+) (\S+)" (\d+) (\S+) (\S+) (\S+) "[^"]*" \d+ \d+ \d+ \S+ "[^"]*" "[^"]*" "[^"]*" "[^"]*" "[^"]*" \S+ (\S+) \S+ (\S+) \S+ \S+$/;

export function parseIstioLine(proxy: ProxyName, raw: string): LogLine | null {
  const m = ISTIO_LINE.exec(raw);
  if (m === null) return null;
  return { proxy, start: Date.parse(m[1]!), method: m[2]!, path: m[3]!, code: Number(m[5]), flags: m[6]!, details: m[7]!, upstreamLocal: m[9]!, downstreamRemote: m[10]!, raw };
}

export interface Kill {
  readonly proxy: ProxyName;
  readonly at: number;
  readonly pid: number;
}

export type Category = 'ok' | 'expected' | 'unexpected';

export interface Verdict {
  readonly result: TransferResult;
  readonly category: Category;
  /** Why a failure was expected, or what was wrong. */
  readonly reason: string;
  /**
   * A worker of a proxy it crossed was killed from NEAR_KILL_BEFORE_MS before it started to
   * LINE_LOST_AFTER_MS after it ended: the time in which Node 20's round-robin hand-off of new
   * connections to workers is known to misbehave (README, Chaos soak).
   */
  readonly nearKill: boolean;
}

/**
 * A kill this close to a transfer may have hit it. Before: a connection accepted just before the
 * kill. After: a proxy logs a connection once both of its sides have closed, which can be a moment
 * after the client saw its own end (the other side's close still on its way); a worker killed in
 * that moment takes the line with it.
 */
const KILL_BEFORE_MS = 250;
const KILL_AFTER_MS = 250;
const LINE_LOST_AFTER_MS = 3000;
const NEAR_KILL_BEFORE_MS = 10_000;

function killedWithin(r: TransferResult, proxy: ProxyName, kills: readonly Kill[], afterMs: number): boolean {
  return kills.some((k) => k.proxy === proxy && k.at >= r.t0 - KILL_BEFORE_MS && k.at <= r.t1 + afterMs);
}

/**
 * The flags each proxy must log for a transfer that was not hit by a worker kill, by what the soak
 * made happen. A connect to the blackholed upstream times out: UF (HTTP retries it: UF,URX, 503).
 * The client resetting mid-answer is a downstream disconnect (DC); the sink resetting mid-answer is
 * an upstream reset (UC) at every proxy on the way, since each resets its own downstream.
 */
export function flagsOk(target: Target, behavior: Behavior, line: LogLine): boolean {
  // A proxy further from the client than the first may have handed its whole answer to the next
  // hop's buffers before the client's reset reaches it: from where it stands the stream completed.
  if (behavior === 'client-reset' && line.proxy !== target.proxies[0] && line.flags === '-') return true;
  if (target.hole) return line.flags.split(',').includes('UF') && (target.kind === 'tcp' || line.code === 503);
  switch (behavior) {
    case 'normal':
    case 'slow':
      return line.flags === '-' && (target.kind === 'tcp' || line.code === 200);
    case 'client-reset':
      return line.flags === 'DC';
    case 'upstream-reset':
      // The proxy next to the sink sees the reset (UC) and resets its downstream; the proxy before
      // it may read that reset as EOF when it arrives with bytes unread (libuv, see below): '-'.
      return line.flags === 'UC' || (line.proxy !== target.proxies[target.proxies.length - 1] && line.flags === '-');
  }
}

export interface AccessLogIndex {
  /** Lines of one proxy keyed by what ties them to a transfer: HTTP path id, or an address. */
  readonly byKey: Map<string, LogLine[]>;
  readonly unparsed: string[];
  readonly total: number;
}

function httpKey(path: string): string | null {
  const m = /^\/t\/([^?]+)/.exec(path);
  return m === null ? null : 'http:' + m[1]!;
}

export function indexLines(proxy: ProxyName, raws: readonly string[]): AccessLogIndex {
  const byKey = new Map<string, LogLine[]>();
  const unparsed: string[] = [];
  for (const raw of raws) {
    const line = parseIstioLine(proxy, raw);
    if (line === null) {
      unparsed.push(raw);
      continue;
    }
    const keys = line.method === '-' ? ['down:' + line.downstreamRemote, 'up:' + line.upstreamLocal] : [httpKey(line.path) ?? 'other:' + line.path];
    for (const k of keys) {
      const list = byKey.get(k) ?? [];
      list.push(line);
      byKey.set(k, list);
    }
  }
  return { byKey, unparsed, total: raws.length };
}

/**
 * The access-log lines of `proxy` for transfer `r`. TCP lines are found by address (ports are
 * reused over a long run, so only lines that started within the transfer's lifetime count).
 */
function linesFor(r: TransferResult, target: Target, proxy: ProxyName, index: AccessLogIndex, appIp: string): LogLine[] | null {
  if (target.kind === 'http') return index.byKey.get('http:' + r.id) ?? [];
  let key: string;
  if (proxy === 'sidecar') key = `down:${appIp}:${r.localPort}`;
  else if (r.peer !== null) key = 'up:' + r.peer;
  else return null; // never reached the sink: the gateway's line cannot be told apart
  // START_TIME is when the proxy accepted; under load (or a connection parked in a dying worker's
  // hand-off) that can trail the client's connect by seconds.
  return (index.byKey.get(key) ?? []).filter((l) => l.start >= r.t0 - 1000 && l.start <= r.t1 + 5000);
}

export interface Judgement {
  readonly verdicts: Verdict[];
  /** Transfers whose bytes (all or the prefix that arrived) differ from what was sent. */
  readonly corrupted: TransferResult[];
  readonly linesMatched: Record<ProxyName, number>;
  readonly linesTotal: Record<ProxyName, number>;
  readonly unparsed: string[];
}

export function judge(results: readonly TransferResult[], targets: readonly Target[], logs: Record<ProxyName, AccessLogIndex>, kills: readonly Kill[], appIp: string): Judgement {
  const byName = new Map(targets.map((t) => [t.name, t]));
  const verdicts: Verdict[] = [];
  const corrupted: TransferResult[] = [];
  const linesMatched: Record<ProxyName, number> = { sidecar: 0, gateway: 0 };
  for (const r of results) {
    const target = byName.get(r.target)!;
    // Any byte that arrived must be the right byte, whatever else happened to the transfer; and a
    // sink that got every byte of the upload must have got the right ones.
    if (!r.prefixOk || (r.complete && !r.upOk)) corrupted.push(r);
    const killedOn = target.proxies.filter((p) => killedWithin(r, p, kills, KILL_AFTER_MS));
    const lineMayBeLost = target.proxies.filter((p) => killedWithin(r, p, kills, LINE_LOST_AFTER_MS));
    const problems: string[] = [];
    const notes: string[] = [];
    for (const proxy of target.proxies) {
      const lines = linesFor(r, target, proxy, logs[proxy], appIp);
      if (lines === null) {
        notes.push(`${proxy} line not attributable (no peer address)`);
        continue;
      }
      linesMatched[proxy] += lines.length;
      if (lines.length > 1) problems.push(`${proxy}: ${lines.length} access-log lines`);
      else if (lines.length === 0 && !lineMayBeLost.includes(proxy)) problems.push(`${proxy}: no access-log line`);
      else if (lines.length === 0) notes.push(`${proxy} line lost with its worker`);
      else if (lines.length === 1 && killedOn.length === 0 && !flagsOk(target, r.behavior, lines[0]!)) problems.push(`${proxy}: flags ${lines[0]!.flags} code ${lines[0]!.code} (${lines[0]!.details})`);
    }
    let category: Category;
    let reason: string;
    if (r.error === 'hang') {
      // Never excused by a kill: a worker's death must end its connections, not freeze them.
      category = 'unexpected';
      reason = `hung (no end after the driver's hang limit)${killedOn.length > 0 ? `; a worker of ${killedOn.join('+')} was killed meanwhile` : ''}`;
    } else if (killedOn.length > 0) {
      // A worker that dies takes its connections with it: any end but corruption is expected.
      category = 'expected';
      reason = `worker killed on ${killedOn.join('+')}` + (r.complete ? ' (completed anyway)' : '');
      // Its line may be missing on the proxy that lost the worker; two lines are still wrong.
      const duplicates = problems.filter((p) => p.includes('access-log lines'));
      problems.splice(0, problems.length, ...duplicates);
    } else if (target.hole) {
      category = r.complete ? 'unexpected' : 'expected';
      reason = r.complete ? 'completed through a blackholed upstream' : 'blackholed upstream';
    } else if (r.behavior === 'normal' || r.behavior === 'slow') {
      category = r.complete ? 'ok' : 'unexpected';
      reason = r.complete ? '' : `failed: ${r.error ?? 'incomplete'} (status ${r.status}, ${r.downLen}/${r.down} B)`;
    } else {
      // TCP: a reset that arrives while the client still has unread bytes is reported by libuv as
      // EOF (its POLLHUP short-cut), so an upstream reset may end as a short answer: still a failure
      // the client sees, and the proxies' flags (UC) are checked above.
      const wanted = r.behavior === 'client-reset' ? ['client-reset'] : target.kind === 'tcp' ? ['ECONNRESET', 'short-answer'] : null;
      const ended = r.error !== null && (wanted === null || wanted.includes(r.error));
      category = ended && !r.complete ? 'expected' : 'unexpected';
      reason = ended ? r.behavior : `${r.behavior} ended as ${r.error ?? 'success'}`;
    }
    if (problems.length > 0) {
      category = 'unexpected';
      reason = [reason, ...problems].filter((s) => s !== '').join('; ');
    }
    if (notes.length > 0 && category !== 'unexpected') reason = [reason, ...notes].filter((s) => s !== '').join('; ');
    const nearKill = target.proxies.some((p) => kills.some((k) => k.proxy === p && k.at >= r.t0 - NEAR_KILL_BEFORE_MS && k.at <= r.t1 + LINE_LOST_AFTER_MS));
    verdicts.push({ result: r, category, reason, nearKill });
  }
  return {
    verdicts,
    corrupted,
    linesMatched,
    linesTotal: { sidecar: logs.sidecar.total, gateway: logs.gateway.total },
    unparsed: [...logs.sidecar.unparsed, ...logs.gateway.unparsed],
  };
}

// ------------------------------------------------------------------ counters

export interface StatsSample {
  readonly at: number;
  readonly counters: Map<string, number>;
}

export interface Regression {
  readonly proxy: ProxyName;
  readonly series: string;
  readonly from: number;
  readonly to: number;
  readonly at: number;
  /** A worker of this proxy was killed since the previous sample. */
  readonly afterKill: boolean;
}

/** Counter series of a Prometheus text page (`# TYPE name counter` groups). */
export function promCounters(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let inCounter = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      inCounter = line.endsWith(' counter');
      continue;
    }
    if (!inCounter || line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** Every step down of a counter between consecutive samples (a series that vanished counts as 0). */
export function counterRegressions(proxy: ProxyName, samples: readonly StatsSample[], kills: readonly Kill[]): Regression[] {
  const out: Regression[] = [];
  for (let i = 1; i < samples.length; i++) {
    const prev = samples[i - 1]!;
    const cur = samples[i]!;
    const afterKill = kills.some((k) => k.proxy === proxy && k.at > prev.at && k.at <= cur.at);
    for (const [series, from] of prev.counters) {
      const to = cur.counters.get(series) ?? 0;
      if (to < from) out.push({ proxy, series, from, to, at: cur.at, afterKill });
    }
  }
  return out;
}
