import t from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { relay, type RelayResult } from '../../../../proxy/l4/relay';
import { UpstreamReader } from '../../../../proxy/l4/upstream-reader';
import { inspect } from '../../../../proxy/listener/inspect';

// Topology of every test: client -> relay server (relay()) -> upstream server, all on 127.0.0.1:0.
// The plain-TCP tests run twice: the upstream read with 'data' events, and read into the
// connection's own buffer by an UpstreamReader (what the TCP proxy uses for plain upstreams).

const READS = ['data', 'onread'] as const;
type UpstreamRead = (typeof READS)[number];
/** Opens the upstream socket; `reader` is set only for plain TCP in 'onread' mode. */
type ConnectUpstream = (reader: UpstreamReader | null) => net.Socket;

type UpstreamHandler = (s: net.Socket) => void;

interface Proxy {
  port: number;
  /** Results in connection order; each relay reports once (onCloseCalls counts every call). */
  results: RelayResult[];
  onCloseCalls: number;
  nextClose: () => Promise<RelayResult>;
  /** The relay's sockets of the latest connection, to observe buffering from outside. */
  last: { down: net.Socket; up: net.Socket } | null;
}

async function listen(t: tap.Test, server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('secureConnection', (s: net.Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close(); });
  return (server.address() as net.AddressInfo).port;
}

async function upstreamServer(t: tap.Test, handler: UpstreamHandler): Promise<number> {
  return listen(t, net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => { s.on('error', () => {}); handler(s); }));
}

/** A promise for a value produced inside a server callback later. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

/** The relay server: accept, connect upstream (plain or TLS), relay with an optional head. */
async function relayServer(t: tap.Test, connectUpstream: ConnectUpstream, opts: { head?: Buffer; inspectFirst?: boolean; upstreamRead?: UpstreamRead } = {}): Promise<Proxy> {
  // nextClose() hands out results in order, whether the relay closed before or after the call.
  const waiting: Array<(r: RelayResult) => void> = [];
  let handedOut = 0;
  const proxy: Proxy = {
    port: 0, results: [], onCloseCalls: 0, last: null,
    nextClose: () => new Promise((resolve) => {
      if (handedOut < proxy.results.length) resolve(proxy.results[handedOut++] as RelayResult);
      else waiting.push(resolve);
    }),
  };
  const hooks = {
    onClose(r: RelayResult) {
      proxy.onCloseCalls++;
      proxy.results.push(r);
      const w = waiting.shift();
      if (w !== undefined) w(proxy.results[handedOut++] as RelayResult);
    },
  };
  const start = (down: net.Socket, head: Buffer | null) => {
    const reader = opts.upstreamRead === 'onread' ? new UpstreamReader() : null;
    const up = connectUpstream(reader);
    up.on('error', () => {});
    up.once(up instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => {
      proxy.last = { down, up };
      relay(down, up, head, hooks, reader);
    });
  };
  proxy.port = await listen(t, net.createServer({ allowHalfOpen: true, noDelay: true }, (down) => {
    down.on('error', () => {});
    if (!opts.inspectFirst) { start(down, opts.head ?? null); return; }
    inspect(down, { wantTls: true, wantHttp: true, timeoutMs: 10_000, maxBytes: 17_000 }, (err, r) => {
      if (err !== null || r === null) { down.destroy(); return; }
      start(down, r.head);
    });
  }));
  return proxy;
}

function plainUpstream(port: number): ConnectUpstream {
  return (reader) => reader === null
    ? net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true })
    : net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true, onread: reader.onread });
}

function client(t: tap.Test, port: number): net.Socket {
  const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true });
  c.on('error', () => {});
  t.teardown(() => { c.destroy(); });
  return c;
}

/** Write `size` bytes from a seeded xorshift generator with backpressure; return their sha256. */
function sendRandom(s: net.Socket, size: number, seed: number, then: 'end' | 'keep'): Promise<string> {
  const hash = crypto.createHash('sha256');
  let left = size;
  let x = seed >>> 0 || 1;
  return new Promise((resolve) => {
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, 65536 + (x & 4095));
        const b = Buffer.allocUnsafe(n);
        for (let i = 0; i < n; i++) {
          if ((i & 3) === 0) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; }
          b[i] = (x >>> ((i & 3) * 8)) & 0xff;
        }
        hash.update(b);
        left -= n;
        if (!s.write(b)) { s.once('drain', pump); return; }
      }
      if (then === 'end') s.end();
      resolve(hash.digest('hex'));
    };
    pump();
  });
}

