// WebSocket upgrades through a real gateway, on raw sockets both ends: the handshake is forwarded
// with its Upgrade headers, the upstream's 101 (with Sec-WebSocket-Accept) comes back, and then
// frames flow both ways, including bytes the client sent right behind its handshake and bytes the
// upstream sent right behind its 101. One access-log line when the relay ends, upstream_cx_* as for
// any upstream connection. Other upgrade types get Envoy's 403 upgrade_failed; an upstream that
// refuses the upgrade has its answer forwarded.

import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { freePort, oneUpstreamConfig, startTestRuntime } from '../../../helpers/gateway';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** One WebSocket frame (RFC 6455 §5.2), FIN set, payload < 126 bytes; masked as a client must. */
function frame(opcode: number, payload: string, masked: boolean): Buffer {
  const p = Buffer.from(payload);
  const mask = masked ? crypto.randomBytes(4) : null;
  const head = Buffer.from([0x80 | opcode, (masked ? 0x80 : 0) | p.length]);
  if (mask === null) return Buffer.concat([head, p]);
  const body = Buffer.from(p.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([head, mask, body]);
}

/** The text payload of one frame (masked or not). */
function unframe(b: Buffer): string {
  const len = b[1]! & 0x7f;
  if ((b[1]! & 0x80) === 0) return b.subarray(2, 2 + len).toString();
  const mask = b.subarray(2, 6);
  return Buffer.from(b.subarray(6, 6 + len).map((x, i) => x ^ mask[i % 4]!)).toString();
}

interface WsUpstream { port: number; seenHeaders: http.IncomingHttpHeaders[]; received: string[] }

/** A WebSocket echo upstream: greets right behind its 101, then answers each frame upper-cased. */
async function wsUpstream(t: { teardown(fn: () => unknown): void }, refuse = false): Promise<WsUpstream> {
  const seenHeaders: http.IncomingHttpHeaders[] = [];
  const received: string[] = [];
  const server = http.createServer((req, res) => {
    seenHeaders.push(req.headers);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('no upgrade here');
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    seenHeaders.push(req.headers);
    if (refuse) {
      socket.end('HTTP/1.1 426 Upgrade Required\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope');
      return;
    }
    const accept = crypto.createHash('sha1').update(String(req.headers['sec-websocket-key']) + GUID).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.write(frame(1, 'hello', false));
    let buf = head;
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 6 && buf.length >= 6 + (buf[1]! & 0x7f)) {
        const n = 6 + (buf[1]! & 0x7f);
        const op = buf[0]! & 0x0f;
        const text = unframe(buf.subarray(0, n));
        buf = buf.subarray(n);
        received.push(text);
        if (op === 8) {
          socket.end(frame(8, '', false));
          return;
        }
        socket.write(frame(1, text.toUpperCase(), false));
      }
    };
    if (head.length > 0) onData(Buffer.alloc(0));
    socket.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return { port: (server.address() as net.AddressInfo).port, seenHeaders, received };
}

/** A raw client: handshake (plus `early` frames in the same write), then reads until `until` says done. */
function wsClient(port: number, upgrade: string, early: Buffer[], onFrames: (s: net.Socket, text: string) => boolean): Promise<{ head: string; frames: string[] }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const key = crypto.randomBytes(16).toString('base64');
    let buf = Buffer.alloc(0);
    let head: string | null = null;
    const frames: string[] = [];
    s.setTimeout(5000, () => s.destroy(new Error('timeout; got ' + JSON.stringify(head) + ' ' + JSON.stringify(frames))));
    s.on('error', reject);
    s.on('close', () => resolve({ head: head ?? buf.toString('latin1'), frames }));
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (head === null) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        head = buf.subarray(0, end + 4).toString('latin1');
        buf = buf.subarray(end + 4);
        if (!head.startsWith('HTTP/1.1 101')) {
          s.end();
          return;
        }
      }
      while (buf.length >= 2 && buf.length >= 2 + (buf[1]! & 0x7f)) {
        const n = 2 + (buf[1]! & 0x7f);
        const text = unframe(buf.subarray(0, n));
        frames.push(text);
        buf = buf.subarray(n);
        if (onFrames(s, text)) s.end();
      }
    });
    s.write(Buffer.concat([Buffer.from(`GET /chat HTTP/1.1\r\nHost: up.example\r\nUpgrade: ${upgrade}\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`), ...early]));
  });
}

