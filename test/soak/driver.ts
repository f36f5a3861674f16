// The soak's client, run inside the app namespace (its connections are captured by the sidecar):
//   node dist/test/soak/driver.js '<Plan as JSON>'
// `concurrency` loops run random transfers one after another until `durationMs` has passed, and
// print one JSON line (a TransferResult) per transfer, then "DONE". Random from `seed`, so a run can
// be repeated. Protocols: see sink.ts.

import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { ByteStream, CHUNK } from './stream';
import type { Behavior, Plan, Target, TransferResult } from './plan';

const MIB = 1024 * 1024;
/** Default for Plan.hangMs: a transfer still running after this is reported as hung. */
const HANG_MS = 180_000;
/** client-reset: read this much, stop reading for RESET_PAUSE_MS (the proxy's buffers fill), reset. */
const RESET_AFTER = 1024 * 1024;
const RESET_PAUSE_MS = 200;

/** mulberry32: small, seedable, good enough to pick cases. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(r: () => number, weighted: readonly (readonly [T, number])[]): T {
  const total = weighted.reduce((a, [, w]) => a + w, 0);
  let x = r() * total;
  for (const [v, w] of weighted) if ((x -= w) < 0) return v;
  return weighted[weighted.length - 1]![0];
}

/** 0 B .. max, log-uniform (most transfers small, some huge), with the edges 0 and max themselves. */
function size(r: () => number, max: number, zeroShare: number): number {
  const x = r();
  if (x < zeroShare) return 0;
  if (x > 0.985) return max;
  return Math.floor(Math.exp(r() * Math.log(max)));
}

interface Case {
  readonly id: string;
  readonly target: Target;
  readonly behavior: Behavior;
  readonly up: number;
  readonly down: number;
  readonly seed: number;
}

function nextCase(r: () => number, plan: Plan, loop: number, n: number): Case {
  const target = pick(r, plan.targets.map((t) => [t, t.weight] as const));
  const behavior: Behavior = target.hole ? 'normal' : pick<Behavior>(r, [['normal', 60], ['slow', 15], ['client-reset', 12.5], ['upstream-reset', 12.5]]);
  let up = target.hole ? 100 : size(r, 64 * MIB, 0.3);
  let down = target.hole ? 100 : size(r, 64 * MIB, 0.1);
  // The sink resets half-way through the answer (at most 1 MiB in): give it an answer long enough.
  if (behavior === 'upstream-reset') down = Math.max(down, 2 * MIB);
  // The client resets after RESET_AFTER bytes and a pause, while the proxy still has bytes for it:
  // 16 MiB is more than the kernel buffers between them hold, so the proxy cannot have finished.
  if (behavior === 'client-reset') down = Math.max(down, 16 * MIB);
  if (behavior === 'slow') up = Math.min(up, MIB);
  return { id: `${plan.seed}-${loop}-${n}`, target, behavior, up, down, seed: (plan.seed * 7919 + loop * 104729 + n) >>> 0 };
}

function emptyResult(c: Case): TransferResult {
  return { id: c.id, target: c.target.name, behavior: c.behavior, up: c.up, down: c.down, t0: Date.now(), t1: 0, localPort: 0, peer: null, status: 0, upOk: false, downLen: 0, prefixOk: true, downOk: false, complete: false, error: null };
}

function tcpTransfer(c: Case, hangMs: number): Promise<TransferResult> {
  return new Promise((resolve) => {
    const r = emptyResult(c);
    const s = net.connect({ host: c.target.host, port: c.target.port, allowHalfOpen: true });
    const sent = crypto.createHash('sha256');
    const gotHash = crypto.createHash('sha256');
    const expHash = crypto.createHash('sha256');
    const upGen = new ByteStream(c.seed + 1);
    const expect = new ByteStream(c.seed);
    let pre = Buffer.alloc(0);
    let peerSeen = false;
    let answer: string | null = null;
    const hang = setTimeout(() => {
      r.error = 'hang';
      s.destroy();
    }, hangMs);
    s.on('connect', () => {
      r.localPort = s.localPort ?? 0;
      s.write(`up=${c.up} down=${c.down} seed=${c.seed} reset=${c.behavior === 'upstream-reset' ? 1 : 0}\n`);
      let left = c.up;
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, CHUNK);
          left -= n;
          const b = upGen.next(n);
          sent.update(b);
          if (!s.write(b)) {
            s.once('drain', pump);
            return;
          }
        }
        s.end(); // half-close: the sink answers only after our FIN
      };
      pump();
    });
    const body = (d: Buffer): void => {
      r.downLen += d.length;
      gotHash.update(d);
      expHash.update(expect.next(d.length));
      if (c.behavior === 'client-reset' && r.downLen >= RESET_AFTER && r.error === null) {
        r.error = 'client-reset';
        s.pause();
        setTimeout(() => s.resetAndDestroy(), RESET_PAUSE_MS);
      }
    };
    s.on('data', (chunk: Buffer) => {
      let d = chunk;
      while (answer === null && d.length > 0) {
        pre = Buffer.concat([pre, d]);
        const i = pre.indexOf(10);
        if (i < 0) return;
        const line = pre.subarray(0, i).toString();
        d = pre.subarray(i + 1);
        pre = Buffer.alloc(0);
        if (!peerSeen) {
          peerSeen = true;
          r.peer = line.startsWith('peer=') ? line.slice(5) : null;
        } else answer = line;
      }
      if (answer !== null && d.length > 0) {
        // Hashes of up to 64 MiB in 64 KiB pieces: incremental, never a buffer of the whole answer.
        for (let o = 0; o < d.length; o += CHUNK) body(d.subarray(o, o + CHUNK));
      }
      if (c.behavior === 'slow') {
        s.pause();
        setTimeout(() => s.resume(), 3);
      }
    });
    s.on('error', (e: NodeJS.ErrnoException) => (r.error ??= e.code ?? e.message));
    s.on('close', () => {
      clearTimeout(hang);
      const [echoed, len] = (answer ?? ' -1').split(' ');
      r.upOk = echoed === sent.digest('hex') && Number(len) === c.up;
      r.prefixOk = gotHash.digest('hex') === expHash.digest('hex');
      r.downOk = r.downLen === c.down && r.prefixOk;
      r.complete = answer !== null && r.upOk && r.downLen === c.down && r.error === null;
      if (r.error === null && !r.complete) r.error = answer === null ? 'closed-before-answer' : 'short-answer';
      r.t1 = Date.now();
      resolve(r);
    });
  });
}

