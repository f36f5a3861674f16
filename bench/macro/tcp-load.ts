// Our own TCP/TLS load driver (autocannon for HTTP, own drivers for TCP/TLS),
// run as a child process (`node tcp-load.js '<json>'`) so it can also run inside a network
// namespace (the sidecar-capture bench). Speaks upstream.ts's one-byte protocol. Prints one JSON
// line with the result on stdout.
//
// Modes (every loop bounded by time and count):
// - bulk:  `streams` connections each ask 'B' and count bytes for warmupMs + durationMs; rate is
//          over the measured window only.
// - short: `parallel` loops of connect -> 'S' -> read one byte -> closed by the server; TLS
//          connections resume the session the previous one got (tickets, as a real client does).
// - idle:  open `count` connections ('H', wait for the byte), print {"held":n}, then hold them until
//          stdin closes or SIGTERM.

import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';

export interface TcpLoadOptions {
  mode: 'bulk' | 'short' | 'idle';
  host: string;
  port: number;
  durationMs?: number;
  warmupMs?: number;
  streams?: number;
  parallel?: number;
  count?: number;
  /** TLS client: SNI name and CA file */
  tls?: { servername: string; ca: string };
}

export interface TcpLoadResult {
  mode: string;
  /** bulk: bytes in the measured window; short: connections in the measured window */
  units: number;
  /** everything the proxy carried, warm-up included (for CPU per unit) */
  totalUnits: number;
  seconds: number;
  rate: number;
  errors: number;
  resumed?: number;
  held?: number;
}

const CMD_B = Buffer.from('B');
const CMD_S = Buffer.from('S');
const CMD_H = Buffer.from('H');
const MAX_CONNECTIONS_PER_RUN = 2_000_000;

let secureContext: tls.SecureContext | null = null;
let session: Buffer | undefined;

function connect(o: TcpLoadOptions): net.Socket {
  if (o.tls === undefined) return net.connect({ host: o.host, port: o.port, noDelay: true });
  secureContext ??= tls.createSecureContext({ ca: fs.readFileSync(o.tls.ca) });
  const opts: tls.ConnectionOptions = { host: o.host, port: o.port, servername: o.tls.servername, secureContext };
  if (session !== undefined) opts.session = session;
  const s = tls.connect(opts);
  s.setNoDelay(true);
  // TLS 1.3 tickets arrive after the handshake; keep the newest for the next connection.
  s.on('session', (t: Buffer) => { session = t; });
  return s;
}

async function bulk(o: TcpLoadOptions): Promise<TcpLoadResult> {
  const warm = o.warmupMs ?? 1000;
  const dur = o.durationMs ?? 5000;
  const streams = o.streams ?? 1;
  let total = 0;
  let errors = 0;
  const sockets: net.Socket[] = [];
  for (let i = 0; i < streams; i++) {
    const s = connect(o);
    s.on(o.tls ? 'secureConnect' : 'connect', () => s.write(CMD_B));
    s.on('data', (d: Buffer) => { total += d.length; });
    s.on('error', () => { errors++; });
    sockets.push(s);
  }
  await sleep(warm);
  const start = total;
  const t0 = process.hrtime.bigint();
  await sleep(dur);
  const units = total - start;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const s of sockets) s.destroy();
  return { mode: 'bulk', units, totalUnits: total, seconds, rate: units / seconds, errors };
}

function oneShort(o: TcpLoadOptions): Promise<{ ok: boolean; resumed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(o);
    let got = false;
    const isTls = o.tls !== undefined;
    s.once(isTls ? 'secureConnect' : 'connect', () => s.write(CMD_S));
    s.on('data', () => { got = true; });
    s.on('error', () => {});
    s.setTimeout(5000, () => s.destroy());
    s.on('close', () => resolve({ ok: got, resumed: isTls && (s as tls.TLSSocket).isSessionReused() }));
  });
}

async function short(o: TcpLoadOptions): Promise<TcpLoadResult> {
  const warm = o.warmupMs ?? 1000;
  const dur = o.durationMs ?? 5000;
  const parallel = o.parallel ?? 16;
  const tStart = Date.now();
  const tMeasure = tStart + warm;
  const tEnd = tMeasure + dur;
  let total = 0;
  let units = 0;
  let errors = 0;
  let resumed = 0;
  let measureStartNs = 0n;
  let measureEndNs = 0n;
  const loop = async (): Promise<void> => {
    while (total + errors < MAX_CONNECTIONS_PER_RUN) {
      const now = Date.now();
      if (now >= tEnd) return;
      const inWindow = now >= tMeasure;
      if (inWindow && measureStartNs === 0n) measureStartNs = process.hrtime.bigint();
      const r = await oneShort(o);
      // Increment after the await, never `x += await` (the lost-update race).
      if (!r.ok) { errors++; continue; }
      total++;
      if (r.resumed) resumed++;
      if (inWindow) units++;
    }
  };
  await Promise.all(Array.from({ length: parallel }, loop));
  measureEndNs = process.hrtime.bigint();
  const seconds = Number(measureEndNs - (measureStartNs === 0n ? measureEndNs : measureStartNs)) / 1e9;
  const res: TcpLoadResult = { mode: 'short', units, totalUnits: total, seconds, rate: seconds > 0 ? units / seconds : 0, errors };
  if (o.tls) res.resumed = resumed;
  return res;
}

async function idle(o: TcpLoadOptions): Promise<TcpLoadResult> {
  const count = Math.min(o.count ?? 10_000, 100_000);
  const batch = 200;
  const held: net.Socket[] = [];
  let errors = 0;
  const t0 = process.hrtime.bigint();
  const openOne = (): Promise<void> => new Promise((resolve) => {
    const s = connect(o);
    s.once('connect', () => s.write(CMD_H));
    s.setTimeout(10_000, () => s.destroy());
    s.once('data', () => { s.setTimeout(0); held.push(s); resolve(); });
    s.on('error', () => {});
    s.once('close', () => { errors++; resolve(); });
  });
  for (let i = 0; i < count; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, count - i) }, openOne));
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { mode: 'idle', units: held.length, totalUnits: held.length, seconds, rate: held.length / seconds, errors, held: held.length };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2] ?? '{}') as TcpLoadOptions;
  const bound = (o.warmupMs ?? 1000) + (o.durationMs ?? 5000) + 60_000;
  setTimeout(() => { process.stderr.write('tcp-load: gave up\n'); process.exit(2); }, bound).unref();
  const r = o.mode === 'bulk' ? await bulk(o) : o.mode === 'short' ? await short(o) : await idle(o);
  process.stdout.write(JSON.stringify(r) + '\n');
  if (o.mode === 'idle') {
    // Hold the connections until told to go.
    process.stdin.resume();
    process.stdin.on('end', () => process.exit(0));
    process.on('SIGTERM', () => process.exit(0));
    setTimeout(() => process.exit(0), 300_000);
    return;
  }
  process.exit(0);
}

if (require.main === module) void main();
