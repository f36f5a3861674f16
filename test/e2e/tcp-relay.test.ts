// Relay correctness on real kernels, through the gateway AND through the sidecar (iptables capture):
// transfers of random sizes from 0 B to 64 MiB arrive byte-identical (sha256 on both ends), the
// request side is half-closed before the server answers (so a half-close must be carried), a slow
// reader of 64 MiB does not make sluice buffer it (the proxy's RSS is sampled while it lags), a
// server reset reaches the client as a reset, and byte counters / access-log lines are exact.
//
//   app 198.18.7.2 (sidecar, capture) ──front── gateway host 198.18.7.1 | 198.18.8.1 ──back── sink 198.18.8.10:7000
//
// The gateway host routes (forwarding on), so the sidecar reaches the sink directly; the gateway's
// own sluice listens on 7001 and relays to the same sink.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { sluiceArgv } from './harness/paths';
import { PROXY_UID, requireRoot } from './harness/prereqs';
import type { ProcHandle } from './harness/proc-handle';
import { Topology } from './harness/topology';

const APP_IP = '198.18.7.2';
const GW_FRONT = '198.18.7.1';
const SINK_IP = '198.18.8.10';
const CLUSTER = 'outbound|7000||sink.test';
const MIB = 1024 * 1024;
/** Stated bound: the proxy's RSS may grow by at most this while a 64 MiB download lags behind. */
const RSS_GROWTH_BOUND = 40 * MIB;

const CONFIG = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: sink }
spec:
  hosts: [sink.test]
  addresses: [${SINK_IP}]
  ports: [{ number: 7000, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: ${SINK_IP} }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: relay-gw }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: 7001, name: tcp, protocol: TCP }
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: relay }
spec:
  hosts: ["*"]
  gateways: [relay-gw]
  tcp:
  - route: [{ destination: { host: sink.test, port: { number: 7000 } } }]
