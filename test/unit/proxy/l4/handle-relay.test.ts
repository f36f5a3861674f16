import t from 'tap';
import net from 'node:net';
import crypto from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { relayHandles, type HandleRelay } from '../../../../proxy/l4/handle-relay';
import type { RelayResult } from '../../../../proxy/l4/relay';
import { tcpHandles, tcpHandlesUnavailableReason, type TcpHandle } from '../../../../proxy/transport/tcp-handle';
import { acceptHandles } from '../../../../proxy/transport/accept-handles';

// Topology of every test: a client net.Socket -> a net.Server whose connections arrive as bare
// handles (acceptHandles) -> relayHandles() -> a bare upstream handle -> an upstream net.Server,
// all on 127.0.0.1:0. The relay.test.ts scenarios, on the handle relay.

// Skipped loudly where this Node has no bare handles (sluice then runs on net.Sockets only); in CI
// (CI=true, Node 20 as shipped) that would hide the fast path going untested, so it fails there.
const skip = tcpHandles() === null ? `no bare TCP handles: ${tcpHandlesUnavailableReason()}` : false;
if (skip !== false && process.env['CI'] === 'true') t.fail(`CI must test the handle relay: ${skip}`);

/** Upper bound of every wait for an event that must come (a hang guard, not a timing assertion). */
const GUARD_MS = 30_000;

type UpstreamHandler = (s: net.Socket) => void;

interface Proxy {
  port: number;
  /** Results in connection order; onCloseCalls counts every call of onClose. */
  results: RelayResult[];
  onCloseCalls: number;
  /** Relays in the order their upstream connected. */
  relays: HandleRelay[];
  /** The next result in order, or null when none came within GUARD_MS. */
  nextClose(): Promise<RelayResult | null>;
  /** The relay of the next connection, or null when none started within GUARD_MS. */
  nextRelay(): Promise<HandleRelay | null>;
  /** Calls of useUserBuffer per relay (a direction switched to its own read buffer). */
  ownBuffers: Map<HandleRelay, { down: number; up: number }>;
}

/** Resolves with `p`, or with null once GUARD_MS passed. */
function guarded<T>(p: Promise<T>): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<null>((resolve) => { timer = setTimeout(resolve, GUARD_MS, null); });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

const turn = (ms = 0) => new Promise<void>((resolve) => { if (ms === 0) setImmediate(resolve); else setTimeout(resolve, ms); });

/** A promise for a value produced inside a callback later. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

/** A queue handing out values in order, whether they were produced before or after the call. */
function inOrder<T>(): { push(v: T): void; next(): Promise<T | null> } {
  const values: T[] = [];
  const waiting: Array<(v: T) => void> = [];
  return {
    push(v) { const w = waiting.shift(); if (w === undefined) values.push(v); else w(v); },
    next() { return guarded(new Promise<T>((resolve) => { const v = values.shift(); if (v === undefined) waiting.push(resolve); else resolve(v); })); },
  };
}

async function upstreamServer(t: tap.Test, handler: UpstreamHandler): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    handler(s);
  });
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close(); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** The relay server: accept a bare handle, connect a bare handle upstream, relay the two. */
async function relayServer(t: tap.Test, upstreamPort: number): Promise<Proxy> {
  const h = tcpHandles()!;
  const closes = inOrder<RelayResult>();
  const started = inOrder<HandleRelay>();
  const open = new Set<TcpHandle>(); // handles not (yet) owned by a relay
  const proxy: Proxy = {
    port: 0, results: [], onCloseCalls: 0, relays: [], ownBuffers: new Map(),
    nextClose: closes.next, nextRelay: started.next,
  };
  const hooks = {
    onClose(r: RelayResult) {
      proxy.onCloseCalls++;
      proxy.results.push(r);
      closes.push(r);
    },
  };
  const server = net.createServer();
  t.teardown(() => {
    for (const r of proxy.relays) r.abort();
    for (const handle of open) handle.close();
    server.close();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.ok(acceptHandles(server, (down) => {
    const up = h.newSocket();
    open.add(down);
    open.add(up);
    const req = h.newConnectReq();
    req.oncomplete = (status) => {
      open.delete(down);
      open.delete(up);
      if (status < 0) { down.close(); up.close(); return; }
      const switches = { down: 0, up: 0 };
      countUserBuffers(down, () => switches.down++);
      countUserBuffers(up, () => switches.up++);
      const r = relayHandles(down, up, hooks);
      proxy.ownBuffers.set(r, switches);
      proxy.relays.push(r);
      started.push(r);
    };
    const err = up.connect(req, '127.0.0.1', upstreamPort);
    if (err !== 0) req.oncomplete.call(req, err, up, req, false, false);
  }), 'the server hands out bare handles');
  proxy.port = (server.address() as net.AddressInfo).port;
  return proxy;
}

/** Observe (not replace) a handle's switch to a read buffer of its own. */
function countUserBuffers(handle: TcpHandle, onSwitch: () => void): void {
  const useUserBuffer = handle.useUserBuffer;
  handle.useUserBuffer = function (buf) { onSwitch(); useUserBuffer.call(this, buf); };
}

function client(t: tap.Test, port: number): net.Socket {
  const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true });
  c.on('error', () => {});
  t.teardown(() => { c.destroy(); });
  return c;
}

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** Random bytes that senders take slices of: sending allocates nothing the memory checks would see. */
const POOL = crypto.randomBytes(4 * 1024 * 1024);

