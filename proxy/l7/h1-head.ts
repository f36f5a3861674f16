// A strict HTTP/1.1 message-head parser (RFC 9112), written for a proxy: it accepts exactly the
// heads whose framing every hop agrees on, and rejects the request-smuggling shapes outright:
// Content-Length together with Transfer-Encoding, duplicate or non-numeric
// Content-Length, a Transfer-Encoding other than `chunked`, obs-fold (a line starting with
// SP/HTAB), bare LF or bare CR, whitespace between a field name and its colon, control bytes in
// values, and heads larger than the limit (431). Envoy's HTTP/1 codec (and llhttp in strict mode)
// reject the same inputs; see https://www.rfc-editor.org/rfc/rfc9112#section-6.3 and §11.2.
//
// The parser works on a complete head: the connection finds the blank line first (Buffer#indexOf,
// native) and checks arriving bytes for a bare LF so a head that never ends in CRLFCRLF is refused
// at once rather than at the timeout. One object per head holds everything the proxy needs
// afterwards, so routing and forwarding never re-read or lower-case names again.

/** Envoy's default max_request_headers_kb. */
export const MAX_HEAD_BYTES = 60 * 1024;

export const HeadError = {
  BAD_REQUEST: -1,
  TOO_LARGE: -2,
} as const;

// Byte classes, built once.
const TOKEN = new Uint8Array(256); // tchar (RFC 9110 §5.6.2)
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1;
const VALUE = new Uint8Array(256); // field-vchar / SP / HTAB / obs-text; no CTL, no DEL
VALUE[0x09] = 1;
for (let c = 0x20; c <= 0x7e; c++) VALUE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) VALUE[c] = 1;
const TARGET = new Uint8Array(256); // request-target: visible ASCII only
for (let c = 0x21; c <= 0x7e; c++) TARGET[c] = 1;

