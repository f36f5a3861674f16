// L4 relay, old vs new: socket.pipe() both ways, stream.pipeline() both ways, proxy/l4/relay.ts with
// 'data' events both ways ('relay') and with the upstream read into its own buffer ('onread'), and
// the bare-handle path ('handles': listener/accept-handles.ts + upstream/handle-connect.ts +
// l4/handle-relay.ts, what plain TCP takes now), each in its own proxy child process so its CPU can be read alone.
// Bulk download (sink -> proxy -> client) over loopback, CONNECTIONS in parallel, then a short
// connect/1-byte/close churn. Reports Gb/s, proxy CPU-s per GB, proxy CPU µs per connection, RSS.
// Bounded: BYTES per mode (default 512 MiB) and CHURN connections per mode (default 2000).
//
//   node dist/bench/micro/relay.bench.js      BYTES=1073741824 CONNECTIONS=4 CHURN=2000 MODES=relay,pipe to change

import net from 'node:net';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { pipeline } from 'node:stream';
import { relay } from '../../proxy/l4/relay';
import { UpstreamReader } from '../../proxy/l4/upstream-reader';
import { relayHandles } from '../../proxy/l4/handle-relay';
import { acceptHandles } from '../../proxy/transport/accept-handles';
import { connectHandle } from '../../proxy/upstream/handle-connect';
import { UpstreamHost } from '../../proxy/upstream/host';
import { ClusterStats, StatsStore } from '../../proxy/observe/stats';

const ALL_MODES = ['pipe', 'pipeline', 'relay', 'onread', 'handles'] as const;
type Mode = (typeof ALL_MODES)[number];
/** MODES=relay,pipe reorders or narrows the run (order matters a little on a 2-core box: alternate it). */
const MODES: readonly Mode[] = (process.env.MODES?.split(',') ?? ALL_MODES).filter((m): m is Mode => (ALL_MODES as readonly string[]).includes(m));
const BYTES = Number(process.env.BYTES ?? 512 * 1024 * 1024);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 4);
const CHURN = Number(process.env.CHURN ?? 2000);
const CHURN_PARALLEL = 16;
const WARMUP_BYTES = 64 * 1024 * 1024;
const CHILD_ENV = 'SLUICE_RELAY_BENCH_MODE';

// ---- proxy child -------------------------------------------------------------------------------

function destroyBoth(a: net.Socket, b: net.Socket): void {
  a.destroy();
  b.destroy();
}

const NOOP_HOOKS = { onClose(): void {} };

/** The bare-handle path with sluice's own connector and relay (accounting into a throwaway store). */
function handleProxy(server: net.Server, upstreamPort: number): void {
  const stats = new ClusterStats(new StatsStore(), 'bench');
  const host = new UpstreamHost('127.0.0.1', upstreamPort, '', null);
  const opts = { connectTimeoutMs: 0, tls: null, sni: null, keepalive: null };
  acceptHandles(server, (down) => {
    connectHandle(stats, host, opts, (err, conn) => {
      if (err !== null || conn === null) down.close();
      else relayHandles(down, conn.handle, { onClose: (r) => conn.closed(false, r.bytesFromUpstream, r.bytesFromDownstream) });
    });
  });
}

function proxyChild(mode: Mode, upstreamPort: number): void {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (down) => {
    if (mode === 'onread') {
      const reader = new UpstreamReader();
      const up = net.connect({ host: '127.0.0.1', port: upstreamPort, allowHalfOpen: true, noDelay: true, onread: reader.onread });
      relay(down, up, null, NOOP_HOOKS, reader);
      return;
    }
    const up = net.connect({ host: '127.0.0.1', port: upstreamPort, allowHalfOpen: true, noDelay: true });
    if (mode === 'relay') {
      relay(down, up, null, NOOP_HOOKS);
      return;
    }
    if (mode === 'pipe') {
      // pipe() alone neither propagates destroy nor errors: the fair "old" baseline adds both.
      down.pipe(up);
      up.pipe(down);
      down.on('error', () => destroyBoth(down, up));
      up.on('error', () => destroyBoth(down, up));
      down.on('close', () => up.destroy());
      up.on('close', () => down.destroy());
      return;
    }
    const done = (err: NodeJS.ErrnoException | null) => { if (err) destroyBoth(down, up); };
    pipeline(down, up, done);
    pipeline(up, down, done);
  });
  server.listen(0, '127.0.0.1', () => {
    if (mode === 'handles') handleProxy(server, upstreamPort);
    (process.send as (m: unknown) => void)({ port: (server.address() as net.AddressInfo).port });
  });
  process.on('message', (m: unknown) => {
    if (m === 'usage') {
      const u = process.cpuUsage();
      (process.send as (m: unknown) => void)({ cpuUs: u.user + u.system, rss: process.memoryUsage().rss });
    } else if (m === 'exit') {
      process.exit(0);
    }
  });
}

