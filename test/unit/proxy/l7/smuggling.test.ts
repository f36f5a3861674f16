// Request smuggling on the fast HTTP path: every ambiguous framing is refused with 400
// (431 for a head over 60 KiB, as Envoy answers), the connection is closed by the proxy, and the
// upstream never sees the request hidden in the body. A real gateway Runtime, a real node:http
// upstream that records every request it receives, raw bytes from a net socket.

import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { freePort, startTestRuntime, oneUpstreamConfig } from '../../../helpers/gateway';

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: up.example\r\n\r\n';

function config(gwPort: number, upPort: number): string {
  return oneUpstreamConfig({ gwPort, upstreamPort: upPort });
}

interface Exchange { text: string; closedByPeer: boolean }

/** Send raw bytes; resolve with everything received once the proxy closes (or after 3 s: not closed). */
function raw(port: number, bytes: string | Buffer): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let text = '';
    let peerClosed = false;
    s.setEncoding('latin1');
    s.on('data', (c: string) => (text += c));
    s.on('end', () => {
      peerClosed = true;
      s.end();
    });
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? (peerClosed = true) : reject(e)));
    s.on('close', () => resolve({ text, closedByPeer: peerClosed }));
    s.setTimeout(3000, () => s.destroy());
    s.write(bytes);
  });
}

const CASES: [string, string, number][] = [
  ['CL then TE', `POST / HTTP/1.1\r\nHost: up.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400],
  ['TE then CL', `POST / HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: chunked\r\nContent-Length: ${5 + SMUGGLED.length}\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400],
  ['duplicate CL, different values', `POST / HTTP/1.1\r\nHost: up.example\r\nContent-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`, 400],
  ['duplicate CL, same value', `POST / HTTP/1.1\r\nHost: up.example\r\nContent-Length: ${SMUGGLED.length}\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`, 400],
  ['CL as a list', `POST / HTTP/1.1\r\nHost: up.example\r\nContent-Length: 0, ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`, 400],
  ['CL with a sign', `POST / HTTP/1.1\r\nHost: up.example\r\nContent-Length: +0\r\n\r\n${SMUGGLED}`, 400],
  ['negative CL', `POST / HTTP/1.1\r\nHost: up.example\r\nContent-Length: -1\r\n\r\n${SMUGGLED}`, 400],
  ['hex CL', `POST / HTTP/1.1\r\nHost: up.example\r\nContent-Length: 0x0\r\n\r\n${SMUGGLED}`, 400],
  ['CL with inner space', `POST / HTTP/1.1\r\nHost: up.example\r\nContent-Length: 0 0\r\n\r\n${SMUGGLED}`, 400],
  ['empty CL', `POST / HTTP/1.1\r\nHost: up.example\r\nContent-Length:\r\n\r\n${SMUGGLED}`, 400],
  ['huge CL', `POST / HTTP/1.1\r\nHost: up.example\r\nContent-Length: 99999999999999999999\r\n\r\n${SMUGGLED}`, 400],
  ['space before the colon', `POST / HTTP/1.1\r\nHost: up.example\r\nContent-Length : ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`, 400],
  ['TE gzip, chunked', `POST / HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400],
  ['TE chunked, identity', `POST / HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400],
  ['TE xchunked', `POST / HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400],
  ['TE twice', `POST / HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400],
  ['TE on HTTP/1.0', `POST / HTTP/1.0\r\nHost: up.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400],
  ['obs-fold', `POST / HTTP/1.1\r\nHost: up.example\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n${SMUGGLED}`, 400],
  ['obs-fold into TE', `POST / HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400],
  ['bare LF head', `POST / HTTP/1.1\nHost: up.example\nContent-Length: 0\n\n${SMUGGLED}`, 400],
  ['bare LF in one line', `POST / HTTP/1.1\r\nHost: up.example\nContent-Length: 0\r\n\r\n${SMUGGLED}`, 400],
  ['bare CR', `POST / HTTP/1.1\r\nHost: up.example\r\nX-A: a\rContent-Length: 0\r\n\r\n${SMUGGLED}`, 400],
  ['NUL in a value', `POST / HTTP/1.1\r\nHost: up.example\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n${SMUGGLED}`, 400],
  ['two Host headers', `GET / HTTP/1.1\r\nHost: up.example\r\nHost: evil.example\r\n\r\n`, 400],
  ['double space in the request line', `GET  / HTTP/1.1\r\nHost: up.example\r\n\r\n`, 400],
  ['HTTP/2.0 in an HTTP/1 head', `GET / HTTP/2.0\r\nHost: up.example\r\n\r\n`, 400],
  ['bad chunk size', `POST / HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, 400],
  ['chunk size with bare LF', `POST / HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n${SMUGGLED}`, 400],
  ['chunk data longer than its size', `POST / HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, 400],
  ['oversized head', `GET / HTTP/1.1\r\nHost: up.example\r\nX-Big: ${'a'.repeat(61 * 1024)}\r\n\r\n`, 431],
  ['oversized head that never ends', `GET / HTTP/1.1\r\nHost: up.example\r\nX-Big: ${'a'.repeat(61 * 1024)}`, 431],
];

t.test('every smuggling shape is refused, the connection closed, and nothing hidden reaches the upstream', async (t) => {
  const seen: string[] = [];
  const up = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { up.close(() => r()); up.closeAllConnections(); }));
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, config(gwPort, (up.address() as net.AddressInfo).port));

  for (const [name, bytes, status] of CASES) {
    const r = await raw(gwPort, bytes);
    t.match(r.text, new RegExp(`^HTTP/1\\.1 ${status} `), `${name}: ${status}`);
    t.equal(r.text.match(/HTTP\/1\.1 \d\d\d /g)?.length, 1, `${name}: exactly one response`);
    t.ok(r.closedByPeer, `${name}: the proxy closed the connection`);
  }
  t.equal(seen.filter((u) => u === '/smuggled').length, 0, 'the upstream never saw the hidden request');
  t.ok(seen.length <= 3, 'only the three bad-chunk requests (whose heads are valid) got as far as the upstream');
  const lines = await gw.lines();
  t.equal(lines.filter((l) => / 400 DPE /.test(l)).length, CASES.filter((c) => c[2] === 400).length, 'each 400 is logged with DPE');
  t.equal(lines.filter((l) => / 431 DPE http1\.headers_too_large /.test(l)).length, 2, 'each 431 is logged');

  // The same bytes, well framed, are served: pipelined requests answered in order on one connection.
  const ok = await raw(gwPort, `GET /a HTTP/1.1\r\nHost: up.example\r\n\r\nPOST /b HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /c HTTP/1.1\r\nHost: up.example\r\nConnection: close\r\n\r\n`);
  t.equal(ok.text.match(/HTTP\/1\.1 200 /g)?.length, 3, 'three pipelined requests, three 200s');
  t.same(seen.slice(-3), ['/a', '/b', '/c'], 'forwarded in order');
  t.ok(ok.closedByPeer, 'Connection: close honoured after the last one');
});
