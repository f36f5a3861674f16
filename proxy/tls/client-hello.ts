// Incremental TLS ClientHello parser: the SNI-passthrough "peek".
//
// The caller hands us every byte received so far (concatenated) and calls again when more arrive.
// We never throw on input and never trust a length field: each read is checked against the bytes
// actually present, so arbitrary input yields one of four results. No recursion, no per-call
// allocation in the common case (one record holds the whole hello: parsed in place).
//
// Wire format (RFC 8446 §5.1 record layer, §4.1.2 ClientHello; RFC 6066 §3 server_name;
// RFC 7301 §3.1 ALPN):
//   record    = type(1)=0x16 | legacy_version(2)=0x03xx | length(2) | fragment
//   handshake = msg_type(1)=0x01 | length(3) | body          (may span several records)
//   body      = version(2) random(32) session_id<0..32> cipher_suites<2..2^16-2>
//               compression_methods<1..2^8-1> [extensions<0..2^16-1>]
// Post-quantum key shares (X25519MLKEM768) push Chrome/Go hellos past one TCP segment, and a
// hello may legally span several records, so both are handled.

export type HelloResult =
  | { readonly kind: 'need-more' }                 // not enough bytes yet
  | { readonly kind: 'not-tls' }                   // first byte/record is not a TLS handshake
  | { readonly kind: 'hello'; readonly sni: string | null; readonly alpn: readonly string[]; readonly length: number /* bytes consumed by the hello records */ }
  | { readonly kind: 'invalid'; readonly reason: string };

/** Stable reason codes of `invalid` results: match on these constants, never on other text. */
export const HelloInvalidReason = {
  RECORD_LENGTH: 'record-length',             // record length 0 or above 2^14 (RFC 8446 §5.1)
  RECORD_TYPE: 'record-type',                 // a non-handshake record before the hello was complete
  NOT_CLIENT_HELLO: 'not-client-hello',       // handshake message type is not client_hello (1)
  TOO_LARGE: 'too-large',                     // the hello would exceed MAX_HELLO_BYTES / MAX_HELLO_RECORDS
  TRAILING_DATA: 'trailing-data',             // the last hello record carries bytes after the hello
  TRUNCATED_BODY: 'truncated-body',           // a field overruns the handshake length
  SESSION_ID: 'session-id',                   // session id longer than 32
  CIPHER_SUITES: 'cipher-suites',             // empty or odd-length cipher suite list
  COMPRESSION: 'compression',                 // empty compression method list
  EXTENSIONS_LENGTH: 'extensions-length',     // extensions block does not exactly fill the body
  DUPLICATE_EXTENSION: 'duplicate-extension', // server_name or ALPN present twice (RFC 8446 §4.2)
  SERVER_NAME: 'server-name',                 // malformed server_name extension
  SNI_CHARS: 'sni-chars',                     // host_name empty, > 255 bytes, or with non-printable bytes
  ALPN: 'alpn',                               // malformed ALPN extension
} as const;

const TLS_RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
const CONTENT_TYPE_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
/** RFC 8446 §5.1: "The length MUST NOT exceed 2^14 bytes." */
const MAX_RECORD_PAYLOAD = 16384;
const EXT_SERVER_NAME = 0x0000;
const EXT_ALPN = 0x0010;
const SNI_HOST_NAME = 0;
const MAX_HOST_NAME = 255;

/** A hello may span records; more than this many is abuse, not a real client. */
export const MAX_HELLO_RECORDS = 16;
/** Upper bound on the bytes a ClientHello may occupy on the wire (records + headers). */
export const MAX_HELLO_BYTES: number = MAX_RECORD_PAYLOAD + TLS_RECORD_HEADER * MAX_HELLO_RECORDS;

const NEED_MORE: HelloResult = Object.freeze({ kind: 'need-more' });
const NOT_TLS: HelloResult = Object.freeze({ kind: 'not-tls' });
const EMPTY_ALPN: readonly string[] = Object.freeze([]);