// ---- driver ------------------------------------------------------------------------------------

/** Sink: the client sends an 8-byte size, the sink streams that many bytes and ends. */
async function startSink(): Promise<net.Server> {
  const block = Buffer.alloc(256 * 1024, 0x61);
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    s.on('error', () => {});
    s.once('data', (req: Buffer) => {
      let left = req.length >= 8 ? Number(req.readBigUInt64BE(0)) : 1;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, block.length);
          left -= n;
          if (!s.write(n === block.length ? block : block.subarray(0, n))) { s.once('drain', pump); return; }
        }
        s.end();
      };
      pump();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** Ask for `bytes` through the proxy and read them all; resolves with bytes received. */
function download(port: number, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port, noDelay: true, allowHalfOpen: true });
    let got = 0;
    const req = Buffer.alloc(8);
    req.writeBigUInt64BE(BigInt(bytes));
    c.on('connect', () => c.write(req));
    c.on('data', (d: Buffer) => { got += d.length; });
    c.on('end', () => { c.end(); resolve(got); });
    c.on('error', reject);
  });
}

function ask(child: ChildProcess): Promise<{ cpuUs: number; rss: number }> {
  const p = once(child, 'message') as Promise<[{ cpuUs: number; rss: number }]>;
  child.send('usage');
  return p.then(([m]) => m);
}

interface Row { mode: Mode; gbps: number; cpuSPerGB: number; rssMB: number; cpuUsPerConn: number; connPerS: number }

async function runMode(mode: Mode, sinkPort: number): Promise<Row> {
  const child = fork(__filename, [], { env: { ...process.env, [CHILD_ENV]: mode, SINK_PORT: String(sinkPort) }, execArgv: [] });
  try {
    const [{ port }] = (await once(child, 'message')) as [{ port: number }];
    await download(port, WARMUP_BYTES);

    const per = Math.floor(BYTES / CONNECTIONS);
    const cpu0 = await ask(child);
    const t0 = process.hrtime.bigint();
    const got = await Promise.all(Array.from({ length: CONNECTIONS }, () => download(port, per)));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu1 = await ask(child);
    const total = got.reduce((a, b) => a + b, 0);
    if (total !== per * CONNECTIONS) throw new Error(`${mode}: got ${total} of ${per * CONNECTIONS} bytes`);

    // Churn: CHURN short connections, CHURN_PARALLEL at a time, each moving 1 byte.
    const cpu2 = await ask(child);
    const t2 = process.hrtime.bigint();
    let started = 0;
    const loop = async () => { while (started < CHURN) { started++; await download(port, 1); } };
    await Promise.all(Array.from({ length: CHURN_PARALLEL }, loop));
    const churnSecs = Number(process.hrtime.bigint() - t2) / 1e9;
    const cpu3 = await ask(child);

    return {
      mode,
      gbps: (total * 8) / secs / 1e9,
      cpuSPerGB: (cpu1.cpuUs - cpu0.cpuUs) / 1e6 / (total / 1e9),
      rssMB: cpu1.rss / 1024 / 1024,
      cpuUsPerConn: (cpu3.cpuUs - cpu2.cpuUs) / CHURN,
      connPerS: CHURN / churnSecs,
    };
  } finally {
    child.send('exit');
    child.kill();
  }
}

async function main(): Promise<void> {
  // A hard bound on the whole run, whatever happens.
  setTimeout(() => { console.error('relay bench: gave up after 120 s'); process.exit(1); }, 120_000).unref();
  const sink = await startSink();
  const sinkPort = (sink.address() as net.AddressInfo).port;
  console.log(`relay micro bench: ${(BYTES / 2 ** 20).toFixed(0)} MiB over ${CONNECTIONS} connections + ${CHURN} 1-byte connections per mode, node ${process.version}`);
  console.log('mode        Gb/s   CPU-s/GB   RSS MB   conn/s   CPU µs/conn');
  for (const mode of MODES) {
    const r = await runMode(mode, sinkPort);
    console.log(`${r.mode.padEnd(9)} ${r.gbps.toFixed(2).padStart(6)} ${r.cpuSPerGB.toFixed(2).padStart(10)} ${r.rssMB.toFixed(0).padStart(8)} ${r.connPerS.toFixed(0).padStart(8)} ${r.cpuUsPerConn.toFixed(0).padStart(13)}`);
  }
  sink.close();
}

const childMode = process.env[CHILD_ENV] as Mode | undefined;
if (childMode !== undefined) proxyChild(childMode, Number(process.env.SINK_PORT));
else void main();
