// ClientHello parsing, old vs new: a naive single-chunk SNI extractor in the style of the small npm
// parsers (slice a Buffer per field, assume one record holds everything, bail out on anything odd)
// against proxy/tls/client-hello.ts (bounds-checked, incremental, multi-record, in-place).
// The point is to show the safe parser costs no more than the naive one on the common case, and
// what the rare paths (a hello split over records; a half-arrived hello) cost.
//
//   node dist/bench/micro/client-hello.bench.js          ITERATIONS=200000 to change N

import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { parseClientHello } from '../../proxy/tls/client-hello';

const ITERATIONS = Number(process.env.ITERATIONS ?? 200_000);
const WARMUP = Math.min(20_000, ITERATIONS);

/** The "old" way: one chunk, subarray per field, no multi-record, throws on short input (caught). */
function naiveSni(buf: Buffer): string | null {
  try {
    if (buf[0] !== 0x16) return null;
    let b = buf.subarray(5 + 4); // skip record + handshake headers, trusting both
    b = b.subarray(2 + 32);
    b = b.subarray(1 + (b[0] as number));
    b = b.subarray(2 + b.readUInt16BE(0));
    b = b.subarray(1 + (b[0] as number));
    let exts = b.subarray(2, 2 + b.readUInt16BE(0));
    while (exts.length >= 4) {
      const type = exts.readUInt16BE(0);
      const len = exts.readUInt16BE(2);
      const data = exts.subarray(4, 4 + len);
      if (type === 0) return data.subarray(5, 5 + data.readUInt16BE(3)).toString('ascii').toLowerCase();
      exts = exts.subarray(4 + len);
    }
    return null;
  } catch {
    return null;
  }
}

async function captureNodeHello(servername: string, alpn: string[]): Promise<Buffer> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, servername, ALPNProtocols: alpn });
  client.on('error', () => {});
  const [sock] = await accepted;
  let got = Buffer.alloc(0);
  while (got.length < 5 || got.length < 5 + got.readUInt16BE(3)) {
    const [chunk] = (await once(sock, 'data')) as [Buffer];
    got = Buffer.concat([got, chunk]);
  }
  client.destroy();
  sock.destroy();
  server.close();
  return got.subarray(0, 5 + got.readUInt16BE(3));
}

/** Insert a 1,216-byte dummy extension first: the size a post-quantum key share adds (§5.3). */
function enlarge(hello: Buffer): Buffer {
  const extsAt = extensionsOffset(hello);
  const pad = Buffer.alloc(4 + 1216);
  pad.writeUInt16BE(0xff01, 0);
  pad.writeUInt16BE(1216, 2);
  const out = Buffer.concat([hello.subarray(0, extsAt + 2), pad, hello.subarray(extsAt + 2)]);
  out.writeUInt16BE(out.readUInt16BE(extsAt) + pad.length, extsAt);
  out.writeUInt16BE(out.readUInt16BE(3) + pad.length, 3);
  out.writeUIntBE(out.readUIntBE(6, 3) + pad.length, 6, 3);
  return out;
}

function extensionsOffset(h: Buffer): number {
  let p = 9 + 34;
  p += 1 + (h[p] as number);
  p += 2 + h.readUInt16BE(p);
  p += 1 + (h[p] as number);
  return p;
}

function reframe(hello: Buffer, size: number): Buffer {
  const body = hello.subarray(5);
  const parts: Buffer[] = [];
  for (let off = 0; off < body.length; off += size) {
    const frag = body.subarray(off, Math.min(body.length, off + size));
    parts.push(Buffer.from([0x16, 3, 1, frag.length >> 8, frag.length & 0xff]), frag);
  }
  return Buffer.concat(parts);
}

function measure(fn: (b: Buffer) => unknown, input: Buffer): number {
  let sink = 0;
  for (let i = 0; i < WARMUP; i++) if (fn(input) !== undefined) sink++;
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) if (fn(input) !== undefined) sink++;
  const ns = Number(process.hrtime.bigint() - start) / ITERATIONS;
  if (sink < 0) console.log(sink);
  return ns;
}

async function main(): Promise<void> {
  const hello = await captureNodeHello('bench.example.com', ['h2', 'http/1.1']);
  const big = enlarge(hello);
  const cases: Array<[string, Buffer, boolean]> = [
    [`node hello, 1 record (${hello.length} B)`, hello, true],
    [`PQ-sized hello, 1 record (${big.length} B)`, big, true],
    [`PQ-sized hello, 3 records of 512`, reframe(big, 512), false],
    [`half a hello (need-more)`, big.subarray(0, big.length >> 1), false],
    ['plain HTTP (not-tls)', Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), true],
  ];
  // Sanity: the new parser finds the SNI wherever the naive one does.
  for (const [name, input, naiveOk] of cases) {
    const r = parseClientHello(input);
    const expected = name.startsWith('half') ? 'need-more' : name.startsWith('plain') ? 'not-tls' : 'hello';
    if (r.kind !== expected) throw new Error(`${name}: parser said ${r.kind}`);
    if (naiveOk && r.kind === 'hello' && naiveSni(input) !== r.sni) throw new Error(`${name}: naive disagrees`);
  }
  console.log(`client-hello micro bench: ${ITERATIONS} parses each, node ${process.version}, ${process.platform}/${process.arch}`);
  console.log(`${'input'.padEnd(40)} ${'naive ns'.padStart(10)} ${'parseClientHello ns'.padStart(20)}`);
  for (const [name, input, naiveOk] of cases) {
    const oldNs = naiveOk ? measure(naiveSni, input).toFixed(0) : 'wrong/n.a.';
    const newNs = measure(parseClientHello, input).toFixed(0);
    console.log(`${name.padEnd(40)} ${oldNs.padStart(10)} ${newNs.padStart(20)}`);
  }
}

void main();
