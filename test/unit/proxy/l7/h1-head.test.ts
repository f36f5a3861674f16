// The strict HTTP/1.1 head parser and body framing, property-style with a seeded PRNG (reproducible):
// random valid heads round-trip field for field; random byte mutations of a head never throw and
// never turn one message into two (a request hidden in the body never surfaces); chunked bodies
// split at every position decode to the same bytes.

import t from 'tap';
import { BodyDecoder, Framing } from '../../../../proxy/l7/h1-body';
import { H, HeadError, findHeadEnd, parseRequestHead, parseResponseHead, type RequestHead } from '../../../../proxy/l7/h1-head';

/** mulberry32: small, seeded, good enough to drive cases */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const VCHARS = TCHARS + ' "(),/:;<=>?@[\\]{}';

function pick(r: () => number, s: string, min: number, max: number): string {
  const n = min + Math.floor(r() * (max - min + 1));
  let out = '';
  for (let i = 0; i < n; i++) out += s[Math.floor(r() * s.length)];
  return out;
}

const RESERVED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'expect', 'keep-alive', 'te', 'trailer', 'upgrade']);

function randomHead(r: () => number): { text: string; method: string; target: string; headers: [string, string][]; host: string } {
  const method = pick(r, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 1, 8);
  const target = '/' + pick(r, TCHARS + '/?=&%', 0, 40);
  const host = pick(r, 'abcdefghijklmnopqrstuvwxyz.', 1, 20);
  const headers: [string, string][] = [['Host', host]];
  const n = Math.floor(r() * 12);
  for (let i = 0; i < n; i++) {
    const name = pick(r, TCHARS, 1, 20);
    if (RESERVED.has(name.toLowerCase()) || name.toLowerCase().startsWith('x-')) continue;
    const value = pick(r, VCHARS, 0, 60).trim();
    headers.push([name, value]);
  }
  const text = `${method} ${target} HTTP/1.1\r\n` + headers.map(([k, v]) => `${k}:${r() < 0.5 ? ' ' : '\t '}${v}${r() < 0.2 ? ' ' : ''}\r\n`).join('') + '\r\n';
  return { text, method, target, headers, host };
}

t.test('random valid heads round-trip', async (t) => {
  const r = prng(6);
  let checked = 0;
  for (let i = 0; i < 2000; i++) {
    const h = randomHead(r);
    const buf = Buffer.from(h.text, 'latin1');
    const end = findHeadEnd(buf, 0);
    if (end !== buf.length) {
      t.fail(`head end not found: ${JSON.stringify(h.text)}`);
      break;
    }
    const p = parseRequestHead(buf, 0, end);
    if (p === null) {
      t.fail(`valid head refused: ${JSON.stringify(h.text)}`);
      break;
    }
    const same = p.method === h.method && p.target === h.target && p.host === h.host && p.raw.length === h.headers.length * 2 &&
      h.headers.every(([k, v], j) => p.raw[2 * j] === k && p.raw[2 * j + 1] === v);
    if (!same) {
      t.fail(`fields differ for ${JSON.stringify(h.text)}: ${JSON.stringify(p.raw)}`);
      break;
    }
    checked++;
  }
  t.equal(checked, 2000, '2000 random heads parsed back to the same fields');
});

/** Serve a byte string the way H1Connection does: head, exact body, next head... Returns the heads parsed. */
function serve(buf: Buffer): RequestHead[] {
  const heads: RequestHead[] = [];
  const dec = new BodyDecoder();
  let at = 0;
  for (let guard = 0; guard < 10 && at < buf.length; guard++) {
    const end = findHeadEnd(buf, at);
    if (end <= 0) break;
    const h = parseRequestHead(buf, at, end);
    if (h === null) break;
    heads.push(h);
    dec.reset(h.chunked ? Framing.CHUNKED : h.contentLength > 0 ? Framing.LENGTH : Framing.NONE, h.contentLength);
    const r = dec.decode(buf, end, buf.length, null, () => undefined);
    if (r < 0 || !dec.done) break;
    at = r;
  }
  return heads;
}

const HIDDEN = 'GET /hidden HTTP/1.1\r\nHost: h\r\n\r\n';
const DANGEROUS = [0x0d, 0x0a, 0x20, 0x09, 0x00, 0x3a, 0x2c, 0x7f, 0x30, 0x2d];