/** Read until 'end'; return sha256 and byte count. */
function readAll(s: net.Socket): Promise<{ sha: string; bytes: number }> {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  s.on('data', (c: Buffer) => { hash.update(c); bytes += c.length; });
  return new Promise((resolve) => s.once('end', () => resolve({ sha: hash.digest('hex'), bytes })));
}

for (const read of READS) t.test(`random sizes 0 B..16 MiB arrive intact in both directions, bytes counted (upstream read: ${read})`, async (t) => {
  const seed = (Math.random() * 2 ** 31) | 0;
  t.comment(`seed ${seed}`);
  let x = seed || 1;
  const rnd = (n: number) => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x % n; };
  const sizes: Array<[number, number]> = [[0, 0], [1, 0], [0, 1], [65537, 3], [16 * 1024 * 1024, rnd(1 << 20)], [rnd(4 << 20), 16 * 1024 * 1024]];
  for (const [upSize, downSize] of sizes) {
    // Upstream: hash what arrives, send its own stream concurrently, end after the peer ended.
    const seen = deferred<{ sha: string; bytes: number }>();
    const sent = deferred<string>();
    const port = await upstreamServer(t, (s) => {
      void readAll(s).then(seen.resolve);
      const sending = sendRandom(s, downSize, seed + 7, 'keep');
      void sending.then(sent.resolve);
      s.once('end', () => { void sending.then(() => s.end()); });
    });
    const proxy = await relayServer(t, plainUpstream(port), { upstreamRead: read });
    const c = client(t, proxy.port);
    const got = readAll(c);
    await new Promise((resolve) => c.once('connect', resolve));
    const sentUp = await sendRandom(c, upSize, seed, 'end');
    const [back, arrived, result] = await Promise.all([got, seen.promise, proxy.nextClose()]);
    t.equal(arrived.bytes, upSize, `client->upstream ${upSize} B`);
    t.equal(arrived.sha, sentUp, 'sha256 client->upstream');
    t.equal(back.bytes, downSize, `upstream->client ${downSize} B`);
    t.equal(back.sha, await sent.promise, 'sha256 upstream->client');
    t.same({ d: result.bytesFromDownstream, u: result.bytesFromUpstream, e: result.error }, { d: upSize, u: downSize, e: null });
  }
});

for (const read of READS) t.test(`half-close client->server: the server keeps sending after the client FIN (upstream read: ${read})`, async (t) => {
  let upstreamSawEnd = false;
  const reply = Buffer.alloc(3 * 1024 * 1024, 0x5a);
  const port = await upstreamServer(t, (s) => {
    let req = '';
    s.on('data', (d: Buffer) => { req += d.toString(); });
    s.on('end', () => {
      upstreamSawEnd = true;
      s.write(`got:${req};`);
      s.end(reply); // long after the client's half-close
    });
  });
  const proxy = await relayServer(t, plainUpstream(port), { upstreamRead: read });
  const c = client(t, proxy.port);
  const got = readAll(c);
  c.end('question');
  const back = await got;
  t.ok(upstreamSawEnd, 'upstream saw the FIN (half-close carried)');
  t.equal(back.bytes, 'got:question;'.length + reply.length, 'the whole reply arrived after the FIN');
  c.end();
  const r = await proxy.nextClose();
  t.equal(r.closedBy, 'downstream');
  t.equal(r.error, null);
});

for (const read of READS) t.test(`half-close server->client: the client keeps sending after the server FIN (upstream read: ${read})`, async (t) => {
  const seen = deferred<{ sha: string; bytes: number }>();
  const port = await upstreamServer(t, (s) => {
    void readAll(s).then(seen.resolve);
    s.end('server-done');
  });
  const proxy = await relayServer(t, plainUpstream(port), { upstreamRead: read });
  const c = client(t, proxy.port);
  const got = readAll(c);
  t.equal((await got).bytes, 'server-done'.length, 'client got the server data then its FIN');
  const sha = await sendRandom(c, 2 * 1024 * 1024 + 5, 99, 'end');
  t.equal((await seen.promise).sha, sha, 'client data after the server FIN still arrived intact');
  const r = await proxy.nextClose();
  t.equal(r.closedBy, 'upstream');
});

