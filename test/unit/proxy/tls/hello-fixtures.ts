// Real ClientHellos for the parser tests: captured from real clients (Node tls, openssl s_client,
// curl) talking to a raw TCP server on 127.0.0.1:0 that records bytes and hangs up. The capture
// reads the record header itself (not with the parser under test), so a parser bug cannot hide
// in the fixture.

import net from 'node:net';
import tls from 'node:tls';
import { spawn } from 'node:child_process';

/** Accept one connection, return the first complete TLS record it sends (or what came before close). */
async function captureFirstRecord(start: (port: number) => () => void): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  try {
    let stop: (() => void) | null = null;
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ClientHello within 10 s')), 10_000);
      server.once('connection', (sock) => {
        let got = Buffer.alloc(0);
        sock.on('error', () => {});
        sock.on('data', (chunk: Buffer) => {
          got = Buffer.concat([got, chunk]);
          if (got.length >= 5 && got.length >= 5 + got.readUInt16BE(3)) {
            clearTimeout(timer);
            sock.destroy();
            resolve(got.subarray(0, 5 + got.readUInt16BE(3)));
          }
        });
        sock.on('close', () => { clearTimeout(timer); resolve(got); });
      });
      stop = start(port);
    });
    (stop as (() => void) | null)?.();
    return bytes;
  } finally {
    server.close();
  }
}

export function captureNodeHello(opts: { servername?: string; alpn?: string[] }): Promise<Buffer> {
  return captureFirstRecord((port) => {
    const c = tls.connect({
      host: '127.0.0.1', port, rejectUnauthorized: false,
      ...(opts.servername !== undefined ? { servername: opts.servername } : {}),
      ...(opts.alpn !== undefined ? { ALPNProtocols: opts.alpn } : {}),
    });
    c.on('error', () => {});
    return () => c.destroy();
  });
}

function captureProcessHello(cmd: string, args: string[]): (port: number) => () => void {
  return (port) => {
    const child = spawn(cmd, args.map((a) => a.replace('PORT', String(port))), { stdio: ['pipe', 'ignore', 'ignore'] });
    child.on('error', () => {});
    // Bound the child's life even if it never gets a reply: the capture hangs up on it anyway.
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('exit', () => clearTimeout(kill));
    return () => { clearTimeout(kill); child.stdin?.end(); child.kill('SIGKILL'); };
  };
}

export function captureOpensslHello(servername: string, alpn: string): Promise<Buffer> {
  return captureFirstRecord(captureProcessHello('openssl',
    ['s_client', '-connect', '127.0.0.1:PORT', '-servername', servername, '-alpn', alpn]));
}

export function captureCurlHello(host: string): Promise<Buffer> {
  return captureFirstRecord(captureProcessHello('curl',
    ['-sk', '--max-time', '10', '--resolve', `${host}:PORT:127.0.0.1`, `https://${host}:PORT/`]));
}

/**
 * Re-frame a single-record hello as several handshake records of at most `size` bytes each,
 * which RFC 8446 §5.1 allows ("a single message MAY be fragmented across several records").
 */
export function reframe(hello: Buffer, size: number): Buffer {
  const version = hello.subarray(1, 3);
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const parts: Buffer[] = [];
  for (let off = 0; off < body.length; off += size) {
    const frag = body.subarray(off, Math.min(body.length, off + size));
    const hdr = Buffer.from([0x16, version[0] as number, version[1] as number, 0, 0]);
    hdr.writeUInt16BE(frag.length, 3);
    parts.push(hdr, frag);
  }
  return Buffer.concat(parts);
}

/** Build a minimal ClientHello by hand, for cases no real client produces. */
export function buildHello(extensions: Array<[type: number, data: Buffer]>): Buffer {
  const exts = Buffer.concat(extensions.map(([type, data]) => {
    const h = Buffer.alloc(4);
    h.writeUInt16BE(type, 0);
    h.writeUInt16BE(data.length, 2);
    return Buffer.concat([h, data]);
  }));
  const extLen = Buffer.alloc(2);
  extLen.writeUInt16BE(exts.length);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]), Buffer.alloc(32, 7),  // version, random
    Buffer.from([0]),                                 // empty session id
    Buffer.from([0, 2, 0x13, 0x01]),                  // one cipher suite
    Buffer.from([1, 0]),                              // null compression
    extensions.length > 0 ? extLen : Buffer.alloc(0), exts,
  ]);
  const hs = Buffer.concat([Buffer.from([0x01, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  const rec = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
  rec.writeUInt16BE(hs.length, 3);
  return Buffer.concat([rec, hs]);
}

export function sniExtension(...names: Array<[type: number, name: Buffer | string]>): Buffer {
  const entries = Buffer.concat(names.map(([type, name]) => {
    const n = typeof name === 'string' ? Buffer.from(name, 'latin1') : name;
    const h = Buffer.from([type, 0, 0]);
    h.writeUInt16BE(n.length, 1);
    return Buffer.concat([h, n]);
  }));
  const l = Buffer.alloc(2);
  l.writeUInt16BE(entries.length);
  return Buffer.concat([l, entries]);
}

export function alpnExtension(...protos: string[]): Buffer {
  const list = Buffer.concat(protos.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])));
  const l = Buffer.alloc(2);
  l.writeUInt16BE(list.length);
  return Buffer.concat([l, list]);
}
