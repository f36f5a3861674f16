import t from 'tap';
import net from 'node:net';
import http from 'node:http';
import { inspect, type Inspection, type InspectOptions } from '../../../../proxy/listener/inspect';
import { ProxyErrorCode, type ProxyError } from '../../../../proxy/errors';
import { captureNodeHello } from '../tls/hello-fixtures';
import { connectedClient as connect } from '../../../helpers/net-client';

const BOTH: InspectOptions = { wantTls: true, wantHttp: true, timeoutMs: 10_000, maxBytes: 16 * 1024 + 100 };

interface Outcome { err: ProxyError | null; r: Inspection | null; chunks: number; socket: net.Socket }

/** A server on 127.0.0.1:0 that inspects each accepted socket; teardown registered at once. */
async function inspectingServer(t: tap.Test, opts: InspectOptions, ackEachChunk = false): Promise<{ port: number; next: () => Promise<Outcome> }> {
  const waiting: Array<(o: Outcome) => void> = [];
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    socket.on('error', () => {}); // the accept path owns an error listener for the socket's life
    let chunks = 0;
    // Lockstep mode: ack every chunk so the client sends the next byte only after this one was
    // read, which makes "1-byte chunks" deterministic instead of hoping TCP does not coalesce.
    const ack = (c: Buffer) => { chunks++; if (ackEachChunk) socket.write(Buffer.from([c.length])); };
    socket.prependListener('data', ack);
    inspect(socket, opts, (err, r) => {
      socket.removeListener('data', ack);
      (waiting.shift() as (o: Outcome) => void)({ err, r, chunks, socket });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close(); });
  return {
    port: (server.address() as net.AddressInfo).port,
    next: () => new Promise<Outcome>((resolve) => waiting.push(resolve)),
  };
}

/** Send `bytes` one byte per TCP read on the server: next byte only after the server acked the last. */
function sendLockstep(c: net.Socket, bytes: Buffer, until: Promise<unknown>): void {
  let i = 0;
  let stopped = false;
  void until.then(() => { stopped = true; });
  const sendNext = () => { if (!stopped && i < bytes.length) c.write(bytes.subarray(i, ++i)); };
  c.on('data', (acks: Buffer) => { for (let k = 0; k < acks.length; k++) sendNext(); });
  sendNext();
}

/** Collect every byte the server socket delivers after inspection (to prove none was lost). */
function readRest(s: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (c: Buffer) => parts.push(c));
  s.resume();
  return new Promise((resolve) => s.once('end', () => resolve(Buffer.concat(parts))));
}

t.test('TLS ClientHello arriving in 1-byte reads: SNI + ALPN, head is exactly what was sent', async (t) => {
  const hello = await captureNodeHello({ servername: 'Sni.Example.org', alpn: ['h2', 'http/1.1'] });
  const { port, next } = await inspectingServer(t, BOTH, true);
  const c = await connect(t, port);
  const outcome = next();
  sendLockstep(c, hello, outcome);
  const { err, r, chunks, socket } = await outcome;
  t.equal(err, null);
  t.equal(chunks, hello.length, `one read per byte (${chunks})`);
  t.ok(r?.isTls);
  t.equal(r?.sni, 'sni.example.org');
  t.same(r?.alpn, ['h2', 'http/1.1']);
  t.ok(r?.head.equals(hello), 'head is byte-for-byte the hello');
  // Bytes sent after the decision stay in the socket for whoever takes it next.
  const rest = readRest(socket);
  c.end(Buffer.from('after-hello'));
  t.equal((await rest).toString(), 'after-hello');
});

t.test('HTTP/1.x request line: decided at "METHOD ", replayed by unshift into a real HTTP server', async (t) => {
  const { port, next } = await inspectingServer(t, BOTH, true);
  const c = await connect(t, port);
  const request = Buffer.from('OPTIONS /x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n');
  const outcome = next();
  sendLockstep(c, request, outcome);
  const { err, r, socket } = await outcome;
  t.equal(err, null);
  t.equal(r?.isTls, false);
  t.same(r?.alpn, ['http/1.1']);
  t.equal(r?.head.toString(), 'OPTIONS ', 'decided as soon as the method token and SP arrived');
  // Replay: unshift the head and give the socket to node:http; it must see the whole request.
  const httpServer = http.createServer((req, res) => res.end(`${req.method} ${req.url} ${req.headers.host}`));
  t.teardown(() => httpServer.close());
  socket.unshift(r?.head as Buffer);
  httpServer.emit('connection', socket);
  socket.resume();
  c.write(request.subarray((r?.head as Buffer).length));
  const reply = await new Promise<string>((resolve) => {
    let s = '';
    c.removeAllListeners('data');
    c.on('data', (d: Buffer) => { s += d.toString('latin1'); });
    c.on('end', () => resolve(s));
  });
  t.match(reply, /^\x01*HTTP\/1\.1 200 OK\r\n/, 'a 200 after any leftover lockstep acks');
  t.match(reply, /OPTIONS \/x a\.example$/);
});

t.test('each method token is recognised; look-alikes are not', async (t) => {
  const { port, next } = await inspectingServer(t, { ...BOTH, wantTls: false });
  const cases: Array<[string, boolean]> = [
    ['GET / HTTP/1.1\r\n', true], ['POST /', true], ['PUT /', true], ['DELETE /', true], ['HEAD /', true],
    ['PATCH /', true], ['CONNECT a:443', true], ['TRACE /', true], ['GETX /', false], ['get / HTTP/1.1', false],
    ['PRI * HTTP/2.0\r\n', false], ['\x00\x01\x02', false],
  ];
  for (const [line, isHttp] of cases) {
    const c = await connect(t, port);
    const o = next();
    c.write(line);
    const { err, r } = await o;
    t.equal(err, null);
    t.same(r?.alpn ?? null, isHttp ? ['http/1.1'] : null, JSON.stringify(line));
    t.ok(r?.head.length && Buffer.from(line, 'latin1').subarray(0, r.head.length).equals(r.head), 'head is a prefix of what was sent');
    c.destroy();
  }
});