/** Write `size` bytes, slices of POOL at random offsets up to ~80 KiB, with backpressure; their sha256. */
function sendRandom(s: net.Socket, size: number, then: 'end' | 'keep'): Promise<string> {
  const hash = crypto.createHash('sha256');
  let left = size;
  return new Promise((resolve) => {
    const pump = () => {
      let writable = true;
      while (left > 0 && writable) {
        const n = Math.min(left, 1 + crypto.randomInt(80 * 1024));
        const at = crypto.randomInt(POOL.length - n + 1);
        const b = POOL.subarray(at, at + n);
        hash.update(b);
        left -= n;
        writable = s.write(b);
      }
      if (left > 0) { s.once('drain', pump); return; }
      if (then === 'end') s.end();
      resolve(hash.digest('hex'));
    };
    pump();
  });
}

interface Received { sha: string; bytes: number; outcome: string }

/** Read until 'end' or an error; sha256, byte count, and how it ended ('end' or the error code). */
function readAll(s: net.Socket): Promise<Received> {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  s.on('data', (c: Buffer) => { hash.update(c); bytes += c.length; });
  return new Promise((resolve) => {
    const done = (outcome: string) => resolve({ sha: hash.digest('hex'), bytes, outcome });
    s.once('end', () => done('end'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
  });
}

const connected = (c: net.Socket) => new Promise((resolve) => c.once('connect', resolve));

/** Poll (bounded) until `read()` stops growing for 20 polls in a row; its last value, or -1. */
async function whenStalled(read: () => number): Promise<number> {
  let stableFor = 0;
  let last = -1;
  for (let i = 0; i < 4000 && stableFor < 20; i++) {
    await turn(5);
    const now = read();
    stableFor = now === last && now > 0 ? stableFor + 1 : 0;
    last = now;
  }
  return stableFor === 20 ? last : -1;
}

/** Let stray late callbacks run before counting. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await turn(2);
}

/** Echo upstream: sends back what it reads, ends after the peer ended. */
const echo: UpstreamHandler = (s) => { s.on('data', (d: Buffer) => s.write(d)); s.on('end', () => s.end()); };

t.test('random sizes 0 B..16 MiB arrive intact in both directions, written concurrently, bytes counted', { skip }, async (t) => {
  const seed = (Math.random() * 2 ** 31) | 0;
  t.comment(`seed ${seed}`);
  let x = seed || 1;
  const rnd = (n: number) => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x % n; };
  const MiB = 1024 * 1024;
  const sizes: Array<[number, number]> = [[0, 0], [1, 0], [0, 1], [65536, 65535], [65537, 3], [16 * MiB, rnd(MiB)], [rnd(4 * MiB), 16 * MiB], [rnd(16 * MiB), rnd(16 * MiB)]];
  for (const [upSize, downSize] of sizes) {
    // Upstream: hash what arrives while it sends its own stream; ends once both are done.
    const seen = deferred<Received>();
    const sent = deferred<string>();
    const port = await upstreamServer(t, (s) => {
      const arriving = readAll(s);
      void arriving.then(seen.resolve);
      const sending = sendRandom(s, downSize, 'keep');
      void sending.then(sent.resolve);
      void Promise.all([arriving, sending]).then(() => s.end());
    });
    const proxy = await relayServer(t, port);
    const c = client(t, proxy.port);
    const got = readAll(c);
    await connected(c);
    const sentUp = await sendRandom(c, upSize, 'end');
    const [back, arrived, result] = await Promise.all([got, seen.promise, proxy.nextClose()]);
    const what = `${upSize} B up, ${downSize} B down`;
    t.same({ bytes: arrived.bytes, sha: arrived.sha }, { bytes: upSize, sha: sentUp }, `${what}: client->upstream intact`);
    t.same({ bytes: back.bytes, sha: back.sha, outcome: back.outcome }, { bytes: downSize, sha: await sent.promise, outcome: 'end' }, `${what}: upstream->client intact`);
    t.same(result && { d: result.bytesFromDownstream, u: result.bytesFromUpstream, e: result.error }, { d: upSize, u: downSize, e: null }, `${what}: counted`);
    // A direction that carried 16 MiB must have read 64 KiB at least once: into its own buffer since.
    const switches = proxy.ownBuffers.get(proxy.relays[0]!)!;
    if (upSize === 16 * MiB) t.equal(switches.down, 1, 'the client->upstream direction switched to its own read buffer once');
    if (downSize === 16 * MiB) t.equal(switches.up, 1, 'the upstream->client direction switched to its own read buffer once');
    if (upSize < 65536) t.equal(switches.down, 0, 'a small direction keeps reading into Node\'s buffers');
  }
});

t.test('half-close client->upstream: the upstream sees EOF, still answers, then the client gets EOF', { skip }, async (t) => {
  // The upstream answers only after the client's FIN: the sha256 of the request it read, then 3 MiB.
  const reply = crypto.randomBytes(3 * 1024 * 1024);
  const port = await upstreamServer(t, (s) => {
    void readAll(s).then((req) => s.end(Buffer.concat([Buffer.from(`${req.outcome}:${req.sha};`), reply])));
  });
  const proxy = await relayServer(t, port);
  const c = client(t, proxy.port);
  const got = readAll(c);
  await connected(c);
  const sentSha = await sendRandom(c, 200_000, 'end');
  const back = await got;
  t.equal(back.outcome, 'end', 'the client got a clean EOF after the answer');
  t.equal(back.sha, sha256(Buffer.concat([Buffer.from(`end:${sentSha};`), reply])), 'the upstream saw the FIN after the whole request, and its whole answer arrived');
  const r = await proxy.nextClose();
  t.same(r && { by: r.closedBy, e: r.error, d: r.bytesFromDownstream }, { by: 'downstream', e: null, d: 200_000 });
});

t.test('the client\'s FIN, then 16 MiB it reads late and the upstream FIN: every byte, then the clean end', { skip }, async (t) => {
  // The client sends its FIN and does not read; the upstream sends 16 MiB and its FIN. The relay
  // passes the client's FIN on (a shutdown queued on the upstream side), stops reading the upstream
  // while its writes to the client wait, and reads the upstream FIN only once they are out. Then it
  // closes both sides without a shutdown completion: the client must still get all 16 MiB (a close
  // sends what the kernel holds, then the FIN), not a stream cut short.
  const total = 16 * 1024 * 1024;
  const sentSha = deferred<string>();
  const upstreamSawEof = deferred<boolean>();
  const port = await upstreamServer(t, (s) => {
    void sendRandom(s, total, 'end').then(sentSha.resolve);
    s.on('end', () => upstreamSawEof.resolve(true));
    s.resume();
  });
  const proxy = await relayServer(t, port);
  const c = client(t, proxy.port);
  c.pause();
  await connected(c);
  c.end();
  const relay = await proxy.nextRelay();
  if (relay === null) { t.fail('no relay started'); return; }
  t.equal(await guarded(upstreamSawEof.promise), true, 'the upstream got the client\'s FIN');
  const stalledAt = await whenStalled(() => relay.bytesFromUpstream);
  t.ok(stalledAt > 0 && stalledAt < total, `the relay stopped reading the upstream while the client did not read (at ${stalledAt} B)`);
  t.notOk(relay.upstreamEnded, 'so the upstream FIN is not read yet');
  t.equal(proxy.onCloseCalls, 0, 'and the relay has not ended');
  const got = readAll(c);
  c.resume();
  const back = await got;
  t.same({ bytes: back.bytes, sha: back.sha, outcome: back.outcome }, { bytes: total, sha: await sentSha.promise, outcome: 'end' }, 'all 16 MiB, then a clean EOF');
  const r = await proxy.nextClose();
  t.same(r && { error: r.error, up: r.bytesFromUpstream, by: r.closedBy }, { error: null, up: total, by: 'downstream' }, 'one clean report, every byte counted, the client ended first');
  await settle();
  t.equal(proxy.onCloseCalls, 1);
});

t.test('half-close upstream->client: the client keeps sending after the upstream FIN', { skip }, async (t) => {
  const seen = deferred<Received>();
  const port = await upstreamServer(t, (s) => {
    void readAll(s).then(seen.resolve);
    s.end('upstream-done');
  });
  const proxy = await relayServer(t, port);
  const c = client(t, proxy.port);
  const first = await readAll(c);
  t.same({ bytes: first.bytes, outcome: first.outcome }, { bytes: 'upstream-done'.length, outcome: 'end' }, 'the client got the upstream data, then its FIN');
  const sha = await sendRandom(c, 2 * 1024 * 1024 + 5, 'end');
  const arrived = await seen.promise;
  t.same({ sha: arrived.sha, outcome: arrived.outcome }, { sha, outcome: 'end' }, 'client data after the upstream FIN arrived intact, then EOF');
  const r = await proxy.nextClose();
  t.equal(r?.closedBy, 'upstream');
  t.equal(r?.error, null);
});

t.test('an upstream reset reaches the client as a reset', { skip }, async (t) => {
  const port = await upstreamServer(t, (s) => { s.once('data', () => s.resetAndDestroy()); });
  const proxy = await relayServer(t, port);
  const c = client(t, proxy.port);
  const got = readAll(c);
  c.write('x');
  t.equal((await got).outcome, 'ECONNRESET', 'the client saw RST, not a clean EOF');
  const r = await proxy.nextClose();
  t.equal(r?.closedBy, 'error');
  t.equal(r?.downstreamError, false);
  t.equal((r?.error as NodeJS.ErrnoException | null)?.code, 'ECONNRESET');
});

t.test('a client reset reaches the upstream as a reset', { skip }, async (t) => {
  const upstreamSaw = deferred<string>();
  const port = await upstreamServer(t, (s) => { echo(s); void readAll(s).then((r) => upstreamSaw.resolve(r.outcome)); });
  const proxy = await relayServer(t, port);
  const c = client(t, proxy.port);
  const echoed = new Promise((resolve) => c.once('data', resolve));
  c.write('hello');
  await echoed; // the whole path is set up
  c.resetAndDestroy();
  t.equal(await upstreamSaw.promise, 'ECONNRESET', 'the upstream saw RST, not a clean EOF');
  const r = await proxy.nextClose();
  t.equal(r?.closedBy, 'error');
  t.equal(r?.downstreamError, true);
  t.equal((r?.error as NodeJS.ErrnoException | null)?.code, 'ECONNRESET');
});

t.test('an upstream reset after its FIN, once the shutdown towards the client completed: the relay closes both sides and reports', { skip }, async (t) => {
  let upstream: net.Socket | null = null;
  const port = await upstreamServer(t, (s) => { upstream = s; s.end('bye'); });
  const proxy = await relayServer(t, port);
  const c = client(t, proxy.port);
  t.equal((await readAll(c)).outcome, 'end', 'the client got the upstream FIN (its shutdown completed)');
  (upstream as net.Socket | null)?.resetAndDestroy();
  await turn(20);
  c.write('late'); // relayed into the reset upstream: the write fails
  const r = await proxy.nextClose();
  t.ok(r, 'the relay reported');
  t.equal(r?.closedBy, 'error');
  t.equal(r?.downstreamError, false);
  t.equal(proxy.onCloseCalls, 1);
});

/**
 * Scenario 4: the receiving end does not read while the other sends `total` bytes. The relay
 * must stop reading the sender (its byte count stalls below total, the sender's own writes stop
 * draining, the proxy's memory stays flat) and, once the receiver reads, deliver every byte.
 */
async function slowReader(t: tap.Test, direction: 'upstream->client' | 'client->upstream'): Promise<void> {
  const total = 32 * 1024 * 1024;
  const toClient = direction === 'upstream->client';
  const sentSha = deferred<string>();
  const upSocket = deferred<net.Socket>();
  const port = await upstreamServer(t, (s) => {
    upSocket.resolve(s);
    if (toClient) void sendRandom(s, total, 'end').then(sentSha.resolve);
    else { s.pause(); s.on('end', () => s.end()); }
  });
  const proxy = await relayServer(t, port);
  const c = client(t, proxy.port);
  if (toClient) c.pause();
  const arrayBuffersBefore = process.memoryUsage().arrayBuffers;
  const relay = await proxy.nextRelay();
  const up = await upSocket.promise;
  if (relay === null) { t.fail('no relay started'); return; }
  if (!toClient) void sendRandom(c, total, 'end').then(sentSha.resolve);
  const [sender, receiver] = toClient ? [up, c] : [c, up];
  const relayed = () => (toClient ? relay.bytesFromUpstream : relay.bytesFromDownstream);
  const stalledAt = await whenStalled(relayed);
  const grown = process.memoryUsage().arrayBuffers - arrayBuffersBefore;
  t.ok(stalledAt > 0, `the relay stopped reading the sender while the receiver did not read (at ${stalledAt} B)`);
  t.ok(stalledAt < total, `only part of the stream was read meanwhile (${stalledAt} of ${total} B)`);
  t.ok(sender.writableLength > 0, `the sender's writes stopped draining (${sender.writableLength} B queued in it)`);
  t.ok(grown < 8 * 1024 * 1024, `the process held no more than 8 MiB more meanwhile (${grown} B)`);
  const got = readAll(receiver);
  receiver.resume();
  const back = await got;
  t.same({ bytes: back.bytes, sha: back.sha }, { bytes: total, sha: await sentSha.promise }, '32 MiB intact after the stall');
  if (toClient) c.end();
  const r = await proxy.nextClose();
  t.equal(toClient ? r?.bytesFromUpstream : r?.bytesFromDownstream, total);
  t.equal(r?.error, null);
}

t.test('slow client: the relay stops reading the upstream, 32 MiB intact after resume', { skip }, (t) => slowReader(t, 'upstream->client'));
t.test('slow upstream: the relay stops reading the client, 32 MiB intact after resume', { skip }, (t) => slowReader(t, 'client->upstream'));

t.test('abort() closes both sides and reports once, also when called again', { skip }, async (t) => {
  const upstreamSaw = deferred<string>();
  const port = await upstreamServer(t, (s) => {
    void readAll(s).then((r) => upstreamSaw.resolve(r.outcome));
    s.on('data', (d: Buffer) => s.write(d));
  });
  const proxy = await relayServer(t, port);
  const c = client(t, proxy.port);
  const got = readAll(c);
  c.write('ping');
  await new Promise((resolve) => c.once('data', resolve));
  const relay = proxy.relays[0]!;
  relay.abort();
  relay.abort();
  t.equal((await got).outcome, 'end', 'the client saw the relay close');
  t.equal(await upstreamSaw.promise, 'end', 'the upstream saw the relay close');
  const r = await proxy.nextClose();
  t.same(r && { by: r.closedBy, e: r.error, d: r.bytesFromDownstream, u: r.bytesFromUpstream }, { by: 'downstream', e: null, d: 4, u: 4 });
  relay.abort();
  await settle();
  t.equal(proxy.onCloseCalls, 1, 'one onClose, however often abort() was called');
});

t.test('abort() with writes still pending towards a slow client: both sides close, one report', { skip }, async (t) => {
  const upstreamClosed = deferred<void>();
  const port = await upstreamServer(t, (s) => {
    s.on('close', () => upstreamClosed.resolve());
    void sendRandom(s, 32 * 1024 * 1024, 'end');
  });
  const proxy = await relayServer(t, port);
  const c = client(t, proxy.port);
  c.pause();
  const relay = await proxy.nextRelay();
  t.ok((await whenStalled(() => relay?.bytesFromUpstream ?? 0)) > 0, 'the relay is stalled on the client');
  relay?.abort();
  const got = readAll(c);
  c.resume();
  t.ok(await guarded(got), 'the client connection ended');
  t.ok(await guarded(upstreamClosed.promise.then(() => true)), 'the upstream connection closed');
  const r = await proxy.nextClose();
  t.equal(r?.closedBy, 'downstream');
  await settle();
  t.equal(proxy.onCloseCalls, 1);
});

t.test('both sides close at the same moment: one report', { skip }, async (t) => {
  const upstreams = inOrder<net.Socket>();
  const port = await upstreamServer(t, (s) => { s.once('data', () => upstreams.push(s)); });
  const proxy = await relayServer(t, port);
  for (const how of ['end', 'reset'] as const) {
    const c = client(t, proxy.port);
    c.write('x');
    const s = await upstreams.next();
    if (s === null) { t.fail('no upstream connection'); return; }
    if (how === 'end') { c.end(); s.end(); } else { c.resetAndDestroy(); s.resetAndDestroy(); }
    const r = await proxy.nextClose();
    t.ok(r, `${how} on both sides: reported`);
    if (how === 'end') t.equal(r?.error, null, 'two FINs are a clean end');
    else t.equal(r?.closedBy, 'error', 'two RSTs are an error');
  }
  await settle();
  t.equal(proxy.onCloseCalls, 2, 'one onClose per connection');
});

t.test('200 concurrent short connections each deliver their bytes intact and report once', { skip }, async (t) => {
  const conns = 200;
  const port = await upstreamServer(t, echo);
  const proxy = await relayServer(t, port);
  const runs: Array<Promise<boolean>> = [];
  let totalSent = 0;
  for (let i = 0; i < conns; i++) {
    // A few cross libuv's 64 KiB read size, most are small.
    const payload = crypto.randomBytes(i % 20 === 0 ? 70_000 + i : 1 + crypto.randomInt(4000));
    totalSent += payload.length;
    const c = client(t, proxy.port);
    const got = readAll(c);
    c.end(payload);
    runs.push(got.then((r) => r.outcome === 'end' && r.sha === sha256(payload)));
  }
  const ok = await Promise.all(runs);
  t.equal(ok.filter(Boolean).length, conns, 'every client got its own bytes back, then EOF');
  for (let i = 0; i < conns; i++) if ((await proxy.nextClose()) === null) break;
  await settle();
  t.equal(proxy.onCloseCalls, conns, 'one onClose per connection');
  t.equal(proxy.results.filter((r) => r.error === null).length, conns, 'all clean');
  const sum = (f: (r: RelayResult) => number) => proxy.results.reduce((a, r) => a + f(r), 0);
  t.same({ d: sum((r) => r.bytesFromDownstream), u: sum((r) => r.bytesFromUpstream) }, { d: totalSent, u: totalSent }, 'bytes counted per connection add up');
});

t.test('an upstream that closes before sending anything', { skip }, async (t) => {
  // end() at accept: the FIN may wait in the kernel before the relay reads at all. The others once
  // the relay runs (an RST before the relay's connect completed would fail that connect instead).
  const ways: Array<[string, (s: net.Socket) => void, 'at accept' | 'relaying', string]> = [
    ['end()', (s) => { s.end(); }, 'at accept', 'end'],
    ['destroy()', (s) => { s.destroy(); }, 'relaying', 'end'],
    ['resetAndDestroy()', (s) => { s.resetAndDestroy(); }, 'relaying', 'ECONNRESET'],
  ];
  for (const [how, close, when, clientSees] of ways) {
    const upstreams = inOrder<net.Socket>();
    const port = await upstreamServer(t, (s) => { if (when === 'at accept') close(s); else upstreams.push(s); });
    const proxy = await relayServer(t, port);
    const c = client(t, proxy.port);
    const got = readAll(c);
    if (when === 'relaying') {
      const [relay, s] = [await proxy.nextRelay(), await upstreams.next()];
      t.ok(relay && s, `upstream ${how}: the relay runs`);
      if (s !== null) close(s);
    }
    const back = await got;
    t.same({ bytes: back.bytes, outcome: back.outcome }, { bytes: 0, outcome: clientSees }, `upstream ${how}: the client sees ${clientSees}`);
    c.end();
    const r = await proxy.nextClose();
    t.same(r && { u: r.bytesFromUpstream, by: r.closedBy }, { u: 0, by: clientSees === 'end' ? 'upstream' : 'error' }, `upstream ${how}: reported`);
    await settle();
    t.equal(proxy.onCloseCalls, 1, `upstream ${how}: once`);
  }
});

t.test('a client that connects and closes at once', { skip }, async (t) => {
  const upstreamSaw = inOrder<string>();
  const port = await upstreamServer(t, (s) => {
    void readAll(s).then((r) => { upstreamSaw.push(r.outcome); s.end(); });
  });
  const proxy = await relayServer(t, port);
  for (const how of ['end', 'destroy', 'reset'] as const) {
    const c = client(t, proxy.port);
    await connected(c);
    if (how === 'end') c.end(); else if (how === 'destroy') c.destroy(); else c.resetAndDestroy();
    const r = await proxy.nextClose();
    t.equal(r?.bytesFromDownstream, 0, `client ${how}: reported`);
    t.equal(await upstreamSaw.next(), how === 'reset' ? 'ECONNRESET' : 'end', `client ${how}: the upstream saw it`);
  }
  await settle();
  t.equal(proxy.onCloseCalls, 3, 'one onClose per connection');
});

// The peers of this test live in a worker thread, so they can act while the relay's thread is blocked.
const PEERS = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const flag = new Int32Array(workerData.flag);
let up = null;
let c = null;
const server = net.createServer({ allowHalfOpen: true }, (s) => { up = s; s.on('error', () => {}); parentPort.postMessage({ upstream: true }); });
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', (m) => {
  if (m.connect !== undefined) {
    c = net.connect({ host: '127.0.0.1', port: m.connect, allowHalfOpen: true });
    c.on('data', () => {});
    c.on('error', (e) => parentPort.postMessage({ client: e.code }));
    c.on('end', () => parentPort.postMessage({ client: 'end' }));
  }
  if (m.go) {
    up.end(); // the upstream FIN: the relay's upstream handle becomes readable first
    up.once('finish', () => c.write('x', () => { // then the client's bytes: its downstream handle second
      up.resetAndDestroy(); // then the RST: the relay's write of 'x' upstream will fail
      setTimeout(() => { Atomics.store(flag, 0, 1); Atomics.notify(flag, 0); }, 50);
    }));
  }
  if (m.stop) { if (c !== null) c.destroy(); if (up !== null) up.destroy(); server.close(); parentPort.close(); }
});
`;

t.test('the upstream FIN and a failed write to the upstream in one loop turn: the client side still closes, one report', { skip }, async (t) => {
  // The relay passes the upstream FIN on as a shutdown of the client side, which libuv completes on
  // the next loop turn; until then the handle refuses an RST (uv_tcp_close_reset: EINVAL). Here the
  // relay's thread sleeps while the upstream sends FIN, the client sends a byte and the upstream
  // resets, so one poll delivers all three: EOF upstream, then 'x' whose write upstream fails.
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const peers = new Worker(PEERS, { eval: true, workerData: { flag: flag.buffer } });
  const messages = inOrder<Record<string, unknown>>();
  peers.on('message', (m: Record<string, unknown>) => messages.push(m));
  t.teardown(() => { peers.postMessage({ stop: true }); void peers.terminate(); });
  const port = (await messages.next())?.['port'] as number;
  const proxy = await relayServer(t, port);
  peers.postMessage({ connect: proxy.port });
  const relay = await proxy.nextRelay();
  t.same(await messages.next(), { upstream: true }, 'the upstream accepted the relay\'s connection');
  if (relay === null) { t.fail('no relay started'); return; }
  await turn(20); // nothing left to read on either handle
  peers.postMessage({ go: true });
  Atomics.wait(flag, 0, 0, GUARD_MS);
  t.equal(Atomics.load(flag, 0), 1, 'FIN, client byte and RST all arrived while the relay slept');
  const r = await proxy.nextClose();
  t.ok(r, 'the relay closed both handles and reported');
  t.equal(r?.closedBy, 'error');
  t.equal(r?.downstreamError, false);
  t.ok(relay.upstreamEnded, 'the upstream FIN was read first');
  t.ok(await messages.next(), 'the client saw its connection end');
  await settle();
  t.equal(proxy.onCloseCalls, 1);
});