// One frozen object per reason: an `invalid` result costs no allocation.
const INVALID = new Map<string, HelloResult>();
for (const reason of Object.values(HelloInvalidReason)) INVALID.set(reason, Object.freeze({ kind: 'invalid', reason }));
function invalid(reason: (typeof HelloInvalidReason)[keyof typeof HelloInvalidReason]): HelloResult {
  return INVALID.get(reason) as HelloResult;
}

export function parseClientHello(buf: Buffer): HelloResult {
  const n = buf.length;
  if (n === 0) return NEED_MORE;
  if (buf[0] !== CONTENT_TYPE_HANDSHAKE) return NOT_TLS;
  // legacy_version major is 3 for SSLv3..TLS1.3; minor above 4 is no TLS we know.
  if (n >= 2 && buf[1] !== 0x03) return NOT_TLS;
  if (n >= 3 && (buf[2] as number) > 0x04) return NOT_TLS;
  if (n < TLS_RECORD_HEADER) return NEED_MORE;

  const firstLen = buf.readUInt16BE(3);
  if (firstLen === 0 || firstLen > MAX_RECORD_PAYLOAD) return invalid(HelloInvalidReason.RECORD_LENGTH);
  // The handshake header sits in the first fragment when it is >= 4 bytes, else it straddles
  // records; reading it early lets us reject a non-hello or an oversize hello before it arrives.
  if (firstLen >= HANDSHAKE_HEADER && n >= TLS_RECORD_HEADER + HANDSHAKE_HEADER) {
    if (buf[5] !== HANDSHAKE_CLIENT_HELLO) return invalid(HelloInvalidReason.NOT_CLIENT_HELLO);
    const hsLen = buf.readUIntBE(6, 3);
    if (HANDSHAKE_HEADER + hsLen > MAX_RECORD_PAYLOAD) return invalid(HelloInvalidReason.TOO_LARGE);
    // Fast path: the whole hello is in the first record.
    if (HANDSHAKE_HEADER + hsLen <= firstLen) {
      if (HANDSHAKE_HEADER + hsLen !== firstLen) return invalid(HelloInvalidReason.TRAILING_DATA);
      if (n < TLS_RECORD_HEADER + firstLen) return NEED_MORE;
      return parseBody(buf, TLS_RECORD_HEADER + HANDSHAKE_HEADER, TLS_RECORD_HEADER + firstLen, TLS_RECORD_HEADER + firstLen);
    }
  }
  return parseMultiRecord(buf);
}

/**
 * The hello spans several records: walk the record headers until the fragments hold the full
 * handshake message, then copy the fragments into one buffer (rare path; bounded by MAX_HELLO_BYTES).
 */
function parseMultiRecord(buf: Buffer): HelloResult {
  const n = buf.length;
  let pos = 0;
  let records = 0;
  let fragmentBytes = 0;     // handshake bytes seen in complete-or-partial fragments so far
  let needed = -1;           // 4 + handshake length, once the header is known
  for (;;) {
    if (records === MAX_HELLO_RECORDS) return invalid(HelloInvalidReason.TOO_LARGE);
    if (n < pos + TLS_RECORD_HEADER) {
      // A partial next header can already prove the stream is not a hello record.
      if (n > pos && buf[pos] !== CONTENT_TYPE_HANDSHAKE) return invalid(HelloInvalidReason.RECORD_TYPE);
      return NEED_MORE;
    }
    if (buf[pos] !== CONTENT_TYPE_HANDSHAKE) return invalid(HelloInvalidReason.RECORD_TYPE);
    const len = buf.readUInt16BE(pos + 3);
    if (len === 0 || len > MAX_RECORD_PAYLOAD) return invalid(HelloInvalidReason.RECORD_LENGTH);
    const fragStart = pos + TLS_RECORD_HEADER;
    const fragEnd = fragStart + len;
    if (fragEnd > MAX_HELLO_BYTES) return invalid(HelloInvalidReason.TOO_LARGE);
    records++;
    // Learn the handshake header as soon as its 4 bytes are available (possibly across records).
    if (needed < 0) {
      const have = Math.min(len, n - fragStart);
      if (fragmentBytes + have >= HANDSHAKE_HEADER) {
        const header = gatherHeader(buf, records);
        if (header < 0) return invalid(HelloInvalidReason.NOT_CLIENT_HELLO);
        needed = HANDSHAKE_HEADER + header;
        if (needed > MAX_RECORD_PAYLOAD) return invalid(HelloInvalidReason.TOO_LARGE);
      }
    }
    if (fragEnd > n) return NEED_MORE;
    fragmentBytes += len;
    pos = fragEnd;
    if (needed >= 0 && fragmentBytes >= needed) {
      if (fragmentBytes !== needed) return invalid(HelloInvalidReason.TRAILING_DATA);
      return parseBody(concatFragments(buf, pos, needed), HANDSHAKE_HEADER, needed, pos);
    }
  }
}

