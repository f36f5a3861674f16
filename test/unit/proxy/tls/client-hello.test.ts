import t from 'tap';
import { parseClientHello, MAX_HELLO_BYTES, HelloInvalidReason, type HelloResult } from '../../../../proxy/tls/client-hello';
import {
  captureNodeHello, captureOpensslHello, captureCurlHello, reframe, buildHello, sniExtension, alpnExtension,
} from './hello-fixtures';

function expectHello(t: tap.Test, r: HelloResult): Extract<HelloResult, { kind: 'hello' }> {
  t.equal(r.kind, 'hello', `parsed a hello (got ${JSON.stringify(r)})`);
  return r as Extract<HelloResult, { kind: 'hello' }>;
}

/** Every strict prefix must say need-more; the whole input must give `expected` exactly. */
function checkEveryPrefix(t: tap.Test, bytes: Buffer, expected: { sni: string | null; alpn: string[] }): void {
  let wrong = -1;
  for (let i = 0; i < bytes.length; i++) {
    if (parseClientHello(bytes.subarray(0, i)).kind !== 'need-more') { wrong = i; break; }
  }
  t.equal(wrong, -1, 'every strict prefix is need-more');
  const r = expectHello(t, parseClientHello(bytes));
  t.equal(r.sni, expected.sni);
  t.same(r.alpn, expected.alpn);
  t.equal(r.length, bytes.length, 'consumes exactly the hello records');
  // Bytes after the hello (the client's next flight) must not change the answer.
  const more = expectHello(t, parseClientHello(Buffer.concat([bytes, Buffer.from([0x14, 3, 3, 0, 1, 1, 0x17])])));
  t.equal(more.length, bytes.length, 'trailing records are not consumed');
}

t.test('Node tls.connect hello with servername + ALPN, split at every byte offset', async (t) => {
  const hello = await captureNodeHello({ servername: 'API.Example.COM', alpn: ['h2', 'http/1.1'] });
  t.ok(hello.length > 100, `captured ${hello.length} bytes`);
  checkEveryPrefix(t, hello, { sni: 'api.example.com', alpn: ['h2', 'http/1.1'] });
  // Two TCP segments at every split point: parser is given the concatenation, as inspect does.
  let splitsOk = 0;
  for (let i = 1; i < hello.length; i++) {
    const a = Buffer.from(hello.subarray(0, i));
    if (parseClientHello(a).kind !== 'need-more') break;
    const r = parseClientHello(Buffer.concat([a, hello.subarray(i)]));
    if (r.kind !== 'hello' || r.sni !== 'api.example.com') break;
    splitsOk++;
  }
  t.equal(splitsOk, hello.length - 1, 'every two-segment split parses the same');
});

t.test('Node hello without servername has no SNI', async (t) => {
  const hello = await captureNodeHello({});
  checkEveryPrefix(t, hello, { sni: null, alpn: [] });
});

t.test('openssl s_client -servername -alpn', async (t) => {
  const hello = await captureOpensslHello('edition.cnn.com', 'h2,http/1.1');
  checkEveryPrefix(t, hello, { sni: 'edition.cnn.com', alpn: ['h2', 'http/1.1'] });
});

t.test('curl https hello', async (t) => {
  const hello = await captureCurlHello('www.example.test');
  const r = expectHello(t, parseClientHello(hello));
  t.equal(r.sni, 'www.example.test');
  t.ok(r.alpn.includes('http/1.1'), `curl offers http/1.1 (${r.alpn.join(',')})`);
  checkEveryPrefix(t, hello, { sni: 'www.example.test', alpn: [...r.alpn] });
});

t.test('a hello spread over several handshake records', async (t) => {
  const hello = await captureNodeHello({ servername: 'multi.example', alpn: ['http/1.1'] });
  for (const size of [1, 2, 3, 4, 5, 7, 64, 100, 511]) {
    const framed = reframe(hello, size);
    const records = Math.ceil((hello.length - 5) / size);
    if (records > 16) {
      // More records than MAX_HELLO_RECORDS: refused, not parsed for ever.
      const r = parseClientHello(framed);
      t.same(r, { kind: 'invalid', reason: HelloInvalidReason.TOO_LARGE }, `size ${size}: too many records`);
      continue;
    }
    checkEveryPrefix(t, framed, { sni: 'multi.example', alpn: ['http/1.1'] });
  }
});

t.test('not TLS: HTTP, SSLv2-style, other record types, odd versions', async (t) => {
  for (const s of ['GET / HTTP/1.1\r\n', 'PRI * HTTP/2.0', '\x80\x2e\x01\x03\x01', '\x17\x03\x03\x00\x10', '\x16\x02', '\x16\x03\x09']) {
    t.equal(parseClientHello(Buffer.from(s, 'latin1')).kind, 'not-tls', JSON.stringify(s));
  }
  t.equal(parseClientHello(Buffer.alloc(0)).kind, 'need-more');
  t.equal(parseClientHello(Buffer.from([0x16])).kind, 'need-more');
  t.equal(parseClientHello(Buffer.from([0x16, 3, 1, 0])).kind, 'need-more');
});