for (const framing of ['length', 'chunked'] as const) {
  t.test(`random mutations of a ${framing}-framed head never crash and never yield two requests`, async (t) => {
    const r = prng(framing === 'length' ? 61 : 62);
    const framingLine = framing === 'length' ? `Content-Length: ${HIDDEN.length}` : 'Transfer-Encoding: chunked';
    const body = framing === 'length' ? HIDDEN : `${HIDDEN.length.toString(16)}\r\n${HIDDEN}\r\n0\r\n\r\n`;
    const head = `POST /p HTTP/1.1\r\nHost: h\r\nX-Pad: some value\r\n${framingLine}\r\nUser-Agent: curl/8\r\n\r\n`;
    // The framing line and the CRLFs around it are not mutated: bytes that unambiguously remove the
    // framing header (merging it into the previous value) do make the body the next request, for
    // every parser; what must never happen is two readings of the same bytes.
    const lineStart = head.indexOf(framingLine) - 2;
    const lineEnd = lineStart + 2 + framingLine.length + 2;
    t.equal(serve(Buffer.from(head + body, 'latin1')).length, 1, 'the unmutated message is one request');
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 5000; i++) {
      const bytes = Buffer.from(head, 'latin1');
      const edits = 1 + Math.floor(r() * 3);
      let text = bytes;
      for (let e = 0; e < edits; e++) {
        let pos = Math.floor(r() * (text.length - 2));
        const ls = text.indexOf(framingLine, 0, 'latin1') - 2; // where the line is after earlier edits
        if (pos >= ls && pos < ls + lineEnd - lineStart) pos = ls + lineEnd - lineStart; // the framing line itself stays (else the bytes say something else)
        const b = r() < 0.7 ? DANGEROUS[Math.floor(r() * DANGEROUS.length)]! : Math.floor(r() * 256);
        text = r() < 0.5 ? Buffer.concat([text.subarray(0, pos), Buffer.from([b]), text.subarray(pos)]) : Buffer.concat([text.subarray(0, pos), Buffer.from([b]), text.subarray(pos + 1)]);
      }
      const msg = Buffer.concat([text, Buffer.from(body, 'latin1')]);
      let heads: RequestHead[];
      try {
        heads = serve(msg);
      } catch (err) {
        t.fail(`threw on ${JSON.stringify(msg.toString('latin1'))}: ${String(err)}`);
        return;
      }
      if (heads.length > 1 || heads.some((h) => h.target === '/hidden')) {
        t.fail(`two requests from ${JSON.stringify(msg.toString('latin1'))}`);
        return;
      }
      if (heads.length === 1) {
        accepted++;
        const h = heads[0]!;
        if (h.raw.some((s) => /[\r\n\0]/.test(s))) {
          t.fail(`CR/LF/NUL let through in ${JSON.stringify(h.raw)}`);
          return;
        }
      } else refused++;
    }
    t.ok(accepted > 0 && refused > 0, `both outcomes exercised (accepted ${accepted}, refused ${refused})`);
  });
}

t.test('chunked bodies decode identically however the bytes are split', async (t) => {
  const wire = Buffer.from('5;ext=1\r\nhello\r\n1\r\n \r\nB\r\nworld, body\r\n0\r\nTrailer: x\r\n\r\nNEXT', 'latin1');
  for (let split = 0; split <= wire.length; split++) {
    const dec = new BodyDecoder();
    dec.reset(Framing.CHUNKED, -1);
    const parts: Buffer[] = [];
    const collect = function (this: Buffer[], c: Buffer): void { this.push(Buffer.from(c)); };
    const r1 = dec.decode(wire.subarray(0, split), 0, split, parts, collect);
    let end = -2;
    if (dec.done) end = r1;
    else {
      const rest = wire.subarray(split);
      const r2 = dec.decode(rest, 0, rest.length, parts, collect);
      end = split + r2;
    }
    if (Buffer.concat(parts).toString() !== 'hello world, body' || end !== wire.length - 4) {
      t.fail(`split at ${split}: got ${JSON.stringify(Buffer.concat(parts).toString())}, end ${end}`);
      return;
    }
  }
  t.pass('every split point decodes to "hello world, body" and stops before NEXT');
});

t.test('heads: limits, versions, special headers, responses', async (t) => {
  t.equal(findHeadEnd(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n'), 0), 0, 'incomplete: wait');
  t.equal(findHeadEnd(Buffer.from('GET / HTTP/1.1\nHost: a\n'), 0), HeadError.BAD_REQUEST, 'bare LF refused before the head ends');
  t.equal(findHeadEnd(Buffer.alloc(61 * 1024, 0x61), 0), HeadError.TOO_LARGE, 'past 60 KiB: too large');
  const h = parseRequestHead(...whole('GET /x HTTP/1.0\r\nHost: a\r\nConnection: keep-alive, X-Drop\r\nX-Request-Id: r1\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\nExpect: 100-continue\r\n\r\n'))!;
  t.equal(h.versionMinor, 0);
  t.equal(h.close, false, 'HTTP/1.0 with keep-alive stays open');
  t.equal(h.requestId, 'r1');
  t.equal(h.xff, '1.1.1.1, 2.2.2.2', 'X-Forwarded-For values joined');
  t.equal(h.expectContinue, true);
  t.same(h.ids, [H.HOST, H.CONNECTION, H.X_REQUEST_ID, H.X_FORWARDED_FOR, H.X_FORWARDED_FOR, H.EXPECT]);
  t.equal(parseRequestHead(...whole('GET / HTTP/1.0\r\nHost: a\r\n\r\n'))!.close, true, 'HTTP/1.0 closes by default');
  t.equal(parseRequestHead(...whole('GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n'))!.close, true, 'Connection: close');
  const res = parseResponseHead(...whole('HTTP/1.1 204 No Content\r\nKeep-Alive: timeout=5\r\n\r\n'))!;
  t.equal(res.status, 204);
  t.equal(res.keepAlive, 'timeout=5');
  t.equal(parseResponseHead(...whole('HTTP/1.1 200\r\n\r\n'))!.status, 200, 'reason phrase is optional');
  t.equal(parseResponseHead(...whole('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n')), null, 'CL+TE from an upstream: protocol error');
});

function whole(s: string): [Buffer, number, number] {
  const b = Buffer.from(s, 'latin1');
  return [b, 0, b.length];
}