/**
 * Read msg_type + 24-bit length from the first 4 handshake bytes, which may straddle record
 * boundaries. Returns the handshake length, or -1 when the type is not client_hello.
 * Walks the first `records` record headers again (at most MAX_HELLO_RECORDS, already bounds-checked).
 */
function gatherHeader(buf: Buffer, records: number): number {
  const hdr = [0, 0, 0, 0];
  let got = 0;
  let pos = 0;
  for (let r = 0; r < records && got < HANDSHAKE_HEADER; r++) {
    const len = buf.readUInt16BE(pos + 3);
    const start = pos + TLS_RECORD_HEADER;
    const avail = r === records - 1 ? Math.min(len, buf.length - start) : len;
    for (let i = 0; i < avail && got < HANDSHAKE_HEADER; i++) hdr[got++] = buf[start + i] as number;
    pos = start + len;
  }
  if ((hdr[0] as number) !== HANDSHAKE_CLIENT_HELLO) return -1;
  return ((hdr[1] as number) << 16) | ((hdr[2] as number) << 8) | (hdr[3] as number);
}

/** Copy the handshake fragments of the records in buf[0, end) into one buffer of `size` bytes. */
function concatFragments(buf: Buffer, end: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  let off = 0;
  while (pos < end) {
    const len = buf.readUInt16BE(pos + 3);
    off += buf.copy(out, off, pos + TLS_RECORD_HEADER, pos + TLS_RECORD_HEADER + len);
    pos += TLS_RECORD_HEADER + len;
  }
  return out;
}

