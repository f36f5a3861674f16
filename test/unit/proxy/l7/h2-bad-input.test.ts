// HTTP/2 bad input at the frame level, on raw sockets to a real gateway's h2c port: each case gets
// the RFC 9113 answer (GOAWAY or RST_STREAM with the right error code), the process keeps
// serving, and a good stream on the same connection (for stream errors) or another connection (for
// connection errors) is unharmed.

import net from 'node:net';
import http2 from 'node:http2';
import t from 'tap';
import { H2_MAX_CONCURRENT_STREAMS } from '../../../../proxy/l7/h2-server';
import { freePort, oneUpstreamConfig, startTestRuntime } from '../../../helpers/gateway';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const T = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 } as const;
const E = { PROTOCOL_ERROR: 1, FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, ENHANCE_YOUR_CALM: 11 } as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK (RFC 7541): :method GET, :path /, :scheme http from the static table, :authority literal. */
function requestBlock(authority = 'up.example', extra: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([Buffer.from([0x82, 0x84, 0x86, 0x41, authority.length]), Buffer.from(authority), extra]);
}
/** A literal header field without indexing, new name (RFC 7541 §6.2.2). */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}

interface Frame { type: number; flags: number; stream: number; payload: Buffer }

/** Write `bytes` after the preface and an empty SETTINGS; collect frames until the peer closes or `untilMs`. */
function exchange(port: number, bytes: Buffer, untilMs = 1500): Promise<Frame[]> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const frames: Frame[] = [];
    const done = (): void => {
      s.destroy();
      resolve(frames);
    };
    const timer = setTimeout(done, untilMs);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        frames.push({ type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) });
        buf = buf.subarray(9 + len);
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(frames);
    });
    s.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0), bytes]));
  });
}

function goaway(frames: Frame[]): number | null {
  const g = frames.find((f) => f.type === T.GOAWAY);
  return g === undefined ? null : g.payload.readUInt32BE(4);
}
function resets(frames: Frame[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const f of frames) if (f.type === T.RST_STREAM) m.set(f.stream, f.payload.readUInt32BE(0));
  return m;
}
function status200(frames: Frame[], stream: number): boolean {
  // :status 200 is static-table index 8: the HEADERS block starts 0x88.
  return frames.some((f) => f.type === T.HEADERS && f.stream === stream && f.payload[0] === 0x88);
}

async function statusOnNewConnection(port: number): Promise<number> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const status = await new Promise<number>((resolve, reject) => {
    const req = session.request({ ':path': '/', ':authority': 'up.example' });
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('error', reject);
    req.end();
  });
  session.destroy();
  return status;
}

t.test('frame-level bad input: the right GOAWAY / RST_STREAM, the rest unharmed', async (t) => {
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: 1, http: '  - directResponse: { status: 200, body: { string: ok } }' }));

  // A valid request on stream 1 next to a bad one on stream 3 (invalid pseudo-header / uppercase name).
  for (const [what, block] of [
    ['an unknown pseudo-header', requestBlock('up.example', literal(':foo', 'x'))],
    ['an upper-case field name', requestBlock('up.example', literal('X-Bad', 'x'))],
    ['a connection-specific field', requestBlock('up.example', literal('connection', 'keep-alive'))],
    ['a pseudo-header after a regular field', Buffer.concat([Buffer.from([0x82, 0x86]), literal('x-a', 'b'), Buffer.from([0x84, 0x41, 10]), Buffer.from('up.example')])],
  ] as const) {
    const frames = await exchange(gwPort, Buffer.concat([
      frame(T.HEADERS, END_STREAM | END_HEADERS, 1, requestBlock()),
      frame(T.HEADERS, END_STREAM | END_HEADERS, 3, block),
    ]));
    t.equal(resets(frames).get(3), E.PROTOCOL_ERROR, `${what}: RST_STREAM PROTOCOL_ERROR on its stream`);
    t.ok(status200(frames, 1), `${what}: the good stream on the same connection got its 200`);
    t.equal(goaway(frames), null, `${what}: no GOAWAY, the connection stays`);
  }

  const big = await exchange(gwPort, frame(T.HEADERS, END_STREAM | END_HEADERS, 1, Buffer.alloc(20_000, 0x82)));
  t.equal(goaway(big), E.FRAME_SIZE_ERROR, 'a frame over SETTINGS_MAX_FRAME_SIZE: GOAWAY FRAME_SIZE_ERROR');

  const noSettings = await exchange(gwPort, frame(T.DATA, 0, 0, Buffer.from('x')));
  t.equal(goaway(noSettings), E.PROTOCOL_ERROR, 'DATA on stream 0: GOAWAY PROTOCOL_ERROR');

  const evenStream = await exchange(gwPort, frame(T.HEADERS, END_STREAM | END_HEADERS, 2, requestBlock()));
  // RFC 9113 §5.1.1 says PROTOCOL_ERROR; nghttp2 (through Node) answers INTERNAL_ERROR. Asserted as it is.
  t.equal(goaway(evenStream), 2, 'a client stream with an even id: GOAWAY (INTERNAL_ERROR from nghttp2)');

  // More open streams than SETTINGS_MAX_CONCURRENT_STREAMS (no END_STREAM: each stays open).
  const many: Buffer[] = [];
  const n = H2_MAX_CONCURRENT_STREAMS + 20;
  for (let i = 0; i < n; i++) many.push(frame(T.HEADERS, END_HEADERS, 1 + 2 * i, requestBlock()));
  const crowd = await exchange(gwPort, Buffer.concat(many), 3000);
  const settings = crowd.find((f) => f.type === T.SETTINGS && (f.flags & 1) === 0)!;
  let advertised = -1;
  for (let i = 0; i + 6 <= settings.payload.length; i += 6) if (settings.payload.readUInt16BE(i) === 3) advertised = settings.payload.readUInt32BE(i + 2);
  t.equal(advertised, H2_MAX_CONCURRENT_STREAMS, 'SETTINGS_MAX_CONCURRENT_STREAMS advertised');
  const refused = [...resets(crowd).values()].filter((c) => c === E.REFUSED_STREAM || c === E.PROTOCOL_ERROR).length;
  t.ok(refused >= 1 || goaway(crowd) !== null, `streams past the limit are refused (${refused} RST_STREAM) or the peer is sent GOAWAY`);

  // Rapid reset (CVE-2023-44487): open and cancel streams in a tight loop.
  const flood: Buffer[] = [];
  const rst = Buffer.alloc(4);
  rst.writeUInt32BE(8); // CANCEL
  for (let i = 0; i < 2000; i++) flood.push(frame(T.HEADERS, END_HEADERS, 1 + 2 * i, requestBlock()), frame(T.RST_STREAM, 0, 1 + 2 * i, rst));
  const flooded = await exchange(gwPort, Buffer.concat(flood), 3000);
  t.ok(flooded.length > 0, 'the flood connection was answered (not hung)');

  t.equal(await statusOnNewConnection(gwPort), 200, 'a new connection is served');
  t.ok((gw.stat('http2.rx_reset') ?? 0) > 0, 'http2.rx_reset counted the client resets');
});