t.test('slow reader: the relay buffers at most highWaterMark + one read chunk', async (t) => {
  const total = 32 * 1024 * 1024;
  const sentSha = deferred<string>();
  const port = await upstreamServer(t, (s) => { void sendRandom(s, total, 5, 'end').then(sentSha.resolve); });
  const proxy = await relayServer(t, plainUpstream(port));
  const c = client(t, proxy.port);
  c.pause(); // the client reads nothing for now
  await new Promise((resolve) => c.once('connect', resolve));
  // Wait (bounded) until the relay has filled the client path and paused the upstream, sampling
  // the relay's buffered bytes after every chunk it forwards.
  let maxBuffered = 0;
  let maxChunk = 0;
  let upstreamPaused = false;
  let sampling = false;
  for (let i = 0; i < 2000 && !upstreamPaused; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const last = proxy.last;
    if (last === null) continue;
    if (!sampling) {
      sampling = true; // added after relay()'s own handler: sees writableLength right after its write
      last.up.on('data', (ch: Buffer) => {
        maxChunk = Math.max(maxChunk, ch.length);
        maxBuffered = Math.max(maxBuffered, last.down.writableLength);
      });
    }
    upstreamPaused = last.up.isPaused();
  }
  t.ok(upstreamPaused, 'the relay paused the upstream while the client did not read');
  const down = (proxy.last as { down: net.Socket }).down;
  const got = readAll(c);
  c.resume();
  const back = await got;
  t.equal(back.sha, await sentSha.promise, '32 MiB intact');
  const bound = down.writableHighWaterMark + 64 * 1024;
  t.ok(maxBuffered > 0, `buffering was observed (${maxBuffered} B)`);
  t.ok(maxBuffered <= bound, `max buffered ${maxBuffered} B <= highWaterMark ${down.writableHighWaterMark} + 64 KiB`);
  t.ok(maxChunk <= 64 * 1024, `read chunks are at most 64 KiB (${maxChunk})`);
  c.end();
  await proxy.nextClose();
});

t.test('slow reader with an UpstreamReader: the upstream is not read while its buffer is still being written', async (t) => {
  const total = 32 * 1024 * 1024;
  const sentSha = deferred<string>();
  const port = await upstreamServer(t, (s) => { void sendRandom(s, total, 11, 'end').then(sentSha.resolve); });
  const proxy = await relayServer(t, plainUpstream(port), { upstreamRead: 'onread' });
  const c = client(t, proxy.port);
  c.pause(); // the client reads nothing for now
  await new Promise((resolve) => c.once('connect', resolve));
  // Wait (bounded) until the upstream's bytesRead stops growing for 20 polls in a row, sampling
  // the bytes pending towards the client on every poll.
  let maxBuffered = 0;
  let stableFor = 0;
  let lastRead = -1;
  for (let i = 0; i < 2000 && stableFor < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const last = proxy.last;
    if (last === null) continue;
    maxBuffered = Math.max(maxBuffered, last.down.writableLength);
    const read = last.up.bytesRead;
    stableFor = read === lastRead && read > 0 ? stableFor + 1 : 0;
    lastRead = read;
  }
  t.equal(stableFor, 20, 'the relay stopped reading the upstream while the client did not read');
  t.ok(lastRead < total, `only part of the stream was read meanwhile (${lastRead} of ${total} B)`);
  t.ok(maxBuffered <= 64 * 1024, `at most one reader buffer pending towards the client (${maxBuffered} B)`);
  const got = readAll(c);
  c.resume();
  const back = await got;
  t.equal(back.bytes, total);
  t.equal(back.sha, await sentSha.promise, '32 MiB intact after the stall');
  c.end();
  t.equal((await proxy.nextClose()).bytesFromUpstream, total);
});

/** Write `count` messages of 1..2000 random bytes, one per event-loop turn, then end; their sha256. */
function sendSmall(s: net.Socket, count: number): Promise<string> {
  const hash = crypto.createHash('sha256');
  let sent = 0;
  return new Promise((resolve) => {
    const next = () => {
      if (sent++ === count) { s.end(); resolve(hash.digest('hex')); return; }
      const b = crypto.randomBytes(1 + crypto.randomInt(2000));
      hash.update(b);
      if (s.write(b)) setImmediate(next);
      else s.once('drain', next);
    };
    next();
  });
}

t.test('UpstreamReader: idle readers share one scratch buffer and own none', async (t) => {
  const next = (r: UpstreamReader) => (r.onread.buffer as () => Uint8Array)();
  const a = new UpstreamReader();
  const b = new UpstreamReader();
  t.equal(next(a), next(b), 'two readers that read nothing yet hand Node the same buffer');
});

