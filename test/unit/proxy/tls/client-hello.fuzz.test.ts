// Fuzz the ClientHello parser: random bytes and mutations of real hellos (bit flips, truncations,
// length-field edits, splices, re-framing). Properties: never throws; never claims more bytes
// than it was given; a result is stable once decided (appending bytes cannot flip an answer
// that was not need-more); an SNI, when reported, is lower-case printable ASCII.
// Seeded and reproducible: FUZZ_SEED=<n> reruns a failing case; FUZZ_ITERATIONS scales the run.

import t from 'tap';
import { parseClientHello, MAX_HELLO_BYTES, type HelloResult } from '../../../../proxy/tls/client-hello';
import { captureNodeHello, captureOpensslHello, reframe, buildHello, sniExtension, alpnExtension } from './hello-fixtures';

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const ITERATIONS = Math.max(100_000, Number(process.env.FUZZ_ITERATIONS ?? 0) | 0);

/** mulberry32: tiny, fast, good enough to drive mutations. */
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

const SNI_OK = /^[\x21-\x7e]+$/;

function violation(input: Buffer, r: HelloResult): string | null {
  if (r.kind === 'hello') {
    if (!(r.length > 0 && r.length <= input.length)) return `length ${r.length} not in (0, ${input.length}]`;
    if (r.length > MAX_HELLO_BYTES) return `length ${r.length} above MAX_HELLO_BYTES`;
    if (r.sni !== null && (!SNI_OK.test(r.sni) || r.sni !== r.sni.toLowerCase() || r.sni.length > 255)) return `bad sni ${JSON.stringify(r.sni)}`;
    for (const p of r.alpn) if (typeof p !== 'string' || p.length === 0 || p.length > 255) return 'bad alpn entry';
    // Decided on the first r.length bytes: the prefix alone must give the same answer.
    const again = parseClientHello(input.subarray(0, r.length));
    if (again.kind !== 'hello' || again.sni !== r.sni || again.length !== r.length) return 'hello not reproducible from its own bytes';
  }
  return null;
}

t.test(`fuzz ${ITERATIONS} inputs (FUZZ_SEED=${SEED})`, async (t) => {
  t.comment(`FUZZ_SEED=${SEED}`);
  const seeds: Buffer[] = [
    await captureNodeHello({ servername: 'fuzz.example.com', alpn: ['h2', 'http/1.1'] }),
    await captureNodeHello({}),
    await captureOpensslHello('openssl.example', 'http/1.1'),
    buildHello([[0, sniExtension([0, 'a.b'])], [16, alpnExtension('h2')]]),
    buildHello([]),
  ];
  seeds.push(reframe(seeds[0] as Buffer, 100), reframe(seeds[2] as Buffer, 37));
  const rand = prng(SEED);
  const int = (n: number) => Math.floor(rand() * n);
  const counts: Record<string, number> = { 'need-more': 0, 'not-tls': 0, hello: 0, invalid: 0 };
  let failure: string | null = null;

  for (let i = 0; i < ITERATIONS && failure === null; i++) {
    let input: Buffer;
    const mode = int(8);
    if (mode === 0) {
      // Random bytes, half of them starting like a handshake record so the parser goes deep.
      input = Buffer.allocUnsafe(int(600));
      for (let k = 0; k < input.length; k++) input[k] = int(256);
      if (input.length >= 3 && rand() < 0.5) { input[0] = 0x16; input[1] = 3; input[2] = int(5); }
    } else {
      const base = seeds[int(seeds.length)] as Buffer;
      input = Buffer.from(base);
      const edits = 1 + int(4);
      for (let e = 0; e < edits; e++) {
        const op = mode === 7 ? int(5) : mode - 1;
        if (input.length === 0) break;
        if (op === 0) {                    // bit flip
          const at = int(input.length);
          input[at] = (input[at] as number) ^ (1 << int(8));
        } else if (op === 1) {             // truncate
          input = input.subarray(0, int(input.length + 1));
        } else if (op === 2) {             // length-field edit: overwrite 1-3 bytes with boundary values
          const at = int(input.length);
          const vals = [0x00, 0xff, 0x01, 0x7f, 0x80, 0x40, 0x20];
          for (let k = 0; k < 1 + int(3) && at + k < input.length; k++) input[at + k] = vals[int(vals.length)] as number;
        } else if (op === 3) {             // ±small delta on a 16-bit field (record/ext/list lengths)
          const at = int(Math.max(1, input.length - 1));
          if (at + 2 <= input.length) input.writeUInt16BE((input.readUInt16BE(at) + int(9) - 4) & 0xffff, at);
        } else {                           // splice: duplicate or drop a slice
          const a = int(input.length), b = Math.min(input.length, a + int(64));
          input = rand() < 0.5 ? Buffer.concat([input.subarray(0, b), input.subarray(a)]) : Buffer.concat([input.subarray(0, a), input.subarray(b)]);
        }
      }
    }
    let r: HelloResult;
    try {
      r = parseClientHello(input);
    } catch (err) {
      failure = `threw ${(err as Error).message} on ${input.toString('hex')}`;
      break;
    }
    (counts[r.kind] as number)++;
    const v = violation(input, r);
    if (v !== null) { failure = `${v} on ${input.toString('hex')}`; break; }
    // Stability: a decided result must not change when the next TCP segment arrives.
    if (r.kind !== 'need-more') {
      const longer = parseClientHello(Buffer.concat([input, Buffer.from([int(256), int(256), int(256)])]));
      if (longer.kind !== r.kind || (r.kind === 'hello' && longer.kind === 'hello' && longer.length !== r.length)) {
        failure = `answer changed from ${r.kind} to ${longer.kind} on more bytes: ${input.toString('hex')}`;
      }
    }
  }
  t.equal(failure, null, `no property violated (FUZZ_SEED=${SEED})`);
  t.comment(`results: ${JSON.stringify(counts)}`);
  // The mutations must actually reach every outcome, else the fuzzer tests nothing deep.
  for (const k of Object.keys(counts)) t.ok((counts[k] as number) > 0, `reached ${k}`);
});