`;

// Shared by both ends: a deterministic byte stream (AES-128-CTR keystream of a seed), fast enough
// to produce 64 MiB in well under a second.
const STREAM_JS = `
const crypto = require('node:crypto');
function stream(seed) {
  const key = crypto.createHash('sha256').update('key' + seed).digest().subarray(0, 16);
  return crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
}
const ZERO = Buffer.alloc(65536);
`;

// The sink: header line "up=N down=M seed=S reset=R\\n", then N bytes; after the client's FIN it
// answers "<sha256 of the N bytes>\\n" then M bytes of stream(S) and ends. reset=1: after 1 MiB of
// the answer it resets the connection instead, once the peer has had time to read what was sent:
// libuv reports a RST that arrives together with unread data as EOF (its POLLHUP short-cut after a
// partial read), so only a RST on a drained socket is visible to any Node process as ECONNRESET.
const SINK_JS = STREAM_JS + `
const net = require('node:net');
net.createServer({ allowHalfOpen: true }, (s) => {
  let head = Buffer.alloc(0), hdr = null, hash = crypto.createHash('sha256'), got = 0;
  s.on('error', () => {});
  s.on('data', (d) => {
    if (hdr === null) {
      head = Buffer.concat([head, d]);
      const i = head.indexOf(10);
      if (i < 0) return;
      hdr = Object.fromEntries(head.subarray(0, i).toString().split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
      d = head.subarray(i + 1);
    }
    got += d.length;
    hash.update(d);
  });
  s.on('end', () => {
    if (hdr === null) { s.end(); return; }
    s.write(hash.digest('hex') + ' ' + got + '\\n');
    const gen = stream(hdr.seed);
    let left = hdr.down, sent = 0;
    const pump = () => {
      while (left > 0) {
        if (hdr.reset && sent >= 1048576) {
          const rst = () => setTimeout(() => s.resetAndDestroy(), 300);
          if (s.writableNeedDrain) s.once('drain', rst); else rst();
          return;
        }
        const n = Math.min(left, 65536);
        left -= n; sent += n;
        if (!s.write(gen.update(ZERO.subarray(0, n)))) { s.once('drain', pump); return; }
      }
      s.end();
    };
    pump();
  });
}).listen(7000, '0.0.0.0', () => console.log('READY'));
`;

// The client: one transfer per argv case "up:down:seed:slow:reset", sequentially; prints one JSON
// line per case. slow=1 reads the download in 64 KiB steps with a pause between them.
const CLIENT_JS = STREAM_JS + `
const net = require('node:net');
const [host, port] = [process.argv[2], Number(process.argv[3])];
function one(c) {
  const [up, down, seed, slow, reset] = c.split(':').map(Number);
  return new Promise((resolve) => {
    const r = { case: c, sentHash: '', echoedHash: '', echoedLen: -1, downOk: false, downLen: 0, error: null, ms: 0 };
    const started = Date.now();
    const s = net.connect({ host, port, allowHalfOpen: true });
    const sentHash = crypto.createHash('sha256');
    const upGen = stream(seed + 1000);
    const expect = stream(seed);
    const downHash = crypto.createHash('sha256'), expHash = crypto.createHash('sha256');
    let line = null, pre = Buffer.alloc(0);
    s.on('connect', () => {
      s.write('up=' + up + ' down=' + down + ' seed=' + seed + ' reset=' + reset + '\\n');
      let left = up;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, 65536);
          left -= n;
          const b = upGen.update(ZERO.subarray(0, n));
          sentHash.update(b);
          if (!s.write(b)) { s.once('drain', pump); return; }
        }
        s.end(); // half-close: the sink answers only after our FIN
      };
      pump();
    });
    const onBody = (d) => {
      r.downLen += d.length;
      downHash.update(d);
      expHash.update(expect.update(ZERO.subarray(0, d.length)));
    };
    s.on('data', (d) => {
      if (line === null) {
        pre = Buffer.concat([pre, d]);
        const i = pre.indexOf(10);
        if (i < 0) return;
        line = pre.subarray(0, i).toString();
        [r.echoedHash, r.echoedLen] = [line.split(' ')[0], Number(line.split(' ')[1])];
        d = pre.subarray(i + 1);
      }
      if (d.length > 0) onBody(d);
      if (slow) { s.pause(); setTimeout(() => s.resume(), 3); }
    });
    s.on('error', (e) => { r.error = e.code || e.message; });
    s.on('close', () => {
      r.sentHash = sentHash.digest('hex');
      r.downOk = r.downLen === down && downHash.digest('hex') === expHash.digest('hex');
      r.ms = Date.now() - started;
      resolve(r);
    });
  });
}
(async () => { for (const c of process.argv.slice(4)) console.log(JSON.stringify(await one(c))); })();
`;

interface Result {
  case: string;
  sentHash: string;
  echoedHash: string;
  echoedLen: number;
  downOk: boolean;
  downLen: number;
  error: string | null;
}

/** Sizes: the edges (0, 1, one read chunk, chunk+1) and random ones up to 64 MiB. */
function cases(seed: number): { c: string; up: number; down: number }[] {
  const rnd = (max: number, i: number) => crypto.createHash('sha256').update(`${seed}/${i}`).digest().readUInt32BE(0) % max;
  const list: [number, number][] = [[0, 0], [1, 0], [0, 1], [65536, 65537], [rnd(MIB, 1), rnd(4 * MIB, 2)], [rnd(16 * MIB, 3), 7], [64 * MIB, 0], [3, 64 * MIB]];
  return list.map(([up, down], i) => ({ c: `${up}:${down}:${seed * 100 + i}:0:0`, up, down }));
}

function headerLen(c: string): number {
  const [up, down, seed, , reset] = c.split(':');
  return Buffer.byteLength(`up=${up} down=${down} seed=${seed} reset=${reset}\n`);
}

async function statsOf(topo: Topology, host: string): Promise<Map<string, number>> {
  const r = await topo.exec(host, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:15000/stats']);
  const m = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    const i = line.lastIndexOf(': ');
    if (i > 0) m.set(line.slice(0, i), Number(line.slice(i + 2)));
  }
  return m;
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // exited between listing and reading
  }
}

/** RSS of a process and all its descendants (sluice forks --concurrency workers that do the relaying). */
function rssTree(root: number): number {
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(d));
    children.set(ppid, list);
  }
  let total = 0;
  const todo = [root];
  for (let i = 0; i < todo.length && i < 1000; i++) {
    total += rssOf(todo[i]!);
    todo.push(...(children.get(todo[i]!) ?? []));
  }
  return total;
}

async function runClient(topo: Topology, clientJs: string, host: string, port: number, list: string[]): Promise<Result[]> {
  const r = await topo.exec('app', [process.execPath, clientJs, host, String(port), ...list], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`client exit ${r.code}: ${r.stderr}`);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Result);
}

t.test('TCP relay through the gateway and the sidecar: byte-identical, half-close, bounded memory, resets', async (t) => {
  if (!(await requireRoot(t))) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-relay-'));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cfgDir = path.join(dir, 'config');
  fs.mkdirSync(cfgDir, { mode: 0o755 });
  fs.writeFileSync(path.join(cfgDir, 'relay.yaml'), CONFIG);
  const sinkJs = path.join(dir, 'sink.js');
  const clientJs = path.join(dir, 'client.js');
  fs.writeFileSync(sinkJs, SINK_JS);
  fs.writeFileSync(clientJs, CLIENT_JS);
  for (const f of [sinkJs, clientJs, path.join(cfgDir, 'relay.yaml')]) fs.chmodSync(f, 0o644);

  const topo = await Topology.create(
    t,
    [{ name: 'front', cidr: '198.18.7.0/24' }, { name: 'back', cidr: '198.18.8.0/24' }],
    [
      { name: 'app', nets: [{ net: 'front', address: APP_IP }], defaultVia: GW_FRONT },
      { name: 'gateway', nets: [{ net: 'front', address: GW_FRONT }, { net: 'back', address: '198.18.8.1' }], forwarding: true },
      { name: 'sink', nets: [{ net: 'back', address: SINK_IP }], routes: [{ to: '198.18.7.0/24', via: '198.18.8.1' }] },
    ],
  );
  const sink = topo.spawn('sink', [process.execPath, sinkJs], { name: 'sink' });
  await sink.waitForLine(/^READY$/, 10_000);
  const gw: ProcHandle = topo.spawn('gateway', sluiceArgv(['run', '--role', 'gateway', '--labels', 'istio=ingressgateway', '--config', cfgDir, '--access-log', 'stdout']), { uid: PROXY_UID, name: 'gateway' });
  await gw.waitForLine(/sluice is live/, 15_000);
  const rules = await topo.exec('app', sluiceArgv(['iptables']));
  t.equal(rules.code, 0, `capture rules installed (${rules.stderr})`);
  const sidecar: ProcHandle = topo.spawn('app', sluiceArgv(['run', '--role', 'sidecar', '--config', cfgDir, '--access-log', 'stdout']), { uid: PROXY_UID, name: 'sidecar' });
  await sidecar.waitForLine(/sluice is live/, 15_000);
  t.match(fs.readFileSync(`/proc/${gw.pid}/cmdline`, 'utf8'), /proxy\/cli\.js/, 'the gateway pid is the sluice process itself (for RSS)');

  const seed = Number(process.env.SLUICE_RELAY_SEED ?? Date.now() % 100000);
  t.comment(`random sizes from seed ${seed} (SLUICE_RELAY_SEED=${seed} reproduces)`);
  for (const [label, proc, host, port] of [['gateway', gw, GW_FRONT, 7001], ['sidecar', sidecar, SINK_IP, 7000]] as const) {
    const list = cases(seed);
    const results = await runClient(topo, clientJs, host, port, list.map((x) => x.c));
    for (const [i, r] of results.entries()) {
      const { up, down } = list[i]!;
      t.equal(r.error, null, `${label} ${up}B up / ${down}B down: no error`);
      t.equal(r.echoedLen, up, `${label}: the sink got all ${up} bytes after the half-close`);
      t.equal(r.echoedHash, r.sentHash, `${label}: upload sha256 identical`);
      t.ok(r.downOk, `${label}: download of ${down} B sha256 identical (got ${r.downLen})`);
    }
    // Counters: every byte each way, headers and hash lines included.
    const st = await statsOf(topo, label === 'gateway' ? 'gateway' : 'app');
    const upBytes = list.reduce((a, x) => a + headerLen(x.c) + x.up, 0);
    const downBytes = results.reduce((a, r, i) => a + Buffer.byteLength(`${r.echoedHash} ${list[i]!.up}\n`) + list[i]!.down, 0);
    t.equal(st.get(`cluster.${CLUSTER}.upstream_cx_tx_bytes_total`), upBytes, `${label}: upstream_cx_tx_bytes_total = ${upBytes}`);
    t.equal(st.get(`cluster.${CLUSTER}.upstream_cx_rx_bytes_total`), downBytes, `${label}: upstream_cx_rx_bytes_total = ${downBytes}`);
    const big = list[list.length - 1]!;
    const expectLine = new RegExp(`"- - -" 0 - - - "-" ${headerLen(big.c) + big.up} ${64 + 1 + String(big.up).length + 1 + big.down} \\d+ .*"${SINK_IP.replace(/\./g, '\\.')}:7000" outbound\\|7000\\|\\|sink\\.test`);
    await proc.waitForLine(expectLine, 5_000);
    t.pass(`${label}: access-log line with the 64 MiB download's byte counts`);
  }

  // Slow reader through the gateway: the sink can write 64 MiB at once; the client takes seconds.
  const base = rssTree(gw.pid);
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, rssTree(gw.pid))), 50);
  const [slow] = await runClient(topo, clientJs, GW_FRONT, 7001, [`5:${64 * MIB}:${seed}:1:0`]);
  clearInterval(sampler);
  t.ok(slow!.downOk && slow!.error === null, `slow reader: 64 MiB arrived intact (${slow!.downLen} B)`);
  t.ok(peak - base < RSS_GROWTH_BOUND, `gateway RSS grew ${((peak - base) / MIB).toFixed(1)} MiB while the reader lagged (bound ${RSS_GROWTH_BOUND / MIB} MiB < 64 MiB in flight)`);
  t.comment(`gateway RSS (process + workers): base ${(base / MIB).toFixed(1)} MiB, peak ${(peak / MIB).toFixed(1)} MiB; slow read took ${(slow as Result & { ms: number }).ms} ms`);

  // A reset by the server mid-answer reaches the client as a reset, through both proxies.
  for (const [label, proc, host, port] of [['gateway', gw, GW_FRONT, 7001], ['sidecar', sidecar, SINK_IP, 7000]] as const) {
    const mark = proc.mark();
    const [r] = await runClient(topo, clientJs, host, port, [`10:${8 * MIB}:${seed}:0:1`]);
    t.equal(r!.error, 'ECONNRESET', `${label}: the client sees ECONNRESET, not a clean end`);
    t.ok(r!.downLen >= MIB && r!.downLen < 8 * MIB, `${label}: part of the answer arrived first (${r!.downLen} B)`);
    await proc.waitForLine(/"- - -" 0 UC .*outbound\|7000\|\|sink\.test/, 5_000, mark);
    t.pass(`${label}: logged with flag UC`);
  }
});