t.test('invalid: record and handshake framing', async (t) => {
  const reason = (b: number[] | Buffer) => {
    const r = parseClientHello(Buffer.from(b));
    return r.kind === 'invalid' ? r.reason : r.kind;
  };
  t.equal(reason([0x16, 3, 1, 0, 0]), HelloInvalidReason.RECORD_LENGTH, 'zero-length record');
  t.equal(reason([0x16, 3, 1, 0x40, 0x01]), HelloInvalidReason.RECORD_LENGTH, 'record above 2^14');
  t.equal(reason([0x16, 3, 1, 0, 8, 0x02, 0, 0, 4]), HelloInvalidReason.NOT_CLIENT_HELLO, 'ServerHello');
  t.equal(reason([0x16, 3, 1, 0x40, 0, 0x01, 0, 0x40, 0]), HelloInvalidReason.TOO_LARGE, 'declared hello > 16 KiB is refused at once');
  // Handshake header straddling records, with a wrong message type.
  t.equal(reason([0x16, 3, 1, 0, 2, 0x0b, 0, 0x16, 3, 1, 0, 2, 0, 9]), HelloInvalidReason.NOT_CLIENT_HELLO);
  // Second record is an alert in the middle of the hello.
  t.equal(reason([0x16, 3, 1, 0, 4, 0x01, 0, 0, 50, 0x15, 3, 3]), HelloInvalidReason.RECORD_TYPE);
  const good = buildHello([[0, sniExtension([0, 'a.b'])]]);
  const padded = Buffer.from(good);
  padded.writeUInt16BE(padded.readUInt16BE(3) + 1, 3);
  t.equal(reason(Buffer.concat([padded, Buffer.from([0])])), HelloInvalidReason.TRAILING_DATA, 'record longer than the hello');
  const short = Buffer.from(good);
  short.writeUIntBE(short.readUIntBE(6, 3) - 10, 6, 3);
  t.equal(reason(short), HelloInvalidReason.TRAILING_DATA, 'handshake shorter than its record');
});

t.test('SNI rules: lower-cased, printable only, one host_name', async (t) => {
  const sniOf = (ext: Buffer) => {
    const r = parseClientHello(buildHello([[0, ext]]));
    return r.kind === 'hello' ? r.sni : r.kind === 'invalid' ? `invalid:${r.reason}` : r.kind;
  };
  t.equal(sniOf(sniExtension([0, 'WWW.Example.Org'])), 'www.example.org');
  t.equal(sniOf(sniExtension([0, 'a\x00b'])), `invalid:${HelloInvalidReason.SNI_CHARS}`, 'NUL');
  t.equal(sniOf(sniExtension([0, 'a b'])), `invalid:${HelloInvalidReason.SNI_CHARS}`, 'space');
  t.equal(sniOf(sniExtension([0, Buffer.from('bücher.de')])), `invalid:${HelloInvalidReason.SNI_CHARS}`, 'raw UTF-8');
  t.equal(sniOf(sniExtension([0, ''])), `invalid:${HelloInvalidReason.SNI_CHARS}`, 'empty name');
  t.equal(sniOf(sniExtension([0, 'x'.repeat(256)])), `invalid:${HelloInvalidReason.SNI_CHARS}`, '256 bytes');
  t.equal(sniOf(sniExtension([0, 'x'.repeat(255)])), 'x'.repeat(255), '255 bytes is fine');
  t.equal(sniOf(sniExtension([0, 'a.com'], [0, 'b.com'])), `invalid:${HelloInvalidReason.SERVER_NAME}`, 'two host_names');
  t.equal(sniOf(sniExtension([7, 'ignored'], [0, 'c.com'])), 'c.com', 'unknown name types are skipped');
  t.equal(sniOf(Buffer.alloc(0)), null, 'empty extension = no name');
  t.equal(sniOf(Buffer.from([0, 9, 0, 0, 1, 0x61])), `invalid:${HelloInvalidReason.SERVER_NAME}`, 'list length lies');
  const dup = parseClientHello(buildHello([[0, sniExtension([0, 'a.com'])], [0, sniExtension([0, 'b.com'])]]));
  t.same(dup, { kind: 'invalid', reason: HelloInvalidReason.DUPLICATE_EXTENSION });
});

t.test('ALPN rules', async (t) => {
  const alpnOf = (ext: Buffer) => {
    const r = parseClientHello(buildHello([[16, ext]]));
    return r.kind === 'hello' ? r.alpn : r.kind === 'invalid' ? `invalid:${r.reason}` : r.kind;
  };
  t.same(alpnOf(alpnExtension('h2', 'http/1.1', 'istio-peer-exchange')), ['h2', 'http/1.1', 'istio-peer-exchange']);
  t.equal(alpnOf(Buffer.from([0, 0])), `invalid:${HelloInvalidReason.ALPN}`, 'empty list');
  t.equal(alpnOf(Buffer.from([0, 3, 0, 0x61, 0x62])), `invalid:${HelloInvalidReason.ALPN}`, 'empty protocol name');
  t.equal(alpnOf(Buffer.from([0, 3, 5, 0x61, 0x62])), `invalid:${HelloInvalidReason.ALPN}`, 'name overruns list');
  const none = parseClientHello(buildHello([]));
  t.same(none, { kind: 'hello', sni: null, alpn: [], length: buildHello([]).length }, 'no extensions block at all');
});

t.test('MAX_HELLO_BYTES bounds what any result may claim', async (t) => {
  t.ok(MAX_HELLO_BYTES >= 16384 + 5, 'room for one full record');
  t.ok(MAX_HELLO_BYTES <= 64 * 1024, 'a small, fixed bound');
  // A huge but plausible hello, 16 KiB in three records, is accepted.
  const big = buildHello([[0, sniExtension([0, 'big.example'])], [21, Buffer.alloc(16000)]]);
  const r = expectHello(t, parseClientHello(reframe(big, 6000)));
  t.equal(r.sni, 'big.example');
  t.ok(r.length <= MAX_HELLO_BYTES);
});
