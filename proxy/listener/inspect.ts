// First-bytes inspection of an accepted downstream socket, the job of Envoy's tls_inspector and
// http_inspector listener filters: learn "TLS? which SNI / ALPN?" or "HTTP/1.x?" before choosing a
// filter chain, without losing a byte.
//
// Contract for callers:
// - Call only when the filter-chain choice needs it (a TLS/SNI match, or protocol auto-detect).
//   Server-first protocols (MySQL, SMTP, ...) send nothing until the server speaks, so inspecting
//   them would wait for ever: when neither `wantTls` nor `wantHttp`, do NOT call inspect at all.
// - The socket should be created with `allowHalfOpen: true` (the relay needs it anyway).
// - Every byte read is in `Inspection.head`, and nothing else consumed them. Replay them:
//     * opaque TCP / TLS passthrough: pass `head` to `relay(downstream, upstream, head, ...)`, which
//       writes it to the upstream before anything else;
//     * HTTP (and TLS termination): `socket.unshift(head)` before handing the socket to the HTTP
//       parser / `new tls.TLSSocket(socket, ...)`, so they read the bytes as if fresh.
// - On return the socket is paused with none of our listeners left: whoever takes it must attach
//   its handlers, then `resume()` (the relay does). The caller owns the socket from then on, and must
//   keep an 'error' listener on it (the accept path should attach one for the socket's whole life).
// - If the peer half-closes (FIN) before a decision, cb gets what was read (`socket.readableEnded`
//   is then true; the relay honours it). If nothing was read, or the socket errors/closes, cb gets
//   DOWNSTREAM_DISCONNECT. If `maxBytes` or `timeoutMs` is exceeded first, cb gets INSPECT_LIMIT
//   (Envoy closes the connection then; the socket is left to the caller to destroy).
//   `timeoutMs <= 0` waits for ever, as Istio's default protocolDetectionTimeout of 0s does.
//   For TLS, pass `maxBytes >= MAX_HELLO_BYTES` (tls/client-hello.ts), else a large legitimate
//   hello (post-quantum key shares, ECH) hits INSPECT_LIMIT.

import type net from 'node:net';
import { ProxyError, ProxyErrorCode } from '../errors';
import { parseClientHello, HelloInvalidReason } from '../tls/client-hello';

export interface Inspection {
  readonly isTls: boolean;
  readonly sni: string | null;
  readonly alpn: readonly string[] | null; /* for raw: ['http/1.1'] when HTTP/1.x request line detected, else null */
  readonly head: Buffer; /* all bytes read so far, to replay first */
}

export interface InspectOptions {
  readonly wantTls: boolean;
  readonly wantHttp: boolean;
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

export type InspectCallback = (err: ProxyError | null, r: Inspection | null) => void;

const HTTP11_ALPN: readonly string[] = Object.freeze(['http/1.1']);
const EMPTY = Buffer.alloc(0);

// http_inspector's method list; each token followed by SP. Decide as soon as the token + SP is seen.
const HTTP_METHOD_LINES: readonly Buffer[] = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE']
  .map((m) => Buffer.from(`${m} `, 'latin1'));

const enum Http { Yes, No, NeedMore }

/** Does `head` start with a known method token + SP? Compares in place, no allocation. */
function detectHttp(head: Buffer): Http {
  let prefixOfSome = false;
  for (const line of HTTP_METHOD_LINES) {
    const n = Math.min(line.length, head.length);
    if (line.compare(head, 0, n, 0, n) !== 0) continue;
    if (head.length >= line.length) return Http.Yes;
    prefixOfSome = true;
  }
  return prefixOfSome ? Http.NeedMore : Http.No;
}

/** What the first bytes say, once they say enough (`decideFirstBytes`). */
export type FirstBytes =
  | { readonly kind: 'undecided' }
  | { readonly kind: 'decided'; readonly isTls: boolean; readonly sni: string | null; readonly alpn: readonly string[] | null }
  | { readonly kind: 'failed'; readonly code: ProxyError['code']; readonly message: string };

const UNDECIDED: FirstBytes = Object.freeze({ kind: 'undecided' });

function decided(isTls: boolean, sni: string | null, alpn: readonly string[] | null): FirstBytes {
  return { kind: 'decided', isTls, sni, alpn };
}

/**
 * tls_inspector / http_inspector on the bytes read so far; `final`: no more will come (the peer
 * half-closed), so undecided means "opaque". Shared by the socket inspector below and the bare
 * handle one (inspect-handle.ts).
 */
export function decideFirstBytes(head: Buffer, final: boolean, opts: Pick<InspectOptions, 'wantTls' | 'wantHttp'>): FirstBytes {
  const { wantTls, wantHttp } = opts;
  if (wantTls && head.length > 0 && head[0] === 0x16) {
    const r = parseClientHello(head);
    switch (r.kind) {
      case 'hello':
        return decided(true, r.sni, r.alpn);
      case 'need-more':
        return final ? decided(false, null, null) : UNDECIDED;
      case 'invalid':
        // Like Envoy: an oversize hello closes the connection; a malformed one is "not TLS"
        // (tls_inspector counts tls_not_found and lets the opaque chain take it).
        return r.reason === HelloInvalidReason.TOO_LARGE
          ? { kind: 'failed', code: ProxyErrorCode.INSPECT_LIMIT, message: 'ClientHello too large' }
          : decided(false, null, null);
      case 'not-tls':
        break; // fall through to HTTP detection
    }
  }
  if (wantHttp && head.length > 0) {
    const h = detectHttp(head);
    if (h === Http.NeedMore && !final) return UNDECIDED;
    return decided(false, null, h === Http.Yes ? HTTP11_ALPN : null);
  }
  if (head.length === 0 && !final) return UNDECIDED;
  return decided(false, null, null);
}

/** One per inspected connection; handlers bound once (no per-chunk closures). */
class Inspector {
  private head: Buffer = EMPTY;
  private timer: NodeJS.Timeout | null = null;
  private done = false;
  private readonly onData: (chunk: Buffer) => void;
  private readonly onEnd: () => void;
  private readonly onError: (err: Error) => void;
  private readonly onClose: () => void;
  private readonly onTimeout: () => void;