t.test('a WebSocket upgrade returns 101 and frames flow both ways', async (t) => {
  const up = await wsUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port }));
  const r = await wsClient(gwPort, 'websocket', [frame(1, 'early', true)], (s, text) => {
    if (text === 'hello') s.write(frame(1, 'ping', true));
    if (text === 'PING') s.write(frame(8, '', true));
    return text === '';
  });
  t.match(r.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/, '101 to the client');
  t.match(r.head, /\r\nsec-websocket-accept: [A-Za-z0-9+/=]{28}\r\n/i, 'the upstream\'s Sec-WebSocket-Accept is passed on');
  t.match(r.head, /\r\nupgrade: websocket\r\n/i);
  t.match(r.head, /\r\nconnection: upgrade\r\n/i);
  t.same(r.frames, ['hello', 'EARLY', 'PING', ''], 'upstream greeting, echoes of the early and the later frame, close');
  t.same(up.received, ['early', 'ping', ''], 'the upstream got every client frame, the early one included');
  t.equal(up.seenHeaders[0]!.upgrade, 'websocket', 'Upgrade forwarded');
  t.match(String(up.seenHeaders[0]!.connection), /upgrade/i, 'Connection: upgrade forwarded');
  t.ok(up.seenHeaders[0]!['sec-websocket-key'] !== undefined, 'the handshake headers are end-to-end');

  const cluster = 'cluster.outbound|80||up.example.';
  for (let i = 0; i < 100 && gw.stat(cluster + 'upstream_cx_active') !== 0; i++) await new Promise((res) => setTimeout(res, 20));
  t.equal(gw.stat(cluster + 'upstream_cx_total'), 1, 'one upstream connection');
  t.equal(gw.stat(cluster + 'upstream_cx_active'), 0, 'closed after the relay');
  t.equal(gw.stat(cluster + 'upstream_cx_destroy'), 1);
  t.ok((gw.stat(cluster + 'upstream_cx_rx_bytes_total') ?? 0) > 0, 'upstream bytes counted');
  t.equal(gw.stat(cluster + 'upstream_rq_101'), 1);
  const lines = await gw.lines();
  t.equal(lines.length, 1, 'one access-log line for the whole WebSocket');
  // received: early(11) + ping(10) + close(6); sent: hello(7) + EARLY(7) + PING(6) + close(2)
  t.match(lines[0], /"GET \/chat HTTP\/1\.1" 101 - via_upstream - "-" 27 22 /, 'logged at the end with both directions\' bytes');
});

t.test('an upgrade the upstream refuses is answered as it answered; other upgrade types get 403', async (t) => {
  const up = await wsUpstream(t, true);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port }));
  const refused = await wsClient(gwPort, 'websocket', [], () => true);
  t.match(refused.head, /^HTTP\/1\.1 426 /, 'the upstream\'s 426 is forwarded');
  const other = await wsClient(gwPort, 'foo/1', [], () => true);
  t.match(other.head, /^HTTP\/1\.1 403 /, 'an upgrade type without upgrade_config: 403');
  const h2c = await wsClient(gwPort, 'h2c', [], () => true);
  t.match(h2c.head, /^HTTP\/1\.1 200 /, 'an h2c upgrade offer is dropped and the request served as HTTP/1.1');
  t.equal(up.seenHeaders.length, 2, 'the refused type never reached the upstream');
  t.equal(up.seenHeaders[1]!.upgrade, undefined, 'the h2c offer was not forwarded');
  const lines = await gw.lines();
  t.ok(lines.some((l) => / 403 - upgrade_failed /.test(l)), '403 logged as upgrade_failed');
});