/** Buffer#latin1Slice: what toString('latin1', a, b) calls after its argument checks (untyped in @types/node). */
type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };
function latin1(buf: Buffer, start: number, end: number): string {
  return (buf as Latin1Buffer).latin1Slice(start, end);
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HT = 0x09;

/** Header names the proxy acts on; everything else is forwarded untouched. */
export const H = {
  OTHER: 0,
  HOST: 1,
  CONTENT_LENGTH: 2,
  TRANSFER_ENCODING: 3,
  CONNECTION: 4,
  EXPECT: 5,
  X_REQUEST_ID: 6,
  X_FORWARDED_FOR: 7,
  X_FORWARDED_PROTO: 8,
  USER_AGENT: 9,
  KEEP_ALIVE: 10,
  /** the other hop-by-hop names (RFC 9110 §7.6.1): proxy-connection, te, trailer, upgrade, proxy-authenticate, proxy-authorization */
  HOP: 11,
  /** set by the proxy itself on the way out (Envoy overwrites them): never copied through */
  X_ENVOY_ATTEMPT_COUNT: 12,
  X_ENVOY_UPSTREAM_SERVICE_TIME: 13,
} as const;

const KNOWN = new Map<string, number>([
  ['host', H.HOST], ['content-length', H.CONTENT_LENGTH], ['transfer-encoding', H.TRANSFER_ENCODING],
  ['connection', H.CONNECTION], ['expect', H.EXPECT], ['x-request-id', H.X_REQUEST_ID],
  ['x-forwarded-for', H.X_FORWARDED_FOR], ['x-forwarded-proto', H.X_FORWARDED_PROTO], ['user-agent', H.USER_AGENT],
  ['keep-alive', H.KEEP_ALIVE], ['proxy-connection', H.HOP], ['te', H.HOP], ['trailer', H.HOP], ['upgrade', H.HOP],
  ['proxy-authenticate', H.HOP], ['proxy-authorization', H.HOP],
  ['x-envoy-attempt-count', H.X_ENVOY_ATTEMPT_COUNT], ['x-envoy-upstream-service-time', H.X_ENVOY_UPSTREAM_SERVICE_TIME],
]);

// Names are matched in the buffer, by length then bytes, ignoring case: no lower-cased copy and no
// string hash per header (both showed in profiles of the keep-alive path).
const KNOWN_BY_LENGTH: ([string, number][] | undefined)[] = [];
for (const [name, id] of KNOWN) (KNOWN_BY_LENGTH[name.length] ??= []).push([name, id]);

/** The `H` id of the header name buf[at..at+length), whatever its case. */
function knownId(buf: Buffer, at: number, length: number): number {
  const candidates = KNOWN_BY_LENGTH[length];
  if (candidates === undefined) return H.OTHER;
  for (let c = 0; c < candidates.length; c++) {
    const name = candidates[c]![0];
    let k = 0;
    // Known names are lower-case letters and '-': `| 0x20` folds exactly A-Z onto a-z and leaves
    // '-' alone (the only other byte it maps there, CR, is not a token byte).
    while (k < length && (buf[at + k]! | 0x20) === name.charCodeAt(k)) k++;
    if (k === length) return candidates[c]![1];
  }
  return H.OTHER;
}

/** The `H` id of a lower-cased header name. */
export function headerId(lowerName: string): number {
  return KNOWN.get(lowerName) ?? H.OTHER;
}

/** Interned method strings, matched in the buffer (case-sensitive): the common ones cost no allocation. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT'];

function knownMethod(buf: Buffer, at: number, length: number): string | null {
  for (let m = 0; m < METHODS.length; m++) {
    const name = METHODS[m]!;
    if (name.length !== length) continue;
    let k = 0;
    while (k < length && buf[at + k] === name.charCodeAt(k)) k++;
    if (k === length) return name;
  }
  return null;
}

/** Fields common to request and response heads. */
class HeadBase {
  versionMinor = 1;
  /** [name, value, name, value, ...] as received (names keep their case). */
  readonly raw: string[] = [];
  /** per header: an `H` id (OTHER for everything the proxy does not act on) */
  readonly ids: number[] = [];
  /** -1 when absent */
  contentLength = -1;
  chunked = false;
  /** Connection: close seen (or HTTP/1.0 without keep-alive). */
  close = false;
  /** Connection header value(s), joined; null when absent. Names listed in it are hop-by-hop. */
  connection: string | null = null;
  keepAlive: string | null = null;
}

export class RequestHead extends HeadBase {
  method = '';
  target = '';
  host: string | null = null;
  userAgent: string | null = null;
  requestId: string | null = null;
  xff: string | null = null;
  xfp: string | null = null;
  expectContinue = false;
}

export class ResponseHead extends HeadBase {
  status = 0;
}

/**
 * Index just past the head's blank line (CRLFCRLF) in buf[from..), 0 when not there yet,
 * HeadError.TOO_LARGE past the limit, HeadError.BAD_REQUEST on a bare LF (a head that ends in
 * LF LF would otherwise wait for the timeout).
 */
export function findHeadEnd(buf: Buffer, from: number): number {
  const i = buf.indexOf('\r\n\r\n', from, 'latin1');
  if (i >= 0) return i + 4 - from > MAX_HEAD_BYTES ? HeadError.TOO_LARGE : i + 4;
  if (buf.length - from > MAX_HEAD_BYTES) return HeadError.TOO_LARGE;
  for (let j = buf.indexOf(LF, from); j >= 0; j = buf.indexOf(LF, j + 1)) {
    if (j === from || buf[j - 1] !== CR) return HeadError.BAD_REQUEST;
  }
  return 0;
}

/** Parse a complete request head buf[start..end) (end is just past CRLFCRLF). Returns null if invalid. */
export function parseRequestHead(buf: Buffer, start: number, end: number): RequestHead | null {
  const h = new RequestHead();
  // One native call for the whole head; fields are substrings of it (a native slice per field
  // measured ~2x slower on a 13-header head).
  const text = latin1(buf, start, end);
  let i = start;
  // method SP
  while (i < end && TOKEN[buf[i]!] === 1) i++;
  if (i === start || buf[i] !== SP) return null;
  h.method = knownMethod(buf, start, i - start) ?? text.slice(0, i - start);
  // request-target SP
  const t0 = ++i;
  while (i < end && TARGET[buf[i]!] === 1) i++;
  if (i === t0 || buf[i] !== SP) return null;
  h.target = text.slice(t0 - start, i - start);
  i++;
  // HTTP/1.x CRLF
  if (i + 10 > end || buf[i] !== 0x48 || buf[i + 1] !== 0x54 || buf[i + 2] !== 0x54 || buf[i + 3] !== 0x50 || buf[i + 4] !== 0x2f || buf[i + 5] !== 0x31 || buf[i + 6] !== 0x2e) return null;
  const minor = buf[i + 7]!;
  if ((minor !== 0x30 && minor !== 0x31) || buf[i + 8] !== CR || buf[i + 9] !== LF) return null;
  h.versionMinor = minor - 0x30;
  i += 10;
  if (!parseFields(buf, i, end, h, text, start)) return null;
  return finishFraming(h, true) ? h : null;
}

/** Parse a complete response head. Returns null if invalid (the upstream is then a protocol error). */
export function parseResponseHead(buf: Buffer, start: number, end: number): ResponseHead | null {
  const h = new ResponseHead();
  let i = start;
  if (i + 13 > end || buf[i] !== 0x48 || buf[i + 1] !== 0x54 || buf[i + 2] !== 0x54 || buf[i + 3] !== 0x50 || buf[i + 4] !== 0x2f || buf[i + 5] !== 0x31 || buf[i + 6] !== 0x2e) return null;
  const minor = buf[i + 7]!;
  if ((minor !== 0x30 && minor !== 0x31) || buf[i + 8] !== SP) return null;
  h.versionMinor = minor - 0x30;
  i += 9;
  const d0 = buf[i]! - 0x30;
  const d1 = buf[i + 1]! - 0x30;
  const d2 = buf[i + 2]! - 0x30;
  if (d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return null;
  h.status = d0 * 100 + d1 * 10 + d2;
  i += 3;
  // [SP reason-phrase] CRLF; the phrase is not forwarded (the downstream gets the standard one).
  if (buf[i] === SP) {
    i++;
    while (i < end && VALUE[buf[i]!] === 1) i++;
  }
  if (buf[i] !== CR || buf[i + 1] !== LF) return null;
  i += 2;
  if (!parseFields(buf, i, end, h, latin1(buf, start, end), start)) return null;
  return finishFraming(h, false) ? h : null;
}

/** `text` is buf[base..end) as latin1: names and values are taken from it by offset. */
function parseFields(buf: Buffer, i: number, end: number, h: RequestHead | ResponseHead, text: string, base: number): boolean {
  const req = h instanceof RequestHead ? h : null;
  for (;;) {
    if (i + 1 >= end) return false;
    const c = buf[i]!;
    if (c === CR) return buf[i + 1] === LF && i + 2 === end;
    // name ":" — an empty name, obs-fold (leading SP/HTAB) and space before the colon all fail here
    const n0 = i;
    while (TOKEN[buf[i]!] === 1) i++;
    if (i === n0 || buf[i] !== 0x3a) return false;
    const name = text.slice(n0 - base, i - base);
    i++;
    while (buf[i] === SP || buf[i] === HT) i++;
    const v0 = i;
    while (VALUE[buf[i]!] === 1) i++;
    if (buf[i] !== CR || buf[i + 1] !== LF) return false; // bare CR, bare LF, CTL or DEL in the value
    let v1 = i;
    while (v1 > v0 && (buf[v1 - 1] === SP || buf[v1 - 1] === HT)) v1--;
    const value = text.slice(v0 - base, v1 - base);
    i += 2;
    const id = knownId(buf, n0, name.length);
    h.raw.push(name, value);
    h.ids.push(id);
    switch (id) {
      case H.OTHER:
        break;
      case H.CONTENT_LENGTH: {
        if (h.contentLength !== -1 || value.length === 0 || value.length > 15) return false;
        let n = 0;
        for (let k = 0; k < value.length; k++) {
          const d = value.charCodeAt(k) - 0x30;
          if (d < 0 || d > 9) return false;
          n = n * 10 + d;
        }
        h.contentLength = n;
        break;
      }
      case H.TRANSFER_ENCODING:
        // Only a single `chunked` coding is supported: anything else (gzip, chunked twice, a second
        // header) is a framing the next hop may read differently.
        if (h.chunked || value.toLowerCase() !== 'chunked') return false;
        h.chunked = true;
        break;
      case H.CONNECTION:
        h.connection = h.connection === null ? value : h.connection + ', ' + value;
        break;
      case H.KEEP_ALIVE:
        h.keepAlive = value;
        break;
      default:
        if (req === null) break;
        if (id === H.HOST) {
          if (req.host !== null) return false; // two Hosts: which one routes? (RFC 9112 §3.2)
          req.host = value;
        } else if (id === H.EXPECT) req.expectContinue = value.toLowerCase() === '100-continue';
        else if (id === H.X_REQUEST_ID) req.requestId ??= value;
        else if (id === H.X_FORWARDED_FOR) req.xff = req.xff === null ? value : req.xff + ', ' + value;
        else if (id === H.X_FORWARDED_PROTO) req.xfp ??= value;
        else if (id === H.USER_AGENT) req.userAgent ??= value;
    }
  }
}

function finishFraming(h: RequestHead | ResponseHead, isRequest: boolean): boolean {
  if (h.chunked && h.contentLength !== -1) return false; // RFC 9112 §6.3: CL with TE is smuggling
  if (isRequest && h.chunked && h.versionMinor === 0) return false; // TE is not HTTP/1.0 framing (RFC 9112 §6.1)
  const c = h.connection;
  if (c !== null) {
    const lc = c.toLowerCase();
    if (lc.includes('close')) h.close = hasToken(lc, 'close');
    if (h.versionMinor === 0) h.close = !hasToken(lc, 'keep-alive');
  } else if (h.versionMinor === 0) h.close = true;
  return true;
}

/** Whether a comma-separated, lower-cased list holds `token`. */
export function hasToken(list: string, token: string): boolean {
  let from = 0;
  while (from <= list.length) {
    let to = list.indexOf(',', from);
    if (to < 0) to = list.length;
    let a = from;
    let b = to;
    while (a < b && (list.charCodeAt(a) === SP || list.charCodeAt(a) === HT)) a++;
    while (b > a && (list.charCodeAt(b - 1) === SP || list.charCodeAt(b - 1) === HT)) b--;
    if (b - a === token.length && list.startsWith(token, a)) return true;
    from = to + 1;
  }
  return false;
}
