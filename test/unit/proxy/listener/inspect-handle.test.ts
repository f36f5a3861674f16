// tls_inspector on bare handles (inspect-handle.ts): the socket inspector's contract (inspect.test.ts)
// on a handle accepted with acceptHandles, and the hand-over the fast path relies on: after the
// decision the handle, wrapped in a net.Socket as the fallback path does, delivers every later byte.

import net from 'node:net';
import t from 'tap';
import { ProxyErrorCode, type ProxyError } from '../../../../proxy/errors';
import { tcpHandles, tcpHandlesUnavailableReason, type TcpHandle } from '../../../../proxy/transport/tcp-handle';
import { acceptHandles, socketFor } from '../../../../proxy/transport/accept-handles';
import type { InspectOptions } from '../../../../proxy/listener/inspect';
import { inspectHandle, type HandleInspection } from '../../../../proxy/listener/inspect-handle';
import { captureNodeHello } from '../tls/hello-fixtures';
import { connectedClient as connect } from '../../../helpers/net-client';

const skip = tcpHandles() === null ? `no bare TCP handles here: ${tcpHandlesUnavailableReason()}` : false;
if (skip !== false && process.env['CI'] === 'true') t.fail(`CI must test inspectHandle: ${skip}`);

const TLS_ONLY: InspectOptions = { wantTls: true, wantHttp: false, timeoutMs: 10_000, maxBytes: 16 * 1024 + 100 };

interface Outcome { err: ProxyError | null; r: HandleInspection | null; handle: TcpHandle }

async function inspectingServer(t: tap.Test, opts: InspectOptions): Promise<{ port: number; next: () => Promise<Outcome> }> {
  const waiting: Array<(o: Outcome) => void> = [];
  const handles = new Set<TcpHandle>();
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  acceptHandles(server, (handle) => {
    handles.add(handle);
    inspectHandle(handle, opts, (err, r) => waiting.shift()!({ err, r, handle }));
  });
  t.teardown(() => { for (const h of handles) h.close(); server.close(); });
  return { port: (server.address() as net.AddressInfo).port, next: () => new Promise<Outcome>((resolve) => waiting.push(resolve)) };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('a ClientHello sent a byte at a time: SNI and ALPN, head exact, later bytes reach the socket it becomes', { skip }, async (t) => {
  const hello = await captureNodeHello({ servername: 'Sni.Example.org', alpn: ['h2', 'http/1.1'] });
  const { port, next } = await inspectingServer(t, TLS_ONLY);
  const c = await connect(t, port);
  const outcome = next();
  // The first 40 bytes one write at a time (most arrive as reads of their own), then the rest.
  for (let i = 0; i < 40; i++) { c.write(hello.subarray(i, i + 1)); await pause(1); }
  c.write(hello.subarray(40));
  const { err, r, handle } = await outcome;
  t.equal(err, null);
  t.same({ isTls: r?.isTls, sni: r?.sni, alpn: r?.alpn, eof: r?.eof }, { isTls: true, sni: 'sni.example.org', alpn: ['h2', 'http/1.1'], eof: false });
  t.ok(r?.head.equals(hello), 'head is byte-for-byte the hello');
  const socket = socketFor(handle);
  socket.on('error', () => {});
  const parts: Buffer[] = [];
  socket.on('data', (d: Buffer) => parts.push(d));
  const ended = new Promise((resolve) => socket.once('end', resolve));
  c.end('after-hello');
  await ended;
  t.equal(Buffer.concat(parts).toString(), 'after-hello', 'nothing read after the decision was lost');
});

t.test('not TLS: decided at the first byte, bytes kept', { skip }, async (t) => {
  const { port, next } = await inspectingServer(t, TLS_ONLY);
  const c = await connect(t, port);
  const o = next();
  c.write('GET / HTTP/1.1\r\n');
  const { err, r } = await o;
  t.equal(err, null);
  t.equal(r?.isTls, false);
  t.equal(r?.head.toString().startsWith('GET'), true);
});

t.test('a FIN after a partial hello: decided on what came, eof set', { skip }, async (t) => {
  const { port, next } = await inspectingServer(t, TLS_ONLY);
  const c = await connect(t, port);
  const o = next();
  c.end(Buffer.from([0x16, 0x03, 0x01]));
  const { err, r } = await o;
  t.equal(err, null);
  t.same({ isTls: r?.isTls, eof: r?.eof, head: [...(r?.head ?? [])] }, { isTls: false, eof: true, head: [0x16, 0x03, 0x01] });
});

t.test('a FIN with nothing sent, a reset, silence and too many bytes fail as the socket inspector does', { skip }, async (t) => {
  const fin = await inspectingServer(t, TLS_ONLY);
  const c1 = await connect(t, fin.port);
  const o1 = fin.next();
  c1.end();
  t.equal((await o1).err?.code, ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'FIN first: DOWNSTREAM_DISCONNECT');

  const rst = await inspectingServer(t, TLS_ONLY);
  const c2 = await connect(t, rst.port);
  const o2 = rst.next();
  c2.write(Buffer.from([0x16, 0x03]));
  await pause(50);
  c2.resetAndDestroy();
  t.equal((await o2).err?.code, ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'reset: DOWNSTREAM_DISCONNECT');

  const silent = await inspectingServer(t, { ...TLS_ONLY, timeoutMs: 30 });
  await connect(t, silent.port);
  const s = await silent.next();
  t.equal(s.err?.code, ProxyErrorCode.INSPECT_LIMIT, 'silence: INSPECT_LIMIT after timeoutMs');

  const big = await inspectingServer(t, { ...TLS_ONLY, maxBytes: 1024 });
  const c4 = await connect(t, big.port);
  const o4 = big.next();
  c4.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x3e, 0x80, 0x01, 0x00, 0x3e, 0x7c]), Buffer.alloc(4000, 0x41)]));
  t.equal((await o4).err?.code, ProxyErrorCode.INSPECT_LIMIT, 'a hello that never completes within maxBytes: INSPECT_LIMIT');
});
