// HTTP/1.1 keep-alive load: autocannon for the saturation run (req/s, closed loop), and an open-loop
// paced driver for latency at a fixed rate.
//
// Why not autocannon's own `overallRate` for the fixed-rate run: it limits each connection to
// rate/connections requests per one-second bucket (httpClient.js `reqsMadeThisSecond`), so every
// second starts with a burst at full speed and then goes quiet; the tail it reports is the burst's
// queueing, not the proxy's latency at that rate. The paced driver below sends request i at
// start + i/rate (open loop), and measures from that intended time, so a
// stall is counted against every request it delayed (no coordinated omission).
//
// Latency from autocannon is taken from its per-response `responseTime` (float ms, hrtime based)
// instead of its histogram, whose lowest discernible value is 1 ms (too coarse for a proxy on
// loopback).

import net from 'node:net';
import autocannon from 'autocannon';

export interface Latency { p50: number; p90: number; p99: number; p999: number; max: number }
export interface HttpLoadResult {
  /** requests completed in the measured window */
  requests: number;
  /** requests the proxy carried, warm-up included: the divisor for its CPU, which is read over both */
  totalRequests: number;
  seconds: number; rps: number; errors: number; non2xx: number; latencyUs: Latency;
}

/** Percentiles (µs) of the first n values of a Float64Array of ms. */
export function percentilesUs(values: Float64Array, n: number): Latency {
  if (n === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
  const sorted = values.subarray(0, n).sort();
  const at = (q: number): number => sorted[Math.min(n - 1, Math.floor(q * n))]! * 1000;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: sorted[n - 1]! * 1000 };
}

export interface SaturationOptions { url: string; host: string; connections: number; durationS: number; warmupS: number }

const MAX_SAMPLES = 4_000_000;

export async function saturate(o: SaturationOptions): Promise<HttpLoadResult> {
  const warm = o.warmupS > 0 ? (await autocannon({ url: o.url, connections: o.connections, duration: o.warmupS, headers: { host: o.host } })).requests.total : 0;
  const samples = new Float64Array(MAX_SAMPLES);
  let n = 0;
  const inst = autocannon({ url: o.url, connections: o.connections, duration: o.durationS, headers: { host: o.host } });
  inst.on('response', (_c: unknown, _code: number, _bytes: number, ms: number) => {
    if (n < MAX_SAMPLES) samples[n++] = ms;
  });
  const r = await inst;
  const seconds = r.duration;
  return {
    requests: r.requests.total,
    totalRequests: warm + r.requests.total,
    seconds,
    rps: r.requests.total / seconds,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    latencyUs: percentilesUs(samples, n),
  };
}

// ---------------------------------------------------------------- paced (open-loop) driver

export interface PacedOptions { host: string; port: number; hostHeader: string; connections: number; rate: number; durationS: number; warmupS: number }

/** One keep-alive connection with at most one request in flight and a minimal response parser. */
class PacedConn {
  readonly socket: net.Socket;
  busy = false;
  intended = 0; // hrtime ms of the request's intended send time
  buf = '';
  need = -1; // total bytes of the current response once its head is parsed
  constructor(readonly driver: PacedDriver, host: string, port: number) {
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.setEncoding('latin1');
    this.socket.on('data', onPacedData.bind(this));
    this.socket.on('error', () => { driver.errors++; });
    this.socket.on('close', () => { if (!driver.done) driver.replace(this); });
  }
}

function onPacedData(this: PacedConn, chunk: string): void {
  this.buf += chunk;
  for (;;) {
    if (this.need < 0) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buf.slice(0, end).toLowerCase();
      const cl = head.indexOf('content-length:');
      const len = cl < 0 ? 0 : parseInt(head.slice(cl + 15), 10);
      if (!head.startsWith('http/1.1 2')) this.driver.non2xx++;
      this.need = end + 4 + len;
    }
    if (this.buf.length < this.need) return;
    this.buf = this.buf.slice(this.need);
    this.need = -1;
    this.driver.complete(this);
  }
}

class PacedDriver {
  done = false;
  errors = 0;
  non2xx = 0;
  readonly free: PacedConn[] = [];
  readonly all = new Set<PacedConn>();
  readonly queue: number[] = []; // intended times of requests waiting for a connection
  readonly samples: Float64Array;
  n = 0;
  recording = false;
  completed = 0;
  readonly request: Buffer;

  constructor(readonly o: PacedOptions) {
    this.samples = new Float64Array(Math.min(MAX_SAMPLES, Math.ceil(o.rate * (o.durationS + 1))));
    this.request = Buffer.from(`GET / HTTP/1.1\r\nhost: ${o.hostHeader}\r\n\r\n`, 'latin1');
    for (let i = 0; i < o.connections; i++) this.free.push(this.open());
  }

  open(): PacedConn {
    const c = new PacedConn(this, this.o.host, this.o.port);
    this.all.add(c);
    return c;
  }

  replace(c: PacedConn): void {
    const i = this.free.indexOf(c);
    if (i >= 0) this.free.splice(i, 1);
    this.all.delete(c);
    if (c.busy) this.errors++;
    this.free.push(this.open());
  }

  send(c: PacedConn, intended: number): void {
    c.busy = true;
    c.intended = intended;
    c.socket.write(this.request);
  }

  issue(intended: number): void {
    const c = this.free.pop();
    if (c === undefined) this.queue.push(intended);
    else this.send(c, intended);
  }

  complete(c: PacedConn): void {
    c.busy = false;
    this.completed++;
    if (this.recording && this.n < this.samples.length) this.samples[this.n++] = nowMs() - c.intended;
    const next = this.queue.shift();
    if (next !== undefined) this.send(c, next);
    else this.free.push(c);
  }
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export async function paced(o: PacedOptions): Promise<HttpLoadResult> {
  const d = new PacedDriver(o);
  const interval = 1000 / o.rate; // ms between intended sends
  const total = Math.ceil(o.rate * (o.warmupS + o.durationS));
  const warmCount = Math.ceil(o.rate * o.warmupS);
  const t0 = nowMs();
  let sent = 0;
  let measuredFrom = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = nowMs();
      while (sent < total && t0 + sent * interval <= now) {
        if (sent === warmCount) { d.recording = true; measuredFrom = t0 + sent * interval; }
        d.issue(t0 + sent * interval);
        sent++;
      }
      if (sent >= total) { clearInterval(timer); resolve(); }
    };
    const timer = setInterval(tick, 1);
  });
  // Let the last requests finish (bounded).
  const deadline = Date.now() + 5000;
  while ((d.queue.length > 0 || d.free.length < o.connections) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  d.done = true;
  const seconds = (nowMs() - measuredFrom) / 1000;
  for (const c of d.all) c.socket.destroy();
  const lost = total - d.completed;
  return { requests: d.n, totalRequests: d.completed, seconds, rps: d.n / seconds, errors: d.errors + Math.max(0, lost), non2xx: d.non2xx, latencyUs: percentilesUs(d.samples, d.n) };
}