t.test('opaque bytes: not TLS, not HTTP, head kept exactly, the rest follows', async (t) => {
  const { port, next } = await inspectingServer(t, BOTH);
  const c = await connect(t, port);
  const first = Buffer.from([0x00, 0xff, 0x10, 0x16, 0x47]);
  const o = next();
  c.write(first);
  const { err, r, socket } = await o;
  t.equal(err, null);
  t.same({ isTls: r?.isTls, sni: r?.sni, alpn: r?.alpn }, { isTls: false, sni: null, alpn: null });
  const rest = readRest(socket);
  c.end(Buffer.from('tail'));
  t.ok(Buffer.concat([r?.head as Buffer, await rest]).equals(Buffer.concat([first, Buffer.from('tail')])), 'no byte lost or duplicated');
});

t.test('wantTls only: a non-TLS first byte decides at once', async (t) => {
  const { port, next } = await inspectingServer(t, { ...BOTH, wantHttp: false });
  const c = await connect(t, port);
  const o = next();
  c.write('GET / HTTP/1.1\r\n\r\n');
  const { r } = await o;
  t.same({ isTls: r?.isTls, alpn: r?.alpn }, { isTls: false, alpn: null }, 'HTTP is not detected when not wanted');
});

t.test('silent peer: INSPECT_LIMIT after timeoutMs, socket left open for the caller', async (t) => {
  const { port, next } = await inspectingServer(t, { ...BOTH, timeoutMs: 30 });
  await connect(t, port);
  const { err, r, socket } = await next();
  t.equal(err?.code, ProxyErrorCode.INSPECT_LIMIT);
  t.equal(r, null);
  t.equal(socket.destroyed, false, 'inspect does not destroy; the caller decides');
});

t.test('oversize: a TLS record that never completes within maxBytes -> INSPECT_LIMIT', async (t) => {
  const { port, next } = await inspectingServer(t, { ...BOTH, maxBytes: 1024 });
  const c = await connect(t, port);
  const o = next();
  // A plausible record header + ClientHello header announcing ~16 KB, then filler.
  const hdr = Buffer.from([0x16, 0x03, 0x01, 0x3e, 0x80, 0x01, 0x00, 0x3e, 0x7c]);
  c.write(Buffer.concat([hdr, Buffer.alloc(4000, 0x41)]));
  const { err } = await o;
  t.equal(err?.code, ProxyErrorCode.INSPECT_LIMIT);
});

t.test('a hello declaring more than MAX_HELLO_BYTES is refused without waiting for it', async (t) => {
  const { port, next } = await inspectingServer(t, BOTH);
  const c = await connect(t, port);
  const o = next();
  c.write(Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x80, 0x00]));
  const { err } = await o;
  t.equal(err?.code, ProxyErrorCode.INSPECT_LIMIT);
});

t.test('a malformed hello is opaque (Envoy tls_not_found), bytes kept', async (t) => {
  const { port, next } = await inspectingServer(t, BOTH);
  const c = await connect(t, port);
  const o = next();
  const bad = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x08, 0x02, 0x00, 0x00, 0x04, 1, 2, 3, 4]); // ServerHello type
  c.write(bad);
  const { err, r } = await o;
  t.equal(err, null);
  t.equal(r?.isTls, false);
  t.ok(r?.head.equals(bad));
});

t.test('early close after a partial hello: cb gets what was read', async (t) => {
  const { port, next } = await inspectingServer(t, BOTH);
  const c = await connect(t, port);
  const o = next();
  c.end(Buffer.from([0x16, 0x03, 0x01]));
  const { err, r, socket } = await o;
  t.equal(err, null);
  t.same({ isTls: r?.isTls, sni: r?.sni }, { isTls: false, sni: null }, 'an incomplete hello is not TLS');
  t.same([...(r?.head ?? [])], [0x16, 0x03, 0x01]);
  t.equal(socket.readableEnded, true, 'the caller can see the peer already half-closed');
});

t.test('early close with nothing sent: DOWNSTREAM_DISCONNECT', async (t) => {
  const { port, next } = await inspectingServer(t, BOTH);
  const c = await connect(t, port);
  const o = next();
  c.end();
  const { err, r } = await o;
  t.equal(err?.code, ProxyErrorCode.DOWNSTREAM_DISCONNECT);
  t.equal(r, null);
});

t.test('reset during inspection: DOWNSTREAM_DISCONNECT', async (t) => {
  const { port, next } = await inspectingServer(t, BOTH, true);
  const c = await connect(t, port);
  const o = next();
  c.write(Buffer.from([0x16, 0x03]));
  // Reset only once the server has read the bytes (its ack), so the RST is what it sees next.
  await new Promise((resolve) => c.once('data', resolve));
  c.resetAndDestroy();
  const { err } = await o;
  t.equal(err?.code, ProxyErrorCode.DOWNSTREAM_DISCONNECT);
});

t.test('an already-closed socket gets DOWNSTREAM_DISCONNECT asynchronously', async (t) => {
  const s = new net.Socket();
  s.destroy();
  let inCall = true;
  let calledSync: boolean | null = null;
  const got = new Promise<ProxyError | null>((resolve) => {
    inspect(s, BOTH, (err) => { calledSync = inCall; resolve(err); });
    inCall = false;
  });
  const err = await got;
  t.equal(err?.code, ProxyErrorCode.DOWNSTREAM_DISCONNECT);
  t.equal(calledSync, false, 'callback not called from inside inspect()');
});