function httpTransfer(c: Case, agent: http.Agent, hangMs: number): Promise<TransferResult> {
  return new Promise((resolve) => {
    const r = emptyResult(c);
    const sent = crypto.createHash('sha256');
    const gotHash = crypto.createHash('sha256');
    const expHash = crypto.createHash('sha256');
    const upGen = new ByteStream(c.seed + 1);
    const expect = new ByteStream(c.seed);
    let upHeader: string | undefined;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(hang);
      r.upOk = r.status !== 200 || upHeader === sent.digest('hex');
      r.prefixOk = r.status !== 200 || gotHash.digest('hex') === expHash.digest('hex');
      r.downOk = r.status === 200 && r.downLen === c.down && r.prefixOk;
      r.complete = r.error === null && r.status === 200 && r.upOk && r.downOk;
      r.t1 = Date.now();
      resolve(r);
    };
    const reset = c.behavior === 'upstream-reset' ? 1 : 0;
    const req = http.request({
      host: c.target.host,
      port: c.target.port,
      method: c.up > 0 ? 'POST' : 'GET',
      path: `/t/${c.id}?down=${c.down}&seed=${c.seed}&reset=${reset}`,
      headers: { host: c.target.hostHeader ?? c.target.host, ...(c.up > 0 ? { 'content-length': String(c.up) } : {}) },
      agent,
    });
    const hang = setTimeout(() => {
      r.error = 'hang';
      req.destroy();
      finish();
    }, hangMs);
    req.on('socket', (s) => {
      const note = (): void => void (r.localPort = s.localPort ?? 0);
      if (s.localPort) note();
      else s.once('connect', note);
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      r.error ??= e.code ?? e.message;
      finish();
    });
    req.on('response', (res) => {
      r.status = res.statusCode ?? 0;
      upHeader = res.headers['x-up-sha256'] as string | undefined;
      res.on('data', (d: Buffer) => {
        if (r.status === 200) {
          r.downLen += d.length;
          gotHash.update(d);
          expHash.update(expect.next(d.length));
        }
        if (c.behavior === 'client-reset' && r.downLen >= RESET_AFTER && r.error === null) {
          r.error = 'client-reset';
          res.pause();
          setTimeout(() => {
            res.socket.resetAndDestroy();
            finish();
          }, RESET_PAUSE_MS);
        }
        if (c.behavior === 'slow') {
          res.pause();
          setTimeout(() => res.resume(), 3);
        }
      });
      res.on('aborted', () => (r.error ??= 'aborted'));
      res.on('error', (e: NodeJS.ErrnoException) => (r.error ??= e.code ?? e.message));
      res.on('end', () => {
        if (!res.complete) r.error ??= 'incomplete';
        finish();
      });
      res.on('close', () => {
        if (!res.complete) r.error ??= 'aborted';
        finish();
      });
    });
    let left = c.up;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, CHUNK);
        left -= n;
        const b = upGen.next(n);
        sent.update(b);
        if (!req.write(b)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

async function loop(plan: Plan, index: number, deadline: number): Promise<void> {
  const r = rng(plan.seed * 31 + index);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let n = 0; Date.now() < deadline; n++) {
    const c = nextCase(r, plan, index, n);
    const hangMs = plan.hangMs ?? HANG_MS;
    const result = c.target.kind === 'tcp' ? await tcpTransfer(c, hangMs) : await httpTransfer(c, agent, hangMs);
    process.stdout.write(JSON.stringify(result) + '\n');
  }
  agent.destroy();
}

async function main(): Promise<void> {
  const plan = JSON.parse(process.argv[2] ?? '{}') as Plan;
  const deadline = Date.now() + plan.durationMs;
  await Promise.all(Array.from({ length: plan.concurrency }, (_, i) => loop(plan, i, deadline)));
  process.stdout.write('DONE\n');
}

void main();