  constructor(private readonly socket: net.Socket, private readonly opts: InspectOptions, private readonly cb: InspectCallback) {
    this.onData = this.handleData.bind(this);
    this.onEnd = this.handleEnd.bind(this);
    this.onError = this.handleError.bind(this);
    this.onClose = this.handleClose.bind(this);
    this.onTimeout = this.handleTimeout.bind(this);
  }

  start(): void {
    const s = this.socket;
    if (s.destroyed || s.readableEnded) {
      // Keep the callback asynchronous on every path (callers need not guard against re-entry).
      process.nextTick(failDisconnected, this);
      return;
    }
    s.on('data', this.onData);
    s.on('end', this.onEnd);
    s.on('error', this.onError);
    s.on('close', this.onClose);
    if (this.opts.timeoutMs > 0) this.timer = setTimeout(this.onTimeout, this.opts.timeoutMs);
    s.resume();
  }

  private handleData(chunk: Buffer): void {
    if (this.done) return;
    // The first chunk usually holds everything: keep it as is, copy only when more arrive.
    this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
    if (this.decide(false)) return;
    if (this.head.length >= this.opts.maxBytes) {
      this.fail(ProxyErrorCode.INSPECT_LIMIT, `no protocol decision within ${this.opts.maxBytes} bytes`, null);
    }
  }

  /** Decide on the bytes so far; true when the inspection is over (succeeded or failed). */
  private decide(final: boolean): boolean {
    const d = decideFirstBytes(this.head, final, this.opts);
    if (d.kind === 'undecided') return false;
    if (d.kind === 'decided') this.succeed(d.isTls, d.sni, d.alpn);
    else this.fail(d.code, d.message, null);
    return true;
  }

  private handleEnd(): void {
    if (this.done) return;
    if (this.head.length === 0) {
      this.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream closed before sending anything', null);
      return;
    }
    this.decide(true);
  }

  private handleError(err: Error): void {
    if (this.done) return;
    this.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream error during inspection', err);
  }

  private handleClose(): void {
    if (this.done) return;
    this.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream closed during inspection', null);
  }

  private handleTimeout(): void {
    this.timer = null;
    if (this.done) return;
    this.fail(ProxyErrorCode.INSPECT_LIMIT, `no protocol decision within ${this.opts.timeoutMs} ms`, null);
  }

  private finish(): void {
    this.done = true;
    const s = this.socket;
    s.pause();
    s.removeListener('data', this.onData);
    s.removeListener('end', this.onEnd);
    s.removeListener('error', this.onError);
    s.removeListener('close', this.onClose);
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private succeed(isTls: boolean, sni: string | null, alpn: readonly string[] | null): void {
    this.finish();
    this.cb(null, { isTls, sni, alpn, head: this.head });
  }

  /** Not private only so the module-level failDisconnected (a nextTick target) can call it. */
  fail(code: ProxyError['code'], message: string, cause: Error | null): void {
    this.finish();
    this.cb(new ProxyError(code, message, cause === null ? undefined : { cause }), null);
  }
}

function failDisconnected(i: Inspector): void {
  i.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream closed before sending anything', null);
}

export function inspect(socket: net.Socket, opts: InspectOptions, cb: InspectCallback): void {
  new Inspector(socket, opts, cb).start();
}