/** Parse ClientHello body bytes in b[start, end); `consumed` = wire bytes of the hello records. */
function parseBody(b: Buffer, start: number, end: number, consumed: number): HelloResult {
  let p = start + 2 + 32; // legacy_version + random
  if (p + 1 > end) return invalid(HelloInvalidReason.TRUNCATED_BODY);
  const sidLen = b[p] as number;
  if (sidLen > 32) return invalid(HelloInvalidReason.SESSION_ID);
  p += 1 + sidLen;
  if (p + 2 > end) return invalid(HelloInvalidReason.TRUNCATED_BODY);
  const csLen = b.readUInt16BE(p);
  if (csLen < 2 || (csLen & 1) !== 0) return invalid(HelloInvalidReason.CIPHER_SUITES);
  p += 2 + csLen;
  if (p + 1 > end) return invalid(HelloInvalidReason.TRUNCATED_BODY);
  const cmLen = b[p] as number;
  if (cmLen < 1) return invalid(HelloInvalidReason.COMPRESSION);
  p += 1 + cmLen;
  if (p > end) return invalid(HelloInvalidReason.TRUNCATED_BODY);
  // Pre-TLS1.2 clients may omit extensions entirely.
  if (p === end) return { kind: 'hello', sni: null, alpn: EMPTY_ALPN, length: consumed };
  if (p + 2 > end) return invalid(HelloInvalidReason.EXTENSIONS_LENGTH);
  const extLen = b.readUInt16BE(p);
  p += 2;
  if (p + extLen !== end) return invalid(HelloInvalidReason.EXTENSIONS_LENGTH);

  let sni: string | null = null;
  let sawSni = false;
  let alpn: readonly string[] = EMPTY_ALPN;
  let sawAlpn = false;
  while (p < end) {
    if (p + 4 > end) return invalid(HelloInvalidReason.EXTENSIONS_LENGTH);
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    const dStart = p + 4;
    const dEnd = dStart + len;
    if (dEnd > end) return invalid(HelloInvalidReason.EXTENSIONS_LENGTH);
    if (type === EXT_SERVER_NAME) {
      if (sawSni) return invalid(HelloInvalidReason.DUPLICATE_EXTENSION);
      sawSni = true;
      const r = parseServerName(b, dStart, dEnd);
      if (typeof r !== 'string' && r !== null) return r;
      sni = r;
    } else if (type === EXT_ALPN) {
      if (sawAlpn) return invalid(HelloInvalidReason.DUPLICATE_EXTENSION);
      sawAlpn = true;
      const r = parseAlpn(b, dStart, dEnd);
      if (!Array.isArray(r)) return r as HelloResult;
      alpn = r;
    }
    p = dEnd;
  }
  return { kind: 'hello', sni, alpn, length: consumed };
}

/** server_name extension: list<2> of { name_type(1), name<2> }; returns the host_name or null. */
function parseServerName(b: Buffer, start: number, end: number): string | null | HelloResult {
  if (start === end) return null; // empty extension: no name offered
  if (start + 2 > end) return invalid(HelloInvalidReason.SERVER_NAME);
  const listLen = b.readUInt16BE(start);
  if (start + 2 + listLen !== end) return invalid(HelloInvalidReason.SERVER_NAME);
  let p = start + 2;
  let host: string | null = null;
  while (p < end) {
    if (p + 3 > end) return invalid(HelloInvalidReason.SERVER_NAME);
    const nameType = b[p] as number;
    const nameLen = b.readUInt16BE(p + 1);
    const nStart = p + 3;
    const nEnd = nStart + nameLen;
    if (nEnd > end) return invalid(HelloInvalidReason.SERVER_NAME);
    if (nameType === SNI_HOST_NAME) {
      // RFC 6066 §3: "MUST NOT contain more than one name of the same name_type".
      if (host !== null) return invalid(HelloInvalidReason.SERVER_NAME);
      if (nameLen === 0 || nameLen > MAX_HOST_NAME) return invalid(HelloInvalidReason.SNI_CHARS);
      for (let i = nStart; i < nEnd; i++) {
        const c = b[i] as number;
        // Printable ASCII without space: a name with controls/UTF-8 could spoof logs and route keys.
        if (c <= 0x20 || c >= 0x7f) return invalid(HelloInvalidReason.SNI_CHARS);
      }
      host = b.toString('latin1', nStart, nEnd).toLowerCase();
    }
    p = nEnd;
  }
  return host;
}

/** ALPN extension: list<2> of protocol_name<1..255>. */
function parseAlpn(b: Buffer, start: number, end: number): string[] | HelloResult {
  if (start + 2 > end) return invalid(HelloInvalidReason.ALPN);
  const listLen = b.readUInt16BE(start);
  if (listLen < 1 || start + 2 + listLen !== end) return invalid(HelloInvalidReason.ALPN);
  const out: string[] = [];
  let p = start + 2;
  while (p < end) {
    const len = b[p] as number;
    if (len === 0 || p + 1 + len > end) return invalid(HelloInvalidReason.ALPN);
    out.push(b.toString('latin1', p + 1, p + 1 + len));
    p += 1 + len;
  }
  return out;
}
