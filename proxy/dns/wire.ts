// DNS wire format (RFC 1035 §4), only as much as the sidecar's DNS proxy needs: read a query's header
// and its one question, and build an authoritative answer of A / AAAA records for it. Everything else
// is forwarded as bytes and never parsed (dns/proxy.ts).

import net from 'node:net';

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const CLASS_IN = 1;
const HEADER = 12;
/** Istio's DNS proxy answers with this TTL (seconds). */
export const ANSWER_TTL = 30;

export interface Question {
  readonly id: number;
  readonly flags: number;
  /** lower-case, no trailing dot */
  readonly name: string;
  readonly type: number;
  readonly klass: number;
  /** Byte offset just after the question (the question's bytes are [12, end)). */
  readonly end: number;
}

/**
 * The query's first question, or null when it is not a well-formed standard query with one
 * question (then it is forwarded untouched). Names in queries are not compressed (RFC 1035 §4.1.4
 * allows it, no resolver does it for the question); a pointer is refused rather than followed.
 */
export function parseQuery(msg: Buffer): Question | null {
  if (msg.length < HEADER) return null;
  const flags = msg.readUInt16BE(2);
  if ((flags & 0x8000) !== 0 || ((flags >> 11) & 0xf) !== 0) return null; // a response, or not QUERY
  if (msg.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let off = HEADER;
  for (;;) {
    if (off >= msg.length) return null;
    const len = msg[off]!;
    if (len === 0) {
      off++;
      break;
    }
    if (len > 63 || off + 1 + len > msg.length) return null;
    labels.push(msg.toString('latin1', off + 1, off + 1 + len).toLowerCase());
    off += 1 + len;
    if (off - HEADER > 255) return null;
  }
  if (off + 4 > msg.length) return null;
  return { id: msg.readUInt16BE(0), flags, name: labels.join('.'), type: msg.readUInt16BE(off), klass: msg.readUInt16BE(off + 2), end: off + 4 };
}

/**
 * An authoritative NOERROR answer to `q` (from `query`): one record per address, the name given
 * as a pointer to the question (offset 12). No addresses = NODATA (the name exists, not this type).
 */
export function buildAnswer(query: Buffer, q: Question, addresses: readonly string[]): Buffer {
  const rdLen = q.type === TYPE_AAAA ? 16 : 4;
  const out = Buffer.alloc(q.end + addresses.length * (12 + rdLen));
  out.writeUInt16BE(q.id, 0);
  // QR, opcode QUERY, AA, RD copied, RA; RCODE 0.
  out.writeUInt16BE(0x8000 | 0x0400 | (q.flags & 0x0100) | 0x0080, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(addresses.length, 6);
  query.copy(out, HEADER, HEADER, q.end);
  let off = q.end;
  for (const a of addresses) {
    out.writeUInt16BE(0xc000 | HEADER, off);
    out.writeUInt16BE(q.type, off + 2);
    out.writeUInt16BE(CLASS_IN, off + 4);
    out.writeUInt32BE(ANSWER_TTL, off + 6);
    out.writeUInt16BE(rdLen, off + 10);
    writeAddress(out, off + 12, a, q.type);
    off += 12 + rdLen;
  }
  return out;
}

/** SERVFAIL for a query we could not get an answer to (RFC 1035 RCODE 2), question echoed when known. */
export function buildServfail(query: Buffer, q: Question | null): Buffer {
  const end = q === null ? HEADER : q.end;
  const out = Buffer.alloc(end);
  query.copy(out, 0, 0, Math.min(end, query.length));
  const flags = query.length >= 4 ? query.readUInt16BE(2) : 0;
  out.writeUInt16BE(0x8000 | (flags & 0x7900) | 0x0080 | 2, 2);
  out.writeUInt16BE(q === null ? 0 : 1, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(0, 10);
  return out;
}

function writeAddress(out: Buffer, off: number, address: string, type: number): void {
  if (type === TYPE_A) {
    const p = address.split('.');
    for (let i = 0; i < 4; i++) out[off + i] = Number(p[i]);
    return;
  }
  // IPv6: expand `::` and write 8 groups.
  const [head, tail] = address.includes('::') ? address.split('::') as [string, string] : [address, null];
  const h = head === '' ? [] : head.split(':');
  const tl = tail === null || tail === '' ? [] : tail.split(':');
  const groups = tail === null ? h : [...h, ...new Array<string>(8 - h.length - tl.length).fill('0'), ...tl];
  for (let i = 0; i < 8; i++) out.writeUInt16BE(parseInt(groups[i] ?? '0', 16), off + 2 * i);
}

/** Which record type an address answers. */
export function addressType(address: string): number {
  return net.isIPv6(address) ? TYPE_AAAA : TYPE_A;
}