t.test('UpstreamReader: small messages on many connections through the shared scratch arrive unmixed, also while writes are pending', async (t) => {
  const conns = 16;
  const sent = new Map<number, Promise<string>>();
  let accepted = 0;
  const port = await upstreamServer(t, (s) => { sent.set(accepted++, sendSmall(s, 300)); });
  const proxy = await relayServer(t, plainUpstream(port), { upstreamRead: 'onread' });
  const got: Promise<{ sha: string; bytes: number }>[] = [];
  const stalled: net.Socket[] = [];
  let seen = proxy.last;
  for (let i = 0; i < conns; i++) {
    const c = client(t, proxy.port);
    await new Promise((resolve) => c.once('connect', resolve));
    for (let k = 0; k < 400 && proxy.last === seen; k++) await new Promise((resolve) => setTimeout(resolve, 5));
    seen = proxy.last;
    t.ok(seen, `relay ${i} started`);
    // Every other relay's downstream is corked: its writes stay pending in Node, holding the very
    // buffers they were given, while the other connections keep reading into the scratch. Were the
    // scratch handed to a write without a copy, those pending bytes would be overwritten.
    if (i % 2 === 1 && seen !== null) { seen.down.cork(); stalled.push(seen.down); }
    got.push(readAll(c));
    c.end();
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  const pending = stalled.map((d) => d.writableLength);
  t.ok(pending.every((n) => n > 0), `every corked relay held a pending write (${pending.join(', ')} B)`);
  for (const d of stalled) d.uncork();
  const results = await Promise.all(got);
  for (let i = 0; i < conns; i++) {
    // Upstream connection i serves client i: both are opened in order, one at a time.
    t.equal(results[i]!.sha, await sent.get(i), `connection ${i}: the bytes its upstream sent, in order (${results[i]!.bytes} B)`);
  }
});

t.test('UpstreamReader: bytes that arrive before the relay starts are kept and sent first', async (t) => {
  const greeting = crypto.randomBytes(40_000); // more than the shared scratch (16 KiB): several reads, copied
  const port = await upstreamServer(t, (s) => { s.write(greeting); s.on('data', (d: Buffer) => s.write(d)); s.on('end', () => s.end()); });
  const closed = deferred<RelayResult>();
  const relayPort = await listen(t, net.createServer({ allowHalfOpen: true, noDelay: true }, (down) => {
    down.on('error', () => {});
    const reader = new UpstreamReader();
    const up = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true, onread: reader.onread });
    up.on('error', () => {});
    // Start relaying only once the whole greeting has been read (bounded wait).
    let polls = 0;
    const poll = () => {
      if (up.bytesRead < greeting.length && polls++ < 2000) { setTimeout(poll, 2); return; }
      relay(down, up, null, { onClose: closed.resolve }, reader);
    };
    poll();
  }));
  const c = client(t, relayPort);
  const got = readAll(c);
  c.end('after');
  const back = await got;
  const expected = Buffer.concat([greeting, Buffer.from('after')]);
  t.equal(back.bytes, expected.length);
  t.equal(back.sha, crypto.createHash('sha256').update(expected).digest('hex'), 'greeting first, then the echo');
  const r = await closed.promise;
  t.equal(r.bytesFromUpstream, expected.length, 'early bytes are counted as upstream bytes');
});

for (const read of READS) t.test(`a client reset propagates to the upstream as a reset (upstream read: ${read})`, async (t) => {
  const upstreamErr = deferred<string>();
  const port = await upstreamServer(t, (s) => {
    s.on('error', (e: NodeJS.ErrnoException) => upstreamErr.resolve(e.code ?? 'error'));
    s.on('end', () => upstreamErr.resolve('clean FIN'));
    s.on('data', () => { s.write('ack'); });
  });
  const proxy = await relayServer(t, plainUpstream(port), { upstreamRead: read });
  const c = client(t, proxy.port);
  c.write('hello');
  await new Promise((resolve) => c.once('data', resolve)); // the path is fully set up
  c.resetAndDestroy();
  t.equal(await upstreamErr.promise, 'ECONNRESET', 'upstream saw RST, not FIN');
  const r = await proxy.nextClose();
  t.equal(r.closedBy, 'error');
  t.equal(r.downstreamError, true);
  t.equal((r.error as NodeJS.ErrnoException).code, 'ECONNRESET');
});

for (const read of READS) t.test(`an upstream reset propagates to the client as a reset (upstream read: ${read})`, async (t) => {
  const port = await upstreamServer(t, (s) => { s.once('data', () => s.resetAndDestroy()); });
  const proxy = await relayServer(t, plainUpstream(port), { upstreamRead: read });
  const c = client(t, proxy.port);
  const outcome = new Promise<string>((resolve) => {
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    c.on('end', () => resolve('clean FIN'));
  });
  c.write('x');
  t.equal(await outcome, 'ECONNRESET');
  const r = await proxy.nextClose();
  t.equal(r.closedBy, 'error');
  t.equal(r.downstreamError, false);
});

for (const read of READS) t.test(`head is written upstream before the client bytes; a FIN seen during inspection is carried (upstream read: ${read})`, async (t) => {
  const payloads: string[] = [];
  const port = await upstreamServer(t, (s) => {
    let all = '';
    s.on('data', (d: Buffer) => { all += d.toString('latin1'); });
    s.on('end', () => { payloads.push(all); s.end('bye'); });
  });
  // Explicit head.
  const p1 = await relayServer(t, plainUpstream(port), { head: Buffer.from('HEAD|'), upstreamRead: read });
  const c1 = client(t, p1.port);
  const g1 = readAll(c1);
  c1.end('body');
  t.equal((await g1).bytes, 3);
  t.equal((await p1.nextClose()).bytesFromDownstream, 'HEAD|body'.length, 'head counts as downstream bytes');
  // inspect() reads everything the client sent, including its FIN, before the relay starts.
  const p2 = await relayServer(t, plainUpstream(port), { inspectFirst: true, upstreamRead: read });
  const c2 = client(t, p2.port);
  const g2 = readAll(c2);
  c2.end('\x00opaque');
  t.equal((await g2).bytes, 3, 'reply after a FIN that arrived during inspection');
  await p2.nextClose();
  t.same(payloads, ['HEAD|body', '\x00opaque']);
});

t.test('TLS passthrough after inspect, and a TLSSocket upstream (origination)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-relay-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '1',
    '-subj', '/CN=up.example', '-addext', 'subjectAltName=DNS:up.example'], { stdio: 'ignore', timeout: 20_000 });
  const key = fs.readFileSync(path.join(dir, 'key.pem'));
  const cert = fs.readFileSync(path.join(dir, 'cert.pem'));
  const servernames: Array<string | false> = [];
  const tlsServer = tls.createServer({ key, cert, allowHalfOpen: true, ALPNProtocols: ['http/1.1'] }, (s) => {
    s.on('error', () => {});
    servernames.push((s as tls.TLSSocket & { servername?: string | false }).servername ?? false);
    s.on('data', (d: Buffer) => s.write(`echo:${d.toString()}`));
    s.on('end', () => s.end());
  });
  const tlsPort = await listen(t, tlsServer);

  // 1. Passthrough: the client's TLS goes through inspect + relay untouched to the TLS server.
  const p1 = await relayServer(t, plainUpstream(tlsPort), { inspectFirst: true, upstreamRead: 'onread' });
  const c1 = tls.connect({ host: '127.0.0.1', port: p1.port, servername: 'up.example', ca: cert, ALPNProtocols: ['http/1.1'] });
  c1.on('error', () => {});
  t.teardown(() => { c1.destroy(); });
  await new Promise((resolve) => c1.once('secureConnect', resolve));
  t.equal(c1.authorized, true, 'end-to-end handshake verified through the relay');
  t.equal(c1.alpnProtocol, 'http/1.1');
  c1.write('ping');
  const reply1 = await new Promise<string>((resolve) => c1.once('data', (d: Buffer) => resolve(d.toString())));
  t.equal(reply1, 'echo:ping');
  c1.end();
  await p1.nextClose();

  // 2. Origination: a plain client, a TLSSocket upstream.
  const p2 = await relayServer(t, () => tls.connect({ host: '127.0.0.1', port: tlsPort, servername: 'up.example', ca: cert }));
  const c2 = client(t, p2.port);
  c2.write('plain');
  const reply2 = await new Promise<string>((resolve) => c2.once('data', (d: Buffer) => resolve(d.toString())));
  t.equal(reply2, 'echo:plain');
  c2.destroy(); // abrupt client close: the TLS upstream is torn down too
  const r2 = await p2.nextClose();
  t.equal(r2.bytesFromUpstream, 'echo:plain'.length);
  t.same(servernames, ['up.example', 'up.example']);
});

for (const read of READS) t.test(`onClose is called exactly once per relay (upstream read: ${read})`, async (t) => {
  const port = await upstreamServer(t, (s) => { s.on('data', () => {}); s.on('end', () => s.end()); });
  const proxy = await relayServer(t, plainUpstream(port), { upstreamRead: read });
  const ends = ['end', 'destroy', 'reset'] as const;
  for (const how of ends) {
    const c = client(t, proxy.port);
    c.write('x');
    await new Promise((resolve) => setImmediate(resolve));
    if (how === 'end') c.end(); else if (how === 'destroy') c.destroy(); else c.resetAndDestroy();
    await proxy.nextClose();
  }
  // Let any stray late event run before counting.
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  t.equal(proxy.onCloseCalls, ends.length, 'one onClose per connection, no duplicates');
});
